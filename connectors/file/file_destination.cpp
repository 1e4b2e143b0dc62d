#include "connectors/file/file_destination.h"

#include <pugixml.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "connectors/file/file_config.h"
#include "connectors/file/sftp_transport.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/store_backend.h"
#include "core/thread_name.h"

namespace relais {
namespace file {
namespace {

constexpr const char* kLog = "file";

std::string join(const std::string& dir, const std::string& name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

std::string csv_cell(const std::string& v, char delimiter, char quote) {
  if (v.find_first_of(std::string{delimiter, quote, '\r', '\n'}) == std::string::npos) return v;
  std::string out(1, quote);
  for (char c : v) {
    if (c == quote) out += quote;
    out += c;
  }
  return out + quote;
}

bool xml_name(const std::string& n) {
  if (n.empty() || !(std::isalpha(static_cast<unsigned char>(n[0])) || n[0] == '_')) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
}

// JSON → elements: an object's keys are child elements, an array repeats its key's element.
bool json_to_xml(const nlohmann::json& v, pugi::xml_node node, std::string& reason) {
  if (v.is_object()) {
    for (const auto& [k, child] : v.items()) {
      if (!xml_name(k)) {
        reason = "champ « " + k + " » : pas un nom d'élément XML";
        return false;
      }
      if (child.is_array()) {
        for (const auto& item : child) {
          if (!json_to_xml(item, node.append_child(k.c_str()), reason)) return false;
        }
      } else if (!json_to_xml(child, node.append_child(k.c_str()), reason)) {
        return false;
      }
    }
    return true;
  }
  std::string text;
  if (!v.is_null() && !scalar_text(v, text)) {
    reason = "valeur imbriquée impossible à écrire";
    return false;
  }
  node.text().set(text.c_str());
  return true;
}

std::string xml_text(const pugi::xml_node& node) {
  std::ostringstream out;
  node.print(out, "", pugi::format_raw);
  return out.str();
}

}  // namespace

Status FilePublisher::place(const std::string& name, const std::string& data) {
  std::string final_path = join(dir_, name);
  FileEntry there;
  Status s = transport_.stat(final_path, there);
  if (s.ok) {
    // Named from its deliveries: the same name is the same content, written by an earlier try
    // whose answer was lost.
    if (there.size == int64_t(data.size())) return Status::success();
    return Status::failure(409, "fichier déjà présent avec un autre contenu", final_path);
  }
  if (s.http_status != 404) return s;
  std::string temp = join(dir_, "." + name + ".part");
  if (!(s = transport_.write(temp, data, false)).ok) return s;
  s = transport_.move(temp, final_path);
  if (s.ok) return s;
  if (s.http_status == 409) {
    // Renamed by a try whose answer was lost, in between: the same check.
    Status again = transport_.stat(final_path, there);
    if (again.ok && there.size == int64_t(data.size())) {
      transport_.remove(temp);
      return Status::success();
    }
  }
  return s;
}

Status FilePublisher::publish(const std::string& name, const std::string& data) {
  if (checksum_) {
    // The checksum first: whoever sees the file sees its checksum.
    Status s = place(name + ".sha256", sha256_hex(data) + "  " + name + "\n");
    if (!s.ok) return s;
  }
  return place(name, data);
}

std::string batch_file_name(const FileDestinationSettings& s, const std::vector<int64_t>& ids) {
  auto padded = [](int64_t id) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%012lld", static_cast<long long>(id));
    return std::string(buf);
  };
  std::string name = s.prefix + "-" + padded(ids.front());
  if (ids.size() > 1) {
    std::string list;
    for (int64_t id : ids) list += std::to_string(id) + ",";
    name += "-" + padded(ids.back()) + "-" + sha256_hex(list).substr(0, 8);
  }
  return name + (s.xml ? ".xml" : ".csv");
}

bool render_record(const FileDestinationSettings& s, const nlohmann::json& mapped,
                   const std::string& payload, const std::string& content_type, std::string& out,
                   std::string& reason) {
  out.clear();
  if (s.xml) {
    pugi::xml_document doc;
    if (content_type.find("xml") != std::string::npos) {
      // The mapping wrote XML itself: its document element is the record.
      if (!doc.load_string(payload.c_str()) || !doc.document_element()) {
        reason = "la sortie XML du mapping est illisible";
        return false;
      }
      out = xml_text(doc.document_element());
      return true;
    }
    if (!json_to_xml(mapped, doc.append_child(s.xml_record.c_str()), reason)) return false;
    out = xml_text(doc.document_element());
    return true;
  }
  std::string row;
  for (size_t i = 0; i < s.columns.size(); ++i) {
    if (i > 0) row += s.delimiter;
    const nlohmann::json* v = s.columns[i].second.find(mapped);
    std::string text;
    if (v != nullptr && !v->is_null() && !scalar_text(*v, text)) {
      reason = "colonne « " + s.columns[i].first + " » : valeur imbriquée, pas un texte";
      return false;
    }
    row += csv_cell(text, s.delimiter, s.quote);
  }
  row += s.line_end;
  if (!from_utf8(row, s.encoding, out)) {
    reason = std::string("un caractère ne s'écrit pas en ") + to_string(s.encoding);
    return false;
  }
  return true;
}

std::string file_text(const FileDestinationSettings& s, const std::vector<std::string>& records) {
  std::string out;
  if (s.xml) {
    out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<" + s.xml_root + ">\n";
    for (const auto& r : records) out += r + "\n";
    return out + "</" + s.xml_root + ">\n";
  }
  if (s.header) {
    std::string line;
    for (size_t i = 0; i < s.columns.size(); ++i) {
      if (i > 0) line += s.delimiter;
      line += csv_cell(s.columns[i].first, s.delimiter, s.quote);
    }
    line += s.line_end;
    std::string encoded;
    out = from_utf8(line, s.encoding, encoded) ? encoded : line;
  }
  for (const auto& r : records) out += r;
  return out;
}

FileDestinationSettings file_destination_settings(const ConfigView& c,
                                                  const std::string& base_dir) {
  FileDestinationSettings s;
  s.path = folder_path(c, "path", base_dir);
  s.prefix = c.str("prefix");
  if (s.prefix.empty() || s.prefix.find('/') != std::string::npos || s.prefix[0] == '.') {
    throw std::invalid_argument(c.path() +
                                ".prefix: a file name prefix expected (no '/', no "
                                "leading '.')");
  }
  s.xml = c.str("format") == "xml";
  s.delimiter = single_char(c, "delimiter");
  s.quote = single_char(c, "quote");
  s.header = c.boolean("header");
  if (!parse_encoding(c.str("encoding"), s.encoding)) {
    throw std::invalid_argument(c.path() + ".encoding: unknown encoding \"" + c.str("encoding") +
                                "\"");
  }
  s.line_end = c.str("line_end") == "lf" ? "\n" : "\r\n";
  for (const auto& [header, text] : c.string_map("columns")) {
    try {
      s.columns.emplace_back(header, message_path(text));
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(c.path() + ".columns." + header + ": " + e.what());
    }
  }
  if (!s.xml && s.columns.empty()) {
    throw std::invalid_argument(c.path() + ".columns: csv needs its columns (header → path)");
  }
  s.xml_root = c.str("xml_root");
  s.xml_record = c.str("xml_record");
  if (!xml_name(s.xml_root) || !xml_name(s.xml_record)) {
    throw std::invalid_argument(c.path() + ": xml_root and xml_record must be XML names");
  }
  s.checksum = c.boolean("checksum");
  s.batch_size = size_t(c.integer("batch_size"));
  s.batch_wait_ms = c.duration_ms("batch_wait");
  return s;
}

namespace {

// The connector: one file per message, or batches flushed by a thread of their own.
class FileDestination final : public Connector {
 public:
  FileDestination(const ConnectorContext& ctx, FileDestinationSettings s,
                  std::unique_ptr<FileTransport> transport)
      : name_(ctx.name),
        s_(std::move(s)),
        transport_(std::move(transport)),
        publisher_(*transport_, s_.path, s_.checksum),
        clock_(ctx.clock ? ctx.clock : &system_clock_),
        hub_(ctx.hub) {
    if (ctx.metrics != nullptr) {
      ctx.metrics->describe("relais_file_written_total", "counter",
                            "Files renamed into place by the file destination");
      files_ = &ctx.metrics->counter("relais_file_written_total", {{"destination", name_}});
    }
    started_ms_ = clock_->now_ms();
    if (s_.batch_size > 1 && ctx.stores != nullptr) {
      journal_dir_ = ctx.stores->state_dir() + "/file-batches/" + name_;
      load_journal();
    }
    if (s_.batch_size > 1)
      flusher_ = std::thread([this] {
        set_thread_name("file-" + name_);
        flush_loop();
      });
  }

  ~FileDestination() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (flusher_.joinable()) flusher_.join();
  }

  Outcome deliver(const DeliveryRequest& r) override {
    std::string record, reason;
    const nlohmann::json empty;
    if (!render_record(s_, r.mapped ? *r.mapped : empty, r.payload ? *r.payload : "",
                       r.content_type, record, reason)) {
      return Outcome::reject("mapping", 422, "enregistrement impossible à écrire : " + reason);
    }
    if (s_.batch_size <= 1) {
      std::string name = batch_file_name(s_, {r.delivery_id});
      Status st;
      {
        std::lock_guard<std::mutex> lock(publish_mu_);
        st = publisher_.publish(name, file_text(s_, {record}));
      }
      if (!st.ok) return failed(st);
      if (files_ != nullptr) files_->inc();
      return Outcome::delivered(name, "écrit dans " + name);
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (auto w = written_.find(r.delivery_id); w != written_.end()) {
      std::string name = w->second;
      written_.erase(w);
      settle_locked(name);
      return Outcome::delivered(name, "écrit dans " + name + " (lot)");
    }
    if (auto j = journaled_.find(r.delivery_id); j != journaled_.end()) {
      // Put in a batch before a restart: its file is there (written, delivered) or not (never
      // renamed into place: the delivery goes into a new batch).
      std::string name = j->second;
      lock.unlock();
      FileEntry there;
      Status st = transport_->stat(s_.path + "/" + name, there);
      lock.lock();
      if (!st.ok && st.http_status != 404) return failed(st);
      journaled_.erase(r.delivery_id);
      settle_locked(name);
      if (st.ok) {
        return Outcome::delivered(name, "écrit dans " + name + " (lot, avant redémarrage)");
      }
      startup_names_.erase(name);  // never in place: its journal goes once all are re-batched
    }
    int64_t now = clock_->now_ms();
    if (auto m = member_.find(r.delivery_id); m != member_.end()) {
      const Batch& b = *m->second;
      std::string why = b.sealed ? "lot en attente d'écriture" : "lot ouvert";
      if (!b.last_error.empty()) why += " (dernier essai : " + b.last_error + ")";
      return Outcome::defer(now + s_.batch_wait_ms + 1000, why);
    }
    if (!open_) {
      open_ = std::make_shared<Batch>();
      open_->opened_ms = now;
    }
    open_->items.push_back({r.delivery_id, r.message ? r.message->correlation : "", record});
    member_[r.delivery_id] = open_;
    int64_t due = open_->opened_ms + s_.batch_wait_ms;
    if (open_->items.size() >= s_.batch_size) {
      seal_locked();
      due = now;
      cv_.notify_all();
    }
    return Outcome::defer(due + s_.batch_wait_ms + 1000,
                          "mis dans un lot, écrit au plus tard à "
                          "la fin de batch_wait");
  }

  Status probe() override {
    std::vector<FileEntry> entries;
    Status s = transport_->list(s_.path, entries);
    if (!s.ok) return Status::failure(503, "dossier de dépôt inaccessible", s.detail);
    return Status::success();
  }

 private:
  struct Item {
    int64_t id;
    std::string key;
    std::string record;
  };
  struct Batch {
    std::vector<Item> items;
    int64_t opened_ms = 0;
    bool sealed = false;
    int failures = 0;
    int64_t next_try_ms = 0;
    std::string last_error;
  };

  Outcome failed(const Status& st) const {
    std::string text = st.error + (st.detail.empty() ? "" : " : " + st.detail);
    if (st.http_status == 409) return Outcome::reject("file", 409, text);
    return Outcome::retry("network", st.http_status, text);
  }

  // The batch journal (`<store folder>/file-batches/<destination>/<file name>`: the delivery
  // ids of a sealed batch, written and synced before its file is published, removed once every
  // one of them was answered): after a restart, a delivery of a batch whose file is in place is
  // delivered without being written again.
  void load_journal() {
    Status s = local_->make_dir(journal_dir_);
    std::vector<FileEntry> entries;
    if (s.ok) s = local_->list(journal_dir_, entries);
    if (!s.ok) throw std::runtime_error("destination " + name_ + ": " + s.error + " " + s.detail);
    for (const auto& e : entries) {
      std::string text;
      if (!local_->read(journal_dir_ + "/" + e.name, 0, size_t(e.size), text).ok) continue;
      std::istringstream in(text);
      for (std::string line; std::getline(in, line);) {
        if (line.empty() || line.find_first_not_of("0123456789") != std::string::npos ||
            line.size() > 18) {
          continue;  // a line cut by a crash while the journal was written: its batch never went
        }
        journaled_[std::stoll(line)] = e.name;
        ++remaining_[e.name];
        startup_names_.insert(e.name);
      }
      if (remaining_.count(e.name) == 0) local_->remove(journal_dir_ + "/" + e.name);
    }
  }

  // One delivery of the batch `name` was answered (or went into another batch). Its journal file
  // stays a while after the last one: an answer is recorded by the hub just after, and a crash in
  // between brings the delivery back.
  void settle_locked(const std::string& name) {
    auto it = remaining_.find(name);
    if (it == remaining_.end()) return;
    if (--it->second == 0) {
      remaining_.erase(it);
      answered_at_[name] = clock_->now_ms();
    }
  }

  int64_t journal_grace_ms() const { return std::max<int64_t>(2 * s_.batch_wait_ms, 10000); }

  // Removes the journal files answered long enough ago and, once the deliveries pending at
  // start-up had their time to come back, what is left of the journal read at start-up (batches
  // whose deliveries were all recorded before the restart).
  void prune_journal_locked(int64_t now) {
    for (auto it = answered_at_.begin(); it != answered_at_.end();) {
      if (now - it->second < journal_grace_ms()) {
        ++it;
        continue;
      }
      local_->remove(journal_dir_ + "/" + it->first);
      it = answered_at_.erase(it);
    }
    if (startup_names_.empty() ||
        now < started_ms_ + s_.batch_wait_ms + 1000 + journal_grace_ms()) {
      return;
    }
    for (auto it = journaled_.begin(); it != journaled_.end();) {
      it = startup_names_.count(it->second) ? journaled_.erase(it) : std::next(it);
    }
    for (const auto& name : startup_names_) {
      remaining_.erase(name);
      local_->remove(journal_dir_ + "/" + name);
    }
    startup_names_.clear();
  }

  void seal_locked() {
    // In delivery order: the file reads in the order the messages came, and its name is the same
    // whatever order the deliveries arrived in.
    std::sort(open_->items.begin(), open_->items.end(),
              [](const Item& a, const Item& b) { return a.id < b.id; });
    open_->sealed = true;
    sealed_.push_back(std::move(open_));
    open_.reset();
  }

  void flush_loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      int64_t now = clock_->now_ms();
      if (!journal_dir_.empty()) prune_journal_locked(now);
      if (open_ && now >= open_->opened_ms + s_.batch_wait_ms) seal_locked();
      if (!sealed_.empty() && sealed_.front()->next_try_ms <= now) {
        std::shared_ptr<Batch> b = sealed_.front();
        std::vector<std::string> records;
        std::vector<int64_t> ids;
        for (const auto& it : b->items) {
          records.push_back(it.record);
          ids.push_back(it.id);
        }
        std::string name = batch_file_name(s_, ids);
        std::string journal;
        for (int64_t id : ids) journal += std::to_string(id) + "\n";
        lock.unlock();
        Status st;
        if (!journal_dir_.empty()) st = local_->write(journal_dir_ + "/" + name, journal, false);
        if (st.ok) {
          std::lock_guard<std::mutex> p(publish_mu_);
          st = publisher_.publish(name, file_text(s_, records));
        }
        lock.lock();
        if (st.ok) {
          sealed_.pop_front();
          for (const auto& it : b->items) {
            written_[it.id] = name;
            member_.erase(it.id);
          }
          if (!journal_dir_.empty()) {
            remaining_[name] += b->items.size();
            answered_at_.erase(name);  // the same deliveries again (re-batched after a restart)
          }
          if (files_ != nullptr) files_->inc();
          lock.unlock();
          if (hub_ != nullptr) {
            for (const auto& it : b->items) hub_->wake_delivery(name_, it.id, it.key);
          }
          lock.lock();
        } else {
          ++b->failures;
          b->last_error = st.error;
          int64_t pause = std::min<int64_t>(int64_t(500) << std::min(b->failures, 7), 60000);
          b->next_try_ms = clock_->now_ms() + pause;
          log_warn(kLog, "destination " + name_ + ": " + name + " not written (try " +
                             std::to_string(b->failures) + "): " + st.error + " " + st.detail);
        }
        continue;
      }
      cv_.wait_for(lock, std::chrono::milliseconds(100));
    }
  }

  std::string name_;
  FileDestinationSettings s_;
  std::unique_ptr<FileTransport> transport_;
  FilePublisher publisher_;
  SystemClock system_clock_;
  const Clock* clock_;
  HubServices* hub_;
  Counter* files_ = nullptr;
  std::mutex publish_mu_;  // one file published at a time (single mode: across slots)
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::shared_ptr<Batch> open_;
  std::deque<std::shared_ptr<Batch>> sealed_;
  std::unordered_map<int64_t, std::shared_ptr<Batch>> member_;
  std::unordered_map<int64_t, std::string> written_;
  std::string journal_dir_;  // "" = no journal (no store: unit tests)
  std::unique_ptr<FileTransport> local_ = local_transport();
  std::unordered_map<int64_t, std::string> journaled_;    // from the journal at start-up
  std::unordered_map<std::string, size_t> remaining_;     // journal file → ids not yet answered
  std::unordered_map<std::string, int64_t> answered_at_;  // journal file → its last answer
  std::set<std::string> startup_names_;                   // journal files read at start-up
  int64_t started_ms_ = 0;
  std::thread flusher_;
};

}  // namespace
}  // namespace file

const ConfigSpec& file_destination_spec() {
  using F = FieldType;
  static const ConfigSpec spec{
      "file",
      {
          {"path", F::String, "", true,
           "the folder the files go to (local: relative paths from the configuration file's "
           "folder; with `sftp`: absolute on the server)"},
          {"sftp",
           F::Object,
           "",
           false,
           "write on an SFTP server instead of the local disk (section `sftp`)",
           {},
           &file::sftp_spec()},
          {"prefix", F::String, "relais", false,
           "file names: `<prefix>-<first delivery id>[-<last delivery id>].csv|xml`"},
          {"format", F::String, "csv", false, "csv or xml", {"csv", "xml"}},
          {"columns", F::StringMap, "", false,
           "csv: column header → path in the mapped payload, in this order (`N° dossier: "
           "dossier.numero`); a missing value is an empty cell"},
          {"delimiter", F::String, ";", false, "csv: the field delimiter (one character; `\\t`)"},
          {"quote", F::String, "\"", false, "csv: the quote character"},
          {"header", F::Bool, "true", false, "csv: a first line naming the columns"},
          {"encoding",
           F::String,
           "utf-8",
           false,
           "csv: the files' encoding (a record holding a character it cannot write is "
           "rejected)",
           {"utf-8", "windows-1252", "iso-8859-1"}},
          {"line_end", F::String, "crlf", false, "csv: line end", {"crlf", "lf"}},
          {"xml_root", F::String, "messages", false, "xml: the root element of each file"},
          {"xml_record", F::String, "message", false,
           "xml: the element of one record built from a JSON payload (a mapping that writes XML "
           "gives its own element)"},
          {"checksum", F::Bool, "false", false,
           "write `<name>.sha256` (sha256sum format) beside each file, before it"},
          {"batch_size",
           F::Int,
           "1",
           false,
           "messages per file: 1 = one file per message; more = batched, a file written when "
           "it holds this many or after batch_wait",
           {},
           nullptr,
           1,
           100000},
          {"batch_wait", F::Duration, "1m", false,
           "batched: the longest a message waits in an open batch before its file is written"},
      }};
  return spec;
}

void register_file_destination(ConnectorRegistry& registry) {
  ConnectorKind k;
  k.name = "file";
  k.description =
      "CSV or XML files written into a local folder or on an SFTP server (temporary name, "
      "atomic rename, optional checksum), one per message or batched";
  k.spec = &file_destination_spec();
  k.check = [](const ConfigView& c, const std::string& file, std::vector<ConfigError>& errors) {
    try {
      file::file_destination_settings(c, "/");
      file::check_transport(c);
    } catch (const std::invalid_argument& e) {
      errors.push_back(error_at(c.node(), file, c.path(), e.what()));
    }
  };
  k.create = [](const ConnectorContext& ctx) -> std::unique_ptr<Connector> {
    auto s = file::file_destination_settings(ctx.config, ctx.base_dir);
    auto transport = file::transport_for(ctx.config, ctx.base_dir);
    return std::make_unique<file::FileDestination>(ctx, std::move(s), std::move(transport));
  };
  registry.add(std::move(k));
}

}  // namespace relais

#include "connectors/file/folder_poller.h"

#include <fnmatch.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "core/crypto.h"
#include "core/log.h"

namespace relais {
namespace file {
namespace {

constexpr const char* kLog = "folder";
constexpr const char* kReportSuffix = ".rapport.csv";
constexpr size_t kHashChunk = 1 << 20;

bool ends_with(const std::string& s, const std::string& end) {
  return s.size() >= end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
}

// Names never read: hidden, being written (.tmp, .part), reports.
bool ignored_name(const std::string& name) {
  return name.empty() || name[0] == '.' || ends_with(name, ".tmp") || ends_with(name, ".part") ||
         ends_with(name, kReportSuffix);
}

std::string join(const std::string& dir, const std::string& name) {
  if (name.empty()) return dir;
  if (name[0] == '/') return name;
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

// "%", tab and line breaks escaped so that a name fits on one checkpoint line.
std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '%' || c == '\n' || c == '\r' || c == '\t') {
      static const char* hex = "0123456789ABCDEF";
      out += '%';
      out += hex[(static_cast<unsigned char>(c) >> 4) & 15];
      out += hex[static_cast<unsigned char>(c) & 15];
    } else {
      out += c;
    }
  }
  return out;
}

std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += char(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// A report cell: quoted when it holds the delimiter, a quote or a line break.
std::string cell(const std::string& s) {
  if (s.find_first_of(";\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += (c == '\r' || c == '\n') ? ' ' : c;
  }
  return out + "\"";
}

// The number at the start of a report row ("12;202;…"); -1 for the header or a broken row.
int64_t row_number(std::string_view row) {
  size_t semi = row.find(';');
  if (semi == 0 || semi == std::string_view::npos) return -1;
  int64_t n = 0;
  for (size_t i = 0; i < semi; ++i) {
    if (row[i] < '0' || row[i] > '9') return -1;
    n = n * 10 + (row[i] - '0');
  }
  return n;
}

// The status of a report row (its second cell), or 0.
int row_status(std::string_view row) {
  size_t a = row.find(';');
  if (a == std::string_view::npos) return 0;
  int n = 0;
  for (size_t i = a + 1; i < row.size() && row[i] >= '0' && row[i] <= '9'; ++i) {
    n = n * 10 + (row[i] - '0');
  }
  return n;
}

// What committed() needs of a batch (PollBatch::context).
struct BatchContext {
  std::string name;
  bool end = false;  // the file's last batch
  std::vector<int64_t> lines;
  std::vector<std::string> unreadable;
};

std::string single_char(const ConfigView& c, const std::string& key) {
  std::string v = c.str(key);
  if (v == "\\t" || v == "tab") v = "\t";
  if (v.size() != 1) {
    throw std::invalid_argument(c.path() + "." + key + ": one character expected, not \"" + v +
                                "\"");
  }
  return v;
}

}  // namespace

// The position in the folder, as committed with each batch. Text: one "key value" per line.
struct FolderPoller::Checkpoint {
  std::string name;
  int64_t size = 0;
  int64_t mtime_ms = 0;
  std::string sha;
  int64_t offset = 0;  // CSV: byte of the next record; XML: index of the next record
  int64_t line = 1;    // CSV: its line; XML: index + 1
  int64_t batch_offset = 0;
  int64_t batch_line = 1;
  int64_t batch_count = 0;  // records of the last batch
  int64_t last_line = 0;    // the last record of the last batch (its report row)
  bool end = false;         // read through

  std::string text() const {
    std::ostringstream o;
    o << "folder 1\nname " << escape(name) << "\nsize " << size << "\nmtime " << mtime_ms
      << "\nsha256 " << sha << "\noffset " << offset << "\nline " << line << "\nbatch_offset "
      << batch_offset << "\nbatch_line " << batch_line << "\nbatch_count " << batch_count
      << "\nlast_line " << last_line << "\nend " << (end ? 1 : 0) << "\n";
    return o.str();
  }

  static bool parse(const std::string& text, Checkpoint& cp) {
    std::istringstream in(text);
    std::string line;
    bool versioned = false;
    try {
      while (std::getline(in, line)) {
        auto sp = line.find(' ');
        if (sp == std::string::npos) continue;
        std::string k = line.substr(0, sp), v = line.substr(sp + 1);
        if (k == "folder") versioned = v == "1";
        if (k == "name") cp.name = unescape(v);
        if (k == "sha256") cp.sha = v;
        if (k == "size") cp.size = std::stoll(v);
        if (k == "mtime") cp.mtime_ms = std::stoll(v);
        if (k == "offset") cp.offset = std::stoll(v);
        if (k == "line") cp.line = std::stoll(v);
        if (k == "batch_offset") cp.batch_offset = std::stoll(v);
        if (k == "batch_line") cp.batch_line = std::stoll(v);
        if (k == "batch_count") cp.batch_count = std::stoll(v);
        if (k == "last_line") cp.last_line = std::stoll(v);
        if (k == "end") cp.end = v == "1";
      }
    } catch (const std::exception&) {
      return false;
    }
    return versioned && !cp.name.empty();
  }
};

FolderSettings folder_settings(const ConfigView& c, const std::string& base_dir) {
  FolderSettings s;
  auto normal = [](const std::string& p) {
    std::string n = std::filesystem::path(p).lexically_normal().string();
    while (n.size() > 1 && n.back() == '/') n.pop_back();
    return n;
  };
  s.path = normal(join(base_dir, c.str("path")));
  s.pattern = c.str("pattern");
  s.done_dir = normal(join(s.path, c.str("done")));
  s.error_dir = normal(join(s.path, c.str("error")));
  if (s.done_dir == s.path || s.error_dir == s.path) {
    throw std::invalid_argument(c.path() + ": done and error must be other folders than path");
  }
  s.xml = c.str("format") == "xml";
  if (!parse_encoding(c.str("encoding"), s.encoding)) {
    throw std::invalid_argument(c.path() + ".encoding: unknown encoding \"" + c.str("encoding") +
                                "\"");
  }
  s.batch = size_t(c.integer("batch"));
  s.settle_ms = c.duration_ms("settle");
  s.max_xml_size = c.size("max_xml_size");
  auto path_of = [&](const std::string& key, const std::string& text) {
    try {
      return message_path(text);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(c.path() + "." + key + ": " + e.what());
    }
  };
  RecordShape shape;
  for (const auto& [path, value] : c.string_map("constants")) {
    shape.constants.emplace_back(path_of("constants", path), value);
  }
  for (const auto& path : c.strings("required"))
    shape.required.push_back(path_of("required", path));
  if (s.xml) {
    if (c.str("record").empty())
      throw std::invalid_argument(c.path() + ": format xml needs record");
    if (c.string_map("fields").empty()) {
      throw std::invalid_argument(c.path() + ": format xml needs fields");
    }
    if (c.has("columns")) throw std::invalid_argument(c.path() + ".columns: only for format csv");
    s.xml_format.record = c.str("record");
    for (const auto& [path, xpath] : c.string_map("fields")) {
      s.xml_format.fields.emplace_back(path_of("fields", path), xpath);
    }
    s.xml_format.shape = std::move(shape);
    std::string bad = check_xpaths(s.xml_format);
    if (!bad.empty()) throw std::invalid_argument(c.path() + ": " + bad);
  } else {
    if (c.has("fields") || c.has("record")) {
      throw std::invalid_argument(c.path() + ": record and fields are for format xml");
    }
    s.csv.delimiter = single_char(c, "delimiter")[0];
    s.csv.quote = single_char(c, "quote")[0];
    if (s.csv.delimiter == s.csv.quote) {
      throw std::invalid_argument(c.path() + ": delimiter and quote must differ");
    }
    s.csv.encoding = s.encoding;
    s.csv.header = c.boolean("header");
    for (const auto& [column, path] : c.string_map("columns")) {
      if (!s.csv.header) {
        bool number = !column.empty() && column.size() < 6 &&
                      std::all_of(column.begin(), column.end(), ::isdigit) && column != "0" &&
                      column[0] != '0';
        if (!number) {
          throw std::invalid_argument(c.path() +
                                      ".columns: without header, columns are named "
                                      "by their number from 1, not \"" +
                                      column + "\"");
        }
      }
      s.csv.columns.emplace_back(column, path_of("columns", path));
    }
    if (!s.csv.header && s.csv.columns.empty()) {
      throw std::invalid_argument(c.path() + ": without header, columns must be given");
    }
    s.csv.shape = std::move(shape);
  }
  return s;
}

FolderPoller::FolderPoller(FolderSettings settings, std::unique_ptr<FileTransport> transport,
                           const Clock* clock, Metrics* metrics, const std::string& source)
    : settings_(std::move(settings)),
      transport_(std::move(transport)),
      clock_(clock),
      work_dir_(join(settings_.path, ".relais")) {
  if (metrics != nullptr) {
    metrics->describe("relais_folder_files_total", "counter",
                      "Files of a watched folder read through and moved to done/ or error/");
    files_done_ =
        &metrics->counter("relais_folder_files_total", {{"source", source}, {"outcome", "done"}});
    files_error_ =
        &metrics->counter("relais_folder_files_total", {{"source", source}, {"outcome", "error"}});
  }
}

FolderPoller::~FolderPoller() = default;

std::string FolderPoller::in_folder(const std::string& name) const {
  return join(settings_.path, name);
}
std::string FolderPoller::report_path(const std::string& name) const {
  return join(work_dir_, name + kReportSuffix);
}
std::string FolderPoller::journal_path(const std::string& name) const {
  return join(work_dir_, name + ".fin");
}
std::string FolderPoller::report_header() const {
  return settings_.xml ? "enregistrement;statut;résultat;message;motif\n"
                       : "ligne;statut;résultat;message;motif\n";
}

Status FolderPoller::probe() {
  std::vector<FileEntry> entries;
  Status s = transport_->list(settings_.path, entries);
  if (!s.ok) return Status::failure(503, "dossier surveillé inaccessible", s.detail);
  return Status::success();
}

std::vector<FileEntry> FolderPoller::settled(const std::vector<FileEntry>& entries) {
  int64_t now = clock_->now_ms();
  std::map<std::string, Seen> seen;
  std::vector<FileEntry> out;
  for (const auto& e : entries) {
    if (ignored_name(e.name) || fnmatch(settings_.pattern.c_str(), e.name.c_str(), 0) != 0) {
      continue;
    }
    Seen s{e.size, e.mtime_ms, now};
    auto it = seen_.find(e.name);
    if (it != seen_.end() && it->second.size == e.size && it->second.mtime_ms == e.mtime_ms) {
      s.since_ms = it->second.since_ms;
    }
    seen[e.name] = s;
    if (now - s.since_ms >= settings_.settle_ms) out.push_back(e);
  }
  seen_ = std::move(seen);
  std::sort(out.begin(), out.end(), [](const FileEntry& a, const FileEntry& b) {
    return a.mtime_ms != b.mtime_ms ? a.mtime_ms < b.mtime_ms : a.name < b.name;
  });
  return out;
}

Status FolderPoller::poll(const std::string& checkpoint, PollBatch& out) {
  out = PollBatch{};
  std::vector<FileEntry> entries;
  Status s = transport_->list(settings_.path, entries);
  if (!s.ok) return Status::failure(503, "dossier surveillé inaccessible", s.detail);
  if (!(s = transport_->make_dir(work_dir_)).ok) return s;
  bool moved = false;
  if (!(s = complete_journals(moved)).ok) return s;
  if (moved && !(s = transport_->list(settings_.path, entries)).ok) return s;
  std::vector<FileEntry> work;
  if (!(s = transport_->list(work_dir_, work)).ok) return s;

  Checkpoint cp;
  bool have = !checkpoint.empty() && Checkpoint::parse(checkpoint, cp);
  if (!checkpoint.empty() && !have) {
    log_warn(kLog, "checkpoint of folder " + settings_.path + " unreadable: starting afresh");
  }
  if (have) {
    auto e = std::find_if(entries.begin(), entries.end(),
                          [&](const FileEntry& f) { return f.name == cp.name; });
    bool same = e != entries.end() && e->size == cp.size && e->mtime_ms == cp.mtime_ms;
    std::string report_name = cp.name + kReportSuffix;
    bool report = std::any_of(work.begin(), work.end(),
                              [&](const FileEntry& f) { return f.name == report_name; });
    if (same && (!cp.end || report)) {
      if (checkpoint != verified_) {
        bool lagging = false;
        if (!(s = check_report(cp, lagging)).ok) return s;
        if (lagging) return read_batch(cp, true, out);
        verified_ = checkpoint;
      }
      if (!cp.end) return read_batch(cp, false, out);
      if (!(s = finish(cp.name)).ok) return s;
      entries.erase(e);
    } else if (report) {
      if (!(s = abandon(cp)).ok) return s;
    }
  }
  // One file that cannot be read (its rights, a read error) does not hold back the others: it
  // is tried again at each poll, and its failure is the poll's only when no other file was read.
  Status first_failure;
  for (const FileEntry& entry : settled(entries)) {
    bool empty = false;
    s = start_file(entry, out, empty);
    if (!s.ok) {
      log_warn(kLog, "folder " + settings_.path + ": " + entry.name +
                         " cannot be read: " + s.error + " — " + s.detail);
      if (first_failure.ok) first_failure = s;
      out = PollBatch{};
      continue;
    }
    if (!empty) return s;
  }
  return first_failure;
}

Status FolderPoller::hash_file(const FileEntry& entry, std::string& sha) {
  Sha256 h;
  std::string chunk;
  for (int64_t at = 0; at < entry.size; at += int64_t(chunk.size())) {
    size_t want = size_t(std::min<int64_t>(kHashChunk, entry.size - at));
    Status s = transport_->read(in_folder(entry.name), at, want, chunk);
    if (!s.ok) return s;
    if (chunk.empty()) {
      return Status::failure(409, "fichier raccourci pendant sa lecture", entry.name);
    }
    h.update(chunk);
  }
  sha = h.hex();
  return Status::success();
}

Status FolderPoller::scan_lines(const std::string& path,
                                const std::function<void(std::string_view)>& each, bool* whole) {
  std::string buf, chunk;
  int64_t at = 0;
  for (;;) {
    Status s = transport_->read(path, at, 64 * 1024, chunk);
    if (!s.ok) return s;
    if (chunk.empty()) {  // a last line without '\n' is not a row
      if (whole) *whole = buf.empty();
      return Status::success();
    }
    at += int64_t(chunk.size());
    buf += chunk;
    size_t start = 0;
    for (size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1) {
      each(std::string_view(buf).substr(start, nl - start));
    }
    buf.erase(0, start);
  }
}

Status FolderPoller::read_whole(const std::string& path, std::string& out) {
  out.clear();
  std::string chunk;
  for (;;) {
    Status s = transport_->read(path, int64_t(out.size()), kHashChunk, chunk);
    if (!s.ok) return s;
    if (chunk.empty()) return Status::success();
    out += chunk;
  }
}

Status FolderPoller::start_file(const FileEntry& entry, PollBatch& out, bool& empty) {
  Checkpoint cp;
  cp.name = entry.name;
  cp.size = entry.size;
  cp.mtime_ms = entry.mtime_ms;
  Status s = hash_file(entry, cp.sha);
  if (!s.ok) return s;
  // The report starts with its header; rows are appended once their batch is committed.
  if (!(s = transport_->write(report_path(entry.name), report_header(), false)).ok) return s;
  verified_ = "";
  log_info(kLog, "folder " + settings_.path + ": reading " + entry.name + " (" +
                     std::to_string(entry.size) + " bytes)");
  if (entry.size == 0) {
    empty = true;
    return finish(entry.name);
  }
  if (!settings_.xml && settings_.csv.header) {
    if (!(s = csv_header(cp)).ok) return s;
    cp.offset = header_offset_;
    cp.line = header_line_;
  }
  if (!(s = read_batch(cp, false, out)).ok) return s;
  if (out.records.empty()) {  // a header without records
    empty = true;
    return finish(entry.name);
  }
  return s;
}

Status FolderPoller::csv_header(const Checkpoint& cp) {
  std::string key = cp.name + "\n" + cp.sha;
  if (header_key_ == key) return Status::success();
  header_key_.clear();
  header_.clear();
  header_offset_ = 0;
  header_line_ = 1;
  ReadAt read = [&](int64_t at, size_t max, std::string& o) {
    return transport_->read(in_folder(cp.name), at, max, o);
  };
  CsvFormat small = settings_.csv;
  small.chunk = 4096;  // a header is short: no need to read a whole chunk of records
  Status s = read_csv(read, cp.size, small, header_offset_, header_line_, 1, header_);
  if (s.ok) header_key_ = key;
  return s;
}

Status FolderPoller::load_xml(const Checkpoint& cp, std::string& unreadable) {
  unreadable.clear();
  std::string key = cp.name + "\n" + cp.sha;
  if (xml_ && xml_key_ == key) {  // parsed at an earlier poll (the same file)
    if (!xml_->ok()) unreadable = xml_->error();
    return Status::success();
  }
  xml_.reset();
  xml_key_.clear();
  if (cp.size > settings_.max_xml_size) {
    unreadable = "fichier XML trop gros (" + std::to_string(cp.size) + " octets, limite " +
                 std::to_string(settings_.max_xml_size) + ")";
    return Status::success();
  }
  std::string content, utf8;
  Status s = read_whole(in_folder(cp.name), content);
  if (!s.ok) return s;
  if (settings_.encoding != Encoding::Utf8) {
    if (!to_utf8(content, settings_.encoding, utf8)) {
      unreadable =
          std::string("caractères invalides pour l'encodage ") + to_string(settings_.encoding);
      return Status::success();
    }
    content.swap(utf8);
  }
  xml_ = std::make_unique<XmlRecords>(settings_.xml_format, content);
  xml_key_ = key;
  if (!xml_->ok()) unreadable = xml_->error();
  return Status::success();
}

Status FolderPoller::read_batch(const Checkpoint& from, bool replay, PollBatch& out) {
  out = PollBatch{};
  auto ctx = std::make_shared<BatchContext>();
  ctx->name = from.name;
  Checkpoint next = from;
  next.batch_offset = replay ? from.batch_offset : from.offset;
  next.batch_line = replay ? from.batch_line : from.line;
  size_t limit = replay ? size_t(from.batch_count) : settings_.batch;
  auto add = [&](int64_t line, std::string body, std::string unreadable) {
    PolledRecord r;
    r.body = std::move(body);
    r.unreadable = std::move(unreadable);
    r.position = (settings_.xml ? "enregistrement " : "ligne ") + std::to_string(line);
    r.idempotency_key = from.sha + ":" + std::to_string(line);
    ctx->lines.push_back(line);
    ctx->unreadable.push_back(r.unreadable);
    out.records.push_back(std::move(r));
  };
  Status s;
  if (settings_.xml) {
    std::string unreadable;
    if (!(s = load_xml(from, unreadable)).ok) return s;
    bool whole = !unreadable.empty();
    if (whole) {  // the whole document: one unreadable record, the file in error/
      add(1, "", unreadable);
      next.offset = next.line = 1;
    } else {
      auto index = size_t(next.batch_offset);
      size_t stop = std::min(xml_->count(), index + limit);
      for (; index < stop; ++index) {
        std::string body;
        xml_->map(index, body, unreadable);
        add(int64_t(index) + 1, std::move(body), std::move(unreadable));
      }
      next.offset = int64_t(index);
      next.line = next.offset + 1;
    }
    next.end = whole || size_t(next.offset) >= xml_->count();
  } else {
    ReadAt read = [&](int64_t at, size_t max, std::string& o) {
      return transport_->read(in_folder(from.name), at, max, o);
    };
    CsvMapper mapper(settings_.csv);
    std::string reason;
    if (settings_.csv.header) {
      if (!(s = csv_header(from)).ok) return s;
      if (header_.empty() || !mapper.set_header(header_[0], reason)) {
        // Nothing of the file can be read: one unreadable record, the file in error/.
        add(1, "", reason.empty() ? "en-tête absent" : reason);
        next.offset = from.size;
        next.line = 2;
        next.end = true;
      }
    } else {
      mapper.set_header(CsvRow{}, reason);
    }
    if (out.records.empty()) {
      int64_t offset = next.batch_offset, line = next.batch_line;
      std::vector<CsvRow> rows;
      if (!(s = read_csv(read, from.size, settings_.csv, offset, line, limit, rows)).ok) return s;
      for (const CsvRow& row : rows) {
        std::string body, unreadable;
        mapper.map(row, body, unreadable);
        add(row.line, std::move(body), std::move(unreadable));
      }
      next.offset = offset;
      next.line = line;
      next.end = offset >= from.size;
    }
  }
  if (replay) {
    next = from;  // the same batch again: the checkpoint does not move
  } else {
    next.batch_count = int64_t(out.records.size());
    next.last_line = ctx->lines.empty() ? 0 : ctx->lines.back();
  }
  ctx->end = next.end;
  out.checkpoint = next.text();
  out.more = !out.records.empty();
  out.context = ctx;
  if (replay) {
    log_warn(kLog, "folder " + settings_.path + ": the report of " + from.name +
                       " lacks its last batch (relais stopped before writing it): offered again");
  }
  return Status::success();
}

Status FolderPoller::check_report(const Checkpoint& cp, bool& lagging) {
  lagging = false;
  int64_t last = -1;
  std::string kept = report_header();  // the rows before the last batch
  bool whole = true;
  Status s = scan_lines(
      report_path(cp.name),
      [&](std::string_view row) {
        int64_t n = row_number(row);
        if (n < 0) return;
        last = n;
        if (n < cp.batch_line) kept.append(row).append("\n");
      },
      &whole);
  if (!s.ok && s.http_status != 404) return s;
  // Complete when its last row is the batch's last record, whole (a row cut short by a crash
  // is left out by scan_lines, and dropped by the rewrite below).
  if (last == cp.last_line && whole) return Status::success();
  lagging = true;  // the last batch is offered again, its rows written anew
  return transport_->write(report_path(cp.name), kept, false);
}

Status FolderPoller::committed(const PollBatch& batch, bool stored,
                               const std::vector<PolledOutcome>& outcomes) {
  auto ctx = std::static_pointer_cast<BatchContext>(batch.context);
  if (!ctx) return Status::success();  // nothing was read
  if (!stored) {
    verified_.clear();  // the next poll starts again from the previous checkpoint
    return Status::success();
  }
  std::string rows;
  for (size_t i = 0; i < ctx->lines.size(); ++i) {
    PolledOutcome o = i < outcomes.size() ? outcomes[i] : PolledOutcome{503, "", "sans réponse"};
    std::string result, reason;
    if (!ctx->unreadable[i].empty()) {
      result = "illisible";
      reason = ctx->unreadable[i];
      if (o.status == 202 || o.status == 200) o.status = 422;
    } else if (o.status == 202) {
      result = "accepté";
    } else if (o.status == 200) {
      result = "déjà reçu (fichier déjà lu)";
    } else if (o.status == 409) {
      result = "conflit : même clé, autre contenu";
      reason = o.detail.empty() ? o.error : o.error + " : " + o.detail;
    } else {
      result = "refusé";
      reason = o.detail.empty() ? o.error : o.error + " : " + o.detail;
    }
    rows += std::to_string(ctx->lines[i]) + ";" + std::to_string(o.status) + ";" + result + ";" +
            cell(o.id) + ";" + cell(reason) + "\n";
  }
  Status s = transport_->write(report_path(ctx->name), rows, true);
  if (!s.ok) {
    verified_.clear();  // the next poll checks the report and offers the batch again
    return s;
  }
  verified_ = batch.checkpoint;
  return ctx->end ? finish(ctx->name) : Status::success();
}

Status FolderPoller::free_name(const std::string& dir, const std::string& name,
                               std::string& chosen) {
  std::vector<FileEntry> present;
  Status s = transport_->list(dir, present);
  if (!s.ok) return s;
  auto taken = [&](const std::string& n) {
    return std::any_of(present.begin(), present.end(), [&](const FileEntry& f) {
      return f.name == n || f.name == n + kReportSuffix;
    });
  };
  auto dot = name.find('.', 1);
  std::string stem = dot == std::string::npos ? name : name.substr(0, dot);
  std::string ext = dot == std::string::npos ? "" : name.substr(dot);
  chosen = name;
  for (int i = 2; taken(chosen); ++i) chosen = stem + "-" + std::to_string(i) + ext;
  return Status::success();
}

Status FolderPoller::finish(const std::string& name) {
  bool all_taken = true;
  size_t rows = 0;
  Status s = scan_lines(report_path(name), [&](std::string_view row) {
    if (row_number(row) < 0) return;
    ++rows;
    int status = row_status(row);
    if (status != 202 && status != 200) all_taken = false;
  });
  if (!s.ok && s.http_status != 404) return s;
  const std::string& dir = all_taken ? settings_.done_dir : settings_.error_dir;
  if (!(s = transport_->make_dir(dir)).ok) return s;
  std::string chosen;
  if (!(s = free_name(dir, name, chosen)).ok) return s;
  // The journal first: a restart completes the moves it names (complete_journal).
  if (!(s = transport_->write(journal_path(name), join(dir, chosen) + "\n", false)).ok) return s;
  log_info(kLog, "folder " + settings_.path + ": " + name + " read (" + std::to_string(rows) +
                     " records), moved to " + join(dir, chosen));
  return complete_journal(name);
}

Status FolderPoller::complete_journal(const std::string& name) {
  std::string target;
  Status s = read_whole(journal_path(name), target);
  if (!s.ok) return s;
  while (!target.empty() && target.back() == '\n') target.pop_back();
  for (auto [from, to] :
       {std::pair{in_folder(name), target}, std::pair{report_path(name), target + kReportSuffix}}) {
    s = transport_->move(from, to);
    if (s.ok && to == target) {  // the file itself moved: counted once, done or error
      Counter* files = target.rfind(settings_.done_dir + "/", 0) == 0 ? files_done_ : files_error_;
      if (files != nullptr) files->inc();
    }
    if (!s.ok && s.http_status != 404) {
      // Gone already (an earlier attempt moved it) is done; anything else waits for next time.
      std::string probe;
      Status gone = transport_->read(from, 0, 1, probe);
      if (gone.ok || gone.http_status != 404) return s;
    }
  }
  return transport_->remove(journal_path(name));
}

Status FolderPoller::complete_journals(bool& moved) {
  std::vector<FileEntry> work;
  Status s = transport_->list(work_dir_, work);
  if (!s.ok) return s;
  for (const auto& f : work) {
    if (ends_with(f.name, ".fin")) {
      moved = true;
      if (!(s = complete_journal(f.name.substr(0, f.name.size() - 4))).ok) return s;
    }
  }
  return Status::success();
}

Status FolderPoller::abandon(const Checkpoint& cp) {
  log_warn(kLog, "folder " + settings_.path + ": " + cp.name +
                     " was removed or changed before it was read through; its report goes to " +
                     settings_.error_dir);
  std::string row = std::to_string(cp.end ? cp.last_line : cp.line) +
                    ";0;abandonné;;fichier retiré ou modifié avant la fin de sa lecture\n";
  Status s = transport_->write(report_path(cp.name), row, true);
  if (!s.ok) return s;
  if (!(s = transport_->make_dir(settings_.error_dir)).ok) return s;
  std::string chosen;
  if (!(s = free_name(settings_.error_dir, cp.name, chosen)).ok) return s;
  return transport_->move(report_path(cp.name), join(settings_.error_dir, chosen + kReportSuffix));
}

}  // namespace file

const ConfigSpec& folder_poller_spec() {
  using F = FieldType;
  static const ConfigSpec spec{
      "folder",
      {
          {"path", F::String, "", true,
           "the watched folder (relative paths from the configuration file's folder)"},
          {"pattern", F::String, "*", false,
           "names read (glob, e.g. `*.csv`); names starting with `.` or ending `.tmp`, `.part` "
           "are never read"},
          {"format", F::String, "csv", false, "csv or xml", {"csv", "xml"}},
          {"encoding",
           F::String,
           "utf-8",
           false,
           "the files' encoding, converted to UTF-8",
           {"utf-8", "windows-1252", "iso-8859-1"}},
          {"delimiter", F::String, ";", false, "csv: the field delimiter (one character; `\\t`)"},
          {"quote", F::String, "\"", false, "csv: the quote character"},
          {"header", F::Bool, "true", false,
           "csv: the first line names the columns (without it, `columns` are numbered from 1)"},
          {"columns", F::StringMap, "", false,
           "csv: column (header name, or number) → path in the message (`N° demande: "
           "demande.numero`; dotted paths build nested objects). Empty: every column under its "
           "header name"},
          {"record", F::String, "", false,
           "xml: XPath of the repeated element, one message each (local names: namespace "
           "prefixes are ignored)"},
          {"fields", F::StringMap, "", false,
           "xml: path in the message → XPath relative to the record (`demande.numero: "
           "numero`, `aide.code: @code`)"},
          {"constants", F::StringMap, "", false,
           "path in the message → constant text added to every record (`event: "
           "genesis.aide.accordee`)"},
          {"required", F::StringList, "", false,
           "paths that must hold a non-empty value: a record without one is unreadable "
           "(reported, the file goes to error/)"},
          {"batch",
           F::Int,
           "1000",
           false,
           "records per poll (one transaction of the store)",
           {},
           nullptr,
           1,
           100000},
          {"settle", F::Duration, "5s", false,
           "a file is read once its size and modification time have not changed for this long"},
          {"done", F::String, "done", false,
           "where a file read without a refused record goes, with its report (relative to "
           "path)"},
          {"error", F::String, "error", false,
           "where a file with an unreadable or refused record goes, with its report (relative "
           "to path)"},
          {"max_xml_size", F::Size, "64MiB", false,
           "xml: larger files are not read (an XML file is parsed whole)"},
      }};
  return spec;
}

void register_folder_poller(PollerRegistry& registry) {
  PollerKind k;
  k.name = "folder";
  k.description =
      "a watched folder of CSV or XML exports: each record a message, the file moved to done/ "
      "or error/ with a per-line report";
  k.spec = &folder_poller_spec();
  k.check = [](const ConfigView& c, const std::string& file, std::vector<ConfigError>& errors) {
    try {
      file::folder_settings(c, "/");
    } catch (const std::invalid_argument& e) {
      errors.push_back(error_at(c.node(), file, c.path(), e.what()));
    }
  };
  k.create = [](const PollerContext& ctx) -> std::unique_ptr<Poller> {
    static const SystemClock system_clock;
    return std::make_unique<file::FolderPoller>(
        file::folder_settings(ctx.config, ctx.base_dir), file::local_transport(),
        ctx.clock ? ctx.clock : &system_clock, ctx.metrics, ctx.name);
  };
  registry.add(std::move(k));
}

}  // namespace relais

#include "routing/mapping_repository.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/files.h"
#include "core/log.h"
#include "core/thread_name.h"

namespace relais {
namespace fs = std::filesystem;

namespace {
std::string read_file(const fs::path& p) {
  std::string text;
  read_text_file(p.string(), text);  // an unreadable file reads as empty: it will not compile
  return text;
}
DocumentVersion make_doc(const std::string& kind, const std::string& name,
                         const std::string& format, const std::string& content,
                         const std::string& author, const std::string& comment) {
  DocumentVersion d;
  d.kind = kind;
  d.name = name;
  d.format = format;
  d.content = content;
  d.author = author;
  d.comment = comment;
  return d;
}
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

MappingRepository::MappingRepository(DocumentStore& docs, const Clock& clock)
    : docs_(docs), clock_(clock) {
  init_snapshot();
}

void MappingRepository::init_snapshot() {
  auto s = std::make_shared<Snapshot>();
  s->tables = mappings::TableSet::empty();
  snap_ = s;
}

MappingRepository::MappingRepository(std::unique_ptr<DocumentStore> docs, const Clock& clock)
    : owned_docs_(std::move(docs)), docs_(*owned_docs_), clock_(clock) {
  init_snapshot();
}

MappingRepository::~MappingRepository() {
  if (bus_ != nullptr) bus_->unsubscribe(subscription_);
  {
    std::lock_guard<std::mutex> lock(watch_mu_);
    stop_watch_ = true;
  }
  watch_cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

std::shared_ptr<const MappingRepository::Snapshot> MappingRepository::snapshot() const {
  std::lock_guard<std::mutex> lock(snap_mu_);
  return snap_;
}

std::map<std::string, std::pair<std::string, std::string>> MappingRepository::active_table_docs()
    const {
  std::map<std::string, std::pair<std::string, std::string>> out;
  for (const auto& d : docs_.active("table")) out[d.name] = {d.format, d.content};
  return out;
}

bool MappingRepository::reload(std::vector<std::string>& errors) {
  std::vector<PublishedTable> changed;
  bool ok = false;
  {
    std::lock_guard<std::mutex> lock(publish_mu_);
    ok = reload_locked(errors);
    // The tables whose active version changed since the last load (published elsewhere: the
    // CLI, another node); none at the first load.
    if (ok) {
      auto tables = snapshot()->tables;
      std::map<std::string, int64_t> now;
      for (const auto& d : docs_.active("table")) {
        now[d.name] = d.version;
        auto known = table_versions_.find(d.name);
        if (tables_loaded_ && (known == table_versions_.end() || known->second != d.version)) {
          changed.push_back({d.name, d.version, tables->rows(d.name)});
        }
      }
      table_versions_ = std::move(now);
      tables_loaded_ = true;
    }
  }
  for (const auto& t : changed) announce(t);
  return ok;
}

void MappingRepository::announce(const PublishedTable& table) {
  TableListener listener;
  {
    std::lock_guard<std::mutex> l(listener_mu_);
    listener = table_listener_;
  }
  if (listener) listener(table);
}

bool MappingRepository::reload_locked(std::vector<std::string>& errors) {
  int64_t gen = docs_.generation();
  std::vector<mappings::Diagnostic> diags;
  auto next = std::make_shared<Snapshot>();
  next->tables = mappings::TableSet::from_documents(active_table_docs(), diags);
  for (const auto& doc : docs_.active("mapping")) {
    auto compiled = mappings::compile(doc.content, doc.name + " v" + std::to_string(doc.version),
                                      next->tables, diags);
    if (compiled) next->mappings[doc.name] = Entry{doc.version, compiled};
  }
  if (!diags.empty()) {
    for (const auto& d : diags) errors.push_back(mappings::to_string(d));
    return false;
  }
  {
    std::lock_guard<std::mutex> l(snap_mu_);
    snap_ = next;
  }
  generation_ = gen;
  return true;
}

bool MappingRepository::knows(const std::string& mapping) const {
  return snapshot()->mappings.count(mapping) > 0;
}

nlohmann::json MappingRepository::meta_of(const Message& m) {
  return {{"id", m.id},
          {"source", m.source},
          {"type", m.type},
          {"correlation_key", m.correlation},
          {"received_at", format_rfc3339(m.received_at)}};
}

MappedPayload MappingRepository::map(const std::string& mapping, const Message& message,
                                     const nlohmann::json& body) const {
  MappedPayload out;
  auto snap = snapshot();
  auto it = snap->mappings.find(mapping);
  if (it == snap->mappings.end()) {
    out.kind = MappedPayload::Kind::Error;
    out.reason = "mapping '" + mapping + "' is not active";
    return out;
  }
  out.version = it->second.version;
  mappings::MapResult r = it->second.compiled->apply(body, meta_of(message));
  switch (r.kind) {
    case mappings::MapResult::Kind::Ok:
      out.kind = MappedPayload::Kind::Ok;
      out.text = std::move(r.text);
      out.json = std::move(r.value);
      out.content_type = std::move(r.content_type);
      break;
    case mappings::MapResult::Kind::Skip:
      out.kind = MappedPayload::Kind::Skip;
      out.reason = std::move(r.reason);
      break;
    case mappings::MapResult::Kind::Error:
      out.kind = MappedPayload::Kind::Error;
      out.reason = std::move(r.reason);
      break;
  }
  return out;
}

std::shared_ptr<const mappings::CompiledMapping> MappingRepository::compile(
    const std::string& name, const std::string& text, std::vector<mappings::Diagnostic>& d) const {
  return mappings::compile(text, name, snapshot()->tables, d);
}

std::shared_ptr<const mappings::CompiledMapping> MappingRepository::compiled_version(
    const std::string& name, int64_t version, int64_t* resolved,
    std::vector<mappings::Diagnostic>& d) const {
  auto snap = snapshot();
  if (version == 0) {
    auto it = snap->mappings.find(name);
    if (it != snap->mappings.end()) {
      if (resolved) *resolved = it->second.version;
      return it->second.compiled;
    }
  }
  auto doc = docs_.get("mapping", name, version);
  if (!doc) {
    d.push_back({name, 0, 0,
                 version == 0
                     ? "no active version of mapping '" + name + "'"
                     : "mapping '" + name + "' has no version " + std::to_string(version)});
    return nullptr;
  }
  if (resolved) *resolved = doc->version;
  return mappings::compile(doc->content, name + " v" + std::to_string(doc->version), snap->tables,
                           d);
}

MappingCheck MappingRepository::add_version(const std::string& name, const std::string& text,
                                            const std::string& author, const std::string& comment,
                                            bool activate) {
  MappingCheck out;
  std::lock_guard<std::mutex> lock(publish_mu_);
  auto snap = snapshot();
  auto compiled = mappings::compile(text, name, snap->tables, out.diagnostics);
  if (!compiled) {
    out.ok = false;
    return out;
  }
  if (compiled->name() != name) {
    out.ok = false;
    out.diagnostics.push_back(
        {name, 1, 1, "the document says name: " + compiled->name() + ", expected " + name});
    return out;
  }
  out.version = docs_.add(make_doc("mapping", name, "yaml", text, author, comment), activate);
  if (activate) {
    auto next = std::make_shared<Snapshot>(*snap);
    next->mappings[name] = Entry{out.version, compiled};
    std::lock_guard<std::mutex> l(snap_mu_);
    snap_ = next;
    generation_ = docs_.generation();
    log_info("mappings",
             "mapping " + name + " v" + std::to_string(out.version) + " published by " + author);
    tell_other_nodes();
  }
  return out;
}

Status MappingRepository::activate(const std::string& name, int64_t version, const std::string& by,
                                   const std::string& comment) {
  std::lock_guard<std::mutex> lock(publish_mu_);
  auto snap = snapshot();
  auto doc = docs_.get("mapping", name, version);
  if (!doc) {
    return Status::failure(404, "not found",
                           "mapping '" + name + "' has no version " + std::to_string(version));
  }
  std::vector<mappings::Diagnostic> diags;
  auto compiled =
      mappings::compile(doc->content, name + " v" + std::to_string(version), snap->tables, diags);
  if (!compiled) {
    std::string detail;
    for (const auto& d : diags) detail += mappings::to_string(d) + "\n";
    return Status::failure(422, "does not compile", detail);
  }
  Status s = docs_.activate("mapping", name, version, by, comment);
  if (!s.ok) return s;
  auto next = std::make_shared<Snapshot>(*snap);
  next->mappings[name] = Entry{version, compiled};
  {
    std::lock_guard<std::mutex> l(snap_mu_);
    snap_ = next;
  }
  generation_ = docs_.generation();
  log_info("mappings", "mapping " + name + " v" + std::to_string(version) + " activated by " + by);
  tell_other_nodes();
  return Status::success();
}

MappingCheck MappingRepository::add_table_version(const std::string& name,
                                                  const std::string& format,
                                                  const std::string& text,
                                                  const std::string& author,
                                                  const std::string& comment) {
  MappingCheck out;
  PublishedTable published;
  {
    std::lock_guard<std::mutex> lock(publish_mu_);
    auto docs = active_table_docs();
    docs[name] = {format, text};
    auto tables = mappings::TableSet::from_documents(docs, out.diagnostics);
    auto next = std::make_shared<Snapshot>();
    next->tables = tables;
    for (const auto& doc : docs_.active("mapping")) {
      auto compiled = mappings::compile(doc.content, doc.name + " v" + std::to_string(doc.version),
                                        tables, out.diagnostics);
      if (compiled) next->mappings[doc.name] = Entry{doc.version, compiled};
    }
    if (!out.diagnostics.empty()) {
      out.ok = false;
      return out;
    }
    out.version = docs_.add(make_doc("table", name, format, text, author, comment), true);
    {
      std::lock_guard<std::mutex> l(snap_mu_);
      snap_ = next;
    }
    generation_ = docs_.generation();
    table_versions_[name] = out.version;
    published = {name, out.version, tables->rows(name)};
  }
  tell_other_nodes();
  announce(published);
  return out;
}

void MappingRepository::on_table_published(TableListener listener) {
  std::lock_guard<std::mutex> l(listener_mu_);
  table_listener_ = std::move(listener);
}

ImportReport MappingRepository::import_dirs(const std::string& mappings_dir,
                                            const std::string& tables_dir,
                                            const std::string& author, const std::string& comment) {
  ImportReport report;
  std::lock_guard<std::mutex> lock(publish_mu_);
  std::vector<mappings::Diagnostic> diags;
  // Tables: the files win over the active versions where they differ.
  auto table_docs = active_table_docs();
  std::map<std::string, std::pair<std::string, std::string>> changed_tables;
  if (!tables_dir.empty() && fs::is_directory(tables_dir)) {
    for (const auto& e : fs::directory_iterator(tables_dir)) {
      std::string ext = e.path().extension().string();
      if (!e.is_regular_file() || (ext != ".csv" && ext != ".yaml" && ext != ".yml")) continue;
      std::string name = e.path().stem().string();
      std::string format = ext == ".csv" ? "csv" : "yaml";
      std::string text = read_file(e.path());
      auto it = table_docs.find(name);
      if (it != table_docs.end() && it->second.second == text) {
        report.unchanged.push_back("table " + name);
        continue;
      }
      table_docs[name] = {format, text};
      changed_tables[name] = {format, text};
    }
  }
  auto tables = mappings::TableSet::from_documents(table_docs, diags);
  // Mappings.
  std::map<std::string, std::string> current;
  for (const auto& d : docs_.active("mapping")) current[d.name] = d.content;
  std::map<std::string, std::string> changed_mappings;
  std::map<std::string, std::shared_ptr<const mappings::CompiledMapping>> compiled;
  if (!mappings_dir.empty() && fs::is_directory(mappings_dir)) {
    for (const auto& e : fs::directory_iterator(mappings_dir)) {
      std::string file = e.path().filename().string();
      if (!e.is_regular_file() || ends_with(file, ".test.yaml") ||
          (!ends_with(file, ".yaml") && !ends_with(file, ".yml"))) {
        continue;
      }
      std::string name = e.path().stem().string();
      std::string text = read_file(e.path());
      auto c = mappings::compile(text, e.path().string(), tables, diags);
      if (!c) continue;
      if (c->name() != name) {
        diags.push_back({e.path().string(), 1, 1,
                         "the file is named " + name + " but its mapping is " + c->name()});
        continue;
      }
      compiled[name] = c;
      if (current.count(name) && current[name] == text) {
        report.unchanged.push_back("mapping " + name);
      } else {
        changed_mappings[name] = text;
      }
    }
  }
  // Active mappings that are not in the folder must still compile against the new tables.
  for (const auto& [name, text] : current) {
    if (compiled.count(name)) continue;
    mappings::compile(text, name, tables, diags);
  }
  if (!diags.empty()) {
    report.ok = false;
    for (const auto& d : diags) report.errors.push_back(mappings::to_string(d));
    return report;
  }
  for (const auto& [name, doc] : changed_tables) {
    auto v = docs_.add(make_doc("table", name, doc.first, doc.second, author, comment), true);
    report.published.push_back("table " + name + " v" + std::to_string(v));
  }
  for (const auto& [name, text] : changed_mappings) {
    auto v = docs_.add(make_doc("mapping", name, "yaml", text, author, comment), true);
    report.published.push_back("mapping " + name + " v" + std::to_string(v));
  }
  std::vector<std::string> errors;
  if (!reload_locked(errors)) {
    report.ok = false;
    report.errors.insert(report.errors.end(), errors.begin(), errors.end());
  }
  if (!report.published.empty()) tell_other_nodes();
  return report;
}

std::map<std::string, int64_t> MappingRepository::active_versions() const {
  std::map<std::string, int64_t> out;
  for (const auto& [name, e] : snapshot()->mappings) out[name] = e.version;
  return out;
}

void MappingRepository::tell_other_nodes() {
  if (bus_ != nullptr) bus_->publish(ChangeBus::kMappings);
}

void MappingRepository::notify_through(ChangeBus& bus) {
  bus_ = &bus;
  subscription_ = bus.subscribe([this](const std::string& topic) {
    if (topic != ChangeBus::kMappings && topic != ChangeBus::kAll) return;
    {
      std::lock_guard<std::mutex> lock(watch_mu_);
      changed_ = true;
    }
    watch_cv_.notify_all();
  });
}

void MappingRepository::watch(int interval_ms) {
  if (watcher_.joinable()) return;
  watcher_ = std::thread([this, interval_ms] {
    set_thread_name("mappings");
    std::unique_lock<std::mutex> lock(watch_mu_);
    while (!stop_watch_) {
      watch_cv_.wait_for(lock, std::chrono::milliseconds(interval_ms),
                         [this] { return stop_watch_ || changed_; });
      changed_ = false;
      if (stop_watch_) break;
      lock.unlock();
      try {
        int64_t gen = docs_.generation();
        if (gen != generation_.load()) {
          std::vector<std::string> errors;
          if (reload(errors)) {
            log_info("mappings", "reloaded mappings after a change made elsewhere");
          } else {
            log_error("mappings",
                      "a change made elsewhere does not compile; keeping the "
                      "current versions (" +
                          std::to_string(errors.size()) + " error(s))");
            generation_ = gen;
          }
        }
      } catch (const std::exception& e) {
        log_error("mappings", std::string("cannot check for mapping changes: ") + e.what());
      }
      lock.lock();
    }
  });
}

}  // namespace relais

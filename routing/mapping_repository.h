#pragma once
// MappingRepository: the versioned mappings and lookup tables a running hub uses. Documents live
// in the DocumentStore; the active versions are compiled and held in memory as one immutable
// snapshot that is swapped atomically when an admin publishes or rolls back, so workers pick
// up the change without a restart and every delivery uses one consistent version.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/connector.h"
#include "core/document_store.h"
#include "mappings/mapping.h"
#include "routing/mapping_stage.h"

namespace relais {

struct MappingCheck {
  bool ok = true;
  int64_t version = 0;
  std::vector<mappings::Diagnostic> diagnostics;
};

struct ImportReport {
  bool ok = true;
  std::vector<std::string> published;  // "name vN"
  std::vector<std::string> unchanged;
  std::vector<std::string> errors;  // file:line:col: message
};

// Thread-safe: map()/knows() run concurrently on worker threads; publishing and reloading take
// an internal mutex and swap the snapshot. Does not own the DocumentStore (must outlive it).
class MappingRepository final : public MappingStage {
 public:
  MappingRepository(DocumentStore& docs, const Clock& clock);
  // Same, owning the document store.
  MappingRepository(std::unique_ptr<DocumentStore> docs, const Clock& clock);
  ~MappingRepository() override;

  // Compiles the active versions from the store. On failure keeps the previous snapshot and
  // returns the errors.
  bool reload(std::vector<std::string>& errors);

  bool knows(const std::string& mapping) const override;
  MappedPayload map(const std::string& mapping, const Message& message,
                    const nlohmann::json& body) const override;

  // Compiles a candidate text for `name` against the active tables (nothing is stored).
  std::shared_ptr<const mappings::CompiledMapping> compile(
      const std::string& name, const std::string& text, std::vector<mappings::Diagnostic>& d) const;
  // A stored version compiled (0 = active). nullptr with diagnostics when it does not compile
  // or does not exist.
  std::shared_ptr<const mappings::CompiledMapping> compiled_version(
      const std::string& name, int64_t version, int64_t* resolved,
      std::vector<mappings::Diagnostic>& d) const;
  // Stores a new version after compiling it; activates it when asked. Refused (nothing stored)
  // with diagnostics when it does not compile.
  MappingCheck add_version(const std::string& name, const std::string& text,
                           const std::string& author, const std::string& comment, bool activate);
  // Publishes or rolls back: activates an existing version (compiled first).
  Status activate(const std::string& name, int64_t version, const std::string& by,
                  const std::string& comment);
  // Stores a new lookup-table version; every active mapping must still compile against it.
  // Once committed, the table listener (on_table_published) hears it, on this thread.
  MappingCheck add_table_version(const std::string& name, const std::string& format,
                                 const std::string& text, const std::string& author,
                                 const std::string& comment);
  // Imports mapping files (*.yaml, not *.test.yaml) and tables (*.csv, *.yaml) whose content
  // differs from the active version; all-or-nothing when anything fails to compile.
  ImportReport import_dirs(const std::string& mappings_dir, const std::string& tables_dir,
                           const std::string& author, const std::string& comment);
  // Names of the active mappings with their versions.
  std::map<std::string, int64_t> active_versions() const;
  static nlohmann::json meta_of(const Message& m);

  // Polls the store every interval_ms for activations made by another process (CLI, another
  // node) and reloads. Stopped by the destructor.
  void watch(int interval_ms);

  DocumentStore& documents() { return docs_; }

  // Who hears of a table published, after its commit, outside the publishing lock (the hub: it
  // tells every connector): through add_table_version on the publisher's thread, or found by
  // reload() (the watcher: a version published by another process) on the reloading thread.
  // Not at the first load. One listener; set once at start-up, before the API serves.
  using TableListener = std::function<void(const PublishedTable&)>;
  void on_table_published(TableListener listener);

 private:
  struct Entry {
    int64_t version = 0;
    std::shared_ptr<const mappings::CompiledMapping> compiled;
  };
  struct Snapshot {
    std::shared_ptr<const mappings::TableSet> tables;
    std::map<std::string, Entry> mappings;
  };
  std::shared_ptr<const Snapshot> snapshot() const;
  void init_snapshot();
  bool reload_locked(std::vector<std::string>& errors);
  std::map<std::string, std::pair<std::string, std::string>> active_table_docs() const;

  std::unique_ptr<DocumentStore> owned_docs_;
  DocumentStore& docs_;
  const Clock& clock_;
  mutable std::mutex snap_mu_;
  std::shared_ptr<const Snapshot> snap_;
  std::mutex publish_mu_;                      // serialises publishing and reloading
  void announce(const PublishedTable& table);  // to the listener, if any
  std::mutex listener_mu_;
  TableListener table_listener_;  // guarded by listener_mu_
  // The active table versions last loaded or published (guarded by publish_mu_).
  std::map<std::string, int64_t> table_versions_;
  bool tables_loaded_ = false;
  std::atomic<int64_t> generation_{-1};
  std::thread watcher_;
  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool stop_watch_ = false;
};

}  // namespace relais

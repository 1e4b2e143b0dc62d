#pragma once
// The watched folder: a polling source (core/poller.h) of kind `folder` that turns the records
// of the CSV or XML files dropped in a folder into messages — the first half of the `file`
// connector (issue 14 adds SFTP behind file_transport.h, and the destination).
//
// A file is taken when it has settled (same size and modification time for `settle`), oldest
// first, one at a time, `batch` records per poll. The checkpoint (its own text, committed by the
// hub with the batch's messages) names the file, its size, modification time and SHA-256, and
// the position of the next record, so that a crash resumes mid-file without offering a record
// twice; each record's idempotency key is `<sha256>:<line>`, so the same file dropped again is
// recognised (200 duplicates, "fichier déjà lu" in its report). While a file is read, its
// per-line report grows in `<path>/.relais/<name>.rapport.csv`, appended after each committed
// batch; when the last batch is committed the file and its report move to `done/` (every record
// taken) or `error/`, through a journal (`.relais/<name>.fin`) that a restart completes.
// docs/connectors/files.md describes the whole behaviour, crashes included.
//
// poll() and committed() run on the hub's thread of this source only; probe() may run on an API
// thread at the same time (it only lists the folder). Owns its transport. Never throws after
// construction.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "connectors/file/file_transport.h"
#include "connectors/file/record_reader.h"
#include "core/poller.h"

namespace relais {

namespace file {

// The settings of one watched folder, read from its `poll:` block.
struct FolderSettings {
  std::string path;  // absolute
  std::string pattern = "*";
  std::string done_dir;   // absolute
  std::string error_dir;  // absolute
  bool xml = false;
  CsvFormat csv;
  XmlFormat xml_format;
  Encoding encoding = Encoding::Utf8;
  size_t batch = 1000;
  int64_t settle_ms = 5000;
  int64_t max_xml_size = 64 << 20;
};

// Reads and checks the block (throws std::invalid_argument naming the key at fault).
FolderSettings folder_settings(const ConfigView& config, const std::string& base_dir);

class FolderPoller final : public Poller {
 public:
  // `metrics` (optional) gets relais_folder_files_total{source, outcome="done"|"error"}.
  FolderPoller(FolderSettings settings, std::unique_ptr<FileTransport> transport,
               const Clock* clock, Metrics* metrics = nullptr, const std::string& source = "");
  ~FolderPoller() override;

  Status poll(const std::string& checkpoint, PollBatch& out) override;
  Status committed(const PollBatch& batch, bool stored,
                   const std::vector<PolledOutcome>& outcomes) override;
  Status probe() override;

  const FolderSettings& settings() const { return settings_; }

 private:
  struct Checkpoint;
  struct Seen {
    int64_t size = 0;
    int64_t mtime_ms = 0;
    int64_t since_ms = 0;
  };

  Status read_batch(const Checkpoint& cp, bool replay, PollBatch& out);
  Status start_file(const FileEntry& entry, PollBatch& out, bool& empty);
  Status hash_file(const FileEntry& entry, std::string& sha);
  Status load_xml(const Checkpoint& cp, std::string& unreadable);
  Status csv_header(const Checkpoint& cp);
  Status check_report(const Checkpoint& cp, bool& lagging);
  Status finish(const std::string& name);
  Status complete_journal(const std::string& name);
  Status complete_journals(bool& moved);
  Status abandon(const Checkpoint& cp);
  Status free_name(const std::string& dir, const std::string& name, std::string& chosen);
  Status read_whole(const std::string& path, std::string& out);
  // Calls `each` with every whole line of `path` (without its '\n'), reading 64 KiB at a time;
  // `whole` (optional): false when the file ends with a line cut short.
  Status scan_lines(const std::string& path, const std::function<void(std::string_view)>& each,
                    bool* whole = nullptr);
  std::vector<FileEntry> settled(const std::vector<FileEntry>& entries);

  std::string in_folder(const std::string& name) const;
  std::string report_path(const std::string& name) const;
  std::string journal_path(const std::string& name) const;
  std::string report_header() const;

  FolderSettings settings_;
  std::unique_ptr<FileTransport> transport_;
  const Clock* clock_;
  std::string work_dir_;           // <path>/.relais
  Counter* files_done_ = nullptr;  // owned by the Metrics given (outlives the poller)
  Counter* files_error_ = nullptr;
  std::map<std::string, Seen> seen_;
  std::string verified_;  // the checkpoint whose report is known complete
  std::string xml_key_;   // name + SHA-256 of the document in xml_
  std::unique_ptr<XmlRecords> xml_;
  std::string header_key_;  // name + SHA-256 of the file whose header is in header_
  std::vector<CsvRow> header_;
  int64_t header_offset_ = 0;  // where its records start
  int64_t header_line_ = 1;
};

}  // namespace file

// Registers the `folder` kind (connectors/registry.cpp).
void register_folder_poller(PollerRegistry& registry);
const ConfigSpec& folder_poller_spec();

}  // namespace relais

#pragma once
// The seam between the watched folder and where its files live: list, read, move, write. The
// local folder is the first transport; SFTP (issue 14) adds another behind the same interface,
// without touching the readers (record_reader.h) nor the poller's bookkeeping
// (folder_poller.h). Every path is absolute on the transport's side ("/srv/exports/a.csv").
//
// A transport's calls are made from the poller's thread, except list(), which probe() may call
// from an API thread at the same time: list() must be safe alongside any other call (the local
// transport holds no state; an SFTP transport lists through a session of its own). Failures are
// Status values with a French reason naming the path and the system's cause (never a file's
// content).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace relais::file {

struct FileEntry {
  std::string name;      // name inside the folder listed
  int64_t size = 0;      // bytes
  int64_t mtime_ms = 0;  // last modification (the transport's clock)
};

class FileTransport {
 public:
  virtual ~FileTransport() = default;
  // The regular files of `dir` (not its sub-folders). A folder that does not exist or cannot be
  // read is a failure.
  virtual Status list(const std::string& dir, std::vector<FileEntry>& out) = 0;
  // At most `max` bytes of `path` from `offset` (fewer at its end; none past it). A missing
  // file is a failure with http_status 404.
  virtual Status read(const std::string& path, int64_t offset, size_t max, std::string& out) = 0;
  // Renames `from` to `to` (same file system: atomic), durably (both folders synced). Never
  // replaces: when `to` exists the call fails with http_status 409 and nothing moves.
  virtual Status move(const std::string& from, const std::string& to) = 0;
  // Writes `data` to `path`: appended (the file created when missing) or replacing its content;
  // durable when the call returns (file and folder synced).
  virtual Status write(const std::string& path, const std::string& data, bool append) = 0;
  // Removes `path`; a missing file is a success.
  virtual Status remove(const std::string& path) = 0;
  // Creates `dir` (and its parents) when missing.
  virtual Status make_dir(const std::string& dir) = 0;
};

// The local file system (POSIX calls; rename without replacing through renameat2
// RENAME_NOREPLACE, or link + unlink where the file system lacks it).
std::unique_ptr<FileTransport> local_transport();

}  // namespace relais::file

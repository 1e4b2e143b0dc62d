#pragma once
// A SQLite VFS shim for storage-fault tests: registered as the process's default VFS, it wraps
// the real one and, when asked, makes fsync fail (SQLITE_IOERR_FSYNC) or writes fail as a full
// disk (SQLITE_FULL). Every connection opened after install() goes through it (Poco opens with
// the default VFS). Thread-safe: the switches are atomics; install() is idempotent.

#include <atomic>

namespace relais::testing {

struct StorageFaults {
  std::atomic<bool> fail_sync{false};   // xSync answers SQLITE_IOERR_FSYNC
  std::atomic<bool> fail_write{false};  // xWrite answers SQLITE_FULL
  std::atomic<int> syncs_failed{0};
  std::atomic<int> writes_failed{0};

  void clear() {
    fail_sync = false;
    fail_write = false;
  }
};

// Installs the shim as the default VFS (once per process) and returns its switches.
StorageFaults& install_fault_vfs();

}  // namespace relais::testing

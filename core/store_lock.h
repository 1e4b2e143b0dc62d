#pragma once
// "A relais server holds this store": an advisory lock (flock) on a file next to the store,
// STORE.lock. `relais serve` holds it exclusively for its whole life and writes its pid and,
// once its port is bound, its API URL into it; the sub-commands that would write the store
// directly take it shared for their run, so they never write behind a running server, and a
// server never starts behind them. The kernel releases the lock when the process dies
// (kill -9 included), so a crash never leaves a stale lock; the file itself stays.

#include <chrono>
#include <memory>
#include <string>

namespace relais {

// Who holds a store, as far as the lock file tells.
struct StoreHolder {
  bool held = false;  // a server holds the exclusive lock
  long pid = 0;       // its pid (0 when unknown)
  std::string url;    // its API base URL (empty until it listens, or when unknown)
};

// One lock on STORE.lock. Owns the file descriptor: the destructor releases the lock.
// Not thread-safe (one owner); the lock belongs to the process (flock), not to a thread.
class StoreLock {
 public:
  ~StoreLock();
  StoreLock(const StoreLock&) = delete;
  StoreLock& operator=(const StoreLock&) = delete;

  // For `relais serve`: the exclusive lock, waiting up to `wait` for commands that hold it
  // shared. Writes the pid into the file. Throws std::runtime_error naming the holder when
  // another server holds it (or the file cannot be created).
  static std::unique_ptr<StoreLock> exclusive(const std::string& store_path,
                                              std::chrono::milliseconds wait);
  // For a command that writes the store directly: the shared lock, or nullptr when a server
  // holds it (then `holder` says which). Throws when the lock file cannot be opened.
  static std::unique_ptr<StoreLock> shared(const std::string& store_path, StoreHolder& holder);

  // Exclusive holder only: records the API URL next to the pid (for the commands that go
  // through the API of the running server).
  void publish_url(const std::string& url);

  static std::string lock_path(const std::string& store_path) { return store_path + ".lock"; }

 private:
  explicit StoreLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace relais

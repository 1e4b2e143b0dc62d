#pragma once
// A throwaway redis-server for the tests: a child process on a free loopback port in a
// temporary directory, with or without persistence (appendonly), stopped and started again on
// the same port and directory mid-test (what it persisted comes back). Fails — never skips —
// when redis-server is missing (scripts/install-deps.sh installs it). Not thread-safe; owns the
// process and the directory: the destructor stops the server (SIGTERM, then SIGKILL) and reaps it.

#include <sys/types.h>

#include <string>

#include "tests/support/relais_process.h"

namespace relais::testing {

class RedisServer {
 public:
  // `persistent`: appendonly yes (fsync every second) — a restart keeps the data; else nothing
  // is written to disk.
  explicit RedisServer(bool persistent = false);
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Starts it (on a new free port the first time, the same port afterwards) and waits until it
  // answers PING. Returns "" on success, or why it could not start.
  std::string start();
  // SIGTERM (redis-server saves what it persists on the way out), then SIGKILL after 2 s.
  void stop();
  bool running() const { return pid_ > 0; }

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string uri() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }
  // Whether a fresh connection gets PONG.
  bool ping() const;

 private:
  bool exited();
  std::string spawn();
  TempDir dir_;
  bool persistent_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace relais::testing

#pragma once
// A real OpenSSH server for the SFTP tests (Debian `openssh-server`, scripts/install-deps.sh):
// started by the test on a free loopback port, as the current user, from a temporary folder that
// holds its own host key, configuration, authorized_keys, PidFile and the home the client sees
// (no chroot: paths are absolute on the server's side, under home()). The client's key pair and
// a known_hosts file naming the host key are made with it (ssh-keygen). Stopped (SIGTERM, then
// SIGKILL) by the destructor.
//
// Cutting connections mid-transfer: kill_sessions() kills the session processes (the children
// of the listening sshd); a DroppingProxy in front of the server cuts a connection after a given
// number of bytes from the client, deterministically in the middle of an upload.
//
// Not thread-safe (one test thread), except DroppingProxy, whose counters are atomic.

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "tests/support/relais_process.h"

namespace relais::testing {

class SshdServer {
 public:
  SshdServer();
  ~SshdServer();
  SshdServer(const SshdServer&) = delete;
  SshdServer& operator=(const SshdServer&) = delete;

  // Starts sshd and waits until it accepts connections (throws std::runtime_error with its
  // log when it does not within 10 s).
  void start();
  void stop();
  // Kills every session (the listening sshd's children): connections drop mid-transfer.
  int kill_sessions();

  int port() const { return port_; }
  std::string user() const;
  const std::string& home() const { return home_; }                // absolute, exists
  const std::string& private_key() const { return client_key_; }   // OpenSSH format, no passphrase
  const std::string& known_hosts() const { return known_hosts_; }  // "[127.0.0.1]:PORT <key>"
  // Makes another client key pair, protected by `passphrase`, authorised on the server; returns
  // the private key's path.
  std::string add_client_key(const std::string& passphrase);
  // A known_hosts file naming another key for the same host (a server that changed its key).
  std::string wrong_known_hosts() const;
  std::string log() const;

 private:
  TempDir dir_{"relais-sshd-"};
  int port_ = 0;
  pid_t pid_ = -1;
  int extra_keys_ = 0;
  std::string home_, client_key_, known_hosts_, config_;
};

// A TCP proxy on a free loopback port in front of `target_port`: each connection is forwarded
// both ways until `drop_after(n)` arms a cut — the connection then in progress (or the next
// one) is closed once n more bytes went from the client to the server. One thread; stopped by
// the destructor.
class DroppingProxy {
 public:
  explicit DroppingProxy(int target_port);
  ~DroppingProxy();
  DroppingProxy(const DroppingProxy&) = delete;
  DroppingProxy& operator=(const DroppingProxy&) = delete;

  int port() const { return port_; }
  void drop_after(int64_t client_bytes) { drop_after_.store(client_bytes); }
  int drops() const { return drops_.load(); }
  int64_t client_bytes() const { return client_bytes_.load(); }

 private:
  void run();
  int target_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  int wake_[2] = {-1, -1};
  std::atomic<int64_t> drop_after_{-1};
  std::atomic<int64_t> client_bytes_{0};
  std::atomic<int> drops_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace relais::testing

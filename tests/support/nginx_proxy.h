#pragma once
// A throwaway nginx in front of several relais nodes: the one address of a cluster (issue 15),
// for the browser test of the console against two nodes and for the benches. Runs
// `nginx -p DIR -c DIR/nginx.conf -g 'daemon off;'` as a child of the test, as the test's user
// (a `user` directive only when that is root: the workers then run as nobody), on a free
// loopback port; pid file, error log, access log and temporary files in DIR. One worker
// process, so that the round-robin alternates strictly per request; no ip_hash, no sticky
// cookie. Fails — never skips — when nginx is missing (scripts/install-deps.sh installs
// nginx-light).
//
//   NginxProxy proxy({"127.0.0.1:" + std::to_string(a.port()), "127.0.0.1:" + …});
//   proxy.start();                           // throws std::runtime_error with nginx's output
//   HttpClient c(proxy.base_url(), token);   // every request to the next node in turn
//   for (const auto& e : proxy.access_log()) { e.upstream … }
//
// The access log names the node that served each request (`$upstream_addr`) and, for the
// console, a tag of the session (the first 8 characters of the relais_session cookie sent, or
// of the one the node set: enough to tell sessions apart, never the whole secret) and whether
// an X-CSRF-Token was sent. Not thread-safe; owns the process and the folder: the destructor
// stops nginx (SIGTERM: fast shutdown, workers included) and removes the folder.

#include <sys/types.h>

#include <string>
#include <vector>

#include "tests/support/relais_process.h"

namespace relais::testing {

struct NginxProxyOptions {
  // Keep-alive connections to the nodes (HTTP/1.1, `keepalive` in the upstream): the
  // round-robin still picks the node per request, then reuses an idle connection to it. Their
  // idle timeout (20 s) stays below relais's (server.idle_timeout, 30 s), so nginx never reuses
  // a connection the node is closing.
  bool keepalive = true;
  std::string client_max_body_size = "2m";  // above relais's own limit: relais answers 413
};

// One line of the access log.
struct NginxLogEntry {
  double time = 0;       // seconds since the epoch ($msec)
  std::string upstream;  // the node that answered, "127.0.0.1:PORT" (the last one tried)
  std::string method;
  std::string path;  // without the query
  int status = 0;
  std::string session;      // tag of the relais_session cookie sent, "" when none
  std::string new_session;  // tag of the relais_session cookie the node set, "" when none
  bool csrf = false;        // an X-CSRF-Token header was sent
};

class NginxProxy {
 public:
  // `upstreams`: "HOST:PORT" of each node.
  explicit NginxProxy(std::vector<std::string> upstreams, NginxProxyOptions options = {});
  ~NginxProxy();
  NginxProxy(const NginxProxy&) = delete;
  NginxProxy& operator=(const NginxProxy&) = delete;

  // Writes the configuration and starts nginx on a free port; waits until it accepts
  // connections. Throws std::runtime_error with nginx's output when it cannot.
  void start();
  // SIGTERM and wait (SIGKILL after 10 s). Idempotent.
  void stop();
  bool running() const { return pid_ > 0; }

  int port() const { return port_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_.path(); }
  // The configuration nginx runs (for a failure message, or an example).
  std::string config() const;
  // The access log read now (nginx writes each line when the request ends).
  std::vector<NginxLogEntry> access_log() const;
  std::string error_log() const;

 private:
  std::vector<std::string> upstreams_;
  NginxProxyOptions options_;
  TempDir dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace relais::testing

#pragma once
// Test harness for the integration tests: starts the real `relais` binary on a generated
// configuration in a fresh temporary directory, talks to it over HTTP, stops or kills it.
//
//   RelaisOptions o;
//   o.binary = RELAIS_BINARY;
//   o.body_yaml = "sources: …\nconnectors: …\nroutes: …\n";
//   RelaisProcess relais(o);
//   relais.start();                       // waits for "listening on http://127.0.0.1:PORT"
//   HttpResponse r = relais.client().post_json("/api/v1/sources/app/messages", "{…}");
//   relais.kill9(); relais.restart();      // same config, same store, new port
//   int code = relais.stop();              // SIGTERM, returns the exit code
//
// Nothing here is linked into relais itself.

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace relais::testing {

// A temporary directory, removed (recursively) by the destructor unless the environment
// variable RELAIS_TEST_KEEP is set. Not thread-safe; owns the directory.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "relais-it-");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // Writes `text` to path()/name and returns the full path.
  std::string write(const std::string& name, const std::string& text) const;

 private:
  std::string path_;
};

// What one HTTP exchange produced. status 0 = transport error (connection refused, reset,
// timeout…), explained in `error`.
struct HttpResponse {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names; the last value wins
  std::string error;

  // The body parsed as JSON; a discarded value when it is not JSON.
  nlohmann::json json() const;
  // The header's value, or "" (name in any case).
  std::string header(const std::string& name) const;
};

// A tiny libcurl client. Keeps its connection open between requests (keep-alive).
// Not thread-safe: one client per thread. Owns its curl handle.
class HttpClient {
 public:
  using Headers = std::vector<std::string>;  // "Name: value" lines

  explicit HttpClient(std::string base_url = "", std::string token = "");
  ~HttpClient();
  HttpClient(HttpClient&& other) noexcept;
  HttpClient& operator=(HttpClient&& other) noexcept;
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  void set_base_url(std::string base_url) { base_ = std::move(base_url); }
  void set_token(std::string token) { token_ = std::move(token); }  // "" = no Authorization
  void set_timeout_ms(long ms) { timeout_ms_ = ms; }

  // `target` is a path appended to the base URL, or a full http:// URL.
  HttpResponse get(const std::string& target, const Headers& headers = {});
  HttpResponse post(const std::string& target, const std::string& body,
                    const std::string& content_type, const Headers& headers = {});
  HttpResponse post_json(const std::string& target, const std::string& body,
                         const Headers& headers = {}) {
    return post(target, body, "application/json", headers);
  }
  HttpResponse post_ndjson(const std::string& target, const std::string& body,
                           const Headers& headers = {}) {
    return post(target, body, "application/x-ndjson", headers);
  }
  // Any method; an empty content_type sends no Content-Type header.
  HttpResponse request(const std::string& method, const std::string& target,
                       const std::string& body, const std::string& content_type,
                       const Headers& headers);

 private:
  void* curl_ = nullptr;  // CURL*
  std::string base_;
  std::string token_;
  long timeout_ms_ = 30000;
};

// Options of a relais process. The harness writes server (127.0.0.1, port 0), store (inside
// the temporary directory), log and auth sections; body_yaml supplies the rest (sources,
// connectors, routes).
struct RelaisOptions {
  std::string binary;             // path of the relais executable
  std::string body_yaml;          // sources/connectors/routes sections, as YAML text
  std::string server_extra_yaml;  // more keys of `server:`, each line indented by two spaces
                                  // (with a `tls:` key, base_url() is https://localhost:PORT)
  std::string tokens_extra_yaml;  // more items of auth.tokens, each line indented by four
  std::string store_path;         // "" = relais.db in the temporary directory
  std::string store_extra_yaml;   // more keys of `store:`, each line indented by two spaces
  // The `store:` section's keys in place of `path:` (e.g. kind: postgresql, uri, password_env,
  // state_dir), each line indented by two spaces; "" = the SQLite file at store_path().
  std::string store_section_yaml;
  std::string token = "integration-admin-token-0123456789";          // role admin
  std::string system_token = "integration-system-token-0123456789";  // role system
  std::string log_level = "info";
  std::chrono::milliseconds start_timeout{20000};
  int port = 0;  // 0 = any free port (changes at each restart); else this one, every run
};

// One relais serve process (restartable) with its temporary directory, config file and store.
// Not thread-safe: drive it from one thread (port() may be read from any thread).
// Owns the child process: the destructor kills it (SIGKILL) if it still runs; the child also
// gets SIGKILL if the thread that started it dies (PR_SET_PDEATHSIG).
class RelaisProcess {
 public:
  explicit RelaisProcess(RelaisOptions options);
  ~RelaisProcess();
  RelaisProcess(const RelaisProcess&) = delete;
  RelaisProcess& operator=(const RelaisProcess&) = delete;

  // Starts `relais serve --config FILE` and waits for its "listening on" line.
  // Throws std::runtime_error (with the process output) when it exits or times out.
  void start();
  // Same configuration and store; the port may change.
  void restart() { start(); }
  // SIGTERM, then waits up to `timeout`. Returns the exit code (128+signal when killed by a
  // signal), or -1 when it did not exit in time (it is then killed).
  int stop(std::chrono::milliseconds timeout = std::chrono::milliseconds(30000));
  // SIGKILL and reap.
  void kill9();
  bool running();

  int port() const { return port_.load(); }
  std::string base_url() const;
  const std::string& dir() const { return dir_.path(); }
  const std::string& config_path() const { return config_path_; }
  std::string store_path() const;
  const std::string& token() const { return options_.token; }
  const std::string& system_token() const { return options_.system_token; }
  // Output of the current (or last) run.
  std::string stdout_text() const;
  std::string stderr_text() const;
  int runs() const { return run_; }
  pid_t pid() const { return pid_; }  // -1 when not running

  // A client for this process with the admin token (rebuild after a restart: the port changes).
  HttpClient client() const { return HttpClient(base_url(), options_.token); }

 private:
  bool reap(bool block, int& code);

  RelaisOptions options_;
  TempDir dir_;
  std::string config_path_;
  pid_t pid_ = -1;
  int run_ = 0;
  std::atomic<int> port_{0};
};

// Result of running a relais sub-command to completion.
struct CommandResult {
  int exit_code = -1;  // 128+signal when killed by a signal; -1 on timeout
  std::string out;
  std::string err;
};
// Runs argv (argv[0] = executable path) with stdout/stderr captured.
CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = std::chrono::milliseconds(30000));

// Starts argv in the background (stdin /dev/null, stdout/stderr into the files); the child
// dies with the thread that started it. wait_command: the exit code as run_command gives it
// (it kills the child on timeout).
pid_t start_command(const std::vector<std::string>& argv, const std::string& out_path,
                    const std::string& err_path);
int wait_command(pid_t pid, std::chrono::milliseconds timeout);

// Polls `condition` every `interval` until it holds or `timeout` passes; returns its last value.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = std::chrono::milliseconds(20));

// Polls GET /api/v1/messages/{id} until every delivery of the message is in `state` (a message
// without deliveries never is); false after `timeout`.
bool wait_deliveries_state(HttpClient& client, const std::string& message_id,
                           const std::string& state,
                           std::chrono::milliseconds timeout = std::chrono::seconds(15));

std::string read_file(const std::string& path);

// The value of the first sample line of a Prometheus text that starts with `series`
// ("name{labels}"), or -1.
double metric_value(const std::string& text, const std::string& series);

// A loopback TCP port that was free a moment ago (bound to 0, then released).
int free_port();

// One item of `connectors:`: an `http` connector `name` that posts to
// http://127.0.0.1:PORT/in, with `extra` keys (each line "    key: value\n").
std::string http_connector_yaml(const std::string& name, int port, const std::string& extra = "");

}  // namespace relais::testing

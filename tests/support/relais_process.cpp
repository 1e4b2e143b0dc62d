#include "tests/support/relais_process.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace relais::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

void curl_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(user);
  std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    headers->clear();  // a new response (after 100 Continue, or a redirect)
  } else {
    auto colon = line.find(':');
    if (colon != std::string::npos) {
      (*headers)[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
    }
  }
  return size * n;
}

// The port of relais' "listening on http(s)://ADDR:PORT" line, or 0 when the line is not there.
// (No std::regex: GCC 12 reports false maybe-uninitialized errors in it under the sanitizers.)
int parse_listening_port(const std::string& text) {
  std::string marker = "listening on http://";
  size_t at = text.find(marker);
  if (at == std::string::npos) {
    marker = "listening on https://";
    at = text.find(marker);
  }
  if (at == std::string::npos) return 0;
  size_t colon = text.find(':', at + marker.size());
  if (colon == std::string::npos) return 0;
  size_t end = colon + 1;
  while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]))) ++end;
  if (end == colon + 1 || end == text.size()) return 0;  // the line is not complete yet
  return std::stoi(text.substr(colon + 1, end - colon - 1));
}

int decode_wait_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Starts argv with stdin from /dev/null and stdout/stderr into the given files. The child
// dies with the thread that started it. Only async-signal-safe calls after fork().
pid_t spawn(const std::vector<std::string>& argv, const std::string& out_path,
            const std::string& err_path) {
  int in_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (in_fd < 0 || out_fd < 0 || err_fd < 0) {
    if (in_fd >= 0) ::close(in_fd);
    if (out_fd >= 0) ::close(out_fd);
    if (err_fd >= 0) ::close(err_fd);
    throw std::runtime_error("cannot open the output files in " + out_path);
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(in_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(in_fd);
  ::close(out_fd);
  ::close(err_fd);
  if (pid < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  return pid;
}

// Waits for pid up to timeout; SIGKILL and -1 after it.
int wait_for_exit(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  int status = 0;
  while (true) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return decode_wait_status(status);
    if (r < 0) return -1;
    if (Clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string tail(const std::string& s, size_t n = 4000) {
  return s.size() <= n ? s : "…" + s.substr(s.size() - n);
}

}  // namespace

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (Clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(interval);
  }
}

bool wait_deliveries_state(HttpClient& client, const std::string& message_id,
                           const std::string& state, std::chrono::milliseconds timeout) {
  return wait_until(
      [&] {
        auto ds = client.get("/api/v1/messages/" + message_id)
                      .json()
                      .value("deliveries", nlohmann::json::array());
        if (ds.empty()) return false;
        for (const auto& d : ds) {
          if (d.value("state", "") != state) return false;
        }
        return true;
      },
      timeout);
}

// ---------------------------------------------------------------------------------------------
TempDir::TempDir(const std::string& prefix) {
  std::string pattern = (fs::temp_directory_path() / (prefix + "XXXXXX")).string();
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    throw std::runtime_error("mkdtemp failed for " + pattern);
  }
  path_ = buf.data();
}

TempDir::~TempDir() {
  if (std::getenv("RELAIS_TEST_KEEP") != nullptr) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, const std::string& text) const {
  std::string p = (fs::path(path_) / name).string();
  fs::create_directories(fs::path(p).parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + p);
  return p;
}

// ---------------------------------------------------------------------------------------------
nlohmann::json HttpResponse::json() const {
  return nlohmann::json::parse(body, nullptr, false);
}

std::string HttpResponse::header(const std::string& name) const {
  auto it = headers.find(lower(name));
  return it == headers.end() ? "" : it->second;
}

HttpClient::HttpClient(std::string base_url, std::string token)
    : base_(std::move(base_url)), token_(std::move(token)) {
  curl_init_once();
  curl_ = curl_easy_init();
  if (curl_ == nullptr) throw std::runtime_error("curl_easy_init failed");
}

HttpClient::~HttpClient() {
  if (curl_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

HttpClient::HttpClient(HttpClient&& other) noexcept
    : curl_(other.curl_),
      base_(std::move(other.base_)),
      token_(std::move(other.token_)),
      timeout_ms_(other.timeout_ms_) {
  other.curl_ = nullptr;
}

HttpClient& HttpClient::operator=(HttpClient&& other) noexcept {
  if (this != &other) {
    if (curl_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(curl_));
    curl_ = other.curl_;
    other.curl_ = nullptr;
    base_ = std::move(other.base_);
    token_ = std::move(other.token_);
    timeout_ms_ = other.timeout_ms_;
  }
  return *this;
}

HttpResponse HttpClient::get(const std::string& target, const Headers& headers) {
  return request("GET", target, "", "", headers);
}

HttpResponse HttpClient::post(const std::string& target, const std::string& body,
                              const std::string& content_type, const Headers& headers) {
  return request("POST", target, body, content_type, headers);
}

HttpResponse HttpClient::request(const std::string& method, const std::string& target,
                                 const std::string& body, const std::string& content_type,
                                 const Headers& headers) {
  CURL* h = static_cast<CURL*>(curl_);
  curl_easy_reset(h);  // keeps the connection cache
  HttpResponse out;
  std::string url = target.rfind("http://", 0) == 0 ? target : base_ + target;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms_);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &out.body);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &out.headers);
  struct curl_slist* list = nullptr;
  list = curl_slist_append(list, "Expect:");  // no 100-continue round trip
  if (!token_.empty()) list = curl_slist_append(list, ("Authorization: Bearer " + token_).c_str());
  if (!content_type.empty())
    list = curl_slist_append(list, ("Content-Type: " + content_type).c_str());
  for (const auto& line : headers) list = curl_slist_append(list, line.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  if (method == "GET") {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else {
    if (method != "POST") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  CURLcode rc = curl_easy_perform(h);
  curl_slist_free_all(list);
  if (rc != CURLE_OK) {
    out.status = 0;
    out.error = curl_easy_strerror(rc);
    return out;
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out.status);
  return out;
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

// ---------------------------------------------------------------------------------------------
RelaisProcess::RelaisProcess(RelaisOptions options) : options_(std::move(options)) {
  std::ostringstream y;
  y << "# written by the integration test harness\n"
    << "server:\n"
    << "  address: 127.0.0.1\n"
    << "  port: " << options_.port << "\n"
    << options_.server_extra_yaml
    << (options_.server_extra_yaml.empty() || options_.server_extra_yaml.back() == '\n' ? "" : "\n")
    << "store:\n"
    << (options_.store_section_yaml.empty() ? "  path: " + store_path() + "\n"
                                            : options_.store_section_yaml)
    << options_.store_extra_yaml
    << (options_.store_extra_yaml.empty() || options_.store_extra_yaml.back() == '\n' ? "" : "\n")
    << "log:\n"
    << "  level: " << options_.log_level << "\n"
    << "auth:\n"
    << "  tokens:\n"
    << "    - name: test-admin\n"
    << "      token: " << options_.token << "\n"
    << "      role: admin\n"
    << "    - name: test-system\n"
    << "      token: " << options_.system_token << "\n"
    << "      role: system\n"
    << options_.tokens_extra_yaml
    << (options_.tokens_extra_yaml.empty() || options_.tokens_extra_yaml.back() == '\n' ? "" : "\n")
    << options_.body_yaml;
  config_path_ = dir_.write("relais.yaml", y.str());
}

RelaisProcess::~RelaisProcess() {
  if (pid_ > 0) kill9();
}

std::string RelaisProcess::store_path() const {
  if (!options_.store_path.empty()) return options_.store_path;
  return (fs::path(dir_.path()) / "relais.db").string();
}

std::string RelaisProcess::base_url() const {
  const bool tls = options_.server_extra_yaml.find("  tls:") != std::string::npos;
  return (tls ? "https://localhost:" : "http://127.0.0.1:") + std::to_string(port_.load());
}

std::string RelaisProcess::stdout_text() const {
  return read_file((fs::path(dir_.path()) / ("stdout-" + std::to_string(run_) + ".log")).string());
}

std::string RelaisProcess::stderr_text() const {
  return read_file((fs::path(dir_.path()) / ("stderr-" + std::to_string(run_) + ".log")).string());
}

bool RelaisProcess::reap(bool block, int& code) {
  if (pid_ <= 0) return true;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  if (r == pid_) {
    code = decode_wait_status(status);
    pid_ = -1;
    return true;
  }
  if (r < 0) {
    pid_ = -1;
    code = -1;
    return true;
  }
  return false;
}

bool RelaisProcess::running() {
  int code = 0;
  return pid_ > 0 && !reap(false, code);
}

void RelaisProcess::start() {
  if (pid_ > 0) throw std::runtime_error("relais is already running");
  ++run_;
  std::string out = (fs::path(dir_.path()) / ("stdout-" + std::to_string(run_) + ".log")).string();
  std::string err = (fs::path(dir_.path()) / ("stderr-" + std::to_string(run_) + ".log")).string();
  port_ = 0;
  pid_ = spawn({options_.binary, "serve", "--config", config_path_}, out, err);
  auto deadline = Clock::now() + options_.start_timeout;
  while (true) {
    int port = parse_listening_port(read_file(out));
    if (port > 0) {
      port_ = port;
      return;
    }
    int code = 0;
    if (reap(false, code)) {
      throw std::runtime_error("relais exited with code " + std::to_string(code) +
                               " before listening\nstdout:\n" + tail(read_file(out)) +
                               "\nstderr:\n" + tail(read_file(err)));
    }
    if (Clock::now() >= deadline) {
      kill9();
      throw std::runtime_error("relais did not print its listening line in time\nstdout:\n" +
                               tail(read_file(out)) + "\nstderr:\n" + tail(read_file(err)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

int RelaisProcess::stop(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int code = wait_for_exit(pid_, timeout);
  pid_ = -1;
  return code;
}

void RelaisProcess::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int code = 0;
  reap(true, code);
  pid_ = -1;
}

// ---------------------------------------------------------------------------------------------
pid_t start_command(const std::vector<std::string>& argv, const std::string& out_path,
                    const std::string& err_path) {
  return spawn(argv, out_path, err_path);
}

int wait_command(pid_t pid, std::chrono::milliseconds timeout) {
  return wait_for_exit(pid, timeout);
}

CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  TempDir dir("relais-cmd-");
  std::string out = (fs::path(dir.path()) / "out").string();
  std::string err = (fs::path(dir.path()) / "err").string();
  CommandResult r;
  pid_t pid = spawn(argv, out, err);
  r.exit_code = wait_for_exit(pid, timeout);
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

double metric_value(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

std::string http_connector_yaml(const std::string& name, int port, const std::string& extra) {
  return "  " + name + ":\n    connector: http\n    url: http://127.0.0.1:" + std::to_string(port) +
         "/in\n" + extra;
}

}  // namespace relais::testing

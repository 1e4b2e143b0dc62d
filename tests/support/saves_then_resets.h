#pragma once
// A test server that loses the answer after the partner saved the request, on a reused
// keep-alive connection: the fault that makes libcurl re-send a request by itself ("Connection
// died, retrying a fresh connect"). It answers requests normally (keep-alive) until the armed
// one — by default the second request of a connection, once — arrives; that request is read in
// full, handed to the backend (so it is saved), and the connection is reset (RST, no answer
// byte). Every request is recorded with its connection number, so a test can count how many
// times the partner saw a request (a silent re-send shows as a second copy on a new
// connection).
//
// The backend is either a function (the test plays the partner) or another HTTP server on
// 127.0.0.1 (a simulator: the request is forwarded to it with "Connection: close" and its answer
// relayed, so the simulator stays the strict peer it is).
//
// Thread-safety: the accessors lock; one thread per connection. Owns its sockets and threads;
// the destructor closes everything and joins. Header-only; never linked into relais.

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/raw_http.h"

namespace relais::testing {

struct SavedRequest {
  std::string method;
  std::string target;  // path and query
  std::string head;    // the request line and headers, as received
  std::string body;
  int connection = 0;     // 1 for the first connection accepted, then 2, …
  int on_connection = 0;  // 1 for the first request of its connection, then 2, …
  bool reset = false;     // saved, then the connection was reset without an answer

  std::string header(const std::string& lower_name) const {
    size_t pos = head.find("\r\n");
    while (pos != std::string::npos && pos + 2 < head.size()) {
      size_t end = head.find("\r\n", pos + 2);
      std::string line = head.substr(pos + 2, end - pos - 2);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (name == lower_name) {
          size_t b = line.find_first_not_of(" \t", colon + 1);
          return b == std::string::npos ? "" : line.substr(b);
        }
      }
      pos = end;
    }
    return "";
  }
};

class SavesThenResets {
 public:
  // The backend: the complete raw HTTP answer to one request ("HTTP/1.1 200 OK\r\n…").
  using Backend = std::function<std::string(const SavedRequest&)>;
  // Chooses the request to save then reset (called for each request until one is chosen).
  using Trigger = std::function<bool(const SavedRequest&)>;

  explicit SavesThenResets(Backend backend) : backend_(std::move(backend)) {
    listen_fd_ = listen_on_loopback(64, port_);
    if (listen_fd_ < 0) return;
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  // A server in front of the HTTP server on 127.0.0.1:backend_port.
  explicit SavesThenResets(int backend_port) : SavesThenResets(forward_to(backend_port)) {}

  ~SavesThenResets() {
    stop_ = true;
    if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
    if (acceptor_.joinable()) acceptor_.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : open_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : workers_) t.join();
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }
  SavesThenResets(const SavesThenResets&) = delete;
  SavesThenResets& operator=(const SavesThenResets&) = delete;

  int port() const { return port_; }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Arms the fault for the first request `which` accepts that comes as the second (or later)
  // request of its connection — a reused connection. Fires once (arm again for another).
  void arm(Trigger which = [](const SavedRequest&) { return true; }) {
    std::lock_guard<std::mutex> lock(mu_);
    trigger_ = std::move(which);
    reused_only_ = true;
    fired_ = false;
  }
  // Arms the fault for the first request `which` accepts, whatever its place on its
  // connection (a request on a fresh connection too).
  void arm_any(Trigger which) {
    std::lock_guard<std::mutex> lock(mu_);
    trigger_ = std::move(which);
    reused_only_ = false;
    fired_ = false;
  }
  bool fired() const {
    std::lock_guard<std::mutex> lock(mu_);
    return fired_;
  }

  std::vector<SavedRequest> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  // How many requests `which` accepts were received (each copy counts: a re-send is two).
  size_t count(const Trigger& which) const {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto& r : requests_) n += which(r) ? 1 : 0;
    return n;
  }
  int connections() const { return connections_.load(); }

  // A raw answer with a body and Content-Length (keep-alive).
  static std::string answer(int status, const std::string& body,
                            const std::string& extra_headers = "") {
    return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: text/plain\r\n" +
           extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }

  // Forwards each request to 127.0.0.1:port with "Connection: close" and returns its answer
  // with the Connection header removed (so the client's connection stays alive).
  static Backend forward_to(int port) {
    return [port](const SavedRequest& r) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<uint16_t>(port));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return answer(502, "backend unreachable");
      }
      std::string out = without_connection_header(r.head) + "Connection: close\r\n\r\n" + r.body;
      send_all(fd, out);
      std::string in;
      char buf[8192];
      for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) in.append(buf, size_t(n));
      ::close(fd);
      size_t end = in.find("\r\n\r\n");
      if (end == std::string::npos) return answer(502, "no answer from the backend");
      return without_connection_header(in.substr(0, end + 2)) + "\r\n" + in.substr(end + 4);
    };
  }

 private:
  // `head`: lines ending in CRLF, without the blank line; returns them without Connection.
  static std::string without_connection_header(const std::string& head) {
    std::string out;
    size_t pos = 0;
    while (pos < head.size()) {
      size_t end = head.find("\r\n", pos);
      if (end == std::string::npos) end = head.size();
      std::string line = head.substr(pos, end - pos);
      std::string lower = line.substr(0, 11);
      for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (!line.empty() && lower != "connection:") out += line + "\r\n";
      pos = end + 2;
    }
    return out;
  }

  static bool send_all(int fd, const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  void accept_loop() {
    while (!stop_) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (stop_ || errno == EINVAL || errno == EBADF) return;
        continue;
      }
      int id = ++connections_;
      std::lock_guard<std::mutex> lock(mu_);
      open_.push_back(fd);
      workers_.emplace_back([this, fd, id] { serve(fd, id); });
    }
  }

  // Reads one request (head + Content-Length body) from `fd` into `r`; false at end of stream.
  static bool read_request(int fd, std::string& buf, SavedRequest& r) {
    char tmp[8192];
    size_t end;
    while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
      if (n <= 0) return false;
      buf.append(tmp, static_cast<size_t>(n));
    }
    r.head = buf.substr(0, end + 2);
    buf.erase(0, end + 4);
    size_t sp = r.head.find(' ');
    r.method = r.head.substr(0, sp);
    r.target = r.head.substr(sp + 1, r.head.find(' ', sp + 1) - sp - 1);
    std::string cl = r.header("content-length");
    size_t want = cl.empty() ? 0 : std::stoul(cl);
    while (buf.size() < want) {
      ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
      if (n <= 0) return false;  // a body cut short is no request
      buf.append(tmp, static_cast<size_t>(n));
    }
    r.body = buf.substr(0, want);
    buf.erase(0, want);
    return true;
  }

  void serve(int fd, int id) {
    std::string buf;
    for (int index = 1;; ++index) {
      SavedRequest r;
      if (!read_request(fd, buf, r)) break;
      r.connection = id;
      r.on_connection = index;
      bool reset = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (trigger_ && !fired_ && (!reused_only_ || index >= 2) && trigger_(r)) {
          fired_ = true;
          reset = true;
        }
      }
      r.reset = reset;
      std::string out = backend_(r);  // saved by the partner, whether or not it hears back
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(r);
      }
      if (reset) {
        linger l{1, 0};  // close with RST: the client gets no answer byte
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        break;
      }
      if (!send_all(fd, out)) break;
    }
    std::lock_guard<std::mutex> lock(mu_);
    open_.remove(fd);
    ::close(fd);
  }

  Backend backend_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::list<int> open_;
  std::vector<std::thread> workers_;  // guarded by mu_ while the acceptor runs
  std::vector<SavedRequest> requests_;
  Trigger trigger_;
  bool reused_only_ = true;
  bool fired_ = false;
};

}  // namespace relais::testing

#include "api/http_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/Exception.h>
#include <Poco/MemoryStream.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Timestamp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <streambuf>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/tls_server.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/thread_name.h"

namespace relais::api {
namespace {

using Poco::Net::HTTPResponse;
using Poco::Net::SocketAddress;

constexpr int64_t kSweepEveryMs = 100;
constexpr int64_t kLingerMs = 2000;  // reading what a closed request still sends, at most
constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kKeptInputCapacity = 64 * 1024;

// The Date header, formatted once per second per thread.
const std::string& http_date() {
  thread_local std::string text;
  thread_local int64_t second = -1;
  Poco::Timestamp now;
  int64_t s = now.epochTime();
  if (s != second) {
    second = s;
    text = Poco::DateTimeFormatter::format(now, Poco::DateTimeFormat::HTTP_FORMAT);
  }
  return text;
}

// A streambuf that appends to a string: the response body, written by a handler through send().
class StringAppendBuf final : public std::streambuf {
 public:
  explicit StringAppendBuf(std::string& s) : s_(s) {}

 protected:
  int_type overflow(int_type c) override {
    if (!traits_type::eq_int_type(c, traits_type::eof()))
      s_.push_back(traits_type::to_char_type(c));
    return traits_type::not_eof(c);
  }
  std::streamsize xsputn(const char* p, std::streamsize n) override {
    s_.append(p, static_cast<size_t>(n));
    return n;
  }

 private:
  std::string& s_;
};

// The response a handler fills: status and headers (Poco's HTTPResponse), and a body buffered
// in memory; the server writes it once the handler returns. One per request, used by one
// thread; owns the body.
class BufferedResponse final : public Poco::Net::HTTPServerResponse {
 public:
  BufferedResponse() : buf_(body_), out_(&buf_) {}

  void sendContinue() override {}  // the server answered 100 before it read the body
  std::ostream& send() override {
    sent_ = true;
    return out_;
  }
  void sendFile(const std::string& path, const std::string& media_type) override {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Poco::FileNotFoundException(path);
    body_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    setContentType(media_type);
    sent_ = true;
  }
  void sendBuffer(const void* data, std::size_t length) override {
    body_.assign(static_cast<const char*>(data), length);
    sent_ = true;
  }
  void redirect(const std::string& uri, HTTPStatus status) override {
    setStatusAndReason(status);
    set("Location", uri);
    body_.clear();
    sent_ = true;
  }
  void requireAuthentication(const std::string& realm) override {
    setStatusAndReason(HTTP_UNAUTHORIZED);
    set("WWW-Authenticate", "Basic realm=\"" + realm + "\"");
    body_.clear();
    sent_ = true;
  }
  bool sent() const override { return sent_; }
  std::string& body() { return body_; }

 private:
  std::string body_;
  StringAppendBuf buf_;
  std::ostream out_;
  bool sent_ = false;
};

// What the deferred answers in flight may hold: without a thread blocked per request, a store
// that stalls would otherwise let every connection queue a request (and its body). Beyond the
// budget a handler answers on its thread, as before (defer_answer gives nullptr), which holds
// the rest back. Thread-safe; shared by the server and its Deferred (which may outlive it by a
// moment on the finishing thread).
class DeferBudget {
 public:
  DeferBudget(size_t max_count, size_t max_bytes) : max_count_(max_count), max_bytes_(max_bytes) {}
  bool take(size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    if (count_ + 1 > max_count_ || bytes_ + bytes > max_bytes_) return false;
    ++count_;
    bytes_ += bytes;
    return true;
  }
  void give(size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    --count_;
    bytes_ -= bytes;
  }

 private:
  std::mutex mu_;
  size_t count_ = 0, bytes_ = 0;
  const size_t max_count_, max_bytes_;
};

// The answer of one request, deferred by its handler (defer_answer). Created on the handler
// thread with a copy of the response's headers so far; finished by any thread. `mu` guards
// `state`; `resp` is filled under it by the first finish() and read afterwards by the one
// thread that writes it (`write`, set by the server: the connection's continuation).
class Deferred final : public DeferredAnswer {
 public:
  // Running: the handler has not returned yet; Waiting: it has, the server waits for finish();
  // Answered: finished while the handler ran (its thread writes the answer); Done: written or
  // being written, or abandoned.
  enum class State { Running, Waiting, Answered, Done };

  // `budget` was taken for `bytes` (the request's body): given back when the last holder lets
  // go.
  Deferred(const BufferedResponse& so_far, std::function<void(BufferedResponse&)> write,
           std::shared_ptr<DeferBudget> budget, size_t bytes)
      : write_(std::move(write)), budget_(std::move(budget)), bytes_(bytes) {
    resp_.setVersion(so_far.getVersion());
    for (const auto& [k, v] : so_far) resp_.add(k, v);
  }
  ~Deferred() override {
    // Never finished by its holder: the connection must not wait for ever.
    if (state() == State::Waiting) finish(answer_internal_error);
    budget_->give(bytes_);
  }

  void finish(const std::function<void(Poco::Net::HTTPServerResponse&)>& fill) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (state_ == State::Answered || state_ == State::Done) return;
      fill(resp_);
      if (state_ == State::Running) {
        state_ = State::Answered;  // the handler thread writes it when the handler returns
        return;
      }
      state_ = State::Done;
    }
    write_(resp_);
  }

  // The handler returned: true when the answer is still to come (finish() writes it), false
  // when it came already (the caller writes response()).
  bool handler_returned() {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == State::Answered) {
      state_ = State::Done;
      return false;
    }
    state_ = State::Waiting;
    return true;
  }
  // The handler failed after deferring: a later finish() is ignored.
  void abandon() {
    std::lock_guard<std::mutex> lock(mu_);
    state_ = State::Done;
  }
  BufferedResponse& response() { return resp_; }

  static void answer_internal_error(Poco::Net::HTTPServerResponse& resp) {
    resp.setStatusAndReason(Poco::Net::HTTPResponse::HTTP_INTERNAL_SERVER_ERROR);
    resp.setContentType("application/json");
    resp.setKeepAlive(false);
    resp.send() << R"({"error":"internal error","detail":"see the relais log"})";
  }

 private:
  State state() {
    std::lock_guard<std::mutex> lock(mu_);
    return state_;
  }

  std::mutex mu_;
  State state_ = State::Running;
  BufferedResponse resp_;
  std::function<void(BufferedResponse&)> write_;
  std::shared_ptr<DeferBudget> budget_;
  size_t bytes_;
};

// How the request being handled can be deferred (plain HTTP only): `make` builds the Deferred
// (nullptr: over the budget); `made` keeps it for the server once the handler returns.
struct DeferSlot {
  std::function<std::shared_ptr<Deferred>()> make;
  std::shared_ptr<Deferred> made;
};

// A complete request (head and body already read) seen through Poco's interface. One per
// request, used by one thread; borrows the body, the addresses, the response and the peer's
// certificate.
class BufferedRequest final : public Poco::Net::HTTPServerRequest {
 public:
  BufferedRequest(const HttpRequestHead& head, const std::string& body, const SocketAddress& client,
                  const SocketAddress& server, const Poco::Net::HTTPServerParams& params,
                  BufferedResponse& response, bool secure, const PeerCertificate* peer,
                  DeferSlot* defer)
      : body_(body.data(), body.size()),
        client_(client),
        server_(server),
        params_(params),
        response_(response),
        secure_(secure),
        peer_(peer),
        defer_(defer) {
    setMethod(head.method);
    setURI(head.target);
    setVersion(head.version_minor == 0 ? HTTP_1_0 : HTTP_1_1);
    for (const auto& [k, v] : head.headers) add(k, v);
  }

  std::istream& stream() override { return body_; }
  const SocketAddress& clientAddress() const override { return client_; }
  const SocketAddress& serverAddress() const override { return server_; }
  const Poco::Net::HTTPServerParams& serverParams() const override { return params_; }
  Poco::Net::HTTPServerResponse& response() const override { return response_; }
  bool secure() const override { return secure_; }
  const PeerCertificate* peer_certificate() const { return peer_; }
  std::shared_ptr<DeferredAnswer> defer() {
    if (defer_ == nullptr) return nullptr;
    if (!defer_->made) defer_->made = defer_->make();
    return defer_->made;  // nullptr: answer on this thread
  }

 private:
  Poco::MemoryInputStream body_;
  const SocketAddress& client_;
  const SocketAddress& server_;
  const Poco::Net::HTTPServerParams& params_;
  BufferedResponse& response_;
  bool secure_;
  const PeerCertificate* peer_;
  DeferSlot* defer_;  // null: this request cannot be deferred
};

// Where a connection is between two events. The phase is read and written under Conn::mu.
enum class Phase : uint8_t {
  Idle,      // keep-alive, waiting for the next request (idle timeout)
  Head,      // the head is arriving (header deadline)
  Body,      // the body is arriving (body deadline)
  Draining,  // answered and closing: reading what the client still sends, then close
};

// One accepted connection, shared (std::shared_ptr) by the registry and by the thread that
// handles an event of it, so that it outlives a close that races with an event in flight.
//
// `mu` guards `phase`, `deadline`, `owned` and `closed`. Everything else (the buffer, the
// parser, the socket's reads and writes) belongs to the one thread that set `owned`: a handler
// thread claims the connection when epoll delivers its event (EPOLLONESHOT: at most one armed
// event), uses it without the lock, and releases it (`owned` false, then re-armed) under the
// lock. The sweep (acceptor thread) never touches an owned connection; it acts on the others
// under the lock: it answers 408, or sets `closed` and closes the descriptor. A handler thread
// that claims a closed connection drops the event.
//
// TLS: `ssl` (owned, freed with the Conn) belongs to the owner like the buffer; `want_write`
// (the next event the owner waits for is writability: a handshake or a read that must write)
// is read by rearm under the lock.
struct Conn {
  int fd = -1;
  uint32_t gen = 0;  // tells this connection from a later one on the same descriptor
  SocketAddress peer;
  std::mutex mu;
  Phase phase = Phase::Head;
  int64_t deadline = 0;
  bool owned = false;   // a handler thread is working on it (guarded by mu)
  bool closed = false;  // the descriptor is closed (guarded by mu)
  std::string in;       // received bytes; the unconsumed ones start at in_pos
  size_t in_pos = 0;
  HttpRequestParser parser;
  SSL* ssl = nullptr;                     // TLS: the session (nullptr: plain HTTP)
  bool handshake_done = true;             // TLS: the handshake completed
  bool want_write = false;                // TLS: re-arm for EPOLLOUT rather than EPOLLIN
  std::optional<PeerCertificate> client;  // TLS: the verified client certificate
  // A deferred answer's bytes the socket did not take at once, and whether the connection
  // closes after them: written by the handler thread that claims the connection next.
  std::string pending_out;
  bool close_after_pending = false;

  Conn(int f, uint32_t g, const SocketAddress& p, HttpRequestParser::Limits limits)
      : fd(f), gen(g), peer(p), parser(std::move(limits)) {}
  ~Conn() {
    if (ssl != nullptr) SSL_free(ssl);  // the descriptor is closed apart (BIO_NOCLOSE)
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  bool has_input() const { return in_pos < in.size(); }
};

// The epoll data of a connection: its descriptor and generation.
uint64_t conn_key(int fd, uint32_t gen) {
  return (static_cast<uint64_t>(gen) << 32) | static_cast<uint32_t>(fd);
}
constexpr uint64_t kListenKey = ~uint64_t{0};
constexpr uint64_t kWakeKey = ~uint64_t{0} - 1;

enum class Next { NeedMore, Request, Error };

// Parses what the connection has received. Called by whichever thread owns the connection.
Next advance(Conn& c) {
  size_t used = 0;
  auto st = c.parser.parse(c.in.data() + c.in_pos, c.in.size() - c.in_pos, used);
  c.in_pos += used;
  if (c.in_pos == c.in.size()) {
    c.in.clear();
    c.in_pos = 0;
    if (c.in.capacity() > kKeptInputCapacity) std::string().swap(c.in);
  } else if (c.in_pos >= kKeptInputCapacity) {
    c.in.erase(0, c.in_pos);
    c.in_pos = 0;
  }
  if (st == HttpRequestParser::Status::Complete) return Next::Request;
  if (st == HttpRequestParser::Status::Error) return Next::Error;
  return Next::NeedMore;
}

std::string reason_of(int status) {
  return HTTPResponse::getReasonForStatus(static_cast<HTTPResponse::HTTPStatus>(status));
}

// A whole answer from the server itself (errors before or instead of a handler), closing.
std::string server_answer(int status, const std::string& detail, const std::string& server) {
  std::string error = reason_of(status);
  for (auto& ch : error) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  std::string body = nlohmann::json{{"error", error}, {"detail", detail}}.dump();
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason_of(status) + "\r\n";
  out += "Date: " + http_date() + "\r\nServer: " + server +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n";
  out += body;
  return out;
}

// Best effort, never blocks: small answers from the reactor fit in the socket's buffer.
void send_now(int fd, const std::string& text) {
  ssize_t n = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  (void)n;
}

// The same on a connection (through TLS when it has it; nothing before its handshake).
void send_now(Conn& c, const std::string& text) {
  if (c.ssl == nullptr) return send_now(c.fd, text);
  if (!c.handshake_done) return;
  ERR_clear_error();
  int n = SSL_write(c.ssl, text.data(), static_cast<int>(text.size()));
  if (n <= 0) ERR_clear_error();
}

// Waits until `fd` is ready for `events` or `deadline` passes (at most 1 s per call). False on
// timeout (`timed_out` set) or error.
bool wait_ready(int fd, short events, int64_t deadline, bool& timed_out) {
  int64_t left = deadline - monotonic_ms();
  if (left <= 0) {
    timed_out = true;
    return false;
  }
  pollfd p{fd, events, 0};
  int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
  return r >= 0 || errno == EINTR;
}

// Writes all of `data` through TLS before `deadline`. False on error or timeout.
bool tls_write_all(SSL* ssl, int fd, const char* data, size_t size, int64_t deadline,
                   bool& timed_out) {
  timed_out = false;
  size_t off = 0;
  while (off < size) {
    ERR_clear_error();
    int chunk = static_cast<int>(std::min<size_t>(size - off, 1 << 30));
    int n = SSL_write(ssl, data + off, chunk);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    int err = SSL_get_error(ssl, n);
    ERR_clear_error();
    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
      if (!wait_ready(fd, err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, deadline, timed_out)) {
        return false;
      }
      continue;
    }
    return false;
  }
  return true;
}

// Reads what the connection has, without blocking: > 0 bytes, 0 end of stream (or a TLS
// error), -1 with errno (EAGAIN when nothing more is there; c.want_write when TLS must write
// first).
ssize_t conn_recv(Conn& c, char* buf, size_t size) {
  if (c.ssl == nullptr) return ::recv(c.fd, buf, size, 0);
  ERR_clear_error();
  int n = SSL_read(c.ssl, buf, static_cast<int>(std::min<size_t>(size, 1 << 30)));
  if (n > 0) return n;
  int err = SSL_get_error(c.ssl, n);
  ERR_clear_error();
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    c.want_write = err == SSL_ERROR_WANT_WRITE;
    errno = EAGAIN;
    return -1;
  }
  if (err == SSL_ERROR_SYSCALL && errno == EINTR) return -1;
  return 0;  // close_notify, a reset, or a TLS error: the end of this connection
}

// Writes all of head + body before `deadline` (ms, steady clock). False on error or timeout.
bool write_all(int fd, const std::string& head, const char* body, size_t body_size,
               int64_t deadline, bool& timed_out) {
  timed_out = false;
  size_t off = 0;
  const size_t total = head.size() + body_size;
  while (off < total) {
    iovec iov[2];
    int cnt = 0;
    if (off < head.size()) {
      iov[cnt++] = {const_cast<char*>(head.data() + off), head.size() - off};
      if (body_size > 0) iov[cnt++] = {const_cast<char*>(body), body_size};
    } else {
      size_t b = off - head.size();
      iov[cnt++] = {const_cast<char*>(body + b), body_size - b};
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(cnt);
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_ready(fd, POLLOUT, deadline, timed_out)) return false;
      continue;
    }
    return false;
  }
  return true;
}

}  // namespace

struct HttpServer::Impl {
  Impl(HttpServerOptions o, HttpHandler h, Metrics* m)
      : options(std::move(o)), handler(std::move(h)), metrics(m != nullptr ? m : &own_metrics) {
    params = new Poco::Net::HTTPServerParams;
    params->setServerName(options.server_name);
    params->setKeepAlive(true);
    params->setMaxThreads(options.threads);
    metrics->describe("relais_http_connections_total", "counter",
                      "HTTP connections accepted by the API server");
    metrics->describe("relais_http_timeouts_total", "counter",
                      "HTTP connections closed because a deadline passed (phase: header, body, "
                      "write)");
    metrics->describe("relais_http_refused_total", "counter",
                      "HTTP connections or requests refused by the server itself (reason: "
                      "max_connections, busy, bad_request)");
    c_connections = &metrics->counter("relais_http_connections_total", {});
    c_header = &metrics->counter("relais_http_timeouts_total", {{"phase", "header"}});
    c_body = &metrics->counter("relais_http_timeouts_total", {{"phase", "body"}});
    c_write = &metrics->counter("relais_http_timeouts_total", {{"phase", "write"}});
    c_max_conn = &metrics->counter("relais_http_refused_total", {{"reason", "max_connections"}});
    c_busy = &metrics->counter("relais_http_refused_total", {{"reason", "busy"}});
    c_bad = &metrics->counter("relais_http_refused_total", {{"reason", "bad_request"}});
    c_tls = &metrics->counter("relais_http_refused_total", {{"reason", "tls_handshake"}});
    base_connections = c_connections->value();
    base_header = c_header->value();
    base_body = c_body->value();
    base_write = c_write->value();
    base_refused = c_max_conn->value() + c_busy->value();
    base_bad = c_bad->value();
    base_tls = c_tls->value();
    if (m != nullptr) {
      std::shared_ptr<std::atomic<int64_t>> gauge = open;
      metrics->add_collector([gauge](std::string& out) {
        out +=
            "# HELP relais_http_open_connections Open connections of the API server\n"
            "# TYPE relais_http_open_connections gauge\nrelais_http_open_connections " +
            std::to_string(gauge->load(std::memory_order_relaxed)) + "\n";
      });
    }
  }

  // --- set at construction, read-only afterwards ---
  HttpServerOptions options;
  HttpHandler handler;
  Metrics own_metrics;
  Metrics* metrics;
  Poco::AutoPtr<Poco::Net::HTTPServerParams> params;
  Counter* c_connections;
  Counter* c_header;
  Counter* c_body;
  Counter* c_write;
  Counter* c_max_conn;
  Counter* c_busy;
  Counter* c_bad;
  Counter* c_tls;
  uint64_t base_connections, base_header, base_body, base_write, base_refused, base_bad, base_tls;
  std::shared_ptr<std::atomic<int64_t>> open = std::make_shared<std::atomic<int64_t>>(0);

  // --- set by start() ---
  std::unique_ptr<Poco::Net::ServerSocket> listener;
  SocketAddress server_address;
  int listen_fd = -1;
  int accept_epfd = -1;  // the acceptor's: the listening socket and accept_wake
  int epfd = -1;         // the handler threads': every connection (EPOLLONESHOT) and conn_wake
  int accept_wake = -1;  // eventfd: wakes the acceptor (stop)
  int conn_wake = -1;    // eventfd, level-triggered and never read: wakes every handler thread
  int port = 0;
  std::thread acceptor;
  std::vector<std::thread> workers;
  bool started = false;
  bool stopped = false;

  // --- acceptor thread only ---
  bool listening = false;
  int64_t accept_paused_until = 0;
  int64_t next_sweep = 0;
  bool quiesced_done = false;
  uint32_t next_gen = 0;

  // --- shared ---
  // The open connections by descriptor. Lock order: reg_mu, then a Conn::mu.
  std::mutex reg_mu;
  std::unordered_map<int, std::shared_ptr<Conn>> conns;  // guarded by reg_mu

  std::atomic<bool> stopping{false};       // stop accepting; close what waits for a request
  std::atomic<bool> workers_exit{false};   // the handler threads return
  std::atomic<bool> acceptor_exit{false};  // the acceptor returns
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  // Deferred answers not written yet (their connections owned, without a thread): stop()
  // waits for them before it closes the connections.
  std::mutex deferred_mu;
  std::condition_variable deferred_cv;
  int deferred_waiting = 0;  // guarded by deferred_mu
  // At most 16 per handler thread, and 64 MiB of their bodies (a thread blocked per request
  // held at most `threads` bodies before answers could be deferred).
  std::shared_ptr<DeferBudget> defer_budget = std::make_shared<DeferBudget>(
      16 * static_cast<size_t>(std::max(1, options.threads)), size_t{64} << 20);
  bool quiesced = false;  // guarded by stop_mu: the acceptor accepts nothing more

  // The TLS context of new connections (null: plain HTTP); swapped by reload_tls. Each
  // connection's SSL holds its own reference to the context it was made from.
  mutable std::mutex tls_mu;
  std::shared_ptr<SSL_CTX> tls_ctx;  // guarded by tls_mu

  HttpRequestParser::Limits limits() const {
    HttpRequestParser::Limits l;
    l.max_header_bytes = options.max_header_bytes;
    l.max_header_count = options.max_header_count;
    l.body_limit = options.body_limit;
    return l;
  }

  static void notify_fd(int efd) {
    uint64_t one = 1;
    ssize_t n = ::write(efd, &one, sizeof one);
    (void)n;
  }

  // Arms the connection for its next readable event (caller holds c.mu).
  void rearm(Conn& c) const {
    epoll_event ev{};
    ev.events = (c.want_write ? EPOLLOUT : EPOLLIN) | EPOLLRDHUP | EPOLLONESHOT;
    ev.data.u64 = conn_key(c.fd, c.gen);
    if (::epoll_ctl(epfd, EPOLL_CTL_MOD, c.fd, &ev) != 0) {
      log_error("http", std::string("epoll_ctl: ") + std::strerror(errno));
      c.deadline = 0;  // the sweep closes it
    }
  }

  // Answered and closing: no more to send; read what the client still sends, then close
  // (caller holds c.mu; the caller re-arms).
  void begin_close(Conn& c) const {
    if (c.ssl != nullptr && c.handshake_done) {
      ERR_clear_error();
      SSL_shutdown(c.ssl);  // close_notify, best effort (never waits for the client's)
      ERR_clear_error();
    }
    c.want_write = false;
    ::shutdown(c.fd, SHUT_WR);
    c.phase = Phase::Draining;
    c.deadline = monotonic_ms() + kLingerMs;
  }

  // Sets the reading phase and deadline after bytes arrived or an answer was written.
  void reading_phase(Conn& c, int64_t now) const {
    if (!c.parser.in_progress() && !c.has_input()) {
      if (c.phase != Phase::Idle) {
        c.phase = Phase::Idle;
        c.deadline = now + options.idle_timeout_ms;
      }
    } else if (c.parser.head_done()) {
      if (c.phase != Phase::Body) {
        c.phase = Phase::Body;
        c.deadline = now + options.body_timeout_ms;
      }
    } else if (c.phase != Phase::Head) {
      c.phase = Phase::Head;
      c.deadline = now + options.header_timeout_ms;
    }
  }

  // Closes the connection (caller holds reg_mu and c.mu, and either owns the connection or
  // checked that nobody does). The Conn itself lives on while a thread still holds it.
  void close_locked(Conn& c) {
    c.closed = true;
    ::epoll_ctl(epfd, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    open->fetch_sub(1, std::memory_order_relaxed);
  }

  // Closes a connection the calling handler thread owns.
  void close_owned(const std::shared_ptr<Conn>& cp) {
    std::lock_guard<std::mutex> reg(reg_mu);
    std::lock_guard<std::mutex> lock(cp->mu);
    if (cp->closed) return;
    close_locked(*cp);
    auto it = conns.find(cp->fd);
    if (it != conns.end() && it->second == cp) conns.erase(it);
  }

  // ---------------------------------------------------------------- acceptor thread
  void pause_accepting(int64_t until) {
    if (listening) ::epoll_ctl(accept_epfd, EPOLL_CTL_DEL, listen_fd, nullptr);
    listening = false;
    accept_paused_until = until;
  }

  void resume_accepting() {
    if (listening || stopping.load()) return;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenKey;
    if (::epoll_ctl(accept_epfd, EPOLL_CTL_ADD, listen_fd, &ev) == 0) listening = true;
    accept_paused_until = 0;
  }

  void on_accept() {
    for (int i = 0; i < 256; ++i) {
      sockaddr_storage addr{};
      socklen_t len = sizeof addr;
      int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          log_warn("http", std::string("cannot accept a connection (") + std::strerror(errno) +
                               "); accepting again in 100 ms");
          pause_accepting(monotonic_ms() + 100);
          return;
        }
        log_error("http", std::string("accept: ") + std::strerror(errno));
        return;
      }
      if (open->load(std::memory_order_relaxed) >= options.max_connections) {
        // Counted before the client can see the answer: whoever reads the 503 also reads it
        // in the metrics. (A TLS client gets no answer before its handshake: closed.)
        c_max_conn->inc();
        if (!options.tls.enabled()) {
          send_now(fd, server_answer(503, "too many open connections; try again later",
                                     options.server_name));
        }
        ::close(fd);
        continue;
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      SocketAddress peer(reinterpret_cast<const sockaddr*>(&addr), len);
      auto conn = std::make_shared<Conn>(fd, ++next_gen, peer, limits());
      conn->phase = Phase::Head;  // nothing yet: the head (and the handshake) due from now
      conn->deadline = monotonic_ms() + options.header_timeout_ms;
      if (options.tls.enabled() && !start_tls(*conn)) {
        ::close(fd);
        continue;
      }
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
      ev.data.u64 = conn_key(fd, conn->gen);
      std::lock_guard<std::mutex> reg(reg_mu);
      conns[fd] = conn;  // before the event can be delivered
      if (::epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        log_error("http", std::string("epoll_ctl add: ") + std::strerror(errno));
        conns.erase(fd);
        ::close(fd);
        continue;
      }
      open->fetch_add(1, std::memory_order_relaxed);
      c_connections->inc();
    }
  }

  // A new connection's TLS session, from the current context (acceptor thread).
  bool start_tls(Conn& c) {
    std::shared_ptr<SSL_CTX> ctx;
    {
      std::lock_guard<std::mutex> lock(tls_mu);
      ctx = tls_ctx;
    }
    ERR_clear_error();
    c.ssl = SSL_new(ctx.get());  // holds its own reference to ctx
    if (c.ssl == nullptr || SSL_set_fd(c.ssl, c.fd) != 1) {
      log_error("http", "cannot start TLS on a connection: " + openssl_error_text());
      return false;
    }
    SSL_set_accept_state(c.ssl);
    c.handshake_done = false;
    return true;
  }

  // Acts on the connections whose deadline passed (and, when stopping, closes the ones that
  // wait for a request). A request cut by its deadline is answered 408, then the connection
  // lingers (Draining) so that the answer is not lost to a reset. Connections a handler thread
  // owns are left alone: their thread re-arms or closes them.
  void sweep(int64_t now) {
    const bool closing_all = stopping.load();
    std::lock_guard<std::mutex> reg(reg_mu);
    for (auto it = conns.begin(); it != conns.end();) {
      Conn& c = *it->second;
      std::lock_guard<std::mutex> lock(c.mu);
      bool close = false;
      if (c.owned || c.closed) {
        // Handled right now, or closed by its thread (which erases it).
      } else if (closing_all && c.phase != Phase::Draining) {
        close = true;
      } else if (now >= c.deadline) {
        if (c.phase == Phase::Head && (c.parser.in_progress() || c.has_input())) {
          c_header->inc();
          send_now(c, server_answer(408, "the request head did not arrive in time",
                                    options.server_name));
          begin_close(c);
          rearm(c);
        } else if (c.phase == Phase::Body) {
          c_body->inc();
          send_now(c, server_answer(408, "the request body did not arrive in time",
                                    options.server_name));
          begin_close(c);
          rearm(c);
        } else {
          // Idle keep-alive, a new connection that sent nothing, or the end of a linger.
          if (c.phase == Phase::Head) c_header->inc();
          close = true;
        }
      }
      if (close) {
        close_locked(c);
        it = conns.erase(it);
      } else {
        ++it;
      }
    }
  }

  void acceptor_loop() {
    std::vector<epoll_event> events(4);
    while (true) {
      int n = ::epoll_wait(accept_epfd, events.data(), static_cast<int>(events.size()),
                           static_cast<int>(kSweepEveryMs));
      if (n < 0 && errno != EINTR) {
        log_error("http", std::string("epoll_wait: ") + std::strerror(errno));
        break;
      }
      for (int i = 0; i < n; ++i) {
        uint64_t key = events[static_cast<size_t>(i)].data.u64;
        if (key == kWakeKey) {
          uint64_t v = 0;
          ssize_t r = ::read(accept_wake, &v, sizeof v);
          (void)r;
        } else if (key == kListenKey) {
          on_accept();
        }
      }
      if (stopping.load() && !quiesced_done) {
        // Stop accepting and close what waits for a request.
        pause_accepting(0);
        listener->close();
        sweep(monotonic_ms());
        quiesced_done = true;
        std::lock_guard<std::mutex> lock(stop_mu);
        quiesced = true;
        stop_cv.notify_all();
      }
      if (acceptor_exit.load()) break;
      int64_t now = monotonic_ms();
      if (!listening && accept_paused_until != 0 && now >= accept_paused_until) {
        resume_accepting();
      }
      if (now >= next_sweep) {
        sweep(now);
        next_sweep = now + kSweepEveryMs;
      }
    }
  }

  // ---------------------------------------------------------------- handler threads
  // Each handler thread waits on the shared epoll set for one ready connection at a time, and
  // handles it to the end: no hand-off on the way from the socket to the handler.
  void worker_loop() {
    epoll_event ev{};
    while (true) {
      int n = ::epoll_wait(epfd, &ev, 1, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        log_error("http", std::string("epoll_wait: ") + std::strerror(errno));
        return;
      }
      if (n == 0) continue;
      if (ev.data.u64 == kWakeKey) {
        if (workers_exit.load()) return;
        continue;
      }
      const int fd = static_cast<int>(static_cast<uint32_t>(ev.data.u64));
      const auto gen = static_cast<uint32_t>(ev.data.u64 >> 32);
      std::shared_ptr<Conn> cp;
      {
        std::lock_guard<std::mutex> reg(reg_mu);
        auto it = conns.find(fd);
        if (it == conns.end() || it->second->gen != gen) continue;  // closed meanwhile
        cp = it->second;
      }
      on_event(cp);
    }
  }

  // One readable (or hung-up) connection: claims it, reads what arrived, handles the complete
  // requests, then re-arms it or closes it.
  void on_event(const std::shared_ptr<Conn>& cp) {
    Conn& c = *cp;
    Phase phase;
    {
      std::lock_guard<std::mutex> lock(c.mu);
      // Closed by the sweep, or a second event while its thread still works on it (that thread
      // re-arms it, and epoll reports the bytes again).
      if (c.closed || c.owned) return;
      c.owned = true;
      phase = c.phase;
    }
    c.want_write = false;
    if (!c.pending_out.empty() && !write_pending(cp)) return;
    char buf[kReadChunk];
    if (phase == Phase::Draining) {
      for (int i = 0; i < 4; ++i) {
        ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
        if (n > 0) continue;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        close_owned(cp);  // end of stream or error
        return;
      }
      release(c, nullptr);
      return;
    }
    if (stopping.load()) {  // not a request in progress: close
      close_owned(cp);
      return;
    }
    if (!c.handshake_done && !handshake(cp)) return;
    bool eof = false;
    for (int i = 0; i < 16; ++i) {
      ssize_t n = conn_recv(c, buf, sizeof buf);
      if (n > 0) {
        c.in.append(buf, static_cast<size_t>(n));
        // TLS gives one record (16 KiB at most) per read: read on until nothing is left.
        if (c.ssl == nullptr && static_cast<size_t>(n) < sizeof buf) break;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      eof = true;
      break;
    }
    if (phase == Phase::Idle && c.has_input()) {
      // The header deadline runs from the first byte of the request.
      std::lock_guard<std::mutex> lock(c.mu);
      c.phase = Phase::Head;
      c.deadline = monotonic_ms() + options.header_timeout_ms;
    }
    switch (advance(c)) {
      case Next::Request:
        serve(cp);
        return;
      case Next::Error:
        c_bad->inc();
        send_now(c, server_answer(c.parser.status(), c.parser.detail(), options.server_name));
        if (eof) {
          close_owned(cp);
          return;
        }
        release_closing(c);
        return;
      case Next::NeedMore:
        break;
    }
    if (eof) {
      close_owned(cp);
      return;
    }
    if (c.parser.continue_due()) send_now(c, "HTTP/1.1 100 Continue\r\n\r\n");
    int64_t now = monotonic_ms();
    release(c, &now);
  }

  // Drives the TLS handshake of a connection the calling thread owns. True when it is done
  // (the connection can be read); false when the connection was handed back to wait for the
  // client (its header deadline still runs) or to close (refused: the alert sent, lingering).
  bool handshake(const std::shared_ptr<Conn>& cp) {
    Conn& c = *cp;
    ERR_clear_error();
    int r = SSL_do_handshake(c.ssl);
    if (r == 1) {
      c.handshake_done = true;
      if (options.tls.client_certificates != ClientCertificates::None) {
        c.client = verified_peer_certificate(c.ssl);
      }
      return true;
    }
    int err = SSL_get_error(c.ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      ERR_clear_error();
      c.want_write = err == SSL_ERROR_WANT_WRITE;
      release(c, nullptr);  // the phase and the header deadline stay
      return false;
    }
    // Refused: not TLS, a version or cipher refused, no or a bad client certificate, a reset.
    unsigned long e = ERR_peek_error();
    std::string why = e != 0 ? openssl_error_text() : "connection closed during the handshake";
    c_tls->inc();
    log_debug("http", "TLS handshake refused: " + why);
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_HTTP_REQUEST) {
      // Plain HTTP on the HTTPS port: say so in plain HTTP.
      send_now(c.fd,
               server_answer(400, "this port speaks HTTPS: use https://", options.server_name));
    }
    // Linger (reading what the client still sends) so that it reads the alert, not a reset: a
    // TLS 1.3 client sends its request before the server has checked its certificate.
    release_closing(c);
    return false;
  }

  // Hands the connection back: sets its reading phase (when `now` is given; `answered`: a new
  // deadline whatever the phase was), re-arms it, and lets the sweep see it again.
  void release(Conn& c, const int64_t* now, bool answered = false) {
    std::lock_guard<std::mutex> lock(c.mu);
    if (answered) c.phase = Phase::Draining;  // so that reading_phase starts a fresh deadline
    if (now != nullptr) reading_phase(c, *now);
    c.owned = false;
    rearm(c);
  }

  // Hands the connection back in its closing linger.
  void release_closing(Conn& c) {
    std::lock_guard<std::mutex> lock(c.mu);
    begin_close(c);
    c.owned = false;
    rearm(c);
  }

  // Runs the connection's complete request, writes the answer, then the requests already
  // received after it (pipelined), and hands the connection back. The calling thread owns it.
  // A deferred answer (plain HTTP): the connection stays owned, without a thread, until
  // finish_deferred writes the answer.
  void serve(const std::shared_ptr<Conn>& cp) {
    Conn& c = *cp;
    while (true) {
      const HttpRequestHead& head = c.parser.head();
      BufferedResponse resp;
      resp.setVersion(head.version_minor == 0 ? HTTPResponse::HTTP_1_0 : HTTPResponse::HTTP_1_1);
      resp.set("Date", http_date());
      resp.set("Server", options.server_name);
      resp.setKeepAlive(head.keep_alive);
      DeferSlot slot;
      if (c.ssl == nullptr) {
        slot.make = [this, &cp, &resp, &c]() -> std::shared_ptr<Deferred> {
          const size_t bytes = c.parser.body().size();
          if (!defer_budget->take(bytes)) return nullptr;
          return std::make_shared<Deferred>(
              resp, [this, cp](BufferedResponse& answer) { finish_deferred(cp, answer); },
              defer_budget, bytes);
        };
      }
      {
        BufferedRequest req(head, c.parser.body(), c.peer, server_address, *params, resp,
                            c.ssl != nullptr, c.client ? &*c.client : nullptr,
                            c.ssl == nullptr ? &slot : nullptr);
        try {
          handler(req, resp);
        } catch (const std::exception& e) {
          log_error("http", std::string("handler failed: ") + e.what());
          abandon(slot, resp);
        } catch (...) {
          log_error("http", "handler failed");
          abandon(slot, resp);
        }
      }
      BufferedResponse* answer = &resp;
      if (slot.made) {
        {
          std::lock_guard<std::mutex> lock(deferred_mu);
          ++deferred_waiting;  // before finish() can run: counted down by finish_deferred
        }
        if (slot.made->handler_returned()) return;  // finish() writes the answer
        deferred_done();
        answer = &slot.made->response();  // finished already: written here
      }
      if (!write_answer(cp, *answer, false)) return;
      Next next = advance(c);
      if (next == Next::Request) continue;  // pipelined: answered in order, by this thread
      if (next == Next::Error) {
        c_bad->inc();
        send_now(c, server_answer(c.parser.status(), c.parser.detail(), options.server_name));
        release_closing(c);
        return;
      }
      if (c.parser.continue_due()) send_now(c, "HTTP/1.1 100 Continue\r\n\r\n");
      int64_t now = monotonic_ms();
      release(c, &now, true);
      return;
    }
  }

  // The handler threw: a deferral it made is cancelled; a 500 unless it had answered.
  static void abandon(DeferSlot& slot, BufferedResponse& resp) {
    if (slot.made) slot.made->abandon();
    slot.made.reset();
    if (!resp.sent()) answer_500(resp);
  }

  // Writes the answer to the connection's current request (the calling thread owns the
  // connection) and resets its parser. False when the connection is done with here: closed (a
  // write error), handed back closing (no keep-alive), or its answer left to a handler thread
  // (`foreign`: the caller must not block; what the socket does not take at once is written
  // by the next thread that claims the connection). True: keep-alive, the caller reads on.
  bool write_answer(const std::shared_ptr<Conn>& cp, BufferedResponse& resp, bool foreign) {
    Conn& c = *cp;
    const HttpRequestHead& head = c.parser.head();
    const bool is_head = head.method == "HEAD";
    const bool keep =
        resp.getKeepAlive() && head.keep_alive && !c.parser.body_refused() && !stopping.load();
    std::string text = head_text(resp, is_head, keep);
    const std::string& body = resp.body();
    const bool no_body = is_head || resp.getStatus() < 200 ||
                         resp.getStatus() == HTTPResponse::HTTP_NO_CONTENT ||
                         resp.getStatus() == HTTPResponse::HTTP_NOT_MODIFIED;
    bool timed_out = false;
    const int64_t deadline = monotonic_ms() + options.write_timeout_ms;
    bool ok;
    if (foreign) {
      if (!no_body) text += body;
      ok = send_some(c, text, keep);
    } else if (c.ssl != nullptr) {
      if (!no_body) text += body;  // one write: the head and the body in the same records
      ok = tls_write_all(c.ssl, c.fd, text.data(), text.size(), deadline, timed_out);
    } else {
      ok = write_all(c.fd, text, body.data(), no_body ? 0 : body.size(), deadline, timed_out);
    }
    if (timed_out) c_write->inc();
    c.parser.reset();
    if (!ok) {
      close_owned(cp);
      return false;
    }
    if (!c.pending_out.empty()) {
      // The rest waits for the socket: a handler thread writes it (then closes, or reads on).
      std::lock_guard<std::mutex> lock(c.mu);
      c.phase = Phase::Idle;  // the sweep closes it when the client does not read in time
      c.deadline = monotonic_ms() + options.write_timeout_ms;
      c.owned = false;
      c.want_write = true;
      rearm(c);
      return false;
    }
    if (!keep) {
      release_closing(c);
      return false;
    }
    return true;
  }

  // One non-blocking write of `text` (plain HTTP): what the socket does not take is kept in
  // c.pending_out (with whether to close after it). False on a write error.
  static bool send_some(Conn& c, const std::string& text, bool keep) {
    size_t off = 0;
    while (off < text.size()) {
      ssize_t n = ::send(c.fd, text.data() + off, text.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        off += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      return false;
    }
    if (off < text.size()) {
      c.pending_out.assign(text, off);
      c.close_after_pending = !keep;
    }
    return true;
  }

  // A deferred answer, finished on any thread (the store's completion thread): written without
  // blocking; then the connection is handed back, reading (for a request already received
  // after it, pipelined, a handler thread is woken by EPOLLOUT to serve it: never this thread).
  void finish_deferred(const std::shared_ptr<Conn>& cp, BufferedResponse& resp) {
    Conn& c = *cp;
    if (write_answer(cp, resp, true)) {
      int64_t now = monotonic_ms();
      std::lock_guard<std::mutex> lock(c.mu);
      c.phase = Phase::Draining;  // so that reading_phase starts a fresh deadline
      reading_phase(c, now);
      c.owned = false;
      c.want_write = c.has_input();  // EPOLLOUT: ready at once, a handler thread serves it
      rearm(c);
    }
    deferred_done();
  }

  // A deferred answer was written (or handed over): stop() may go on when none is left.
  void deferred_done() {
    std::lock_guard<std::mutex> lock(deferred_mu);
    if (--deferred_waiting == 0) deferred_cv.notify_all();
  }

  // The answer a deferred answer left to the socket (pending_out), written by the handler
  // thread that claimed the connection. False when the connection is done with (closed, or
  // handed back closing); true: it reads on.
  bool write_pending(const std::shared_ptr<Conn>& cp) {
    Conn& c = *cp;
    std::string out = std::move(c.pending_out);
    c.pending_out.clear();
    bool timed_out = false;
    bool ok =
        write_all(c.fd, out, nullptr, 0, monotonic_ms() + options.write_timeout_ms, timed_out);
    if (timed_out) c_write->inc();
    if (!ok) {
      close_owned(cp);
      return false;
    }
    if (c.close_after_pending) {
      c.close_after_pending = false;
      release_closing(c);
      return false;
    }
    return true;
  }

  static void answer_500(BufferedResponse& resp) {
    resp.setStatusAndReason(HTTPResponse::HTTP_INTERNAL_SERVER_ERROR);
    resp.setContentType("application/json");
    resp.setKeepAlive(false);
    resp.send() << R"({"error":"internal error","detail":"see the relais log"})";
  }

  // The status line and headers; Content-Length from the buffered body.
  static std::string head_text(BufferedResponse& resp, bool is_head, bool keep) {
    resp.setKeepAlive(keep);
    resp.setChunkedTransferEncoding(false);
    const int status = static_cast<int>(resp.getStatus());
    if (status >= 200 && status != 204 && status != 304) {
      if (!is_head || !resp.hasContentLength()) {
        resp.setContentLength64(static_cast<Poco::Int64>(resp.body().size()));
      }
    }
    std::string out;
    out.reserve(256 + resp.size() * 32);
    out += resp.getVersion();
    out += ' ';
    out += std::to_string(status);
    out += ' ';
    // Handlers set the status alone (setStatus keeps the reason "OK"): name it.
    out += status != 200 && resp.getReason() == "OK" ? reason_of(status) : resp.getReason();
    out += "\r\n";
    for (const auto& [k, v] : resp) {
      out += k;
      out += ": ";
      out += v;
      out += "\r\n";
    }
    out += "\r\n";
    return out;
  }
};

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler, Metrics* metrics)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler), metrics)) {}

HttpServer::~HttpServer() {
  stop();
}

int HttpServer::start() {
  Impl& s = *impl_;
  if (s.options.tls.enabled()) {
    std::string error;
    s.tls_ctx = make_server_tls_context(s.options.tls, error);
    if (!s.tls_ctx) throw std::runtime_error(error);
  }
  SocketAddress addr(s.options.address, static_cast<Poco::UInt16>(s.options.port));
  s.listener = std::make_unique<Poco::Net::ServerSocket>(addr, s.options.backlog);
  s.listener->setBlocking(false);
  s.server_address = s.listener->address();
  s.port = s.server_address.port();
  s.listen_fd = s.listener->impl()->sockfd();
  s.accept_epfd = ::epoll_create1(EPOLL_CLOEXEC);
  s.epfd = ::epoll_create1(EPOLL_CLOEXEC);
  s.accept_wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  s.conn_wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s.accept_epfd < 0 || s.epfd < 0 || s.accept_wake < 0 || s.conn_wake < 0) {
    throw std::runtime_error(std::string("cannot create the HTTP server's epoll: ") +
                             std::strerror(errno));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeKey;
  ::epoll_ctl(s.accept_epfd, EPOLL_CTL_ADD, s.accept_wake, &ev);
  ::epoll_ctl(s.epfd, EPOLL_CTL_ADD, s.conn_wake, &ev);  // level-triggered: wakes them all
  s.resume_accepting();
  if (!s.listening) {
    throw std::runtime_error(std::string("cannot watch the listening socket: ") +
                             std::strerror(errno));
  }
  s.started = true;
  s.acceptor = std::thread([&s] {
    set_thread_name("http-accept");
    s.acceptor_loop();
  });
  for (int i = 0; i < std::max(1, s.options.threads); ++i) {
    s.workers.emplace_back([&s, i] {
      set_thread_name("http", i);
      s.worker_loop();
    });
  }
  return s.port;
}

void HttpServer::stop() {
  Impl& s = *impl_;
  if (!s.started || s.stopped) return;
  s.stopped = true;
  // 1. The acceptor stops accepting and closes the connections waiting for a request (and,
  //    every sweep from now on, the ones handed back); a handler thread closes what it claims
  //    unless a request is complete, which it answers with Connection: close.
  s.stopping.store(true);
  Impl::notify_fd(s.accept_wake);
  {
    std::unique_lock<std::mutex> lock(s.stop_mu);
    s.stop_cv.wait(lock, [&] { return s.quiesced; });
  }
  // 2. The handler threads finish the requests in progress and return.
  s.workers_exit.store(true);
  Impl::notify_fd(s.conn_wake);
  for (auto& t : s.workers) t.join();
  s.workers.clear();
  {
    // The deferred answers still to come (the store answers every accept, committed or not).
    std::unique_lock<std::mutex> lock(s.deferred_mu);
    s.deferred_cv.wait(lock, [&] { return s.deferred_waiting == 0; });
  }
  // 3. The acceptor returns; every connection left is closed.
  s.acceptor_exit.store(true);
  Impl::notify_fd(s.accept_wake);
  s.acceptor.join();
  {
    std::lock_guard<std::mutex> reg(s.reg_mu);
    for (auto& [fd, c] : s.conns) {
      std::lock_guard<std::mutex> lock(c->mu);
      if (!c->closed) s.close_locked(*c);
    }
    s.conns.clear();
  }
  ::close(s.epfd);
  ::close(s.accept_epfd);
  ::close(s.accept_wake);
  ::close(s.conn_wake);
  s.epfd = s.accept_epfd = s.accept_wake = s.conn_wake = -1;
}

int HttpServer::port() const {
  return impl_->port;
}

HttpServerStats HttpServer::stats() const {
  const Impl& s = *impl_;
  HttpServerStats st;
  st.connections = s.c_connections->value() - s.base_connections;
  st.header_timeouts = s.c_header->value() - s.base_header;
  st.body_timeouts = s.c_body->value() - s.base_body;
  st.write_timeouts = s.c_write->value() - s.base_write;
  st.refused = s.c_max_conn->value() + s.c_busy->value() - s.base_refused;
  st.bad_requests = s.c_bad->value() - s.base_bad;
  st.tls_failures = s.c_tls->value() - s.base_tls;
  st.open = s.open->load(std::memory_order_relaxed);
  return st;
}

}  // namespace relais::api

namespace relais::api {

bool HttpServer::reload_tls(std::string& error) {
  Impl& s = *impl_;
  if (!s.options.tls.enabled()) {
    error = "TLS is not configured (server.tls)";
    return false;
  }
  std::shared_ptr<SSL_CTX> ctx = make_server_tls_context(s.options.tls, error);
  if (!ctx) return false;
  std::lock_guard<std::mutex> lock(s.tls_mu);
  s.tls_ctx.swap(ctx);  // the old one is freed with its last connection
  return true;
}

std::shared_ptr<DeferredAnswer> defer_answer(Poco::Net::HTTPServerRequest& request) {
  auto* r = dynamic_cast<BufferedRequest*>(&request);
  return r != nullptr ? r->defer() : nullptr;
}

const PeerCertificate* peer_certificate(const Poco::Net::HTTPServerRequest& request) {
  const auto* r = dynamic_cast<const BufferedRequest*>(&request);
  return r != nullptr ? r->peer_certificate() : nullptr;
}

}  // namespace relais::api

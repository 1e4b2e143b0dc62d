#pragma once
// A small event-driven HTTP/1.1 server for the API, through Poco's HTTPServerRequest/
// HTTPServerResponse interfaces (the API's handlers are the ones written for Poco's HTTPServer).
// A connection costs a file descriptor and a buffer while it waits for its bytes, never a
// thread.
//
// Threads: one acceptor thread accepts (its own epoll set: the listening socket) and sweeps the
// deadlines every 100 ms; a fixed pool of handler threads all wait on one shared epoll set of
// connections (EPOLLONESHOT: a ready connection is delivered to exactly one thread). The thread
// that gets a connection reads it without blocking; when a request is complete it runs the
// handler right there, writes the answer, answers the pipelined requests already received and
// re-arms the connection; when not, it keeps the bytes and re-arms. No hand-off between threads
// on the way from the socket to the handler.
//
// Per connection: a header deadline (the whole head within header_timeout_ms of its first
// byte, or of the accept), a body deadline (the whole body within body_timeout_ms of the head),
// a keep-alive idle timeout, a write deadline; 408 and close when a deadline passes while a
// request is arriving. Bodies by Content-Length or chunked; "Expect: 100-continue" answered
// before the body is read; HTTP/1.0 and "Connection: close"; pipelined requests answered in
// order. See docs/architecture.md (Threads and ownership).
//
// Deferred answers (plain HTTP): a handler may take its request's answer with defer_answer()
// and return at once; whoever holds the DeferredAnswer (the store's completion thread, once a
// commit is durable) finishes it later: the answer is written from that thread without
// blocking it (what the socket does not take at once is written by a handler thread), and the
// connection is handed back. No handler thread waits for the store meanwhile.
//
// TLS (options.tls set): the same reactor, non-blocking OpenSSL. The handshake is driven by the
// thread that owns the connection (SSL_do_handshake; WANT_READ / WANT_WRITE re-arm the
// connection for EPOLLIN / EPOLLOUT), inside the header deadline: a client that opens TCP and
// never finishes its handshake is closed by the sweep like one that never sends its head, and
// holds no thread meanwhile. The context is a shared_ptr swapped by reload_tls() (SIGHUP):
// new connections take the new one, open connections keep theirs. The verified client
// certificate of a connection is given to the handler through peer_certificate(request).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>

#include "api/http_parser.h"
#include "api/tls_server.h"

namespace relais {
class Metrics;
}

namespace relais::api {

struct HttpServerOptions {
  std::string address = "127.0.0.1";
  int port = 0;  // 0: any free port
  int backlog = 1024;
  int threads = 16;            // handler threads
  int max_connections = 4096;  // open connections; beyond, a new one gets 503 and is closed
  int max_queued = 512;        // unused: no request waits in a queue (kept for configurations)
  int64_t header_timeout_ms = 10000;
  int64_t body_timeout_ms = 60000;
  int64_t idle_timeout_ms = 30000;   // keep-alive: between two requests
  int64_t write_timeout_ms = 30000;  // writing one answer
  size_t max_header_bytes = 16 * 1024;
  size_t max_header_count = 100;
  // The largest body for a request head (413 beyond); empty: 1 MiB.
  std::function<int64_t(const HttpRequestHead&)> body_limit;
  std::string server_name = "relais";  // the Server header
  TlsServerOptions tls;                // enabled(): HTTPS only on this port
};

// Runs one request; never called concurrently for the same connection. Must not throw (an
// exception is answered 500 and logged).
using HttpHandler =
    std::function<void(Poco::Net::HTTPServerRequest&, Poco::Net::HTTPServerResponse&)>;

// What the server counted since it started (also exported as relais_http_* metrics).
struct HttpServerStats {
  uint64_t connections = 0;      // accepted
  uint64_t header_timeouts = 0;  // head not complete in time (408 when a byte had come)
  uint64_t body_timeouts = 0;    // body not complete in time (408)
  uint64_t write_timeouts = 0;   // answer not written in time
  uint64_t refused = 0;          // over max_connections (503)
  uint64_t bad_requests = 0;     // refused by the parser (400, 413, 417, 431, 501, 505)
  uint64_t tls_failures = 0;     // TLS handshakes that failed (refused, not TLS, bad certificate)
  int64_t open = 0;              // open connections now
};

// Owns the listening socket, the acceptor thread, the handler threads and every connection.
// start() and stop() are called from one thread (the owner); the handler runs on the handler
// threads, one request of a connection at a time. `metrics` (optional, not owned) must outlive
// the server; the handler must stay valid until stop() returns.
//
// Connection lifetime across threads: a connection is a shared_ptr in a registry (by
// descriptor, guarded by a mutex); its epoll data is its descriptor and a generation, never a
// pointer, so an event that races with a close finds nothing (or another generation) and is
// dropped. A handler thread claims the connection under the connection's mutex (`owned`),
// works on it without the lock, and hands it back (phase, deadline, `owned` false, re-arm)
// under the lock; it closes it itself on end of stream or a write error. The sweep acts only on
// connections nobody owns (408, or close), under the registry's mutex then the connection's;
// a thread that claims a connection the sweep closed drops it; the shared_ptr keeps the memory
// alive until the last holder lets go.
class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler, Metrics* metrics = nullptr);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the threads; returns the bound port. Throws when it cannot bind
  // (start-up only).
  int start();
  // Stops accepting, closes the connections that wait for a request, lets the requests being
  // handled (or queued) finish and write their answer, then closes everything. Idempotent.
  void stop();
  int port() const;
  HttpServerStats stats() const;
  // Builds a new TLS context from the files of options.tls (read again) and makes it the one
  // of new connections; the connections already open keep theirs. On failure (a file missing,
  // the key not matching…) the current context stays and `error` says why. False too when TLS
  // is off. Thread-safe.
  bool reload_tls(std::string& error);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The answer of a request whose handler returned without sending it (defer_answer). finish()
// fills the response (status, headers, body; the headers set before defer_answer are kept)
// with `fill`, on the calling thread, writes it and hands the connection back; only the first
// call counts. When the last holder lets go without finishing, the client gets 500. `fill`
// must not throw. Thread-safe.
class DeferredAnswer {
 public:
  virtual ~DeferredAnswer() = default;
  virtual void finish(const std::function<void(Poco::Net::HTTPServerResponse&)>& fill) = 0;
};

// Called by a handler of HttpServer: the answer of `request` is given later through the
// returned object, and the handler returns without sending. nullptr when the request cannot be
// deferred (a TLS connection, a request not served by HttpServer, or the deferred answers in
// flight at their bound: 16 per handler thread and 64 MiB of request bodies, so that a stalled
// store holds back the clients as blocked threads did): answer it as usual. Called twice for
// one request, the same object.
std::shared_ptr<DeferredAnswer> defer_answer(Poco::Net::HTTPServerRequest& request);

// The client certificate verified during the TLS handshake of the connection that carries
// `request` (options.tls.client_ca set and a certificate sent), or nullptr: plain HTTP, no
// certificate, or a request not served by HttpServer. Valid while the request is handled.
const PeerCertificate* peer_certificate(const Poco::Net::HTTPServerRequest& request);

}  // namespace relais::api

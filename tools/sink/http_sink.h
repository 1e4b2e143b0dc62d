#pragma once
// A small HTTP server that records what it receives and answers as programmed. Used by the
// tests (as the destination under test), the benchmark (as the local sink) and the demo
// sandbox. Never linked into relais itself. A request whose body arrived incomplete is not
// recorded, counted nor answered.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace Poco::Net {
class HTTPServer;
}

namespace relais::tools {

struct SinkRequest {
  std::string method;
  std::string path;                            // with query
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  // The connection served an earlier request (keep-alive): a client that loses the answer may
  // re-send on its own (libcurl does so for a reused connection that dies before any byte).
  bool reused = false;
};

struct SinkResponse {
  int status = 200;
  std::map<std::string, std::string> headers;
  std::string body = "{\"ok\":true}";
  // Close the connection without answering anything (a peer that dies after doing the work).
  bool reset = false;
};

// Thread-safe: requests are served on a thread pool; accessors lock. Owns its server.
class HttpSink {
 public:
  using Responder = std::function<SinkResponse(const SinkRequest&)>;

  // Listens on 127.0.0.1:port (0 = a free port). keep_bodies=false keeps only counts (bench).
  explicit HttpSink(int port = 0, bool keep_bodies = true, int threads = 16);
  ~HttpSink();

  int port() const { return port_; }
  void set_responder(Responder r);
  std::vector<SinkRequest> requests() const;
  size_t count() const { return count_.load(); }  // 2xx answers (deliveries)
  size_t total() const { return total_.load(); }  // every request, whatever the answer
  // Waits until at least n requests arrived or timeout_ms passed; returns the count.
  size_t wait_for(size_t n, int timeout_ms) const;
  void clear();

  // Called by the server's handlers.
  SinkResponse handle(SinkRequest&& request);
  // Called by the server's handlers: true when connection `id` served a request before.
  bool note_connection(const std::string& id);

 private:
  int port_ = 0;
  bool keep_bodies_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  Responder responder_;
  std::vector<SinkRequest> requests_;
  std::atomic<size_t> count_{0};
  std::atomic<size_t> total_{0};
  size_t in_flight_ = 0;  // handlers running (guarded by mu_); the destructor waits for 0
  // Requests served per connection (session address and peer), guarded by mu_.
  std::map<std::string, size_t> served_;

  std::unique_ptr<Poco::Net::HTTPServer> server_;
};

}  // namespace relais::tools

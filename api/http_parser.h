#pragma once
// An incremental HTTP/1.x request parser: request line, headers, then a Content-Length or
// chunked body, fed with whatever bytes have arrived. No sockets, no threads: the event-driven
// server (http_server.h) feeds it, and the unit tests drive it byte by byte.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace relais::api {

// What the head of one request says. Plain data.
struct HttpRequestHead {
  std::string method;
  std::string target;     // as sent: origin-form ("/a/b?c") or absolute-form
  int version_minor = 1;  // HTTP/1.0 or HTTP/1.1
  std::vector<std::pair<std::string, std::string>> headers;  // in order, names as sent
  int64_t content_length = -1;                               // -1: no Content-Length
  bool chunked = false;                                      // Transfer-Encoding: chunked
  bool keep_alive = true;        // HTTP/1.1 unless "Connection: close"; 1.0 only with keep-alive
  bool expect_continue = false;  // "Expect: 100-continue"

  // The first header of that name (any case), or nullptr.
  const std::string* find(std::string_view name) const;
};

struct HttpParserLimits {
  size_t max_header_bytes = 16 * 1024;  // request line + headers; beyond: 431
  size_t max_header_count = 100;        // header lines; beyond: 431
  // The largest body accepted for this head (e.g. larger for batches); empty: 1 MiB.
  std::function<int64_t(const HttpRequestHead&)> body_limit;
};

// Parses one request at a time from a byte stream.
//
//   size_t used = 0;
//   auto st = parser.parse(buf.data() + pos, buf.size() - pos, used);
//   pos += used;     // consumed bytes; the unconsumed ones are passed again, with more appended
//   if (parser.continue_due()) write "HTTP/1.1 100 Continue";
//   if (st == Complete) { handle(parser.head(), parser.body()); parser.reset(); }
//
// A request whose Content-Length is over the body limit completes at once without its body
// (body_refused()): the handler answers it (413) and the connection must then be closed, since
// the body was not read. Not thread-safe; owns the head and body of the current request.
class HttpRequestParser {
 public:
  enum class Status { NeedMore, Complete, Error };
  using Limits = HttpParserLimits;

  explicit HttpRequestParser(Limits limits = {});

  // Parses what it can of data[0, size). `used` is how many bytes were consumed; bytes not
  // consumed (an incomplete head line, the next pipelined request after Complete) must be passed
  // again at the start of the next call. Error: status() and detail() say why; the parser stays
  // in error until reset().
  Status parse(const char* data, size_t size, size_t& used);

  // Prepares for the next request on the same connection (keeps the buffers' capacity).
  void reset();

  // True once when the client waits for "100 Continue" before sending the body: the head asked
  // for it, a body is expected and none of it has arrived. Marks it answered.
  bool continue_due();

  bool head_done() const { return state_ != State::Head; }
  // True while a request has started (any byte of it consumed) and is not complete.
  bool in_progress() const { return started_ && state_ != State::Complete; }
  const HttpRequestHead& head() const { return head_; }
  HttpRequestHead& head() { return head_; }
  std::string& body() { return body_; }
  bool body_refused() const { return body_refused_; }
  int status() const { return error_status_; }  // 400, 413, 417, 431, 501 or 505
  const std::string& detail() const { return error_detail_; }

 private:
  enum class State { Head, Body, ChunkSize, ChunkData, ChunkDataEnd, Trailer, Complete, Error };

  Status fail(int status, std::string detail);
  Status parse_head(const char* data, size_t size, size_t& used);
  bool parse_head_text(std::string_view text);
  Status start_body();

  Limits limits_;
  State state_ = State::Head;
  HttpRequestHead head_;
  std::string body_;
  int64_t body_limit_ = 0;
  int64_t remaining_ = 0;  // bytes left of the body (Content-Length) or of the current chunk
  size_t scanned_ = 0;     // bytes of the unconsumed head already searched for its end
  size_t line_bytes_ = 0;  // bytes of the trailer section consumed so far
  bool started_ = false;
  bool body_refused_ = false;
  bool continue_answered_ = false;
  int error_status_ = 0;
  std::string error_detail_;
};

}  // namespace relais::api

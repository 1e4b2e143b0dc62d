#include "api/http_parser.h"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace relais::api {
namespace {

constexpr size_t kMaxChunkLine = 1024;
constexpr int64_t kDefaultBodyLimit = 1 << 20;
constexpr size_t kKeptBodyCapacity = 1 << 20;

bool is_token_char(char c) {
  if (std::isalnum(static_cast<unsigned char>(c)) != 0) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_token_char);
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The line [0, nl) without its '\r'.
std::string_view line_of(const char* data, size_t nl) {
  std::string_view line(data, nl);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

}  // namespace

const std::string* HttpRequestHead::find(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return &v;
  }
  return nullptr;
}

HttpRequestParser::HttpRequestParser(Limits limits) : limits_(std::move(limits)) {}

void HttpRequestParser::reset() {
  state_ = State::Head;
  head_.method.clear();
  head_.target.clear();
  head_.version_minor = 1;
  head_.headers.clear();
  head_.content_length = -1;
  head_.chunked = false;
  head_.keep_alive = true;
  head_.expect_continue = false;
  if (body_.capacity() > kKeptBodyCapacity) {
    std::string().swap(body_);
  } else {
    body_.clear();
  }
  body_limit_ = 0;
  remaining_ = 0;
  scanned_ = 0;
  line_bytes_ = 0;
  started_ = false;
  body_refused_ = false;
  continue_answered_ = false;
  error_status_ = 0;
  error_detail_.clear();
}

bool HttpRequestParser::continue_due() {
  if (continue_answered_ || !head_.expect_continue || !body_.empty()) return false;
  if (state_ != State::Body && state_ != State::ChunkSize) return false;
  continue_answered_ = true;
  return true;
}

HttpRequestParser::Status HttpRequestParser::fail(int status, std::string detail) {
  state_ = State::Error;
  error_status_ = status;
  error_detail_ = std::move(detail);
  return Status::Error;
}

HttpRequestParser::Status HttpRequestParser::parse(const char* data, size_t size, size_t& used) {
  used = 0;
  while (true) {
    const char* p = data + used;
    const size_t left = size - used;
    switch (state_) {
      case State::Complete:
        return Status::Complete;
      case State::Error:
        return Status::Error;
      case State::Head: {
        size_t n = 0;
        Status st = parse_head(p, left, n);
        used += n;
        if (st != Status::Complete) return st;
        if (state_ == State::Head) return Status::NeedMore;
        break;
      }
      case State::Body:
      case State::ChunkData: {
        if (left == 0) return Status::NeedMore;
        size_t take =
            static_cast<size_t>(std::min<int64_t>(remaining_, static_cast<int64_t>(left)));
        body_.append(p, take);
        used += take;
        remaining_ -= static_cast<int64_t>(take);
        if (remaining_ > 0) return Status::NeedMore;
        state_ = state_ == State::Body ? State::Complete : State::ChunkDataEnd;
        break;
      }
      case State::ChunkSize: {
        const void* nl = std::memchr(p, '\n', left);
        if (nl == nullptr) {
          if (left > kMaxChunkLine) return fail(400, "a chunk size line is too long");
          return Status::NeedMore;
        }
        size_t len = static_cast<size_t>(static_cast<const char*>(nl) - p);
        std::string_view line = line_of(p, len);
        line = trim(line.substr(0, line.find(';')));  // chunk extensions are ignored
        if (line.empty() || line.size() > 15 || !std::all_of(line.begin(), line.end(), [](char c) {
              return std::isxdigit(static_cast<unsigned char>(c)) != 0;
            })) {
          return fail(400, "a chunk size is not a hexadecimal number");
        }
        int64_t chunk = std::stoll(std::string(line), nullptr, 16);
        used += len + 1;
        if (chunk == 0) {
          state_ = State::Trailer;
          break;
        }
        if (static_cast<int64_t>(body_.size()) + chunk > body_limit_) {
          return fail(413, "the body exceeds " + std::to_string(body_limit_) + " bytes");
        }
        remaining_ = chunk;
        state_ = State::ChunkData;
        break;
      }
      case State::ChunkDataEnd: {
        if (left == 0) return Status::NeedMore;
        if (p[0] == '\n') {
          used += 1;
        } else if (p[0] == '\r') {
          if (left < 2) return Status::NeedMore;
          if (p[1] != '\n') return fail(400, "a chunk does not end with CRLF");
          used += 2;
        } else {
          return fail(400, "a chunk is longer than its size");
        }
        state_ = State::ChunkSize;
        break;
      }
      case State::Trailer: {
        const void* nl = std::memchr(p, '\n', left);
        if (nl == nullptr) {
          if (line_bytes_ + left > limits_.max_header_bytes)
            return fail(431, "the trailer section is too large");
          return Status::NeedMore;
        }
        size_t len = static_cast<size_t>(static_cast<const char*>(nl) - p);
        std::string_view line = line_of(p, len);
        used += len + 1;
        line_bytes_ += len + 1;
        if (line_bytes_ > limits_.max_header_bytes)
          return fail(431, "the trailer section is too large");
        if (line.empty()) state_ = State::Complete;  // trailer fields are ignored
        break;
      }
    }
  }
}

HttpRequestParser::Status HttpRequestParser::parse_head(const char* data, size_t size,
                                                        size_t& used) {
  used = 0;
  if (!started_) {
    // A server ignores empty lines before the request line (RFC 9112 §2.2).
    while (used < size && (data[used] == '\r' || data[used] == '\n')) ++used;
    if (used == size) return Status::NeedMore;
    started_ = true;
    data += used;
    size -= used;
  }
  size_t skipped = used;
  size_t end = 0;
  size_t i = scanned_;
  while (i < size) {
    const void* nl = std::memchr(data + i, '\n', size - i);
    if (nl == nullptr) break;
    size_t at = static_cast<size_t>(static_cast<const char*>(nl) - data);
    // An empty line ends the head: "\n\n" or "\n\r\n".
    if ((at >= 1 && data[at - 1] == '\n') ||
        (at >= 2 && data[at - 1] == '\r' && data[at - 2] == '\n')) {
      end = at + 1;
      break;
    }
    i = at + 1;
  }
  if (end == 0) {
    scanned_ = size;
    if (size > limits_.max_header_bytes) {
      return fail(
          431, "the request head exceeds " + std::to_string(limits_.max_header_bytes) + " bytes");
    }
    return Status::NeedMore;
  }
  if (end > limits_.max_header_bytes) {
    return fail(431,
                "the request head exceeds " + std::to_string(limits_.max_header_bytes) + " bytes");
  }
  used = skipped + end;
  if (!parse_head_text(std::string_view(data, end))) return Status::Error;
  return start_body();
}

bool HttpRequestParser::parse_head_text(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  if (lines.empty()) {
    fail(400, "empty request");
    return false;
  }
  // Request line: method SP target SP version.
  std::string_view rl = lines[0];
  size_t sp1 = rl.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : rl.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || rl.find(' ', sp2 + 1) != std::string_view::npos) {
    fail(400, "malformed request line");
    return false;
  }
  std::string_view method = rl.substr(0, sp1);
  std::string_view target = rl.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = rl.substr(sp2 + 1);
  if (!is_token(method) || target.empty() || std::any_of(target.begin(), target.end(), [](char c) {
        return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f;
      })) {
    fail(400, "malformed request line");
    return false;
  }
  if (version == "HTTP/1.1") {
    head_.version_minor = 1;
  } else if (version == "HTTP/1.0") {
    head_.version_minor = 0;
  } else if (version.size() == 8 && version.substr(0, 5) == "HTTP/") {
    fail(505, "only HTTP/1.0 and HTTP/1.1 are served");
    return false;
  } else {
    fail(400, "malformed request line");
    return false;
  }
  head_.method.assign(method);
  head_.target.assign(target);
  head_.keep_alive = head_.version_minor == 1;

  if (lines.size() - 1 > limits_.max_header_count) {
    fail(431,
         "the request has more than " + std::to_string(limits_.max_header_count) + " header lines");
    return false;
  }
  bool has_te = false;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    if (line.front() == ' ' || line.front() == '\t') {
      fail(400, "folded header lines are not accepted");
      return false;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) {
      fail(400, "malformed header line");
      return false;
    }
    std::string_view name = line.substr(0, colon);
    std::string_view value = trim(line.substr(colon + 1));
    if (std::any_of(value.begin(), value.end(), [](char c) {
          return (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f;
        })) {
      fail(400, "a header value holds a control character");
      return false;
    }
    if (iequals(name, "Content-Length")) {
      if (value.empty() || value.size() > 18 ||
          !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        fail(400, "Content-Length is not a number");
        return false;
      }
      int64_t n = std::stoll(std::string(value));
      if (head_.content_length >= 0 && head_.content_length != n) {
        fail(400, "conflicting Content-Length headers");
        return false;
      }
      head_.content_length = n;
    } else if (iequals(name, "Transfer-Encoding")) {
      has_te = true;
      if (!iequals(value, "chunked")) {
        fail(501, "the only transfer coding accepted is chunked");
        return false;
      }
      head_.chunked = true;
    } else if (iequals(name, "Connection")) {
      std::string_view rest = value;
      while (!rest.empty()) {
        size_t comma = rest.find(',');
        std::string_view token = trim(rest.substr(0, comma));
        if (iequals(token, "close")) head_.keep_alive = false;
        if (iequals(token, "keep-alive") && head_.version_minor == 0) head_.keep_alive = true;
        rest.remove_prefix(comma == std::string_view::npos ? rest.size() : comma + 1);
      }
    } else if (iequals(name, "Expect")) {
      if (!iequals(value, "100-continue")) {
        fail(417, "the only expectation accepted is 100-continue");
        return false;
      }
      head_.expect_continue = head_.version_minor == 1;
    }
    head_.headers.emplace_back(std::string(name), std::string(value));
  }
  if (has_te && head_.version_minor == 0) {
    fail(400, "Transfer-Encoding is not allowed in HTTP/1.0");
    return false;
  }
  if (has_te && head_.content_length >= 0) {
    fail(400, "a request may not carry both Transfer-Encoding and Content-Length");
    return false;
  }
  // "Connection: close" wins over "keep-alive" whatever their order.
  const std::string* conn = head_.find("Connection");
  if (conn != nullptr) {
    std::string_view rest = *conn;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      if (iequals(trim(rest.substr(0, comma)), "close")) head_.keep_alive = false;
      rest.remove_prefix(comma == std::string_view::npos ? rest.size() : comma + 1);
    }
  }
  return true;
}

HttpRequestParser::Status HttpRequestParser::start_body() {
  body_limit_ = limits_.body_limit ? limits_.body_limit(head_) : kDefaultBodyLimit;
  if (head_.chunked) {
    state_ = State::ChunkSize;
    return Status::Complete;  // of the head; parse() goes on with the body
  }
  if (head_.content_length > 0) {
    if (head_.content_length > body_limit_) {
      // Not read: the handler answers (413) and the connection is closed afterwards.
      body_refused_ = true;
      state_ = State::Complete;
      return Status::Complete;
    }
    if (static_cast<size_t>(head_.content_length) <= kKeptBodyCapacity) {
      body_.reserve(static_cast<size_t>(head_.content_length));
    }
    remaining_ = head_.content_length;
    state_ = State::Body;
    return Status::Complete;
  }
  // No Content-Length and not chunked: a request has no body (RFC 9112 §6.3).
  state_ = State::Complete;
  return Status::Complete;
}

}  // namespace relais::api

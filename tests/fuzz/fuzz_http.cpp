// Fuzz target: the API server's request parser (api/http_parser.h) over arbitrary bytes, fed
// in two pieces (split where the first byte says) and followed through pipelined requests.

#include <string>

#include "api/http_parser.h"
#include "tests/fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  relais::api::HttpParserLimits limits;
  limits.max_header_bytes = 2048;
  limits.body_limit = [](const relais::api::HttpRequestHead& h) {
    return h.target.size() % 2 == 0 ? int64_t{64} : int64_t{4096};
  };
  relais::api::HttpRequestParser parser(limits);
  const std::string all(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t split = data[0] % (all.size() + 1);
  std::string buffer;
  size_t pos = 0;
  for (size_t piece = 0; piece < 2; ++piece) {
    buffer += piece == 0 ? all.substr(0, split) : all.substr(split);
    for (int requests = 0; requests < 64; ++requests) {
      size_t used = 0;
      auto st = parser.parse(buffer.data() + pos, buffer.size() - pos, used);
      if (used > buffer.size() - pos) __builtin_trap();
      pos += used;
      if (st == relais::api::HttpRequestParser::Status::Error) {
        if (parser.status() < 400 || parser.detail().empty()) __builtin_trap();
        return 0;
      }
      if (st == relais::api::HttpRequestParser::Status::NeedMore) {
        parser.continue_due();
        break;
      }
      if (parser.body_refused()) return 0;  // the connection closes here
      parser.reset();
    }
  }
  return 0;
}

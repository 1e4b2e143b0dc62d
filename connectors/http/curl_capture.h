#pragma once
// What every libcurl-based connector needs around one request: the shared transfer options
// (timeouts, TLS verification, no redirects, http/https only) and the capture of the answer
// (a bounded body, the response headers by lower-case name). Stateless helpers; a CurlCapture
// belongs to one request on one thread.

#include <curl/curl.h>

#include <cstdint>
#include <map>
#include <string>

#include "core/status.h"

namespace relais {

struct CurlCapture {
  explicit CurlCapture(size_t max_body) : max_body(max_body) {}
  size_t max_body;  // bytes of the body kept; the rest is dropped
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case name → value (last one wins)
  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct CurlTransfer {
  int64_t timeout_ms = 30000;
  int64_t connect_timeout_ms = 5000;
  bool tls_verify = true;
  std::string ca_file;
};

// Percent-encodes `v` for a URL or a form body (curl_easy_escape).
std::string url_escape(CURL* h, const std::string& v);

// Resets `h` and sets the URL, the transfer options and the capture of the answer.
void prepare_curl(CURL* h, const std::string& url, const CurlTransfer& transfer,
                  CurlCapture& capture);
// The connectors' "test the connection": resolves the host of `url`, connects and, for https,
// completes the TLS handshake with the transfer's verification settings — and sends nothing.
// The failure names the host and port (never the path, the query or credentials) in French,
// for the console.
Status probe_connection(const std::string& url, const CurlTransfer& transfer);

}  // namespace relais

#include "apps/api_client.h"

#include <curl/curl.h>

#include <cstdlib>

#include "connectors/http/curl_capture.h"

namespace relais {

std::string ApiAnswer::describe() const {
  if (status == 0) return error.empty() ? std::string("no answer") : error;
  std::string out = "HTTP " + std::to_string(status);
  auto j = json();
  if (j.is_object() && j.contains("error")) {
    out += ": " + j.value("error", std::string());
    std::string detail = j.value("detail", std::string());
    if (!detail.empty()) out += " (" + detail + ")";
  }
  return out;
}

ApiClient::ApiClient(std::string base_url, std::string token, int64_t timeout_ms)
    : curl_(curl_easy_init()),
      base_(std::move(base_url)),
      token_(std::move(token)),
      timeout_ms_(timeout_ms) {
  while (!base_.empty() && base_.back() == '/') base_.pop_back();
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v != nullptr ? v : "");
  };
  tls_.ca_file = env("RELAIS_CA_FILE");
  tls_.client_certificate = env("RELAIS_CLIENT_CERTIFICATE");
  tls_.client_key = env("RELAIS_CLIENT_KEY");
}

ApiClient::~ApiClient() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

std::string ApiClient::escape(const std::string& segment) {
  return url_escape(static_cast<CURL*>(curl_), segment);
}

ApiAnswer ApiClient::send(const std::string& method, const std::string& path,
                          const std::string& body, const std::string& content_type,
                          std::optional<bool> idempotent) {
  ApiAnswer out;
  CURL* h = static_cast<CURL*>(curl_);
  if (h == nullptr) {
    out.error = "curl_easy_init failed";
    return out;
  }
  CurlTransfer transfer;
  transfer.timeout_ms = timeout_ms_;
  transfer.tls = tls_;
  CurlCapture capture(1 << 26);
  // prepare_curl resets the handle's options; the connection cache stays (keep-alive).
  prepare_curl(h, base_ + path, transfer, capture);
  struct curl_slist* hdrs = nullptr;
  if (!token_.empty()) hdrs = curl_slist_append(hdrs, ("Authorization: Bearer " + token_).c_str());
  if (!content_type.empty())
    hdrs = curl_slist_append(hdrs, ("Content-Type: " + content_type).c_str());
  hdrs = curl_slist_append(hdrs, "Expect:");  // no 100-continue round trip for big bodies
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  bool once_only = !idempotent.value_or(idempotent_method(method));
  set_request(h, capture, method, body, !once_only);
  CURLcode rc = curl_easy_perform(h);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out.status);
    out.body = std::move(capture.body);
  } else if (classify_curl_failure(rc, capture, !once_only) == CurlFailure::UnknownOutcome) {
    out.maybe_applied = true;
    out.error = "no answer from relais at " + base_ + " after the request was sent (" +
                curl_easy_strerror(rc) + "): it may have been applied; check before repeating it";
  } else {
    out.error = std::string("cannot reach relais at ") + base_ + ": " + curl_easy_strerror(rc);
  }
  curl_slist_free_all(hdrs);
  return out;
}

}  // namespace relais

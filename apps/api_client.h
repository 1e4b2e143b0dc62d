#pragma once
// ApiClient: the sub-commands' client of a running relais's HTTP API (bearer token, JSON or
// NDJSON bodies) over one libcurl handle that keeps its connection alive between requests.
// A non-idempotent request (POST, PATCH unless the caller says otherwise) is never re-sent by
// libcurl on a reused connection that died (connectors/http/curl_capture.h): the answer says
// when it may have been applied without an answer. A relais with server.tls is reached over
// https with the CA bundle in $RELAIS_CA_FILE (else the system's) and, for mutual TLS, the
// client certificate and key (PEM) in $RELAIS_CLIENT_CERTIFICATE and $RELAIS_CLIENT_KEY.
// Not thread-safe: one client per thread. Owns its curl handle.

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/tls_client.h"

namespace relais {

struct ApiAnswer {
  long status = 0;    // 0 = no HTTP answer (connection refused, reset, timeout…)
  std::string body;   // bounded
  std::string error;  // the transport error when status == 0
  // status == 0 and the request went out: relais may have applied it (check before repeating a
  // non-idempotent request).
  bool maybe_applied = false;
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
  // "HTTP 403: forbidden (needs the admin role)" from an error answer, or the transport error.
  std::string describe() const;
};

class ApiClient {
 public:
  ApiClient(std::string base_url, std::string token, int64_t timeout_ms = 60000);
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  // `path` starts with "/" and is appended to the base URL. `idempotent`: whether sending the
  // request twice is harmless (default: from the method; a batch of messages with idempotency
  // keys is).
  ApiAnswer send(const std::string& method, const std::string& path, const std::string& body,
                 const std::string& content_type, std::optional<bool> idempotent = std::nullopt);
  ApiAnswer get(const std::string& path) { return send("GET", path, "", ""); }
  ApiAnswer send_json(const std::string& method, const std::string& path,
                      const nlohmann::json& body) {
    return send(method, path, body.dump(), "application/json");
  }
  // Percent-encodes one path segment.
  std::string escape(const std::string& segment);
  const std::string& base_url() const { return base_; }

 private:
  void* curl_ = nullptr;  // CURL*
  std::string base_;
  std::string token_;
  int64_t timeout_ms_;
  TlsClientOptions tls_;  // from the environment (above)
};

}  // namespace relais

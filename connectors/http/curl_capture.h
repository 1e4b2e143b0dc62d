#pragma once
// What every libcurl-based client needs around one request: the shared transfer options
// (timeouts, TLS verification, no redirects, http/https only), the capture of the answer
// (a bounded body, the response headers by lower-case name), the request's method and body sent
// so that a non-idempotent request is never silently re-sent (set_request), and the reading of
// a transport failure as "not sent" or "sent, outcome unknown" (classify_curl_failure).
// Stateless helpers; a CurlCapture belongs to one request on one thread.
//
// Why: libcurl re-sends a request by itself when a reused keep-alive connection dies before any
// answer byte ("Connection died, retrying a fresh connect"), rewinding the body it already sent.
// For a POST the partner may have saved the first one: the re-send duplicates it. set_request
// sends a non-idempotent body through a read callback whose seek callback refuses that rewind
// (libcurl then fails instead of re-sending); a rewind after an answer arrived (a 401 of an
// authentication handshake) is allowed. A bodiless non-idempotent request goes on a fresh
// connection, which libcurl never retries.

#include <curl/curl.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config_spec.h"
#include "core/status.h"
#include "core/tls_client.h"

namespace relais {

struct CurlCapture {
  explicit CurlCapture(size_t max_body) : max_body(max_body) {}
  size_t max_body;  // bytes of the body kept; the rest is dropped
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case name → value (last one wins)
  // Set by the transfer (prepare_curl's callbacks):
  bool request_started = false;  // CURLOPT_PREREQFUNCTION ran: the request was about to go out
  bool answered = false;         // a response line arrived since the body last went out
  // The request's body (set_request), owned here so that it outlives the transfer; a guarded
  // one is read by libcurl through a callback.
  std::string upload;
  bool guarded = false;
  size_t upload_pos = 0;
  bool rewind_refused = false;        // libcurl wanted to re-send it with no answer: refused
  char error[CURL_ERROR_SIZE] = {0};  // libcurl's own words on a failure (CURLOPT_ERRORBUFFER)
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
  TlsClientOptions tls;  // client certificate (and a CA bundle, which wins over ca_file)
};

// The keys of those transfer options, for a connector's spec: timeout (its default and
// description given: what one request or attempt is), connect_timeout, tls_verify, ca_file and
// the `tls` block.
std::vector<FieldSpec> curl_transfer_fields(const std::string& timeout_description,
                                            const std::string& ca_description =
                                                "CA bundle to verify the server with (PEM); "
                                                "superseded by tls.ca_file");

// The transfer options a libcurl connector declares: timeout, connect_timeout, tls_verify,
// ca_file and the `tls` block (core/tls_client.h). Start-up only: throws (naming `where`) when
// a file of the tls block is missing or its password cannot be read.
CurlTransfer curl_transfer_from(const ConfigView& config, const std::string& where);

// Percent-encodes `v` for a URL or a form body (curl_easy_escape).
std::string url_escape(CURL* h, const std::string& v);

// Resets `h` and sets the URL, the transfer options (the client certificate of transfer.tls
// included) and the capture of the answer (and of whether the request started:
// CURLOPT_PREREQFUNCTION, libcurl >= 7.80).
void prepare_curl(CURL* h, const std::string& url, const CurlTransfer& transfer,
                  CurlCapture& capture);

// True for the methods HTTP defines as idempotent (RFC 9110 9.2.2): GET, HEAD, PUT, DELETE,
// OPTIONS. POST and PATCH are not.
bool idempotent_method(const std::string& method);
// Whether set_request sends a body for `method` (GET and HEAD never do): what a signature
// covers must be what goes out.
bool method_sends_body(const std::string& method);

// Sets the method and the body of the request prepared on `h` (after prepare_curl, with the
// same `capture`). `body` must stay alive until curl_easy_perform returns.
// - idempotent: the body is given to libcurl as is (it may re-send it on a reused connection
//   that died: harmless for an idempotent request);
// - not idempotent, with a body: the body goes through CURLOPT_READFUNCTION and a
//   CURLOPT_SEEKFUNCTION that refuses to rewind when the body went out and nothing came back
//   (libcurl then fails with CURLE_SEND_FAIL_REWIND or CURLE_RECV_ERROR instead of re-sending);
//   a rewind after an answer (an NTLM or Basic 401) is allowed;
// - not idempotent, without a body: a fresh connection, closed afterwards
//   (CURLOPT_FRESH_CONNECT, CURLOPT_FORBID_REUSE): libcurl only re-sends on a reused one.
// A GET, HEAD or bodiless DELETE sends no body whatever `body` holds.
void set_request(CURL* h, CurlCapture& capture, const std::string& method, const std::string& body,
                 bool idempotent);

// What a failed transfer (curl_easy_perform != CURLE_OK) means for the request.
enum class CurlFailure {
  NotSent,         // no request went out (DNS, refused, connect or TLS failure — a TLS 1.3
                   // server's refusal of the client certificate included: plain retry
  Sent,            // an idempotent request failed after it started: plain retry
  UnknownOutcome,  // a non-idempotent request may have reached the partner: find out first
};
CurlFailure classify_curl_failure(CURLcode rc, const CurlCapture& capture, bool idempotent);

// The failure as an Outcome (always a retry). Classes: "network", "timeout", "tls" (not sent:
// "cannot reach <what>: …"; an idempotent request sent: "no complete answer from <what>: …";
// `what` naming the partner, e.g. "the SMS gateway", then, for a TLS failure, libcurl's
// `detail`, e.g. the alert), "unknown_outcome" (a French text for the support desk, whoever the
// partner).
Outcome curl_failure_outcome(CURLcode rc, CurlFailure failure, const std::string& what,
                             const std::string& detail = "");
inline Outcome curl_failure_outcome(CURLcode rc, const CurlCapture& capture, bool idempotent,
                                    const std::string& what) {
  return curl_failure_outcome(rc, classify_curl_failure(rc, capture, idempotent), what,
                              capture.error);
}
// The connectors' "test the connection": resolves the host of `url`, connects and, for https,
// completes the TLS handshake with the transfer's verification settings — and sends nothing.
// The failure names the host and port (never the path, the query or credentials) in French,
// for the console.
Status probe_connection(const std::string& url, const CurlTransfer& transfer);

}  // namespace relais

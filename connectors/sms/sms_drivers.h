// The SMS gateway drivers: Kannel (smsbox sendsms HTTP interface), OVH (REST API, signed
// requests) and a generic HTTP driver configured by templates. Each driver has one place that
// builds the request (build) and one that classifies the answer (classify); submit_sms does the
// transfer, so that a submission is never sent twice without knowing it. Drivers are safe to
// use from every worker: immutable after construction but for OVH's clock offset, an atomic.
#pragma once

#include <curl/curl.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "connectors/http/curl_capture.h"
#include "core/clock.h"
#include "core/config_spec.h"
#include "core/status.h"

namespace relais::sms {

// One SMS to send, as the drivers see it.
struct SmsToSend {
  std::string to;          // E.164
  std::string text;        // UTF-8
  bool ucs2 = false;       // the text needs UCS-2
  std::string sender;      // sender id ("" = the gateway's default)
  std::string reference;   // our id for delivery reports ("d<delivery id>")
  std::string client_ref;  // stable across retries (the mapping's reference, else reference)
};

// One HTTP request.
struct HttpCall {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
};

// What the gateway's answer means.
struct GatewayAnswer {
  Outcome::Kind kind = Outcome::Kind::Delivered;
  std::string state;        // Delivered: "accepted" | "queued"
  std::string gateway_ref;  // Delivered: the gateway's id, when it gives one
  std::string text;         // for the attempt history
};

// One gateway's protocol. Owned by its SMS destination (one per destination); const methods
// are called concurrently from the destination's workers.
class SmsDriver {
 public:
  virtual ~SmsDriver() = default;
  virtual const char* name() const = 0;
  // The request for one SMS at `now`.
  virtual HttpCall build(const SmsToSend& sms, Millis now) const = 0;
  // The answer's meaning.
  virtual GatewayAnswer classify(long status, const std::string& body) const = 0;
  // A request to make before build() when the driver needs the gateway's time (OVH's
  // /auth/time), else nullopt; its answer goes to on_time_answer(). Thread-safe.
  virtual std::optional<HttpCall> time_call(Millis now) const {
    (void)now;
    return std::nullopt;
  }
  virtual void on_time_answer(long status, const std::string& body, Millis now) const {
    (void)status;
    (void)body;
    (void)now;
  }
  // Whether the gateway itself refuses a second SMS with the same client reference.
  virtual bool deduplicates() const { return false; }
};

// What one submission to the gateway gave. Value type.
struct Submission {
  bool answered = false;  // the gateway answered: status, body, answer
  bool not_sent = false;  // no answer, and certainly nothing reached the gateway
  long status = 0;
  std::string body;      // the answer, bounded
  GatewayAnswer answer;  // answered: the driver's reading
  // Unless the gateway accepted the SMS: the attempt's outcome — a retry ("network",
  // "timeout": not sent; "unknown_outcome": sent, no answer), the gateway's "slow down" (429,
  // 503 with Retry-After: a throttle of the destination), a retry or a reject on its answer.
  Outcome outcome;
};

// Sends `sms` through `driver` on the slot's handle `h` (the driver's time call first, when it
// needs one). The submission is never re-sent by the transport: Kannel's GET goes on a fresh
// connection, a POST (OVH, template driver) with a body libcurl may not rewind once sent
// (connectors/http/curl_capture.h), unless the gateway deduplicates. `max_retry_after_ms` caps
// the gateway's Retry-After. Never throws.
Submission submit_sms(CURL* h, const SmsDriver& driver, const SmsToSend& sms,
                      const CurlTransfer& transfer, const Clock& clock, int64_t max_retry_after_ms);

// The driver keys (one spec shared by every driver; each reads its own keys).
const ConfigSpec& sms_driver_spec();
// Builds the configured driver; throws std::runtime_error at start-up on bad settings.
std::unique_ptr<SmsDriver> make_sms_driver(const ConfigView& config);
// Checks the driver's keys (required per driver, templates that parse).
void check_sms_driver(const ConfigView& config, const std::string& file,
                      std::vector<ConfigError>& errors);

// The OVH signature: "$1$" + hex SHA-1 of AS+CK+METHOD+URL+BODY+TIMESTAMP joined by '+'.
std::string ovh_signature(const std::string& application_secret, const std::string& consumer_key,
                          const std::string& method, const std::string& url,
                          const std::string& body, int64_t timestamp);

// Percent-encodes everything but unreserved characters (RFC 3986).
std::string url_encode(const std::string& s);

}  // namespace relais::sms

#pragma once
// What both calendar drivers share around one HTTP request: curl handles per worker slot, the
// exchange itself (method, headers, body, auth) and the reading of a network failure.
// Internal to connectors/calendar, connectors/genesis (which reuses the handles, the exchange and
// the reading of a network failure) and connectors/booking (the exchange with CMS76's RDV API).

#include <curl/curl.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "connectors/calendar/calendar.h"
#include "connectors/http/curl_capture.h"
#include "core/config_spec.h"
#include "core/status.h"
#include "core/throttle_gate.h"

namespace relais::calendar {

struct HttpAuth {
  enum class Mode { None, Basic, Ntlm, Bearer };
  Mode mode = Mode::None;
  std::string user;
  std::string password;
  std::string bearer;
};

struct HttpAnswer {
  CURLcode rc = CURLE_OK;
  CurlFailure failure = CurlFailure::NotSent;  // rc != CURLE_OK: sent or not, outcome unknown
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// One curl handle per worker slot. Each slot is used by one thread at a time (the dispatcher's
// contract); owns the handles.
class CurlHandles {
 public:
  explicit CurlHandles(int slots);
  ~CurlHandles();
  CurlHandles(const CurlHandles&) = delete;
  CurlHandles& operator=(const CurlHandles&) = delete;
  CURL* at(int slot) const { return handles_.at(static_cast<size_t>(slot) % handles_.size()); }

 private:
  std::vector<CURL*> handles_;
};

// Whether a request may be sent twice (a search, an update, a delete) or must go at most once
// (a create): see set_request in connectors/http/curl_capture.h. Fresh: idempotent, but the same
// bytes must never go twice (a WS-Security nonce: the peer refuses a replay), so libcurl must
// not re-send it by itself; a failure after it went out is a plain retry, which builds a new one.
enum class Send { Idempotent, Once, Fresh };

// Performs one request. `headers` are "Name: value" lines. Never throws.
HttpAnswer http_exchange(CURL* h, const std::string& method, const std::string& url,
                         const std::vector<std::string>& headers, const std::string& body,
                         const CurlTransfer& transfer, const HttpAuth& auth,
                         Send send = Send::Idempotent, size_t max_body = 4 * 1024 * 1024);

// A transport failure as a retry (or a TLS problem, which a person must fix, as a retry too: the
// certificate may be renewed); "unknown_outcome" when a Send::Once request may have been taken.
Outcome network_failure(const HttpAnswer& answer, const std::string& what);
// The same for a request that may be sent twice.
Outcome network_failure(CURLcode rc, const std::string& what);

// The partner's Retry-After read by parse_retry_after_ms (connectors/http/http_connector.h):
// nullopt when absent or unreadable.
std::optional<int64_t> retry_after_ms(const std::string& value, Millis now_ms);

// The pause taken when a partner throttles without saying for how long (the dispatcher's
// default, retry.throttle_default, is 5 s too; the gate needs a number).
inline constexpr int64_t kDefaultThrottleMs = 5000;

// The throttle scope of a mailbox: the address in lower case (Exchange throttles per mailbox).
std::string mailbox_scope(const std::string& mailbox);

// The per-mailbox gate every request of a driver goes through (null: no gate, e.g. the
// reconciliation command). Thread-safe (the ThrottleGate locks itself); does not own the gate.
class MailboxGate {
 public:
  MailboxGate(ThrottleGate* gate, const Clock& clock) : gate_(gate), clock_(clock) {}
  // A throttle outcome for the time left when `mailbox` is paused, else nullopt: the request
  // must not be sent.
  std::optional<Outcome> closed(const std::string& mailbox) const;
  // The partner asked to slow down for `mailbox`: pauses it (capped) for every slot and returns
  // the throttle outcome the delivery gets. `after_ms` nullopt: kDefaultThrottleMs.
  Outcome pause(const std::string& mailbox, int code, const std::string& text,
                std::optional<int64_t> after_ms) const;

 private:
  ThrottleGate* gate_;
  const Clock& clock_;
};

// The bounded excerpt kept in the attempt history.
std::string excerpt(const std::string& body, size_t max = 1024);

// The OAuth2 settings and transfer options of a `calendar` configuration; `default_scope`
// applies when the configuration names none.
TokenSettings token_settings(const ConfigView& c, const std::string& default_scope);

std::unique_ptr<Driver> make_ews_driver(const ConfigView& c, const std::string& destination,
                                        int slots, const Clock& clock, ThrottleGate* gate);
std::unique_ptr<Driver> make_graph_driver(const ConfigView& c, const std::string& destination,
                                          int slots, const Clock& clock, ThrottleGate* gate);

// The IANA zone of a Windows time zone id ("Romance Standard Time" → "Europe/Paris"); an IANA
// name is returned as it is; "" when unknown.
std::string iana_zone(const std::string& zone);
// The wall-clock time ("2019-05-17T10:00:00") in IANA zone `iana` of the instant `iso` (ISO
// 8601 with an offset); false when the zone or the time cannot be read.
bool wall_clock_in(const std::string& iso, const std::string& iana, std::string& out);
// The instant ("2019-05-17T08:00:00Z") of wall-clock time `wall` ("2019-05-17T10:00:00",
// fractions ignored) in zone `zone` (IANA or Windows id; "UTC" or "" = UTC); false when the
// zone or the time cannot be read.
bool utc_from_wall(const std::string& wall, const std::string& zone, std::string& out);

}  // namespace relais::calendar

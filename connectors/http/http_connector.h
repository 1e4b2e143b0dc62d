#pragma once
// The generic HTTP destination (libcurl).

#include "core/connector.h"

namespace relais {

// Registers the "http" connector kind.
void register_http_connector(ConnectorRegistry& registry);

// Parses a Retry-After value — delay-seconds (with the fraction Microsoft Graph sends: "2.128")
// or an HTTP-date — into milliseconds from `now_ms`. The one reader of Retry-After.
// Returns -1 when the value is not understood.
int64_t parse_retry_after_ms(const std::string& value, int64_t now_ms);

// Classifies an HTTP status the way every HTTP-based connector does: 2xx delivered; 408, 425,
// 429 and 5xx retry; any other status reject.
Outcome::Kind classify_http_status(long status);

// The outcome of an answer that classify_http_status() calls Retry, for every HTTP-based
// connector: 429 (with or without Retry-After) and 503 with a Retry-After are the partner's
// "slow down": Outcome::throttle(scope, ...) — not an attempt, no back-off step; with an empty
// scope the whole destination pauses. Any other (408, 425, 5xx) is a retry that honours a
// Retry-After. The partner's delay is capped by `max_retry_after_ms` (the destination's
// retry.max_retry_after, ConnectorContext::max_retry_after_ms). `text` describes the answer
// ("HTTP 429 from the destination").
Outcome retry_or_throttle(long status, const std::string& retry_after, int64_t now_ms,
                          int64_t max_retry_after_ms, const std::string& text,
                          const std::string& scope = "");

}  // namespace relais

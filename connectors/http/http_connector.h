#pragma once
// The generic HTTP destination (libcurl).

#include "core/connector.h"

namespace relais {

// Registers the "http" connector kind.
void register_http_connector(ConnectorRegistry& registry);

// Parses a Retry-After value (delay-seconds or HTTP-date) into milliseconds from `now_ms`.
// Returns -1 when the value is not understood.
int64_t parse_retry_after_ms(const std::string& value, int64_t now_ms);

// Classifies an HTTP status the way every HTTP-based connector does: 2xx delivered; 408, 425,
// 429 and 5xx retry; any other status reject.
Outcome::Kind classify_http_status(long status);

}  // namespace relais

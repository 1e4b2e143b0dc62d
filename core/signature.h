#pragma once
// Signed webhooks: HMAC-SHA256 over "TIMESTAMP.BODY" (the timestamp header's value, a dot, then
// the body's bytes exactly as sent), the signature header carrying "sha256=" + lower-case hex
// (a bare hex digest is accepted too), the timestamp header carrying Unix seconds. A receiver
// refuses a message whose timestamp is farther than `tolerance` from its clock: a captured
// request cannot be replayed later than that. The same scheme verifies what sources send
// (routing/hub_config: `sources.X.signature`) and signs what the http connector sends
// (`sign`). Stateless functions; the spec objects are static data.

#include <cstdint>
#include <string>

#include "core/config_spec.h"

namespace relais {

struct SignatureScheme {
  std::string header = "X-Signature";
  std::string secret;
  std::string timestamp_header = "X-Timestamp";
  int64_t tolerance_ms = 5 * 60 * 1000;  // verification only
};

// `signature:` of a source (header, secret, timestamp_header, tolerance, scheme).
const ConfigSpec& signature_verify_spec();
// `sign:` of an outbound connector (header, secret, timestamp_header, scheme).
const ConfigSpec& signature_sign_spec();
// Reads a validated `signature:` or `sign:` object.
SignatureScheme signature_scheme_from(const ConfigView& v);

// The exact text that is signed: timestamp + "." + body.
std::string signed_text(const std::string& timestamp, const std::string& body);
// The signature header's value for `body` sent at `timestamp` (Unix seconds, decimal):
// "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)).
std::string signature_value(const std::string& secret, const std::string& timestamp,
                            const std::string& body);

enum class SignatureCheck {
  Ok,
  MissingSignature,  // no signature header
  MissingTimestamp,  // no timestamp header
  BadTimestamp,      // not a number of seconds
  Stale,             // outside the tolerance (too old: a replay; or too far in the future)
  BadSignature,      // the HMAC does not match (wrong secret, body or timestamp changed)
};
// A stable code for answers and metrics: "missing_signature", "stale_timestamp", …
const char* to_string(SignatureCheck c);
// What failed, in a sentence for the sender (names the headers, never the secret).
std::string explain(SignatureCheck c, const SignatureScheme& s);

// Checks one request. `signature` / `timestamp` are the headers' values ("" when absent);
// the comparison of digests takes constant time.
SignatureCheck verify_signature(const SignatureScheme& s, const std::string& signature,
                                const std::string& timestamp, const std::string& body,
                                int64_t now_ms);

}  // namespace relais

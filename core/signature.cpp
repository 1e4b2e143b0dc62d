#include "core/signature.h"

#include <cctype>

#include "core/crypto.h"

namespace relais {
namespace {

using F = FieldType;

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

const ConfigSpec& signature_verify_spec() {
  static const ConfigSpec s{
      "signature",
      {
          {"header", F::String, "X-Signature", false,
           "header carrying sha256=HEX, the HMAC-SHA256 of TIMESTAMP.BODY"},
          {"secret", F::Secret, "", true, "the shared secret (${ENV} or @file:PATH)"},
          {"timestamp_header", F::String, "X-Timestamp", false,
           "header carrying the time of sending, in Unix seconds (signed with the body)"},
          {"tolerance",
           F::Duration,
           "5m",
           false,
           "largest gap between the timestamp and the clock; an older request (a replay) or "
           "one from the future is refused",
           {},
           nullptr,
           1000,
           86400000},
          {"scheme", F::String, "hmac-sha256", false, "signature scheme", {"hmac-sha256"}},
      }};
  return s;
}

const ConfigSpec& signature_sign_spec() {
  static const ConfigSpec s{
      "sign",
      {
          {"header", F::String, "X-Signature", false,
           "header receiving sha256=HEX, the HMAC-SHA256 of TIMESTAMP.BODY"},
          {"secret", F::Secret, "", true, "the secret shared with the partner (${ENV} or @file:)"},
          {"timestamp_header", F::String, "X-Timestamp", false,
           "header receiving the time of sending, in Unix seconds"},
          {"scheme", F::String, "hmac-sha256", false, "signature scheme", {"hmac-sha256"}},
      }};
  return s;
}

SignatureScheme signature_scheme_from(const ConfigView& v) {
  SignatureScheme s;
  s.header = v.str("header");
  s.secret = v.str("secret");
  s.timestamp_header = v.str("timestamp_header");
  if (v.has("tolerance")) s.tolerance_ms = v.duration_ms("tolerance");
  return s;
}

std::string signed_text(const std::string& timestamp, const std::string& body) {
  std::string out;
  out.reserve(timestamp.size() + 1 + body.size());
  out += timestamp;
  out += '.';
  out += body;
  return out;
}

std::string signature_value(const std::string& secret, const std::string& timestamp,
                            const std::string& body) {
  return "sha256=" + hmac_sha256_hex(secret, signed_text(timestamp, body));
}

const char* to_string(SignatureCheck c) {
  switch (c) {
    case SignatureCheck::Ok:
      return "ok";
    case SignatureCheck::MissingSignature:
      return "missing_signature";
    case SignatureCheck::MissingTimestamp:
      return "missing_timestamp";
    case SignatureCheck::BadTimestamp:
      return "bad_timestamp";
    case SignatureCheck::Stale:
      return "stale_timestamp";
    case SignatureCheck::BadSignature:
      return "bad_signature";
  }
  return "bad_signature";
}

std::string explain(SignatureCheck c, const SignatureScheme& s) {
  switch (c) {
    case SignatureCheck::Ok:
      return "the signature is valid";
    case SignatureCheck::MissingSignature:
      return "the " + s.header + " header is missing: this source accepts signed requests only";
    case SignatureCheck::MissingTimestamp:
      return "the " + s.timestamp_header +
             " header is missing (Unix seconds, signed with the body)";
    case SignatureCheck::BadTimestamp:
      return "the " + s.timestamp_header + " header is not a number of Unix seconds";
    case SignatureCheck::Stale:
      return "the " + s.timestamp_header + " header is more than " +
             std::to_string(s.tolerance_ms / 1000) +
             " s away from the server's clock: the request is refused as a possible replay";
    case SignatureCheck::BadSignature:
      return "the " + s.header +
             " header does not match: expected sha256=HEX, the HMAC-SHA256 of TIMESTAMP.BODY "
             "under the shared secret";
  }
  return "";
}

SignatureCheck verify_signature(const SignatureScheme& s, const std::string& signature,
                                const std::string& timestamp, const std::string& body,
                                int64_t now_ms) {
  if (signature.empty()) return SignatureCheck::MissingSignature;
  if (timestamp.empty()) return SignatureCheck::MissingTimestamp;
  if (timestamp.size() > 12) return SignatureCheck::BadTimestamp;
  for (char c : timestamp) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return SignatureCheck::BadTimestamp;
  }
  int64_t sent_ms = std::stoll(timestamp) * 1000;
  int64_t gap = sent_ms > now_ms ? sent_ms - now_ms : now_ms - sent_ms;
  if (gap > s.tolerance_ms) return SignatureCheck::Stale;
  std::string given = lower(signature);
  if (given.rfind("sha256=", 0) == 0) given = given.substr(7);
  std::string expected = hmac_sha256_hex(s.secret, signed_text(timestamp, body));
  if (expected.empty() || !constant_time_equals(given, expected)) {
    return SignatureCheck::BadSignature;
  }
  return SignatureCheck::Ok;
}

}  // namespace relais

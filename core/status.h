#pragma once
// Small status types used on the message path. Exceptions are reserved for start-up and
// configuration loading; everything a message goes through returns one of these.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace relais {

// The result of one delivery attempt, as a connector reports it.
// Value type; no thread-safety concerns.
struct Outcome {
  // Defer: not an attempt. The connector decided the message must not go before
  // `not_before` (a reminder's send time, a sending window): the delivery waits, pending, and
  // does not consume an attempt.
  // Throttle: not an attempt either. The partner asked to slow down (EWS ErrorServerBusy with
  // BackOffMilliseconds, HTTP 429, or 503 with Retry-After, Graph throttling): the delivery
  // waits `retry_after_ms` (capped by the destination's retry.max_retry_after), it costs no
  // attempt and no back-off step. With an empty `throttle_scope` the whole destination pauses,
  // every slot; a scope (an account, a mailbox) names what the partner throttles: the connector
  // gates its own requests for that scope (core/throttle_gate.h) and the dashboard shows it.
  enum class Kind { Delivered, Retry, Reject, Skip, Defer, Throttle };

  Kind kind = Kind::Delivered;
  std::string error_class;  // "http", "network", "timeout", "mapping", "config", … ("" on success)
  int code = 0;             // protocol status (HTTP status, curl code, …); 0 when none
  std::string text;         // a sentence a person can read; never personal data
  std::string external_ref;               // Delivered: the partner's reference, when it gives one
  std::optional<int64_t> retry_after_ms;  // Retry: the peer's own delay (Retry-After, back-off)
  std::string excerpt;         // bounded excerpt of the peer's answer, for the attempt history
  int64_t not_before = 0;      // Defer: the earliest time (UTC ms) of the next try
  std::string throttle_scope;  // Throttle: "" = the destination, else the account throttled

  static Outcome delivered(std::string ref = {}, std::string text = {}) {
    Outcome o;
    o.kind = Kind::Delivered;
    o.external_ref = std::move(ref);
    o.text = std::move(text);
    return o;
  }
  static Outcome retry(std::string cls, int code, std::string text,
                       std::optional<int64_t> after_ms = std::nullopt) {
    Outcome o;
    o.kind = Kind::Retry;
    o.error_class = std::move(cls);
    o.code = code;
    o.text = std::move(text);
    o.retry_after_ms = after_ms;
    return o;
  }
  static Outcome reject(std::string cls, int code, std::string text) {
    Outcome o;
    o.kind = Kind::Reject;
    o.error_class = std::move(cls);
    o.code = code;
    o.text = std::move(text);
    return o;
  }
  static Outcome defer(int64_t not_before_ms, std::string reason) {
    Outcome o;
    o.kind = Kind::Defer;
    o.error_class = "scheduled";
    o.not_before = not_before_ms;
    o.text = std::move(reason);
    return o;
  }
  // `after_ms`: the delay the partner asked for (nullopt: the destination's default pause).
  static Outcome throttle(std::string scope, int code, std::string text,
                          std::optional<int64_t> after_ms) {
    Outcome o;
    o.kind = Kind::Throttle;
    o.error_class = "throttled";
    o.code = code;
    o.text = std::move(text);
    o.retry_after_ms = after_ms;
    o.throttle_scope = std::move(scope);
    return o;
  }
  static Outcome skip(std::string reason) {
    Outcome o;
    o.kind = Kind::Skip;
    o.error_class = "skip";
    o.text = std::move(reason);
    return o;
  }
};

const char* to_string(Outcome::Kind k);

// A plain success-or-error value for operations on the message path.
struct Status {
  bool ok = true;
  int http_status = 200;  // the status an API should answer with when !ok
  std::string error;      // short error title
  std::string detail;     // explanation for a person

  static Status success() { return {}; }
  static Status failure(int http_status, std::string error, std::string detail = {}) {
    return Status{false, http_status, std::move(error), std::move(detail)};
  }
};

}  // namespace relais

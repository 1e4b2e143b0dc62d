#pragma once
// Exponential back-off with full jitter, bounded by attempts and/or age.

#include <cstdint>
#include <functional>
#include <optional>

#include "core/clock.h"

namespace relais {

// Per-destination retry settings. Value type.
struct RetryPolicy {
  Millis initial_ms = 1000;
  Millis max_ms = 300000;
  double factor = 2.0;
  int max_attempts = 10;  // 0 = unbounded (with max_age 0 too: retries forever, capped back-off)
  Millis max_age_ms = 0;  // 0 = unbounded; measured from the message's reception
  // Upper bound of a delay the peer asks for (Retry-After, BackOffMilliseconds), for a retry
  // and for a throttle pause alike.
  Millis max_retry_after_ms = 15 * 60 * 1000;
  // The pause when a peer throttles without saying for how long.
  Millis throttle_default_ms = 5000;

  // The back-off ceiling before attempt number `attempt + 1` (attempt >= 1 failed attempts):
  // min(max, initial * factor^(attempt-1)).
  Millis ceiling(int attempt) const;
  // Full jitter: a uniform delay in [0, ceiling(attempt)]; `uniform01` returns values in [0, 1).
  Millis delay(int attempt, const std::function<double()>& uniform01) const;
  // True when no further attempt is allowed after `attempts` failed attempts.
  bool exhausted(int attempts, Millis received_at, Millis now) const;
  // The peer's requested delay, bounded to [0, max_retry_after_ms].
  Millis bounded_retry_after(Millis retry_after) const;
  // When to try next after `attempts` failed attempts: honours the peer's retry-after (never
  // earlier than it, up to max_retry_after_ms), else the jittered back-off. Returns nullopt when
  // out of attempts or past max age (the delivery goes dead).
  std::optional<Millis> next_attempt(int attempts, Millis received_at, Millis now,
                                     std::optional<Millis> retry_after,
                                     const std::function<double()>& uniform01) const;
};

}  // namespace relais

#pragma once
// The pauses a partner asked for, per scope (an account, a mailbox; "" = the whole partner).
// A connector that talks to a partner throttling per account owns one ThrottleGate and asks it
// before each request: while a scope is paused, no request goes out for it (every slot sees the
// same pause), and the delivery is answered Outcome::throttle for the time left. Pauses are
// capped by `max_pause_ms` (the destination's retry.max_retry_after), so a partner's absurd
// Retry-After cannot park a destination for days. Thread-safe; a value owned by its connector.

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "core/clock.h"

namespace relais {

class ThrottleGate {
 public:
  explicit ThrottleGate(Millis max_pause_ms = 15 * 60 * 1000) : max_pause_ms_(max_pause_ms) {}

  // Pauses `scope` for `after_ms` from `now` (capped; a longer pause already set is kept).
  // Returns the end of the pause now in force.
  Millis pause(const std::string& scope, Millis now, Millis after_ms);
  // The end of the pause of `scope` when it is paused at `now`, else nullopt.
  std::optional<Millis> paused_until(const std::string& scope, Millis now);
  // The number of scopes paused at `now` (for the dashboard).
  size_t paused_count(Millis now);
  Millis max_pause_ms() const { return max_pause_ms_; }

 private:
  Millis max_pause_ms_;
  std::mutex mu_;
  std::unordered_map<std::string, Millis> until_;  // scope → end of pause (expired ones pruned)
};

}  // namespace relais

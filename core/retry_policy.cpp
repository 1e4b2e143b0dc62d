#include "core/retry_policy.h"

#include <algorithm>
#include <cmath>

namespace relais {

Millis RetryPolicy::ceiling(int attempt) const {
  if (attempt < 1) attempt = 1;
  double v = static_cast<double>(initial_ms) * std::pow(factor, attempt - 1);
  if (!std::isfinite(v) || v > static_cast<double>(max_ms)) return max_ms;
  return static_cast<Millis>(v);
}

Millis RetryPolicy::delay(int attempt, const std::function<double()>& uniform01) const {
  double u = uniform01();
  u = std::clamp(u, 0.0, 1.0);
  return static_cast<Millis>(std::llround(u * static_cast<double>(ceiling(attempt))));
}

bool RetryPolicy::exhausted(int attempts, Millis received_at, Millis now) const {
  if (max_attempts > 0 && attempts >= max_attempts) return true;
  if (max_age_ms > 0 && now - received_at >= max_age_ms) return true;
  return false;
}

Millis RetryPolicy::bounded_retry_after(Millis retry_after) const {
  return std::clamp<Millis>(retry_after, 0, max_retry_after_ms);
}

std::optional<Millis> RetryPolicy::next_attempt(int attempts, Millis received_at, Millis now,
                                                std::optional<Millis> retry_after,
                                                const std::function<double()>& uniform01) const {
  if (exhausted(attempts, received_at, now)) return std::nullopt;
  Millis at =
      retry_after ? now + bounded_retry_after(*retry_after) : now + delay(attempts, uniform01);
  if (max_age_ms > 0 && at - received_at > max_age_ms) return std::nullopt;
  return at;
}

}  // namespace relais

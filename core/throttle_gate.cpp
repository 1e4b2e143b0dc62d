#include "core/throttle_gate.h"

#include <algorithm>

namespace relais {

Millis ThrottleGate::pause(const std::string& scope, Millis now, Millis after_ms) {
  Millis until = now + std::clamp<Millis>(after_ms, 0, max_pause_ms_);
  std::lock_guard<std::mutex> lock(mu_);
  Millis& u = until_[scope];
  u = std::max(u, until);
  return u;
}

std::optional<Millis> ThrottleGate::paused_until(const std::string& scope, Millis now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = until_.find(scope);
  if (it == until_.end()) return std::nullopt;
  if (it->second <= now) {
    until_.erase(it);
    return std::nullopt;
  }
  return it->second;
}

size_t ThrottleGate::paused_count(Millis now) {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(until_, [now](const auto& e) { return e.second <= now; });
  return until_.size();
}

}  // namespace relais

#include "core/rate_bucket.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace relais {

RateBucket::RateBucket(double per_second, int64_t burst)
    : per_second_(per_second),
      burst_(std::max<int64_t>(1, burst)),
      interval_(std::max<Micros>(1, static_cast<Micros>(std::llround(1e6 / per_second)))),
      tolerance_((burst_ - 1) * interval_) {}

Micros RateBucket::take(Micros now) {
  Micros tat = tat_.load(std::memory_order_relaxed);
  for (;;) {
    Micros start = std::max(tat, now);
    // Admitted while the next arrival time is no further ahead of now than the burst allows.
    if (start - now > tolerance_) return start - now - tolerance_;
    if (tat_.compare_exchange_weak(tat, start + interval_, std::memory_order_relaxed)) return 0;
  }
}

RateBuckets::RateBuckets(std::function<RateLimit(const std::string&)> limit_of)
    : limit_of_(std::move(limit_of)) {}

RateBucket* RateBuckets::bucket(const std::string& name) {
  Stripe& s = stripes_[std::hash<std::string>{}(name) % stripes_.size()];
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.buckets.find(name);
  if (it == s.buckets.end()) {
    RateLimit l = limit_of_(name);
    std::unique_ptr<RateBucket> b;
    if (l.per_second > 0) b = std::make_unique<RateBucket>(l.per_second, l.burst);
    it = s.buckets.emplace(name, std::move(b)).first;
  }
  return it->second.get();
}

Micros RateBuckets::take(const std::string& name, Micros now) {
  RateBucket* b = bucket(name);
  return b == nullptr ? 0 : b->take(now);
}

RateLimit RateBuckets::limit(const std::string& name) {
  RateBucket* b = bucket(name);
  return b == nullptr ? RateLimit{} : RateLimit{b->per_second(), b->burst()};
}

Micros steady_micros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace relais

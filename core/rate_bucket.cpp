#include "core/rate_bucket.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace relais {

std::pair<Micros, Micros> rate_bucket_parameters(double per_second, int64_t burst) {
  Micros interval = std::max<Micros>(1, static_cast<Micros>(std::llround(1e6 / per_second)));
  return {interval, (std::max<int64_t>(1, burst) - 1) * interval};
}

const char* const kRateBucketScript = R"lua(
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(tat, now)
if start - now > tolerance then return start - now - tolerance end
local next = start + interval
redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX',
           string.format('%.0f', math.floor((next - now) / 1000) + 1))
return 0
)lua";

RateBucket::RateBucket(double per_second, int64_t burst)
    : per_second_(per_second),
      burst_(std::max<int64_t>(1, burst)),
      interval_(rate_bucket_parameters(per_second, burst).first),
      tolerance_(rate_bucket_parameters(per_second, burst).second) {}

Micros RateBucket::take(Micros now) {
  Micros tat = tat_.load(std::memory_order_relaxed);
  for (;;) {
    Micros start = std::max(tat, now);
    // Admitted while the next arrival time is no further ahead of now than the burst allows.
    if (start - now > tolerance_) return start - now - tolerance_;
    if (tat_.compare_exchange_weak(tat, start + interval_, std::memory_order_relaxed)) return 0;
  }
}

void RateBucket::hold(Micros until) {
  Micros tat = tat_.load(std::memory_order_relaxed);
  // Admitted when tat - now <= tolerance: nothing before `until` once tat >= until + tolerance.
  while (tat < until + tolerance_ &&
         !tat_.compare_exchange_weak(tat, until + tolerance_, std::memory_order_relaxed)) {
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

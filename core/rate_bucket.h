#pragma once
// Request rate limits: one bucket per caller (GCRA, the token bucket as one number) and a table
// of buckets by caller name.
//
// RateBucket admits on average `per_second` requests per second with bursts of up to `burst`.
// Its whole state is one atomic (the theoretical arrival time of the next request), updated by
// compare-and-swap: O(1) per request, lock-free, thread-safe.
//
// RateBuckets holds the buckets by caller name (a token's name), created on first use; the
// table is split into stripes, each with its own mutex held only to find or create a bucket,
// so callers with different names rarely wait on each other. Thread-safe; owns its buckets.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

namespace relais {

// Microseconds of a monotonic clock.
using Micros = int64_t;

class RateBucket {
 public:
  // per_second > 0, burst >= 1.
  RateBucket(double per_second, int64_t burst);

  // Takes one request at `now`: 0 when admitted, else the microseconds to wait before a request
  // would be admitted (the bucket is not charged).
  Micros take(Micros now);
  // Admits nothing before `until` (a partner's Retry-After), then one request per interval.
  void hold(Micros until);

  double per_second() const { return per_second_; }
  int64_t burst() const { return burst_; }

 private:
  double per_second_;
  int64_t burst_;
  Micros interval_;   // one request's share of time
  Micros tolerance_;  // (burst - 1) · interval: how far ahead of time requests may run
  std::atomic<Micros> tat_{0};
};

// The limit of one caller: per_second <= 0 means unlimited.
struct RateLimit {
  double per_second = 0;
  int64_t burst = 1;
};

class RateBuckets {
 public:
  // `limit_of` gives the limit of a caller by name (called once per name, on first use).
  explicit RateBuckets(std::function<RateLimit(const std::string&)> limit_of);

  // Takes one request of `name` at `now`: 0 when admitted (or unlimited), else the
  // microseconds to wait.
  Micros take(const std::string& name, Micros now);
  // The limit applied to `name`.
  RateLimit limit(const std::string& name);

 private:
  struct Stripe {
    std::mutex mu;
    std::unordered_map<std::string, std::unique_ptr<RateBucket>> buckets;  // null: unlimited
  };
  RateBucket* bucket(const std::string& name);

  std::function<RateLimit(const std::string&)> limit_of_;
  std::array<Stripe, 16> stripes_;
};

// The same bucket kept in Redis, shared by every node (one Lua script, atomic; Redis's own
// clock, so the nodes' clocks do not matter). KEYS[1] the bucket; ARGV[1] the interval and
// ARGV[2] the tolerance in microseconds (RateBucket's). Returns 0 when admitted, else the
// microseconds to wait. Used by the API's rate limits (store/redis/) and the BAN's shared
// limit (connectors/ban/).
extern const char* const kRateBucketScript;
// The interval and tolerance of a bucket, as RateBucket computes them.
std::pair<Micros, Micros> rate_bucket_parameters(double per_second, int64_t burst);

// Now, in microseconds of the steady clock.
Micros steady_micros();

}  // namespace relais

// The per-caller rate limit (core/rate_bucket.h): bursts, the average rate, the wait it
// reports, callers kept apart, and no request lost or admitted twice under concurrency.
#include "core/rate_bucket.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace relais {
namespace {

TEST(RateBucket, AdmitsTheBurstThenRefusesWithTheWait) {
  RateBucket b(10, 5);  // one request per 100 ms, 5 at once
  const Micros t0 = 1'000'000;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(b.take(t0), 0) << "request " << i;
  Micros wait = b.take(t0);
  EXPECT_EQ(wait, 100'000);
  // A refused request does not charge the bucket: the same wait again.
  EXPECT_EQ(b.take(t0), 100'000);
  EXPECT_EQ(b.take(t0 + 40'000), 60'000);
  EXPECT_EQ(b.take(t0 + 100'000), 0);
  EXPECT_GT(b.take(t0 + 100'000), 0);
}

TEST(RateBucket, HoldAdmitsNothingBeforeItsTime) {
  RateBucket b(10, 1);  // one request per 100 ms (the BAN's spacing)
  const Micros t0 = 1'000'000;
  EXPECT_EQ(b.take(t0), 0);
  b.hold(t0 + 2'000'000);  // a Retry-After of 2 s
  EXPECT_EQ(b.take(t0 + 100'000), 1'900'000);
  EXPECT_EQ(b.take(t0 + 1'999'999), 1);
  EXPECT_EQ(b.take(t0 + 2'000'000), 0);
  EXPECT_EQ(b.take(t0 + 2'000'000), 100'000);  // then the rate again
  b.hold(t0);                                  // a hold in the past changes nothing
  EXPECT_EQ(b.take(t0 + 2'000'000), 100'000);
}

TEST(RateBucket, KeepsTheAverageRateOverTime) {
  RateBucket b(100, 10);
  Micros now = 5'000'000;
  int admitted = 0;
  // 10 seconds at one attempt per millisecond: 10 + 100/s × 10 s.
  for (int i = 0; i < 10'000; ++i, now += 1000) admitted += b.take(now) == 0 ? 1 : 0;
  EXPECT_GE(admitted, 1000);
  EXPECT_LE(admitted, 1010);
}

TEST(RateBucket, IdleTimeRefillsNoMoreThanTheBurst) {
  RateBucket b(1, 3);
  Micros now = 0;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(b.take(now), 0);
  now += 3600LL * 1'000'000;  // an hour idle
  int admitted = 0;
  for (int i = 0; i < 10; ++i) admitted += b.take(now) == 0 ? 1 : 0;
  EXPECT_EQ(admitted, 3);
}

TEST(RateBucket, ConcurrentTakersNeverExceedTheBurst) {
  RateBucket b(1, 1000);  // at a fixed instant exactly 1000 pass
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i)
        if (b.take(42'000'000) == 0) admitted.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 1000);
}

TEST(RateBuckets, KeepsCallersApartAndHonoursUnlimited) {
  RateBuckets buckets([](const std::string& name) {
    if (name == "free") return RateLimit{};
    if (name == "slow") return RateLimit{1, 2};
    return RateLimit{1000, 100};
  });
  const Micros now = 7'000'000;
  EXPECT_EQ(buckets.take("slow", now), 0);
  EXPECT_EQ(buckets.take("slow", now), 0);
  EXPECT_EQ(buckets.take("slow", now), 1'000'000);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(buckets.take("fast", now), 0);
  for (int i = 0; i < 10'000; ++i) ASSERT_EQ(buckets.take("free", now), 0);
  EXPECT_EQ(buckets.limit("slow").per_second, 1);
  EXPECT_EQ(buckets.limit("slow").burst, 2);
  EXPECT_EQ(buckets.limit("free").per_second, 0);
}

}  // namespace
}  // namespace relais

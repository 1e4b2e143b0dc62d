// RetryPolicy: ceiling growth and cap, full jitter bounds, exhaustion, Retry-After, max age.

#include <gtest/gtest.h>

#include <limits>

#include "core/retry_policy.h"
#include "core/throttle_gate.h"

namespace relais {
namespace {

constexpr Millis kT0 = 1'700'000'000'000;

RetryPolicy policy(Millis initial, Millis max, double factor, int max_attempts, Millis max_age) {
  RetryPolicy p;
  p.initial_ms = initial;
  p.max_ms = max;
  p.factor = factor;
  p.max_attempts = max_attempts;
  p.max_age_ms = max_age;
  return p;
}

auto fixed(double u) {
  return [u] { return u; };
}

TEST(RetryPolicy, CeilingGrowsGeometricallyAndIsCapped) {
  RetryPolicy p = policy(1000, 30000, 2.0, 10, 0);
  EXPECT_EQ(p.ceiling(1), 1000);
  EXPECT_EQ(p.ceiling(2), 2000);
  EXPECT_EQ(p.ceiling(3), 4000);
  EXPECT_EQ(p.ceiling(4), 8000);
  EXPECT_EQ(p.ceiling(5), 16000);
  EXPECT_EQ(p.ceiling(6), 30000);  // 32000 capped
  EXPECT_EQ(p.ceiling(7), 30000);
  EXPECT_EQ(p.ceiling(5000), 30000);  // factor^4999 overflows a double: still the cap
  EXPECT_EQ(p.ceiling(0), 1000);      // attempt numbers below 1 count as the first
  EXPECT_EQ(p.ceiling(-3), 1000);

  RetryPolicy q = policy(500, 600000, 3.0, 10, 0);
  EXPECT_EQ(q.ceiling(1), 500);
  EXPECT_EQ(q.ceiling(2), 1500);
  EXPECT_EQ(q.ceiling(3), 4500);

  RetryPolicy flat = policy(250, 10000, 1.0, 10, 0);
  for (int a = 1; a < 20; ++a) EXPECT_EQ(flat.ceiling(a), 250);

  // The ceiling never decreases with the attempt number.
  RetryPolicy r = policy(7, 100000, 1.7, 10, 0);
  for (int a = 1; a < 60; ++a) EXPECT_LE(r.ceiling(a), r.ceiling(a + 1)) << a;
}

TEST(RetryPolicy, FullJitterStaysWithinZeroAndTheCeiling) {
  RetryPolicy p = policy(1000, 30000, 2.0, 10, 0);
  EXPECT_EQ(p.delay(1, fixed(0.0)), 0);
  EXPECT_EQ(p.delay(3, fixed(0.0)), 0);
  EXPECT_NEAR(static_cast<double>(p.delay(1, fixed(0.999))), 999.0, 1.0);
  EXPECT_NEAR(static_cast<double>(p.delay(3, fixed(0.999))), 3996.0, 1.0);
  EXPECT_NEAR(static_cast<double>(p.delay(9, fixed(0.999))), 29970.0, 1.0);
  EXPECT_EQ(p.delay(2, fixed(0.5)), 1000);
  EXPECT_EQ(p.delay(3, fixed(0.25)), 1000);
  // Out-of-range sources are clamped, never negative nor beyond the ceiling.
  EXPECT_EQ(p.delay(2, fixed(-0.5)), 0);
  EXPECT_EQ(p.delay(2, fixed(7.0)), 2000);
  for (int i = 0; i < 1000; ++i) {
    double u = static_cast<double>(i) / 1000.0;
    Millis d = p.delay(4, fixed(u));
    EXPECT_GE(d, 0);
    EXPECT_LE(d, p.ceiling(4));
  }
}

TEST(RetryPolicy, ExhaustedByAttempts) {
  RetryPolicy p = policy(1000, 30000, 2.0, 3, 0);
  EXPECT_FALSE(p.exhausted(1, kT0, kT0));
  EXPECT_FALSE(p.exhausted(2, kT0, kT0 + 1000000000));  // no age limit
  EXPECT_TRUE(p.exhausted(3, kT0, kT0));
  EXPECT_TRUE(p.exhausted(4, kT0, kT0));
  RetryPolicy unbounded = policy(1000, 30000, 2.0, 0, 3600000);
  EXPECT_FALSE(unbounded.exhausted(100000, kT0, kT0 + 1000));
}

TEST(RetryPolicy, ExhaustedByAge) {
  RetryPolicy p = policy(1000, 30000, 2.0, 0, 60000);
  EXPECT_FALSE(p.exhausted(5, kT0, kT0 + 59999));
  EXPECT_TRUE(p.exhausted(5, kT0, kT0 + 60000));
  EXPECT_TRUE(p.exhausted(1, kT0, kT0 + 120000));
  RetryPolicy both = policy(1000, 30000, 2.0, 4, 60000);
  EXPECT_TRUE(both.exhausted(4, kT0, kT0));
  EXPECT_TRUE(both.exhausted(1, kT0, kT0 + 60000));
  EXPECT_FALSE(both.exhausted(3, kT0, kT0 + 59999));
}

// max_attempts 0 and no max_age: "no limit" (a valid configuration): the delivery is retried
// forever, never more than `max` apart, however many attempts failed and however old it is.
TEST(RetryPolicy, NoLimitRetriesForeverWithCappedBackoff) {
  RetryPolicy p = policy(1000, 30000, 2.0, 0, 0);
  const Millis ten_years = 10LL * 365 * 24 * 3600 * 1000;
  for (int attempts : {1, 2, 10, 64, 1000, 1000000, std::numeric_limits<int>::max() - 1}) {
    EXPECT_FALSE(p.exhausted(attempts, kT0, kT0 + ten_years)) << attempts;
    Millis now = kT0 + ten_years;
    auto n = p.next_attempt(attempts, kT0, now, std::nullopt, fixed(0.999));
    ASSERT_TRUE(n) << attempts;
    EXPECT_GE(*n, now);
    EXPECT_LE(*n, now + 30000) << attempts;
    EXPECT_EQ(p.ceiling(attempts), attempts >= 6 ? 30000 : p.ceiling(attempts));
  }
  // A peer's Retry-After is honoured as it is up to max_retry_after (15 min by default).
  auto n = p.next_attempt(5, kT0, kT0 + 1000, Millis{600000}, fixed(0.5));
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, kT0 + 1000 + 600000);
  n = p.next_attempt(5, kT0, kT0 + 1000, Millis{3600000}, fixed(0.5));
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, kT0 + 1000 + 15 * 60000);
}

TEST(RetryPolicy, NextAttemptUsesTheJitteredBackoff) {
  RetryPolicy p = policy(1000, 30000, 2.0, 10, 0);
  Millis now = kT0 + 500;
  auto n = p.next_attempt(1, kT0, now, std::nullopt, fixed(0.0));
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, now);
  n = p.next_attempt(3, kT0, now, std::nullopt, fixed(0.5));
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, now + 2000);  // half of the 4 s ceiling
  n = p.next_attempt(3, kT0, now, std::nullopt, fixed(0.999));
  ASSERT_TRUE(n);
  EXPECT_GE(*n, now + 3995);
  EXPECT_LE(*n, now + 4000);
}

TEST(RetryPolicy, RetryAfterIsHonouredAndNeverEarlier) {
  RetryPolicy p = policy(1000, 30000, 2.0, 10, 0);
  Millis now = kT0 + 100;
  // Longer than any back-off: exactly the peer's delay, whatever the jitter.
  for (double u : {0.0, 0.5, 0.999}) {
    auto n = p.next_attempt(1, kT0, now, Millis{120000}, fixed(u));
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, now + 120000);
  }
  // Shorter than the ceiling: still never earlier than asked.
  auto n = p.next_attempt(5, kT0, now, Millis{7000}, fixed(0.0));
  ASSERT_TRUE(n);
  EXPECT_GE(*n, now + 7000);
  // Zero or negative: now.
  n = p.next_attempt(1, kT0, now, Millis{0}, fixed(0.9));
  ASSERT_TRUE(n);
  EXPECT_GE(*n, now);
  n = p.next_attempt(1, kT0, now, Millis{-5000}, fixed(0.0));
  ASSERT_TRUE(n);
  EXPECT_GE(*n, now);
}

TEST(RetryPolicy, NextAttemptIsNulloptWhenOutOfAttemptsOrAge) {
  RetryPolicy p = policy(1000, 30000, 2.0, 3, 0);
  EXPECT_TRUE(p.next_attempt(2, kT0, kT0, std::nullopt, fixed(0.5)));
  EXPECT_FALSE(p.next_attempt(3, kT0, kT0, std::nullopt, fixed(0.5)));
  EXPECT_FALSE(p.next_attempt(3, kT0, kT0, Millis{10}, fixed(0.5)));

  RetryPolicy aged = policy(1000, 30000, 2.0, 0, 60000);
  // Already past the age.
  EXPECT_FALSE(aged.next_attempt(1, kT0, kT0 + 60000, std::nullopt, fixed(0.0)));
  // Not past it yet, but the next attempt would be: dead now rather than an attempt too late.
  EXPECT_FALSE(aged.next_attempt(1, kT0, kT0 + 59000, Millis{5000}, fixed(0.0)));
  EXPECT_FALSE(aged.next_attempt(6, kT0, kT0 + 50000, std::nullopt, fixed(0.999)));
  // Well within the age.
  auto n = aged.next_attempt(1, kT0, kT0 + 1000, Millis{5000}, fixed(0.0));
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, kT0 + 6000);
}

// The gate a connector asks before each request for an account: a pause is shared by every
// caller, capped, never shortened by a later shorter ask, and gone once over.
TEST(ThrottleGate, PausesPerScopeCappedAndNeverShortened) {
  ThrottleGate gate(60000);
  EXPECT_FALSE(gate.paused_until("a", kT0));
  EXPECT_EQ(gate.pause("a", kT0, 10000), kT0 + 10000);
  EXPECT_EQ(gate.pause("a", kT0 + 1, 10), kT0 + 10000);      // a shorter ask keeps the longer pause
  EXPECT_EQ(gate.pause("b", kT0, 36'000'000), kT0 + 60000);  // capped
  EXPECT_EQ(gate.paused_until("a", kT0 + 9999), kT0 + 10000);
  EXPECT_FALSE(gate.paused_until("c", kT0));
  EXPECT_EQ(gate.paused_count(kT0 + 5000), 2u);
  EXPECT_FALSE(gate.paused_until("a", kT0 + 10000));
  EXPECT_EQ(gate.paused_count(kT0 + 10000), 1u);
  EXPECT_EQ(gate.pause("n", kT0, -5), kT0);  // a negative ask is no pause
  EXPECT_FALSE(gate.paused_until("n", kT0));
}

}  // namespace
}  // namespace relais

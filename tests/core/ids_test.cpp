// IdGenerator: ULID shape, time order, strict monotonicity even when the clock stalls or goes
// backwards, and uniqueness across threads.

#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "core/clock.h"
#include "core/ids.h"

namespace relais {
namespace {

constexpr Millis kT0 = 1'700'000'000'000;

bool crockford(char c) {
  return std::string("0123456789ABCDEFGHJKMNPQRSTVWXYZ").find(c) != std::string::npos;
}

// Decodes the 48-bit timestamp of a ULID (first 10 characters).
Millis ulid_time(const std::string& id) {
  const std::string alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  Millis t = 0;
  for (size_t i = 0; i < 10; ++i) t = t * 32 + static_cast<Millis>(alphabet.find(id[i]));
  return t;
}

TEST(Ids, ShapeIs26CrockfordCharacters) {
  ManualClock clock(kT0);
  IdGenerator gen(clock);
  for (int i = 0; i < 100; ++i) {
    std::string id = gen.next();
    ASSERT_EQ(id.size(), 26u);
    for (char c : id) EXPECT_TRUE(crockford(c)) << id;
    EXPECT_TRUE(is_valid_id(id)) << id;
    EXPECT_EQ(ulid_time(id), kT0);
  }
}

TEST(Ids, ValidationRejectsOtherShapes) {
  EXPECT_FALSE(is_valid_id(""));
  EXPECT_FALSE(is_valid_id("01ARZ3NDEKTSV4RRFFQ69G5FA"));    // 25
  EXPECT_FALSE(is_valid_id("01ARZ3NDEKTSV4RRFFQ69G5FAVV"));  // 27
  EXPECT_FALSE(is_valid_id("01ARZ3NDEKTSV4RRFFQ69G5FAU"));   // U is not Crockford
  EXPECT_FALSE(is_valid_id("01arz3ndektsv4rrffq69g5fav"));   // lower case
  EXPECT_FALSE(is_valid_id("81ARZ3NDEKTSV4RRFFQ69G5FAV"));   // overflows 128 bits
  EXPECT_TRUE(is_valid_id("01ARZ3NDEKTSV4RRFFQ69G5FAV"));
  EXPECT_TRUE(is_valid_id("7ZZZZZZZZZZZZZZZZZZZZZZZZZ"));
}

TEST(Ids, StrictlyIncreasingWhenTheClockDoesNotMove) {
  ManualClock clock(kT0);
  IdGenerator gen(clock);
  std::string prev = gen.next();
  for (int i = 0; i < 10000; ++i) {
    std::string id = gen.next();
    ASSERT_LT(prev, id) << "at " << i;
    prev = id;
  }
}

TEST(Ids, StrictlyIncreasingWhenTheClockGoesBackwards) {
  ManualClock clock(kT0);
  IdGenerator gen(clock);
  std::string a = gen.next();
  clock.set(kT0 - 60000);  // a minute back (NTP step)
  std::string b = gen.next();
  std::string c = gen.next();
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_EQ(ulid_time(b), kT0);  // keeps the last timestamp rather than going back
  clock.set(kT0 + 5);
  std::string d = gen.next();
  EXPECT_LT(c, d);
  EXPECT_EQ(ulid_time(d), kT0 + 5);
}

TEST(Ids, SortByCreationTime) {
  ManualClock clock(kT0);
  IdGenerator gen(clock);
  std::vector<std::string> ids;
  for (int i = 0; i < 50; ++i) {
    ids.push_back(gen.next());
    clock.advance(i % 3);  // sometimes the same millisecond
  }
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
}

TEST(Ids, UniqueAcrossThreads) {
  ManualClock clock(kT0);
  IdGenerator gen(clock);
  std::vector<std::vector<std::string>> per(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < per.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) per[t].push_back(gen.next());
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> all;
  for (const auto& v : per) {
    EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));  // each thread sees increasing ids
    all.insert(v.begin(), v.end());
  }
  EXPECT_EQ(all.size(), 8000u);
}

TEST(Ids, RealClockIdsCarryTheCurrentTime) {
  IdGenerator gen(SystemClock::instance());
  Millis before = SystemClock::instance().now_ms();
  std::string id = gen.next();
  Millis after = SystemClock::instance().now_ms();
  EXPECT_GE(ulid_time(id), before);
  EXPECT_LE(ulid_time(id), after);
}

}  // namespace
}  // namespace relais

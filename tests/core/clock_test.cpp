#include <gtest/gtest.h>

#include "core/clock.h"

namespace relais {

TEST(Clock, Rfc3339RoundTrip) {
  Millis t = 0;
  ASSERT_TRUE(parse_rfc3339("2019-05-15T15:58:03+02:00", t));
  EXPECT_EQ(format_rfc3339(t), "2019-05-15T13:58:03.000Z");
  ASSERT_TRUE(parse_rfc3339("2026-11-23", t));
  EXPECT_EQ(format_rfc3339(t), "2026-11-23T00:00:00.000Z");
  EXPECT_FALSE(parse_rfc3339("2026-13-01", t));
  EXPECT_FALSE(parse_rfc3339("2026-11-23T10:00:00", t));  // no offset
}

}  // namespace relais

// The TZif reader: transitions, POSIX footer rules, gaps and overlaps.
#include <gtest/gtest.h>

#include "mappings/datetime.h"
#include "mappings/tz.h"

namespace relais::mappings {
namespace {

int64_t utc_of(const char* iso) {
  ParsedTime p;
  EXPECT_TRUE(parse_iso(iso, p)) << iso;
  return p.local - p.offset;
}

TEST(TimeZone, LoadsAndCaches) {
  auto a = TimeZone::get("Europe/Paris");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a, TimeZone::get("Europe/Paris"));
  EXPECT_EQ(TimeZone::get("Europe/Nowhere"), nullptr);
  EXPECT_EQ(TimeZone::get("../etc/passwd"), nullptr);
  EXPECT_EQ(TimeZone::get(""), nullptr);
}

TEST(TimeZone, ParisOffsetsAroundTheChanges) {
  auto z = TimeZone::get("Europe/Paris");
  ASSERT_NE(z, nullptr);
  // 2019-03-31 01:00 UTC = 02:00 CET -> 03:00 CEST
  EXPECT_EQ(z->at_utc(utc_of("2019-03-31T00:59:59Z")).offset, 3600);
  EXPECT_EQ(z->at_utc(utc_of("2019-03-31T01:00:00Z")).offset, 7200);
  EXPECT_EQ(z->at_utc(utc_of("2019-03-31T01:00:00Z")).abbrev, "CEST");
  EXPECT_TRUE(z->at_utc(utc_of("2019-03-31T01:00:00Z")).dst);
  // 2019-10-27 01:00 UTC = 03:00 CEST -> 02:00 CET
  EXPECT_EQ(z->at_utc(utc_of("2019-10-27T00:59:59Z")).offset, 7200);
  EXPECT_EQ(z->at_utc(utc_of("2019-10-27T01:00:00Z")).offset, 3600);
  EXPECT_EQ(z->at_utc(utc_of("2019-10-27T01:00:00Z")).abbrev, "CET");
}

TEST(TimeZone, LocalToUtcGapAndOverlap) {
  auto z = TimeZone::get("Europe/Paris");
  ASSERT_NE(z, nullptr);
  const int64_t day = days_from_civil(2019, 3, 31) * 86400;
  EXPECT_EQ(z->local_to_utc(day + 1 * 3600 + 1800), utc_of("2019-03-31T00:30:00Z"));
  EXPECT_EQ(z->local_to_utc(day + 2 * 3600 + 1800), utc_of("2019-03-31T01:30:00Z"));  // gap
  EXPECT_EQ(z->local_to_utc(day + 3 * 3600 + 1800), utc_of("2019-03-31T01:30:00Z"));
  const int64_t fall = days_from_civil(2019, 10, 27) * 86400;
  EXPECT_EQ(z->local_to_utc(fall + 2 * 3600 + 1800), utc_of("2019-10-27T00:30:00Z"));  // first
  EXPECT_EQ(z->local_to_utc(fall + 3 * 3600 + 1800), utc_of("2019-10-27T02:30:00Z"));
}

TEST(TimeZone, FooterRuleBeyondTheTable) {
  auto z = TimeZone::get("Europe/Paris");
  ASSERT_NE(z, nullptr);
  // the last Sunday of March 2100 is the 28th
  EXPECT_EQ(z->at_utc(utc_of("2100-03-28T00:59:00Z")).offset, 3600);
  EXPECT_EQ(z->at_utc(utc_of("2100-03-28T01:00:00Z")).offset, 7200);
  EXPECT_EQ(z->at_utc(utc_of("2100-07-01T00:00:00Z")).abbrev, "CEST");
  EXPECT_EQ(z->at_utc(utc_of("2100-12-01T00:00:00Z")).offset, 3600);
}

TEST(TimeZone, OtherZones) {
  auto ny = TimeZone::get("America/New_York");
  ASSERT_NE(ny, nullptr);
  EXPECT_EQ(ny->at_utc(utc_of("2019-07-01T12:00:00Z")).offset, -4 * 3600);
  EXPECT_EQ(ny->at_utc(utc_of("2019-12-01T12:00:00Z")).offset, -5 * 3600);
  auto re = TimeZone::get("Indian/Reunion");
  ASSERT_NE(re, nullptr);
  EXPECT_EQ(re->at_utc(utc_of("2019-07-01T12:00:00Z")).offset, 4 * 3600);
  auto utc = TimeZone::get("UTC");
  ASSERT_NE(utc, nullptr);
  EXPECT_EQ(utc->at_utc(0).offset, 0);
}

TEST(TimeZone, RejectsMalformedData) {
  EXPECT_EQ(TimeZone::from_tzif("x", "not a tzif file at all, definitely not one"), nullptr);
  EXPECT_EQ(TimeZone::from_tzif("x", ""), nullptr);
  std::string truncated = "TZif2";
  truncated.resize(60, '\0');
  truncated[39] = 5;  // typecnt = 5 but no data
  EXPECT_EQ(TimeZone::from_tzif("x", truncated), nullptr);
}

TEST(Civil, RoundTrips) {
  for (int64_t d = -800000; d < 800000; d += 997) {
    CivilDate c = civil_from_days(d);
    EXPECT_EQ(days_from_civil(c.year, c.month, c.day), d);
  }
  EXPECT_EQ(weekday_from_days(days_from_civil(2019, 5, 17)), 5u);  // Friday
  EXPECT_EQ(days_in_month(2020, 2), 29u);
  EXPECT_EQ(days_in_month(2100, 2), 28u);
}

TEST(Iso, ParseAndFormat) {
  ParsedTime p;
  EXPECT_TRUE(parse_iso("2019-05-17", p));
  EXPECT_FALSE(p.has_time);
  EXPECT_TRUE(parse_iso("2019-05-17T10:00:00.250+0200", p));
  EXPECT_EQ(p.offset, 7200);
  EXPECT_FALSE(parse_iso("2019-02-30", p));
  EXPECT_FALSE(parse_iso("2019-05-17T25:00", p));
  EXPECT_FALSE(parse_iso("17/05/2019", p));
  EXPECT_EQ(format_iso(utc_of("2019-05-17T08:00:00Z"), 7200, false), "2019-05-17T10:00:00+02:00");
  EXPECT_EQ(format_iso(utc_of("2019-05-17T08:00:00Z"), 0, true), "2019-05-17T08:00:00Z");
  EXPECT_EQ(format_iso(utc_of("2019-05-17T08:00:00Z"), -16200, false), "2019-05-17T03:30:00-04:30");
}

}  // namespace
}  // namespace relais::mappings

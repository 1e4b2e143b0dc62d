// Time zones read from the system TZif database (/usr/share/zoneinfo, or $TZDIR), plus the
// civil-calendar arithmetic the date functions need. GCC 12 has no std::chrono::tzdb, and
// the process-wide TZ variable must never be touched, so this is a small self-contained reader.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace relais::mappings {

// Days since 1970-01-01 for a proleptic Gregorian date (month 1-12).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d);
struct CivilDate {
  int64_t year;
  unsigned month;
  unsigned day;
};
CivilDate civil_from_days(int64_t days);
// 0 = Sunday .. 6 = Saturday.
unsigned weekday_from_days(int64_t days);
bool is_leap_year(int64_t y);
unsigned days_in_month(int64_t y, unsigned m);

// One time zone: UTC offsets and abbreviations over time, from a TZif file (version 1-4),
// including the POSIX TZ footer rule for instants after the last listed transition.
//
// Thread-safety: immutable after load; all const members are safe to call concurrently.
// Ownership: instances are cached for the life of the process by get() and shared.
class TimeZone {
 public:
  // The zone named like "Europe/Paris" or "UTC", loaded once and cached; nullptr when the name
  // is invalid or no TZif file exists for it. Thread-safe.
  static std::shared_ptr<const TimeZone> get(const std::string& name);
  // Parses TZif bytes (exposed for tests); nullptr when malformed.
  static std::shared_ptr<const TimeZone> from_tzif(const std::string& name,
                                                   const std::string& bytes);

  struct Info {
    int32_t offset = 0;  // seconds east of UTC
    bool dst = false;
    std::string abbrev;
  };
  const std::string& name() const { return name_; }
  // The offset in force at a UTC instant (seconds since the epoch).
  Info at_utc(int64_t utc) const;
  int32_t offset_at_utc(int64_t utc) const;
  // Converts a local wall-clock time (seconds since the epoch as if local were UTC) to UTC.
  // In a spring-forward gap the time is shifted forward by the length of the gap (02:30 on
  // 2019-03-31 in Europe/Paris becomes 03:30+02:00); in a fall-back overlap the earlier
  // instant is chosen (02:30 on 2019-10-27 becomes 02:30+02:00).
  int64_t local_to_utc(int64_t local) const;

 private:
  struct Type {
    int32_t offset;
    bool dst;
    std::string abbrev;
  };
  struct Rule {  // POSIX TZ footer, "M" date format only
    bool valid = false;
    int32_t std_offset = 0, dst_offset = 0;
    std::string std_abbrev, dst_abbrev;
    bool has_dst = false;
    unsigned start_m = 0, start_w = 0, start_d = 0;
    int32_t start_time = 7200;
    unsigned end_m = 0, end_w = 0, end_d = 0;
    int32_t end_time = 7200;
  };
  static bool parse_posix(const std::string& s, Rule& r);
  Info from_rule(int64_t utc) const;

  std::string name_;
  std::vector<int64_t> transitions_;
  std::vector<uint8_t> transition_types_;
  std::vector<Type> types_;
  Rule rule_;
};

}  // namespace relais::mappings

// Date-time values of the mapping language: ISO-8601 text in and out, strftime/strptime-like
// patterns with French day and month names. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "mappings/tz.h"

namespace relais::mappings {

// A parsed date-time. local is the wall-clock time as seconds since the epoch "as if UTC";
// when has_offset, the instant is local - offset; otherwise the text did not say and the
// caller chooses a zone.
struct ParsedTime {
  int64_t local = 0;
  bool has_time = false;
  bool has_offset = false;
  int32_t offset = 0;
};

// "2019-05-17", "2019-05-17T10:00", "2019-05-17 10:00:00", "2019-05-17T10:00:00.123+02:00",
// "...Z", "...+0200". Returns false when not ISO.
bool parse_iso(std::string_view s, ParsedTime& out);
// The instant of a parsed time, reading times without offset in zone tz.
int64_t to_utc(const ParsedTime& p, const TimeZone& tz);
// "2019-05-17T10:00:00+02:00" (or "...Z" when utc_z and offset == 0).
std::string format_iso(int64_t utc, int32_t offset, bool utc_z);
// "2019-05-17T10:00:00" (no offset).
std::string format_local(int64_t utc, int32_t offset);
// strftime-like: %Y %y %m %d %e %H %M %S %j %A %a %B %b (French names) %z %:z %Z %%, and
// "-" after % to drop zero padding (%-d, %-H, %-m). Returns false (with err) on a bad pattern.
bool format_pattern(int64_t utc, const TimeZone& tz, std::string_view fmt, std::string& out,
                    std::string& err);
// strptime-like with %Y %y %m %d %e %H %M %S %B %b (French or English month names) %z and
// literal characters; a space in the pattern matches any run of spaces.
bool parse_pattern(std::string_view s, std::string_view fmt, ParsedTime& out, std::string& err);
// Checks a format/parse pattern at compile time.
bool validate_pattern(std::string_view fmt, bool for_parse, std::string& err);

}  // namespace relais::mappings

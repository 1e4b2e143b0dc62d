#include "mappings/tz.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

namespace relais::mappings {

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

CivilDate civil_from_days(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2), m, d};
}

unsigned weekday_from_days(int64_t z) {
  return static_cast<unsigned>(z >= -4 ? (z + 4) % 7 : (z + 5) % 7 + 6);
}

bool is_leap_year(int64_t y) {
  return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

unsigned days_in_month(int64_t y, unsigned m) {
  static const unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap_year(y) ? 29 : kDays[(m - 1) % 12];
}

namespace {

int64_t read_be(const std::string& b, size_t pos, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(b[pos + i]);
  if (bytes == 4) return static_cast<int32_t>(static_cast<uint32_t>(v));
  return static_cast<int64_t>(v);
}

bool valid_zone_name(const std::string& n) {
  if (n.empty() || n.size() > 64 || n[0] == '/' || n.find("..") != std::string::npos) return false;
  for (char c : n) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '_' || c == '-' ||
          c == '+'))
      return false;
  }
  return true;
}

// Parses "<+03>" or "CET" at s[i]; returns false on error.
bool posix_name(const std::string& s, size_t& i, std::string& out) {
  if (i < s.size() && s[i] == '<') {
    size_t e = s.find('>', i);
    if (e == std::string::npos) return false;
    out = s.substr(i + 1, e - i - 1);
    i = e + 1;
    return true;
  }
  size_t b = i;
  while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
  out = s.substr(b, i - b);
  return i - b >= 3;
}

// [+-]hh[:mm[:ss]] -> seconds.
bool posix_time(const std::string& s, size_t& i, int32_t& out) {
  int sign = 1;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) sign = s[i++] == '-' ? -1 : 1;
  int32_t parts[3] = {0, 0, 0};
  for (int p = 0; p < 3; ++p) {
    if (p > 0) {
      if (i >= s.size() || s[i] != ':') break;
      ++i;
    }
    size_t b = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
      parts[p] = parts[p] * 10 + (s[i++] - '0');
    if (i == b) return false;
  }
  out = sign * (parts[0] * 3600 + parts[1] * 60 + parts[2]);
  return true;
}

bool posix_date(const std::string& s, size_t& i, unsigned& m, unsigned& w, unsigned& d,
                int32_t& t) {
  if (i >= s.size() || s[i] != 'M') return false;
  ++i;
  unsigned v[3] = {0, 0, 0};
  for (int p = 0; p < 3; ++p) {
    if (p > 0) {
      if (i >= s.size() || s[i] != '.') return false;
      ++i;
    }
    size_t b = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
      v[p] = v[p] * 10 + static_cast<unsigned>(s[i++] - '0');
    if (i == b) return false;
  }
  m = v[0];
  w = v[1];
  d = v[2];
  if (m < 1 || m > 12 || w < 1 || w > 5 || d > 6) return false;
  t = 7200;
  if (i < s.size() && s[i] == '/') {
    ++i;
    if (!posix_time(s, i, t)) return false;
  }
  return true;
}

// Local seconds (in the zone's wall clock of the rule) of "Mm.w.d/time" in year y.
int64_t rule_local(int64_t y, unsigned m, unsigned w, unsigned d, int32_t t) {
  int64_t first = days_from_civil(y, m, 1);
  unsigned wd = weekday_from_days(first);
  int64_t day = first + static_cast<int64_t>((d + 7 - wd) % 7);
  day += 7 * static_cast<int64_t>(w - 1);
  int64_t last = first + days_in_month(y, m) - 1;
  while (day > last) day -= 7;
  return day * 86400 + t;
}

}  // namespace

bool TimeZone::parse_posix(const std::string& s, Rule& r) {
  size_t i = 0;
  int32_t off = 0;
  if (!posix_name(s, i, r.std_abbrev) || !posix_time(s, i, off)) return false;
  r.std_offset = -off;
  r.valid = true;
  if (i >= s.size()) return true;
  if (!posix_name(s, i, r.dst_abbrev)) return false;
  r.dst_offset = r.std_offset + 3600;
  if (i < s.size() && s[i] != ',') {
    if (!posix_time(s, i, off)) return false;
    r.dst_offset = -off;
  }
  if (i >= s.size() || s[i] != ',') return false;  // no rule: unsupported, ignore DST
  ++i;
  if (!posix_date(s, i, r.start_m, r.start_w, r.start_d, r.start_time)) return false;
  if (i >= s.size() || s[i] != ',') return false;
  ++i;
  if (!posix_date(s, i, r.end_m, r.end_w, r.end_d, r.end_time)) return false;
  r.has_dst = true;
  return true;
}

TimeZone::Info TimeZone::from_rule(int64_t utc) const {
  if (!rule_.has_dst) return {rule_.std_offset, false, rule_.std_abbrev};
  int64_t year = civil_from_days((utc + rule_.std_offset) / 86400 -
                                 ((utc + rule_.std_offset) % 86400 < 0 ? 1 : 0))
                     .year;
  int64_t start = rule_local(year, rule_.start_m, rule_.start_w, rule_.start_d, rule_.start_time) -
                  rule_.std_offset;
  int64_t end =
      rule_local(year, rule_.end_m, rule_.end_w, rule_.end_d, rule_.end_time) - rule_.dst_offset;
  bool dst = start < end ? (utc >= start && utc < end) : !(utc >= end && utc < start);
  if (dst) return {rule_.dst_offset, true, rule_.dst_abbrev};
  return {rule_.std_offset, false, rule_.std_abbrev};
}

TimeZone::Info TimeZone::at_utc(int64_t utc) const {
  if (transitions_.empty() || utc >= transitions_.back()) {
    if (rule_.valid) return from_rule(utc);
    if (transitions_.empty()) {
      const Type& t = types_.front();
      return {t.offset, t.dst, t.abbrev};
    }
  }
  if (utc < transitions_.front()) {
    const Type* t = &types_.front();
    for (const Type& c : types_) {
      if (!c.dst) {
        t = &c;
        break;
      }
    }
    return {t->offset, t->dst, t->abbrev};
  }
  auto it = std::upper_bound(transitions_.begin(), transitions_.end(), utc);
  const Type& t = types_[transition_types_[static_cast<size_t>(it - transitions_.begin()) - 1]];
  return {t.offset, t.dst, t.abbrev};
}

int32_t TimeZone::offset_at_utc(int64_t utc) const {
  if (!transitions_.empty() && utc >= transitions_.front() && utc < transitions_.back()) {
    auto it = std::upper_bound(transitions_.begin(), transitions_.end(), utc);
    return types_[transition_types_[static_cast<size_t>(it - transitions_.begin()) - 1]].offset;
  }
  return at_utc(utc).offset;
}

int64_t TimeZone::local_to_utc(int64_t local) const {
  const int32_t before = offset_at_utc(local - 86400);
  const int32_t after = offset_at_utc(local + 86400);
  const int64_t u1 = local - before;
  const int64_t u2 = local - after;
  const bool ok1 = offset_at_utc(u1) == before;
  const bool ok2 = offset_at_utc(u2) == after;
  if (ok1 && ok2) return std::min(u1, u2);
  if (ok1) return u1;
  if (ok2) return u2;
  return u1;  // gap: read with the offset in force before it, i.e. shifted forward
}

std::shared_ptr<const TimeZone> TimeZone::from_tzif(const std::string& name, const std::string& b) {
  if (b.size() < 44 || b.compare(0, 4, "TZif") != 0) return nullptr;
  auto parse_block = [&](size_t pos, int tsize, TimeZone& z, size_t& end) -> bool {
    if (pos + 44 > b.size()) return false;
    const int64_t isut = read_be(b, pos + 20, 4), isstd = read_be(b, pos + 24, 4),
                  leap = read_be(b, pos + 28, 4), timecnt = read_be(b, pos + 32, 4),
                  typecnt = read_be(b, pos + 36, 4), charcnt = read_be(b, pos + 40, 4);
    if (typecnt <= 0 || timecnt < 0 || charcnt < 0 || leap < 0 || isut < 0 || isstd < 0)
      return false;
    size_t p = pos + 44;
    const size_t need = static_cast<size_t>(timecnt * tsize + timecnt + typecnt * 6 + charcnt +
                                            leap * (tsize + 4) + isstd + isut);
    if (p + need > b.size()) return false;
    z.transitions_.clear();
    z.transition_types_.clear();
    z.types_.clear();
    for (int64_t i = 0; i < timecnt; ++i)
      z.transitions_.push_back(read_be(b, p + i * tsize, tsize));
    p += static_cast<size_t>(timecnt * tsize);
    for (int64_t i = 0; i < timecnt; ++i) {
      uint8_t t = static_cast<uint8_t>(b[p + static_cast<size_t>(i)]);
      if (t >= typecnt) return false;
      z.transition_types_.push_back(t);
    }
    p += static_cast<size_t>(timecnt);
    const size_t chars = p + static_cast<size_t>(typecnt * 6);
    for (int64_t i = 0; i < typecnt; ++i) {
      size_t q = p + static_cast<size_t>(i * 6);
      Type t;
      t.offset = static_cast<int32_t>(read_be(b, q, 4));
      t.dst = b[q + 4] != 0;
      size_t idx = static_cast<unsigned char>(b[q + 5]);
      if (idx < static_cast<size_t>(charcnt)) {
        size_t e = b.find('\0', chars + idx);
        if (e == std::string::npos || e > chars + static_cast<size_t>(charcnt))
          e = chars + static_cast<size_t>(charcnt);
        t.abbrev = b.substr(chars + idx, e - chars - idx);
      }
      z.types_.push_back(std::move(t));
    }
    end = p + need - static_cast<size_t>(timecnt * tsize + timecnt);
    return true;
  };
  auto z = std::make_shared<TimeZone>();
  z->name_ = name;
  size_t end = 0;
  if (!parse_block(0, 4, *z, end)) return nullptr;
  if (b[4] >= '2') {
    size_t end2 = 0;
    if (!parse_block(end, 8, *z, end2)) return nullptr;
    if (end2 < b.size() && b[end2] == '\n') {
      size_t e = b.find('\n', end2 + 1);
      if (e != std::string::npos) {
        Rule r;
        if (parse_posix(b.substr(end2 + 1, e - end2 - 1), r)) z->rule_ = r;
      }
    }
  }
  if (z->types_.empty()) return nullptr;
  return z;
}

std::shared_ptr<const TimeZone> TimeZone::get(const std::string& name) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const TimeZone>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(name);
  if (it != cache.end()) return it->second;
  std::shared_ptr<const TimeZone> z;
  if (valid_zone_name(name)) {
    const char* dir = std::getenv("TZDIR");
    std::string path = std::string(dir && *dir ? dir : "/usr/share/zoneinfo") + "/" + name;
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::ostringstream ss;
      ss << in.rdbuf();
      z = from_tzif(name, ss.str());
    }
  }
  if (z) cache.emplace(name, z);  // failures are not cached: names may come from data
  return z;
}

}  // namespace relais::mappings

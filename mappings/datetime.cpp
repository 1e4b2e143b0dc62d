#include "mappings/datetime.h"

#include <array>
#include <cstdio>

namespace relais::mappings {

namespace {

const std::array<const char*, 7> kDays = {"dimanche", "lundi",    "mardi", "mercredi",
                                          "jeudi",    "vendredi", "samedi"};
const std::array<const char*, 7> kDaysShort = {"dim.", "lun.", "mar.", "mer.",
                                               "jeu.", "ven.", "sam."};
const std::array<const char*, 12> kMonths = {"janvier",   "février", "mars",     "avril",
                                             "mai",       "juin",    "juillet",  "août",
                                             "septembre", "octobre", "novembre", "décembre"};
const std::array<const char*, 12> kMonthsShort = {"janv.", "févr.", "mars",  "avr.",
                                                  "mai",   "juin",  "juil.", "août",
                                                  "sept.", "oct.",  "nov.",  "déc."};
const std::array<const char*, 12> kMonthsEn = {"january",   "february", "march",    "april",
                                               "may",       "june",     "july",     "august",
                                               "september", "october",  "november", "december"};

bool digits(std::string_view s, size_t& i, int n, int& out) {
  if (i + static_cast<size_t>(n) > s.size()) return false;
  int v = 0;
  for (int k = 0; k < n; ++k) {
    char c = s[i + static_cast<size_t>(k)];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  i += static_cast<size_t>(n);
  out = v;
  return true;
}

// 1 or 2 digits (for %e, %-d style input).
bool digits12(std::string_view s, size_t& i, int max_digits, int& out) {
  int v = 0, n = 0;
  while (i < s.size() && n < max_digits && s[i] >= '0' && s[i] <= '9') {
    v = v * 10 + (s[i++] - '0');
    ++n;
  }
  out = v;
  return n > 0;
}

bool parse_offset(std::string_view s, size_t& i, int32_t& off) {
  if (i >= s.size()) return false;
  if (s[i] == 'Z' || s[i] == 'z') {
    ++i;
    off = 0;
    return true;
  }
  if (s[i] != '+' && s[i] != '-') return false;
  int sign = s[i] == '-' ? -1 : 1;
  ++i;
  int h = 0, m = 0;
  if (!digits(s, i, 2, h)) return false;
  if (i < s.size() && s[i] == ':') ++i;
  if (i < s.size() && !digits(s, i, 2, m)) return false;
  if (h > 23 || m > 59) return false;
  off = sign * (h * 3600 + m * 60);
  return true;
}

bool valid_date(int y, int m, int d) {
  return m >= 1 && m <= 12 && d >= 1 &&
         static_cast<unsigned>(d) <= days_in_month(y, static_cast<unsigned>(m)) && y >= 1;
}

void put2(std::string& out, int v, bool pad) {
  if (v < 10) {
    if (pad) out.push_back('0');
    out.push_back(static_cast<char>('0' + v));
  } else {
    out.push_back(static_cast<char>('0' + v / 10));
    out.push_back(static_cast<char>('0' + v % 10));
  }
}

void put_offset(std::string& out, int32_t off, bool colon) {
  out.push_back(off < 0 ? '-' : '+');
  if (off < 0) off = -off;
  put2(out, off / 3600, true);
  if (colon) out.push_back(':');
  put2(out, (off % 3600) / 60, true);
}

struct Fields {
  int64_t year;
  int month, day, hour, minute, second;
  int64_t days;
};

Fields split(int64_t local) {
  int64_t days = local / 86400;
  int64_t rem = local % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  CivilDate c = civil_from_days(days);
  return {c.year,
          static_cast<int>(c.month),
          static_cast<int>(c.day),
          static_cast<int>(rem / 3600),
          static_cast<int>((rem % 3600) / 60),
          static_cast<int>(rem % 60),
          days};
}

void put_year(std::string& out, int64_t y) {
  if (y >= 0 && y <= 9999) {
    out.push_back(static_cast<char>('0' + y / 1000));
    out.push_back(static_cast<char>('0' + (y / 100) % 10));
    out.push_back(static_cast<char>('0' + (y / 10) % 10));
    out.push_back(static_cast<char>('0' + y % 10));
    return;
  }
  out += std::to_string(y);
}

// Matches a month name (French with or without accents, or English, full or 3+ letters).
bool match_month(std::string_view s, size_t& i, int& month) {
  auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
  size_t best_len = 0;
  int best = 0;
  auto try_name = [&](std::string_view name, int m) {
    size_t k = 0;
    while (k < name.size() && i + k < s.size() && lower(s[i + k]) == name[k]) ++k;
    bool full = k == name.size();
    if ((full || k >= 3) && k > best_len) {
      // accept a prefix of >= 3 chars only when the input does not continue with a letter
      if (!full && i + k < s.size() && std::isalpha(static_cast<unsigned char>(s[i + k]))) return;
      best_len = k;
      best = m;
    }
  };
  for (int m = 0; m < 12; ++m) {
    try_name(kMonths[static_cast<size_t>(m)], m + 1);
    try_name(kMonthsEn[static_cast<size_t>(m)], m + 1);
  }
  // unaccented French spellings
  try_name("fevrier", 2);
  try_name("aout", 8);
  try_name("decembre", 12);
  if (best == 0) return false;
  i += best_len;
  if (i < s.size() && s[i] == '.') ++i;
  month = best;
  return true;
}

}  // namespace

bool parse_iso(std::string_view s, ParsedTime& out) {
  size_t i = 0;
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0;
  if (!digits(s, i, 4, y) || i >= s.size() || s[i++] != '-' || !digits(s, i, 2, mo) ||
      i >= s.size() || s[i++] != '-' || !digits(s, i, 2, d))
    return false;
  if (!valid_date(y, mo, d)) return false;
  out = ParsedTime{};
  if (i < s.size()) {
    if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') return false;
    ++i;
    if (!digits(s, i, 2, h) || i >= s.size() || s[i++] != ':' || !digits(s, i, 2, mi)) return false;
    if (i < s.size() && s[i] == ':') {
      ++i;
      if (!digits(s, i, 2, se)) return false;
      if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
        ++i;
        size_t b = i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
        if (i == b) return false;
      }
    }
    if (h > 24 || mi > 59 || se > 60 || (h == 24 && (mi || se))) return false;
    out.has_time = true;
    if (i < s.size()) {
      if (!parse_offset(s, i, out.offset)) return false;
      out.has_offset = true;
    }
    if (i != s.size()) return false;
  }
  out.local = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 +
              h * 3600 + mi * 60 + (se == 60 ? 59 : se);
  return true;
}

int64_t to_utc(const ParsedTime& p, const TimeZone& tz) {
  return p.has_offset ? p.local - p.offset : tz.local_to_utc(p.local);
}

std::string format_local(int64_t utc, int32_t offset) {
  Fields f = split(utc + offset);
  std::string out;
  out.reserve(26);
  put_year(out, f.year);
  out.push_back('-');
  put2(out, f.month, true);
  out.push_back('-');
  put2(out, f.day, true);
  out.push_back('T');
  put2(out, f.hour, true);
  out.push_back(':');
  put2(out, f.minute, true);
  out.push_back(':');
  put2(out, f.second, true);
  return out;
}

std::string format_iso(int64_t utc, int32_t offset, bool utc_z) {
  std::string out = format_local(utc, offset);
  if (utc_z && offset == 0)
    out.push_back('Z');
  else
    put_offset(out, offset, true);
  return out;
}

bool validate_pattern(std::string_view fmt, bool for_parse, std::string& err) {
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') continue;
    ++i;
    if (i < fmt.size() && fmt[i] == '-') ++i;
    if (i < fmt.size() && fmt[i] == ':') ++i;
    if (i >= fmt.size()) {
      err = "date pattern ends with '%'";
      return false;
    }
    const std::string_view ok = for_parse ? "YymdeHMSBbz%" : "YymdeHMSjAaBbzZ%";
    if (ok.find(fmt[i]) == std::string_view::npos) {
      err = std::string("unsupported directive '%") + fmt[i] + "' in date pattern";
      return false;
    }
  }
  return true;
}

bool format_pattern(int64_t utc, const TimeZone& tz, std::string_view fmt, std::string& out,
                    std::string& err) {
  TimeZone::Info info = tz.at_utc(utc);
  Fields f = split(utc + info.offset);
  out.clear();
  for (size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if (c != '%') {
      out.push_back(c);
      continue;
    }
    bool pad = true, colon = false;
    ++i;
    if (i < fmt.size() && fmt[i] == '-') {
      pad = false;
      ++i;
    }
    if (i < fmt.size() && fmt[i] == ':') {
      colon = true;
      ++i;
    }
    if (i >= fmt.size()) {
      err = "date pattern ends with '%'";
      return false;
    }
    switch (fmt[i]) {
      case 'Y':
        put_year(out, f.year);
        break;
      case 'y':
        put2(out, static_cast<int>(((f.year % 100) + 100) % 100), true);
        break;
      case 'm':
        put2(out, f.month, pad);
        break;
      case 'd':
        put2(out, f.day, pad);
        break;
      case 'e':
        put2(out, f.day, false);
        break;
      case 'H':
        put2(out, f.hour, pad);
        break;
      case 'M':
        put2(out, f.minute, pad);
        break;
      case 'S':
        put2(out, f.second, pad);
        break;
      case 'j': {
        int64_t doy = f.days - days_from_civil(f.year, 1, 1) + 1;
        char buf[8];
        std::snprintf(buf, sizeof buf, pad ? "%03d" : "%d", static_cast<int>(doy));
        out += buf;
        break;
      }
      case 'A':
        out += kDays[weekday_from_days(f.days)];
        break;
      case 'a':
        out += kDaysShort[weekday_from_days(f.days)];
        break;
      case 'B':
        out += kMonths[static_cast<size_t>(f.month - 1)];
        break;
      case 'b':
        out += kMonthsShort[static_cast<size_t>(f.month - 1)];
        break;
      case 'z':
        put_offset(out, info.offset, colon);
        break;
      case 'Z':
        out += info.abbrev;
        break;
      case '%':
        out.push_back('%');
        break;
      default:
        err = std::string("unsupported directive '%") + fmt[i] + "' in date pattern";
        return false;
    }
  }
  return true;
}

bool parse_pattern(std::string_view s, std::string_view fmt, ParsedTime& out, std::string& err) {
  int y = 1970, mo = 1, d = 1, h = 0, mi = 0, se = 0;
  bool has_time = false, has_offset = false;
  int32_t off = 0;
  size_t i = 0;
  auto fail = [&]() {
    // built with append(): GCC 12 reports a false -Wrestrict on chained operator+ here
    err.assign(1, '\'');
    err.append(s);
    err.append("' does not match the date pattern '");
    err.append(fmt);
    err.push_back('\'');
    return false;
  };
  for (size_t k = 0; k < fmt.size(); ++k) {
    char c = fmt[k];
    if (c == ' ') {
      while (i < s.size() && s[i] == ' ') ++i;
      continue;
    }
    if (c != '%') {
      if (i >= s.size() || s[i] != c) return fail();
      ++i;
      continue;
    }
    ++k;
    if (k < fmt.size() && (fmt[k] == '-' || fmt[k] == ':')) ++k;
    if (k >= fmt.size()) return fail();
    bool ok = true;
    switch (fmt[k]) {
      case 'Y':
        ok = digits(s, i, 4, y);
        break;
      case 'y':
        ok = digits(s, i, 2, y);
        y += y < 70 ? 2000 : 1900;
        break;
      case 'm':
        ok = digits12(s, i, 2, mo);
        break;
      case 'd':
      case 'e':
        ok = digits12(s, i, 2, d);
        break;
      case 'H':
        ok = digits12(s, i, 2, h);
        has_time = true;
        break;
      case 'M':
        ok = digits(s, i, 2, mi);
        has_time = true;
        break;
      case 'S':
        ok = digits(s, i, 2, se);
        has_time = true;
        break;
      case 'B':
      case 'b':
        ok = match_month(s, i, mo);
        break;
      case 'z':
        ok = parse_offset(s, i, off);
        has_offset = true;
        break;
      case '%':
        ok = i < s.size() && s[i++] == '%';
        break;
      default:
        ok = false;
    }
    if (!ok) return fail();
  }
  if (i != s.size() || !valid_date(y, mo, d) || h > 23 || mi > 59 || se > 59) return fail();
  out.local = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 +
              h * 3600 + mi * 60 + se;
  out.has_time = has_time;
  out.has_offset = has_offset;
  out.offset = off;
  return true;
}

}  // namespace relais::mappings

#include "mappings/text.h"

#include <algorithm>
#include <array>
#include <vector>

namespace relais::mappings::text {

namespace {

// Decodes one code point at s[i] (advancing i); invalid bytes give U+FFFD.
char32_t next_cp(std::string_view s, size_t& i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    ++i;
    return c;
  }
  int n = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : -1;
  if (n < 0 || i + static_cast<size_t>(n) >= s.size()) {
    ++i;
    return 0xFFFD;
  }
  char32_t cp = c & (0x3F >> n);
  for (int k = 1; k <= n; ++k) {
    unsigned char d = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
    if ((d & 0xC0) != 0x80) {
      ++i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (d & 0x3F);
  }
  i += static_cast<size_t>(n) + 1;
  return cp;
}

char32_t to_upper(char32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if (c < 0xE0) return c;
  if (c <= 0xFE) return c == 0xF7 ? c : c - 32;
  if (c == 0xFF) return 0x178;
  if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) return (c & 1) ? c - 1 : c;
  if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c & 1) ? c : c - 1;
  return c;
}

char32_t to_lower(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c < 0xC0) return c;
  if (c <= 0xDE) return c == 0xD7 ? c : c + 32;
  if (c == 0x178) return 0xFF;
  if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) return (c & 1) ? c : c + 1;
  if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c & 1) ? c + 1 : c;
  return c;
}

bool is_letter(char32_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7);
}

const std::array<const char*, 192> kStrip = {
    "A", "A", "A",  "A",  "A", "A", "AE", "C", "E", "E",  "E", "E", "I", "I", "I",  "I",
    "D", "N", "O",  "O",  "O", "O", "O",  "",  "O", "U",  "U", "U", "U", "Y", "TH", "ss",
    "a", "a", "a",  "a",  "a", "a", "ae", "c", "e", "e",  "e", "e", "i", "i", "i",  "i",
    "d", "n", "o",  "o",  "o", "o", "o",  "",  "o", "u",  "u", "u", "u", "y", "th", "y",
    "A", "a", "A",  "a",  "A", "a", "C",  "c", "C", "c",  "C", "c", "C", "c", "D",  "d",
    "D", "d", "E",  "e",  "E", "e", "E",  "e", "E", "e",  "E", "e", "G", "g", "G",  "g",
    "G", "g", "G",  "g",  "H", "h", "H",  "h", "I", "i",  "I", "i", "I", "i", "I",  "i",
    "I", "i", "IJ", "ij", "J", "j", "K",  "k", "k", "L",  "l", "L", "l", "L", "l",  "L",
    "l", "L", "l",  "N",  "n", "N", "n",  "N", "n", "'n", "N", "n", "O", "o", "O",  "o",
    "O", "o", "OE", "oe", "R", "r", "R",  "r", "R", "r",  "S", "s", "S", "s", "S",  "s",
    "S", "s", "T",  "t",  "T", "t", "T",  "t", "U", "u",  "U", "u", "U", "u", "U",  "u",
    "U", "u", "U",  "u",  "W", "w", "Y",  "y", "Y", "Z",  "z", "Z", "z", "Z", "z",  "s"};

// Typographic punctuation -> ASCII.
const char* punct(char32_t c) {
  switch (c) {
    case 0xA0:
    case 0x202F:
    case 0x2009:
    case 0x2007:
      return " ";
    case 0x2018:
    case 0x2019:
    case 0x201A:
    case 0x2032:
      return "'";
    case 0x201C:
    case 0x201D:
    case 0x201E:
    case 0xAB:
    case 0xBB:
      return "\"";
    case 0x2013:
    case 0x2014:
    case 0x2212:
      return "-";
    case 0x2026:
      return "...";
    case 0x2022:
    case 0xB7:
      return "-";
    default:
      return nullptr;
  }
}

bool in_gsm7(char32_t c) {
  if (c == '\n' || c == '\r') return true;
  if (c >= 0x20 && c < 0x7F) return c != '`';  // ^ { } \ [ ] ~ | are in the extension table
  static const char32_t kExtra[] = {
      0xA3,  0xA5,  0xE8,  0xE9,  0xF9,  0xEC,  0xF2,  0xC7,  0xD8, 0xF8, 0xC5, 0xE5,  0x394, 0x3A6,
      0x393, 0x39B, 0x3A9, 0x3A0, 0x3A8, 0x3A3, 0x398, 0x39E, 0xC6, 0xE6, 0xDF, 0xC9,  0xA4,  0xA1,
      0xC4,  0xD6,  0xD1,  0xDC,  0xA7,  0xBF,  0xE4,  0xF6,  0xF1, 0xFC, 0xE0, 0x20AC};
  for (char32_t e : kExtra)
    if (e == c) return true;
  return false;
}

}  // namespace

std::string upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) append_utf8(out, to_upper(next_cp(s, i)));
  return out;
}

std::string lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) append_utf8(out, to_lower(next_cp(s, i)));
  return out;
}

std::string capitalize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool start = true;
  for (size_t i = 0; i < s.size();) {
    char32_t c = next_cp(s, i);
    if (is_letter(c)) {
      append_utf8(out, start ? to_upper(c) : to_lower(c));
      start = false;
    } else {
      append_utf8(out, c);
      start = true;
    }
  }
  return out;
}

std::string trim(std::string_view s) {
  auto is_space_at = [&](size_t i, size_t& len) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      len = 1;
      return true;
    }
    if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0xA0) {
      len = 2;
      return true;
    }
    return false;
  };
  size_t b = 0, len = 0;
  while (b < s.size() && is_space_at(b, len)) b += len;
  size_t e = s.size();
  while (e > b) {
    if (is_space_at(e - 1, len) && len == 1) {
      --e;
    } else if (e >= b + 2 && is_space_at(e - 2, len) && len == 2) {
      e -= 2;
    } else {
      break;
    }
  }
  return std::string(s.substr(b, e - b));
}

std::string strip_accents(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t b = i;
    char32_t c = next_cp(s, i);
    if (c >= 0xC0 && c < 0x180 && *kStrip[c - 0xC0]) {
      out += kStrip[c - 0xC0];
    } else if (c == 0x178) {
      out.push_back('Y');
    } else {
      out.append(s.substr(b, i - b));
    }
  }
  return out;
}

std::string gsm7(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    char32_t c = next_cp(s, i);
    if (in_gsm7(c)) {
      append_utf8(out, c);
    } else if (const char* p = punct(c)) {
      out += p;
    } else if (c >= 0xC0 && c < 0x180 && *kStrip[c - 0xC0]) {
      out += kStrip[c - 0xC0];
    } else if (c == 0x178) {
      out.push_back('Y');
    } else if (c == '\t') {
      out.push_back(' ');
    } else {
      out.push_back('?');
    }
  }
  return out;
}

size_t length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

namespace {
std::vector<size_t> boundaries(std::string_view s) {
  std::vector<size_t> b;
  for (size_t i = 0; i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) b.push_back(i);
  b.push_back(s.size());
  return b;
}
}  // namespace

std::string substring(std::string_view s, long long start, long long count) {
  std::vector<size_t> b = boundaries(s);
  const long long n = static_cast<long long>(b.size()) - 1;
  if (start < 0) start = std::max(0LL, n + start);
  if (start > n) start = n;
  long long end = count < 0 ? n : std::min(n, start + count);
  if (end < start) end = start;
  return std::string(s.substr(b[static_cast<size_t>(start)],
                              b[static_cast<size_t>(end)] - b[static_cast<size_t>(start)]));
}

std::string truncate(std::string_view s, long long max, std::string_view suffix) {
  if (max < 0) max = 0;
  long long n = static_cast<long long>(length(s));
  if (n <= max) return std::string(s);
  long long keep = max - static_cast<long long>(length(suffix));
  if (keep < 0) return substring(suffix, 0, max);
  return substring(s, 0, keep) + std::string(suffix);
}

std::string pad(std::string_view s, long long width, std::string_view fill, bool left) {
  long long n = static_cast<long long>(length(s));
  if (n >= width || fill.empty()) return std::string(s);
  std::string padding;
  long long fill_len = static_cast<long long>(length(fill));
  while (static_cast<long long>(length(padding)) + fill_len <= width - n) padding += fill;
  long long missing = width - n - static_cast<long long>(length(padding));
  if (missing > 0) padding += substring(fill, 0, missing);
  return left ? padding + std::string(s) : std::string(s) + padding;
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  if (from.empty()) return std::string(s);
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t f = s.find(from, pos);
    if (f == std::string_view::npos) break;
    out.append(s.substr(pos, f - pos));
    out.append(to);
    pos = f + from.size();
  }
  out.append(s.substr(pos));
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace relais::mappings::text

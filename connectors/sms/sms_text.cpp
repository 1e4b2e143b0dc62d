#include "connectors/sms/sms_text.h"

#include "mappings/text.h"

#include <cmath>
#include <stdexcept>
#include <unordered_map>

namespace relais::sms {

namespace {

// Generated from fixtures/sms/GSM0338.TXT (Unicode, Inc.; see the notice in that file), in
// the file's order, without the 0x1B escape line. tests/sms compares it with the file.
constexpr Gsm7Entry kGsm7Table[] = {
    {0x00, 0x0040},    // COMMERCIAL AT
    {0x01, 0x00A3},    // POUND SIGN
    {0x02, 0x0024},    // DOLLAR SIGN
    {0x03, 0x00A5},    // YEN SIGN
    {0x04, 0x00E8},    // LATIN SMALL LETTER E WITH GRAVE
    {0x05, 0x00E9},    // LATIN SMALL LETTER E WITH ACUTE
    {0x06, 0x00F9},    // LATIN SMALL LETTER U WITH GRAVE
    {0x07, 0x00EC},    // LATIN SMALL LETTER I WITH GRAVE
    {0x08, 0x00F2},    // LATIN SMALL LETTER O WITH GRAVE
    {0x09, 0x00C7},    // LATIN CAPITAL LETTER C WITH CEDILLA
    {0x0A, 0x000A},    // LINE FEED
    {0x0B, 0x00D8},    // LATIN CAPITAL LETTER O WITH STROKE
    {0x0C, 0x00F8},    // LATIN SMALL LETTER O WITH STROKE
    {0x0D, 0x000D},    // CARRIAGE RETURN
    {0x0E, 0x00C5},    // LATIN CAPITAL LETTER A WITH RING ABOVE
    {0x0F, 0x00E5},    // LATIN SMALL LETTER A WITH RING ABOVE
    {0x10, 0x0394},    // GREEK CAPITAL LETTER DELTA
    {0x11, 0x005F},    // LOW LINE
    {0x12, 0x03A6},    // GREEK CAPITAL LETTER PHI
    {0x13, 0x0393},    // GREEK CAPITAL LETTER GAMMA
    {0x14, 0x039B},    // GREEK CAPITAL LETTER LAMDA
    {0x15, 0x03A9},    // GREEK CAPITAL LETTER OMEGA
    {0x16, 0x03A0},    // GREEK CAPITAL LETTER PI
    {0x17, 0x03A8},    // GREEK CAPITAL LETTER PSI
    {0x18, 0x03A3},    // GREEK CAPITAL LETTER SIGMA
    {0x19, 0x0398},    // GREEK CAPITAL LETTER THETA
    {0x1A, 0x039E},    // GREEK CAPITAL LETTER XI
    {0x1B0A, 0x000C},  // FORM FEED
    {0x1B14, 0x005E},  // CIRCUMFLEX ACCENT
    {0x1B28, 0x007B},  // LEFT CURLY BRACKET
    {0x1B29, 0x007D},  // RIGHT CURLY BRACKET
    {0x1B2F, 0x005C},  // REVERSE SOLIDUS
    {0x1B3C, 0x005B},  // LEFT SQUARE BRACKET
    {0x1B3D, 0x007E},  // TILDE
    {0x1B3E, 0x005D},  // RIGHT SQUARE BRACKET
    {0x1B40, 0x007C},  // VERTICAL LINE
    {0x1B65, 0x20AC},  // EURO SIGN
    {0x1C, 0x00C6},    // LATIN CAPITAL LETTER AE
    {0x1D, 0x00E6},    // LATIN SMALL LETTER AE
    {0x1E, 0x00DF},    // LATIN SMALL LETTER SHARP S (German)
    {0x1F, 0x00C9},    // LATIN CAPITAL LETTER E WITH ACUTE
    {0x20, 0x0020},    // SPACE
    {0x21, 0x0021},    // EXCLAMATION MARK
    {0x22, 0x0022},    // QUOTATION MARK
    {0x23, 0x0023},    // NUMBER SIGN
    {0x24, 0x00A4},    // CURRENCY SIGN
    {0x25, 0x0025},    // PERCENT SIGN
    {0x26, 0x0026},    // AMPERSAND
    {0x27, 0x0027},    // APOSTROPHE
    {0x28, 0x0028},    // LEFT PARENTHESIS
    {0x29, 0x0029},    // RIGHT PARENTHESIS
    {0x2A, 0x002A},    // ASTERISK
    {0x2B, 0x002B},    // PLUS SIGN
    {0x2C, 0x002C},    // COMMA
    {0x2D, 0x002D},    // HYPHEN-MINUS
    {0x2E, 0x002E},    // FULL STOP
    {0x2F, 0x002F},    // SOLIDUS
    {0x30, 0x0030},    // DIGIT ZERO
    {0x31, 0x0031},    // DIGIT ONE
    {0x32, 0x0032},    // DIGIT TWO
    {0x33, 0x0033},    // DIGIT THREE
    {0x34, 0x0034},    // DIGIT FOUR
    {0x35, 0x0035},    // DIGIT FIVE
    {0x36, 0x0036},    // DIGIT SIX
    {0x37, 0x0037},    // DIGIT SEVEN
    {0x38, 0x0038},    // DIGIT EIGHT
    {0x39, 0x0039},    // DIGIT NINE
    {0x3A, 0x003A},    // COLON
    {0x3B, 0x003B},    // SEMICOLON
    {0x3C, 0x003C},    // LESS-THAN SIGN
    {0x3D, 0x003D},    // EQUALS SIGN
    {0x3E, 0x003E},    // GREATER-THAN SIGN
    {0x3F, 0x003F},    // QUESTION MARK
    {0x40, 0x00A1},    // INVERTED EXCLAMATION MARK
    {0x41, 0x0041},    // LATIN CAPITAL LETTER A
    {0x42, 0x0042},    // LATIN CAPITAL LETTER B
    {0x43, 0x0043},    // LATIN CAPITAL LETTER C
    {0x44, 0x0044},    // LATIN CAPITAL LETTER D
    {0x45, 0x0045},    // LATIN CAPITAL LETTER E
    {0x46, 0x0046},    // LATIN CAPITAL LETTER F
    {0x47, 0x0047},    // LATIN CAPITAL LETTER G
    {0x48, 0x0048},    // LATIN CAPITAL LETTER H
    {0x49, 0x0049},    // LATIN CAPITAL LETTER I
    {0x4A, 0x004A},    // LATIN CAPITAL LETTER J
    {0x4B, 0x004B},    // LATIN CAPITAL LETTER K
    {0x4C, 0x004C},    // LATIN CAPITAL LETTER L
    {0x4D, 0x004D},    // LATIN CAPITAL LETTER M
    {0x4E, 0x004E},    // LATIN CAPITAL LETTER N
    {0x4F, 0x004F},    // LATIN CAPITAL LETTER O
    {0x50, 0x0050},    // LATIN CAPITAL LETTER P
    {0x51, 0x0051},    // LATIN CAPITAL LETTER Q
    {0x52, 0x0052},    // LATIN CAPITAL LETTER R
    {0x53, 0x0053},    // LATIN CAPITAL LETTER S
    {0x54, 0x0054},    // LATIN CAPITAL LETTER T
    {0x55, 0x0055},    // LATIN CAPITAL LETTER U
    {0x56, 0x0056},    // LATIN CAPITAL LETTER V
    {0x57, 0x0057},    // LATIN CAPITAL LETTER W
    {0x58, 0x0058},    // LATIN CAPITAL LETTER X
    {0x59, 0x0059},    // LATIN CAPITAL LETTER Y
    {0x5A, 0x005A},    // LATIN CAPITAL LETTER Z
    {0x5B, 0x00C4},    // LATIN CAPITAL LETTER A WITH DIAERESIS
    {0x5C, 0x00D6},    // LATIN CAPITAL LETTER O WITH DIAERESIS
    {0x5D, 0x00D1},    // LATIN CAPITAL LETTER N WITH TILDE
    {0x5E, 0x00DC},    // LATIN CAPITAL LETTER U WITH DIAERESIS
    {0x5F, 0x00A7},    // SECTION SIGN
    {0x60, 0x00BF},    // INVERTED QUESTION MARK
    {0x61, 0x0061},    // LATIN SMALL LETTER A
    {0x62, 0x0062},    // LATIN SMALL LETTER B
    {0x63, 0x0063},    // LATIN SMALL LETTER C
    {0x64, 0x0064},    // LATIN SMALL LETTER D
    {0x65, 0x0065},    // LATIN SMALL LETTER E
    {0x66, 0x0066},    // LATIN SMALL LETTER F
    {0x67, 0x0067},    // LATIN SMALL LETTER G
    {0x68, 0x0068},    // LATIN SMALL LETTER H
    {0x69, 0x0069},    // LATIN SMALL LETTER I
    {0x6A, 0x006A},    // LATIN SMALL LETTER J
    {0x6B, 0x006B},    // LATIN SMALL LETTER K
    {0x6C, 0x006C},    // LATIN SMALL LETTER L
    {0x6D, 0x006D},    // LATIN SMALL LETTER M
    {0x6E, 0x006E},    // LATIN SMALL LETTER N
    {0x6F, 0x006F},    // LATIN SMALL LETTER O
    {0x70, 0x0070},    // LATIN SMALL LETTER P
    {0x71, 0x0071},    // LATIN SMALL LETTER Q
    {0x72, 0x0072},    // LATIN SMALL LETTER R
    {0x73, 0x0073},    // LATIN SMALL LETTER S
    {0x74, 0x0074},    // LATIN SMALL LETTER T
    {0x75, 0x0075},    // LATIN SMALL LETTER U
    {0x76, 0x0076},    // LATIN SMALL LETTER V
    {0x77, 0x0077},    // LATIN SMALL LETTER W
    {0x78, 0x0078},    // LATIN SMALL LETTER X
    {0x79, 0x0079},    // LATIN SMALL LETTER Y
    {0x7A, 0x007A},    // LATIN SMALL LETTER Z
    {0x7B, 0x00E4},    // LATIN SMALL LETTER A WITH DIAERESIS
    {0x7C, 0x00F6},    // LATIN SMALL LETTER O WITH DIAERESIS
    {0x7D, 0x00F1},    // LATIN SMALL LETTER N WITH TILDE
    {0x7E, 0x00FC},    // LATIN SMALL LETTER U WITH DIAERESIS
    {0x7F, 0x00E0},    // LATIN SMALL LETTER A WITH GRAVE
};

const std::unordered_map<char32_t, int>& gsm7_index() {
  static const std::unordered_map<char32_t, int> index = [] {
    std::unordered_map<char32_t, int> m;
    for (const Gsm7Entry& e : kGsm7Table) m.emplace(e.unicode, e.code > 0x7F ? 2 : 1);
    return m;
  }();
  return index;
}

// Decodes one code point at s[i], advancing i. Returns false (and skips one byte) on an
// invalid sequence: bad lead or continuation byte, truncation, overlong form, surrogate or
// value above U+10FFFF.
bool decode(std::string_view s, size_t& i, char32_t& cp) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    cp = c;
    ++i;
    return true;
  }
  size_t n;
  char32_t min;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 1;
    min = 0x80;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 2;
    min = 0x800;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 3;
    min = 0x10000;
    cp = c & 0x07;
  } else {
    ++i;
    return false;
  }
  if (i + n >= s.size()) {  // truncated
    ++i;
    return false;
  }
  for (size_t k = 1; k <= n; ++k) {
    const unsigned char d = static_cast<unsigned char>(s[i + k]);
    if ((d & 0xC0) != 0x80) {
      ++i;
      return false;
    }
    cp = (cp << 6) | (d & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++i;
    return false;
  }
  i += n + 1;
  return true;
}

// One decoded character: its byte range in the input and its size in GSM-7 septets (0 when
// not GSM-7) and in UTF-16 units.
struct Char {
  size_t begin;
  size_t end;
  int septets;
  int utf16;
};

struct Scan {
  std::vector<Char> chars;
  bool valid_utf8 = true;
  bool gsm7 = true;
};

Scan scan(std::string_view s) {
  Scan r;
  r.chars.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t b = i;
    char32_t cp = 0;
    if (!decode(s, i, cp)) {
      r.valid_utf8 = false;
      cp = 0xFFFD;
    }
    const int septets = gsm7_septets(cp);
    if (septets == 0) r.gsm7 = false;
    r.chars.push_back({b, i, septets, cp > 0xFFFF ? 2 : 1});
  }
  return r;
}

// Start indexes (into scan.chars) of each part, and the total units.
struct Layout {
  std::vector<size_t> starts;
  size_t units = 0;
};

Layout layout(const Scan& sc) {
  Layout l;
  const bool gsm = sc.gsm7;
  for (const Char& c : sc.chars) l.units += static_cast<size_t>(gsm ? c.septets : c.utf16);
  if (sc.chars.empty()) return l;
  const size_t single = gsm ? kGsm7SingleSeptets : kUcs2SingleUnits;
  const size_t part = gsm ? kGsm7PartSeptets : kUcs2PartUnits;
  l.starts.push_back(0);
  if (l.units <= single) return l;
  size_t used = 0;
  for (size_t k = 0; k < sc.chars.size(); ++k) {
    const size_t w = static_cast<size_t>(gsm ? sc.chars[k].septets : sc.chars[k].utf16);
    if (used + w > part) {  // the character (even a 2-unit one) moves whole to the next part
      l.starts.push_back(k);
      used = 0;
    }
    used += w;
  }
  return l;
}

// Replacement of a typographic character, or nullptr.
const char* typographic(char32_t c) {
  switch (c) {
    case 0x2018:  // ‘
    case 0x2019:  // ’
    case 0x201A:  // ‚
    case 0x201B:  // ‛
    case 0x2032:  // ′
    case 0x00B4:  // ´
    case 0x0060:  // `
      return "'";
    case 0x201C:  // “
    case 0x201D:  // ”
    case 0x201E:  // „
    case 0x00AB:  // «
    case 0x00BB:  // »
    case 0x2033:  // ″
      return "\"";
    case 0x2010:  // ‐
    case 0x2011:  // non-breaking hyphen
    case 0x2012:  // ‒
    case 0x2013:  // –
    case 0x2014:  // —
    case 0x2212:  // −
    case 0x2022:  // •
      return "-";
    case 0x2026:  // …
      return "...";
    case 0x00A0:  // no-break space
    case 0x202F:  // narrow no-break space (French typography before ; : ! ?)
    case 0x2009:  // thin space
    case 0x2007:  // figure space
    case 0x2002:  // en space
    case 0x2003:  // em space
      return " ";
    default:
      return nullptr;
  }
}

// Transliteration of a letter GSM-7 lacks, or nullptr. Only consulted for characters that
// are not GSM-7, so é, à, Ç... never reach it.
const char* transliteration(char32_t c) {
  switch (c) {
    case 0xC0:  // À
    case 0xC1:
    case 0xC2:
    case 0xC3:
      return "A";
    case 0xE1:  // á
    case 0xE2:  // â
    case 0xE3:
      return "a";
    case 0xC8:  // È
    case 0xCA:
    case 0xCB:
      return "E";
    case 0xEA:  // ê
    case 0xEB:  // ë
      return "e";
    case 0xCC:
    case 0xCD:
    case 0xCE:
    case 0xCF:
      return "I";
    case 0xED:
    case 0xEE:  // î
    case 0xEF:  // ï
      return "i";
    case 0xD2:
    case 0xD3:
    case 0xD4:
    case 0xD5:
      return "O";
    case 0xF3:
    case 0xF4:  // ô
    case 0xF5:
      return "o";
    case 0xD9:
    case 0xDA:
    case 0xDB:
      return "U";
    case 0xFA:
    case 0xFB:  // û
      return "u";
    case 0xDD:
    case 0x178:  // Ÿ
      return "Y";
    case 0xFD:
    case 0xFF:  // ÿ
      return "y";
    case 0xE7:  // ç (GSM-7 has only Ç)
      return "c";
    case 0x152:  // Œ
      return "OE";
    case 0x153:  // œ
      return "oe";
    case 0xB0:  // ° as in "n° 12"
      return "o";
    default:
      return nullptr;
  }
}

}  // namespace

std::string_view to_string(SmsEncoding e) {
  return e == SmsEncoding::Gsm7 ? "GSM-7" : "UCS-2";
}

std::span<const Gsm7Entry> gsm7_table() {
  return kGsm7Table;
}

int gsm7_septets(char32_t c) {
  const auto& index = gsm7_index();
  auto it = index.find(c);
  return it == index.end() ? 0 : it->second;
}

SmsTextInfo analyse_sms_text(std::string_view utf8) {
  const Scan sc = scan(utf8);
  const Layout l = layout(sc);
  SmsTextInfo info;
  info.encoding = sc.gsm7 ? SmsEncoding::Gsm7 : SmsEncoding::Ucs2;
  info.units = l.units;
  info.segments = l.starts.size();
  info.characters = sc.chars.size();
  info.valid_utf8 = sc.valid_utf8;
  return info;
}

std::vector<std::string> split_sms_parts(std::string_view utf8) {
  const Scan sc = scan(utf8);
  const Layout l = layout(sc);
  std::vector<std::string> parts;
  for (size_t p = 0; p < l.starts.size(); ++p) {
    const size_t b = sc.chars[l.starts[p]].begin;
    const size_t e = p + 1 < l.starts.size() ? sc.chars[l.starts[p + 1]].begin : utf8.size();
    parts.emplace_back(utf8.substr(b, e - b));
  }
  return parts;
}

double cost_estimate(size_t segments, double price_per_segment_cents) {
  if (!std::isfinite(price_per_segment_cents) || price_per_segment_cents < 0)
    throw std::invalid_argument("SMS price per segment must be a finite number >= 0");
  return static_cast<double>(segments) * price_per_segment_cents;
}

std::optional<std::string> check_max_segments(const SmsTextInfo& info, size_t max_segments) {
  if (max_segments == 0) throw std::invalid_argument("the maximum of SMS segments must be >= 1");
  if (info.segments == 0) return std::string("texte du SMS vide");
  if (info.segments <= max_segments) return std::nullopt;
  return "texte trop long : " + std::to_string(info.segments) + " segments SMS (" +
         std::string(to_string(info.encoding)) + ", " + std::to_string(info.units) +
         (info.encoding == SmsEncoding::Gsm7 ? " septets" : " unités") + ") pour un maximum de " +
         std::to_string(max_segments);
}

std::string to_gsm7_safe(std::string_view utf8, bool transliterate) {
  std::string out;
  out.reserve(utf8.size());
  for (size_t i = 0; i < utf8.size();) {
    const size_t b = i;
    char32_t cp = 0;
    if (!decode(utf8, i, cp)) {
      mappings::text::append_utf8(out, 0xFFFD);
      continue;
    }
    if (gsm7_septets(cp) > 0) {
      out.append(utf8.substr(b, i - b));
    } else if (const char* r = typographic(cp)) {
      out += r;
    } else if (const char* t = transliterate ? transliteration(cp) : nullptr) {
      out += t;
    } else {
      out.append(utf8.substr(b, i - b));
    }
  }
  return out;
}

}  // namespace relais::sms

// SMS text analysis: which encoding a text needs (GSM 03.38 7-bit default alphabet or UCS-2),
// how many units and segments it takes, what it is estimated to cost, and a GSM-7-safe
// rewrite of common typographic characters. Pure functions over UTF-8; no I/O.
//
// Thread-safety: every function is pure and safe to call concurrently (the GSM table is a
// constant, the lookup index is built once under the C++ static-initialisation guarantee).
// Ownership: results are plain values owned by the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace relais::sms {

enum class SmsEncoding { Gsm7, Ucs2 };

// "GSM-7" or "UCS-2".
std::string_view to_string(SmsEncoding e);

// Segment sizes (units per segment) of GSM 03.40 concatenated SMS.
inline constexpr size_t kGsm7SingleSeptets = 160;
inline constexpr size_t kGsm7PartSeptets = 153;  // 7 septets go to the UDH
inline constexpr size_t kUcs2SingleUnits = 70;
inline constexpr size_t kUcs2PartUnits = 67;  // 3 UTF-16 units go to the UDH

// One entry of the GSM 03.38 default alphabet: code 0x00-0x7F for the basic table, 0x1Bxx for
// the extension table (escape + code, 2 septets). Generated from the Unicode Consortium's
// GSM0338.TXT (fixtures/sms/GSM0338.TXT); the escape 0x1B itself is not a character, so the
// file's "0x1B -> U+00A0 (displayed as NBSP)" line is deliberately absent: a real no-break
// space is not GSM-7.
struct Gsm7Entry {
  uint16_t code;
  char32_t unicode;
};
// The whole table (127 basic + 10 extension entries), in GSM code order.
std::span<const Gsm7Entry> gsm7_table();

// Septets the code point takes in GSM-7: 1 (basic table), 2 (extension table) or 0 (not
// representable; the text must go as UCS-2).
int gsm7_septets(char32_t c);

struct SmsTextInfo {
  SmsEncoding encoding = SmsEncoding::Gsm7;
  // GSM-7: septets (extension characters count 2). UCS-2: UTF-16 code units (a character
  // outside the BMP counts 2, as a surrogate pair).
  size_t units = 0;
  // Number of SMS the text is sent as; 0 for an empty text.
  size_t segments = 0;
  // Unicode code points in the text.
  size_t characters = 0;
  // False when the input was not valid UTF-8 (each bad byte counted as U+FFFD, i.e. UCS-2).
  bool valid_utf8 = true;
};

// Analyses UTF-8 text. Segments: GSM-7 fits one SMS up to 160 septets, else parts of 153;
// UCS-2 one SMS up to 70 units, else parts of 67. An extension character (escape + code) is
// never split across two parts, nor is a surrogate pair, so a part may hold one unit less.
SmsTextInfo analyse_sms_text(std::string_view utf8);

// The parts the text is sent as (UTF-8 slices of the input, cut as analyse_sms_text counts);
// one element when it fits in a single SMS, none for an empty text.
std::vector<std::string> split_sms_parts(std::string_view utf8);

// Estimated cost in cents: segments x price per segment (a price may have fractions of a
// cent, e.g. 4.5). An estimate for reporting, not billing. Throws std::invalid_argument when
// the price is negative or not finite.
double cost_estimate(size_t segments, double price_per_segment_cents);

// Checks a text against the configured maximum of segments (>= 1; std::invalid_argument for
// 0). Returns the reason it cannot be sent (French, shown to support, e.g. "texte trop long :
// 4 segments SMS (UCS-2, 250 unités) pour un maximum de 3"), or nullopt when it can. An empty
// text is refused too ("texte du SMS vide").
std::optional<std::string> check_max_segments(const SmsTextInfo& info, size_t max_segments);

// Replaces common typographic characters by GSM-7 equivalents: ’ ‘ ‚ ′ ´ ` -> ', “ ” „ « » ″ -> ",
// – — ‐ ‑ ‒ − • -> -, … -> ..., no-break/narrow/thin/figure spaces -> space. Letters that
// GSM-7 has (é è à ù ì ò Ç É ñ Ñ ü Ü ö Ö ä Ä Å å Æ æ ø Ø ß ...) are never touched. Letters it
// lacks (â ê î ô û ë ï ç œ ...) are kept - the text then goes as UCS-2 - unless transliterate
// is true, in which case they become their base letter(s) (ê -> e, ç -> c, œ -> oe, ° -> o).
// Anything else (emoji, other scripts) is kept as is. Invalid UTF-8 bytes become U+FFFD.
std::string to_gsm7_safe(std::string_view utf8, bool transliterate = false);

}  // namespace relais::sms

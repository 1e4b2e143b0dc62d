// UTF-8 text helpers of the mapping language (French-aware: Latin-1 and Latin Extended-A
// letters are upper/lower-cased and stripped of accents). Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace relais::mappings::text {

std::string upper(std::string_view s);
std::string lower(std::string_view s);
// "jEAN-pierre d'arc" -> "Jean-Pierre D'Arc" (first letter of each word upper, rest lower).
std::string capitalize(std::string_view s);
// Removes ASCII whitespace and no-break spaces at both ends.
std::string trim(std::string_view s);
// "Élodie Œuvre" -> "Elodie Oeuvre".
std::string strip_accents(std::string_view s);
// Replaces characters outside the GSM 03.38 alphabet (basic + extension) by a close
// equivalent ("ê" -> "e", "’" -> "'", "«" -> "\"") or '?'.
std::string gsm7(std::string_view s);
// Length in code points.
size_t length(std::string_view s);
// Code point based substring (start may be negative: from the end).
std::string substring(std::string_view s, long long start, long long count);
// At most max code points; when cut, the result ends with suffix (counted in max).
std::string truncate(std::string_view s, long long max, std::string_view suffix);
std::string pad(std::string_view s, long long width, std::string_view fill, bool left);
std::string replace_all(std::string_view s, std::string_view from, std::string_view to);
// Appends the UTF-8 encoding of one code point.
void append_utf8(std::string& out, char32_t cp);

}  // namespace relais::mappings::text

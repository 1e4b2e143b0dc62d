// BAN queries and answers: building /search and /reverse URLs, normalising cache keys, reading
// GeoJSON answers, and the CSV helpers of the bulk endpoint. Pure functions.

#include <cctype>
#include <cstdio>

#include "connectors/ban/ban.h"

namespace relais::ban {
namespace {

// Replacement of U+00C0..U+00FF, lower-case ASCII ("" = separator).
const char* const kLatin1[64] = {
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i",  "i",
    "d", "n", "o", "o", "o", "o", "o",  "",  "o", "u", "u", "u", "u", "y", "th", "ss",
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i",  "i",
    "d", "n", "o", "o", "o", "o", "o",  "",  "o", "u", "u", "u", "u", "y", "th", "y",
};

// Latin Extended-A (U+0100..U+017F): base letter of each code point.
const char kLatinExtA[] =
    "aaaaaa"
    "cccccccc"
    "dddd"
    "eeeeeeeeee"
    "gggggggg"
    "hhhh"
    "iiiiiiiiii"
    "ii"
    "jj"
    "kkk"
    "llllllllll"
    "nnnnnnnnn"
    "oooooo"
    "oo"
    "rrrrrr"
    "ssssssss"
    "tttttt"
    "uuuuuuuuuuuu"
    "ww"
    "yyy"
    "zzzzzz"
    "s";
static_assert(sizeof(kLatinExtA) == 128 + 1, "one letter per code point of U+0100..U+017F");

bool unreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

std::string url_encode(const std::string& v) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  out.reserve(v.size() * 3);
  for (unsigned char c : v) {
    if (unreserved(c)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

std::string collapse_spaces(const std::string& text) {
  std::string out;
  bool space = false;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      space = !out.empty();
    } else {
      if (space) out.push_back(' ');
      space = false;
      out.push_back(c);
    }
  }
  return out;
}

bool is_postcode(const std::string& s) {
  if (s.size() != 5) return false;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Cuts at most `max` bytes without splitting a UTF-8 sequence.
std::string utf8_prefix(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  std::string out = s.substr(0, n);
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string format_coord(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6f", v);
  return buf;
}

}  // namespace

Query build_query(const Address& a, const std::string& type, bool filter_postcode) {
  Query q;
  std::string text;
  for (const std::string* part : {&a.number, &a.street, &a.postcode, &a.city}) {
    if (part->empty()) continue;
    if (!text.empty()) text.push_back(' ');
    text += *part;
  }
  q.q = utf8_prefix(collapse_spaces(text), 200);
  std::string pc = collapse_spaces(a.postcode);
  if (filter_postcode && is_postcode(pc)) q.postcode = pc;
  q.citycode = collapse_spaces(a.citycode);
  q.type = type == "any" ? "" : type;
  return q;
}

std::string search_url(const std::string& base_url, const Query& query) {
  std::string url = base_url;
  url += base_url.find('?') == std::string::npos ? '?' : '&';
  url += "q=" + url_encode(query.q);
  url += "&limit=" + std::to_string(query.limit);
  url += query.autocomplete ? "&autocomplete=1" : "&autocomplete=0";
  if (!query.type.empty()) url += "&type=" + url_encode(query.type);
  if (!query.postcode.empty()) url += "&postcode=" + url_encode(query.postcode);
  if (!query.citycode.empty()) url += "&citycode=" + url_encode(query.citycode);
  return url;
}

std::string reverse_url(const std::string& base_url, double lon, double lat,
                        const std::string& type) {
  std::string url = base_url;
  url += base_url.find('?') == std::string::npos ? '?' : '&';
  url += "lon=" + format_coord(lon) + "&lat=" + format_coord(lat) + "&limit=1";
  if (!type.empty() && type != "any") url += "&type=" + url_encode(type);
  return url;
}

std::string normalise(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  auto sep = [&out] { out.push_back(' '); };
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (std::isalnum(c)) {
        out.push_back(static_cast<char>(std::tolower(c)));
      } else {
        sep();
      }
      ++i;
      continue;
    }
    // Decode one UTF-8 sequence (invalid bytes are separators).
    uint32_t cp = 0;
    size_t len = 0;
    if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1F;
      len = 2;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0F;
      len = 3;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07;
      len = 4;
    }
    bool ok = len > 0 && i + len <= text.size();
    for (size_t k = 1; ok && k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (!ok) {
      sep();
      ++i;
      continue;
    }
    if (cp >= 0xC0 && cp <= 0xFF) {
      const char* r = kLatin1[cp - 0xC0];
      if (*r) {
        out += r;
      } else {
        sep();
      }
    } else if (cp == 0x152 || cp == 0x153) {
      out += "oe";
    } else if (cp >= 0x100 && cp < 0x100 + sizeof(kLatinExtA) - 1) {
      out.push_back(kLatinExtA[cp - 0x100]);
    } else if (cp == 0x178) {
      out.push_back('y');
    } else if (cp < 0xC0 || (cp >= 0x2000 && cp <= 0x206F)) {
      sep();  // Latin-1 punctuation, no-break space, typographic quotes and dashes
    } else {
      out.append(text, i, len);  // another script: kept as is
    }
    i += len;
  }
  return collapse_spaces(out);
}

std::string cache_key(const Query& q) {
  std::string key = normalise(q.q);
  key += '|';
  key += q.postcode;
  key += '|';
  key += q.citycode;
  key += '|';
  key += q.type;
  return key;
}

nlohmann::json feature_data(const nlohmann::json& feature) {
  nlohmann::json data = nlohmann::json::object();
  if (!feature.is_object()) return data;
  auto pit = feature.find("properties");
  if (pit != feature.end() && pit->is_object()) {
    const auto& p = *pit;
    // Only the types the service documents: a property of another type (a broken or hostile
    // answer) is left out, so that nothing downstream reads a number where text belongs.
    for (const char* k : {"label", "id", "type", "housenumber", "street", "postcode", "citycode",
                          "city", "context"}) {
      auto it = p.find(k);
      if (it != p.end() && it->is_string()) data[k] = *it;
    }
    auto score = p.find("score");
    if (score != p.end() && score->is_number()) data["score"] = *score;
    // A street-level answer names the street in `name`.
    auto name = p.find("name");
    if (!data.contains("street") && data.value("type", "") == "street" && name != p.end() &&
        name->is_string()) {
      data["street"] = *name;
    }
  }
  auto git = feature.find("geometry");
  if (git != feature.end() && git->is_object()) {
    auto cit = git->find("coordinates");
    if (cit != git->end() && cit->is_array() && cit->size() >= 2 && (*cit)[0].is_number() &&
        (*cit)[1].is_number()) {
      data["lon"] = (*cit)[0];
      data["lat"] = (*cit)[1];
    }
  }
  if (pit != feature.end() && pit->is_object()) {
    for (const char* k : {"x", "y"}) {
      auto it = pit->find(k);
      if (it != pit->end() && it->is_number()) data[k] = *it;
    }
  }
  return data;
}

bool parse_response(const std::string& body, Match& out, std::string& error) {
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    error = "the answer is not JSON";
    return false;
  }
  auto fit = doc.find("features");
  if (fit == doc.end() || !fit->is_array()) {
    error = "the answer has no features";
    return false;
  }
  out = Match{};
  if (fit->empty()) return true;
  const auto& f = (*fit)[0];
  out.data = feature_data(f);
  out.found = true;
  if (out.data.contains("score") && out.data["score"].is_number()) {
    out.score = out.data["score"].get<double>();
  }
  if (out.data.contains("type") && out.data["type"].is_string()) {
    out.type = out.data["type"].get<std::string>();
  }
  return true;
}

std::string csv_escape(const std::string& field) {
  if (field.find_first_of(",\"\r\n") == std::string::npos) return field;
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::vector<std::vector<std::string>> csv_parse(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  size_t i = 0;
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;  // BOM
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          quoted = false;
        }
      } else {
        field.push_back(c);
      }
      continue;
    }
    if (c == '"') {
      quoted = true;
      any = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
      any = true;
    } else if (c == '\r') {
      continue;
    } else if (c == '\n') {
      if (any || !field.empty()) {
        row.push_back(std::move(field));
        rows.push_back(std::move(row));
      }
      row.clear();
      field.clear();
      any = false;
    } else {
      field.push_back(c);
      any = true;
    }
  }
  if (any || !field.empty()) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace relais::ban

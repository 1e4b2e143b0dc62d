#include "mappings/json_writer.h"

#include <array>
#include <charconv>

namespace relais::mappings {

namespace {

// Length of the valid UTF-8 sequence at s[i] (0 when invalid).
size_t utf8_len(const std::string& s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  const size_t n = s.size();
  auto cont = [&](size_t k, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return k < n && b(k) >= lo && b(k) <= hi;
  };
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c == 0xE0) return cont(i + 1, 0xA0) && cont(i + 2) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(i + 1) && cont(i + 2) ? 3 : 0;
  if (c == 0xED) return cont(i + 1, 0x80, 0x9F) && cont(i + 2) ? 3 : 0;
  if (c == 0xF0) return cont(i + 1, 0x90) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (c == 0xF4) return cont(i + 1, 0x80, 0x8F) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  return 0;
}

// Bytes that are not copied as they are: control characters, '"', '\\' and non-ASCII.
constexpr std::array<bool, 256> kSpecial = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) t[c] = c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
  return t;
}();

void write_string(std::string& out, const std::string& s) {
  static const char* hex = "0123456789abcdef";
  out.push_back('"');
  size_t run = 0;  // start of the pending run of bytes copied verbatim
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (!kSpecial[c]) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      size_t len = utf8_len(s, i);
      if (len) {
        i += len;
        continue;
      }
    }
    out.append(s, run, i - run);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(hex[c >> 4]);
          out.push_back(hex[c & 15]);
        } else {
          out += "\xEF\xBF\xBD";  // invalid UTF-8 byte
        }
    }
    ++i;
    run = i;
  }
  out.append(s, run, s.size() - run);
  out.push_back('"');
}

}  // namespace

void write_json(std::string& out, const nlohmann::json& v) {
  using t = nlohmann::json::value_t;
  switch (v.type()) {
    case t::object: {
      out.push_back('{');
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) out.push_back(',');
        first = false;
        write_string(out, it.key());
        out.push_back(':');
        write_json(out, it.value());
      }
      out.push_back('}');
      return;
    }
    case t::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& e : v) {
        if (!first) out.push_back(',');
        first = false;
        write_json(out, e);
      }
      out.push_back(']');
      return;
    }
    case t::string:
      write_string(out, v.get_ref<const std::string&>());
      return;
    case t::number_integer:
    case t::number_unsigned: {
      char buf[24];
      auto r = v.is_number_unsigned() ? std::to_chars(buf, buf + sizeof buf, v.get<uint64_t>())
                                      : std::to_chars(buf, buf + sizeof buf, v.get<int64_t>());
      out.append(buf, r.ptr);
      return;
    }
    case t::boolean:
      out += v.get<bool>() ? "true" : "false";
      return;
    case t::null:
      out += "null";
      return;
    default:
      out += v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      return;
  }
}

}  // namespace relais::mappings

#pragma once
// Text helpers shared by the protocol simulators of the tests (BAN, EWS, Graph): reading a
// fixture file, percent-decoding, and splitting a query string or a form body. Stateless.

#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace relais::testing {

// The whole file; throws when it cannot be read (a missing fixture must fail the test).
inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("missing file " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::string url_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// "/p?a=1&b=2&b=3" → {a:[1], b:[2,3]} (the part after '?'; a form body: pass "?" + body).
inline std::map<std::string, std::vector<std::string>> query_params(const std::string& target) {
  std::map<std::string, std::vector<std::string>> out;
  auto qm = target.find('?');
  if (qm == std::string::npos) return out;
  std::string q = target.substr(qm + 1);
  size_t start = 0;
  while (start <= q.size()) {
    size_t amp = q.find('&', start);
    if (amp == std::string::npos) amp = q.size();
    std::string kv = q.substr(start, amp - start);
    auto eq = kv.find('=');
    if (!kv.empty()) {
      out[url_decode(kv.substr(0, eq))].push_back(
          eq == std::string::npos ? "" : url_decode(kv.substr(eq + 1)));
    }
    start = amp + 1;
  }
  return out;
}

// The first value of each parameter of a query string or form body ("a=1&b=2").
inline std::map<std::string, std::string> form_fields(const std::string& text) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : query_params("?" + text)) out[k] = v.front();
  return out;
}

}  // namespace relais::testing

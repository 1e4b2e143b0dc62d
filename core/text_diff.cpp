#include "core/text_diff.h"

#include <algorithm>
#include <vector>

namespace relais {
namespace {

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t end = s.find('\n', start);
    if (end == std::string::npos) end = s.size();
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace

std::string unified_diff(const std::string& a, const std::string& b, const std::string& a_name,
                         const std::string& b_name, int context) {
  if (a == b) return {};
  auto x = lines_of(a), y = lines_of(b);
  size_t n = x.size(), m = y.size();
  // LCS table (documents are small: mappings of a few hundred lines).
  std::vector<std::vector<int>> l(n + 1, std::vector<int>(m + 1, 0));
  for (size_t i = n; i-- > 0;) {
    for (size_t j = m; j-- > 0;) {
      l[i][j] = x[i] == y[j] ? l[i + 1][j + 1] + 1 : std::max(l[i + 1][j], l[i][j + 1]);
    }
  }
  struct Op {
    char kind;  // ' ', '-', '+'
    size_t ai, bi;
  };
  std::vector<Op> ops;
  size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] == y[j]) {
      ops.push_back({' ', i++, j++});
    } else if (i < n && (j == m || l[i + 1][j] >= l[i][j + 1])) {
      ops.push_back({'-', i++, j});
    } else {
      ops.push_back({'+', i, j++});
    }
  }
  std::string out = "--- " + a_name + "\n+++ " + b_name + "\n";
  size_t k = 0;
  while (k < ops.size()) {
    if (ops[k].kind == ' ') {
      ++k;
      continue;
    }
    size_t start = k > static_cast<size_t>(context) ? k - context : 0;
    size_t end = k;
    // extend the hunk while changes are within 2*context lines of each other
    size_t last_change = k;
    while (end < ops.size()) {
      if (ops[end].kind != ' ') last_change = end;
      if (end - last_change > static_cast<size_t>(2 * context)) break;
      ++end;
    }
    end = std::min(ops.size(), last_change + context + 1);
    size_t a_start = ops[start].ai, b_start = ops[start].bi, a_len = 0, b_len = 0;
    std::string body;
    for (size_t t = start; t < end; ++t) {
      const Op& o = ops[t];
      if (o.kind == ' ') {
        body += " " + x[o.ai] + "\n";
        ++a_len;
        ++b_len;
      } else if (o.kind == '-') {
        body += "-" + x[o.ai] + "\n";
        ++a_len;
      } else {
        body += "+" + y[o.bi] + "\n";
        ++b_len;
      }
    }
    out += "@@ -" + std::to_string(a_start + 1) + "," + std::to_string(a_len) + " +" +
           std::to_string(b_start + 1) + "," + std::to_string(b_len) + " @@\n" + body;
    k = end;
  }
  return out;
}

}  // namespace relais

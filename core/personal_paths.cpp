#include "core/personal_paths.h"

namespace relais {

bool PersonalPaths::parse(const std::vector<std::string>& texts, PersonalPaths& out,
                          std::string& error) {
  out = PersonalPaths();
  for (const auto& text : texts) {
    auto fail = [&](const std::string& what, size_t at) {
      error = what + " at position " + std::to_string(at + 1) + " in '" + text +
              "' (a personal path looks like $.individu, $.to or $.participants[*].email)";
      return false;
    };
    if (text.empty() || text[0] != '$') return fail("a personal path starts with '$'", 0);
    std::vector<PathStep> steps;
    size_t i = 1;
    while (i < text.size()) {
      if (text[i] == '.') {
        size_t begin = ++i;
        while (i < text.size() && text[i] != '.' && text[i] != '[') ++i;
        if (i == begin) return fail("empty field name", begin);
        std::string name = text.substr(begin, i - begin);
        if (name.find_first_of("]{}$* ") != std::string::npos) {
          return fail("unexpected character in a field name", begin);
        }
        steps.emplace_back(std::move(name));
      } else if (text[i] == '[') {
        size_t begin = ++i;
        if (i < text.size() && text[i] == '*') {
          ++i;
          if (i >= text.size() || text[i] != ']') return fail("expected ']' after [*", i);
          steps.emplace_back(Any{});
          ++i;
          continue;
        }
        while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
        if (i == begin || i >= text.size() || text[i] != ']' || i - begin > 9) {
          return fail("expected an index like [0] or [*]", begin);
        }
        steps.emplace_back(static_cast<size_t>(std::stoul(text.substr(begin, i - begin))));
        ++i;
      } else {
        return fail("unexpected '" + std::string(1, text[i]) + "'", i);
      }
    }
    out.paths_.push_back(std::move(steps));
    out.texts_.push_back(text);
  }
  return true;
}

PersonalPaths PersonalPaths::merged(const PersonalPaths& other) const {
  PersonalPaths out = *this;
  out.paths_.insert(out.paths_.end(), other.paths_.begin(), other.paths_.end());
  out.texts_.insert(out.texts_.end(), other.texts_.begin(), other.texts_.end());
  return out;
}

PersonalPaths::Cursor PersonalPaths::start() const {
  Cursor c;
  for (size_t p = 0; p < paths_.size(); ++p) {
    if (paths_[p].empty()) {
      c.personal = true;  // "$": the whole document
    } else {
      c.live.emplace_back(p, 0);
    }
  }
  return c;
}

PersonalPaths::Cursor PersonalPaths::advance(const Cursor& at, const Step& step) const {
  Cursor next;
  next.personal = at.personal;
  if (next.personal) return next;  // under a personal node: everything is
  const auto* field = std::get_if<std::string>(&step);
  for (const auto& [p, n] : at.live) {
    const PathStep& want = paths_[p][n];
    bool taken = false;
    if (field != nullptr) {
      const auto* name = std::get_if<std::string>(&want);
      taken = name != nullptr && *name == *field;
    } else if (std::holds_alternative<Any>(want)) {
      taken = true;
    } else if (const auto* idx = std::get_if<size_t>(&want)) {
      taken = *idx == std::get<size_t>(step);
    } else {
      next.live.emplace_back(p, n);  // an array the path does not index: crossed
      continue;
    }
    if (!taken) continue;
    if (n + 1 == paths_[p].size()) {
      next.personal = true;
      next.live.clear();
      return next;
    }
    next.live.emplace_back(p, n + 1);
  }
  return next;
}

}  // namespace relais

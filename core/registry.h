#pragma once
// A registry of named kinds (connector kinds, enricher kinds). Filled once at start-up by
// explicit registration (no static initialisers), then read-only and safe to share.

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace relais {

// Kind must have a `std::string name` member. Not thread-safe to mutate; const use is.
template <class Kind>
class Registry {
 public:
  void add(Kind kind) {
    std::string name = kind.name;
    if (!kinds_.emplace(name, std::move(kind)).second) {
      throw std::logic_error("kind registered twice: " + name);
    }
  }
  const Kind* find(const std::string& name) const {
    auto it = kinds_.find(name);
    return it == kinds_.end() ? nullptr : &it->second;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [n, k] : kinds_) out.push_back(n);
    return out;
  }

 private:
  std::map<std::string, Kind> kinds_;
};

}  // namespace relais

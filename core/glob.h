#pragma once
// Globs on names (message types, error codes): '*' any run of characters, '?' one character,
// everything else literal. Stateless, thread-safe.

#include <string>

namespace relais {

// True if `text` matches the glob `pattern` ('*' any run, '?' one character).
bool glob_match(const std::string& pattern, const std::string& text);

}  // namespace relais

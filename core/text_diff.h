#pragma once
// A line-based unified diff, for showing what changed between two versions of a document.
// Stateless, thread-safe.

#include <string>

namespace relais {

// Returns a unified diff ("--- a", "+++ b", "@@ … @@" hunks with `context` lines around each
// change); empty when the texts are equal.
std::string unified_diff(const std::string& a, const std::string& b, const std::string& a_name,
                         const std::string& b_name, int context = 3);

}  // namespace relais

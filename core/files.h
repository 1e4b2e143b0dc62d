#pragma once
// Reading whole files (configuration, mapping documents, CSV inputs). Stateless, thread-safe.

#include <string>

namespace relais {

// Reads the whole file at `path` into `out`; false (and `out` untouched) when it cannot be
// opened or read.
bool read_text_file(const std::string& path, std::string& out);

}  // namespace relais

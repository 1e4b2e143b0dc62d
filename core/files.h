#pragma once
// Reading whole files (configuration, mapping documents, CSV inputs), and the process's
// descriptor budget. Stateless, thread-safe.

#include <string>

namespace relais {

// Reads the whole file at `path` into `out`; false (and `out` untouched) when it cannot be
// opened or read.
bool read_text_file(const std::string& path, std::string& out);

// Raises the soft limit of open descriptors (RLIMIT_NOFILE) to at least `wanted`, within the
// hard limit (a service manager's soft default, 1,024, is below what a server with thousands of
// connections needs). Returns the soft limit in force afterwards.
long raise_descriptor_limit(long wanted);

}  // namespace relais

#pragma once
// Hashing and comparison helpers over OpenSSL. Stateless, thread-safe.

#include <string>

namespace relais {

std::string sha256_hex(const std::string& data);
// Compares two strings in time that depends only on their lengths.
bool constant_time_equals(const std::string& a, const std::string& b);

}  // namespace relais

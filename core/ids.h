#pragma once
// Time-ordered unique identifiers for messages (ULID text form: 26 Crockford base32 characters,
// 48-bit millisecond timestamp then 80 random bits, monotonic within one millisecond).

#include <cstdint>
#include <mutex>
#include <random>
#include <string>

#include "core/clock.h"

namespace relais {

// Generates ULIDs that sort by creation time, strictly increasing within this process.
// Thread-safe (internal mutex). Owns its random engine; uses the Clock it is given (not owned).
class IdGenerator {
 public:
  explicit IdGenerator(const Clock& clock);
  std::string next();

 private:
  const Clock& clock_;
  std::mutex mu_;
  std::mt19937_64 rng_;
  Millis last_ms_ = -1;
  uint64_t hi_ = 0;  // upper 16 bits of randomness
  uint64_t lo_ = 0;  // lower 64 bits of randomness
};

// True if `s` has the shape of an id this generator makes.
bool is_valid_id(const std::string& s);

}  // namespace relais

#include "core/ids.h"

namespace relais {
namespace {
__extension__ typedef unsigned __int128 U128;
constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
}  // namespace

IdGenerator::IdGenerator(const Clock& clock) : clock_(clock), rng_(std::random_device{}()) {}

std::string IdGenerator::next() {
  std::lock_guard<std::mutex> lock(mu_);
  Millis now = clock_.now_ms();
  if (now > last_ms_) {
    last_ms_ = now;
    hi_ = rng_() & 0xFFFF;
    lo_ = rng_();
  } else {
    // Same (or earlier) millisecond: keep the last timestamp and increment the randomness so
    // ids stay strictly increasing.
    if (++lo_ == 0) hi_ = (hi_ + 1) & 0xFFFF;
  }
  // 128 bits: 48 time | 16 hi | 64 lo; encoded as 26 base32 digits (130 bits, top 2 zero).
  U128 v = (static_cast<U128>(static_cast<uint64_t>(last_ms_)) << 80) |
           (static_cast<U128>(hi_) << 64) | lo_;
  std::string out(26, '0');
  for (int i = 25; i >= 0; --i) {
    out[static_cast<size_t>(i)] = kAlphabet[static_cast<unsigned>(v & 31)];
    v >>= 5;
  }
  return out;
}

bool is_valid_id(const std::string& s) {
  if (s.size() != 26) return false;
  for (char c : s) {
    bool ok = false;
    for (const char* p = kAlphabet; *p; ++p) {
      if (*p == c) ok = true;
    }
    if (!ok) return false;
  }
  return s[0] <= '7';
}

}  // namespace relais

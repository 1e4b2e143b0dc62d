#pragma once
// Clock seam: every component that needs "now" gets it from a Clock so tests can control time.

#include <atomic>
#include <cstdint>
#include <string>

namespace relais {

// Milliseconds since the Unix epoch (UTC).
using Millis = int64_t;

// Source of wall-clock time. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual Millis now_ms() const = 0;
};

// The system's real-time clock. Stateless, thread-safe.
class SystemClock final : public Clock {
 public:
  Millis now_ms() const override;
  static SystemClock& instance();
};

// A clock that only moves when told to. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(Millis start) : now_(start) {}
  Millis now_ms() const override { return now_.load(); }
  void set(Millis t) { now_.store(t); }
  void advance(Millis d) { now_.fetch_add(d); }

 private:
  std::atomic<Millis> now_;
};

// Milliseconds of the monotonic clock (std::chrono::steady_clock): for intervals and deadlines
// within the process, never for dates.
Millis monotonic_ms();

// Formats a millisecond timestamp as RFC 3339 UTC ("2026-11-23T12:00:00.123Z").
std::string format_rfc3339(Millis t);
// Parses RFC 3339 (with Z or an offset) or a plain date (YYYY-MM-DD, midnight UTC).
// Returns false if the text is not a timestamp.
bool parse_rfc3339(const std::string& text, Millis& out);

}  // namespace relais

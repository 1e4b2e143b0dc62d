#pragma once
// What both calendar simulators share to inject faults and to throttle like Exchange: a seeded
// random generator, a clock (the steady clock unless a test gives its own), the end of each
// mailbox's back-off, and the counts of busy answers and of connections reset after a save.
//
// Thread-safety: the public accessors lock mu_; the protected helpers expect the simulator to
// hold mu_ (it serves each request under it). A base of the simulators, owning this state.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>

namespace relais::testing {

class SimulatorFaults {
 public:
  // The simulator's clock in milliseconds (the throttling back-off is measured on it).
  void set_clock(std::function<int64_t()> now) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ = std::move(now);
  }
  // Busy answers given (the first of a back-off and those refused during it).
  size_t busy_answers() const {
    std::lock_guard<std::mutex> lock(mu_);
    return busy_answers_;
  }
  // Connections reset after the operation was saved.
  size_t resets() const {
    std::lock_guard<std::mutex> lock(mu_);
    return resets_;
  }

 protected:
  // The helpers below are called with mu_ held.
  void seed(uint64_t s) { rng_.seed(s); }
  bool chance(double p) { return p > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  int64_t now() const { return now_(); }
  // What is left at `at` of the back-off of `account` (0 when none).
  int64_t busy_left(const std::string& account, int64_t at) const {
    auto it = busy_until_.find(account);
    return it == busy_until_.end() || it->second <= at ? 0 : it->second - at;
  }
  // `account` is refused everything for `ms` from `at`; counts the busy answer that says so.
  void start_backoff(const std::string& account, int64_t at, int64_t ms) {
    busy_until_[account] = at + ms;
    ++busy_answers_;
  }

  mutable std::mutex mu_;
  size_t busy_answers_ = 0;
  size_t resets_ = 0;

 private:
  std::mt19937_64 rng_{1};
  std::function<int64_t()> now_ = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  std::map<std::string, int64_t> busy_until_;  // account → end of its back-off
};

}  // namespace relais::testing

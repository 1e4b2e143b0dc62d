#pragma once
// Runs one polling source (core/poller.h): its own thread polls, hands each batch to the hub's
// commit (messages + checkpoint in one transaction), tells the poller the outcome, and backs off
// while the source cannot be read.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/metrics.h"
#include "core/poller.h"
#include "core/store.h"
#include "routing/hub_config.h"

namespace relais {

// What the dashboard shows of a polling source.
struct PollingState {
  std::string source;
  std::string kind;
  bool failing = false;       // the last poll (or commit) failed
  int failures_in_row = 0;    // consecutive failures (the back-off grows with them)
  std::string last_error;     // why, for a person (no personal data)
  Millis last_poll_at = 0;    // the last poll that reached the source
  Millis last_record_at = 0;  // the last batch with records committed
  Millis next_poll_at = 0;    // when it polls next
  int64_t records = 0;        // records committed since start
  int64_t rejected = 0;       // records refused since start
};

// The wait after `failures_in_row` consecutive failures (1 s, 2 s, 4 s …), at most
// `max_backoff_ms`.
Millis poll_backoff(int failures_in_row, Millis max_backoff_ms);

// Responsibility: the loop of one polling source. Thread-safety: start/stop from the owner's
// thread; state() and wake() from any thread. Ownership: owns its Poller and its thread; the
// store and the commit function outlive it (the Hub owns all three and stops this first).
class PollingSource {
 public:
  // Commits a batch: one outcome per record; `stored` says whether the batch and its checkpoint
  // are durable.
  using Commit =
      std::function<std::vector<PolledOutcome>(const std::string&, const PollBatch&, bool&)>;

  PollingSource(std::string source, const PollConfig& config, std::unique_ptr<Poller> poller,
                Store& store, Commit commit, const Clock& clock, Metrics& metrics);
  ~PollingSource();
  PollingSource(const PollingSource&) = delete;
  PollingSource& operator=(const PollingSource&) = delete;

  void start();
  // Stops after the batch in progress (its commit and committed() finish).
  void stop();
  PollingState state() const;

 private:
  void loop();
  // One poll and its commit; returns the wait before the next one.
  Millis once();
  Millis fail(const std::string& why);

  std::string source_;
  PollConfig config_;
  std::unique_ptr<Poller> poller_;
  Store& store_;
  Commit commit_;
  const Clock& clock_;
  Counter* records_ = nullptr;
  Counter* rejected_ = nullptr;
  Counter* failures_ = nullptr;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  PollingState state_;
  std::thread thread_;
};

}  // namespace relais

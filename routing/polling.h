#pragma once
// Runs one polling source (core/poller.h): its own thread polls, prepares each batch's messages
// (the hub's shared message path), hands the batch to the hub's commit (messages + checkpoint in
// one transaction), tells the poller the outcome, and backs off while the source cannot be read.
// For a pipelined poller the commit of batch N runs on a thread of its own while batch N+1 is
// read and prepared: one batch in flight at most, committed and told in order.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
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
// thread; state() from any thread; poll(), committed() and Prepare on the loop's thread, a
// Commit on the loop's thread or (pipelined) on the commit thread, one at a time. Ownership: owns
// its Poller, its two threads and the commit in flight; the store and the prepare function
// outlive it (the Hub owns all three and stops this first).
class PollingSource {
 public:
  // The store's part of one prepared batch: commits its messages with the checkpoint and the
  // refused records; one outcome per record; `stored` says whether the batch and its checkpoint
  // are durable. Holds what it needs (no reference to the batch).
  using Commit = std::function<std::vector<PolledOutcome>(bool& stored)>;
  // Prepares a batch of a source (each record turned into a message, as the HTTP door does)
  // and returns its commit.
  using Prepare = std::function<Commit(const std::string& source, const PollBatch& batch)>;

  PollingSource(std::string source, const PollConfig& config, std::unique_ptr<Poller> poller,
                Store& store, Prepare prepare, const Clock& clock, Metrics& metrics);
  ~PollingSource();
  PollingSource(const PollingSource&) = delete;
  PollingSource& operator=(const PollingSource&) = delete;

  void start();
  // Stops after the batch in progress (its commit and committed() finish).
  void stop();
  PollingState state() const;

 private:
  using CommitTask = std::packaged_task<std::pair<bool, std::vector<PolledOutcome>>()>;
  // A batch whose commit runs (pipelined) while the next one is read.
  struct InFlight {
    PollBatch batch;
    std::future<std::pair<bool, std::vector<PolledOutcome>>> done;  // stored, outcomes
  };

  void loop();
  // The commit thread (pipelined pollers): runs the task the loop hands it, one at a time.
  void commit_loop();
  // One poll, its preparation and its commit (started, or done when not pipelined); returns the
  // wait before the next one.
  Millis once();
  // Waits for the batch in flight, counts it and tells the poller (committed()); the reason when
  // it was not stored or committed() failed, nullopt when all went well or nothing was in flight.
  std::optional<std::string> settle();
  Millis fail(const std::string& why);

  std::string source_;
  PollConfig config_;
  std::unique_ptr<Poller> poller_;
  Store& store_;
  Prepare prepare_;
  std::optional<InFlight> in_flight_;  // the loop's thread only

  std::mutex commit_mu_;  // guards commit_task_ and commit_stopping_
  std::condition_variable commit_cv_;
  CommitTask commit_task_;  // valid(): handed by the loop, not taken yet
  bool commit_stopping_ = false;
  std::thread committer_;  // started with the loop for a pipelined poller
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

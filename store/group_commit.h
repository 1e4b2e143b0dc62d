#pragma once
// The group commit every store engine runs (core/store.h's contract), written once:
// callers queue jobs (accepts, outcomes, flushes, and the engine's own batch jobs); one writer
// thread takes what is queued — recorded updates of a failed group first, then up to
// `max_batch` messages — and hands it to the engine's write_group() as one transaction; after a
// failed commit it retries with back-off (100 ms doubling to 5 s) while the recorded updates
// are kept; a completion thread then gives each group's new deliveries to the commit listener
// and lets the engine answer its callers, in commit order.
//
// GroupCommitStore<Derived, Job, Completion> is the base of an engine (CRTP). Derived provides:
//   void write_group(std::vector<Job>& jobs);    // one group; ends with complete_group(c)
//   bool runs_alone(const Job& job) const;      // a job run outside any group (else false)
//   void run_alone(Job& job);
//   void answer(Completion& c);                  // answers the jobs of a committed/failed group
// Job is a std::variant holding at least std::unique_ptr<AcceptJob>, UpdateJob and FlushJob;
// Completion has `fresh` (std::vector<QueuedDelivery>) and `jobs` (std::vector<Job>).
// Thread-safe: every public method may be called from any thread.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "core/at_rest.h"
#include "core/log.h"
#include "core/store.h"
#include "core/thread_name.h"
#include "store/stored_values.h"

namespace relais {

// Accepts of one caller: its messages and, for a polling source, its checkpoint.
struct AcceptJob {
  std::vector<Incoming> batch;
  // With encryption: each message's body as stored, encrypted by the caller's thread (the single
  // writer does not pay for it). Empty without encryption: the bodies are stored as they are.
  std::vector<std::string> sealed;
  std::promise<std::vector<AcceptResult>> done;
  // Set: the caller does not wait; the results go here instead of `done` (accept_then).
  std::function<void(std::vector<AcceptResult>)> then;
  // A polling source's position and refused records, written in the same transaction.
  std::optional<SourceCheckpoint> checkpoint;
  Millis at = 0;
};
struct UpdateJob {
  DeliveryUpdate update;
  std::promise<Status>* done = nullptr;  // set for apply(); owned by the caller
  std::function<void()> committed;       // record(): runs once the update is durable
};
struct FlushJob {
  std::promise<void>* done = nullptr;
};

// `n` results Failed with `why` (plus the checkpoint's, for a polled batch).
inline std::vector<AcceptResult> failed_accepts(size_t n, bool checkpoint, const std::string& why) {
  std::vector<AcceptResult> out(n + (checkpoint ? 1 : 0));
  for (auto& r : out) {
    r.kind = AcceptResult::Kind::Failed;
    r.error = why;
  }
  return out;
}

template <class Derived, class Job, class Completion>
class GroupCommitStore : public Store {
 public:
  std::vector<AcceptResult> accept(std::vector<Incoming> batch) override {
    return submit(std::make_unique<AcceptJob>(), std::move(batch));
  }
  void accept_then(std::vector<Incoming> batch,
                   std::function<void(std::vector<AcceptResult>)> done) override {
    auto job = std::make_unique<AcceptJob>();
    job->then = std::move(done);
    submit(std::move(job), std::move(batch));
  }
  std::vector<AcceptResult> accept_polled(std::vector<Incoming> batch, SourceCheckpoint checkpoint,
                                          Millis at) override {
    auto job = std::make_unique<AcceptJob>();
    job->checkpoint = std::move(checkpoint);
    job->at = at;
    return submit(std::move(job), std::move(batch));
  }
  void record(DeliveryUpdate update, std::function<void()> committed) override {
    seal_update(cipher_, update);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) {
        log_error("store", "update of delivery " + std::to_string(update.id) +
                               " after close: not recorded (attempted again at the next start)");
        return;
      }
      queue_.emplace_back(UpdateJob{std::move(update), nullptr, std::move(committed)});
    }
    cv_.notify_one();
  }
  Status apply(DeliveryUpdate update) override {
    seal_update(cipher_, update);
    std::promise<Status> done;
    auto fut = done.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) return Status::failure(503, "store closed");
      queue_.emplace_back(UpdateJob{std::move(update), &done, nullptr});
    }
    cv_.notify_one();
    return fut.get();
  }
  void flush() override {
    std::promise<void> done;
    auto fut = done.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) return;
      queue_.emplace_back(FlushJob{&done});
    }
    cv_.notify_one();
    fut.wait();
  }
  void set_commit_listener(std::function<void(std::vector<QueuedDelivery>&&)> fn) override {
    std::lock_guard<std::mutex> lock(mu_);
    listener_ = std::move(fn);
  }
  bool writable() const override { return write_ok_.load(); }

 protected:
  // `cipher` (may be null) seals bodies and updates on the callers' threads.
  GroupCommitStore(const AtRestCipher* cipher, size_t max_batch)
      : cipher_(cipher), max_batch_(max_batch) {}

  // For a store opened read-only: every write fails, no thread runs.
  void refuse_writes() { closing_ = closed_ = true; }
  void start_threads() {
    completer_ = std::thread([this] {
      set_thread_name("completion");
      completion_loop();
    });
    writer_ = std::thread([this] {
      set_thread_name("writer");
      writer_loop();
    });
  }
  // Commits what is queued, answers every caller, stops both threads. False when it had already
  // stopped (or never started): the engine's own closing is then done too.
  bool stop_threads() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) return false;
      closing_ = true;
    }
    cv_.notify_all();
    if (writer_.joinable()) writer_.join();
    if (completer_.joinable()) completer_.join();  // every caller answered, every callback run
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    return true;
  }
  // Queues one job and waits for its answer (a batch of an erasure, a rekey, a purge). False
  // when the store is closing (nothing queued).
  template <typename Result, typename JobT>
  bool run_job(JobT job, Result& result) {
    std::promise<Result> done;
    auto fut = done.get_future();
    job.done = &done;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closing_) return false;
      queue_.emplace_back(std::move(job));
    }
    cv_.notify_one();
    result = fut.get();
    return true;
  }
  // The group is over (committed, or failed with c.failure): to the completion thread.
  void complete_group(Completion&& c) {
    {
      std::lock_guard<std::mutex> lock(done_mu_);
      done_queue_.push_back(std::move(c));
    }
    done_cv_.notify_one();
  }
  // A group committed: commits work (again).
  void group_committed() {
    if (!write_ok_.exchange(true)) {
      log_info("store", "commits succeed again after " + std::to_string(failed_groups_) +
                            " failed group(s); the dispatcher resumes");
    }
    failed_groups_ = 0;
  }
  // A group failed (`why`, already rolled back): writable() is false until a commit succeeds;
  // its recorded updates are kept for the next group, in order; the other jobs are left in
  // `jobs`, to be answered with the failure.
  void group_failed(const std::string& why, std::vector<Job>& jobs) {
    write_ok_ = false;
    ++failed_groups_;
    log_error("store", "commit failed (" + std::to_string(failed_groups_) + " in a row): " + why +
                           "; accepts are refused (503) and outcomes are kept until it succeeds");
    retain_records(jobs);
  }
  void retain_records(std::vector<Job>& jobs) {
    std::vector<Job> answer;
    for (auto& job : jobs) {
      auto* u = std::get_if<UpdateJob>(&job);
      if (u != nullptr && u->done == nullptr) {
        retained_.push_back(std::move(job));
      } else {
        answer.push_back(std::move(job));
      }
    }
    jobs = std::move(answer);
  }

  const AtRestCipher* cipher_ = nullptr;  // null = no encryption
  std::atomic<bool> write_ok_{true};      // false from a failed commit to the next good one
  int failed_groups_ = 0;                 // consecutive failed commits (back-off before retrying)

 private:
  Derived& self() { return static_cast<Derived&>(*this); }

  // Queues an accept job and waits for its results; or, when the job has `then`, returns at
  // once (nothing) and the results go to `then`: from the completion thread after the commit,
  // or from this thread when the job cannot be queued.
  std::vector<AcceptResult> submit(std::unique_ptr<AcceptJob> job, std::vector<Incoming> batch) {
    const size_t n = batch.size();
    const bool waits = !job->then;
    auto refuse = [&](const std::string& why) {
      auto results = failed_accepts(n, job->checkpoint.has_value(), why);
      if (waits) return results;
      job->then(std::move(results));
      return std::vector<AcceptResult>{};
    };
    if (cipher_ != nullptr) {
      // Encrypted here, on the caller's thread: the writer only binds the result.
      job->sealed.resize(n);
      for (size_t i = 0; i < n; ++i) {
        const Message& m = *batch[i].message;
        if (!cipher_->seal(body_aad(m.id), m.body, job->sealed[i])) {
          return refuse("cannot encrypt the body (OpenSSL)");
        }
      }
    }
    job->batch = std::move(batch);
    std::future<std::vector<AcceptResult>> fut;
    if (waits) fut = job->done.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closing_) return refuse("the store is closing");
      queue_.emplace_back(std::move(job));
    }
    cv_.notify_one();
    if (!waits) return {};
    return fut.get();
  }

  void writer_loop() {
    std::vector<Job> jobs;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (retained_.empty() && write_ok_) {
          cv_.wait(lock, [&] { return !queue_.empty() || closing_; });
        } else {
          // After a failed commit, retry (the updates kept, or a probe write when there are
          // none) with back-off, 100 ms doubling to 5 s, unless new work arrives (tried with it).
          int shift = std::min(failed_groups_ - 1, 6);
          auto backoff = std::chrono::milliseconds(std::min(100 << std::max(shift, 0), 5000));
          cv_.wait_for(lock, backoff, [&] { return !queue_.empty() || closing_; });
        }
        if (queue_.empty() && retained_.empty() && closing_) break;
        if (queue_.empty() && retained_.empty() && write_ok_) continue;
        // Retained updates first: they are older than anything queued.
        jobs = std::move(retained_);
        retained_.clear();
        size_t messages = jobs.size();
        // A job that runs alone (outside any transaction) when nothing is retained.
        if (jobs.empty() && !queue_.empty() && self().runs_alone(queue_.front())) {
          Job alone = std::move(queue_.front());
          queue_.pop_front();
          lock.unlock();
          self().run_alone(alone);
          continue;
        }
        while (!queue_.empty() && messages < max_batch_) {
          if (self().runs_alone(queue_.front())) break;  // it waits for the next turn
          if (auto* a = std::get_if<std::unique_ptr<AcceptJob>>(&queue_.front())) {
            messages += (*a)->batch.size();
          } else {
            ++messages;
          }
          jobs.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      self().write_group(jobs);
      jobs.clear();
      if (!retained_.empty() && failed_groups_ >= 3) {
        // Closing on a store that keeps failing: what is left stays active in the store and is
        // attempted again at the next start (at-least-once; the key never moved on).
        std::lock_guard<std::mutex> lock(mu_);
        if (closing_ && queue_.empty()) {
          log_error("store", std::to_string(retained_.size()) +
                                 " delivery outcome(s) could not be committed before closing; "
                                 "those deliveries are attempted again at the next start");
          retained_.clear();
          break;
        }
      }
    }
    std::lock_guard<std::mutex> lock(done_mu_);
    done_closing_ = true;
    done_cv_.notify_all();
  }

  void completion_loop() {
    for (;;) {
      Completion c;
      {
        std::unique_lock<std::mutex> lock(done_mu_);
        done_cv_.wait(lock, [&] { return !done_queue_.empty() || done_closing_; });
        if (done_queue_.empty()) return;
        c = std::move(done_queue_.front());
        done_queue_.pop_front();
      }
      // Hand the new active deliveries to the listener before answering: when accept()
      // returns, the dispatcher already knows them (a retry or discard right after 202 finds
      // them queued).
      if (!c.fresh.empty()) {
        std::function<void(std::vector<QueuedDelivery> &&)> fn;
        {
          std::lock_guard<std::mutex> lock(mu_);
          fn = listener_;
        }
        if (fn) fn(std::move(c.fresh));
      }
      self().answer(c);
    }
  }

  size_t max_batch_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool closing_ = false;
  bool closed_ = false;
  std::thread writer_;
  std::function<void(std::vector<QueuedDelivery>&&)> listener_;
  // Recorded updates whose commit failed: committed again, first, with the next group.
  std::vector<Job> retained_;
  // Completions, in commit order, for the completion thread.
  std::mutex done_mu_;
  std::condition_variable done_cv_;
  std::deque<Completion> done_queue_;
  bool done_closing_ = false;
  std::thread completer_;
};

// Answers the accept, update and flush jobs of a group (the engines answer their own batch jobs
// with `other`): results per accept job and statuses per update job, in order, or every one
// with the group's `failure`.
template <class Completion, class Other>
void answer_common(Completion& c, Other&& other) {
  size_t ai = 0, ui = 0;
  for (auto& job : c.jobs) {
    if (auto* a = std::get_if<std::unique_ptr<AcceptJob>>(&job)) {
      AcceptJob& aj = **a;
      // A polled batch answers one more result: its checkpoint's.
      std::vector<AcceptResult> results =
          c.failure.empty() ? std::move(c.results[ai])
                            : failed_accepts(aj.batch.size(), aj.checkpoint.has_value(),
                                             "storage error: " + c.failure);
      if (aj.then) {
        aj.then(std::move(results));
      } else {
        aj.done.set_value(std::move(results));
      }
      ++ai;
    } else if (auto* u = std::get_if<UpdateJob>(&job)) {
      // A failed group's recorded updates were retained by the writer: only applies and
      // committed records are here.
      Status s =
          c.failure.empty() ? c.statuses[ui] : Status::failure(503, "storage error", c.failure);
      ++ui;
      if (u->done) u->done->set_value(std::move(s));
      if (u->committed) u->committed();
    } else if (auto* f = std::get_if<FlushJob>(&job)) {
      f->done->set_value();
    } else {
      other(job);
    }
  }
}

// Answers a batch job (an erasure's, a rekey's, a purge's) with its result, the i-th of the
// group, or with the group's failure.
template <class Batch>
void answer_batch(std::promise<Batch>* done, std::vector<Batch>& results, size_t& i,
                  const std::string& failure) {
  Batch b;
  if (failure.empty()) {
    b = std::move(results[i]);
  } else {
    b.status = Status::failure(503, "storage error", failure);
  }
  ++i;
  done->set_value(std::move(b));
}

}  // namespace relais

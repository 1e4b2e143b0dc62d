#include "routing/polling.h"

#include <algorithm>
#include <chrono>
#include <tuple>

#include "core/log.h"
#include "core/thread_name.h"

namespace relais {

Millis poll_backoff(int failures_in_row, Millis max_backoff_ms) {
  Millis wait = 1000;
  for (int i = 1; i < failures_in_row && wait < max_backoff_ms; ++i) wait *= 2;
  return std::min(wait, max_backoff_ms);
}

PollingSource::PollingSource(std::string source, const PollConfig& config,
                             std::unique_ptr<Poller> poller, Store& store, Prepare prepare,
                             const Clock& clock, Metrics& metrics)
    : source_(std::move(source)),
      config_(config),
      poller_(std::move(poller)),
      store_(store),
      prepare_(std::move(prepare)),
      clock_(clock) {
  metrics.describe("relais_polled_records_total", "counter",
                   "Records of polling sources committed as messages (or duplicates)");
  metrics.describe("relais_polled_rejected_total", "counter",
                   "Records of polling sources refused (kept in source_rejects)");
  metrics.describe("relais_poll_failures_total", "counter",
                   "Polls or commits of a polling source that failed");
  records_ = &metrics.counter("relais_polled_records_total", {{"source", source_}});
  rejected_ = &metrics.counter("relais_polled_rejected_total", {{"source", source_}});
  failures_ = &metrics.counter("relais_poll_failures_total", {{"source", source_}});
  state_.source = source_;
  state_.kind = config_.kind;
}

PollingSource::~PollingSource() {
  stop();
}

void PollingSource::start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  if (poller_->pipelined()) {
    {
      std::lock_guard<std::mutex> commit_lock(commit_mu_);
      commit_stopping_ = false;
    }
    committer_ = std::thread([this] {
      set_thread_name("commit-" + source_);
      commit_loop();
    });
  }
  thread_ = std::thread([this] {
    set_thread_name("poll-" + source_);
    loop();
  });
}

void PollingSource::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();  // the batch in flight is settled first
  {
    std::lock_guard<std::mutex> lock(commit_mu_);
    commit_stopping_ = true;
  }
  commit_cv_.notify_all();
  if (committer_.joinable()) committer_.join();
}

void PollingSource::commit_loop() {
  std::unique_lock<std::mutex> lock(commit_mu_);
  for (;;) {
    commit_cv_.wait(lock, [&] { return commit_stopping_ || commit_task_.valid(); });
    if (!commit_task_.valid()) return;  // stopping, nothing handed
    CommitTask task = std::move(commit_task_);
    lock.unlock();
    task();  // an exception is kept in the future (settle() says so)
    lock.lock();
  }
}

PollingState PollingSource::state() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

void PollingSource::loop() {
  for (;;) {
    bool stopping = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping = stopping_;
    }
    if (stopping) {
      settle();  // the batch in flight is committed and told before the thread ends
      return;
    }
    Millis wait = once();
    std::unique_lock<std::mutex> lock(mu_);
    state_.next_poll_at = clock_.now_ms() + wait;
    if (wait > 0) cv_.wait_for(lock, std::chrono::milliseconds(wait), [&] { return stopping_; });
  }
}

Millis PollingSource::fail(const std::string& why) {
  failures_->inc();
  std::lock_guard<std::mutex> lock(mu_);
  if (!state_.failing) {
    log_warn("poll", "source " + source_ + ": " + why + " (retried with back-off)");
  }
  state_.failing = true;
  state_.last_error = why;
  return poll_backoff(++state_.failures_in_row, config_.max_backoff_ms);
}

std::optional<std::string> PollingSource::settle() {
  if (!in_flight_) return std::nullopt;
  InFlight f = std::move(*in_flight_);
  in_flight_.reset();
  bool stored = false;
  std::vector<PolledOutcome> outcomes;
  try {
    std::tie(stored, outcomes) = f.done.get();
  } catch (const std::exception& e) {  // a broken contract: the batch is not stored
    log_error("poll", "source " + source_ + ": the commit of a batch failed: " + e.what());
    stored = false;
    outcomes.assign(f.batch.records.size(), PolledOutcome{503, "", "not stored", ""});
  }
  if (stored) {
    // Counted as soon as they are durable, before the poller is told (its report, its file
    // moved): whoever sees those sees the counts too.
    int64_t taken = 0, refused = 0;
    for (const auto& o : outcomes) (o.status < 400 ? taken : refused) += 1;
    records_->inc(static_cast<uint64_t>(taken));
    rejected_->inc(static_cast<uint64_t>(refused));
    std::lock_guard<std::mutex> lock(mu_);
    state_.records += taken;
    state_.rejected += refused;
    if (!f.batch.records.empty()) state_.last_record_at = clock_.now_ms();
  }
  Status after = poller_->committed(f.batch, stored, outcomes);
  if (!stored) return std::string("les messages lus n'ont pas pu être enregistrés (magasin)");
  if (!after.ok) {
    // The checkpoint already protects against reading the batch again; the source is told
    // again at the next batch (e.g. the outbox rows are marked then).
    return after.error + (after.detail.empty() ? "" : " : " + after.detail);
  }
  return std::nullopt;
}

Millis PollingSource::once() {
  // Where to read from: after the batch in flight (its commit still running), else after the
  // last stored checkpoint.
  std::string from;
  if (in_flight_) {
    from = in_flight_->batch.checkpoint;
  } else {
    if (!store_.writable()) return fail("le magasin de Relais n'accepte pas d'écriture");
    std::optional<std::string> checkpoint = store_.checkpoint(source_);
    if (!checkpoint) return fail("le point de reprise ne peut pas être lu dans le magasin");
    from = std::move(*checkpoint);
  }
  PollBatch batch;
  Status st = poller_->poll(from, batch);
  if (!st.ok) {
    std::optional<std::string> previous = settle();
    return fail(previous ? *previous : st.error + (st.detail.empty() ? "" : " : " + st.detail));
  }
  {
    // Reachable: the state says so before anything is committed or told.
    std::lock_guard<std::mutex> lock(mu_);
    state_.last_poll_at = clock_.now_ms();
    if (state_.failing) log_info("poll", "source " + source_ + ": reachable again");
    state_.failing = false;
    state_.failures_in_row = 0;
    state_.last_error.clear();
  }
  const bool nothing =
      batch.records.empty() && (batch.checkpoint.empty() || batch.checkpoint == from);
  // Prepared here, on this thread, while the batch in flight commits.
  Commit commit;
  if (!nothing) commit = prepare_(source_, batch);
  // The batch in flight first: committed() in order, and a batch read after one that was not
  // stored is not committed either (the next poll starts again from the stored checkpoint).
  if (std::optional<std::string> previous = settle()) {
    std::vector<PolledOutcome> none(
        batch.records.size(),
        PolledOutcome{503, "", "not stored", "the previous batch was not stored"});
    poller_->committed(batch, false, none);
    return fail(*previous);
  }
  if (nothing) {
    // Nothing read and no position to move to: nothing to commit.
    poller_->committed(batch, true, {});
    return batch.more ? 0 : config_.interval_ms;
  }
  const bool more = batch.more;
  CommitTask task([commit = std::move(commit)] {
    bool stored = false;
    std::vector<PolledOutcome> outcomes = commit(stored);
    return std::make_pair(stored, std::move(outcomes));
  });
  in_flight_.emplace();
  in_flight_->batch = std::move(batch);
  in_flight_->done = task.get_future();
  if (committer_.joinable() && more) {
    {
      std::lock_guard<std::mutex> lock(commit_mu_);
      commit_task_ = std::move(task);
    }
    commit_cv_.notify_one();
    return 0;  // the next batch is read while this one commits
  }
  // The last batch for now (or a poller that waits for each commit): committed and told before
  // the wait.
  task();
  if (std::optional<std::string> why = settle()) return fail(*why);
  return more ? 0 : config_.interval_ms;
}

}  // namespace relais

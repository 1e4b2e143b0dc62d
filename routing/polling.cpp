#include "routing/polling.h"

#include <algorithm>
#include <chrono>

#include "core/log.h"

namespace relais {

Millis poll_backoff(int failures_in_row, Millis max_backoff_ms) {
  Millis wait = 1000;
  for (int i = 1; i < failures_in_row && wait < max_backoff_ms; ++i) wait *= 2;
  return std::min(wait, max_backoff_ms);
}

PollingSource::PollingSource(std::string source, const PollConfig& config,
                             std::unique_ptr<Poller> poller, Store& store, Commit commit,
                             const Clock& clock, Metrics& metrics)
    : source_(std::move(source)),
      config_(config),
      poller_(std::move(poller)),
      store_(store),
      commit_(std::move(commit)),
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
  thread_ = std::thread([this] { loop(); });
}

void PollingSource::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

PollingState PollingSource::state() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

void PollingSource::loop() {
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    Millis wait = once();
    std::unique_lock<std::mutex> lock(mu_);
    state_.next_poll_at = clock_.now_ms() + wait;
    if (wait > 0) cv_.wait_for(lock, std::chrono::milliseconds(wait), [&] { return stopping_; });
    if (stopping_) return;
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

Millis PollingSource::once() {
  if (!store_.writable()) return fail("le magasin de Relais n'accepte pas d'écriture");
  std::optional<std::string> checkpoint = store_.checkpoint(source_);
  if (!checkpoint) return fail("le point de reprise ne peut pas être lu dans le magasin");
  PollBatch batch;
  Status st = poller_->poll(*checkpoint, batch);
  if (!st.ok) return fail(st.error + (st.detail.empty() ? "" : " : " + st.detail));
  {
    // Reachable: the state says so before anything is committed or told.
    std::lock_guard<std::mutex> lock(mu_);
    state_.last_poll_at = clock_.now_ms();
    if (state_.failing) log_info("poll", "source " + source_ + ": reachable again");
    state_.failing = false;
    state_.failures_in_row = 0;
    state_.last_error.clear();
  }
  if (batch.records.empty() && (batch.checkpoint.empty() || batch.checkpoint == *checkpoint)) {
    // Nothing read and no position to move to: nothing to commit.
    poller_->committed(batch, true, {});
    return batch.more ? 0 : config_.interval_ms;
  }
  bool stored = false;
  std::vector<PolledOutcome> outcomes = commit_(source_, batch, stored);
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
    if (!batch.records.empty()) state_.last_record_at = clock_.now_ms();
  }
  Status after = poller_->committed(batch, stored, outcomes);
  if (!stored) return fail("les messages lus n'ont pas pu être enregistrés (magasin)");
  if (!after.ok) {
    // The checkpoint already protects against reading the batch again; the source is told
    // again at the next batch (e.g. the outbox rows are marked then).
    return fail(after.error + (after.detail.empty() ? "" : " : " + after.detail));
  }
  return batch.more ? 0 : config_.interval_ms;
}

}  // namespace relais

#pragma once
// Retention (docs/security.md, "Retention"): how long the store keeps what it received, per
// route and final state, and the job that purges in two stages — the payloads replaced by a
// tombstone once a message's retention has passed, the rows themselves deleted after
// `retention.metadata` — then gives the freed pages back to the file system (incremental
// vacuum, WAL checkpoint).

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/message.h"
#include "core/periodic.h"
#include "core/status.h"

namespace relais {

class ConsoleStore;
class Counter;
class Metrics;
class Store;

constexpr Millis kDay = 24LL * 3600 * 1000;

// The `retention:` section as values. Plain value; the defaults are the documented safe ones.
struct RetentionPolicy {
  Millis interval_ms = 3600 * 1000;  // how often the server runs the purge
  int64_t batch = 1000;              // messages per writer job
  int64_t vacuum_pages = 2048;       // pages given back per incremental_vacuum step
  Millis metadata_ms = 400 * kDay;   // rows (ids, states, times) deleted after this
  Millis unrouted_ms = 30 * kDay;    // payload of a message no route took
  // Final state ("delivered", "dead", "discarded", "skipped") → payload retention.
  std::map<std::string, Millis> defaults = {{"delivered", 30 * kDay},
                                            {"dead", 90 * kDay},
                                            {"discarded", 30 * kDay},
                                            {"skipped", 30 * kDay}};
  // Route name → final state → retention (a state absent here takes the default).
  std::map<std::string, std::map<std::string, Millis>> routes;

  // The payload retention of a delivery of `route` in `state` (final states only).
  Millis of(const std::string& route, DeliveryState state) const;
  // The shortest payload retention of all: nothing received after now minus this is a
  // candidate.
  Millis shortest() const;
  // The final states a retention may name.
  static const std::vector<std::string>& final_states();
};

// One run of the purge.
struct RetentionRun {
  Millis now = 0;
  bool dry_run = false;  // count (and list a sample of ids) without changing anything
  size_t sample = 20;    // message ids listed per stage in a dry run
  // When set and true, the run stops between two batches (the server is stopping).
  const std::atomic<bool>* cancel = nullptr;
};

struct RetentionResult {
  // Stage 1: payloads replaced by the retention tombstone (messages already erased: skipped).
  int64_t purged_messages = 0, purged_deliveries = 0, purged_attempts = 0;
  // Stage 2: rows deleted after retention.metadata.
  int64_t deleted_messages = 0, deleted_deliveries = 0, deleted_attempts = 0;
  int64_t freed_bytes = 0;    // given back to the file system (incremental vacuum)
  int64_t free_pages = 0;     // free pages left in the file (reused by later writes)
  bool incremental = false;   // the store was created with auto_vacuum=INCREMENTAL
  bool checkpointed = false;  // the WAL was checkpointed and truncated afterwards
  // The engine has no free pages of its own to report (PostgreSQL: the purge ends with VACUUM,
  // which makes the rows' space reusable in place; freed_bytes, free_pages and incremental stay
  // 0, and checkpointed says the VACUUM ran).
  bool vacuum_only = false;
  int64_t batches = 0;  // writer jobs used
  Millis duration_ms = 0;
  std::vector<std::string> purge_sample, delete_sample;  // dry run: message ids
};

// The server's purge job: runs every `interval` on its own thread, or now when an operator asks
// (API, CLI). One run at a time (a second caller waits for the first). Each real run is audited
// (actor "retention": the counts and the freed bytes, nothing of what was purged) and counted in
// the metrics relais_retention_*. Thread-safe. Does not own the store, the audit trail or the
// metrics, which must outlive it (the metrics' collector keeps only shared figures).
class RetentionJob {
 public:
  // `audit` may be null (no audit trail: tests of the store alone).
  RetentionJob(Store& store, ConsoleStore* audit, Metrics& metrics, const Clock& clock,
               RetentionPolicy policy);
  ~RetentionJob();
  RetentionJob(const RetentionJob&) = delete;
  RetentionJob& operator=(const RetentionJob&) = delete;

  // The first run comes min(interval, 10 min) after start (a relais restarted more often than
  // the interval still purges), then one every interval. `runs_here` (optional) is asked before
  // each scheduled run: several nodes purge on the leader only.
  void start(std::function<bool()> runs_here = nullptr);
  void stop();
  // Runs the purge now. `by` names who asked ("" = the schedule), written in the audit entry.
  Status run(bool dry_run, const std::string& by, RetentionResult& out);
  const RetentionPolicy& policy() const { return policy_; }

 private:
  struct Figures {  // shared with the metrics' collector
    std::atomic<int64_t> last_run_ms{0}, last_duration_ms{0}, runs{0};
  };
  Store& store_;
  ConsoleStore* audit_;
  const Clock& clock_;
  RetentionPolicy policy_;
  std::shared_ptr<Figures> figures_;
  Counter* purged_;
  Counter* deleted_;
  Counter* freed_;
  std::mutex run_mu_;      // one run at a time
  PeriodicThread thread_;  // the schedule; stopping() also cuts a run in progress short
};

// The audit detail of a run: counts and bytes only.
std::string retention_summary(const RetentionResult& r);
// A run's result as the API answers it (and the CLI prints it): counts, bytes, and in a dry run
// the sample of message ids.
nlohmann::json retention_json(const RetentionResult& r, bool dry_run);

}  // namespace relais

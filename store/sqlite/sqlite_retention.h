#pragma once
// The retention purge of the SQLite store (store/sqlite/sqlite_store.cpp runs it): which messages
// are due, in batches found through indexes, their rows deleted after `metadata`, and the freed
// pages given back. Internal to the store: its steps run on the store's writer thread, the
// batches inside a group's transaction, the vacuum steps alone between groups.

#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "core/retention.h"
#include "core/status.h"
#include "core/store.h"
#include "store/sqlite/sqlite_backend.h"
#include "store/sqlite/sqlite_raw.h"
#include "store/stored_values.h"

namespace relais {

struct PurgeBatch;

// One writer job of a purge.
struct PurgeStep {
  enum class Kind { Payload, Metadata, Vacuum, Checkpoint } kind = Kind::Payload;
  const RetentionPolicy* policy = nullptr;  // owned by the caller, who waits
  const RetentionRun* run = nullptr;
  int64_t after_at = -1, after_seq = 0;  // the batch's cursor: (received_at, seq)
  std::promise<PurgeBatch>* done = nullptr;
  // Vacuum and checkpoint run alone, outside any group's transaction.
  bool alone() const { return kind == Kind::Vacuum || kind == Kind::Checkpoint; }
};

struct PurgeBatch {
  Status status;
  int64_t messages = 0, deliveries = 0, attempts = 0;
  int64_t last_at = -1, last_seq = 0;  // the cursor for the next batch
  bool more = false;                   // a full batch (or pages left): there may be more
  std::vector<std::string> sample;     // dry run: ids
  int64_t freed_bytes = 0, free_pages = 0;
  bool incremental = false;
};

// The statements of retention, prepared on the writer's connection. Not thread-safe: the
// writer thread only. Owns its statements; does not own the connection.
class SqliteRetention {
 public:
  explicit SqliteRetention(sqlite3* db);
  // Stage 1: the next `batch` candidates after the cursor; those due get `tombstone(seq)`.
  PurgeBatch payload_batch(
      const PurgeStep& step,
      const std::function<TombstoneCounts(int64_t seq, const std::string& id)>& tombstone);
  // Stage 2: the next `batch` messages received before now - metadata; those whose every
  // delivery is final and older than that are deleted with their deliveries and attempts.
  PurgeBatch metadata_batch(const PurgeStep& step);
  // Gives back up to `vacuum_pages` free pages (auto_vacuum=INCREMENTAL stores only).
  PurgeBatch vacuum_step(const PurgeStep& step);

  static std::vector<HotStatement> statements();

 private:
  // Whether every delivery of `seq` is final and `age(route, state)` old at `now`.
  bool all_final_since(int64_t seq, Millis now,
                       const std::function<Millis(const std::string&, DeliveryState)>& age,
                       int64_t& deliveries);
  sqlite3* db_;
  std::string route_, state_;
  int64_t b_cutoff_ = 0, b_at_ = 0, b_seq_ = 0, b_limit_ = 0;
  std::unique_ptr<RawStatement> candidates_, aged_, deliveries_, delete_attempts_,
      delete_sms_records_, delete_deliveries_, delete_message_;
};

}  // namespace relais

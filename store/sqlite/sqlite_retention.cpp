// The retention purge's statements (store/sqlite/sqlite_retention.h). Every batch goes through an
// index (the query-plan test checks them with the store's hot statements): the payload stage
// walks `messages_unpurged` (received_at, seq of the messages not purged or erased yet, partial
// index of migration 9), the metadata stage `messages_received`, both with a (received_at, seq)
// cursor, and a message's deliveries and attempts are reached by `deliveries_message` and
// `attempts_delivery`.

#include "store/sqlite/sqlite_retention.h"

#include <algorithm>
#include <filesystem>

#include "store/sqlite/sqlite_backend.h"

namespace relais {
namespace {

constexpr const char* kCandidates =
    "SELECT seq, id, routed, received_at FROM messages WHERE erased_at = 0 AND received_at <= ? "
    "AND (received_at, seq) > (?, ?) ORDER BY received_at, seq LIMIT ?";
constexpr const char* kAged =
    "SELECT seq, id, routed, received_at FROM messages WHERE received_at <= ? AND "
    "(received_at, seq) > (?, ?) ORDER BY received_at, seq LIMIT ?";
constexpr const char* kDeliveries =
    "SELECT state, route, updated_at FROM deliveries WHERE message_seq = ?";
constexpr const char* kDeleteAttempts =
    "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE message_seq = ?)";
// The SMS destination's record of each SMS (the number as a pseudonym, the gateway's reference,
// the delivery report): kept as long as its delivery, no longer.
constexpr const char* kDeleteSmsRecords =
    "DELETE FROM sms_records WHERE delivery_id IN (SELECT id FROM deliveries WHERE message_seq = "
    "?)";
constexpr const char* kDeleteDeliveries = "DELETE FROM deliveries WHERE message_seq = ?";
constexpr const char* kDeleteMessage = "DELETE FROM messages WHERE seq = ?";

int64_t pragma_value(sqlite3* db, const char* sql) {
  sqlite3_stmt* st = nullptr;
  int64_t v = 0;
  if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK) {
    throw std::runtime_error(std::string(sql) + ": " + sqlite3_errmsg(db));
  }
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

}  // namespace

SqliteRetention::SqliteRetention(sqlite3* db) : db_(db) {
  auto make = [db](const char* sql) { return std::make_unique<RawStatement>(db, sql); };
  candidates_ = make(kCandidates);
  aged_ = make(kAged);
  deliveries_ = make(kDeliveries);
  delete_attempts_ = make(kDeleteAttempts);
  delete_sms_records_ = make(kDeleteSmsRecords);
  delete_deliveries_ = make(kDeleteDeliveries);
  delete_message_ = make(kDeleteMessage);
}

bool SqliteRetention::all_final_since(
    int64_t seq, Millis now, const std::function<Millis(const std::string&, DeliveryState)>& age,
    int64_t& deliveries) {
  b_seq_ = seq;
  auto& st = deliveries_->bind(1, b_seq_);
  bool due = true;
  deliveries = 0;
  while (st.row()) {
    ++deliveries;
    if (!due) continue;  // read to the end (the statement resets itself there)
    auto state = delivery_state_from(st.text(0));
    if (!state || is_active(*state)) {
      due = false;
      continue;
    }
    due = st.int64(2) + age(st.text(1), *state) <= now;
  }
  return due;
}

PurgeBatch SqliteRetention::payload_batch(
    const PurgeStep& step,
    const std::function<TombstoneCounts(int64_t seq, const std::string& id)>& tombstone) {
  const RetentionPolicy& p = *step.policy;
  const RetentionRun& run = *step.run;
  PurgeBatch out;
  struct Row {
    int64_t seq, routed, received_at;
    std::string id;
  };
  std::vector<Row> rows;
  b_cutoff_ = run.now - p.shortest();
  b_at_ = step.after_at;
  b_seq_ = step.after_seq;
  b_limit_ = std::max<int64_t>(1, p.batch);
  auto& sel = candidates_->bind(1, b_cutoff_).bind(2, b_at_).bind(3, b_seq_).bind(4, b_limit_);
  while (sel.row()) rows.push_back(Row{sel.int64(0), sel.int64(2), sel.int64(3), sel.text(1)});
  auto age = [&p](const std::string& route, DeliveryState s) { return p.of(route, s); };
  for (const auto& r : rows) {
    int64_t deliveries = 0;
    bool due = all_final_since(r.seq, run.now, age, deliveries);
    // A message no route took has no delivery: its own retention, from its reception.
    if (deliveries == 0) due = r.received_at + p.unrouted_ms <= run.now;
    if (!due) continue;
    if (run.dry_run) {
      ++out.messages;
      out.deliveries += deliveries;
      if (out.sample.size() < run.sample) out.sample.push_back(r.id);
      continue;
    }
    TombstoneCounts c = tombstone(r.seq, r.id);
    out.messages += c.messages;
    out.deliveries += c.deliveries;
    out.attempts += c.attempts;
  }
  out.last_at = rows.empty() ? step.after_at : rows.back().received_at;
  out.last_seq = rows.empty() ? step.after_seq : rows.back().seq;
  out.more = static_cast<int64_t>(rows.size()) == b_limit_;
  return out;
}

PurgeBatch SqliteRetention::metadata_batch(const PurgeStep& step) {
  const RetentionPolicy& p = *step.policy;
  const RetentionRun& run = *step.run;
  PurgeBatch out;
  std::vector<std::pair<int64_t, int64_t>> rows;  // seq, received_at
  std::vector<std::string> ids;
  b_cutoff_ = run.now - p.metadata_ms;
  b_at_ = step.after_at;
  b_seq_ = step.after_seq;
  b_limit_ = std::max<int64_t>(1, p.batch);
  auto& sel = aged_->bind(1, b_cutoff_).bind(2, b_at_).bind(3, b_seq_).bind(4, b_limit_);
  while (sel.row()) {
    rows.emplace_back(sel.int64(0), sel.int64(3));
    ids.push_back(sel.text(1));
  }
  const Millis metadata = p.metadata_ms;
  auto age = [metadata](const std::string&, DeliveryState) { return metadata; };
  for (size_t i = 0; i < rows.size(); ++i) {
    int64_t deliveries = 0;
    if (!all_final_since(rows[i].first, run.now, age, deliveries)) continue;
    if (run.dry_run) {
      ++out.messages;
      out.deliveries += deliveries;
      if (out.sample.size() < run.sample) out.sample.push_back(ids[i]);
      continue;
    }
    b_seq_ = rows[i].first;
    // Children first: deliveries reference their message (foreign key).
    out.attempts += delete_attempts_->bind(1, b_seq_).run();
    delete_sms_records_->bind(1, b_seq_).run();
    out.deliveries += delete_deliveries_->bind(1, b_seq_).run();
    out.messages += delete_message_->bind(1, b_seq_).run();
  }
  out.last_at = rows.empty() ? step.after_at : rows.back().second;
  out.last_seq = rows.empty() ? step.after_seq : rows.back().first;
  out.more = static_cast<int64_t>(rows.size()) == b_limit_;
  return out;
}

PurgeBatch SqliteRetention::vacuum_step(const PurgeStep& step) {
  PurgeBatch out;
  out.incremental = pragma_value(db_, "PRAGMA auto_vacuum") == 2;
  out.free_pages = pragma_value(db_, "PRAGMA freelist_count");
  if (!out.incremental || out.free_pages == 0) return out;
  const int64_t page_size = pragma_value(db_, "PRAGMA page_size");
  const int64_t before = pragma_value(db_, "PRAGMA page_count");
  const std::string sql = "PRAGMA incremental_vacuum(" +
                          std::to_string(std::max<int64_t>(1, step.policy->vacuum_pages)) + ")";
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    out.status = Status::failure(503, "storage error", err ? err : "incremental_vacuum failed");
    sqlite3_free(err);
    return out;
  }
  const int64_t after = pragma_value(db_, "PRAGMA page_count");
  out.freed_bytes = (before - after) * page_size;
  out.free_pages = pragma_value(db_, "PRAGMA freelist_count");
  out.more = out.free_pages > 0 && after < before;
  return out;
}

std::vector<HotStatement> SqliteRetention::statements() {
  return {
      {"retention: messages not purged yet", kCandidates},
      {"retention: messages past metadata", kAged},
      {"retention: deliveries of a message", kDeliveries},
      {"retention: delete attempts", kDeleteAttempts},
      {"retention: delete SMS records", kDeleteSmsRecords},
      {"retention: delete deliveries", kDeleteDeliveries},
      {"retention: delete message", kDeleteMessage},
  };
}

namespace {

// The file and its WAL, in bytes.
int64_t file_bytes(const std::string& path) {
  std::error_code ec;
  int64_t n = 0;
  for (const auto& p : {path, path + "-wal"}) {
    auto size = std::filesystem::file_size(p, ec);
    if (!ec) n += static_cast<int64_t>(size);
  }
  return n;
}

}  // namespace

Status compact_sqlite_store(const std::string& path, int busy_timeout_ms, CompactReport& out) {
  if (!std::filesystem::exists(path)) {
    return Status::failure(404, "no store", "no store at " + path);
  }
  out.bytes_before = file_bytes(path);
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    std::string err = db ? sqlite3_errmsg(db) : "cannot open";
    sqlite3_close(db);
    return Status::failure(503, "storage error", err);
  }
  sqlite3_busy_timeout(db, std::max(0, busy_timeout_ms));
  // auto_vacuum changes on an existing file only with a VACUUM, which rewrites it whole.
  char* err = nullptr;
  int rc =
      sqlite3_exec(db, "PRAGMA auto_vacuum=INCREMENTAL; VACUUM; PRAGMA wal_checkpoint(TRUNCATE);",
                   nullptr, nullptr, &err);
  std::string error = rc == SQLITE_OK ? "" : (err ? err : sqlite3_errstr(rc));
  sqlite3_free(err);
  sqlite3_close(db);
  if (!error.empty())
    return Status::failure(503, "storage error", error + " (the store is unchanged)");
  out.bytes_after = file_bytes(path);
  out.done = "rewritten without its free pages; incremental vacuum on";
  return Status::success();
}

}  // namespace relais

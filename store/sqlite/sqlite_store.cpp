// SqliteStore: the embedded store on SQLite through Poco::Data, in WAL mode, with a single
// writer thread that group-commits accepts and state updates.
// With StoreOptions::cipher, bodies, mapped payloads and partners' excerpts are stored encrypted
// (core/at_rest.h): encrypted on the callers' threads, decrypted by the readers; the rekey and the
// erasure rewrite them on the writer thread, in batches that join the group commits.

#include <Poco/Data/RecordSet.h>
#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/SQLite/Utility.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/SessionPool.h>
#include <Poco/Data/Statement.h>
#include <sqlite3.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <future>
#include <limits>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <variant>

#include "core/log.h"
#include "core/store.h"
#include "store/group_commit.h"
#include "store/sqlite/sqlite_backend.h"
#include "store/sqlite/sqlite_multi_insert.h"
#include "store/sqlite/sqlite_retention.h"
#include "store/sqlite/sqlite_session.h"
#include "store/stored_values.h"

using namespace Poco::Data::Keywords;
using Poco::Data::RecordSet;
using Poco::Data::Session;
using Poco::Data::Statement;

namespace relais {
namespace {

struct Migration {
  int version;
  const char* description;
  std::vector<const char*> statements;
};

const std::vector<Migration>& migrations() {
  static const std::vector<Migration> list = {
      {1,
       "messages, deliveries, attempts",
       {
           "CREATE TABLE messages (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
           "source TEXT NOT NULL, type TEXT NOT NULL, correlation TEXT NOT NULL, "
           "idempotency TEXT NOT NULL, headers TEXT NOT NULL, body TEXT NOT NULL, "
           "received_at INTEGER NOT NULL, routed INTEGER NOT NULL)",
           "CREATE UNIQUE INDEX messages_idempotency ON messages(source, idempotency) "
           "WHERE idempotency <> ''",
           "CREATE INDEX messages_correlation ON messages(correlation)",
           "CREATE INDEX messages_received ON messages(received_at)",
           "CREATE TABLE deliveries (id INTEGER PRIMARY KEY, message_seq INTEGER NOT NULL "
           "REFERENCES messages(seq), destination TEXT NOT NULL, route TEXT NOT NULL, "
           "mapping TEXT NOT NULL, mapping_version INTEGER NOT NULL DEFAULT 0, "
           "state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, "
           "next_attempt_at INTEGER NOT NULL DEFAULT 0, not_before INTEGER NOT NULL DEFAULT 0, "
           "updated_at INTEGER NOT NULL, last_outcome TEXT NOT NULL DEFAULT '', "
           "last_class TEXT NOT NULL DEFAULT '', last_code INTEGER NOT NULL DEFAULT 0, "
           "last_text TEXT NOT NULL DEFAULT '', external_ref TEXT NOT NULL DEFAULT '', "
           "payload TEXT)",
           "CREATE INDEX deliveries_message ON deliveries(message_seq)",
           "CREATE INDEX deliveries_active ON deliveries(state) "
           "WHERE state IN ('pending', 'retrying')",
           "CREATE INDEX deliveries_destination_state ON deliveries(destination, state)",
           "CREATE TABLE attempts (id INTEGER PRIMARY KEY, delivery_id INTEGER NOT NULL, "
           "at INTEGER NOT NULL, duration_ms INTEGER NOT NULL, outcome TEXT NOT NULL, "
           "class TEXT NOT NULL, code INTEGER NOT NULL, text TEXT NOT NULL, "
           "excerpt TEXT NOT NULL)",
           "CREATE INDEX attempts_delivery ON attempts(delivery_id)",
       }},
      {2,
       "versioned documents (mappings, lookup tables)",
       {
           "CREATE TABLE documents (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
           "name TEXT NOT NULL, version INTEGER NOT NULL, format TEXT NOT NULL, "
           "content TEXT NOT NULL, author TEXT NOT NULL, comment TEXT NOT NULL, "
           "created_at INTEGER NOT NULL, UNIQUE(kind, name, version))",
           "CREATE TABLE document_active (kind TEXT NOT NULL, name TEXT NOT NULL, "
           "version INTEGER NOT NULL, PRIMARY KEY(kind, name))",
           "CREATE TABLE document_activations (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
           "name TEXT NOT NULL, version INTEGER NOT NULL, by TEXT NOT NULL, "
           "comment TEXT NOT NULL, at INTEGER NOT NULL)",
       }},
      {3,
       "quality flags on deliveries",
       {
           "ALTER TABLE deliveries ADD COLUMN flags TEXT NOT NULL DEFAULT ''",
           "CREATE INDEX deliveries_flagged ON deliveries(message_seq) WHERE flags <> ''",
       }},
      {4,
       "cross-references to external systems",
       {
           "CREATE TABLE xrefs (destination TEXT NOT NULL, key TEXT NOT NULL, "
           "external_id TEXT NOT NULL, version TEXT NOT NULL, message_id TEXT NOT NULL, "
           "updated_at INTEGER NOT NULL, PRIMARY KEY(destination, key))",
           "CREATE INDEX xrefs_updated ON xrefs(destination, updated_at)",
       }},
      {5,
       "SMS records and the SMS opt-out list",
       {
           "CREATE TABLE sms_records (delivery_id INTEGER PRIMARY KEY, "
           "destination TEXT NOT NULL, driver TEXT NOT NULL, reference TEXT NOT NULL, "
           "gateway_ref TEXT NOT NULL DEFAULT '', number_hash TEXT NOT NULL, "
           "encoding TEXT NOT NULL, segments INTEGER NOT NULL, cost_cents REAL NOT NULL, "
           "state TEXT NOT NULL, dlr_status INTEGER NOT NULL DEFAULT 0, "
           "detail TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL, "
           "updated_at INTEGER NOT NULL)",
           "CREATE INDEX sms_records_reference ON sms_records(reference)",
           "CREATE INDEX sms_records_gateway_ref ON sms_records(gateway_ref) "
           "WHERE gateway_ref <> ''",
           "CREATE TABLE sms_optouts (number_hash TEXT PRIMARY KEY, created_at INTEGER NOT NULL, "
           "source TEXT NOT NULL, keyword TEXT NOT NULL)",
       }},
      {6,
       "console: users, API tokens, append-only audit trail",
       {
           "CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL, "
           "password TEXT NOT NULL, created_at INTEGER NOT NULL, created_by TEXT NOT NULL, "
           "disabled INTEGER NOT NULL DEFAULT 0)",
           "CREATE TABLE api_tokens (name TEXT PRIMARY KEY, role TEXT NOT NULL, "
           "sources TEXT NOT NULL, sha256 TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL, "
           "created_by TEXT NOT NULL, revoked_at INTEGER NOT NULL DEFAULT 0)",
           "CREATE TABLE audit (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, "
           "actor TEXT NOT NULL, role TEXT NOT NULL, action TEXT NOT NULL, "
           "object TEXT NOT NULL, detail TEXT NOT NULL, address TEXT NOT NULL)",
           "CREATE INDEX audit_at ON audit(at)",
           "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN "
           "SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
           "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN "
           "SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
       }},
      {7,
       "idempotency keys in their own table, with a body digest and a retention",
       {
           // Looked up by primary key on every accept (the partial index on messages could not
           // be used with a bound key: SQLite cannot prove a parameter is not ''); purged by
           // expiry so the lookup stays bounded whatever the size of messages.
           "CREATE TABLE idempotency_keys (source TEXT NOT NULL, key TEXT NOT NULL, "
           "message_id TEXT NOT NULL, digest TEXT NOT NULL, expires_at INTEGER NOT NULL, "
           "PRIMARY KEY(source, key)) WITHOUT ROWID",
           "CREATE INDEX idempotency_keys_expiry ON idempotency_keys(expires_at)",
           // Keys already stored: kept 30 days from reception; their digest is unknown ('' is
           // never a conflict).
           "INSERT INTO idempotency_keys(source, key, message_id, digest, expires_at) "
           "SELECT source, idempotency, id, '', received_at + 2592000000 FROM messages "
           "WHERE idempotency <> ''",
           // A key may be used again once expired: the unique index would refuse it.
           "DROP INDEX messages_idempotency",
           // One row the writer rewrites to find out whether commits succeed again after a
           // failure, when it has nothing else to write (a real page write and fsync).
           "CREATE TABLE store_probe (id INTEGER PRIMARY KEY, at INTEGER NOT NULL)",
           "INSERT INTO store_probe(id, at) VALUES(1, 0)",
       }},
      {8,
       "erasure: when a message's payloads were replaced by a tombstone",
       {
           "ALTER TABLE messages ADD COLUMN erased_at INTEGER NOT NULL DEFAULT 0",
       }},
      {9,
       "retention: the messages whose payloads are not purged yet",
       {
           // The retention purge walks these (store/sqlite/sqlite_retention.cpp); a purged or
           // erased message leaves the index, so a run never reads it again.
           "CREATE INDEX messages_unpurged ON messages(received_at) WHERE erased_at = 0",
       }},
      {10,
       "the dashboard's figures by destination, state and time",
       {
           // The figures of each destination (store/sqlite/sqlite_console.cpp, figures()) count a
           // day's outcomes and find the last one by seeking this index, instead of reading every
           // delivery (2 s on a million). The outcome's update moves the entry: it already did
           // when the state changed, which is nearly always.
           "DROP INDEX deliveries_destination_state",
           "CREATE INDEX deliveries_destination_state ON deliveries(destination, state, "
           "updated_at)",
       }},
      {11,
       "polling sources: their checkpoints and the records they could not take",
       {
           // Written in the transaction of the messages a batch produced (core/poller.h).
           "CREATE TABLE source_checkpoints (source TEXT PRIMARY KEY, value TEXT NOT NULL, "
           "updated_at INTEGER NOT NULL)",
           "CREATE TABLE source_rejects (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT "
           "NULL, position TEXT NOT NULL, status INTEGER NOT NULL, error TEXT NOT NULL, detail "
           "TEXT NOT NULL, at INTEGER NOT NULL)",
           "CREATE INDEX source_rejects_source ON source_rejects(source, id)",
       }},
      {12,
       "appariement: persons paired with their record at a partner (core/pairing_store.h)",
       {
           // candidates: JSON, encrypted like the bodies when store.encryption is on (names,
           // birth dates); waiters: JSON list of the deliveries to wake when paired.
           "CREATE TABLE pairings (id INTEGER PRIMARY KEY AUTOINCREMENT, partner TEXT NOT NULL, "
           "person TEXT NOT NULL, state TEXT NOT NULL, external_id TEXT NOT NULL DEFAULT '', "
           "candidates TEXT NOT NULL DEFAULT '[]', waiters TEXT NOT NULL DEFAULT '[]', "
           "how TEXT NOT NULL DEFAULT '', actor TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL "
           "DEFAULT '', created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, "
           "UNIQUE(partner, person))",
           "CREATE INDEX pairings_state ON pairings(state, id)",
       }},
      {13,
       "each destination's backlog read back in id order",
       {
           // routing/dispatcher.h keeps at most `queue_in_memory` deliveries of a destination in
           // memory; the rest is read back page by page (load_active_page) through this index.
           "CREATE INDEX deliveries_queue ON deliveries(destination, id) "
           "WHERE state IN ('pending', 'retrying')",
       }},
  };
  return list;
}

// The writer's own jobs (accepts, updates and flushes: store/group_commit.h).
// One batch of an erasure: the key's next `request.batch` messages after `after_seq`.
struct EraseBatch {
  Status status;
  int64_t messages = 0, deliveries = 0, attempts = 0;
  int64_t last_seq = 0;  // the cursor for the next batch
  bool more = false;     // a full batch: there may be more
  std::vector<int64_t> active;
};
struct EraseJob {
  const ErasureRequest* request = nullptr;  // owned by the caller, who waits
  int64_t after_seq = 0;                    // -1: the checkpoint after the last batch
  std::promise<EraseBatch>* done = nullptr;
};
// One range of a rekey: the values of `table` whose primary key is in (from, to] and not on the
// active key, re-encrypted.
enum class RekeyTable { Messages, Deliveries, Attempts };
struct RekeyBatch {
  Status status;
  int64_t done = 0, unreadable = 0;
};
struct RekeyJob {
  RekeyTable table = RekeyTable::Messages;
  int64_t from = 0, to = 0;
  std::promise<RekeyBatch>* done = nullptr;
};
using Job =
    std::variant<std::unique_ptr<AcceptJob>, UpdateJob, FlushJob, EraseJob, RekeyJob, PurgeStep>;

// Jobs that run alone, between two groups, outside any transaction: an erasure's checkpoint,
// a purge's vacuum steps and checkpoint.
bool is_alone(const Job& job) {
  if (auto* e = std::get_if<EraseJob>(&job)) return e->after_seq < 0;
  if (auto* p = std::get_if<PurgeStep>(&job)) return p->alone();
  return false;
}

// What the completion thread does after a group: hand the new deliveries to the listener, then
// answer every caller of the group in order (accepts, applies, flushes, record callbacks).
struct Completion {
  std::vector<QueuedDelivery> fresh;
  std::vector<Job> jobs;
  std::vector<std::vector<AcceptResult>> results;  // per accept job (empty on failure)
  std::vector<Status> statuses;                    // per update job (empty on failure)
  std::vector<EraseBatch> erasures;                // per erase job (empty on failure)
  std::vector<RekeyBatch> rekeys;                  // per rekey job (empty on failure)
  std::vector<PurgeBatch> purges;                  // per purge step (empty on failure)
  std::string failure;                             // "" = committed
};

// The SQLite implementation. Thread-safe: one writer thread owns the write session; reads use
// pooled sessions (WAL readers never block the writer).
class SqliteStore final : public GroupCommitStore<SqliteStore, Job, Completion> {
 public:
  explicit SqliteStore(const StoreOptions& options);
  ~SqliteStore() override { close(); }

  std::optional<std::string> checkpoint(const std::string& source) override;
  std::vector<StoredReject> rejects(const std::string& source, int64_t before_id,
                                    int limit) override;
  Status erase(const ErasureRequest& request, ErasureResult& result) override;
  Status rekey(const RekeyRequest& request, RekeyProgress& progress,
               const std::function<bool(const RekeyProgress&)>& on_batch) override;
  int64_t rekey_remaining() override;
  Status purge(const RetentionPolicy& policy, const RetentionRun& run,
               RetentionResult& result) override;
  Status load_active_page(const std::string& destination, int64_t after_id, int limit,
                          std::vector<QueuedDelivery>& out) override;
  Status count_active(std::map<std::string, int64_t>& out) override;
  std::vector<QueuedDelivery> load_active() override;
  std::vector<HeldKey> load_dead_heads() override;
  MessagePtr message_by_seq(int64_t seq) override;
  std::optional<MessageRecord> message(const std::string& id, bool with_history) override;
  std::optional<Delivery> delivery(int64_t id) override;
  MessagePage list(const MessageFilter& filter) override;
  bool healthy() override;
  void close() override;

 private:
  friend class GroupCommitStore<SqliteStore, Job, Completion>;
  // The group commit's steps (store/group_commit.h).
  bool runs_alone(const Job& job) const { return is_alone(job); }
  void answer(Completion& c);
  void migrate();
  void prepare_statements();
  void read_counters();
  void write_group(std::vector<Job>& jobs);
  // One message of an accept job: its idempotency key looked up (the group's keys not inserted
  // yet first), its rows queued for flush_rows().
  void accept_one(Incoming& in, const std::string& body, std::vector<AcceptResult>& out,
                  std::vector<QueuedDelivery>& fresh);
  // Inserts the rows accept_one() and apply_update() queued (multi-row statements), then
  // forgets them.
  void flush_rows();
  void forget_rows();
  void write_checkpoint(const SourceCheckpoint& c, Millis at);
  void purge_expired_keys();
  Status apply_update(const DeliveryUpdate& u);
  EraseBatch erase_batch(const EraseJob& job);
  RekeyBatch rekey_batch(const RekeyJob& job);
  // Replaces the payloads and texts of message `seq` (id `id`) by the tombstone b_.e_plain,
  // encrypted like each value it replaces, and b_.e_text (the one writer of tombstones:
  // erasure and retention).
  TombstoneCounts write_tombstone(int64_t seq, const std::string& id);
  PurgeBatch purge_batch(const PurgeStep& step);
  Status purge_stages(const RetentionPolicy& policy, const RetentionRun& run,
                      RetentionResult& result);
  void run_alone(Job& job);
  bool checkpoint_truncate();
  // The stored form of a value (encrypted under the active key when encryption is on). Throws
  // when OpenSSL fails: on the writer thread, the group fails and is tried again.
  std::string seal(const std::string& aad, const std::string& plain) const;
  // The plain text of a stored value (store/stored_values.h).
  std::string open(const std::string& aad, std::string stored, bool json,
                   std::string* error = nullptr) const {
    return open_stored(cipher_, aad, std::move(stored), json, error);
  }
  std::vector<Delivery> deliveries_of(Session& s, int64_t seq, bool with_history);
  MessagePtr message_from(RecordSet& rs, size_t row) const;
  static Delivery delivery_from(RecordSet& rs, size_t row);

  StoreOptions options_;
  std::unique_ptr<Session> write_;
  std::unique_ptr<Poco::Data::SessionPool> readers_;

  // Writer-thread state: ids are assigned here (the writer is the only writer).
  int64_t next_seq_ = 1;
  int64_t next_delivery_ = 1;
  Millis next_purge_ = 0;       // steady-clock ms of the next purge of expired idempotency keys
  Millis latest_received_ = 0;  // the newest message's reception time: "now" for the purge

  // Prepared statements and their bound variables (writer thread only).
  struct Bound {
    // UPDATE of a delivery (apply_update); prepared once: it runs for every attempt.
    int64_t u_id = 0, u_attempts = 0, u_next = 0, u_updated = 0, u_code = 0, u_mapping_version = 0;
    bool u_has_attempt = false, u_has_text = false;
    int u_keep_payload = 1, u_keep_flags = 1;
    std::string u_flags;
    std::string u_state, u_outcome, u_class, u_text, u_ref, u_mapping;
    Poco::Nullable<std::string> u_payload;
    // idempotency_keys
    int64_t k_now = 0;
    // erasure
    std::string e_key, e_tombstone, e_text, e_plain;
    int64_t e_after = 0, e_limit = 0, e_at = 0, e_seq = 0, e_row = 0;
    // rekey
    std::string r_prefix, r_value;
    int64_t r_from = 0, r_to = 0, r_len = 0, r_row = 0;
  } b_;
  // The rows of the group's accepts and attempts, inserted together by flush_rows()
  // (store/sqlite/sqlite_multi_insert.h): before a job that reads the tables (an erasure, a
  // rekey, a purge), after a polled batch (its checkpoint), and before the commit — not per
  // job: an HTTP accept is a job of one message. The rows point into the group's jobs (their
  // messages, deliveries, sealed bodies and updates), which outlive the flush. No update of the
  // group can be about a delivery inserted in it: a delivery is known (to the dispatcher, the
  // console) only once its group committed.
  struct PendingMessage {
    const Message* message;
    const std::string* body;  // as stored (sealed with encryption)
    std::string headers;
    int64_t routed;
  };
  struct PendingDelivery {
    int64_t id, seq;
    const NewDelivery* delivery;
    Millis at;
  };
  struct PendingKey {
    const std::string* source;
    const std::string* key;
    const std::string* message_id;
    const std::string* digest;
    Millis expires;
  };
  std::vector<PendingMessage> pending_messages_;
  std::vector<PendingDelivery> pending_deliveries_;
  std::vector<PendingKey> pending_keys_;
  std::vector<std::pair<int64_t, const Attempt*>> pending_attempts_;  // delivery id, attempt
  // Source, NUL, key → its index in pending_keys_: a key used twice in one group.
  std::unordered_map<std::string, size_t> pending_key_index_;
  std::unique_ptr<MultiRowInsert> ins_messages_, ins_deliveries_, ins_keys_, ins_attempts_;
  std::unique_ptr<RawStatement> find_idem_, renew_idem_, upd_delivery_, purge_idem_, begin_,
      commit_, rollback_, erase_select_, erase_active_, erase_message_, erase_deliveries_select_,
      erase_delivery_, erase_attempts_select_, erase_attempt_;
  // Per RekeyTable: the values of a range not on the active key, and the rewrite of one.
  std::unique_ptr<RawStatement> rekey_select_[3], rekey_update_[3];
  std::unique_ptr<SqliteRetention> retention_;
};

// The writer connection's page cache, in KiB (PRAGMA cache_size=-N).
constexpr int kWriterCacheKiB = 32 * 1024;

// The statements of the accept and delivery paths, in one place: prepared by the store and
// checked by the query-plan test.
// The inserts of accepted messages take several rows each (multi_row_insert_sql): the heads and
// the columns per row.
constexpr const char* kInsertMessages =
    "INSERT INTO messages(seq, id, source, type, correlation, idempotency, headers, body, "
    "received_at, routed) VALUES";
constexpr int kMessageInsertColumns = 10;
constexpr const char* kInsertDeliveries =
    "INSERT INTO deliveries(id, message_seq, destination, route, mapping, state, not_before, "
    "updated_at) VALUES";
constexpr int kDeliveryInsertColumns = 8;
constexpr const char* kInsertAttempts =
    "INSERT INTO attempts(delivery_id, at, duration_ms, outcome, class, code, text, excerpt) "
    "VALUES";
constexpr int kAttemptInsertColumns = 8;
constexpr const char* kUpdateDelivery =
    "UPDATE deliveries SET state = ?, attempts = ?, next_attempt_at = ?, updated_at = ?, "
    "last_outcome = CASE WHEN ? THEN ? ELSE last_outcome END, "
    "last_class = CASE WHEN ? THEN ? ELSE last_class END, "
    "last_code = CASE WHEN ? THEN ? ELSE last_code END, "
    "last_text = CASE WHEN ? THEN ? ELSE last_text END, "
    "external_ref = CASE WHEN ? <> '' THEN ? ELSE external_ref END, "
    "mapping = CASE WHEN ? <> '' THEN ? ELSE mapping END, "
    "mapping_version = CASE WHEN ? <> 0 THEN ? ELSE mapping_version END, "
    "payload = CASE WHEN ? THEN payload ELSE ? END, "
    "flags = CASE WHEN ? THEN flags ELSE ? END "
    "WHERE id = ?";
// A key is looked up (primary key), then inserted, or renewed when it had expired.
constexpr const char* kInsertIdempotency =
    "INSERT INTO idempotency_keys(source, key, message_id, digest, expires_at) VALUES";
constexpr int kIdempotencyInsertColumns = 5;
constexpr const char* kFindIdempotency =
    "SELECT message_id, digest, expires_at FROM idempotency_keys WHERE source = ? AND key = ?";
constexpr const char* kRenewIdempotency =
    "UPDATE idempotency_keys SET message_id = ?, digest = ?, expires_at = ? WHERE source = ? "
    "AND key = ?";
// Bounded: a purge never holds the writer long, whatever has expired.
constexpr const char* kPurgeIdempotency =
    "DELETE FROM idempotency_keys WHERE (source, key) IN (SELECT source, key FROM "
    "idempotency_keys WHERE expires_at <= ? LIMIT 5000)";
constexpr const char* kSelectState = "SELECT state FROM deliveries WHERE id = ?";
// Erasure (through messages_correlation): the key's next messages not erased yet, its active
// deliveries, then the payloads and texts of one message replaced.
constexpr const char* kEraseSelect =
    "SELECT seq, id FROM messages WHERE correlation = ? AND seq > ? AND erased_at = 0 ORDER BY "
    "seq LIMIT ?";
constexpr const char* kEraseActive =
    "SELECT d.id FROM messages m JOIN deliveries d ON d.message_seq = m.seq WHERE "
    "m.correlation = ? AND d.state IN ('pending', 'retrying') ORDER BY d.id";
constexpr const char* kEraseMessage = "UPDATE messages SET body = ?, erased_at = ? WHERE seq = ?";
// Row by row: each tombstone is encrypted with its own record's identity.
constexpr const char* kEraseDeliveriesSelect = "SELECT id FROM deliveries WHERE message_seq = ?";
constexpr const char* kEraseDelivery =
    "UPDATE deliveries SET payload = CASE WHEN payload IS NULL THEN NULL ELSE ? END, "
    "last_text = CASE WHEN last_text = '' THEN '' ELSE ? END WHERE id = ?";
constexpr const char* kEraseAttemptsSelect =
    "SELECT id, delivery_id, at FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries "
    "WHERE message_seq = ?)";
constexpr const char* kEraseAttempt =
    "UPDATE attempts SET excerpt = CASE WHEN excerpt = '' THEN '' ELSE ? END, "
    "text = CASE WHEN text = '' THEN '' ELSE ? END WHERE id = ?";
// Rekey, per table: a range of the primary key (never the whole table in one job), the values
// in it that are not empty and not on the active key (bound: the prefix "enc1:<active>:" and
// its length), then one value rewritten. Columns: the key, the associated data's parts, the
// value.
constexpr const char* kRekeySelect[3] = {
    "SELECT seq, id, 0, body FROM messages WHERE seq > ? AND seq <= ? AND body <> '' AND "
    "substr(body, 1, ?) <> ?",
    "SELECT id, id, 0, payload FROM deliveries WHERE id > ? AND id <= ? AND payload IS NOT NULL "
    "AND payload <> '' AND substr(payload, 1, ?) <> ?",
    "SELECT id, delivery_id, at, excerpt FROM attempts WHERE id > ? AND id <= ? AND excerpt <> "
    "'' AND substr(excerpt, 1, ?) <> ?",
};
constexpr const char* kRekeyUpdate[3] = {
    "UPDATE messages SET body = ? WHERE seq = ?",
    "UPDATE deliveries SET payload = ? WHERE id = ?",
    "UPDATE attempts SET excerpt = ? WHERE id = ?",
};
// Rekey's progress (full reads, on a reader, at the start and the end only).
constexpr const char* kRekeyCount[3] = {
    "SELECT COUNT(*) FROM messages WHERE body <> '' AND substr(body, 1, ?) <> ?",
    "SELECT COUNT(*) FROM deliveries WHERE payload IS NOT NULL AND payload <> '' AND "
    "substr(payload, 1, ?) <> ?",
    "SELECT COUNT(*) FROM attempts WHERE excerpt <> '' AND substr(excerpt, 1, ?) <> ?",
};
constexpr const char* kRekeyMax[3] = {
    "SELECT MAX(seq) FROM messages",
    "SELECT MAX(id) FROM deliveries",
    "SELECT MAX(id) FROM attempts",
};
constexpr const char* kLoadActive =
    "SELECT d.id, d.destination, m.correlation, d.mapping, d.attempts, d.next_attempt_at, "
    "d.not_before, m.received_at, d.message_seq, m.source, d.route FROM deliveries d JOIN "
    "messages m ON m.seq = d.message_seq WHERE d.state IN ('pending', 'retrying') ORDER BY d.id";
// The message's columns first (message_from), then the delivery's.
constexpr const char* kLoadActivePage =
    "SELECT m.seq, m.id, m.source, m.type, m.correlation, m.idempotency, m.headers, m.body, "
    "m.received_at, d.id, d.mapping, d.attempts, d.next_attempt_at, d.not_before, d.route "
    "FROM deliveries d JOIN messages m ON m.seq = d.message_seq WHERE d.destination = ? AND "
    "d.state IN ('pending', 'retrying') AND d.id > ? ORDER BY d.id LIMIT ?";
constexpr const char* kCountActive =
    "SELECT destination, COUNT(*) FROM deliveries WHERE state IN ('pending', 'retrying') "
    "GROUP BY destination";
constexpr const char* kMessageColumns =
    "seq, id, source, type, correlation, idempotency, headers, body, received_at";
constexpr const char* kMessageBySeq =
    "SELECT seq, id, source, type, correlation, idempotency, headers, body, received_at FROM "
    "messages WHERE seq = ?";
constexpr const char* kMessageById =
    "SELECT seq, id, source, type, correlation, idempotency, headers, body, received_at FROM "
    "messages WHERE id = ?";
constexpr const char* kDeliveriesOfMessage =
    "SELECT id, message_seq, destination, route, mapping, mapping_version, state, attempts, "
    "next_attempt_at, not_before, updated_at, last_outcome, last_class, last_code, last_text, "
    "external_ref, flags, payload FROM deliveries WHERE message_seq = ? ORDER BY id";
constexpr const char* kAttemptsOfDelivery =
    "SELECT at, duration_ms, outcome, class, code, text, excerpt FROM attempts WHERE "
    "delivery_id = ? ORDER BY id";
constexpr const char* kDeliveryById =
    "SELECT d.id, d.message_seq, d.destination, d.route, d.mapping, d.mapping_version, "
    "d.state, d.attempts, d.next_attempt_at, d.not_before, d.updated_at, d.last_outcome, "
    "d.last_class, d.last_code, d.last_text, d.external_ref, d.flags, d.payload, m.id FROM "
    "deliveries d JOIN messages m ON m.seq = d.message_seq WHERE d.id = ?";

SqliteStore::SqliteStore(const StoreOptions& options)
    : GroupCommitStore(options.cipher.get(), options.max_batch), options_(options) {
  Poco::Data::SQLite::Connector::registerConnector();
  if (options_.read_only) {  // readers only: no writer thread, nothing to migrate or checkpoint
    open_store_session(options_.path, "messages", "messages", StoreAccess::ReadOnly);
    readers_ = std::make_unique<Poco::Data::SessionPool>(
        "SQLite", store_connection_string(options_.path, StoreAccess::ReadOnly), 1,
        options_.read_pool, 60);
    refuse_writes();
    return;
  }
  write_ = std::make_unique<Session>("SQLite", options_.path);
  // Before anything writes the file: a new store gives freed pages back to the file system
  // (the retention purge's incremental_vacuum). No effect on an existing store (`relais store
  // compact` converts one).
  *write_ << "PRAGMA auto_vacuum=INCREMENTAL", now;
  *write_ << "PRAGMA journal_mode=WAL", now;
  if (options_.synchronous_full) {
    *write_ << "PRAGMA synchronous=FULL", now;
  } else {
    *write_ << "PRAGMA synchronous=NORMAL", now;
  }
  *write_ << "PRAGMA foreign_keys=ON", now;
  *write_ << "PRAGMA busy_timeout=" + std::to_string(std::max(0, options_.busy_timeout_ms)), now;
  // The writer's page cache holds a whole group's pages (1,000 accepted messages with their
  // deliveries and keys, the outcomes of their deliveries, the indexes' pages they touch): with
  // SQLite's default (2 MB) a group's dirty pages were spilled to the WAL before its commit and
  // the indexes' pages read again from the file at every group. Pages are allocated as used.
  *write_ << "PRAGMA cache_size=-" + std::to_string(kWriterCacheKiB), now;
  migrate();
  read_counters();
  prepare_statements();
  readers_ =
      std::make_unique<Poco::Data::SessionPool>("SQLite", options_.path, 1, options_.read_pool, 60);
  start_threads();
}

void SqliteStore::read_counters() {
  Poco::Nullable<int64_t> max_seq, max_del;
  *write_ << "SELECT MAX(seq) FROM messages", into(max_seq), now;
  *write_ << "SELECT MAX(id) FROM deliveries", into(max_del), now;
  next_seq_ = max_seq.isNull() ? 1 : max_seq.value() + 1;
  next_delivery_ = max_del.isNull() ? 1 : max_del.value() + 1;
}

void SqliteStore::migrate() {
  *write_ << "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
             "description TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
      now;
  Poco::Nullable<int> current;
  *write_ << "SELECT MAX(version) FROM schema_migrations", into(current), now;
  int have = current.isNull() ? 0 : current.value();
  if (have > sqlite_schema_version()) {
    throw std::runtime_error("store " + options_.path + " has schema version " +
                             std::to_string(have) + ", newer than this relais (" +
                             std::to_string(sqlite_schema_version()) + "): upgrade relais");
  }
  // Every migration not recorded yet is applied, in order, even one numbered below the
  // highest recorded: version numbers are reserved per line of work, so a store may have met a
  // later number first.
  std::vector<int> applied;
  *write_ << "SELECT version FROM schema_migrations", into(applied), now;
  for (const auto& m : migrations()) {
    if (std::find(applied.begin(), applied.end(), m.version) != applied.end()) continue;
    write_->begin();
    try {
      for (const char* sql : m.statements) *write_ << sql, now;
      int v = m.version;
      std::string d = m.description;
      *write_ << "INSERT INTO schema_migrations(version, description) VALUES(?, ?)", use(v), use(d),
          now;
      write_->commit();
      log_info("store", "applied schema migration " + std::to_string(m.version) + " (" +
                            m.description + ")");
    } catch (...) {
      write_->rollback();
      throw;
    }
  }
}

void SqliteStore::prepare_statements() {
  sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(*write_);
  auto make = [db](const char* sql) { return std::make_unique<RawStatement>(db, sql); };
  ins_messages_ = std::make_unique<MultiRowInsert>(db, kInsertMessages, kMessageInsertColumns);
  ins_deliveries_ = std::make_unique<MultiRowInsert>(db, kInsertDeliveries, kDeliveryInsertColumns);
  ins_keys_ = std::make_unique<MultiRowInsert>(db, kInsertIdempotency, kIdempotencyInsertColumns);
  ins_attempts_ = std::make_unique<MultiRowInsert>(db, kInsertAttempts, kAttemptInsertColumns);
  upd_delivery_ = make(kUpdateDelivery);
  find_idem_ = make(kFindIdempotency);
  renew_idem_ = make(kRenewIdempotency);
  purge_idem_ = make(kPurgeIdempotency);
  erase_select_ = make(kEraseSelect);
  erase_active_ = make(kEraseActive);
  erase_message_ = make(kEraseMessage);
  erase_deliveries_select_ = make(kEraseDeliveriesSelect);
  erase_delivery_ = make(kEraseDelivery);
  erase_attempts_select_ = make(kEraseAttemptsSelect);
  erase_attempt_ = make(kEraseAttempt);
  for (int t = 0; t < 3; ++t) {
    rekey_select_[t] = make(kRekeySelect[t]);
    rekey_update_[t] = make(kRekeyUpdate[t]);
  }
  retention_ = std::make_unique<SqliteRetention>(db);
  begin_ = make("BEGIN IMMEDIATE");
  commit_ = make("COMMIT");
  rollback_ = make("ROLLBACK");
}

Status SqliteStore::erase(const ErasureRequest& request, ErasureResult& result) {
  result = ErasureResult{};
  ErasureRequest req = request;
  req.batch = std::clamp<size_t>(req.batch, 1, 1000);
  EraseJob job{&req, 0, nullptr};
  for (;;) {
    EraseBatch b;
    if (!run_job(job, b)) return Status::failure(503, "store closed");
    result.messages += b.messages;
    result.deliveries += b.deliveries;
    result.attempts += b.attempts;
    if (!b.active.empty()) result.active = std::move(b.active);
    if (!b.status.ok) return b.status;
    if (!b.more) break;
    job.after_seq = b.last_seq;
  }
  // The old bytes may still be in the WAL (and, until it is copied back, in the frames of the
  // main file): checkpoint and truncate it, on the writer thread between two groups.
  EraseBatch cp;
  result.checkpointed = run_job(EraseJob{&req, -1, nullptr}, cp) && cp.status.ok;
  return Status::success();
}

Status SqliteStore::rekey(const RekeyRequest& request, RekeyProgress& progress,
                          const std::function<bool(const RekeyProgress&)>& on_batch) {
  RekeySteps steps;
  steps.remaining = [this] { return rekey_remaining(); };
  steps.last_key = [this](int t) {
    Session s = readers_->get();
    Poco::Nullable<int64_t> max;
    s << kRekeyMax[t], into(max), now;
    return max.isNull() ? int64_t{0} : max.value();
  };
  steps.batch = [this](int t, int64_t from, int64_t to, RekeySteps::Batch& out) {
    RekeyBatch b;
    if (!run_job(RekeyJob{static_cast<RekeyTable>(t), from, to, nullptr}, b)) return false;
    out = RekeySteps::Batch{b.status, b.done, b.unreadable};
    return true;
  };
  // Values rewritten from plain text left their old bytes in the WAL: as after an erasure.
  steps.after = [this] {
    EraseBatch cp;
    run_job(EraseJob{nullptr, -1, nullptr}, cp);
  };
  return run_rekey(cipher_, options_.read_only, request, progress, on_batch, steps);
}

int64_t SqliteStore::rekey_remaining() {
  // Without encryption every non-empty value counts: none is on an active key.
  std::string prefix = cipher_ ? cipher_->active_prefix() : std::string("\x01");
  int64_t len = static_cast<int64_t>(prefix.size());
  Session s = readers_->get();
  int64_t total = 0;
  for (const char* sql : kRekeyCount) {
    int64_t n = 0;
    s << sql, use(len), use(prefix), into(n), now;
    total += n;
  }
  return total;
}

RekeyBatch SqliteStore::rekey_batch(const RekeyJob& job) {
  RekeyBatch out;
  auto& b = b_;
  const int t = static_cast<int>(job.table);
  b.r_from = job.from;
  b.r_to = job.to;
  b.r_prefix = cipher_->active_prefix();
  b.r_len = static_cast<int64_t>(b.r_prefix.size());
  struct Row {
    int64_t key;
    std::string aad, value;
  };
  std::vector<Row> rows;
  auto& sel =
      rekey_select_[t]->bind(1, b.r_from).bind(2, b.r_to).bind(3, b.r_len).bind(4, b.r_prefix);
  while (sel.row()) {
    Row r{sel.int64(0), {}, sel.text(3)};
    switch (job.table) {
      case RekeyTable::Messages:
        r.aad = body_aad(sel.text(1));
        break;
      case RekeyTable::Deliveries:
        r.aad = payload_aad(sel.int64(1));
        break;
      case RekeyTable::Attempts:
        r.aad = excerpt_aad(sel.int64(1), sel.int64(2));
        break;
    }
    rows.push_back(std::move(r));
  }
  std::string plain;
  for (auto& r : rows) {
    if (!cipher_->open(r.aad, r.value, plain).ok) {
      ++out.unreadable;  // left as it is: its key is unknown, or it was changed
      continue;
    }
    b.r_value = seal(r.aad, plain);
    b.r_row = r.key;
    out.done += rekey_update_[t]->bind(1, b.r_value).bind(2, b.r_row).run();
  }
  return out;
}

Status SqliteStore::purge(const RetentionPolicy& policy, const RetentionRun& run,
                          RetentionResult& result) {
  result = RetentionResult{};
  auto started = std::chrono::steady_clock::now();
  Status s = purge_stages(policy, run, result);
  result.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - started)
                           .count();
  return s;
}

Status SqliteStore::purge_stages(const RetentionPolicy& policy, const RetentionRun& run,
                                 RetentionResult& result) {
  using Kind = PurgeStep::Kind;
  // Stage by stage, one writer job per batch (or vacuum step), each waiting for the previous.
  for (Kind kind : {Kind::Payload, Kind::Metadata, Kind::Vacuum, Kind::Checkpoint}) {
    if (run.dry_run && (kind == Kind::Vacuum || kind == Kind::Checkpoint)) break;
    PurgeStep step{kind, &policy, &run, -1, 0, nullptr};
    for (;;) {
      if (run.cancel != nullptr && run.cancel->load()) {
        return Status::failure(503, "stopping", "the server stops; the next run goes on");
      }
      PurgeBatch b;
      if (!run_job(step, b)) return Status::failure(503, "store closed");
      ++result.batches;
      // A checkpoint that readers hold up is not a failure: the WAL is truncated by a later one.
      if (kind == Kind::Checkpoint) {
        result.checkpointed = b.status.ok;
        break;
      }
      if (!b.status.ok) return b.status;
      if (kind == Kind::Payload) {
        result.purged_messages += b.messages;
        result.purged_deliveries += b.deliveries;
        result.purged_attempts += b.attempts;
        for (auto& id : b.sample) result.purge_sample.push_back(std::move(id));
      } else if (kind == Kind::Metadata) {
        result.deleted_messages += b.messages;
        result.deleted_deliveries += b.deliveries;
        result.deleted_attempts += b.attempts;
        for (auto& id : b.sample) result.delete_sample.push_back(std::move(id));
      } else {
        result.freed_bytes += b.freed_bytes;
        result.free_pages = b.free_pages;
        result.incremental = b.incremental;
      }
      if (!b.more) break;
      step.after_at = b.last_at;
      step.after_seq = b.last_seq;
    }
  }
  return Status::success();
}

PurgeBatch SqliteStore::purge_batch(const PurgeStep& step) {
  if (step.kind == PurgeStep::Kind::Metadata) return retention_->metadata_batch(step);
  ErasureRequest r;
  r.retention = true;
  r.by = "retention";
  r.reason = "durée de conservation";
  r.at = step.run->now;
  b_.e_plain = erasure_tombstone(r);
  b_.e_text = "[purgé le " + format_rfc3339(r.at) + " (durée de conservation)]";
  b_.e_at = r.at;
  return retention_->payload_batch(
      step, [this](int64_t seq, const std::string& id) { return write_tombstone(seq, id); });
}

void SqliteStore::run_alone(Job& job) {
  if (auto* e = std::get_if<EraseJob>(&job)) {
    EraseBatch b;
    if (!checkpoint_truncate()) b.status = Status::failure(503, "checkpoint failed");
    e->done->set_value(std::move(b));
    return;
  }
  auto& p = std::get<PurgeStep>(job);
  PurgeBatch b;
  try {
    if (p.kind == PurgeStep::Kind::Vacuum) {
      b = retention_->vacuum_step(p);
    } else if (!checkpoint_truncate()) {
      b.status = Status::failure(503, "checkpoint failed");
    }
  } catch (const std::exception& e) {
    b.status = Status::failure(503, "storage error", e.what());
  }
  p.done->set_value(std::move(b));
}

EraseBatch SqliteStore::erase_batch(const EraseJob& job) {
  EraseBatch out;
  const ErasureRequest& r = *job.request;
  auto& b = b_;
  b.e_key = r.correlation;
  // A delivery still active would carry (or load) the body: refused unless forced, checked in
  // the same transaction as the batch (a forced erasure does not ask).
  if (!r.force) {
    auto& act = erase_active_->bind(1, b.e_key);
    while (act.row()) out.active.push_back(act.int64(0));
  }
  if (!out.active.empty()) {
    out.status = Status::failure(
        409, "deliveries active",
        std::to_string(out.active.size()) +
            " delivery(ies) of this key are pending, retrying or in flight: wait for them, "
            "discard them, or force");
    return out;
  }
  std::vector<std::pair<int64_t, std::string>> seqs;  // seq, message id
  b.e_after = job.after_seq;
  b.e_limit = static_cast<int64_t>(r.batch);
  auto& sel = erase_select_->bind(1, b.e_key).bind(2, b.e_after).bind(3, b.e_limit);
  while (sel.row()) seqs.emplace_back(sel.int64(0), sel.text(1));
  b.e_plain = erasure_tombstone(r);
  b.e_text = "[effacé le " + format_rfc3339(r.at) + "]";
  b.e_at = r.at;
  for (const auto& [seq, id] : seqs) {
    TombstoneCounts c = write_tombstone(seq, id);
    out.messages += c.messages;
    out.deliveries += c.deliveries;
    out.attempts += c.attempts;
  }
  out.last_seq = seqs.empty() ? job.after_seq : seqs.back().first;
  out.more = seqs.size() == r.batch;
  return out;
}

TombstoneCounts SqliteStore::write_tombstone(int64_t seq, const std::string& id) {
  auto& b = b_;
  TombstoneCounts c;
  // Each tombstone stored like the value it replaces (encrypted with that record's identity).
  b.e_seq = seq;
  b.e_tombstone = seal(body_aad(id), b.e_plain);
  c.messages = erase_message_->bind(1, b.e_tombstone).bind(2, b.e_at).bind(3, b.e_seq).run();
  std::vector<int64_t> deliveries;
  auto& ds = erase_deliveries_select_->bind(1, b.e_seq);
  while (ds.row()) deliveries.push_back(ds.int64(0));
  for (int64_t d : deliveries) {
    b.e_row = d;
    b.e_tombstone = seal(payload_aad(d), b.e_plain);
    c.deliveries +=
        erase_delivery_->bind(1, b.e_tombstone).bind(2, b.e_text).bind(3, b.e_row).run();
  }
  std::vector<std::pair<int64_t, std::string>> attempts;  // id, associated data
  auto& as = erase_attempts_select_->bind(1, b.e_seq);
  while (as.row()) attempts.emplace_back(as.int64(0), excerpt_aad(as.int64(1), as.int64(2)));
  for (const auto& [aid, aad] : attempts) {
    b.e_row = aid;
    b.e_tombstone = seal(aad, b.e_plain);
    c.attempts += erase_attempt_->bind(1, b.e_tombstone).bind(2, b.e_text).bind(3, b.e_row).run();
  }
  return c;
}

std::string SqliteStore::seal(const std::string& aad, const std::string& plain) const {
  if (cipher_ == nullptr) return plain;
  std::string stored;
  if (!cipher_->seal(aad, plain, stored)) throw std::runtime_error("cannot encrypt (OpenSSL)");
  return stored;
}

bool SqliteStore::checkpoint_truncate() {
  sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(*write_);
  int log = 0, done = 0;
  int rc = sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
  if (rc != SQLITE_OK) {
    log_warn("store", std::string("checkpoint after an erasure or a purge failed: ") +
                          sqlite3_errstr(rc) +
                          "; the WAL may keep erased bytes until the next checkpoint");
    return false;
  }
  return true;
}

void SqliteStore::answer(Completion& c) {
  size_t ei = 0, ri = 0, pi = 0;
  answer_common(c, [&](Job& job) {
    if (auto* e = std::get_if<EraseJob>(&job)) {
      answer_batch(e->done, c.erasures, ei, c.failure);
    } else if (auto* r = std::get_if<RekeyJob>(&job)) {
      answer_batch(r->done, c.rekeys, ri, c.failure);
    } else if (auto* p = std::get_if<PurgeStep>(&job)) {
      answer_batch(p->done, c.purges, pi, c.failure);
    }
  });
}

void SqliteStore::accept_one(Incoming& in, const std::string& body, std::vector<AcceptResult>& out,
                             std::vector<QueuedDelivery>& fresh) {
  auto& m = *in.message;
  AcceptResult r;
  latest_received_ = std::max(latest_received_, m.received_at);
  if (!m.idempotency.empty()) {
    const Millis expires = m.received_at + options_.idempotency_retention_ms;
    std::string found_id, digest;
    int64_t expiry = 0;
    bool known = false;
    // A key taken earlier in this group (not inserted yet) is looked up first, then the table.
    // As on PostgreSQL, the later messages of a job follow the first one of their key, whatever
    // their reception times (and so do the later jobs of the group: they follow a committed
    // message, since the group commits as one).
    std::string lookup = m.source;
    lookup += '\0';
    lookup += m.idempotency;
    if (auto it = pending_key_index_.find(lookup); it != pending_key_index_.end()) {
      const PendingKey& first = pending_keys_[it->second];
      known = true;
      found_id = *first.message_id;
      digest = *first.digest;
      expiry = std::numeric_limits<int64_t>::max();
    } else {
      auto& find = find_idem_->bind(1, m.source).bind(2, m.idempotency);
      known = find.row();
      if (known) {
        found_id = find.text(0);
        digest = find.text(1);
        expiry = find.int64(2);
        find.reset();
      }
    }
    if (known && expiry > m.received_at) {
      // '' on either side: not compared (a key stored before digests were kept).
      bool same = digest.empty() || in.body_digest.empty() || digest == in.body_digest;
      r.kind = same ? AcceptResult::Kind::Duplicate : AcceptResult::Kind::Conflict;
      r.id = found_id;
      out.push_back(std::move(r));
      return;
    }
    if (!known) {
      pending_key_index_.emplace(std::move(lookup), pending_keys_.size());
      pending_keys_.push_back(
          PendingKey{&m.source, &m.idempotency, &m.id, &in.body_digest, expires});
    } else {
      // Expired (not purged yet): this message is new.
      renew_idem_->bind(1, m.id)
          .bind(2, in.body_digest)
          .bind(3, expires)
          .bind(4, m.source)
          .bind(5, m.idempotency)
          .run();
    }
  }
  m.seq = next_seq_++;
  pending_messages_.push_back(
      PendingMessage{&m, &body, m.headers.empty() ? std::string("{}") : headers_json(m.headers),
                     in.deliveries.empty() ? 0 : 1});
  MessagePtr shared = in.message;
  for (const auto& d : in.deliveries) {
    const int64_t id = next_delivery_++;
    pending_deliveries_.push_back(PendingDelivery{id, m.seq, &d, m.received_at});
    QueuedDelivery q;
    q.id = id;
    q.destination = d.destination;
    q.source = m.source;
    q.route = d.route;
    q.key = m.correlation;
    q.mapping = d.mapping;
    q.due = d.not_before;
    q.received_at = m.received_at;
    q.message_seq = m.seq;
    q.message = shared;
    fresh.push_back(std::move(q));
  }
  r.kind = AcceptResult::Kind::Created;
  r.id = m.id;
  out.push_back(std::move(r));
}

void SqliteStore::flush_rows() {
  static const std::string kPending = to_string(DeliveryState::Pending);
  ins_keys_->run(pending_keys_.size(), [&](RawStatement& st, int at, size_t i) {
    const PendingKey& k = pending_keys_[i];
    st.bind(at, *k.source)
        .bind(at + 1, *k.key)
        .bind(at + 2, *k.message_id)
        .bind(at + 3, *k.digest)
        .bind(at + 4, k.expires);
  });
  ins_messages_->run(pending_messages_.size(), [&](RawStatement& st, int at, size_t i) {
    const PendingMessage& p = pending_messages_[i];
    const Message& m = *p.message;
    st.bind(at, m.seq)
        .bind(at + 1, m.id)
        .bind(at + 2, m.source)
        .bind(at + 3, m.type)
        .bind(at + 4, m.correlation)
        .bind(at + 5, m.idempotency)
        .bind(at + 6, p.headers)
        .bind(at + 7, *p.body)
        .bind(at + 8, m.received_at)
        .bind(at + 9, p.routed);
  });
  ins_deliveries_->run(pending_deliveries_.size(), [&](RawStatement& st, int at, size_t i) {
    const PendingDelivery& p = pending_deliveries_[i];
    st.bind(at, p.id)
        .bind(at + 1, p.seq)
        .bind(at + 2, p.delivery->destination)
        .bind(at + 3, p.delivery->route)
        .bind(at + 4, p.delivery->mapping)
        .bind(at + 5, kPending)
        .bind(at + 6, p.delivery->not_before)
        .bind(at + 7, p.at);
  });
  ins_attempts_->run(pending_attempts_.size(), [&](RawStatement& st, int at, size_t i) {
    const auto& [delivery, a] = pending_attempts_[i];
    st.bind(at, delivery)
        .bind(at + 1, a->at)
        .bind(at + 2, a->duration_ms)
        .bind(at + 3, a->outcome)
        .bind(at + 4, a->error_class)
        .bind(at + 5, int64_t{a->code})
        .bind(at + 6, a->text)
        .bind(at + 7, a->excerpt);
  });
  forget_rows();
}

void SqliteStore::forget_rows() {
  pending_attempts_.clear();
  pending_messages_.clear();
  pending_deliveries_.clear();
  pending_keys_.clear();
  pending_key_index_.clear();
}

void SqliteStore::purge_expired_keys() {
  Millis mono = monotonic_ms();
  if (mono < next_purge_) return;
  next_purge_ = mono + options_.purge_every_ms;
  // Expiry is measured on the messages' clock (the hub's clock seam), not the system's.
  if (latest_received_ == 0) return;
  b_.k_now = latest_received_;
  purge_idem_->bind(1, b_.k_now).run();
}

void SqliteStore::write_group(std::vector<Job>& jobs) {
  Completion c;
  c.results.reserve(jobs.size());
  c.statuses.reserve(jobs.size());
  // Erased and purged values are overwritten with zeros in the pages they leave (not only
  // unlinked); a rekey's too (the values it rewrites may be legacy plain text).
  const bool erasing = std::any_of(jobs.begin(), jobs.end(), [](const Job& j) {
    return std::holds_alternative<EraseJob>(j) || std::holds_alternative<RekeyJob>(j) ||
           std::holds_alternative<PurgeStep>(j);
  });
  try {
    if (erasing) *write_ << "PRAGMA secure_delete=ON", now;
    // BEGIN IMMEDIATE takes the write lock first, before anything is read: other connections
    // to the file (the document, cross-reference and SMS stores) write too, and a deferred
    // transaction that has read a snapshot cannot wait for their lock (SQLITE_BUSY at once,
    // busy_timeout ignored). Prepared once, like COMMIT: no SQL is parsed per group.
    begin_->run();
    if (!write_ok_) {
      // Recovering: write a page for sure, so that success means the disk takes writes again.
      int64_t at = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
      *write_ << "UPDATE store_probe SET at = ? WHERE id = 1", use(at), now;
    }
    for (auto& job : jobs) {
      if (auto* a = std::get_if<std::unique_ptr<AcceptJob>>(&job)) {
        auto& out = c.results.emplace_back();
        out.reserve((*a)->batch.size());
        auto& job = **a;
        for (size_t i = 0; i < job.batch.size(); ++i) {
          accept_one(job.batch[i], job.sealed.empty() ? job.batch[i].message->body : job.sealed[i],
                     out, c.fresh);
        }
        if (job.checkpoint) {
          flush_rows();
          // A polled message refused here (409) is kept as the source's reject, in this
          // transaction like the others.
          const SourceCheckpoint* cp = &*job.checkpoint;
          SourceCheckpoint with_conflicts;
          for (size_t i = 0; i < out.size() && i < cp->positions.size(); ++i) {
            if (out[i].kind != AcceptResult::Kind::Conflict) continue;
            if (cp != &with_conflicts) {
              with_conflicts = *cp;
              cp = &with_conflicts;
            }
            with_conflicts.rejects.push_back(idempotency_conflict(cp->positions[i], out[i].id));
          }
          write_checkpoint(*cp, job.at);
          out.push_back(AcceptResult{AcceptResult::Kind::Created, {}, {}});
        }
      } else if (auto* u = std::get_if<UpdateJob>(&job)) {
        c.statuses.push_back(apply_update(u->update));
      } else if (auto* e = std::get_if<EraseJob>(&job)) {
        flush_rows();  // it reads what the group wrote before it
        c.erasures.push_back(erase_batch(*e));
      } else if (auto* r = std::get_if<RekeyJob>(&job)) {
        flush_rows();
        c.rekeys.push_back(rekey_batch(*r));
      } else if (auto* p = std::get_if<PurgeStep>(&job)) {
        flush_rows();
        c.purges.push_back(purge_batch(*p));
      }
    }
    flush_rows();
    purge_expired_keys();
    commit_->run();
    group_committed();
  } catch (const std::exception& e) {
    c.failure = e.what();
    forget_rows();
    try {
      rollback_->run();  // SQLite may have rolled back already (disk full): then it throws
    } catch (...) {
    }
    // The ids handed out in the failed group are not on disk: read the counters back from the
    // file (what it holds is the truth; memory may be ahead of it).
    try {
      read_counters();
    } catch (const std::exception& re) {
      log_error("store", std::string("cannot re-read the id counters: ") + re.what());
    }
    c.fresh.clear();
    c.results.clear();
    c.statuses.clear();
    c.erasures.clear();
    c.rekeys.clear();
    c.purges.clear();
    group_failed(c.failure, jobs);
  }
  if (erasing) {
    try {
      *write_ << "PRAGMA secure_delete=OFF", now;
    } catch (const std::exception& e) {
      log_warn("store", std::string("cannot turn secure_delete off: ") + e.what());
    }
  }
  c.jobs = std::move(jobs);
  complete_group(std::move(c));
}

Status SqliteStore::apply_update(const DeliveryUpdate& u) {
  auto& s = *write_;
  if (!u.expected.empty()) {
    std::vector<std::string> st;
    int64_t id = u.id;
    s << kSelectState, use(id), into(st), now;
    if (st.empty()) return Status::failure(404, "not found", "no delivery " + std::to_string(id));
    auto cur = delivery_state_from(st.front());
    if (!cur || !u.expected.count(*cur)) {
      return Status::failure(409, "conflict",
                             "delivery " + std::to_string(id) + " is " + st.front());
    }
  }
  auto& b = b_;
  b.u_id = u.id;
  b.u_attempts = u.attempts;
  b.u_next = u.next_attempt_at;
  b.u_updated = u.now;
  b.u_state = to_string(u.state == DeliveryState::InFlight ? DeliveryState::Pending : u.state);
  b.u_code = 0;
  b.u_outcome.clear();
  b.u_class.clear();
  if (u.attempt) {
    b.u_outcome = u.attempt->outcome;
    b.u_class = u.attempt->error_class;
    b.u_code = u.attempt->code;
    b.u_text = u.attempt->text;
  } else {
    b.u_text = u.action_text;
  }
  b.u_ref = u.external_ref;
  b.u_mapping = u.mapping;
  b.u_mapping_version = u.mapping_version;
  b.u_payload.clear();
  if (u.payload) b.u_payload = *u.payload;
  b.u_has_attempt = u.attempt.has_value();
  b.u_has_text = b.u_has_attempt || !u.action_text.empty();
  b.u_keep_payload = u.payload ? 0 : 1;
  // An attempt states the delivery's flags anew; a person's action keeps them.
  b.u_keep_flags = u.attempt ? 0 : 1;
  b.u_flags = u.flags.empty() ? std::string() : nlohmann::json(u.flags).dump();
  const int64_t id = u.id;
  auto& st = *upd_delivery_;
  st.bind(1, b.u_state)
      .bind(2, b.u_attempts)
      .bind(3, b.u_next)
      .bind(4, b.u_updated)
      .bind(5, int64_t{b.u_has_attempt})
      .bind(6, b.u_outcome)
      .bind(7, int64_t{b.u_has_attempt})
      .bind(8, b.u_class)
      .bind(9, int64_t{b.u_has_attempt})
      .bind(10, b.u_code)
      .bind(11, int64_t{b.u_has_text})
      .bind(12, b.u_text)
      .bind(13, b.u_ref)
      .bind(14, b.u_ref)
      .bind(15, b.u_mapping)
      .bind(16, b.u_mapping)
      .bind(17, b.u_mapping_version)
      .bind(18, b.u_mapping_version)
      .bind(19, int64_t{b.u_keep_payload});
  if (b.u_payload.isNull()) {
    st.bind_null(20);
  } else {
    st.bind(20, b.u_payload.value());
  }
  st.bind(21, int64_t{b.u_keep_flags}).bind(22, b.u_flags).bind(23, b.u_id);
  int64_t changed = st.run();
  if (changed == 0) return Status::failure(404, "not found", "no delivery " + std::to_string(id));
  if (u.attempt) pending_attempts_.emplace_back(id, &*u.attempt);  // flush_rows()
  return Status::success();
}

void SqliteStore::close() {
  if (!stop_threads()) return;
  ins_messages_.reset();
  ins_deliveries_.reset();
  ins_keys_.reset();
  ins_attempts_.reset();
  upd_delivery_.reset();
  find_idem_.reset();
  renew_idem_.reset();
  begin_.reset();
  commit_.reset();
  rollback_.reset();
  purge_idem_.reset();
  erase_select_.reset();
  erase_active_.reset();
  erase_message_.reset();
  erase_deliveries_select_.reset();
  erase_delivery_.reset();
  erase_attempts_select_.reset();
  erase_attempt_.reset();
  for (int t = 0; t < 3; ++t) {
    rekey_select_[t].reset();
    rekey_update_[t].reset();
  }
  retention_.reset();
  if (readers_) readers_->shutdown();
  if (write_) {
    try {
      *write_ << "PRAGMA wal_checkpoint(TRUNCATE)", now;
    } catch (const std::exception& e) {
      log_warn("store", std::string("checkpoint at close failed: ") + e.what());
    }
    write_->close();
  }
}

bool SqliteStore::healthy() {
  if (!write_ok_) return false;
  try {
    Session s = readers_->get();
    int one = 0;
    s << "SELECT 1", into(one), now;
    return one == 1;
  } catch (const std::exception&) {
    return false;
  }
}

std::vector<QueuedDelivery> SqliteStore::load_active() {
  Session s = readers_->get();
  Statement st(s);
  st << kLoadActive, now;
  RecordSet rs(st);
  std::vector<QueuedDelivery> out;
  out.reserve(rs.rowCount());
  for (size_t i = 0; i < rs.rowCount(); ++i) {
    QueuedDelivery q;
    q.id = rs.value(0, i).convert<int64_t>();
    q.destination = rs.value(1, i).convert<std::string>();
    q.key = rs.value(2, i).convert<std::string>();
    q.mapping = rs.value(3, i).convert<std::string>();
    q.attempts = rs.value(4, i).convert<int>();
    q.due = std::max(rs.value(5, i).convert<int64_t>(), rs.value(6, i).convert<int64_t>());
    q.received_at = rs.value(7, i).convert<int64_t>();
    q.message_seq = rs.value(8, i).convert<int64_t>();
    q.source = rs.value(9, i).convert<std::string>();
    q.route = rs.value(10, i).convert<std::string>();
    out.push_back(std::move(q));
  }
  return out;
}

Status SqliteStore::load_active_page(const std::string& destination, int64_t after_id, int limit,
                                     std::vector<QueuedDelivery>& out) {
  try {
    Session s = readers_->get();
    std::string dest = destination;
    int64_t after = after_id, lim = limit;
    Statement st(s);
    st << kLoadActivePage, use(dest), use(after), use(lim), now;
    RecordSet rs(st);
    out.reserve(out.size() + rs.rowCount());
    for (size_t i = 0; i < rs.rowCount(); ++i) {
      out.push_back(queued_with_message(
          message_from(rs, i), rs.value(9, i).convert<int64_t>(), destination,
          rs.value(10, i).convert<std::string>(), rs.value(11, i).convert<int>(),
          rs.value(12, i).convert<int64_t>(), rs.value(13, i).convert<int64_t>(),
          rs.value(14, i).convert<std::string>()));
    }
    return Status::success();
  } catch (const std::exception& e) {
    return Status::failure(503, "store unavailable", e.what());
  }
}

Status SqliteStore::count_active(std::map<std::string, int64_t>& out) {
  try {
    Session s = readers_->get();
    Statement st(s);
    st << kCountActive, now;
    RecordSet rs(st);
    for (size_t i = 0; i < rs.rowCount(); ++i) {
      out[rs.value(0, i).convert<std::string>()] = rs.value(1, i).convert<int64_t>();
    }
    return Status::success();
  } catch (const std::exception& e) {
    return Status::failure(503, "store unavailable", e.what());
  }
}

std::vector<HeldKey> SqliteStore::load_dead_heads() {
  // For each (destination, key) the earliest dead delivery: under the "hold" policy the key's
  // later deliveries, queued or still to come, wait behind it until a person acts.
  Session s = readers_->get();
  Statement st(s);
  st << "SELECT d.destination, m.correlation, MIN(d.id) FROM deliveries d JOIN messages m ON "
        "m.seq = d.message_seq WHERE d.state = 'dead' AND m.correlation <> '' "
        "GROUP BY d.destination, m.correlation",
      now;
  RecordSet rs(st);
  std::vector<HeldKey> out;
  for (size_t i = 0; i < rs.rowCount(); ++i) {
    out.push_back(HeldKey{rs.value(0, i).convert<std::string>(),
                          rs.value(1, i).convert<std::string>(),
                          rs.value(2, i).convert<int64_t>()});
  }
  return out;
}

MessagePtr SqliteStore::message_from(RecordSet& rs, size_t i) const {
  auto m = std::make_shared<Message>();
  m->seq = rs.value(0, i).convert<int64_t>();
  m->id = rs.value(1, i).convert<std::string>();
  m->source = rs.value(2, i).convert<std::string>();
  m->type = rs.value(3, i).convert<std::string>();
  m->correlation = rs.value(4, i).convert<std::string>();
  m->idempotency = rs.value(5, i).convert<std::string>();
  m->headers = headers_from(rs.value(6, i).convert<std::string>());
  m->body = open(body_aad(m->id), rs.value(7, i).convert<std::string>(), true, &m->unreadable);
  m->received_at = rs.value(8, i).convert<int64_t>();
  return m;
}

Delivery SqliteStore::delivery_from(RecordSet& rs, size_t i) {
  Delivery d;
  d.id = rs.value(0, i).convert<int64_t>();
  d.message_seq = rs.value(1, i).convert<int64_t>();
  d.destination = rs.value(2, i).convert<std::string>();
  d.route = rs.value(3, i).convert<std::string>();
  d.mapping = rs.value(4, i).convert<std::string>();
  d.mapping_version = rs.value(5, i).convert<int64_t>();
  d.state =
      delivery_state_from(rs.value(6, i).convert<std::string>()).value_or(DeliveryState::Pending);
  d.attempts = rs.value(7, i).convert<int>();
  d.next_attempt_at = rs.value(8, i).convert<int64_t>();
  d.not_before = rs.value(9, i).convert<int64_t>();
  d.updated_at = rs.value(10, i).convert<int64_t>();
  d.last_outcome = rs.value(11, i).convert<std::string>();
  d.last_class = rs.value(12, i).convert<std::string>();
  d.last_code = rs.value(13, i).convert<int>();
  d.last_text = rs.value(14, i).convert<std::string>();
  d.external_ref = rs.value(15, i).convert<std::string>();
  d.flags = flags_from(rs.value(16, i).convert<std::string>());
  return d;
}

MessagePtr SqliteStore::message_by_seq(int64_t seq) {
  Session s = readers_->get();
  Statement st(s);
  st << kMessageBySeq, use(seq), now;
  RecordSet rs(st);
  if (rs.rowCount() == 0) return nullptr;
  return message_from(rs, 0);
}

std::vector<Delivery> SqliteStore::deliveries_of(Session& s, int64_t seq, bool with_history) {
  Statement st(s);
  st << kDeliveriesOfMessage, use(seq), now;
  RecordSet rs(st);
  std::vector<Delivery> out;
  for (size_t i = 0; i < rs.rowCount(); ++i) {
    out.push_back(delivery_from(rs, i));
    if (!rs.isNull(17, i)) {
      out.back().payload =
          open(payload_aad(out.back().id), rs.value(17, i).convert<std::string>(), true);
    }
  }
  if (with_history) {
    for (auto& d : out) {
      Statement at(s);
      int64_t did = d.id;
      at << kAttemptsOfDelivery, use(did), now;
      RecordSet ar(at);
      for (size_t i = 0; i < ar.rowCount(); ++i) {
        Attempt a;
        a.at = ar.value(0, i).convert<int64_t>();
        a.duration_ms = ar.value(1, i).convert<int64_t>();
        a.outcome = ar.value(2, i).convert<std::string>();
        a.error_class = ar.value(3, i).convert<std::string>();
        a.code = ar.value(4, i).convert<int>();
        a.text = ar.value(5, i).convert<std::string>();
        a.excerpt = open(excerpt_aad(d.id, a.at), ar.value(6, i).convert<std::string>(), false);
        d.history.push_back(std::move(a));
      }
    }
  }
  return out;
}

std::optional<MessageRecord> SqliteStore::message(const std::string& id, bool with_history) {
  Session s = readers_->get();
  Statement st(s);
  std::string key = id;
  st << kMessageById, use(key), now;
  RecordSet rs(st);
  if (rs.rowCount() == 0) return std::nullopt;
  MessageRecord rec;
  rec.message = message_from(rs, 0);
  rec.deliveries = deliveries_of(s, rec.message->seq, with_history);
  for (auto& d : rec.deliveries) d.message_id = rec.message->id;
  return rec;
}

void SqliteStore::write_checkpoint(const SourceCheckpoint& c, Millis at) {
  std::string source = c.source, value = c.value;
  *write_ << "INSERT INTO source_checkpoints(source, value, updated_at) VALUES(?, ?, ?) "
             "ON CONFLICT(source) DO UPDATE SET value = excluded.value, "
             "updated_at = excluded.updated_at",
      use(source), use(value), use(at), now;
  for (const auto& r : c.rejects) {
    std::string position = r.position, error = r.error, detail = r.detail;
    int status = r.status;
    *write_ << "INSERT INTO source_rejects(source, position, status, error, detail, at) "
               "VALUES(?, ?, ?, ?, ?, ?)",
        use(source), use(position), use(status), use(error), use(detail), use(at), now;
  }
}

std::optional<std::string> SqliteStore::checkpoint(const std::string& source) {
  try {
    Session s = readers_->get();
    std::string key = source;
    std::vector<std::string> values;
    s << "SELECT value FROM source_checkpoints WHERE source = ?", use(key), into(values), now;
    return values.empty() ? std::string() : values.front();
  } catch (const std::exception& e) {
    log_error("store", std::string("cannot read the checkpoint of a polling source: ") + e.what());
    return std::nullopt;
  }
}

std::vector<StoredReject> SqliteStore::rejects(const std::string& source, int64_t before_id,
                                               int limit) {
  Session s = readers_->get();
  Statement st(s);
  std::string src = source;
  int64_t before = before_id > 0 ? before_id : std::numeric_limits<int64_t>::max();
  int64_t lim = std::clamp(limit, 1, 500);
  // The source filter only when given: `(? = '' OR source = ?)` would walk every reject; with
  // `source = ?` it seeks source_rejects_source(source, id).
  st << "SELECT id, source, position, status, error, detail, at FROM source_rejects WHERE id < ?",
      use(before);
  if (!src.empty()) st << " AND source = ?", use(src);
  st << " ORDER BY id DESC LIMIT ?", use(lim), now;
  RecordSet rs(st);
  std::vector<StoredReject> out;
  for (size_t i = 0; i < rs.rowCount(); ++i) {
    StoredReject r;
    r.id = rs.value(0, i).convert<int64_t>();
    r.source = rs.value(1, i).convert<std::string>();
    r.reject.position = rs.value(2, i).convert<std::string>();
    r.reject.status = rs.value(3, i).convert<int>();
    r.reject.error = rs.value(4, i).convert<std::string>();
    r.reject.detail = rs.value(5, i).convert<std::string>();
    r.at = rs.value(6, i).convert<int64_t>();
    out.push_back(std::move(r));
  }
  return out;
}

std::optional<Delivery> SqliteStore::delivery(int64_t id) {
  Session s = readers_->get();
  Statement st(s);
  st << kDeliveryById, use(id), now;
  RecordSet rs(st);
  if (rs.rowCount() == 0) return std::nullopt;
  Delivery d = delivery_from(rs, 0);
  if (!rs.isNull(17, 0)) {
    d.payload = open(payload_aad(d.id), rs.value(17, 0).convert<std::string>(), true);
  }
  d.message_id = rs.value(18, 0).convert<std::string>();
  return d;
}

MessagePage SqliteStore::list(const MessageFilter& f) {
  Session s = readers_->get();
  std::string sql = std::string("SELECT ") + kMessageColumns + " FROM messages m WHERE 1=1";
  std::vector<std::string> text_args;
  std::vector<int64_t> int_args;
  // Values are bound, never spliced into the SQL text.
  Statement st(s);
  std::string source = f.source, correlation = f.correlation, type = f.type,
              destination = f.destination, state = f.state;
  int64_t from = f.from, to = f.to, before = f.before_seq;
  int64_t limit = std::clamp(f.limit, 1, 500) + 1;
  if (!source.empty()) sql += " AND m.source = ?";
  if (!correlation.empty()) sql += " AND m.correlation = ?";
  if (!type.empty()) sql += " AND m.type = ?";
  if (from) sql += " AND m.received_at >= ?";
  if (to) sql += " AND m.received_at < ?";
  if (before) sql += " AND m.seq < ?";
  if (f.flagged) {
    sql +=
        " AND EXISTS (SELECT 1 FROM deliveries df WHERE df.message_seq = m.seq AND "
        "df.flags <> '')";
  }
  if (state == "unrouted") {
    sql += " AND m.routed = 0";
  } else if (!state.empty() || !destination.empty()) {
    sql += " AND EXISTS (SELECT 1 FROM deliveries d WHERE d.message_seq = m.seq";
    if (!state.empty()) sql += " AND d.state = ?";
    if (!destination.empty()) sql += " AND d.destination = ?";
    sql += ")";
  }
  sql += " ORDER BY m.seq DESC LIMIT ?";
  st << sql;
  if (!source.empty()) st, use(source);
  if (!correlation.empty()) st, use(correlation);
  if (!type.empty()) st, use(type);
  if (from) st, use(from);
  if (to) st, use(to);
  if (before) st, use(before);
  if (state != "unrouted" && (!state.empty() || !destination.empty())) {
    if (!state.empty()) st, use(state);
    if (!destination.empty()) st, use(destination);
  }
  st, use(limit);
  st.execute();
  RecordSet rs(st);
  MessagePage page;
  size_t n = rs.rowCount();
  size_t keep = std::min(n, static_cast<size_t>(limit - 1));
  for (size_t i = 0; i < keep; ++i) {
    MessageRecord rec;
    rec.message = message_from(rs, i);
    rec.deliveries = deliveries_of(s, rec.message->seq, false);
    for (auto& d : rec.deliveries) d.message_id = rec.message->id;
    page.items.push_back(std::move(rec));
  }
  if (n > keep && keep > 0) page.next_cursor = page.items.back().message->seq;
  return page;
}

}  // namespace

std::vector<HotStatement> sqlite_hot_statements() {
  // Bound values are written as literals of the right type; a key of '' would let the planner
  // prove things a bound parameter does not, so none is ''.
  std::vector<HotStatement> out = {
      {"insert message", multi_row_insert_sql(kInsertMessages, kMessageInsertColumns, 1)},
      {"insert messages",
       multi_row_insert_sql(kInsertMessages, kMessageInsertColumns, MultiRowInsert::kSizes[0])},
      {"insert delivery", multi_row_insert_sql(kInsertDeliveries, kDeliveryInsertColumns, 1)},
      {"insert deliveries",
       multi_row_insert_sql(kInsertDeliveries, kDeliveryInsertColumns, MultiRowInsert::kSizes[0])},
      {"insert attempt", multi_row_insert_sql(kInsertAttempts, kAttemptInsertColumns, 1)},
      {"insert attempts",
       multi_row_insert_sql(kInsertAttempts, kAttemptInsertColumns, MultiRowInsert::kSizes[0])},
      {"update delivery", kUpdateDelivery},
      {"insert idempotency key",
       multi_row_insert_sql(kInsertIdempotency, kIdempotencyInsertColumns, 1)},
      {"insert idempotency keys",
       multi_row_insert_sql(kInsertIdempotency, kIdempotencyInsertColumns,
                            MultiRowInsert::kSizes[0])},
      {"find idempotency key", kFindIdempotency},
      {"renew idempotency key", kRenewIdempotency},
      {"purge idempotency keys", kPurgeIdempotency},
      {"delivery state", kSelectState},
      {"load active deliveries", kLoadActive},
      {"a destination's backlog page", kLoadActivePage},
      {"message by seq", kMessageBySeq},
      {"message by id", kMessageById},
      {"deliveries of a message", kDeliveriesOfMessage},
      {"attempts of a delivery", kAttemptsOfDelivery},
      {"delivery by id", kDeliveryById},
      {"erasure: messages of a key", kEraseSelect},
      {"erasure: active deliveries of a key", kEraseActive},
      {"erasure: message", kEraseMessage},
      {"erasure: deliveries of a message", kEraseDeliveriesSelect},
      {"erasure: delivery", kEraseDelivery},
      {"erasure: attempts of a message", kEraseAttemptsSelect},
      {"erasure: attempt", kEraseAttempt},
      {"rekey: messages of a range", kRekeySelect[0]},
      {"rekey: deliveries of a range", kRekeySelect[1]},
      {"rekey: attempts of a range", kRekeySelect[2]},
      {"rekey: message", kRekeyUpdate[0]},
      {"rekey: delivery", kRekeyUpdate[1]},
      {"rekey: attempt", kRekeyUpdate[2]},
  };
  for (auto& st : sqlite_xref_hot_statements()) out.push_back(std::move(st));
  for (auto& st : SqliteRetention::statements()) out.push_back(std::move(st));
  return out;
}

int sqlite_schema_version() {
  return migrations().back().version;
}

std::vector<std::pair<int, std::string>> sqlite_schema_migrations() {
  std::vector<std::pair<int, std::string>> out;
  for (const auto& m : migrations()) out.emplace_back(m.version, m.description);
  return out;
}

std::string erasure_tombstone(const ErasureRequest& request) {
  nlohmann::json t = {{"effacé", true},
                      {"le", format_rfc3339(request.at)},
                      {"par", request.by},
                      {"motif", request.reason}};
  // Sorted after "effacé" (nlohmann orders keys): the tombstone still starts with it.
  if (request.retention) t["type"] = "purge";
  return t.dump();
}

std::string erased_label(const nlohmann::json& tombstone) {
  return tombstone.is_object() && tombstone.value("type", "") == "purge"
             ? "purgé (durée de conservation)"
             : "effacé (demande d'effacement)";
}

nlohmann::json erased_tombstone(const std::string& payload) {
  if (payload.rfind("{\"effac", 0) != 0) return nullptr;  // cheap test first
  auto j = nlohmann::json::parse(payload, nullptr, false);
  if (!j.is_object()) return nullptr;
  auto it = j.find("effacé");
  if (it == j.end() || !it->is_boolean() || !it->get<bool>()) return nullptr;
  return j;
}

nlohmann::json erased_view(const std::string& payload) {
  nlohmann::json t = erased_tombstone(payload);
  if (!t.is_null()) t["label"] = erased_label(t);
  return t;
}

std::unique_ptr<Store> open_sqlite_store(const StoreOptions& options) {
  return std::make_unique<SqliteStore>(options);
}

}  // namespace relais

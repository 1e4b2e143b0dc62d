// PgStore: the store of messages, deliveries and attempts (core/store.h) on PostgreSQL, through
// libpq (store/postgresql/pg_connection.h). Same contract as the SQLite store: one writer thread
// group-commits accepts, outcomes and the batches of erasures, rekeys and purges (one transaction
// per group, multi-row inserts through unnest), a completion thread answers the callers after the
// commit; readers take pooled connections.
//
// Several nodes may write the same database: ids come from sequences (one nextval call per group
// for all its messages, one for its deliveries), never from counters in memory; an idempotency key
// is claimed with INSERT … ON CONFLICT on its primary key, so two nodes accepting the same key at
// once give one Created and one Duplicate (the second waits for the first's commit). A lost
// server: the group fails (accepts answered Failed, outcomes kept and committed again later),
// writable() is false, and the writer reconnects with back-off.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <variant>

#include "core/log.h"
#include "store/group_commit.h"
#include "store/postgresql/pg_backend.h"
#include "store/postgresql/pg_connection.h"
#include "store/postgresql/pg_stores.h"
#include "store/stored_values.h"

namespace relais {
namespace {

using pg::ArrayText;
using pg::Params;
using pg::Result;

const std::vector<pg::Migration>& migrations() {
  static const std::vector<pg::Migration> list = {
      {1,
       "messages, deliveries, attempts, idempotency keys, polling checkpoints and rejects",
       {
           // Ids from sequences: every node draws from the same ones.
           "CREATE SEQUENCE messages_seq",
           "CREATE SEQUENCE deliveries_id_seq",
           "CREATE TABLE messages (seq bigint PRIMARY KEY, id text NOT NULL UNIQUE, "
           "source text NOT NULL, type text NOT NULL, correlation text NOT NULL, "
           "idempotency text NOT NULL, headers text NOT NULL, body text NOT NULL, "
           "received_at bigint NOT NULL, routed integer NOT NULL, "
           "erased_at bigint NOT NULL DEFAULT 0)",
           "CREATE INDEX messages_correlation ON messages(correlation, seq)",
           "CREATE INDEX messages_received ON messages(received_at, seq)",
           // The retention purge walks these; a purged or erased message leaves the index.
           "CREATE INDEX messages_unpurged ON messages(received_at, seq) WHERE erased_at = 0",
           "CREATE TABLE deliveries (id bigint PRIMARY KEY, message_seq bigint NOT NULL "
           "REFERENCES messages(seq), destination text NOT NULL, route text NOT NULL, "
           "mapping text NOT NULL, mapping_version bigint NOT NULL DEFAULT 0, "
           "state text NOT NULL, attempts integer NOT NULL DEFAULT 0, "
           "next_attempt_at bigint NOT NULL DEFAULT 0, not_before bigint NOT NULL DEFAULT 0, "
           "updated_at bigint NOT NULL, last_outcome text NOT NULL DEFAULT '', "
           "last_class text NOT NULL DEFAULT '', last_code integer NOT NULL DEFAULT 0, "
           "last_text text NOT NULL DEFAULT '', external_ref text NOT NULL DEFAULT '', "
           "payload text, flags text NOT NULL DEFAULT '')",
           "CREATE INDEX deliveries_message ON deliveries(message_seq)",
           "CREATE INDEX deliveries_active ON deliveries(id) WHERE state IN ('pending', "
           "'retrying')",
           "CREATE INDEX deliveries_destination_state ON deliveries(destination, state, "
           "updated_at)",
           "CREATE INDEX deliveries_flagged ON deliveries(message_seq) WHERE flags <> ''",
           "CREATE TABLE attempts (id bigserial PRIMARY KEY, delivery_id bigint NOT NULL, "
           "at bigint NOT NULL, duration_ms bigint NOT NULL, outcome text NOT NULL, "
           "class text NOT NULL, code integer NOT NULL, text text NOT NULL, "
           "excerpt text NOT NULL)",
           "CREATE INDEX attempts_delivery ON attempts(delivery_id, id)",
           // The unique index the claims of keys go through (ON CONFLICT), purged by expiry.
           "CREATE TABLE idempotency_keys (source text NOT NULL, key text NOT NULL, "
           "message_id text NOT NULL, digest text NOT NULL, expires_at bigint NOT NULL, "
           "PRIMARY KEY(source, key))",
           "CREATE INDEX idempotency_keys_expiry ON idempotency_keys(expires_at)",
           // The row the writer rewrites to find out whether commits succeed again.
           "CREATE TABLE store_probe (id integer PRIMARY KEY, at bigint NOT NULL)",
           "INSERT INTO store_probe(id, at) VALUES(1, 0)",
           "CREATE TABLE source_checkpoints (source text PRIMARY KEY, value text NOT NULL, "
           "updated_at bigint NOT NULL)",
           "CREATE TABLE source_rejects (id bigserial PRIMARY KEY, source text NOT NULL, "
           "position text NOT NULL, status integer NOT NULL, error text NOT NULL, "
           "detail text NOT NULL, at bigint NOT NULL)",
           "CREATE INDEX source_rejects_source ON source_rejects(source, id)",
       }},
      {2,
       "cross-references to external systems",
       {
           "CREATE TABLE xrefs (destination text NOT NULL, key text NOT NULL, "
           "external_id text NOT NULL, version text NOT NULL, message_id text NOT NULL, "
           "updated_at bigint NOT NULL, PRIMARY KEY(destination, key))",
           "CREATE INDEX xrefs_updated ON xrefs(destination, updated_at, key)",
       }},
      {3,
       "the feed of the deliveries for several nodes (the transaction of each delivery)",
       {
           // Rows written before this migration keep NULL: a node reads them when it gains
           // their partition (load_active_upto), never through the feed.
           "ALTER TABLE deliveries ADD COLUMN tx xid8",
           "ALTER TABLE deliveries ALTER COLUMN tx SET DEFAULT pg_current_xact_id()",
           "CREATE INDEX deliveries_feed ON deliveries(tx, id)",
       }},
      {4,
       "each destination's backlog read back in id order",
       {
           // routing/dispatcher.h keeps at most `queue_in_memory` deliveries of a destination in
           // memory; the rest is read back page by page (load_active_page) through this index.
           "CREATE INDEX deliveries_queue ON deliveries(destination, id) "
           "WHERE state IN ('pending', 'retrying')",
       }},
  };
  // The other stores' tables (store/postgresql/pg_tables.cpp), numbered from 101, after these.
  static const std::vector<pg::Migration> all = [] {
    std::vector<pg::Migration> v = list;
    for (const auto& m : postgresql_other_store_migrations()) v.push_back(m);
    return v;
  }();
  return all;
}

// --- statements --------------------------------------------------------------------------------

// The accept of a group in one statement. $1-$11: the messages (those whose key is first in the
// group), $12-$17: their deliveries (by the message's ord), $18: the keys' retention. Keys are
// claimed in (source, key) order, so that two nodes lock them in the same order; a new key is
// inserted, an expired one renewed, a live one left (its message is then not inserted). The
// seqs and delivery ids are drawn from the sequences in the order given. Answers ('m', seq, id)
// per message inserted and ('d', id, seq, destination, route, mapping) per delivery.
constexpr const char* kAccept =
    "WITH input AS (SELECT * FROM unnest($1::integer[], $2::text[], $3::text[], $4::text[], "
    "$5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::integer[], $11::text[]) "
    "AS i(ord, id, source, type, correlation, idempotency, headers, body, received_at, routed, "
    "digest)), "
    "claimed AS (INSERT INTO idempotency_keys AS k (source, key, message_id, digest, expires_at) "
    "SELECT source, idempotency, id, digest, received_at + $18::bigint FROM input WHERE "
    "idempotency <> '' ORDER BY source, idempotency "
    "ON CONFLICT (source, key) DO UPDATE SET message_id = excluded.message_id, "
    "digest = excluded.digest, expires_at = excluded.expires_at "
    "WHERE k.expires_at <= excluded.expires_at - $18::bigint RETURNING k.message_id), "
    "fresh AS (INSERT INTO messages(seq, id, source, type, correlation, idempotency, headers, "
    "body, received_at, routed) SELECT nextval('messages_seq'), id, source, type, correlation, "
    "idempotency, headers, body, received_at, routed FROM (SELECT * FROM input WHERE "
    "idempotency = '' OR id IN (SELECT message_id FROM claimed) ORDER BY ord) AS i "
    "RETURNING seq, id), "
    "dels AS (INSERT INTO deliveries(id, message_seq, destination, route, mapping, state, "
    "not_before, updated_at) SELECT nextval('deliveries_id_seq'), seq, destination, route, "
    "mapping, 'pending', not_before, updated_at FROM (SELECT f.seq, d.destination, d.route, "
    "d.mapping, d.not_before, d.updated_at FROM unnest($12::integer[], $13::text[], "
    "$14::text[], $15::text[], $16::bigint[], $17::bigint[]) WITH ORDINALITY AS d(ord, "
    "destination, route, mapping, not_before, updated_at, n) JOIN input i ON i.ord = d.ord "
    "JOIN fresh f ON f.id = i.id ORDER BY d.n) AS x "
    "RETURNING id, message_seq, destination, route, mapping) "
    "SELECT 'm', seq, id, '', '', '' FROM fresh UNION ALL "
    "SELECT 'd', id, message_seq::text, destination, route, mapping FROM dels";
constexpr const char* kFindKeys =
    "SELECT k.source, k.key, k.message_id, k.digest FROM unnest($1::text[], $2::text[]) AS "
    "u(source, key) JOIN idempotency_keys k ON k.source = u.source AND k.key = u.key";
constexpr const char* kPurgeKeys =
    "DELETE FROM idempotency_keys WHERE (source, key) IN (SELECT source, key FROM "
    "idempotency_keys WHERE expires_at <= $1 LIMIT 5000)";
constexpr const char* kInsertAttempt =
    "INSERT INTO attempts(delivery_id, at, duration_ms, outcome, class, code, text, excerpt) "
    "VALUES($1, $2, $3, $4, $5, $6, $7, $8)";
constexpr const char* kUpdateDelivery =
    "UPDATE deliveries SET state = $1, attempts = $2, next_attempt_at = $3, updated_at = $4, "
    "last_outcome = CASE WHEN $5::boolean THEN $6::text ELSE last_outcome END, "
    "last_class = CASE WHEN $5::boolean THEN $7::text ELSE last_class END, "
    "last_code = CASE WHEN $5::boolean THEN $8::integer ELSE last_code END, "
    "last_text = CASE WHEN $9::boolean THEN $10::text ELSE last_text END, "
    "external_ref = CASE WHEN $11::text <> '' THEN $11::text ELSE external_ref END, "
    "mapping = CASE WHEN $12::text <> '' THEN $12::text ELSE mapping END, "
    "mapping_version = CASE WHEN $13::bigint <> 0 THEN $13::bigint ELSE mapping_version END, "
    "payload = CASE WHEN $14::boolean THEN payload ELSE $15::text END, "
    "flags = CASE WHEN $16::boolean THEN flags ELSE $17::text END, "
    // A person's action: the row comes again through the feed of the node that owns its key.
    "tx = pg_current_xact_id() "
    "WHERE id = $18";
// The multi-row form of the two above, for the recorded outcomes of a group (distinct ids), in
// one statement: $1-$18 the updates, $19-$26 the attempts (of the deliveries updated only).
constexpr const char* kRecordOutcomes =
    "WITH updated AS (UPDATE deliveries d SET state = u.state, attempts = u.attempts, "
    "next_attempt_at = u.next, updated_at = u.now, "
    "last_outcome = CASE WHEN u.has_attempt THEN u.outcome ELSE d.last_outcome END, "
    "last_class = CASE WHEN u.has_attempt THEN u.class ELSE d.last_class END, "
    "last_code = CASE WHEN u.has_attempt THEN u.code ELSE d.last_code END, "
    "last_text = CASE WHEN u.has_text THEN u.text ELSE d.last_text END, "
    "external_ref = CASE WHEN u.ref <> '' THEN u.ref ELSE d.external_ref END, "
    "mapping = CASE WHEN u.mapping <> '' THEN u.mapping ELSE d.mapping END, "
    "mapping_version = CASE WHEN u.mapping_version <> 0 THEN u.mapping_version ELSE "
    "d.mapping_version END, "
    "payload = CASE WHEN u.keep_payload THEN d.payload ELSE u.payload END, "
    "flags = CASE WHEN u.keep_flags THEN d.flags ELSE u.flags END "
    "FROM unnest($1::bigint[], $2::text[], $3::integer[], $4::bigint[], $5::bigint[], "
    "$6::boolean[], $7::text[], $8::text[], $9::integer[], $10::boolean[], $11::text[], "
    "$12::text[], $13::text[], $14::bigint[], $15::boolean[], $16::text[], $17::boolean[], "
    "$18::text[]) AS u(id, state, attempts, next, now, has_attempt, outcome, class, code, "
    "has_text, text, ref, mapping, mapping_version, keep_payload, payload, keep_flags, flags) "
    "WHERE d.id = u.id RETURNING d.id) "
    "INSERT INTO attempts(delivery_id, at, duration_ms, outcome, class, code, text, excerpt) "
    "SELECT a.* FROM unnest($19::bigint[], $20::bigint[], $21::bigint[], $22::text[], "
    "$23::text[], $24::integer[], $25::text[], $26::text[]) AS a(delivery_id, at, duration_ms, "
    "outcome, class, code, text, excerpt) WHERE a.delivery_id IN (SELECT id FROM updated)";
constexpr const char* kSelectStateForUpdate =
    "SELECT state FROM deliveries WHERE id = $1 FOR UPDATE";
constexpr const char* kProbe = "UPDATE store_probe SET at = $1 WHERE id = 1";
constexpr const char* kWriteCheckpoint =
    "INSERT INTO source_checkpoints(source, value, updated_at) VALUES($1, $2, $3) "
    "ON CONFLICT(source) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";
constexpr const char* kInsertReject =
    "INSERT INTO source_rejects(source, position, status, error, detail, at) "
    "VALUES($1, $2, $3, $4, $5, $6)";
// Erasure (through messages_correlation).
constexpr const char* kEraseSelect =
    "SELECT seq, id FROM messages WHERE correlation = $1 AND seq > $2 AND erased_at = 0 ORDER BY "
    "seq LIMIT $3";
constexpr const char* kEraseActive =
    "SELECT d.id FROM messages m JOIN deliveries d ON d.message_seq = m.seq WHERE "
    "m.correlation = $1 AND d.state IN ('pending', 'retrying') ORDER BY d.id";
constexpr const char* kEraseMessage =
    "UPDATE messages SET body = $1, erased_at = $2 WHERE seq = $3";
constexpr const char* kEraseDeliveriesSelect = "SELECT id FROM deliveries WHERE message_seq = $1";
constexpr const char* kEraseDelivery =
    "UPDATE deliveries SET payload = CASE WHEN payload IS NULL THEN NULL ELSE $1 END, "
    "last_text = CASE WHEN last_text = '' THEN '' ELSE $2 END WHERE id = $3";
constexpr const char* kEraseAttemptsSelect =
    "SELECT a.id, a.delivery_id, a.at FROM deliveries d JOIN attempts a ON a.delivery_id = d.id "
    "WHERE d.message_seq = $1";
constexpr const char* kEraseAttempt =
    "UPDATE attempts SET excerpt = CASE WHEN excerpt = '' THEN '' ELSE $1 END, "
    "text = CASE WHEN text = '' THEN '' ELSE $2 END WHERE id = $3";
// Rekey, per table (as SQLite's: a range of the primary key, the values not on the active key).
constexpr const char* kRekeySelect[3] = {
    "SELECT seq, id, 0, body FROM messages WHERE seq > $1 AND seq <= $2 AND body <> '' AND "
    "substr(body, 1, $3) <> $4",
    "SELECT id, id, 0, payload FROM deliveries WHERE id > $1 AND id <= $2 AND payload IS NOT "
    "NULL AND payload <> '' AND substr(payload, 1, $3) <> $4",
    "SELECT id, delivery_id, at, excerpt FROM attempts WHERE id > $1 AND id <= $2 AND excerpt "
    "<> '' AND substr(excerpt, 1, $3) <> $4",
};
constexpr const char* kRekeyUpdate[3] = {
    "UPDATE messages SET body = $1 WHERE seq = $2",
    "UPDATE deliveries SET payload = $1 WHERE id = $2",
    "UPDATE attempts SET excerpt = $1 WHERE id = $2",
};
constexpr const char* kRekeyCount[3] = {
    "SELECT COUNT(*) FROM messages WHERE body <> '' AND substr(body, 1, $1) <> $2",
    "SELECT COUNT(*) FROM deliveries WHERE payload IS NOT NULL AND payload <> '' AND "
    "substr(payload, 1, $1) <> $2",
    "SELECT COUNT(*) FROM attempts WHERE excerpt <> '' AND substr(excerpt, 1, $1) <> $2",
};
constexpr const char* kRekeyMax[3] = {
    "SELECT MAX(seq) FROM messages",
    "SELECT MAX(id) FROM deliveries",
    "SELECT MAX(id) FROM attempts",
};
// Retention (as store/sqlite/sqlite_retention.cpp).
constexpr const char* kPurgeCandidates =
    "SELECT seq, id, routed, received_at FROM messages WHERE erased_at = 0 AND received_at <= $1 "
    "AND (received_at, seq) > ($2, $3) ORDER BY received_at, seq LIMIT $4";
constexpr const char* kPurgeAged =
    "SELECT seq, id, routed, received_at FROM messages WHERE received_at <= $1 AND "
    "(received_at, seq) > ($2, $3) ORDER BY received_at, seq LIMIT $4";
constexpr const char* kPurgeDeliveries =
    "SELECT state, route, updated_at FROM deliveries WHERE message_seq = $1";
constexpr const char* kDeleteAttempts =
    "DELETE FROM attempts a USING deliveries d WHERE a.delivery_id = d.id AND d.message_seq = $1";
constexpr const char* kDeleteDeliveries = "DELETE FROM deliveries WHERE message_seq = $1";
constexpr const char* kDeleteMessage = "DELETE FROM messages WHERE seq = $1";
// Reads.
constexpr const char* kLoadActive =
    "SELECT d.id, d.destination, m.correlation, d.mapping, d.attempts, d.next_attempt_at, "
    "d.not_before, m.received_at, d.message_seq, m.source, d.route FROM deliveries d JOIN "
    "messages m ON m.seq = d.message_seq WHERE d.state IN ('pending', 'retrying') ORDER BY d.id";
// The feed (routing/cluster_feed.h): xid8 travels as its text (a bigint).
constexpr const char* kFeedHorizon = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint";
constexpr const char* kFeed =
    "SELECT d.id, d.destination, m.correlation, d.mapping, d.attempts, d.next_attempt_at, "
    "d.not_before, m.received_at, d.message_seq, m.source, d.route, d.state, "
    "d.tx::text::bigint FROM deliveries d JOIN messages m ON m.seq = d.message_seq WHERE "
    "(d.tx, d.id) > ($1::text::xid8, $2::bigint) AND "
    "d.tx < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY d.tx, d.id LIMIT $3";
// The messages of a page of the feed, in one query (the owner sends them next).
constexpr const char* kMessagesBySeqs =
    "SELECT seq, id, source, type, correlation, idempotency, headers, body, received_at FROM "
    "messages WHERE seq = ANY($1::bigint[])";
constexpr const char* kLoadActiveUpto =
    "SELECT d.id, d.destination, m.correlation, d.mapping, d.attempts, d.next_attempt_at, "
    "d.not_before, m.received_at, d.message_seq, m.source, d.route FROM deliveries d JOIN "
    "messages m ON m.seq = d.message_seq WHERE d.state IN ('pending', 'retrying') AND "
    "(d.tx IS NULL OR (d.tx, d.id) <= ($1::text::xid8, $2::bigint)) ORDER BY d.id";
// The message's columns first (message_from), then the delivery's.
constexpr const char* kLoadActivePage =
    "SELECT m.seq, m.id, m.source, m.type, m.correlation, m.idempotency, m.headers, m.body, "
    "m.received_at, d.id, d.mapping, d.attempts, d.next_attempt_at, d.not_before, d.route "
    "FROM deliveries d JOIN messages m ON m.seq = d.message_seq WHERE d.destination = $1 AND "
    "d.state IN ('pending', 'retrying') AND d.id > $2 ORDER BY d.id LIMIT $3";
constexpr const char* kCountActive =
    "SELECT destination, COUNT(*) FROM deliveries WHERE state IN ('pending', 'retrying') "
    "GROUP BY destination";
constexpr const char* kLoadDeadHeads =
    "SELECT d.destination, m.correlation, MIN(d.id) FROM deliveries d JOIN messages m ON "
    "m.seq = d.message_seq WHERE d.state = 'dead' AND m.correlation <> '' "
    "GROUP BY d.destination, m.correlation";
constexpr const char* kMessageColumns =
    "seq, id, source, type, correlation, idempotency, headers, body, received_at";
constexpr const char* kMessageBySeq =
    "SELECT seq, id, source, type, correlation, idempotency, headers, body, received_at FROM "
    "messages WHERE seq = $1";
constexpr const char* kMessageById =
    "SELECT seq, id, source, type, correlation, idempotency, headers, body, received_at FROM "
    "messages WHERE id = $1";
constexpr const char* kDeliveriesOfMessage =
    "SELECT id, message_seq, destination, route, mapping, mapping_version, state, attempts, "
    "next_attempt_at, not_before, updated_at, last_outcome, last_class, last_code, last_text, "
    "external_ref, flags, payload FROM deliveries WHERE message_seq = $1 ORDER BY id";
constexpr const char* kAttemptsOfDelivery =
    "SELECT at, duration_ms, outcome, class, code, text, excerpt FROM attempts WHERE "
    "delivery_id = $1 ORDER BY id";
constexpr const char* kDeliveryById =
    "SELECT d.id, d.message_seq, d.destination, d.route, d.mapping, d.mapping_version, "
    "d.state, d.attempts, d.next_attempt_at, d.not_before, d.updated_at, d.last_outcome, "
    "d.last_class, d.last_code, d.last_text, d.external_ref, d.flags, d.payload, m.id FROM "
    "deliveries d JOIN messages m ON m.seq = d.message_seq WHERE d.id = $1";
constexpr const char* kCheckpoint = "SELECT value FROM source_checkpoints WHERE source = $1";

// --- jobs --------------------------------------------------------------------------------------

// A batch of work a long operation (erasure, rekey, purge) hands to the writer: it runs inside a
// group's transaction, on the writer's connection, and its result is answered after the commit
// (or replaced by the group's failure).
struct BatchResult {
  Status status;
  int64_t messages = 0, deliveries = 0, attempts = 0;
  int64_t done = 0, unreadable = 0;
  int64_t last_at = -1, last_seq = 0;
  bool more = false;
  std::vector<int64_t> active;
  std::vector<std::string> sample;
};
struct BatchJob {
  std::function<BatchResult(pg::Connection&)> work;
  std::promise<BatchResult>* done = nullptr;
};
using Job = std::variant<std::unique_ptr<AcceptJob>, UpdateJob, FlushJob, BatchJob>;

// The accepts of a group: each message's slot, and the first slot of each (source, key).
struct AcceptPlan {
  struct Slot {
    Incoming* in;
    const std::string* body;  // as stored (sealed or not)
    AcceptResult::Kind kind = AcceptResult::Kind::Created;
    std::string id;
    int leader = -1;  // an earlier slot of the group with the same key
  };
  std::vector<AcceptJob*> jobs;
  std::vector<Slot> slots;
  std::map<std::pair<std::string, std::string>, int> first;
  size_t step = 0;  // the index of the accept statement among the group's steps
};

struct Completion {
  std::vector<QueuedDelivery> fresh;
  std::vector<Job> jobs;
  std::vector<std::vector<AcceptResult>> results;  // per accept job (empty on failure)
  std::vector<Status> statuses;                    // per update job
  std::vector<BatchResult> batches;                // per batch job
  std::string failure;                             // "" = committed
};

// A read that failed; `lost`: the connection was (the server restarted or went away).
struct ReadFailure : std::runtime_error {
  ReadFailure(const std::string& what, bool lost) : std::runtime_error(what), lost(lost) {}
  bool lost;
};

// Throws the failure of a statement of the writer (the group rolls back).
struct GroupFailure : std::runtime_error {
  explicit GroupFailure(const Status& s) : std::runtime_error(s.detail) {}
};
void must(const Status& s) {
  if (!s.ok) throw GroupFailure(s);
}

// The PostgreSQL implementation. Thread-safe: one writer thread owns the writer's connection;
// reads take connections of the pool.
class PgStore final : public GroupCommitStore<PgStore, Job, Completion> {
 public:
  explicit PgStore(const StoreOptions& options);
  ~PgStore() override { close(); }

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
  Status feed_horizon(FeedPosition& out) override;
  Status feed(const FeedPosition& after, int limit, std::vector<FeedRow>& out) override;
  Status load_active_upto(const FeedPosition& upto, std::vector<QueuedDelivery>& out) override;
  std::vector<HeldKey> load_dead_heads() override;
  MessagePtr message_by_seq(int64_t seq) override;
  std::optional<MessageRecord> message(const std::string& id, bool with_history) override;
  std::optional<Delivery> delivery(int64_t id) override;
  MessagePage list(const MessageFilter& filter) override;
  bool healthy() override;
  void close() override;

 private:
  friend class GroupCommitStore<PgStore, Job, Completion>;
  bool run_batch(std::function<BatchResult(pg::Connection&)> work, BatchResult& out) {
    return run_job(BatchJob{std::move(work), nullptr}, out);
  }
  // The group commit's steps (store/group_commit.h).
  void write_group(std::vector<Job>& jobs);
  bool runs_alone(const Job&) const { return false; }
  void run_alone(Job&) {}
  void answer(Completion& c);
  void connect_writer();
  // A group's accepts: the statements (appended to `steps`), then, once they ran, the answers.
  void plan_accepts(AcceptPlan& plan, std::vector<pg::Step>& steps);
  void finish_accepts(AcceptPlan& plan, const Result& r, Completion& c);
  // Inside the group's transaction, after finish_accepts: each polled record refused for its
  // key (409) written as its source's reject at its position. Throws (the group fails) when an
  // answer could not be read, rather than commit a checkpoint past a record nobody answered.
  void write_conflict_rejects(const AcceptPlan& plan);
  // The parameters of kRecordOutcomes: recorded updates of distinct deliveries.
  Params outcome_params(const std::vector<const DeliveryUpdate*>& updates);
  Status apply_update(const DeliveryUpdate& u);
  BatchResult erase_batch(pg::Connection& w, const ErasureRequest& r, int64_t after_seq);
  TombstoneCounts write_tombstone(pg::Connection& w, int64_t seq, const std::string& id,
                                  const std::string& plain, const std::string& text, Millis at);
  BatchResult rekey_batch(pg::Connection& w, int table, int64_t from, int64_t to);
  BatchResult purge_batch(pg::Connection& w, bool payload, const RetentionPolicy& p,
                          const RetentionRun& run, int64_t after_at, int64_t after_seq);
  // VACUUM of the three tables, on a reader's connection (never the writer's: accepts go on).
  bool vacuum();
  std::string seal(const std::string& aad, const std::string& plain) const;
  std::vector<Delivery> deliveries_of(pg::Connection& c, int64_t seq, bool with_history);
  MessagePtr message_from(const Result& r, int row) const;
  Result read(const char* sql, const Params& params);
  template <typename F>
  auto reading(F fn) -> decltype(fn(std::declval<pg::Connection&>()));
  static void check_read(const Status& s, const pg::Failure& why);

  StoreOptions options_;
  std::string what_;  // "PostgreSQL store <uri without password>", for errors
  std::unique_ptr<pg::Pool> readers_;
  std::unique_ptr<pg::Connection> w_;  // the writer's (writer thread only; null when lost)

  Millis next_purge_ = 0;
  Millis latest_received_ = 0;
};

PgStore::PgStore(const StoreOptions& options)
    : GroupCommitStore(options.cipher.get(), options.max_batch),
      options_(options),
      what_("PostgreSQL store " + pg::masked_uri(options.uri)) {
  if (options_.uri.empty()) throw std::runtime_error("PostgreSQL store: no uri");
  readers_ = std::make_unique<pg::Pool>(options_.uri, 5, std::max(1, options_.read_pool),
                                        options_.password);
  // The readers' statements are planned with their parameters at every run: a generic plan
  // made while the tables were small (see connect_writer) would keep scanning them as they
  // grow — the feed of several nodes runs twenty times a second on each node.
  readers_->set_setup("SET plan_cache_mode = force_custom_plan");
  std::unique_ptr<pg::Connection> c;
  Status s = pg::Connection::open(options_.uri, 10, c, options_.password);
  if (!s.ok) throw std::runtime_error(what_ + ": " + s.detail);
  if (options_.read_only) {
    pg::check_schema(*c, postgresql_schema_version(), what_);
    refuse_writes();
    write_ok_ = false;
    return;
  }
  pg::migrate(*c, migrations(), what_);
  pg::warn_unsafe_settings(*c);
  connect_writer();
  start_threads();
}

// The writer's session: its transactions wait `busy_timeout_ms` at most for a lock another node
// holds (then the group fails and is retried), like SQLite's busy timeout.
// Sequential scans off: every statement of the writer has an index to seek
// (PgStoreQueryPlan checks each with this setting), but its prepared statements get a generic
// plan after five runs, made once with the tables' sizes of that moment. On a fresh database
// that moment is a few groups in: deliveries held a page or two, so the plan of the recorded
// outcomes (an UPDATE … FROM unnest) hash-joined a Seq Scan of deliveries, and kept it while the
// table grew — every group read every delivery (1,809 scans, 22.5 M rows read in 8 s of the core
// benchmark; most of the server's CPU). With the setting the generic plan is the seek whatever
// the size it was made at.
void PgStore::connect_writer() {
  if (w_ && w_->ok()) return;
  w_.reset();
  std::unique_ptr<pg::Connection> c;
  Status s = pg::Connection::open(options_.uri, 5, c, options_.password);
  if (!s.ok) throw GroupFailure(s);
  must(c->exec("SET enable_seqscan = off"));
  must(c->exec("SET lock_timeout = " + std::to_string(std::max(0, options_.busy_timeout_ms))));
  w_ = std::move(c);
}

void PgStore::answer(Completion& c) {
  size_t bi = 0;
  answer_common(c, [&](Job& job) {
    if (auto* b = std::get_if<BatchJob>(&job)) answer_batch(b->done, c.batches, bi, c.failure);
  });
}

void PgStore::write_group(std::vector<Job>& jobs) {
  Completion c;
  bool in_transaction = false;
  AcceptPlan plan;
  std::vector<Result> results;
  // A polled batch that says where each record came from: a record refused for its key (409)
  // is kept as the source's reject in this transaction, so the answers are read before the
  // commit (statement by statement).
  bool early = false;
  try {
    connect_writer();
    // The statements whose results are not needed before the commit: the probe, the accepts
    // (one statement for every message of the group), the recorded outcomes (one statement per
    // run of distinct deliveries: a second update of a delivery goes in the next run), the purge
    // of expired keys. Without an apply or a batch job, they go with BEGIN and COMMIT in one
    // round trip.
    std::vector<pg::Step> steps;
    if (!write_ok_) {
      // Recovering: write a row for sure, so that success means the server takes commits again.
      int64_t at = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
      steps.push_back(pg::Step{kProbe, Params().num(at)});
    }
    for (auto& job : jobs) {
      if (auto* a = std::get_if<std::unique_ptr<AcceptJob>>(&job)) plan.jobs.push_back(a->get());
    }
    if (!plan.jobs.empty()) plan_accepts(plan, steps);
    bool simple = true;
    for (auto* j : plan.jobs) {
      if (j->checkpoint && !j->checkpoint->positions.empty()) early = true;
    }
    if (early) simple = false;
    for (auto& job : jobs) {
      auto* u = std::get_if<UpdateJob>(&job);
      if (std::holds_alternative<BatchJob>(job) ||
          (u != nullptr && (u->done != nullptr || !u->update.expected.empty()))) {
        simple = false;
      }
    }
    std::vector<const DeliveryUpdate*> run;
    std::set<int64_t> in_run;
    // A run of recorded outcomes: a step (simple group) or a statement now.
    auto flush_run = [&] {
      if (run.empty()) return;
      if (simple) {
        steps.push_back(pg::Step{kRecordOutcomes, outcome_params(run)});
      } else {
        must(w_->run(kRecordOutcomes, outcome_params(run)));
      }
      run.clear();
      in_run.clear();
    };
    if (!simple) {
      // Statement by statement: an apply answers from what it reads; a batch job reads too.
      must(w_->exec("BEGIN"));
      in_transaction = true;
      for (const auto& st : steps) {
        Result r;
        must(w_->run(st.sql, st.params, r));
        results.push_back(std::move(r));
      }
      steps.clear();
    }
    for (auto& job : jobs) {
      if (auto* u = std::get_if<UpdateJob>(&job)) {
        if (u->done == nullptr && u->update.expected.empty()) {
          if (in_run.count(u->update.id)) flush_run();
          run.push_back(&u->update);
          in_run.insert(u->update.id);
          c.statuses.push_back(Status::success());  // a record is not answered
          continue;
        }
        flush_run();
        c.statuses.push_back(apply_update(u->update));
      } else if (auto* b = std::get_if<BatchJob>(&job)) {
        flush_run();
        c.batches.push_back(b->work(*w_));
      }
    }
    flush_run();
    Millis mono = monotonic_ms();
    if (mono >= next_purge_ && latest_received_ != 0) {
      // Expired idempotency keys, 5,000 at most (on the messages' clock: the hub's clock seam).
      next_purge_ = mono + options_.purge_every_ms;
      steps.push_back(pg::Step{kPurgeKeys, Params().num(latest_received_)});
    }
    if (simple) {
      in_transaction = true;
      std::vector<Result> out;
      must(w_->transaction(steps, out));
      for (auto& r : out) results.push_back(std::move(r));
    } else {
      for (const auto& st : steps) must(w_->run(st.sql, st.params));
      if (early) {
        finish_accepts(plan, results.at(plan.step), c);
        write_conflict_rejects(plan);
      }
      must(w_->exec("COMMIT"));
    }
    in_transaction = false;
    group_committed();
  } catch (const std::exception& e) {
    if (in_transaction && w_ && w_->ok()) w_->exec("ROLLBACK");
    c = Completion{{}, {}, {}, {}, {}, e.what()};
    group_failed(c.failure, jobs);
  }
  // Committed: the answers (nothing here fails the group any more).
  if (c.failure.empty() && !plan.jobs.empty() && !early) {
    finish_accepts(plan, results.at(plan.step), c);
  }
  c.jobs = std::move(jobs);
  complete_group(std::move(c));
}

void PgStore::plan_accepts(AcceptPlan& plan, std::vector<pg::Step>& steps) {
  using Slot = AcceptPlan::Slot;
  auto& slots = plan.slots;
  auto& first = plan.first;
  const auto& jobs = plan.jobs;
  for (auto* j : jobs) {
    for (size_t i = 0; i < j->batch.size(); ++i) {
      slots.push_back(
          Slot{&j->batch[i], j->sealed.empty() ? &j->batch[i].message->body : &j->sealed[i]});
    }
  }
  // Keys: the first slot of each (source, key) of the group claims it; the others follow it
  // (ON CONFLICT cannot touch one row twice in a statement).
  for (size_t i = 0; i < slots.size(); ++i) {
    const Message& m = *slots[i].in->message;
    latest_received_ = std::max(latest_received_, m.received_at);
    if (m.idempotency.empty()) continue;
    auto [it, inserted] = first.emplace(std::make_pair(m.source, m.idempotency), int(i));
    if (!inserted) slots[i].leader = it->second;
  }
  // One statement: the keys claimed, the messages whose key was won (or without a key) inserted
  // with their seq, their deliveries with their ids.
  ArrayText ord, id, source, type, corr, idem, headers, body, at, routed, digest;
  ArrayText d_ord, d_dest, d_route, d_mapping, d_not_before, d_updated;
  for (size_t i = 0; i < slots.size(); ++i) {
    if (slots[i].leader >= 0) continue;
    const Incoming& in = *slots[i].in;
    const Message& m = *in.message;
    ord.add(static_cast<int64_t>(i));
    id.add(m.id);
    source.add(m.source);
    type.add(m.type);
    corr.add(m.correlation);
    idem.add(m.idempotency);
    headers.add(m.headers.empty() ? std::string("{}") : headers_json(m.headers));
    body.add(*slots[i].body);
    at.add(m.received_at);
    routed.add(int64_t{in.deliveries.empty() ? 0 : 1});
    digest.add(in.body_digest);
    for (const auto& d : in.deliveries) {
      d_ord.add(static_cast<int64_t>(i));
      d_dest.add(d.destination);
      d_route.add(d.route);
      d_mapping.add(d.mapping);
      d_not_before.add(d.not_before);
      d_updated.add(m.received_at);
    }
  }
  plan.step = steps.size();
  steps.push_back(pg::Step{kAccept, Params()
                                        .text(ord.take())
                                        .text(id.take())
                                        .text(source.take())
                                        .text(type.take())
                                        .text(corr.take())
                                        .text(idem.take())
                                        .text(headers.take())
                                        .text(body.take())
                                        .text(at.take())
                                        .text(routed.take())
                                        .text(digest.take())
                                        .text(d_ord.take())
                                        .text(d_dest.take())
                                        .text(d_route.take())
                                        .text(d_mapping.take())
                                        .text(d_not_before.take())
                                        .text(d_updated.take())
                                        .num(options_.idempotency_retention_ms)});
  // A polled batch's checkpoint and rejects, in the same transaction.
  for (auto* j : jobs) {
    if (!j->checkpoint) continue;
    const SourceCheckpoint& cp = *j->checkpoint;
    steps.push_back(pg::Step{kWriteCheckpoint, Params().ref(cp.source).ref(cp.value).num(j->at)});
    for (const auto& r : cp.rejects) {
      steps.push_back(pg::Step{kInsertReject, Params()
                                                  .ref(cp.source)
                                                  .ref(r.position)
                                                  .num(r.status)
                                                  .ref(r.error)
                                                  .ref(r.detail)
                                                  .num(j->at)});
    }
  }
}

void PgStore::write_conflict_rejects(const AcceptPlan& plan) {
  size_t k = 0;
  for (const auto* j : plan.jobs) {
    for (size_t i = 0; i < j->batch.size(); ++i, ++k) {
      const AcceptPlan::Slot& slot = plan.slots[k];
      if (slot.kind == AcceptResult::Kind::Failed) {
        throw std::runtime_error("the answer to a polled record could not be read");
      }
      if (!j->checkpoint || i >= j->checkpoint->positions.size() ||
          slot.kind != AcceptResult::Kind::Conflict) {
        continue;
      }
      const SourceCheckpoint& cp = *j->checkpoint;
      SourceReject r = idempotency_conflict(cp.positions[i], slot.id);
      must(w_->run(kInsertReject, Params()
                                      .ref(cp.source)
                                      .ref(r.position)
                                      .num(r.status)
                                      .ref(r.error)
                                      .ref(r.detail)
                                      .num(j->at)));
    }
  }
}

void PgStore::finish_accepts(AcceptPlan& plan, const Result& r, Completion& c) {
  using Kind = AcceptResult::Kind;
  using Slot = AcceptPlan::Slot;
  auto& slots = plan.slots;
  std::map<std::string, int64_t> seq_of;        // message id -> seq
  std::map<int64_t, std::vector<int>> rows_of;  // seq -> its deliveries' rows, by id
  for (int row = 0; row < r.rows(); ++row) {
    if (r.text(row, 0) == "m") {
      seq_of[r.text(row, 2)] = r.int64(row, 1);
    } else {
      rows_of[std::stoll(r.text(row, 2))].push_back(row);
    }
  }
  // A key held by another message: a duplicate, or a conflict when the bodies differ ('' on
  // either side: not compared).
  auto against = [](Slot& s, const std::string& held_id, const std::string& held_digest) {
    const std::string& mine = s.in->body_digest;
    bool same = held_digest.empty() || mine.empty() || held_digest == mine;
    s.kind = same ? Kind::Duplicate : Kind::Conflict;
    s.id = held_id;
  };
  // The keys lost (held by a message already there, perhaps another node's committed a moment
  // ago): their holders, read after the commit by a statement of their own (a new snapshot).
  // If that read fails, only those messages are answered Failed (none of them was stored).
  std::map<std::pair<std::string, std::string>, std::pair<std::string, std::string>> held;
  std::string unknown;
  try {
    ArrayText l_src, l_key;
    bool lost = false;
    for (const auto& [k, i] : plan.first) {
      if (seq_of.count(slots[i].in->message->id)) continue;
      l_src.add(k.first);
      l_key.add(k.second);
      lost = true;
    }
    if (lost) {
      Result found;
      must(w_->run(kFindKeys, Params().text(l_src.take()).text(l_key.take()), found));
      for (int row = 0; row < found.rows(); ++row) {
        held[{found.text(row, 0), found.text(row, 1)}] = {found.text(row, 2), found.text(row, 3)};
      }
    }
  } catch (const std::exception& e) {
    unknown = e.what();
  }
  for (auto& s : slots) {
    const Message& m = *s.in->message;
    if (s.leader >= 0) {
      const Slot& l = slots[s.leader];
      if (l.kind == Kind::Created) {
        against(s, l.in->message->id, l.in->body_digest);
      } else if (!unknown.empty()) {
        s.kind = Kind::Failed;
      } else {
        const auto& h = held[{m.source, m.idempotency}];
        against(s, h.first, h.second);
      }
      continue;
    }
    auto seq = seq_of.find(m.id);
    if (seq == seq_of.end()) {
      auto h = held.find({m.source, m.idempotency});
      if (!unknown.empty() || m.idempotency.empty() || h == held.end()) {
        s.kind = Kind::Failed;  // not stored (a key vanished meanwhile, or the read failed)
        continue;
      }
      against(s, h->second.first, h->second.second);
      continue;
    }
    s.in->message->seq = seq->second;
    s.id = m.id;
    // The deliveries took their ids in the order given; each is still matched to its row by
    // what it is (destination, route, mapping), so that an id never goes to another delivery.
    std::vector<int>& rows = rows_of[seq->second];
    std::sort(rows.begin(), rows.end(),
              [&](int a, int b) { return r.int64(a, 1) < r.int64(b, 1); });
    std::vector<bool> used(rows.size(), false);
    for (const NewDelivery& d : s.in->deliveries) {
      int row = -1;
      for (size_t k = 0; k < rows.size() && row < 0; ++k) {
        if (!used[k] && r.text(rows[k], 3) == d.destination && r.text(rows[k], 4) == d.route &&
            r.text(rows[k], 5) == d.mapping) {
          used[k] = true;
          row = rows[k];
        }
      }
      if (row < 0) {  // cannot happen; the delivery is in the store all the same
        log_error("store", "a new delivery's id was not returned; it is queued at the next start");
        continue;
      }
      QueuedDelivery q;
      q.id = r.int64(row, 1);
      q.destination = d.destination;
      q.source = m.source;
      q.route = d.route;
      q.key = m.correlation;
      q.mapping = d.mapping;
      q.due = d.not_before;
      q.received_at = m.received_at;
      q.message_seq = seq->second;
      q.message = s.in->message;
      c.fresh.push_back(std::move(q));
    }
  }
  // Answers per job, in order (a polled batch's checkpoint: committed with the group).
  size_t k = 0;
  for (auto* j : plan.jobs) {
    auto& out = c.results.emplace_back();
    for (size_t i = 0; i < j->batch.size(); ++i, ++k) {
      const Slot& slot = slots[k];
      out.push_back(
          AcceptResult{slot.kind, slot.id,
                       slot.kind == Kind::Failed ? "storage error: " + unknown : std::string()});
    }
    if (j->checkpoint) out.push_back(AcceptResult{Kind::Created, {}, {}});
  }
}

Status PgStore::apply_update(const DeliveryUpdate& u) {
  if (!u.expected.empty()) {
    Result st;
    must(w_->run(kSelectStateForUpdate, Params().num(u.id), st));
    if (st.rows() == 0) {
      return Status::failure(404, "not found", "no delivery " + std::to_string(u.id));
    }
    std::string state = st.text(0, 0);
    auto cur = delivery_state_from(state);
    if (!cur || !u.expected.count(*cur)) {
      return Status::failure(409, "conflict", "delivery " + std::to_string(u.id) + " is " + state);
    }
  }
  const bool has_attempt = u.attempt.has_value();
  std::string flags = u.flags.empty() ? std::string() : nlohmann::json(u.flags).dump();
  Params p;
  p.text(to_string(u.state == DeliveryState::InFlight ? DeliveryState::Pending : u.state))
      .num(u.attempts)
      .num(u.next_attempt_at)
      .num(u.now)
      .flag(has_attempt)
      .text(has_attempt ? u.attempt->outcome : std::string())
      .text(has_attempt ? u.attempt->error_class : std::string())
      .num(has_attempt ? u.attempt->code : 0)
      .flag(has_attempt || !u.action_text.empty())
      .ref(has_attempt ? u.attempt->text : u.action_text)
      .ref(u.external_ref)
      .ref(u.mapping)
      .num(u.mapping_version)
      .flag(!u.payload.has_value());
  if (u.payload) {
    p.ref(*u.payload);
  } else {
    p.null();
  }
  // An attempt states the delivery's flags anew; a person's action keeps them.
  p.flag(!has_attempt).text(std::move(flags)).num(u.id);
  Result r;
  must(w_->run(kUpdateDelivery, p, r));
  if (r.affected() == 0) {
    return Status::failure(404, "not found", "no delivery " + std::to_string(u.id));
  }
  if (has_attempt) {
    const Attempt& a = *u.attempt;
    must(w_->run(kInsertAttempt, Params()
                                     .num(u.id)
                                     .num(a.at)
                                     .num(a.duration_ms)
                                     .ref(a.outcome)
                                     .ref(a.error_class)
                                     .num(a.code)
                                     .ref(a.text)
                                     .ref(a.excerpt)));
  }
  return Status::success();
}

Params PgStore::outcome_params(const std::vector<const DeliveryUpdate*>& updates) {
  ArrayText id, state, attempts, next, now, has_attempt, outcome, cls, code, has_text, text, ref,
      mapping, mapping_version, keep_payload, payload, keep_flags, flags;
  ArrayText a_delivery, a_at, a_duration, a_outcome, a_class, a_code, a_text, a_excerpt;
  for (const DeliveryUpdate* u : updates) {
    const bool with = u->attempt.has_value();
    id.add(u->id);
    state.add(to_string(u->state == DeliveryState::InFlight ? DeliveryState::Pending : u->state));
    attempts.add(int64_t{u->attempts});
    next.add(u->next_attempt_at);
    now.add(u->now);
    has_attempt.add(std::string(with ? "t" : "f"));
    outcome.add(with ? u->attempt->outcome : std::string());
    cls.add(with ? u->attempt->error_class : std::string());
    code.add(int64_t{with ? u->attempt->code : 0});
    has_text.add(std::string(with || !u->action_text.empty() ? "t" : "f"));
    text.add(with ? u->attempt->text : u->action_text);
    ref.add(u->external_ref);
    mapping.add(u->mapping);
    mapping_version.add(u->mapping_version);
    keep_payload.add(std::string(u->payload ? "f" : "t"));
    if (u->payload) {
      payload.add(*u->payload);
    } else {
      payload.add_null();
    }
    // An attempt states the delivery's flags anew; a person's action keeps them.
    keep_flags.add(std::string(with ? "f" : "t"));
    flags.add(u->flags.empty() ? std::string() : nlohmann::json(u->flags).dump());
    if (with) {
      const Attempt& a = *u->attempt;
      a_delivery.add(u->id);
      a_at.add(a.at);
      a_duration.add(a.duration_ms);
      a_outcome.add(a.outcome);
      a_class.add(a.error_class);
      a_code.add(int64_t{a.code});
      a_text.add(a.text);
      a_excerpt.add(a.excerpt);
    }
  }
  Params p;
  for (ArrayText* a :
       {&id,           &state,   &attempts,   &next,   &now,        &has_attempt, &outcome,
        &cls,          &code,    &has_text,   &text,   &ref,        &mapping,     &mapping_version,
        &keep_payload, &payload, &keep_flags, &flags,  &a_delivery, &a_at,        &a_duration,
        &a_outcome,    &a_class, &a_code,     &a_text, &a_excerpt}) {
    p.text(a->take());
  }
  return p;
}

std::string PgStore::seal(const std::string& aad, const std::string& plain) const {
  if (cipher_ == nullptr) return plain;
  std::string stored;
  if (!cipher_->seal(aad, plain, stored)) throw std::runtime_error("cannot encrypt (OpenSSL)");
  return stored;
}

void PgStore::close() {
  if (!stop_threads()) return;
  w_.reset();
  if (readers_) readers_->clear();
}

// --- erasure, rekey, retention -----------------------------------------------------------------

Status PgStore::erase(const ErasureRequest& request, ErasureResult& result) {
  result = ErasureResult{};
  ErasureRequest req = request;
  req.batch = std::clamp<size_t>(req.batch, 1, 1000);
  int64_t after = 0;
  for (;;) {
    BatchResult b;
    if (!run_batch([&](pg::Connection& w) { return erase_batch(w, req, after); }, b)) {
      return Status::failure(503, "store closed");
    }
    result.messages += b.messages;
    result.deliveries += b.deliveries;
    result.attempts += b.attempts;
    if (!b.active.empty()) result.active = std::move(b.active);
    if (!b.status.ok) return b.status;
    if (!b.more) break;
    after = b.last_seq;
  }
  // The old versions of the rows stay in the tables' pages until VACUUM prunes them.
  result.checkpointed = vacuum();
  return Status::success();
}

BatchResult PgStore::erase_batch(pg::Connection& w, const ErasureRequest& r, int64_t after_seq) {
  BatchResult out;
  if (!r.force) {
    Result act;
    must(w.run(kEraseActive, Params().ref(r.correlation), act));
    for (int i = 0; i < act.rows(); ++i) out.active.push_back(act.int64(i, 0));
  }
  if (!out.active.empty()) {
    out.status = Status::failure(
        409, "deliveries active",
        std::to_string(out.active.size()) +
            " delivery(ies) of this key are pending, retrying or in flight: wait for them, "
            "discard them, or force");
    return out;
  }
  Result sel;
  must(w.run(kEraseSelect,
             Params().ref(r.correlation).num(after_seq).num(static_cast<int64_t>(r.batch)), sel));
  const std::string plain = erasure_tombstone(r);
  const std::string text = "[effacé le " + format_rfc3339(r.at) + "]";
  for (int i = 0; i < sel.rows(); ++i) {
    TombstoneCounts c = write_tombstone(w, sel.int64(i, 0), sel.text(i, 1), plain, text, r.at);
    out.messages += c.messages;
    out.deliveries += c.deliveries;
    out.attempts += c.attempts;
  }
  out.last_seq = sel.rows() == 0 ? after_seq : sel.int64(sel.rows() - 1, 0);
  out.more = static_cast<size_t>(sel.rows()) == r.batch;
  return out;
}

TombstoneCounts PgStore::write_tombstone(pg::Connection& w, int64_t seq, const std::string& id,
                                         const std::string& plain, const std::string& text,
                                         Millis at) {
  TombstoneCounts c;
  Result r;
  // Each tombstone stored like the value it replaces (encrypted with that record's identity).
  must(w.run(kEraseMessage, Params().text(seal(body_aad(id), plain)).num(at).num(seq), r));
  c.messages = r.affected();
  Result ds;
  must(w.run(kEraseDeliveriesSelect, Params().num(seq), ds));
  for (int i = 0; i < ds.rows(); ++i) {
    int64_t d = ds.int64(i, 0);
    must(w.run(kEraseDelivery, Params().text(seal(payload_aad(d), plain)).ref(text).num(d), r));
    c.deliveries += r.affected();
  }
  Result as;
  must(w.run(kEraseAttemptsSelect, Params().num(seq), as));
  for (int i = 0; i < as.rows(); ++i) {
    std::string aad = excerpt_aad(as.int64(i, 1), as.int64(i, 2));
    must(w.run(kEraseAttempt, Params().text(seal(aad, plain)).ref(text).num(as.int64(i, 0)), r));
    c.attempts += r.affected();
  }
  return c;
}

bool PgStore::vacuum() {
  try {
    reading([&](pg::Connection& c) {
      pg::Failure why;
      check_read(c.exec("VACUUM messages, deliveries, attempts", &why), why);
      return 0;
    });
    return true;
  } catch (const std::exception& e) {
    log_warn("store", std::string("VACUUM after an erasure or a purge failed: ") + e.what());
    return false;
  }
}

Status PgStore::rekey(const RekeyRequest& request, RekeyProgress& progress,
                      const std::function<bool(const RekeyProgress&)>& on_batch) {
  RekeySteps steps;
  steps.remaining = [this] { return rekey_remaining(); };
  steps.last_key = [this](int t) { return read(kRekeyMax[t], Params()).int64(0, 0); };
  steps.batch = [this](int t, int64_t from, int64_t to, RekeySteps::Batch& out) {
    BatchResult b;
    if (!run_batch([&](pg::Connection& w) { return rekey_batch(w, t, from, to); }, b)) {
      return false;
    }
    out = RekeySteps::Batch{b.status, b.done, b.unreadable};
    return true;
  };
  // The rewritten rows' old versions: pruned by VACUUM.
  steps.after = [this] { vacuum(); };
  return run_rekey(cipher_, options_.read_only, request, progress, on_batch, steps);
}

int64_t PgStore::rekey_remaining() {
  std::string prefix = cipher_ ? cipher_->active_prefix() : std::string("\x01");
  int64_t total = 0;
  for (const char* sql : kRekeyCount) {
    total += read(sql, Params().num(static_cast<int64_t>(prefix.size())).ref(prefix)).int64(0, 0);
  }
  return total;
}

BatchResult PgStore::rekey_batch(pg::Connection& w, int t, int64_t from, int64_t to) {
  BatchResult out;
  const std::string& prefix = cipher_->active_prefix();
  Result sel;
  must(w.run(kRekeySelect[t],
             Params().num(from).num(to).num(static_cast<int64_t>(prefix.size())).ref(prefix), sel));
  std::string plain;
  for (int i = 0; i < sel.rows(); ++i) {
    std::string aad = t == 0   ? body_aad(sel.text(i, 1))
                      : t == 1 ? payload_aad(sel.int64(i, 1))
                               : excerpt_aad(sel.int64(i, 1), sel.int64(i, 2));
    if (!cipher_->open(aad, sel.text(i, 3), plain).ok) {
      ++out.unreadable;
      continue;
    }
    Result r;
    must(w.run(kRekeyUpdate[t], Params().text(seal(aad, plain)).num(sel.int64(i, 0)), r));
    out.done += r.affected();
  }
  return out;
}

Status PgStore::purge(const RetentionPolicy& policy, const RetentionRun& run,
                      RetentionResult& result) {
  result = RetentionResult{};
  auto started = std::chrono::steady_clock::now();
  Status status = Status::success();
  for (bool payload : {true, false}) {
    int64_t after_at = -1, after_seq = 0;
    for (;;) {
      if (run.cancel != nullptr && run.cancel->load()) {
        status = Status::failure(503, "stopping", "the server stops; the next run goes on");
        break;
      }
      BatchResult b;
      if (!run_batch(
              [&](pg::Connection& w) {
                return purge_batch(w, payload, policy, run, after_at, after_seq);
              },
              b)) {
        status = Status::failure(503, "store closed");
        break;
      }
      ++result.batches;
      if (!b.status.ok) {
        status = b.status;
        break;
      }
      (payload ? result.purged_messages : result.deleted_messages) += b.messages;
      (payload ? result.purged_deliveries : result.deleted_deliveries) += b.deliveries;
      (payload ? result.purged_attempts : result.deleted_attempts) += b.attempts;
      auto& sample = payload ? result.purge_sample : result.delete_sample;
      for (auto& id : b.sample) sample.push_back(std::move(id));
      if (!b.more) break;
      after_at = b.last_at;
      after_seq = b.last_seq;
    }
    if (!status.ok) break;
  }
  // No incremental_vacuum: VACUUM makes the space of deleted and rewritten rows reusable (and
  // gives the file's empty tail back); the server's autovacuum does it too.
  result.vacuum_only = true;
  if (status.ok && !run.dry_run) result.checkpointed = vacuum();
  result.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - started)
                           .count();
  return status;
}

BatchResult PgStore::purge_batch(pg::Connection& w, bool payload, const RetentionPolicy& p,
                                 const RetentionRun& run, int64_t after_at, int64_t after_seq) {
  BatchResult out;
  const int64_t limit = std::max<int64_t>(1, p.batch);
  Result sel;
  must(w.run(payload ? kPurgeCandidates : kPurgeAged,
             Params()
                 .num(run.now - (payload ? p.shortest() : p.metadata_ms))
                 .num(after_at)
                 .num(after_seq)
                 .num(limit),
             sel));
  const std::string plain = [&] {
    ErasureRequest r;
    r.retention = true;
    r.by = "retention";
    r.reason = "durée de conservation";
    r.at = run.now;
    return erasure_tombstone(r);
  }();
  const std::string text = "[purgé le " + format_rfc3339(run.now) + " (durée de conservation)]";
  for (int i = 0; i < sel.rows(); ++i) {
    const int64_t seq = sel.int64(i, 0);
    const Millis received_at = sel.int64(i, 3);
    // Due when every delivery is final and old enough (its route's retention for the payload
    // stage, `metadata` for the rows); a message no route took, from its reception.
    Result ds;
    must(w.run(kPurgeDeliveries, Params().num(seq), ds));
    bool due = true;
    for (int d = 0; d < ds.rows() && due; ++d) {
      auto state = delivery_state_from(ds.text(d, 0));
      if (!state || is_active(*state)) {
        due = false;
        break;
      }
      Millis age = payload ? p.of(ds.text(d, 1), *state) : p.metadata_ms;
      due = ds.int64(d, 2) + age <= run.now;
    }
    if (payload && ds.rows() == 0) due = received_at + p.unrouted_ms <= run.now;
    if (!due) continue;
    if (run.dry_run) {
      ++out.messages;
      out.deliveries += ds.rows();
      if (out.sample.size() < run.sample) out.sample.push_back(sel.text(i, 1));
      continue;
    }
    if (payload) {
      TombstoneCounts c = write_tombstone(w, seq, sel.text(i, 1), plain, text, run.now);
      out.messages += c.messages;
      out.deliveries += c.deliveries;
      out.attempts += c.attempts;
    } else {
      Result r;
      must(w.run(kDeleteAttempts, Params().num(seq), r));
      out.attempts += r.affected();
      must(w.run(kDeleteDeliveries, Params().num(seq), r));
      out.deliveries += r.affected();
      must(w.run(kDeleteMessage, Params().num(seq), r));
      out.messages += r.affected();
    }
  }
  out.last_at = sel.rows() == 0 ? after_at : sel.int64(sel.rows() - 1, 3);
  out.last_seq = sel.rows() == 0 ? after_seq : sel.int64(sel.rows() - 1, 0);
  out.more = sel.rows() == limit;
  return out;
}

// --- reads -------------------------------------------------------------------------------------

// A read on a pooled connection; when the connection turns out lost (the server restarted since
// it was last used), the pool's idle connections are dropped and the read runs once more on a
// new one. Throws std::runtime_error when it fails.
template <typename F>
auto PgStore::reading(F fn) -> decltype(fn(std::declval<pg::Connection&>())) {
  for (int attempt = 0;; ++attempt) {
    try {
      auto c = readers_->get();
      return fn(*c);
    } catch (const ReadFailure& e) {
      if (!e.lost || attempt > 0) throw;
      readers_->clear();
    }
  }
}

void PgStore::check_read(const Status& s, const pg::Failure& why) {
  if (!s.ok) throw ReadFailure(s.detail, why.connection_lost);
}

Result PgStore::read(const char* sql, const Params& params) {
  return readers_->query(sql, params);
}

bool PgStore::healthy() {
  if (!write_ok_ && !options_.read_only) return false;
  try {
    return read("SELECT 1", Params()).int64(0, 0) == 1;
  } catch (const std::exception&) {
    return false;
  }
}

namespace {
// The columns of kLoadActive (and the first ones of kFeed) as a QueuedDelivery.
QueuedDelivery queued_from(const Result& r, int i) {
  QueuedDelivery q;
  q.id = r.int64(i, 0);
  q.destination = r.text(i, 1);
  q.key = r.text(i, 2);
  q.mapping = r.text(i, 3);
  q.attempts = static_cast<int>(r.int64(i, 4));
  q.due = std::max(r.int64(i, 5), r.int64(i, 6));
  q.received_at = r.int64(i, 7);
  q.message_seq = r.int64(i, 8);
  q.source = r.text(i, 9);
  q.route = r.text(i, 10);
  return q;
}
}  // namespace

std::vector<QueuedDelivery> PgStore::load_active() {
  Result r = read(kLoadActive, Params());
  std::vector<QueuedDelivery> out;
  out.reserve(static_cast<size_t>(r.rows()));
  for (int i = 0; i < r.rows(); ++i) out.push_back(queued_from(r, i));
  return out;
}

Status PgStore::load_active_page(const std::string& destination, int64_t after_id, int limit,
                                 std::vector<QueuedDelivery>& out) {
  try {
    Result r = read(kLoadActivePage, Params().ref(destination).num(after_id).num(limit));
    out.reserve(out.size() + static_cast<size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) {
      out.push_back(queued_with_message(message_from(r, i), r.int64(i, 9), destination,
                                        r.text(i, 10), static_cast<int>(r.int64(i, 11)),
                                        r.int64(i, 12), r.int64(i, 13), r.text(i, 14)));
    }
    return Status::success();
  } catch (const std::exception& e) {
    return Status::failure(503, "store unavailable", e.what());
  }
}

Status PgStore::count_active(std::map<std::string, int64_t>& out) {
  try {
    Result r = read(kCountActive, Params());
    for (int i = 0; i < r.rows(); ++i) out[r.text(i, 0)] = r.int64(i, 1);
    return Status::success();
  } catch (const std::exception& e) {
    return Status::failure(503, "store unavailable", e.what());
  }
}

Status PgStore::feed_horizon(FeedPosition& out) {
  try {
    out = FeedPosition{read(kFeedHorizon, Params()).int64(0, 0), 0};
    return Status::success();
  } catch (const std::exception& e) {
    return Status::failure(503, "store unavailable", e.what());
  }
}

Status PgStore::feed(const FeedPosition& after, int limit, std::vector<FeedRow>& out) {
  try {
    Result r = read(kFeed, Params().num(after.tx).num(after.id).num(limit));
    size_t first = out.size();
    out.reserve(out.size() + static_cast<size_t>(r.rows()));
    ArrayText seqs;
    for (int i = 0; i < r.rows(); ++i) {
      FeedRow row;
      row.delivery = queued_from(r, i);
      row.state = delivery_state_from(r.text(i, 11)).value_or(DeliveryState::Pending);
      row.at = FeedPosition{r.int64(i, 12), row.delivery.id};
      if (is_active(row.state)) seqs.add(row.delivery.message_seq);
      out.push_back(std::move(row));
    }
    // Their messages in one more query, not one per delivery when its turn comes.
    if (r.rows() > 0) {
      Result m = read(kMessagesBySeqs, Params().text(seqs.take()));
      std::unordered_map<int64_t, MessagePtr> by_seq;
      for (int i = 0; i < m.rows(); ++i) by_seq.emplace(m.int64(i, 0), message_from(m, i));
      for (size_t i = first; i < out.size(); ++i) {
        auto it = by_seq.find(out[i].delivery.message_seq);
        if (it != by_seq.end()) out[i].delivery.message = it->second;
      }
    }
    return Status::success();
  } catch (const std::exception& e) {
    return Status::failure(503, "store unavailable", e.what());
  }
}

Status PgStore::load_active_upto(const FeedPosition& upto, std::vector<QueuedDelivery>& out) {
  try {
    Result r = read(kLoadActiveUpto, Params().num(upto.tx).num(upto.id));
    out.reserve(out.size() + static_cast<size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) out.push_back(queued_from(r, i));
    return Status::success();
  } catch (const std::exception& e) {
    return Status::failure(503, "store unavailable", e.what());
  }
}

std::vector<HeldKey> PgStore::load_dead_heads() {
  Result r = read(kLoadDeadHeads, Params());
  std::vector<HeldKey> out;
  for (int i = 0; i < r.rows(); ++i)
    out.push_back(HeldKey{r.text(i, 0), r.text(i, 1), r.int64(i, 2)});
  return out;
}

MessagePtr PgStore::message_from(const Result& r, int i) const {
  auto m = std::make_shared<Message>();
  m->seq = r.int64(i, 0);
  m->id = r.text(i, 1);
  m->source = r.text(i, 2);
  m->type = r.text(i, 3);
  m->correlation = r.text(i, 4);
  m->idempotency = r.text(i, 5);
  m->headers = headers_from(r.text(i, 6));
  m->body = open_stored(cipher_, body_aad(m->id), r.text(i, 7), true, &m->unreadable);
  m->received_at = r.int64(i, 8);
  return m;
}

// The columns of kDeliveriesOfMessage (the payload at 17) as a Delivery.
Delivery delivery_from(const Result& r, int i, const AtRestCipher* cipher) {
  Delivery d;
  d.id = r.int64(i, 0);
  d.message_seq = r.int64(i, 1);
  d.destination = r.text(i, 2);
  d.route = r.text(i, 3);
  d.mapping = r.text(i, 4);
  d.mapping_version = r.int64(i, 5);
  d.state = delivery_state_from(r.text(i, 6)).value_or(DeliveryState::Pending);
  d.attempts = static_cast<int>(r.int64(i, 7));
  d.next_attempt_at = r.int64(i, 8);
  d.not_before = r.int64(i, 9);
  d.updated_at = r.int64(i, 10);
  d.last_outcome = r.text(i, 11);
  d.last_class = r.text(i, 12);
  d.last_code = static_cast<int>(r.int64(i, 13));
  d.last_text = r.text(i, 14);
  d.external_ref = r.text(i, 15);
  d.flags = flags_from(r.text(i, 16));
  if (!r.null(i, 17)) d.payload = open_stored(cipher, payload_aad(d.id), r.text(i, 17), true);
  return d;
}

MessagePtr PgStore::message_by_seq(int64_t seq) {
  Result r = read(kMessageBySeq, Params().num(seq));
  return r.rows() == 0 ? nullptr : message_from(r, 0);
}

std::vector<Delivery> PgStore::deliveries_of(pg::Connection& c, int64_t seq, bool with_history) {
  Result r;
  pg::Failure why;
  check_read(c.run(kDeliveriesOfMessage, Params().num(seq), r, &why), why);
  std::vector<Delivery> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(delivery_from(r, i, cipher_));
  if (!with_history) return out;
  for (auto& d : out) {
    Result ar;
    check_read(c.run(kAttemptsOfDelivery, Params().num(d.id), ar, &why), why);
    for (int i = 0; i < ar.rows(); ++i) {
      Attempt a;
      a.at = ar.int64(i, 0);
      a.duration_ms = ar.int64(i, 1);
      a.outcome = ar.text(i, 2);
      a.error_class = ar.text(i, 3);
      a.code = static_cast<int>(ar.int64(i, 4));
      a.text = ar.text(i, 5);
      a.excerpt = open_stored(cipher_, excerpt_aad(d.id, a.at), ar.text(i, 6), false);
      d.history.push_back(std::move(a));
    }
  }
  return out;
}

std::optional<MessageRecord> PgStore::message(const std::string& id, bool with_history) {
  return reading([&](pg::Connection& c) -> std::optional<MessageRecord> {
    Result r;
    pg::Failure why;
    check_read(c.run(kMessageById, Params().ref(id), r, &why), why);
    if (r.rows() == 0) return std::nullopt;
    MessageRecord rec;
    rec.message = message_from(r, 0);
    rec.deliveries = deliveries_of(c, rec.message->seq, with_history);
    for (auto& d : rec.deliveries) d.message_id = rec.message->id;
    return rec;
  });
}

std::optional<Delivery> PgStore::delivery(int64_t id) {
  Result r = read(kDeliveryById, Params().num(id));
  if (r.rows() == 0) return std::nullopt;
  Delivery d = delivery_from(r, 0, cipher_);
  d.message_id = r.text(0, 18);
  return d;
}

MessagePage PgStore::list(const MessageFilter& f) {
  std::string sql = std::string("SELECT ") + kMessageColumns + " FROM messages m WHERE true";
  Params p;
  int n = 0;
  // Values are bound, never spliced into the SQL text.
  auto arg = [&]() {
    std::string a(1, '$');  // piece by piece: GCC 12 -O3 false -Wrestrict on "$" + text
    a += std::to_string(++n);
    return a;
  };
  if (!f.source.empty()) sql += " AND m.source = " + arg(), p.ref(f.source);
  if (!f.correlation.empty()) sql += " AND m.correlation = " + arg(), p.ref(f.correlation);
  if (!f.type.empty()) sql += " AND m.type = " + arg(), p.ref(f.type);
  if (f.from) sql += " AND m.received_at >= " + arg(), p.num(f.from);
  if (f.to) sql += " AND m.received_at < " + arg(), p.num(f.to);
  if (f.before_seq) sql += " AND m.seq < " + arg(), p.num(f.before_seq);
  if (f.flagged) {
    sql +=
        " AND EXISTS (SELECT 1 FROM deliveries df WHERE df.message_seq = m.seq AND "
        "df.flags <> '')";
  }
  if (f.state == "unrouted") {
    sql += " AND m.routed = 0";
  } else if (!f.state.empty() || !f.destination.empty()) {
    sql += " AND EXISTS (SELECT 1 FROM deliveries d WHERE d.message_seq = m.seq";
    if (!f.state.empty()) sql += " AND d.state = " + arg(), p.ref(f.state);
    if (!f.destination.empty()) sql += " AND d.destination = " + arg(), p.ref(f.destination);
    sql += ")";
  }
  const int64_t limit = std::clamp(f.limit, 1, 500) + 1;
  sql += " ORDER BY m.seq DESC LIMIT " + arg();
  p.num(limit);
  return reading([&](pg::Connection& c) {
    Result r;
    pg::Failure why;
    check_read(c.run_text(sql, p, r, &why), why);
    MessagePage page;
    int keep = std::min(r.rows(), static_cast<int>(limit - 1));
    for (int i = 0; i < keep; ++i) {
      MessageRecord rec;
      rec.message = message_from(r, i);
      rec.deliveries = deliveries_of(c, rec.message->seq, false);
      for (auto& d : rec.deliveries) d.message_id = rec.message->id;
      page.items.push_back(std::move(rec));
    }
    if (r.rows() > keep && keep > 0) page.next_cursor = page.items.back().message->seq;
    return page;
  });
}

std::optional<std::string> PgStore::checkpoint(const std::string& source) {
  try {
    Result r = read(kCheckpoint, Params().ref(source));
    return r.rows() == 0 ? std::string() : r.text(0, 0);
  } catch (const std::exception& e) {
    log_error("store", std::string("cannot read the checkpoint of a polling source: ") + e.what());
    return std::nullopt;
  }
}

std::vector<StoredReject> PgStore::rejects(const std::string& source, int64_t before_id,
                                           int limit) {
  // The source filter only when given: `source = $n` seeks source_rejects_source(source, id).
  std::string sql =
      "SELECT id, source, position, status, error, detail, at FROM source_rejects WHERE id < $1";
  Params p;
  p.num(before_id > 0 ? before_id : std::numeric_limits<int64_t>::max());
  if (!source.empty()) {
    sql += " AND source = $2 ORDER BY id DESC LIMIT $3";
    p.ref(source);
  } else {
    sql += " ORDER BY id DESC LIMIT $2";
  }
  p.num(std::clamp(limit, 1, 500));
  Result r = reading([&](pg::Connection& c) {
    Result r;
    pg::Failure why;
    check_read(c.run_text(sql, p, r, &why), why);
    return r;
  });
  std::vector<StoredReject> out;
  for (int i = 0; i < r.rows(); ++i) {
    StoredReject x;
    x.id = r.int64(i, 0);
    x.source = r.text(i, 1);
    x.reject.position = r.text(i, 2);
    x.reject.status = static_cast<int>(r.int64(i, 3));
    x.reject.error = r.text(i, 4);
    x.reject.detail = r.text(i, 5);
    x.at = r.int64(i, 6);
    out.push_back(std::move(x));
  }
  return out;
}

}  // namespace

std::unique_ptr<Store> open_postgresql_store(const StoreOptions& options) {
  return std::make_unique<PgStore>(options);
}

int postgresql_schema_version() {
  return migrations().back().version;
}

std::vector<std::pair<int, std::string>> postgresql_schema_migrations() {
  std::vector<std::pair<int, std::string>> out;
  for (const auto& m : migrations()) out.emplace_back(m.version, m.description);
  return out;
}

std::vector<PgHotStatement> postgresql_hot_statements() {
  const std::string t = "'enc1:k1:'";
  std::vector<PgHotStatement> out = {
      {"accept a group", kAccept,
       "'{0,1}', '{01A,01B}', '{cms,cms}', '{t,t}', '{k,k}', '{e1,\"\"}', '{x,x}', '{b,b}', "
       "'{1,1}', '{1,0}', '{d,d}', '{0}', '{a}', '{r}', '{m}', '{0}', '{0}', 2592000000"},
      {"find idempotency keys", kFindKeys, "'{cms}', '{k1}'"},
      {"purge idempotency keys", kPurgeKeys, "1700000000000"},
      {"insert attempt", kInsertAttempt, "1, 1, 1, 'o', 'c', 200, 't', 'e'"},
      {"record outcomes", kRecordOutcomes,
       "'{42}', '{delivered}', '{1}', '{0}', '{1}', '{t}', '{delivered}', '{\"\"}', '{201}', "
       "'{t}', '{x}', '{\"\"}', '{\"\"}', '{0}', '{t}', '{NULL}', '{f}', '{\"\"}', '{42}', "
       "'{1}', '{1}', '{o}', '{c}', '{200}', '{t}', '{e}'"},
      {"update delivery", kUpdateDelivery,
       "'retrying', 1, 2, 3, true, 'retry', 'http', 503, true, 'x', '', '', 0, true, NULL, "
       "false, '', 42"},
      {"delivery state", kSelectStateForUpdate, "42"},
      {"load active deliveries", kLoadActive, ""},
      {"a destination's backlog page", kLoadActivePage, "'genesis', 0, 1000"},
      {"feed of the deliveries", kFeed, "0, 0, 500"},
      {"load active deliveries up to a position", kLoadActiveUpto, "0, 0"},
      {"messages of a page of the feed", kMessagesBySeqs, "'{1,2}'"},
      {"message by seq", kMessageBySeq, "42"},
      {"message by id", kMessageById, "'01H'"},
      {"deliveries of a message", kDeliveriesOfMessage, "42"},
      {"attempts of a delivery", kAttemptsOfDelivery, "42"},
      {"delivery by id", kDeliveryById, "42"},
      {"erasure: messages of a key", kEraseSelect, "'individu:1', 0, 100"},
      {"erasure: active deliveries of a key", kEraseActive, "'individu:1'"},
      {"erasure: message", kEraseMessage, "'x', 1, 42"},
      {"erasure: deliveries of a message", kEraseDeliveriesSelect, "42"},
      {"erasure: delivery", kEraseDelivery, "'x', 'y', 42"},
      {"erasure: attempts of a message", kEraseAttemptsSelect, "42"},
      {"erasure: attempt", kEraseAttempt, "'x', 'y', 42"},
      {"rekey: messages of a range", kRekeySelect[0], "0, 500, 8, " + t},
      {"rekey: deliveries of a range", kRekeySelect[1], "0, 500, 8, " + t},
      {"rekey: attempts of a range", kRekeySelect[2], "0, 500, 8, " + t},
      {"rekey: message", kRekeyUpdate[0], "'x', 42"},
      {"rekey: delivery", kRekeyUpdate[1], "'x', 42"},
      {"rekey: attempt", kRekeyUpdate[2], "'x', 42"},
      {"retention: messages not purged yet", kPurgeCandidates, "1, -1, 0, 1000"},
      {"retention: messages past metadata", kPurgeAged, "1, -1, 0, 1000"},
      {"retention: deliveries of a message", kPurgeDeliveries, "42"},
      {"retention: delete attempts", kDeleteAttempts, "42"},
      {"retention: delete deliveries", kDeleteDeliveries, "42"},
      {"retention: delete message", kDeleteMessage, "42"},
  };
  for (auto& st : postgresql_xref_hot_statements()) out.push_back(std::move(st));
  return out;
}

}  // namespace relais

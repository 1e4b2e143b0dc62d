#pragma once
// The durable store interface: messages, deliveries and attempts. Implementations: SqliteStore
// (embedded default, store/sqlite/), PgStore (PostgreSQL, store/postgresql/). Writes are
// group-committed: callers of accept() block until their messages are durable, and many callers
// share one commit.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/at_rest.h"
#include "core/message.h"
#include "core/retention.h"
#include "core/status.h"

namespace relais {

// A delivery to create with a new message.
struct NewDelivery {
  std::string destination;
  std::string route;
  std::string mapping;
  Millis not_before = 0;
};

// A message and its deliveries, to be committed together.
struct Incoming {
  std::shared_ptr<Message> message;  // seq is filled in by the store
  std::vector<NewDelivery> deliveries;
  // With an idempotency key: a digest of the body (sha256 hex), kept with the key so that the
  // same key with another body is told apart from a resubmission. "" = not compared.
  std::string body_digest;
};

struct AcceptResult {
  // Created; Duplicate (same key, same body: the first message's id); Conflict (same key, other
  // body: the first message's id, nothing stored); Failed (not stored: the storage error).
  enum class Kind { Created, Duplicate, Conflict, Failed } kind = Kind::Created;
  std::string id;     // the new id, or the first message's id for a duplicate or a conflict
  std::string error;  // Failed: why (storage error)
};

// A record a polling source could not turn into a message (core/poller.h): kept with the
// source's checkpoint, in the same transaction, for the support desk.
struct SourceReject {
  std::string position;  // where it was read ("ligne 12", "id 4521"): no personal data
  int status = 422;      // the status the HTTP door would have answered
  std::string error;     // short title
  std::string detail;    // explanation (no personal data)
};

// A polling source's position after a batch, committed together with the batch's messages so
// that a crash never loses nor repeats a record.
struct SourceCheckpoint {
  std::string source;
  std::string value;  // the poller's own text
  std::vector<SourceReject> rejects;
  // The position of each message of the batch, in order (or empty): a message the store
  // refuses (its idempotency key used with another body, 409) is kept as a reject at it.
  std::vector<std::string> positions;
};

// A message refused because its idempotency key was used before with another body (409), as
// the HTTP door answers it and a polling source's reject keeps it: it names the first message,
// never the key nor the content.
inline SourceReject idempotency_conflict(const std::string& position, const std::string& first_id) {
  return SourceReject{position, 409, "idempotency key reused",
                      "this idempotency key was already used by message " + first_id +
                          " with a different body; nothing was stored (send a new key for a new "
                          "message, or the same body to confirm the first one)"};
}

// A stored reject, as the desk lists it.
struct StoredReject {
  int64_t id = 0;
  std::string source;
  SourceReject reject;
  Millis at = 0;
};

// A delivery that the dispatcher must work on: committed and active.
struct QueuedDelivery {
  int64_t id = 0;
  std::string destination;
  std::string source;
  std::string route;
  std::string key;  // ordering key ("" = unordered)
  std::string mapping;
  int attempts = 0;
  Millis due = 0;  // max(not_before, next_attempt_at)
  Millis received_at = 0;
  int64_t message_seq = 0;
  MessagePtr message;  // may be null (then loaded from the store when needed)
};

// Where a node's feed of committed deliveries stands (several nodes on PostgreSQL,
// routing/cluster_feed.h): the id of the transaction that created — or, by a person's action,
// re-activated — a delivery, then the delivery's id. Plain value, ordered.
struct FeedPosition {
  int64_t tx = 0;
  int64_t id = 0;
  auto operator<=>(const FeedPosition&) const = default;
};

// A delivery as the feed gives it: its state when read, and its position.
struct FeedRow {
  QueuedDelivery delivery;
  DeliveryState state = DeliveryState::Pending;
  FeedPosition at;
};

// A change of a delivery's state after an attempt or a person's action.
struct DeliveryUpdate {
  int64_t id = 0;
  DeliveryState state = DeliveryState::Pending;
  int attempts = 0;
  Millis next_attempt_at = 0;
  Millis now = 0;
  std::optional<Attempt> attempt;      // appended to the history when set
  std::string external_ref;            // kept unless empty
  std::string mapping;                 // kept unless empty
  int64_t mapping_version = 0;         // kept unless 0
  std::optional<std::string> payload;  // the payload after mapping
  std::vector<std::string> flags;      // quality flags for a person (replace the stored ones)
  std::string action_text;  // a person's action: replaces last_text (e.g. discard reason)
  std::set<DeliveryState>
      expected;  // when non-empty: apply only if the stored state is one of these
};

struct MessageFilter {
  std::string state;  // a delivery state, or "unrouted"
  std::string source;
  std::string destination;
  std::string correlation;
  std::string type;
  bool flagged = false;    // only messages with a flagged delivery
  Millis from = 0;         // received_at >= from (0 = no bound)
  Millis to = 0;           // received_at < to (0 = no bound)
  int64_t before_seq = 0;  // cursor: only messages older than this (0 = newest first)
  int limit = 50;
};

struct MessageRecord {
  MessagePtr message;
  std::vector<Delivery> deliveries;
};

struct MessagePage {
  std::vector<MessageRecord> items;
  int64_t next_cursor = 0;  // 0 = no more
};

// A key held because its earliest delivery went dead (per-destination "hold" policy).
struct HeldKey {
  std::string destination;
  std::string key;
  int64_t dead_delivery_id = 0;
};

// The erasure of one person's payloads (docs/security.md, "Erasure"): every message whose
// correlation key is `correlation` has its body, its deliveries' mapped payloads and texts, and
// its attempts' response excerpts and texts replaced by a tombstone.
struct ErasureRequest {
  std::string correlation;  // exact key, e.g. individu:58123
  std::string by;           // who asked (user or token name), written in the tombstone
  std::string reason;       // why, written in the tombstone
  Millis at = 0;            // when (the tombstone's date)
  bool force = false;       // erase even when deliveries of the key are still active
  size_t batch = 100;       // messages per group commit (the writer is never held long)
  bool retention = false;   // the retention purge's tombstone (by "retention", no key)
};

struct ErasureResult {
  int64_t messages = 0, deliveries = 0, attempts = 0;  // rows erased (already erased: skipped)
  std::vector<int64_t> active;  // the key's pending/retrying deliveries (refused unless force)
  bool checkpointed = false;    // the WAL was checkpointed and truncated afterwards
};

// The tombstone that replaces a payload: {"effacé": true, "le": rfc3339, "par", "motif"}, plus
// "type": "purge" when the retention purge wrote it.
std::string erasure_tombstone(const ErasureRequest& request);
// The tombstone when `payload` is one (an object whose "effacé" is true), else null.
nlohmann::json erased_tombstone(const std::string& payload);
// What the console says of a tombstone: "purgé (durée de conservation)" or "effacé (demande
// d'effacement)".
std::string erased_label(const nlohmann::json& tombstone);
// What the API shows of an erased or purged payload: the tombstone plus its "label"; null when
// `payload` is not a tombstone.
nlohmann::json erased_view(const std::string& payload);

// The re-encryption of the stored personal columns (messages.body, deliveries.payload,
// attempts.excerpt) under the active key: every value on another key, or still plain (a legacy
// row), is rewritten (docs/operations.md, "Rotating the encryption key").
struct RekeyRequest {
  int64_t batch = 500;  // rows of one table per writer job (a range of its primary key)
};

struct RekeyProgress {
  std::string active;      // the key values are re-encrypted to
  int64_t to_do = 0;       // values not on the active key when it started
  int64_t done = 0;        // values rewritten on the active key
  int64_t unreadable = 0;  // values that could not be decrypted (key unknown, tampered): left
  int64_t remaining = -1;  // values not on the active key when it ended (-1: not counted)
  bool running = false;
  bool finished = false;  // went through every table (else interrupted or failed)
  std::string error;      // why it stopped, when it failed
};

// Thread-safe: every method may be called from any thread.
//
// Durability of outcomes: record() never drops an update. When a group commit fails (disk full,
// I/O error, the write lock held too long by another process) the group is rolled back, the
// accepts in it are answered Failed, and the recorded updates are kept and committed again with
// the next groups (with back-off) until a commit succeeds; `committed` callbacks run only after
// the commit that made their update durable. writable() is false from a failed commit until the
// next successful one.
class Store {
 public:
  virtual ~Store() = default;

  // Commits the messages and their deliveries, then returns one result per input, in order.
  // Blocks until the commit is durable (group commit). Never throws.
  virtual std::vector<AcceptResult> accept(std::vector<Incoming> batch) = 0;
  // accept() without waiting: `done` receives the results once, on the store's completion
  // thread after the commit (the new deliveries already given to the commit listener), or on
  // the caller's thread when nothing could be queued (encryption failed, the store closing).
  // `done` must not block (it delays every later answer) nor throw.
  virtual void accept_then(std::vector<Incoming> batch,
                           std::function<void(std::vector<AcceptResult>)> done) = 0;
  // accept(), plus a polling source's checkpoint and its refused records written in the same
  // transaction: all of them are durable, or none. `at` dates the rejects. Answers one result
  // per input and, last, one for the checkpoint (Created, or Failed with the storage error).
  virtual std::vector<AcceptResult> accept_polled(std::vector<Incoming> batch,
                                                  SourceCheckpoint checkpoint, Millis at) = 0;
  // The last committed checkpoint of a polling source ("" when it never committed one);
  // nullopt when the store cannot be read (the poller waits).
  virtual std::optional<std::string> checkpoint(const std::string& source) = 0;
  // The refused records of polling sources, newest first ("" = every source).
  virtual std::vector<StoredReject> rejects(const std::string& source, int64_t before_id,
                                            int limit) = 0;
  // Queues a state change; committed with the next group. Never blocks on disk. `committed`
  // (optional) runs once the update is durable, on the store's completion thread (never the
  // caller's): it must not block on the store. After close() the update is not recorded and
  // `committed` never runs (the delivery stays active in the store and is attempted again).
  virtual void record(DeliveryUpdate update, std::function<void()> committed = nullptr) = 0;
  // Applies a state change now and waits for the commit. 404 when the delivery does not exist,
  // 409 when its state is not one of update.expected.
  virtual Status apply(DeliveryUpdate update) = 0;
  // Waits until everything queued so far is committed.
  virtual void flush() = 0;
  // Erases the payloads of every message of `request.correlation` (ErasureRequest), in batches
  // of `request.batch` messages, each committed with a group on the writer thread; then
  // checkpoints and truncates the WAL. 409 (`result.active` lists them) when deliveries of the
  // key are pending or retrying, unless `force`: checked in each batch's transaction, so nothing
  // is erased when they are there at the start, and a delivery of the key that turns active
  // mid-way (a message accepted during the erasure) stops it there, the batches before staying
  // erased; 503 when a commit fails. Either way running it again finishes the work.
  virtual Status erase(const ErasureRequest& request, ErasureResult& result) = 0;
  // Re-encrypts under the active key every value that is not on it (RekeyRequest), table by
  // table, in ranges of `request.batch` primary keys, each range one job of the writer's group
  // commits (accepts and outcomes are never held behind it); then checkpoints and truncates the
  // WAL. Resumable: it finds again whatever is not on the active key. `progress` is updated
  // after each range and passed to `on_batch` (may be null), which returns false to stop there
  // (progress.finished stays false). 409 when no encryption is configured; 503 when a commit
  // fails (what was committed stays done).
  virtual Status rekey(const RekeyRequest& request, RekeyProgress& progress,
                       const std::function<bool(const RekeyProgress&)>& on_batch) = 0;
  // Values of the three columns not on the active key (every non-empty one without encryption).
  // Reads the three tables: for the rekey's progress, not for a hot path.
  virtual int64_t rekey_remaining() = 0;
  // The retention purge (docs/security.md, "Retention"): payloads of the messages whose every
  // delivery is final and past its (route, state) retention replaced by the retention
  // tombstone, then the rows of the messages past `metadata` deleted, each batch of
  // `policy.batch` messages one job of the writer; then the freed pages given back
  // (incremental_vacuum, `policy.vacuum_pages` per job) and the WAL checkpointed. A message
  // with an active delivery is never touched. 503 when a commit fails (what was committed
  // stays; the next run finishes).
  virtual Status purge(const RetentionPolicy& policy, const RetentionRun& run,
                       RetentionResult& result) = 0;
  // Called (on the completion thread, before the accepts of the group are answered) with each
  // group's new active deliveries after its commit.
  virtual void set_commit_listener(std::function<void(std::vector<QueuedDelivery>&&)> fn) = 0;

  // The feed of several nodes (routing/cluster_feed.h). PostgreSQL answers; the embedded store
  // answers 501 (one node). `feed_horizon`: the position before which every transaction has
  // ended (a node's starting point). `feed`: the deliveries created or re-activated after
  // `after` by transactions that have all ended — in the order of their transactions, so a
  // delivery committed late by a transaction that started early is never skipped — `limit` at
  // most. `load_active_upto`: the active deliveries at or before `upto` (and those written
  // before the feed existed), by id: what a node that gains partitions reads.
  virtual Status feed_horizon(FeedPosition& out) {
    (void)out;
    return Status::failure(501, "not implemented", "this store serves one node");
  }
  virtual Status feed(const FeedPosition& after, int limit, std::vector<FeedRow>& out) {
    (void)after, (void)limit, (void)out;
    return Status::failure(501, "not implemented", "this store serves one node");
  }
  virtual Status load_active_upto(const FeedPosition& upto, std::vector<QueuedDelivery>& out) {
    (void)upto, (void)out;
    return Status::failure(501, "not implemented", "this store serves one node");
  }

  // A destination's backlog read back from the store as its deliveries drain (one node:
  // routing/dispatcher.h keeps at most `queue_in_memory` of them in memory). The active
  // deliveries of `destination` with an id above `after_id`, by id, `limit` at most, each with
  // its message: appended to `out`; 503 when the store cannot be read.
  virtual Status load_active_page(const std::string& destination, int64_t after_id, int limit,
                                  std::vector<QueuedDelivery>& out) = 0;
  // How many active deliveries each destination has (start-up: what the pages will bring).
  virtual Status count_active(std::map<std::string, int64_t>& out) = 0;

  // Reads (consistent snapshot of committed data).
  virtual std::vector<QueuedDelivery> load_active() = 0;
  virtual std::vector<HeldKey> load_dead_heads() = 0;
  virtual MessagePtr message_by_seq(int64_t seq) = 0;
  virtual std::optional<MessageRecord> message(const std::string& id, bool with_history) = 0;
  virtual std::optional<Delivery> delivery(int64_t id) = 0;
  virtual MessagePage list(const MessageFilter& filter) = 0;
  virtual bool healthy() = 0;
  // False from a failed commit until a commit succeeds again: the dispatcher takes no new
  // work and the accept path answers 503 with Retry-After meanwhile. Cheap (an atomic).
  virtual bool writable() const = 0;

  // Stops the writer after committing what is queued. Further writes fail.
  virtual void close() = 0;
};

struct StoreOptions {
  std::string path;  // SQLite: the store file
  // PostgreSQL (store/postgresql/pg_backend.h): the libpq connection string or URI of the
  // database ("host=… dbname=… user=… password=…" or "postgresql://user:pw@host:5432/db");
  // `path` and synchronous_full are then unused (durability is the server's synchronous_commit).
  std::string uri;
  // PostgreSQL: the role's password when it is not in `uri` (store.password_env's value); kept
  // out of every error text. "" = libpq's own ways (the URI, ~/.pgpass, PGPASSWORD).
  std::string password;
  bool synchronous_full = true;  // fsync at every commit (WAL, synchronous=FULL)
  size_t max_batch = 2000;       // messages per group commit at most
  int read_pool = 8;
  int busy_timeout_ms = 10000;  // how long a commit waits for a write lock held elsewhere
  // How long an idempotency key is remembered (the same key later is a new message).
  Millis idempotency_retention_ms = 30LL * 24 * 3600 * 1000;
  Millis purge_every_ms = 60000;  // how often expired idempotency keys are purged (5,000 a time)
  // For the read-only commands (core/store_access.h): `mode=ro`, the schema checked instead of
  // migrated, no writer thread, no checkpoint at close; accept/record/apply fail.
  bool read_only = false;
  // Encryption at rest of bodies, mapped payloads and excerpts (core/at_rest.h); null = values
  // are written plain (values already encrypted still need it to be read).
  std::shared_ptr<const AtRestCipher> cipher;
};

}  // namespace relais

#pragma once
// The one shape of a source that fetches its records instead of being sent them: a database
// polled (the CMS76 demand store), a watched folder of exports. A kind (name, config spec,
// factory) is registered explicitly in a PollerRegistry (connectors/registry.cpp); the hub runs
// one thread per configured instance (`sources.<name>.poll`), and commits each batch's messages
// together with the poller's checkpoint in one transaction of its own store, so that a crash
// never loses nor repeats a record. The core never names a poller kind.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/config_spec.h"
#include "core/metrics.h"
#include "core/registry.h"
#include "core/status.h"

namespace relais {

// One record read: the message body as the source's expressions (type, correlation,
// idempotency) and routes see it.
struct PolledRecord {
  std::string body;             // JSON text of one message
  std::string idempotency_key;  // "" = the source's own idempotency expression, if any
  std::string position;         // where it was read, for a person: "ligne 12", "id 4521" (no data)
  // Set when the record could not even be read (a CSV line with too many fields, a row with a
  // column that does not convert): the record is not offered to the hub, it is reported as
  // refused with this reason (French, for the desk) — never dropped silently.
  std::string unreadable;
};

// What one poll returns.
struct PollBatch {
  std::vector<PolledRecord> records;
  // The poller's position after these records (opaque text, the poller's own format). Written in
  // the same transaction as the records' messages; given back to the next poll(). When nothing
  // was read the checkpoint is not written.
  std::string checkpoint;
  bool more = false;  // more records are ready now: poll again without waiting the interval
  // Opaque context the poller needs again in committed() (e.g. the outbox ids, a file's path).
  std::shared_ptr<void> context;
};

// The fate of one record of a batch, given to committed() in the batch's order.
struct PolledOutcome {
  // 202 created, 200 duplicate (already taken: idempotency), 409 same key other content,
  // 4xx refused (the reason in `error`/`detail`), 503 not stored (the whole batch then).
  int status = 202;
  std::string id;      // the message id when stored (or the first one's for 200/409)
  std::string error;   // short title when refused
  std::string detail;  // explanation when refused (no personal data)
};

// A configured polling source. poll() and committed() are called from one thread only (the
// hub's thread for this source), committed() once per batch, in the order of the polls; probe()
// may be called concurrently from an API thread. Owned by the Hub; lives until shutdown.
//
// Pipelining (pipelined() true): while a batch is being committed, the hub already polls the
// next one, from the checkpoint of the batch in flight, which is not stored yet. At most one
// batch is in flight; if its commit fails, the batch polled meanwhile is told not stored either
// and polling resumes from the last stored checkpoint. Such a poller must therefore act on the
// source (mark rows done, move files) only in committed() with `stored` true, never in poll().
class Poller {
 public:
  virtual ~Poller() = default;
  // Reads the next records after `checkpoint` ("" the first time), at most the configured batch
  // size. A failure to reach the source (database down, folder missing) is a Status failure
  // with a readable reason: the hub retries with back-off and shows it on the dashboard. Never
  // throws. With pipelining, `checkpoint` may be that of a batch still being committed.
  virtual Status poll(const std::string& checkpoint, PollBatch& out) = 0;
  // True when the poller may be polled while its previous batch is being committed (see
  // above). Default false: each poll waits for the previous batch's committed().
  virtual bool pipelined() const { return false; }
  // Called after the batch was committed (`stored` true: the messages and the checkpoint are
  // durable) or not (`stored` false: nothing of the batch is stored; the next poll starts again
  // from the previous checkpoint). `outcomes` has one entry per record, in order. An outbox
  // marks its rows done here (only when stored); a folder moves its file and writes its report.
  // A failure here is returned (the hub logs and shows it) but the checkpoint already protects
  // against reading the records again. Never throws.
  virtual Status committed(const PollBatch& batch, bool stored,
                           const std::vector<PolledOutcome>& outcomes) = 0;
  // Checks that the source is reachable without reading records. Default: cannot test itself.
  virtual Status probe() {
    return Status::failure(501, "test non disponible",
                           "ce type de source ne sait pas tester sa connexion");
  }
};

// What a factory gets to build an instance.
struct PollerContext {
  std::string name;   // the source's name
  ConfigView config;  // the `poll:` block, read through the kind's spec
  Metrics* metrics = nullptr;
  const Clock* clock = nullptr;
  std::string base_dir;  // the configuration file's folder (relative paths resolve from it)
};

// A kind of polling source. Plain value held by the registry.
struct PollerKind {
  std::string name;
  std::string description;
  const ConfigSpec* spec = nullptr;
  // Semantic checks beyond the spec (a query without its watermark parameter…). Optional.
  std::function<void(const ConfigView&, const std::string& file, std::vector<ConfigError>&)> check;
  // Builds an instance; may throw at start-up with a message naming the problem. Must not
  // connect: a source that is down at start-up is a poll failure, not a start-up failure.
  std::function<std::unique_ptr<Poller>(const PollerContext&)> create;
};

using PollerRegistry = Registry<PollerKind>;

}  // namespace relais

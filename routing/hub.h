#pragma once
// The Hub wires the pipeline: accept (validate, dedupe, route, persist, ack) → per-destination
// queues → map → deliver → record. It owns the store, the connectors and the dispatcher.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/cluster.h"
#include "core/connector.h"
#include "core/enricher.h"
#include "core/ids.h"
#include "core/json_reader.h"
#include "core/metrics.h"
#include "core/pairing_store.h"
#include "core/poller.h"
#include "core/shared_state.h"
#include "core/store.h"
#include "core/xref_store.h"
#include "routing/cluster_feed.h"
#include "routing/dispatcher.h"
#include "routing/hub_config.h"
#include "routing/mapping_stage.h"
#include "routing/polling.h"

namespace relais {

struct AcceptRequest {
  std::string source;
  std::string body;
  std::string idempotency_key;                 // the Idempotency-Key header ("" = none)
  std::map<std::string, std::string> headers;  // all inbound headers (lower-case names)
};

struct AcceptResponse {
  int status = 202;  // 202 created, 200 duplicate, 4xx/5xx error
  std::string id;
  std::string error;                                // short title
  std::string detail;                               // explanation
  nlohmann::json extra = nlohmann::json::object();  // e.g. {"line":1,"column":7,"offset":6}
  int retry_after_s = 0;  // 503 when the store cannot commit: when to send again (Retry-After)
};

// Thread-safe after start(): accept() is called from every HTTP thread. It is the connectors'
// HubServices (post a message to a destination, wake a deferred key).
class Hub final : public HubServices {
 public:
  // Opens the store and builds every connector. Throws (start-up) with a readable message.
  Hub(const HubConfig& config, const ConnectorRegistry& registry, const Clock& clock,
      std::shared_ptr<MappingStage> mappings = nullptr, const EnricherRegistry* enrichers = nullptr,
      const PollerRegistry* pollers = nullptr);
  ~Hub() override;

  // Several nodes on one PostgreSQL store (docs/scaling.md), before start(): the membership
  // decides which keys this node sends (the hub owns it); `changes` (the shared state's bus,
  // not owned, outlives the hub) carries the wake-ups of deferred keys to the node owning them.
  void join_cluster(std::unique_ptr<Membership> membership, ChangeBus* changes);
  bool clustered() const { return membership_ != nullptr; }
  // Whether this node runs the jobs that run once (always, alone).
  bool leader() const { return membership_ == nullptr || membership_->leader(); }
  // This node's name in the cluster ("" alone).
  std::string node() const { return membership_ ? membership_->node() : ""; }
  // For /readyz and the console: "" alone; else the node's share and what prevents it.
  std::string cluster_status() const;
  // The partitions whose keys this node sends now (empty alone).
  std::vector<int> owned_partitions() const;

  // Loads active deliveries from the store and starts the workers, then the polling sources
  // (in a cluster: the feed and the membership; the polling sources run on the leader only).
  void start();
  // Stops the polling sources (the batch in progress is committed), the workers (in-flight
  // attempts finish and are recorded), then closes the store.
  void stop();

  AcceptResponse accept(const AcceptRequest& request);
  // accept() without waiting for the commit: `done` gets the answer once, on the store's
  // completion thread after the commit, or on the caller's thread when the message is refused
  // before (or cannot be queued). `done` must not block (every later answer waits) nor throw.
  void accept_then(const AcceptRequest& request, std::function<void(AcceptResponse)> done);
  // One response per NDJSON line (blank lines are skipped), committed together.
  std::vector<AcceptResponse> accept_batch(const std::string& source, const std::string& ndjson,
                                           const std::map<std::string, std::string>& headers);

  // Commits a message for one destination only: no source, no route, no mapping (the body is
  // what the connector receives), e.g. a repair decided by `relais calendar reconcile`. It then
  // goes through the destination's queue like any delivery (FIFO per correlation key, retries).
  // 202 with the id; 404 for an unknown destination; 400 for a body that is not JSON.
  AcceptResponse accept_for_destination(const std::string& destination, const std::string& type,
                                        const std::string& correlation, const std::string& body);

  // Prepares a polling source's batch (core/poller.h), each record like an HTTP message of the
  // source, on the caller's thread, and returns its commit: the messages, the checkpoint and the
  // refused records in the same transaction (a record whose idempotency key was used with
  // another body is one of them, 409). The commit answers one outcome per record; `stored`
  // false when nothing of the batch is stored. It may run on another thread, once.
  PollingSource::Commit prepare_polled(const std::string& source, const PollBatch& batch);
  // A lookup table was published (MappingRepository's listener): tells every destination's
  // connector (Connector::on_table_published), on the caller's thread. Never throws.
  void table_published(const PublishedTable& table);

  // The polling sources' states (for the dashboard), by source name.
  std::vector<PollingState> polling_states() const;

  // HubServices
  Status post(const std::string& destination, const std::string& type,
              const std::string& correlation, const std::string& body, std::string& id) override;
  void wake(const std::string& destination, const std::string& key) override;
  void wake_delivery(const std::string& destination, int64_t delivery_id,
                     const std::string& key) override;
  Status submit(const std::string& source, const std::string& body,
                const std::string& idempotency_key, std::string& id, bool& duplicate) override;
  // The pairings of persons with partners (core/pairing_store.h).
  PairingStore& pairings() { return *pairings_; }
  // The cross-references of the store (core/xref_store.h); thread-safe.
  XrefStore& xrefs() { return *xrefs_; }

  bool has_source(const std::string& name) const { return config_.sources.count(name) > 0; }
  bool ready() const;
  Store& store() { return *store_; }
  // The engine every store of this hub was opened on (the API opens the console's there).
  StoreBackend& stores() { return *backend_; }
  // The keys of store.encryption (null: no encryption), loaded once at start-up; shared with
  // the other readers of the store file (the console store).
  std::shared_ptr<const AtRestCipher> store_cipher() const { return cipher_; }
  Dispatcher& dispatcher() { return *dispatcher_; }
  Metrics& metrics() { return metrics_; }
  const HubConfig& config() const { return config_; }
  const Clock& clock() const { return clock_; }
  // The configured destination's connector (owned by the hub), or null. Thread-safe
  // (connectors are).
  Connector* connector(const std::string& destination) const {
    auto it = connectors_.find(destination);
    return it == connectors_.end() ? nullptr : it->second.get();
  }

 private:
  struct Prepared {
    AcceptResponse error;  // status != 0 when preparation failed
    bool failed = false;
    Incoming incoming;
  };
  // The message of `request` ready to commit (one Incoming in `batch`, its destinations in
  // `dests`), or false with the refusal in `refused` (unknown source, a body refused).
  bool stage(const AcceptRequest& request, std::vector<Incoming>& batch,
             std::vector<std::string>& dests, AcceptResponse& refused);
  Prepared prepare(const SourceConfig& source, const std::string& body,
                   const std::string& idempotency_header,
                   const std::map<std::string, std::string>& headers);
  struct PreparedBatch {
    std::vector<Incoming> batch;
    std::vector<size_t> slot_of;                  // batch index → answer index
    std::vector<std::vector<std::string>> dests;  // per batch index
  };
  // Prepares every record (NDJSON lines take the shape of polled records): one answer per
  // record in `out` (refusals filled in), the rest to commit.
  PreparedBatch prepare_all(const SourceConfig& source, const std::vector<PolledRecord>& records,
                            const std::map<std::string, std::string>& headers,
                            std::vector<AcceptResponse>& out);
  void settle_all(const std::string& source, const std::vector<AcceptResult>& results,
                  const PreparedBatch& pb, std::vector<AcceptResponse>& out);
  AttemptResult process(const QueuedDelivery& q, int slot);
  // process(), with any exception turned into a retry (the dispatcher's contract: no throw).
  AttemptResult process_guarded(const QueuedDelivery& q, int slot);
  // 503 with Retry-After: the store could not commit.
  static void not_stored(const AcceptResult& r, AcceptResponse& out);
  // Turns a store result into the answer and counts it.
  void settle(const std::string& source, const AcceptResult& r,
              const std::vector<std::string>& dests, AcceptResponse& out);

  struct SourceCounters {
    Counter* received = nullptr;
    Counter* rejected = nullptr;
    Counter* unrouted = nullptr;
    Counter* duplicates = nullptr;
    std::map<std::string, Counter*> routed;  // by destination
  };

  HubConfig config_;
  const Clock& clock_;
  Metrics metrics_;
  IdGenerator ids_;
  std::shared_ptr<const AtRestCipher> cipher_;
  std::unique_ptr<StoreBackend> backend_;  // before every store opened on it
  std::unique_ptr<Store> store_;
  std::unique_ptr<XrefStore> xrefs_;  // on the store's file; before the connectors that use it
  std::unique_ptr<PairingStore> pairings_;  // likewise
  std::map<std::string, std::unique_ptr<Connector>> connectors_;
  std::map<std::string, std::unique_ptr<Enricher>> enrichers_;
  std::map<std::string, const RouteConfig*> routes_by_name_;
  std::map<std::string, SourceCounters> counters_;  // by source; filled by the constructor
  std::shared_ptr<MappingStage> mappings_;
  std::unique_ptr<Dispatcher> dispatcher_;
  // After the dispatcher: stopped first, destroyed first.
  std::vector<std::unique_ptr<PollingSource>> polling_;
  // Several nodes: the membership, the feed that turns it into work, the wake-ups' bus.
  std::unique_ptr<Membership> membership_;
  std::unique_ptr<ClusterFeed> feed_;
  ChangeBus* changes_ = nullptr;
  int wake_subscription_ = -1;
  void set_polling(bool on);
  std::atomic<bool> running_{false};
};

// Parses JSON text through read_json (core/json_reader.h): nesting bounded by `max_depth`,
// integers beyond 64 bits kept as written, duplicate keys refused. On failure fills `error`:
// 400 "malformed JSON" or 422 "too deeply nested" / "duplicate key", with the position
// (offset, line, column) when known.
bool parse_json_body(const std::string& text, nlohmann::json& out, AcceptResponse& error,
                     size_t max_depth = kDefaultJsonMaxDepth);

}  // namespace relais

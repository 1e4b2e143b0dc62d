#pragma once
// The delivery scheduler: one durable-backed queue per destination, FIFO per correlation key,
// not-before times, exponential back-off with full jitter, dead-letter with a hold/release
// policy per destination, and the people's actions (retry, discard).
//
// Memory is bounded by the destinations' `queue_in_memory`, not by the backlog: on one node, a
// destination that holds that many active deliveries leaves the next ones in the store (they are
// committed already) and its pager reads them back, in id order and with their messages, as the
// queue drains below half — so a backlog of millions (a go-live, a partner down for days) costs
// the store's rows, not memory, and a restart reads the first pages, not the whole backlog.
// Order per key holds because every delivery of a key with a higher id is either queued behind
// the earlier ones or still in the store, read later. Several nodes (set_cluster) keep their
// partitions' deliveries in memory (the feed's order is by transaction, not by id).

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/clock.h"
#include "core/metrics.h"
#include "core/retry_policy.h"
#include "core/status.h"
#include "core/store.h"

namespace relais {

struct DestinationSettings {
  std::string name;
  int concurrency = 1;
  RetryPolicy retry;
  bool hold_on_dead = true;
  // Queued deliveries beyond this many keep no message body in memory (it is read from the
  // store when their turn comes): a long backlog costs ids, not bodies.
  size_t max_cached_messages = 10000;
  // Active deliveries held in memory at most (0 = no bound); beyond, the backlog stays in the
  // store and is paged back in id order (see the file comment).
  size_t queue_in_memory = 10000;
  // The workers' CPU niceness (0-19, 0 = as the process): above 0 they yield the cores to the
  // intake when the machine is saturated (a go-live backfill).
  int nice = 0;
  // Only the newest delivery of a correlation key matters (e.g. an appointment's reminder):
  // when a newer delivery of the same key arrives, the older ones still waiting (not in
  // flight) are skipped, with a reason naming the newer message.
  bool replace_pending = false;
};

// What processing one attempt produced (mapping + connector).
struct AttemptResult {
  Outcome outcome;
  std::optional<std::string> payload;  // the mapped payload, when a mapping ran
  std::string mapping;
  int64_t mapping_version = 0;
  std::vector<std::string> flags;  // quality flags raised by enrichers
};

// Runs one attempt for a delivery. Called concurrently from worker threads; `slot` is the
// worker's index within its destination. Must not throw.
using ProcessFn = std::function<AttemptResult(const QueuedDelivery&, int slot)>;

struct DestinationStats {
  std::string name;
  size_t queued = 0;     // active deliveries (pending + retrying + in flight), memory + store
  size_t in_memory = 0;  // of which held in memory (the rest is paged back from the store)
  size_t in_flight = 0;
  size_t held_keys = 0;        // keys waiting behind a dead delivery
  Millis oldest_received = 0;  // 0 when empty
  // The partner asked to slow down: the whole destination pauses until this time (0 = not
  // paused), or some of its accounts do (throttled_scopes, paused now).
  Millis throttled_until = 0;
  size_t throttled_scopes = 0;
};

// Thread-safe. Owns its worker threads; does not own the store (which must outlive it).
// Lifecycle: add_destination()* → enqueue/hold (recovery) → start() → … → stop().
class Dispatcher {
 public:
  Dispatcher(Store& store, Metrics& metrics, const Clock& clock, ProcessFn process);
  ~Dispatcher();

  void add_destination(const DestinationSettings& settings);
  bool has_destination(const std::string& name) const;

  // New or recovered active deliveries. Unknown destinations are counted and left in the store.
  void enqueue(std::vector<QueuedDelivery>&& deliveries);
  // Marks a key as held behind a dead delivery (recovery of the hold policy).
  void hold(const HeldKey& held);

  // Several nodes (routing/cluster_feed.h). Before start(): `may_start(key, delivery_id)` is
  // asked before every attempt (lock-free, quick: the key's partition is owned here); a key it
  // refuses waits, queued, and is asked again a little later. With `cluster` set, a person's
  // retry or discard of a delivery this node does not hold is written to the store only: the
  // node that owns its key picks it up through its feed (apply_feed).
  using KeyGate = std::function<bool(const std::string& key, int64_t delivery_id)>;
  void set_cluster(KeyGate may_start);
  // Forgets the queued deliveries and held keys that `which` selects (a partition lost): they
  // stay in the store for the next owner. An attempt in flight finishes and records its
  // outcome; its key is forgotten then.
  void release(const KeyGate& which);
  // Whether no attempt of a key `which` selects is in flight.
  bool idle(const KeyGate& which) const;
  // The feed's rows for the keys this node owns: new deliveries are queued (a delivery already
  // queued is not queued twice), a re-activated one too (a person's retry: it releases the key
  // it held), a queued one made due sooner is due sooner, one no longer active (discarded
  // elsewhere) is dropped unless in flight.
  void apply_feed(std::vector<FeedRow>&& rows);

  // One node, before start(): the active deliveries the store holds are read back page by page
  // (not all at once) once started. Returns how many there are (0 when they cannot be counted:
  // the pages still come, the figures catch up). Deliveries of destinations not configured are
  // counted (unknown_destination_count) and left in the store.
  int64_t recover();

  void start();
  // Stops taking work; waits for in-flight attempts to finish (their outcomes are recorded),
  // at most grace_ms, then returns. Pending deliveries stay in the store.
  void stop(Millis grace_ms);

  // A person's actions. Answer statuses: 200, 404 (no such delivery), 409 (not in a state that
  // allows it, e.g. in flight).
  Status retry(int64_t delivery_id);
  // Makes the head of (destination, correlation key) due now when it waits for a later time (a
  // deferred delivery whose reason is gone: a pairing made). Not an attempt; nothing when the
  // key is idle, in flight or held.
  void wake(const std::string& destination, const std::string& key);
  // The same for the delivery `delivery_id` of key `key` ("" = a delivery without correlation
  // key, its own queue).
  void wake_delivery(const std::string& destination, int64_t delivery_id, const std::string& key);
  Status discard(int64_t delivery_id, const std::string& reason);

  bool in_flight(int64_t delivery_id) const;
  std::vector<DestinationStats> stats() const;
  size_t unknown_destination_count() const { return unknown_.load(); }

 private:
  struct KeyQueue;
  struct Dest;
  void wake_queue(const std::string& destination, const std::string& queue);
  using ReadyEntry = std::tuple<Millis, int64_t, KeyQueue*>;

  struct KeyQueue {
    std::string key;
    std::deque<QueuedDelivery> items;  // by delivery id
    int64_t busy_id = 0;               // delivery in flight (0 = none)
    int64_t held_by = 0;               // dead delivery holding the key (0 = none)
    bool in_ready = false;
    bool wake_pending = false;  // woken while in flight: a deferral that comes back is due now
    bool released = false;      // its partition was lost while in flight: forgotten once settled
    ReadyEntry ready_entry{};
  };

  struct OutcomeCounters {
    Counter* delivered;
    Counter* skipped;
    Counter* retried;
    Counter* dead;
    Counter* throttled;
  };

  struct Dest {
    DestinationSettings settings;
    mutable std::mutex mu;
    std::condition_variable cv;
    std::unordered_map<std::string, KeyQueue> keys;
    std::set<ReadyEntry> ready;
    std::unordered_map<int64_t, std::string> index;  // delivery id → key (active, in memory)
    std::vector<std::thread> workers;
    size_t in_flight = 0;
    Histogram* latency = nullptr;
    std::mutex counters_mu;  // guards `counters` (a leaf lock: nothing else is taken inside)
    std::unordered_map<std::string, OutcomeCounters> counters;  // by source; entries stay put
    Histogram* attempt_duration = nullptr;
    // Throttling asked by the partner (guarded by mu): no attempt starts before paused_until;
    // scoped pauses are the connector's to enforce, kept here for the dashboard.
    Millis paused_until = 0;
    std::unordered_map<std::string, Millis> scope_paused_until;
    // The backlog left in the store (guarded by mu; see the file comment). While `paging`,
    // every active delivery with an id up to `paged_upto` has been offered to memory and those
    // above it are read back by the pager; `spilled_max` is the highest id left in the store
    // since (a page that ends without a newer one spilled during its read ends the paging);
    // `stored` counts them for the figures. Paging starts above `max_offered`, so a page never
    // brings back a delivery that memory already had. `actions` are a person's retry (due now)
    // or discard of a delivery still in the store, applied when a page brings it; one whose
    // discard is still being written waits in `vetoed` (a failed discard queues it again).
    bool paging = false;
    int64_t paged_upto = 0;
    int64_t spilled_max = 0;
    size_t stored = 0;
    int64_t max_offered = 0;  // the highest id ever queued in memory
    enum class Action { DueNow, Discarding, Discarded };
    std::unordered_map<int64_t, Action> actions;
    std::unordered_map<int64_t, QueuedDelivery> vetoed;
  };

  static std::string queue_key(const QueuedDelivery& d);
  size_t memory_bound(const Dest& d) const;
  // Whether `q` stays in the store (the destination is paging and `q` comes after the pages
  // read so far): counted, not queued.
  bool spill_locked(Dest& d, const QueuedDelivery& q);
  // Whether `id` is an active delivery left in the store, not yet read back.
  static bool in_store_locked(const Dest& d, int64_t id) { return d.paging && id > d.paged_upto; }
  // The pager: reads the next page of each destination whose memory queue ran low.
  void pager();
  bool page(Dest& d);                    // one page; true when more may follow at once
  void want_page(Dest& d);               // under d.mu: wakes the pager when the queue ran low
  void wake_workers(Dest& d, size_t n);  // n deliveries became ready
  // What a queue key stands for: the correlation key, or "" and the delivery id of a delivery
  // without one.
  static bool selects(const KeyGate& which, const KeyQueue& kq);
  void forget_locked(Dest& d, KeyQueue& kq);  // release() of one key (kq may be gone after)
  // `replaced` collects the store updates of deliveries superseded by a newer one of their key
  // (replace_pending); the caller records them after releasing the destination's lock.
  void insert_locked(Dest& d, QueuedDelivery q, std::vector<DeliveryUpdate>& replaced);
  void replace_older_locked(Dest& d, KeyQueue& kq, std::vector<DeliveryUpdate>& replaced);
  void record_replaced(std::vector<DeliveryUpdate>& replaced);
  void make_ready_locked(Dest& d, KeyQueue& kq);
  void unready_locked(Dest& d, KeyQueue& kq);
  void drop_if_idle_locked(Dest& d, KeyQueue& kq);
  void worker(Dest& d, int slot);
  const OutcomeCounters& counters_for(Dest& d, const std::string& source);
  // What an attempt decided for its delivery, applied to the key once it is committed.
  struct Settled {
    DeliveryState state = DeliveryState::Pending;
    bool deferred = false;
    int attempts = 0;
    Millis next = 0;  // next attempt (retrying, deferred)
  };
  void finish(Dest& d, const QueuedDelivery& q, const AttemptResult& r, Millis started,
              Millis ended);
  // Runs on the store's completion thread once the outcome is durable: the key moves on.
  void settle(Dest& d, const QueuedDelivery& q, const Settled& s);
  Dest* find(const std::string& name) const;
  double uniform01();

  Store& store_;
  Metrics& metrics_;
  const Clock& clock_;
  ProcessFn process_;
  std::map<std::string, std::unique_ptr<Dest>> dests_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> started_{false};
  std::atomic<size_t> unknown_{0};
  KeyGate gate_;          // set before start(), read-only after
  bool cluster_ = false;  // idem
  std::mutex rng_mu_;
  std::mt19937_64 rng_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  std::mutex pager_mu_;
  std::condition_variable pager_cv_;
  bool pager_wanted_ = false;               // guarded by pager_mu_
  std::atomic<bool> pager_failing_{false};  // the last page could not be read
  std::thread pager_thread_;
};

}  // namespace relais

#pragma once
// The dispatch of one node among several on one PostgreSQL store (docs/scaling.md).
//
// Which node sends a correlation key's deliveries is decided by the membership (core/cluster.h:
// leases on partitions of the keys, in Redis). This class turns that into work for the node's
// dispatcher, from the store — the truth:
//   - a partition gained: its active deliveries and its held keys are read from the store and
//     queued, before anything of it is attempted (may_start() answers false until then);
//   - a partition lost: its queued deliveries are forgotten (an attempt in flight finishes);
//   - all along: the store's feed (Store::feed) gives the deliveries committed by any node since
//     this node's position, in commit order; those of its partitions are queued. A person's
//     retry or discard on another node comes the same way (the store re-feeds the row).
// Nothing the feed gives is queued twice (the dispatcher knows its ids), and a delivery is read
// either by the load of its partition (at or before the position) or by the feed (after it),
// never both and never neither: so order per key holds across a take-over, and Redis losing
// every key (FLUSHALL) costs a take-over, never a delivery.
//
// Also calls `on_leader(true/false)` when the node starts or stops leading (the hub starts or
// stops its polling sources). One thread; thread-safe.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/cluster.h"
#include "core/store.h"
#include "routing/dispatcher.h"

namespace relais {

class ClusterFeed {
 public:
  // Does not own its arguments, which must outlive it.
  ClusterFeed(Store& store, Dispatcher& dispatcher, Membership& membership, Millis poll_ms,
              std::function<void(bool leading)> on_leader);
  ~ClusterFeed();

  // The dispatcher's gate: the key's partition is owned here and has been read.
  bool may_start(const std::string& key, int64_t delivery_id) const;
  // Whether no attempt of `partition` is in flight here (the membership's release condition).
  bool idle(int partition) const;

  void start();
  // Stops the thread (after the dispatcher: nothing is queued afterwards).
  void stop();
  // Reads the feed now (a delivery was committed here).
  void wake();

  // For /readyz and the console: "" when the feed reads, else why not.
  std::string problem() const;

 private:
  void run();
  // One round: leadership, membership changes, loads, one page of the feed. True when there
  // may be more to read at once.
  bool round();
  bool load(const std::vector<int>& partitions);

  Store& store_;
  Dispatcher& dispatcher_;
  Membership& membership_;
  const Millis poll_ms_;
  std::function<void(bool)> on_leader_;
  const int parts_;

  std::unique_ptr<std::atomic<bool>[]> ready_;  // partition owned and read (the gate)
  // The feed thread's own state.
  std::vector<int> to_load_;
  bool positioned_ = false;
  bool leading_ = false;
  FeedPosition cursor_;

  mutable std::mutex mu_;  // problem_, the wake-up
  std::condition_variable cv_;
  bool woken_ = false;
  bool stop_ = false;
  std::string problem_;
  std::thread thread_;
};

}  // namespace relais

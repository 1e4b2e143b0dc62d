#pragma once
// Several relais nodes on one PostgreSQL store (docs/scaling.md): which node dispatches which
// correlation keys, and which node runs the jobs that must run once (the polling sources, the
// alert monitor, the retention purge).
//
// The keys are cut into a fixed number of partitions (a hash of the key); a node dispatches a
// partition only while it holds its lease (store/redis/redis_membership.h keeps them in Redis).
// PostgreSQL stays the truth: the deliveries live there, and a node that gains a partition
// reads that partition's active deliveries from the store (routing/cluster_feed.h).

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"

namespace relais {

// The `cluster:` section (meaningful with `store.kind: postgresql` and `redis:`). Plain value.
struct ClusterSettings {
  std::string node;          // this node's name, unique among the live nodes ("" = host-random)
  int partitions = 64;       // the same on every node (checked at start-up against Redis)
  Millis lease_ms = 5000;    // a dead node's keys are taken over after about this long (×2)
  Millis feed_poll_ms = 50;  // how often the store is read for deliveries committed elsewhere
};

// The partition of a correlation key (FNV-1a of the key); a delivery without key belongs to the
// partition of its id. Stable across nodes, versions and restarts: it decides who sends what.
int key_partition(const std::string& key, int64_t delivery_id, int partitions);

// A node's view of what it may do. Implementations are thread-safe; owns() and leader() are
// lock-free (read on the dispatch path, under the dispatcher's locks).
class Membership {
 public:
  virtual ~Membership() = default;

  virtual int partitions() const = 0;
  virtual const std::string& node() const = 0;
  // True while this node may start attempts for keys of `partition`: it holds the partition's
  // lease, the lease has not lapsed here, and the take-over wait is over.
  virtual bool owns(int partition) const = 0;
  // True while this node runs the jobs that must run on one node only.
  virtual bool leader() const = 0;
  // What changed since the last call, in the order it happened: (partition, true) when it
  // became owned, (partition, false) when it was lost (one caller: the feed, which applies
  // them in order). A partition lost is never owned again without being reported gained again.
  virtual std::vector<std::pair<int, bool>> take_changes() = 0;
  // For the console and /readyz: "3 nœuds, 21/64 partitions, meneur" or why nothing is owned.
  virtual std::string describe() const = 0;
  // False while the shared state cannot be reached (nothing can be owned then).
  virtual bool reachable() const = 0;
  // Starts taking part: registers the node, claims its share of the partitions, renews them.
  // `idle(p)` answers whether no attempt of partition p is in flight on this node: a partition
  // given up (another node joined, or stop()) is released only once it is idle, so that the
  // next owner starts at once and after every outcome of this node is committed.
  virtual void start(std::function<bool(int)> idle) = 0;
  // Gives every partition up (once idle) and the leadership; the others take over without
  // waiting for the leases to expire. Waits at most `grace_ms`.
  virtual void stop(Millis grace_ms) = 0;
};

}  // namespace relais

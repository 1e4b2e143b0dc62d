#pragma once
// The cluster membership of core/cluster.h kept in Redis: leases on the partitions of the
// correlation keys and on the leadership. Keys (all under the configured prefix):
//   <prefix>cluster:partitions   the partition count every node must agree on
//   <prefix>nodes                sorted set: node → last heartbeat (Redis's clock, ms)
//   <prefix>part:<p>             the node holding partition p, with the lease as TTL
//   <prefix>part:<p>:clean       set for a short while by a node that gave p up cleanly
//   <prefix>leader / leader:clean  the same for the jobs that run on one node
//
// Safety (docs/scaling.md): a node starts an attempt for partition p only while its lease is
// valid by its own clock, counted from when the renewal was *sent* (minus a margin); a node that
// claims a partition that was not given up cleanly (its holder died, or Redis lost its keys:
// FLUSHALL, a restart without persistence) waits one lease before dispatching it, so the
// previous holder's lease has lapsed by its own clock before the new holder starts. A lease
// that lapsed locally (Redis unreachable, a slow renewal) is lost for good: the node drops the
// partition and claims it again later like any other, reading it again from the store.
//
// One thread ticks every lease/5: one Lua script per tick registers the node, renews what it
// holds, releases what it gave up, claims its share — ceil(partitions / live nodes) — and the
// leadership. Thread-safe: owns() and leader() are lock-free.

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/cluster.h"
#include "core/shared_state.h"
#include "store/redis/redis_client.h"

namespace relais::redis {

class RedisMembership final : public Membership {
 public:
  // Throws std::runtime_error at start-up when Redis holds another partition count.
  RedisMembership(std::unique_ptr<RedisClient> client, std::string prefix,
                  ClusterSettings settings);
  ~RedisMembership() override;

  int partitions() const override { return settings_.partitions; }
  const std::string& node() const override { return settings_.node; }
  bool owns(int partition) const override;
  bool leader() const override;
  std::vector<std::pair<int, bool>> take_changes() override;
  std::string describe() const override;
  bool reachable() const override { return reachable_.load(); }
  void start(std::function<bool(int)> idle) override;
  void stop(Millis grace_ms) override;

 private:
  enum class State { Free, Grace, Active, Releasing };
  struct Lease {
    State state = State::Free;
    Millis grace_until = 0;
    std::atomic<Millis> valid_until{0};  // steady ms; owns() reads it
    std::atomic<bool> active{false};
  };
  void run();
  void tick(bool stopping);
  void lose(int p, Lease& l);      // under mu_
  void activate(int p, Lease& l);  // under mu_
  bool leader_lapsed(Millis now) const;

  std::unique_ptr<RedisClient> client_;
  const std::string prefix_;
  const ClusterSettings settings_;
  const Millis margin_;
  std::function<bool(int)> idle_;

  mutable std::mutex mu_;  // the states, the changes, the counters below
  std::vector<std::unique_ptr<Lease>> leases_;
  Lease leader_;
  std::vector<std::pair<int, bool>> changes_;
  long long live_nodes_ = 0;
  std::atomic<bool> reachable_{false};
  uint64_t seed_;

  std::atomic<bool> stop_{false};
  std::mutex wait_mu_;
  std::condition_variable cv_;
  std::thread thread_;
};

// The default node name: the host name and a random suffix (unique among live nodes).
std::string default_node_name();

// The membership of this node on the `redis:` section's Redis (its own connection; the node
// named by `cluster.node`, else default_node_name()). Throws std::runtime_error at start-up.
std::unique_ptr<Membership> open_redis_membership(const RedisSettings& redis,
                                                  ClusterSettings cluster);

}  // namespace relais::redis

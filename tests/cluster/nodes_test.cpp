// Three real relais nodes on one PostgreSQL and one Redis (tests/cluster/cluster_scenario.h):
// the short scenario of the regular suite — 3,000 messages over 300 keys, three SIGKILLs and a
// FLUSHALL — and what a node says of itself. The long one (20,000 messages, ≥ 10 kills, Redis
// and PostgreSQL restarted) is tests/cluster/crash_test.cpp.

#include "tests/cluster/cluster_scenario.h"

namespace relais::testing {
namespace {

TEST(ClusterNodes, ThreeNodesKilledAndRedisFlushedLoseNothingAndKeepOrderPerKey) {
  ClusterScenario s;
  s.nodes = 3;
  s.messages = 3000;
  s.keys = 300;
  s.kills = 3;
  s.flushes = 1;
  run_cluster_scenario(s);
}

}  // namespace
}  // namespace relais::testing

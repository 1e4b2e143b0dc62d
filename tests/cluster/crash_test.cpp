// The cluster crash test of issue 15 (tests/cluster/cluster_scenario.h): three nodes, 20,000
// messages over 1,000 keys, at least ten SIGKILLs of random nodes, a Redis restart without
// persistence, a PostgreSQL restart and a FLUSHALL, all while the clients send. Long: run in
// the release build only (scripts/test.sh).

#include "tests/cluster/cluster_scenario.h"

namespace relais::testing {
namespace {

TEST(ClusterCrash, ThreeNodesTenKillsRedisAndPostgresqlRestartsFlushall) {
  ClusterScenario s;
  s.nodes = 3;
  s.messages = 20000;
  s.keys = 1000;
  s.kills = 10;
  s.flushes = 1;
  s.redis_restart = true;
  s.pg_restart = true;
  run_cluster_scenario(s);
}

}  // namespace
}  // namespace relais::testing

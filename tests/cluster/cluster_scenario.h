#pragma once
// The cluster scenario (issue 15): real relais nodes on one PostgreSQL 15 and one redis-server,
// all started here on loopback ports; clients post messages of many correlation keys to the
// nodes in turn (a key's next message only once the previous one was acknowledged), while
// nodes are killed with SIGKILL at random moments and restarted, Redis is flushed or restarted
// without persistence, and PostgreSQL is restarted. The verdict is the user's promise:
//   - every acknowledged message reaches the partner (a 202, or a 200 "duplicate" for a resend
//     whose first 202 was lost to a kill);
//   - per key, the partner never sees an older message after a newer one, and the last one it
//     sees is the key's last message;
//   - the duplicates (a message delivered more than once) are printed, and bounded by what
//     the killed nodes had in flight: kills × the destination's concurrency.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "store/redis/redis_client.h"
#include "tests/support/crash_harness.h"
#include "tests/support/delivery_verdict.h"
#include "tests/support/pg_server.h"
#include "tests/support/redis_server.h"
#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {

// Real PostgreSQL 15 and redis-server started here, and relais nodes on them: `body` gives the
// sources, connectors and routes; the `redis:` and `cluster:` sections are added, each node gets
// its own state folder. Throws std::runtime_error when a server or a node cannot start. Owns
// everything it starts (stopped by the destructors, nodes first).
class ClusterRig {
 public:
  static constexpr const char* kPasswordEnv = "RELAIS_CLUSTER_PG_PASSWORD";
  ClusterRig() {
    pg.start();
    if (std::string why = redis.start(); !why.empty()) throw std::runtime_error(why);
  }
  ~ClusterRig() { nodes.clear(); }
  void start_nodes(int n, const std::string& body, const std::string& lease) {
    const std::string yaml = body + "redis:\n  uri: " + redis.uri() +
                             "\n  prefix: \"it:\"\n  timeout: 500ms\ncluster:\n  lease: " + lease +
                             "\n  partitions: 64\n";
    for (int i = 0; i < n; ++i) {
      states_.push_back(std::make_unique<TempDir>("relais-cluster-state-"));
      RelaisOptions o;
      o.binary = RELAIS_BINARY;
      o.body_yaml = yaml;
      o.log_level = "warn";
      o.store_section_yaml = pg.relais_store_section(kPasswordEnv, states_.back()->path());
      nodes.push_back(std::make_unique<RelaisProcess>(o));
      nodes.back()->start();
    }
  }

  PgServer pg;
  RedisServer redis{false};
  std::vector<std::unique_ptr<RelaisProcess>> nodes;

 private:
  std::vector<std::unique_ptr<TempDir>> states_;
};

struct ClusterScenario {
  int nodes = 3;
  int messages = 3000;
  int keys = 300;
  int clients = 8;
  int concurrency = 8;  // the destination's
  int kills = 3;        // SIGKILLs while sending (plus one while draining)
  int flushes = 1;      // FLUSHALL while sending
  bool redis_restart = false;
  bool pg_restart = false;
  std::string lease = "2s";
};

inline void run_cluster_scenario(const ClusterScenario& s) {
  using std::chrono::milliseconds;
  using SteadyClock = std::chrono::steady_clock;
  auto t_start = SteadyClock::now();

  ClusterRig rig;
  PgServer& pg = rig.pg;
  RedisServer& redis = rig.redis;

  ArrivalLog sink;
  std::string body =
      "sources:\n  app:\n    type: $.type\n    correlation: \"{$.key}\"\n    idempotency: $.id\n"
      "connectors:\n  sink:\n    connector: http\n    url: http://127.0.0.1:" +
      std::to_string(sink.port()) + "/in\n    concurrency: " + std::to_string(s.concurrency) +
      "\n    timeout: 5s\n    retry:\n      initial: 100ms\n      max: 1s\n"
      "      max_attempts: 1000\n"
      "routes:\n  - name: all\n    source: app\n    to:\n      - destination: sink\n";
  rig.start_nodes(s.nodes, body, s.lease);
  auto& nodes = rig.nodes;
  std::vector<std::atomic<int>> ports(static_cast<size_t>(s.nodes));
  for (int i = 0; i < s.nodes; ++i) ports[static_cast<size_t>(i)] = nodes[i]->port();

  unsigned seed = std::random_device{}();
  std::cout << "cluster: seed " << seed << std::endl;
  std::mt19937 rng(seed);

  // --- clients: a key's messages in order, each try to the next node --------------------------
  PostingClients clients(
      s.messages, s.keys, s.clients, nodes[0]->token(), "cluster",
      [&](int turn) { return ports[static_cast<size_t>(turn % s.nodes)].load(); });

  // --- disruptions at random moments while the clients send --------------------------------------
  enum class Ev { Kill, Flush, RedisRestart, PgRestart };
  std::vector<std::pair<int, Ev>> events;
  std::uniform_int_distribution<int> at(s.messages / 20, s.messages - s.messages / 20);
  for (int i = 0; i < s.kills; ++i) events.emplace_back(at(rng), Ev::Kill);
  for (int i = 0; i < s.flushes; ++i) events.emplace_back(at(rng), Ev::Flush);
  if (s.redis_restart) events.emplace_back(at(rng), Ev::RedisRestart);
  if (s.pg_restart) events.emplace_back(at(rng), Ev::PgRestart);
  std::sort(events.begin(), events.end());
  std::uniform_int_distribution<int> jitter_us(0, 20000);
  std::uniform_int_distribution<int> which(0, s.nodes - 1);
  int kills = 0, flushes = 0, redis_restarts = 0, pg_restarts = 0;
  auto kill_one = [&] {
    std::this_thread::sleep_for(std::chrono::microseconds(jitter_us(rng)));
    int i = which(rng);
    ports[static_cast<size_t>(i)] = 0;
    nodes[static_cast<size_t>(i)]->kill9();
    ++kills;
    nodes[static_cast<size_t>(i)]->restart();
    ports[static_cast<size_t>(i)] = nodes[static_cast<size_t>(i)]->port();
  };
  auto admin = [&] {
    redis::RedisAddress a;
    std::string error;
    redis::RedisAddress::parse(redis.uri(), a, error);
    return std::make_unique<redis::RedisClient>(a, milliseconds(1000), "test");
  }();
  auto run_event = [&](Ev ev) {
    switch (ev) {
      case Ev::Kill:
        kill_one();
        break;
      case Ev::Flush: {
        redis::RedisReply r;
        EXPECT_TRUE(admin->command({"FLUSHALL"}, r).ok);
        ++flushes;
        std::cout << "cluster: FLUSHALL at " << clients.acknowledged() << " acknowledged"
                  << std::endl;
        break;
      }
      case Ev::RedisRestart:
        redis.stop();
        std::this_thread::sleep_for(milliseconds(1500));
        EXPECT_EQ(redis.start(), "");
        ++redis_restarts;
        std::cout << "cluster: Redis restarted at " << clients.acknowledged() << std::endl;
        break;
      case Ev::PgRestart:
        pg.stop();
        std::this_thread::sleep_for(milliseconds(1500));
        pg.start();
        ++pg_restarts;
        std::cout << "cluster: PostgreSQL restarted at " << clients.acknowledged() << std::endl;
        break;
    }
  };
  auto send_deadline = SteadyClock::now() + std::chrono::seconds(600);
  size_t next = 0;
  while (clients.acknowledged() < s.messages && SteadyClock::now() < send_deadline) {
    if (next < events.size() && clients.acknowledged() >= events[next].first) {
      run_event(events[next++].second);
    } else {
      std::this_thread::sleep_for(milliseconds(1));
    }
  }
  // A long disruption (a restart waits 1.5 s) can let the clients finish before the events
  // drawn after it came due: they still happen, while the queues drain, so every scenario
  // runs the disruptions it promises.
  int late = 0;
  for (; next < events.size(); ++next, ++late) run_event(events[next].second);
  if (late > 0)
    std::cout << "cluster: " << late << " disruption(s) after the last acknowledgement"
              << std::endl;
  clients.finish();
  auto t_sent = SteadyClock::now();
  ASSERT_EQ(clients.acknowledged(), s.messages)
      << "the clients could not get every message accepted";
  kill_one();  // one more while the queues drain

  // --- drain -------------------------------------------------------------------------------------
  bool drained = wait_until([&] { return sink.distinct() == static_cast<size_t>(s.messages); },
                            std::chrono::seconds(240), milliseconds(50));
  expect_queues_empty(nodes[0]->base_url(), nodes[0]->token(), std::chrono::seconds(20));
  auto t_end = SteadyClock::now();

  // --- verdict -----------------------------------------------------------------------------------
  DeliveryVerdict v = judge_deliveries(
      sink.arrivals(), [&](int n) { return clients.status(n) != 0; }, s.messages, s.keys);
  auto secs = [](auto a, auto b) {
    return std::chrono::duration_cast<milliseconds>(b - a).count() / 1000.0;
  };
  std::cout << "cluster: " << s.nodes << " nodes, " << v.acknowledged << " acknowledged, "
            << v.delivered << " delivered, " << v.duplicates << " duplicate deliveries (bound "
            << kills * s.concurrency << "), " << kills << " kills, " << flushes << " FLUSHALL, "
            << redis_restarts << " Redis restarts, " << pg_restarts << " PostgreSQL restarts"
            << std::endl;
  std::cout << "cluster: " << clients.transport_errors() << " connection errors and "
            << clients.other_statuses() << " other answers retried by the clients, "
            << v.backwards.size() << " states gone backwards, " << v.wrong_last
            << " keys not ending on their last message; sending " << secs(t_start, t_sent)
            << " s, total " << secs(t_start, t_end) << " s" << std::endl;

  EXPECT_EQ(kills, s.kills + 1);
  EXPECT_TRUE(drained) << "the sink did not receive every message in time (" << sink.distinct()
                       << " of " << s.messages << ")";
  EXPECT_EQ(v.acknowledged, s.messages);
  EXPECT_TRUE(v.lost.empty()) << v.lost.size()
                              << " acknowledged message(s) never delivered, e.g. n="
                              << (v.lost.empty() ? -1 : v.lost.front());
  EXPECT_LE(v.duplicates, kills * s.concurrency)
      << "more duplicates than the killed nodes could have had in flight";
  for (const auto& b : v.backwards) ADD_FAILURE() << "a partner's state went backwards: " << b;
  EXPECT_EQ(v.wrong_last, 0) << "the last state seen is not the last message, e.g. "
                             << v.wrong_example;
  // Every node takes its share once things are calm again (/readyz says what it sends).
  auto shares = [&] {
    std::vector<int> out;
    for (auto& n : nodes) {
      HttpResponse r = n->client().get("/readyz");
      std::string c = r.status == 200 ? r.json().value("cluster", "") : "";
      size_t slash = c.find("/64 partitions");
      size_t colon = c.rfind(": ", slash);
      out.push_back(slash == std::string::npos || colon == std::string::npos
                        ? -1
                        : std::atoi(c.substr(colon + 2, slash - colon - 2).c_str()));
    }
    return out;
  };
  bool shared_out = wait_until(
      [&] {
        auto v = shares();
        int total = 0;
        for (int x : v) {
          if (x <= 0) return false;
          total += x;
        }
        return total == 64;
      },
      std::chrono::seconds(30), milliseconds(200));
  std::string seen_shares;
  for (int x : shares()) seen_shares += std::to_string(x) + " ";
  std::cout << "cluster: partitions per node at the end: " << seen_shares << std::endl;
  EXPECT_TRUE(shared_out) << "the 64 partitions are not shared out among the live nodes: "
                          << seen_shares;
  for (auto& n : nodes) EXPECT_EQ(n->stop(std::chrono::seconds(30)), 0) << n->stderr_text();
}

}  // namespace relais::testing

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
#include <string>
#include <thread>
#include <vector>

#include "store/redis/redis_client.h"
#include "tests/support/pg_server.h"
#include "tests/support/redis_server.h"
#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {

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
  using json = nlohmann::json;
  using std::chrono::milliseconds;
  using SteadyClock = std::chrono::steady_clock;
  constexpr const char* kPasswordEnv = "RELAIS_CLUSTER_PG_PASSWORD";
  auto t_start = SteadyClock::now();
  auto key_of = [&](int n) { return n % s.keys; };

  PgServer pg;
  pg.start();
  RedisServer redis(false);
  ASSERT_EQ(redis.start(), "");

  struct SinkState {
    std::mutex mu;
    std::vector<int> arrivals;
  };
  auto sink_state = std::make_shared<SinkState>();
  relais::tools::HttpSink sink(0, false, 32);
  sink.set_responder([sink_state](const relais::tools::SinkRequest& req) {
    json j = json::parse(req.body, nullptr, false);
    relais::tools::SinkResponse out;
    if (!j.is_object() || !j.contains("n")) {
      out.status = 400;
      return out;
    }
    std::lock_guard<std::mutex> lock(sink_state->mu);
    sink_state->arrivals.push_back(j["n"].get<int>());
    return out;
  });

  std::string body =
      "sources:\n  app:\n    type: $.type\n    correlation: \"{$.key}\"\n    idempotency: $.id\n"
      "connectors:\n  sink:\n    connector: http\n    url: http://127.0.0.1:" +
      std::to_string(sink.port()) + "/in\n    concurrency: " + std::to_string(s.concurrency) +
      "\n    timeout: 5s\n    retry:\n      initial: 100ms\n      max: 1s\n"
      "      max_attempts: 1000\n"
      "routes:\n  - name: all\n    source: app\n    to:\n      - destination: sink\n"
      "redis:\n  uri: " +
      redis.uri() + "\n  prefix: \"it:\"\n  timeout: 500ms\ncluster:\n  lease: " + s.lease +
      "\n  partitions: 64\n";
  std::vector<std::unique_ptr<TempDir>> states;
  std::vector<std::unique_ptr<RelaisProcess>> nodes;
  for (int i = 0; i < s.nodes; ++i) {
    states.push_back(std::make_unique<TempDir>("relais-cluster-state-"));
    RelaisOptions o;
    o.binary = RELAIS_BINARY;
    o.body_yaml = body;
    o.log_level = "warn";
    o.store_section_yaml = pg.relais_store_section(kPasswordEnv, states.back()->path());
    nodes.push_back(std::make_unique<RelaisProcess>(o));
    nodes.back()->start();
  }
  std::vector<std::atomic<int>> ports(static_cast<size_t>(s.nodes));
  for (int i = 0; i < s.nodes; ++i) ports[static_cast<size_t>(i)] = nodes[i]->port();

  unsigned seed = std::random_device{}();
  std::cout << "cluster: seed " << seed << std::endl;
  std::mt19937 rng(seed);

  // --- clients: a key's messages in order, each to the next node ---------------------------------
  std::vector<std::atomic<int>> acked_status(static_cast<size_t>(s.messages));
  for (auto& a : acked_status) a = 0;
  std::atomic<int> acked{0}, transport_errors{0}, other_statuses{0};
  std::atomic<bool> give_up{false};
  std::vector<std::thread> clients;
  const std::string token = nodes[0]->token();
  for (int c = 0; c < s.clients; ++c) {
    clients.emplace_back([&, c] {
      HttpClient http("", token);
      http.set_timeout_ms(10000);
      int turn = c;
      for (int n = 0; n < s.messages && !give_up; ++n) {
        if (key_of(n) % s.clients != c) continue;
        std::string text = json{
            {"type", "cluster.test"},
            {"id", "cluster-" + std::to_string(n)},
            {"key", "key-" + std::to_string(key_of(n))},
            {"n", n}}.dump();
        while (!give_up) {
          int port = ports[static_cast<size_t>(turn++ % s.nodes)].load();
          HttpResponse r;
          if (port != 0) {
            r = http.post_json(
                "http://127.0.0.1:" + std::to_string(port) + "/api/v1/sources/app/messages", text);
          }
          if (r.status == 202 || (r.status == 200 && r.json().value("duplicate", false))) {
            acked_status[static_cast<size_t>(n)] = static_cast<int>(r.status);
            ++acked;
            break;
          }
          (r.status == 0 ? transport_errors : other_statuses)++;
          std::this_thread::sleep_for(milliseconds(10));  // the client's back-off
        }
      }
    });
  }

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
  auto send_deadline = SteadyClock::now() + std::chrono::seconds(600);
  size_t next = 0;
  while (acked.load() < s.messages && SteadyClock::now() < send_deadline) {
    if (next < events.size() && acked.load() >= events[next].first) {
      switch (events[next].second) {
        case Ev::Kill:
          kill_one();
          break;
        case Ev::Flush: {
          redis::RedisReply r;
          EXPECT_TRUE(admin->command({"FLUSHALL"}, r).ok);
          ++flushes;
          std::cout << "cluster: FLUSHALL at " << acked.load() << " acknowledged" << std::endl;
          break;
        }
        case Ev::RedisRestart:
          redis.stop();
          std::this_thread::sleep_for(milliseconds(1500));
          EXPECT_EQ(redis.start(), "");
          ++redis_restarts;
          std::cout << "cluster: Redis restarted at " << acked.load() << std::endl;
          break;
        case Ev::PgRestart:
          pg.stop();
          std::this_thread::sleep_for(milliseconds(1500));
          pg.start();
          ++pg_restarts;
          std::cout << "cluster: PostgreSQL restarted at " << acked.load() << std::endl;
          break;
      }
      ++next;
    } else {
      std::this_thread::sleep_for(milliseconds(1));
    }
  }
  give_up = true;
  for (auto& t : clients) t.join();
  auto t_sent = SteadyClock::now();
  ASSERT_EQ(acked.load(), s.messages) << "the clients could not get every message accepted";
  kill_one();  // one more while the queues drain

  // --- drain -------------------------------------------------------------------------------------
  auto delivered_set = [&] {
    std::lock_guard<std::mutex> lock(sink_state->mu);
    return std::set<int>(sink_state->arrivals.begin(), sink_state->arrivals.end());
  };
  bool drained =
      wait_until([&] { return delivered_set().size() == static_cast<size_t>(s.messages); },
                 std::chrono::seconds(240), milliseconds(50));
  HttpClient api(nodes[0]->base_url(), nodes[0]->token());
  for (const char* state : {"pending", "retrying", "dead"}) {
    bool empty = wait_until(
        [&] {
          HttpResponse r = api.get(std::string("/api/v1/messages?limit=5&state=") + state);
          return r.status == 200 && r.json()["items"].empty();
        },
        std::chrono::seconds(20), milliseconds(100));
    EXPECT_TRUE(empty) << "deliveries left in state " << state;
  }
  auto t_end = SteadyClock::now();

  // --- verdict -----------------------------------------------------------------------------------
  std::vector<int> arrivals;
  {
    std::lock_guard<std::mutex> lock(sink_state->mu);
    arrivals = sink_state->arrivals;
  }
  std::map<int, int> times;
  for (int n : arrivals) ++times[n];
  int acknowledged = 0, delivered = 0, duplicates = 0;
  std::vector<int> lost;
  for (int n = 0; n < s.messages; ++n) {
    if (acked_status[static_cast<size_t>(n)] == 0) continue;
    ++acknowledged;
    auto it = times.find(n);
    if (it == times.end()) {
      lost.push_back(n);
      continue;
    }
    ++delivered;
    duplicates += it->second - 1;
  }
  std::map<int, int> newest, last_seen;
  std::vector<std::string> backwards;
  for (int n : arrivals) {
    int k = key_of(n);
    auto it = newest.find(k);
    if (it != newest.end() && n < it->second && backwards.size() < 10) {
      backwards.push_back("key-" + std::to_string(k) + ": " + std::to_string(n) +
                          " delivered after " + std::to_string(it->second));
    }
    if (it == newest.end() || n > it->second) newest[k] = n;
    last_seen[k] = n;
  }
  int wrong_last = 0;
  std::string wrong_example;
  for (int k = 0; k < s.keys; ++k) {
    int last_n = -1;
    for (int n = k; n < s.messages; n += s.keys) last_n = n;
    if (last_seen.count(k) == 0 || last_seen[k] != last_n) {
      if (wrong_last++ == 0) {
        wrong_example = "key-" + std::to_string(k) + " ends on " +
                        (last_seen.count(k) ? std::to_string(last_seen[k]) : "nothing") +
                        " instead of " + std::to_string(last_n);
      }
    }
  }
  auto secs = [](auto a, auto b) {
    return std::chrono::duration_cast<milliseconds>(b - a).count() / 1000.0;
  };
  std::cout << "cluster: " << s.nodes << " nodes, " << acknowledged << " acknowledged, "
            << delivered << " delivered, " << duplicates << " duplicate deliveries (bound "
            << kills * s.concurrency << "), " << kills << " kills, " << flushes << " FLUSHALL, "
            << redis_restarts << " Redis restarts, " << pg_restarts << " PostgreSQL restarts"
            << std::endl;
  std::cout << "cluster: " << transport_errors.load() << " connection errors and "
            << other_statuses.load() << " other answers retried by the clients, "
            << backwards.size() << " states gone backwards, " << wrong_last
            << " keys not ending on their last message; sending " << secs(t_start, t_sent)
            << " s, total " << secs(t_start, t_end) << " s" << std::endl;

  EXPECT_EQ(kills, s.kills + 1);
  EXPECT_TRUE(drained) << "the sink did not receive every message in time ("
                       << delivered_set().size() << " of " << s.messages << ")";
  EXPECT_EQ(acknowledged, s.messages);
  EXPECT_TRUE(lost.empty()) << lost.size() << " acknowledged message(s) never delivered, e.g. n="
                            << (lost.empty() ? -1 : lost.front());
  EXPECT_LE(duplicates, kills * s.concurrency)
      << "more duplicates than the killed nodes could have had in flight";
  for (const auto& b : backwards) ADD_FAILURE() << "a partner's state went backwards: " << b;
  EXPECT_EQ(wrong_last, 0) << "the last state seen is not the last message, e.g. " << wrong_example;
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

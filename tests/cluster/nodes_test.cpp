// Three real relais nodes on one PostgreSQL and one Redis (tests/cluster/cluster_scenario.h):
// the short scenario of the regular suite — 3,000 messages over 300 keys, three SIGKILLs and a
// FLUSHALL — and what a node says of itself. The long one (20,000 messages, ≥ 10 kills, Redis
// and PostgreSQL restarted) is tests/cluster/crash_test.cpp.

#include "core/cluster.h"
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

namespace relais::testing {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;

// A person's retry and discard asked on the node that does NOT send the key: carried out by the
// node that does (through the store's feed), in order.
TEST(ClusterNodes, ARetryOrADiscardAskedOnAnotherNodeIsCarriedOutByTheKeysOwner) {
  constexpr const char* kPasswordEnv = "RELAIS_CLUSTER_PG_PASSWORD";
  PgServer pg;
  pg.start();
  std::string uri = pg.connection();
  const std::string pw = " password=" + pg.options().password;
  uri.erase(uri.find(pw), pw.size());
  ASSERT_EQ(::setenv(kPasswordEnv, pg.options().password.c_str(), 1), 0);
  RedisServer redis(false);
  ASSERT_EQ(redis.start(), "");

  struct Sink {
    std::mutex mu;
    std::vector<int> arrivals;  // accepted, in order
    std::atomic<bool> refuse_odd{true};
  };
  auto state = std::make_shared<Sink>();
  relais::tools::HttpSink sink(0, false, 4);
  sink.set_responder([state](const relais::tools::SinkRequest& req) {
    relais::tools::SinkResponse out;
    json j = json::parse(req.body, nullptr, false);
    int n = j.is_object() ? j.value("n", -1) : -1;
    if (n % 2 == 1 && state->refuse_odd) {
      out.status = 422;  // refused: dead, the key held behind it
      out.body = "{\"error\":\"refused\"}";
      return out;
    }
    std::lock_guard<std::mutex> lock(state->mu);
    state->arrivals.push_back(n);
    return out;
  });
  std::string body =
      "sources:\n  app:\n    type: $.type\n    correlation: \"{$.key}\"\n"
      "connectors:\n  sink:\n    connector: http\n    url: http://127.0.0.1:" +
      std::to_string(sink.port()) +
      "/in\n    concurrency: 2\n    on_dead: hold\n    retry:\n      initial: 100ms\n"
      "      max_attempts: 3\n"
      "routes:\n  - name: all\n    source: app\n    to:\n      - destination: sink\n"
      "redis:\n  uri: " +
      redis.uri() + "\n  prefix: \"it:\"\n  timeout: 500ms\ncluster:\n  lease: 2s\n";
  std::vector<std::unique_ptr<TempDir>> states;
  std::vector<std::unique_ptr<RelaisProcess>> nodes;
  for (int i = 0; i < 2; ++i) {
    states.push_back(std::make_unique<TempDir>("relais-cluster-state-"));
    RelaisOptions o;
    o.binary = RELAIS_BINARY;
    o.body_yaml = body;
    o.log_level = "warn";
    o.store_section_yaml = "  kind: postgresql\n  uri: \"" + uri + "\"\n  password_env: " +
                           kPasswordEnv + "\n  state_dir: " + states.back()->path() + "\n";
    nodes.push_back(std::make_unique<RelaisProcess>(o));
    nodes.back()->start();
  }
  // Wait until both send, then pick two keys node 1 sends (node 0 will be asked).
  std::set<int> owned_by_1;
  ASSERT_TRUE(wait_until(
      [&] {
        auto r0 = nodes[0]->client().get("/readyz").json();
        auto r1 = nodes[1]->client().get("/readyz").json();
        if (!r0.contains("partitions") || !r1.contains("partitions")) return false;
        owned_by_1.clear();
        for (int p : r1["partitions"]) owned_by_1.insert(p);
        return r0["partitions"].size() + r1["partitions"].size() == 64 &&
               !r0["partitions"].empty() && !owned_by_1.empty();
      },
      std::chrono::seconds(30), milliseconds(100)))
      << nodes[0]->client().get("/readyz").body << " " << nodes[1]->client().get("/readyz").body;
  std::vector<std::string> keys;
  for (int i = 0; keys.size() < 2 && i < 1000; ++i) {
    std::string k = "key-" + std::to_string(i);
    if (owned_by_1.count(key_partition(k, 0, 64))) keys.push_back(k);
  }
  ASSERT_EQ(keys.size(), 2u);

  HttpClient api0 = nodes[0]->client();
  auto post = [&](const std::string& key, int n) {
    HttpResponse r = api0.post_json("/api/v1/sources/app/messages",
                                    json{{"type", "t"}, {"key", key}, {"n", n}}.dump());
    EXPECT_EQ(r.status, 202) << r.body;
    return r.json().value("id", "");
  };
  // Key 0: 1 refused (dead), 2 held behind it. Key 1: 3 refused (dead), 4 held.
  std::string m1 = post(keys[0], 1);
  post(keys[0], 2);
  std::string m3 = post(keys[1], 3);
  post(keys[1], 4);
  auto delivery_of = [&](const std::string& id, std::string& st) {
    auto j = api0.get("/api/v1/messages/" + id).json();
    if (!j.contains("deliveries") || j["deliveries"].empty()) return std::string();
    st = j["deliveries"][0].value("state", "");
    return j["deliveries"][0]["id"].is_string() ? j["deliveries"][0]["id"].get<std::string>()
                                                : j["deliveries"][0]["id"].dump();
  };
  std::string d1, d3, st;
  ASSERT_TRUE(wait_until([&] { return !(d1 = delivery_of(m1, st)).empty() && st == "dead"; },
                         std::chrono::seconds(30), milliseconds(100)))
      << "state " << st;
  ASSERT_TRUE(wait_until([&] { return !(d3 = delivery_of(m3, st)).empty() && st == "dead"; },
                         std::chrono::seconds(30), milliseconds(100)))
      << "state " << st;
  std::this_thread::sleep_for(milliseconds(500));  // 2 and 4 would arrive now if not held
  {
    std::lock_guard<std::mutex> lock(state->mu);
    EXPECT_TRUE(state->arrivals.empty()) << "a message went past the dead one of its key";
  }
  state->refuse_odd = false;
  // Asked on node 0; node 1 sends the keys.
  HttpResponse retried = api0.post_json("/api/v1/deliveries/" + d1 + "/retry", "{}");
  EXPECT_EQ(retried.status, 200) << retried.body;
  HttpResponse discarded =
      api0.post_json("/api/v1/deliveries/" + d3 + "/discard", "{\"reason\":\"doublon\"}");
  EXPECT_EQ(discarded.status, 200) << discarded.body;
  ASSERT_TRUE(wait_until(
      [&] {
        std::lock_guard<std::mutex> lock(state->mu);
        return state->arrivals.size() >= 3;
      },
      std::chrono::seconds(20), milliseconds(50)));
  std::this_thread::sleep_for(milliseconds(300));
  std::lock_guard<std::mutex> lock(state->mu);
  // Key 0: 1 then 2; key 1: 4 only (3 discarded).
  std::vector<int> k0, k1;
  for (int n : state->arrivals) (n <= 2 ? k0 : k1).push_back(n);
  EXPECT_EQ(k0, (std::vector<int>{1, 2}));
  EXPECT_EQ(k1, (std::vector<int>{4}));
  for (auto& n : nodes) EXPECT_EQ(n->stop(std::chrono::seconds(30)), 0);
}

}  // namespace
}  // namespace relais::testing

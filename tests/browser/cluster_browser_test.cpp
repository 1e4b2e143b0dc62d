// The console's browser scenario (console_test.mjs, unchanged) against two relais nodes behind
// one address (issue 15): a real PostgreSQL store and a real redis-server shared by two nodes,
// nginx in front (tests/support/nginx_proxy.h: round-robin per request, no ip_hash, no sticky
// cookie, keep-alive to the nodes on). The scenario must pass as on one node, and the test
// proves that it ran on both:
//   - nginx's access log: both nodes served requests of each console session (its login on
//     one node, valid on the other; changes with a session's CSRF token accepted by the node
//     that did not log it in), and no request failed for lack of a node (no 5xx);
//   - the partner: every delivery of a key was sent by the node holding the key's partition
//     (its lease in Redis), the retries asked through either node included;
//   - the dashboard (overview, alerts, polling sources) the same on both nodes, though each
//     keeps its own queues and only the leader evaluates the alerts and polls
//     (api/node_reports.h);
//   - the mapping published and rolled back through one node: the other node runs each
//     version within 2 s (GET /api/v1/mappings on each node directly: its own compiled
//     snapshot, not the store);
//   - then, by construction rather than by the round-robin's luck: a console session logged
//     in on the node owning a key retries that key's dead delivery on the other node, CSRF
//     token included, and the owner sends it; and a delivery kept waiting on the node that does
//     not lead fires the leader's "oldest pending" alert.

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/cluster.h"
#include "store/redis/redis_client.h"
#include "tests/browser/console_scenario.h"
#include "tests/support/nginx_proxy.h"
#include "tests/support/pg_server.h"
#include "tests/support/redis_server.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kPartitions = 16;
constexpr const char* kPrefix = "browser:";

// The node holding each partition's lease (store/redis/redis_membership.h), "" when none.
std::vector<std::string> partition_owners(redis::RedisClient& redis) {
  std::vector<redis::RedisCommand> cmds;
  for (int p = 0; p < kPartitions; ++p) {
    cmds.push_back({"GET", std::string(kPrefix) + "part:" + std::to_string(p)});
  }
  std::vector<redis::RedisReply> replies;
  if (!redis.pipeline(cmds, replies).ok) return {};
  std::vector<std::string> owners;
  for (const auto& r : replies) owners.push_back(r.nil() ? "" : r.str);
  return owners;
}

std::string owner_of(const std::vector<std::string>& owners, const std::string& rdv) {
  return owners.at(static_cast<size_t>(key_partition("rdv:" + rdv, 0, kPartitions)));
}

// The active version of one mapping as each node runs it, polled every 50 ms on each node
// directly from a thread of its own; each change is kept with the moment it was first seen.
// Owns its thread (joined by stop() or the destructor).
class VersionWatch {
 public:
  struct Change {
    int64_t version = 0;
    SteadyClock::time_point at;
  };

  VersionWatch(const std::vector<std::string>& base_urls, const std::string& token,
               std::string mapping)
      : mapping_(std::move(mapping)), changes_(base_urls.size()) {
    for (const auto& url : base_urls) clients_.emplace_back(url, token);
    thread_ = std::thread([this] { run(); });
  }
  ~VersionWatch() { stop(); }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  std::vector<std::vector<Change>> changes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return changes_;
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      lock.unlock();
      std::vector<Change> seen;
      for (auto& c : clients_) seen.push_back({active_version(c), SteadyClock::now()});
      lock.lock();
      for (size_t i = 0; i < seen.size(); ++i) {
        auto& list = changes_[i];
        if (seen[i].version > 0 && (list.empty() || list.back().version != seen[i].version)) {
          list.push_back(seen[i]);
        }
      }
      cv_.wait_for(lock, milliseconds(50), [this] { return stop_; });
    }
  }
  int64_t active_version(HttpClient& c) const {
    HttpResponse r = c.get("/api/v1/mappings");
    if (r.status != 200) return 0;
    const json body = r.json();
    for (const auto& item : body["items"]) {
      if (item.value("name", "") == mapping_) return item.value("active_version", int64_t{0});
    }
    return 0;
  }

  const std::string mapping_;
  std::vector<HttpClient> clients_;  // used by the thread only
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<std::vector<Change>> changes_;
  std::thread thread_;
};

TEST(ClusterConsoleBrowser, TwoNodesBehindOneAddressRoundRobin) {
  ConsoleScenario::require_browser();
  if (HasFatalFailure()) return;
  PgServer pg;
  pg.start();
  RedisServer redis(false);
  ASSERT_EQ(redis.start(), "");
  ConsoleScenario scenario;
  const std::string kCrossRdv = "91999";  // retried by construction on the node not owning it
  scenario.refuse_first(kCrossRdv);

  // --- two nodes on one store and one Redis, each naming itself to the partner ---------------
  const std::vector<std::string> names = {"noeud-a", "noeud-b"};
  // A watched folder, polled by the leader only: its state must show on both nodes too.
  TempDir depot("relais-browser-depot-");
  const std::string folder =
      "  depot:\n    type: $.event\n    poll:\n      kind: folder\n"
      "      interval: 1h\n      path: " +
      depot.path() + "\n      constants: {event: depot}\n";
  std::vector<std::unique_ptr<TempDir>> states;
  std::vector<std::unique_ptr<RelaisProcess>> nodes;
  for (const auto& name : names) {
    states.push_back(std::make_unique<TempDir>("relais-browser-state-"));
    RelaisOptions o;
    o.binary = RELAIS_BINARY;
    o.log_level = "warn";
    // "attente" after 5 s: the end of the test keeps a delivery waiting on the node that does
    // not lead (nothing waits that long before).
    o.body_yaml = scenario.body_yaml("    headers: {X-Relais-Node: " + name + "}\n", folder, "5s") +
                  "redis:\n  uri: " + redis.uri() + "\n  prefix: \"" + kPrefix +
                  "\"\n  timeout: 1s\ncluster:\n  node: " + name +
                  "\n  partitions: " + std::to_string(kPartitions) + "\n  lease: 2s\n";
    o.server_extra_yaml = "  trusted_proxies: [127.0.0.1]\n";
    o.store_section_yaml =
        pg.relais_store_section("RELAIS_BROWSER_PG_PASSWORD", states.back()->path());
    nodes.push_back(std::make_unique<RelaisProcess>(o));
    nodes.back()->start();
  }
  std::map<std::string, std::string> node_at;  // "127.0.0.1:PORT" → node name
  std::map<std::string, std::string> url_of;   // node name → its own base URL
  std::vector<std::string> upstreams;
  for (size_t i = 0; i < nodes.size(); ++i) {
    upstreams.push_back("127.0.0.1:" + std::to_string(nodes[i]->port()));
    node_at[upstreams.back()] = names[i];
    url_of[names[i]] = nodes[i]->base_url();
  }

  // The partitions shared half and half before anything is sent.
  redis::RedisAddress address;
  std::string error;
  ASSERT_TRUE(redis::RedisAddress::parse(redis.uri(), address, error)) << error;
  redis::RedisClient leases(address, milliseconds(1000), "test");
  std::vector<std::string> owners;
  ASSERT_TRUE(wait_until(
      [&] {
        owners = partition_owners(leases);
        std::map<std::string, int> held;
        for (const auto& o : owners) ++held[o];
        return held[names[0]] == kPartitions / 2 && held[names[1]] == kPartitions / 2;
      },
      std::chrono::seconds(30), milliseconds(100)))
      << "the partitions were not shared between the two nodes";

  NginxProxy proxy(upstreams);
  proxy.start();
  HttpClient admin(proxy.base_url(), nodes[0]->token());
  scenario.prepare(admin);
  if (HasFatalFailure()) return;

  // --- the dashboard: the same figures whichever node answers --------------------------------
  // The keys' held deliveries are in their owner's queues only, the alert was evaluated and sent
  // and the folder polled by the leader only: every node must show them (api/node_reports.h).
  auto dashboard = [](RelaisProcess& node) {
    HttpClient c(node.base_url(), node.token());
    json overview = c.get("/api/v1/overview").json();
    overview.erase("at");
    json alerts = c.get("/api/v1/alerts").json();
    json rules = json::array();
    for (const auto& r : alerts["rules"]) {
      rules.push_back({{"name", r["name"]},
                       {"firing", r["firing"]},
                       {"sent", r["sent"]},
                       {"last_sent", r["last_sent"]}});
    }
    return json{{"overview", overview},
                {"alerts", rules},
                {"evaluated_by", alerts.value("evaluated_by", json())},
                {"sources", c.get("/api/v1/sources").json()["items"]}};
  };
  json on_a, on_b;
  EXPECT_TRUE(wait_until(
      [&] {
        on_a = dashboard(*nodes[0]);
        on_b = dashboard(*nodes[1]);
        return on_a == on_b;
      },
      std::chrono::seconds(10), milliseconds(100)))
      << "the dashboard differs between the nodes:\n"
      << on_a.dump() << "\n"
      << on_b.dump();
  EXPECT_EQ(on_a["overview"].value("nodes", 0), 2) << on_a.dump();
  EXPECT_EQ(on_a["overview"]["destinations"][0].value("held_keys", 0), 2) << on_a.dump();
  EXPECT_EQ(on_a["alerts"][0]["name"], "bloquees");
  EXPECT_EQ(on_a["alerts"][0]["sent"], 1) << on_a.dump();
  EXPECT_TRUE(on_a["evaluated_by"].is_string()) << on_a.dump();
  bool polled = false;
  for (const auto& item : on_a["sources"]) {
    polled = polled || (item["source"] == "depot" && item["last_poll_at"].is_string());
  }
  EXPECT_TRUE(polled) << "the watched folder's last poll is not shown: " << on_a.dump();

  // --- the browser scenario through nginx --------------------------------------------------
  VersionWatch watch({nodes[0]->base_url(), nodes[1]->base_url()}, nodes[0]->token(),
                     ConsoleScenario::kMapping);
  auto run = scenario.run_browser(proxy.base_url(), std::string(RELAIS_SCREENSHOTS) + "-cluster");
  watch.stop();
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  scenario.check_outcome(admin);

  // --- nginx's access log: the requests alternated, sessions and CSRF valid on both ----------
  auto log = proxy.access_log();
  struct SessionUse {
    std::string login_node;
    std::set<std::string> served_by;  // answered < 400 with the session's cookie
    std::set<std::string> csrf_by;    // a change (not GET) with its CSRF token, answered < 400
  };
  std::map<std::string, SessionUse> sessions;
  std::map<std::string, int> served;
  std::map<std::string, std::string> asked_on;  // what the browser asked → node
  for (const auto& e : log) {
    const std::string node = node_at.count(e.upstream) ? node_at[e.upstream] : e.upstream;
    ++served[node];
    EXPECT_LT(e.status, 500) << e.method << " " << e.path << " on " << node;
    if (e.method == "POST" && e.path == "/api/v1/session" && e.status == 200 &&
        !e.new_session.empty()) {
      sessions[e.new_session].login_node = node;
    }
    if (e.session.empty() || e.status >= 400) continue;
    auto& s = sessions[e.session];
    s.served_by.insert(node);
    if (e.method != "GET" && e.csrf && e.path != "/api/v1/session") s.csrf_by.insert(node);
    if (e.method == "POST" && e.path.find("/retry") != std::string::npos) {
      asked_on[e.path] = node;
    }
    if (e.method == "POST" && e.path.find("/api/v1/mappings/") == 0) asked_on[e.path] = node;
  }
  EXPECT_EQ(served.size(), 2u);
  for (const auto& [node, n] : served) {
    std::cout << "cluster browser: " << node << " served " << n << " requests" << std::endl;
    EXPECT_GE(n, 20) << node << " served too few requests for a round-robin";
  }
  int logins = 0, csrf_elsewhere = 0;
  for (const auto& [tag, s] : sessions) {
    if (s.login_node.empty()) continue;
    ++logins;
    std::string other = s.login_node == names[0] ? names[1] : names[0];
    std::cout << "cluster browser: a session logged in on " << s.login_node << ", served by "
              << s.served_by.size() << " node(s), changes with its CSRF token on "
              << s.csrf_by.size() << " node(s)" << std::endl;
    EXPECT_EQ(s.served_by.count(other), 1u) << "a session never used on the node it was not made";
    csrf_elsewhere += static_cast<int>(s.csrf_by.count(other));
  }
  EXPECT_EQ(logins, 2) << "the support's and the admin's logins";
  // The support makes four changes, the admin a dozen: which node each reaches depends on the
  // round-robin's count, so this asks for one session at least (the end of the test makes one
  // on the other node by construction).
  EXPECT_GE(csrf_elsewhere, 1)
      << "no change with a session's CSRF token on the node that did not make the session";
  for (const auto& [path, node] : asked_on) {
    std::cout << "cluster browser: POST " << path << " on " << node << std::endl;
  }

  // --- the partner: each key sent by the node owning its partition --------------------------
  for (const std::string rdv : {ConsoleScenario::kRdv, ConsoleScenario::kOtherRdv}) {
    const std::string owner = owner_of(owners, rdv);
    auto sent = scenario.sent_for(rdv);
    EXPECT_GE(sent.size(), 2u) << "RDV " << rdv << ": refused, then retried";
    for (const auto& r : sent) {
      auto it = r.headers.find("x-relais-node");
      EXPECT_EQ(it == r.headers.end() ? "" : it->second, owner)
          << "RDV " << rdv << " sent by a node that does not own its key";
    }
    std::cout << "cluster browser: RDV " << rdv << " sent " << sent.size() << " times by " << owner
              << ", the owner of its key" << std::endl;
  }

  // --- the mapping: each version run by both nodes, within 2 s of each other ----------------
  auto changes = watch.changes();
  ASSERT_EQ(changes.size(), 2u);
  ASSERT_EQ(changes[0].size(), changes[1].size()) << "the nodes did not run the same versions";
  EXPECT_GE(changes[0].size(), 3u) << "the active version, the one published, the roll-back";
  for (size_t i = 0; i < changes[0].size(); ++i) {
    EXPECT_EQ(changes[0][i].version, changes[1][i].version);
    auto gap = std::chrono::duration_cast<milliseconds>(changes[0][i].at - changes[1][i].at);
    auto ms = std::abs(gap.count());
    std::cout << "cluster browser: mapping v" << changes[0][i].version
              << " run by both nodes within " << ms << " ms" << std::endl;
    if (i > 0) {
      EXPECT_LE(ms, 2000) << "v" << changes[0][i].version;
    }
  }

  // --- by construction: a session made on the owner retries on the other node --------------
  json planned =
      json::parse(read_file(std::string(RELAIS_SHARED_DIR) + "/fixtures/cms76/rdv-planned.json"));
  planned["id"] = "evt-browser-cluster";
  planned["rdv"]["id"] = std::stoi(kCrossRdv);
  ASSERT_EQ(admin.post_json("/api/v1/sources/cms76/messages", planned.dump()).status, 202);
  std::string delivery;
  ASSERT_TRUE(wait_until(
      [&] {
        auto items = admin.get("/api/v1/deliveries?state=dead").json()["items"];
        if (items.size() != 1) return false;
        delivery = items[0]["delivery_id"].get<std::string>();
        return true;
      },
      std::chrono::seconds(60)));
  const std::string owner = owner_of(owners, kCrossRdv);
  const std::string other = owner == names[0] ? names[1] : names[0];
  HttpClient on_owner(url_of[owner]), on_other(url_of[other]);
  auto login = on_owner.post_json(
      "/api/v1/session",
      json{{"user", "sophie.support"}, {"password", "mot de passe de sophie.support"}}.dump());
  ASSERT_EQ(login.status, 200) << login.body;
  std::string cookie = login.header("set-cookie");
  cookie = cookie.substr(0, cookie.find(';'));
  auto retried = on_other.post_json(
      "/api/v1/deliveries/" + delivery + "/retry", "{}",
      {"Cookie: " + cookie, "X-CSRF-Token: " + login.json()["csrf"].get<std::string>()});
  EXPECT_EQ(retried.status, 200) << retried.body;
  ASSERT_TRUE(wait_until([&] { return scenario.sent_for(kCrossRdv).size() == 2; },
                         std::chrono::seconds(30)))
      << "the retry asked on " << other << " was not carried out";
  auto sent = scenario.sent_for(kCrossRdv);
  EXPECT_EQ(sent.back().headers["x-relais-node"], owner);
  EXPECT_TRUE(wait_until(
      [&] {
        return admin.get("/api/v1/deliveries/" + delivery).json().value("state", "") == "delivered";
      },
      std::chrono::seconds(30)));

  // --- the leader's alerts see the other node's queues ---------------------------------------
  // A delivery kept waiting (the partner says "come back in an hour") on a key the leader does
  // not send: the rule "attente" fires on the leader, from the other node's report.
  const std::string leader = on_a["evaluated_by"].get<std::string>();
  std::string waiting;
  for (int n = 92000; waiting.empty(); ++n) {
    if (owner_of(owners, std::to_string(n)) != leader) waiting = std::to_string(n);
  }
  scenario.pause_on(waiting);
  planned["id"] = "evt-browser-waiting";
  planned["rdv"]["id"] = std::stoi(waiting);
  ASSERT_EQ(admin.post_json("/api/v1/sources/cms76/messages", planned.dump()).status, 202);
  EXPECT_TRUE(wait_until([&] { return scenario.webhook().count() == 2; }, std::chrono::seconds(30)))
      << "the leader " << leader << " did not see the delivery waiting on the other node";
  auto alerts_sent = scenario.webhook().requests();
  ASSERT_FALSE(alerts_sent.empty());
  EXPECT_NE(alerts_sent.back().body.find("attente"), std::string::npos) << alerts_sent.back().body;

  proxy.stop();
  for (auto& n : nodes) EXPECT_EQ(n->stop(std::chrono::seconds(30)), 0) << n->stderr_text();
}

}  // namespace
}  // namespace relais::testing

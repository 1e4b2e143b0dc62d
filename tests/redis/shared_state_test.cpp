// The shared state in Redis (store/redis/) against a real redis-server started by the test:
// two "nodes" — two SharedState built from one `redis:` section, as two relais processes build
// them — share sessions, login throttling, rate limits and change notifications; Redis stopped
// and started again mid-test. Fails (never skips) when redis-server is missing.

#include <hiredis/hiredis.h>

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "api/auth.h"
#include "connectors/registry.h"
#include "core/crypto.h"
#include "core/store.h"
#include "routing/hub_config.h"
#include "routing/mapping_repository.h"
#include "store/redis/redis_shared_state.h"
#include "store/sqlite/sqlite_backend.h"
#include "tests/support/redis_server.h"
#include "tests/support/relais_process.h"

namespace relais::testing {
namespace {

using namespace std::chrono_literals;

RateLimit five_per_second(const std::string& caller) {
  return caller == "unlimited" ? RateLimit{} : RateLimit{5, 5};
}

class SharedStateTest : public ::testing::Test {
 protected:
  void start(bool persistent = false) {
    redis_ = std::make_unique<RedisServer>(persistent);
    std::string err = redis_->start();
    ASSERT_EQ(err, "") << err;
    settings_.uri = redis_->uri();
    settings_.prefix = "test:";
    settings_.timeout_ms = 500;
    a_ = std::make_unique<SharedState>(
        redis::open_redis_shared_state(settings_, clock_, five_per_second));
    b_ = std::make_unique<SharedState>(
        redis::open_redis_shared_state(settings_, clock_, five_per_second));
  }
  void SetUp() override { start(); }

  // Every key and value in Redis, as text.
  std::vector<std::string> everything() {
    redis::RedisClient c(redis::RedisAddress{"127.0.0.1", redis_->port()}, 500ms, "test");
    redis::RedisReply keys;
    EXPECT_TRUE(c.command({"KEYS", "*"}, keys).ok);
    std::vector<std::string> out;
    for (const auto& k : keys.elements) {
      out.push_back(k.str);
      redis::RedisReply type, value;
      c.command({"TYPE", k.str}, type);
      if (type.str == "hash") c.command({"HGETALL", k.str}, value);
      if (type.str == "set") c.command({"SMEMBERS", k.str}, value);
      if (type.str == "string") c.command({"GET", k.str}, value);
      out.push_back(value.str);
      for (const auto& e : value.elements) out.push_back(e.str);
    }
    return out;
  }
  long long pttl(const std::string& key) {
    redis::RedisClient c(redis::RedisAddress{"127.0.0.1", redis_->port()}, 500ms, "test");
    redis::RedisReply r;
    EXPECT_TRUE(c.command({"PTTL", key}, r).ok);
    return r.integer;
  }

  ManualClock clock_{1'800'000'000'000};
  RedisSettings settings_;
  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<SharedState> a_, b_;
};

TEST_F(SharedStateTest, ASessionMadeOnOneNodeIsUsedAndEndedOnTheOther) {
  api::SessionTable on_a(*a_->sessions, clock_), on_b(*b_->sessions, clock_);
  std::string id, csrf;
  ASSERT_TRUE(on_a.create("agnes", "support", id, csrf).ok);
  std::optional<api::Principal> who;
  ASSERT_TRUE(on_b.find(id, who).ok);
  ASSERT_TRUE(who.has_value());
  EXPECT_EQ(who->name, "agnes");
  EXPECT_EQ(who->role, "support");
  EXPECT_EQ(who->csrf, csrf);
  EXPECT_TRUE(who->session);

  // Keyed by the cookie's digest: the cookie value itself is nowhere in Redis.
  for (const auto& text : everything()) EXPECT_EQ(text.find(id), std::string::npos) << text;
  const std::string key = "test:session:" + sha256_hex(id);
  long long ttl = pttl(key);
  EXPECT_GT(ttl, kSessionIdleMs - 5000);  // the idle timeout, restarted by each use
  EXPECT_LE(ttl, kSessionIdleMs);

  ASSERT_TRUE(on_b.remove(id).ok);  // logged out on B …
  ASSERT_TRUE(on_a.find(id, who).ok);
  EXPECT_FALSE(who.has_value());  // … refused on A
}

TEST_F(SharedStateTest, ASessionEndsAtItsMaximumAgeAndWithItsUser) {
  api::SessionTable on_a(*a_->sessions, clock_), on_b(*b_->sessions, clock_);
  std::string old_id, id2, id3, csrf;
  ASSERT_TRUE(on_a.create("agnes", "admin", old_id, csrf).ok);
  clock_.advance(kSessionMaxMs - 1000);
  ASSERT_TRUE(on_a.create("agnes", "admin", id2, csrf).ok);
  ASSERT_TRUE(on_a.create("bruno", "admin", id3, csrf).ok);
  std::optional<api::Principal> who;
  ASSERT_TRUE(on_b.find(old_id, who).ok);
  EXPECT_TRUE(who.has_value());  // not yet too old
  clock_.advance(2000);
  ASSERT_TRUE(on_b.find(old_id, who).ok);
  EXPECT_FALSE(who.has_value());  // ten hours after login, even when used meanwhile

  // A user changed on A: every session of that user ends, on every node; others stay.
  ASSERT_TRUE(on_a.remove_user("agnes").ok);
  ASSERT_TRUE(on_b.find(id2, who).ok);
  EXPECT_FALSE(who.has_value());
  ASSERT_TRUE(on_b.find(id3, who).ok);
  EXPECT_TRUE(who.has_value());
}

TEST_F(SharedStateTest, FailedLoginsSpreadOverTwoNodesAreCountedTogether) {
  Millis wait = -1;
  for (int i = 0; i < kLoginMaxFailures; ++i) {
    SharedState& node = i % 2 == 0 ? *a_ : *b_;
    ASSERT_TRUE(node.logins->blocked_for("agnes", "10.0.0." + std::to_string(i), wait).ok);
    EXPECT_EQ(wait, 0) << "attempt " << i;
    ASSERT_TRUE(node.logins->failed("agnes", "10.0.0." + std::to_string(i)).ok);
  }
  for (SharedState* node : {a_.get(), b_.get()}) {
    ASSERT_TRUE(node->logins->blocked_for("agnes", "10.9.9.9", wait).ok);
    EXPECT_GT(wait, kLoginWindowMs - 5000);
    EXPECT_LE(wait, kLoginWindowMs);
  }
  ASSERT_TRUE(a_->logins->blocked_for("bruno", "10.0.0.1", wait).ok);
  EXPECT_EQ(wait, 0);  // another name from one of those addresses is not blocked (yet)

  // An address: four times the room of a name, whatever names it tries.
  for (int i = 0; i < 4 * kLoginMaxFailures; ++i) {
    ASSERT_TRUE((i % 2 ? a_ : b_)->logins->failed("name" + std::to_string(i), "10.7.7.7").ok);
  }
  ASSERT_TRUE(b_->logins->blocked_for("someone-new", "10.7.7.7", wait).ok);
  EXPECT_GT(wait, 0);
  // The counts are keyed by digests: no name and no address in clear.
  for (const auto& text : everything()) {
    EXPECT_EQ(text.find("agnes"), std::string::npos) << text;
    EXPECT_EQ(text.find("10.7.7.7"), std::string::npos) << text;
  }
}

TEST_F(SharedStateTest, TheRateLimitIsOneBucketForBothNodes) {
  // 5 per second, burst 5: five requests spread over both nodes pass, the sixth waits.
  int admitted = 0;
  for (int i = 0; i < 5; ++i) admitted += (i % 2 ? a_ : b_)->rates->take("cms76") == 0;
  EXPECT_EQ(admitted, 5);
  Micros wait_a = a_->rates->take("cms76"), wait_b = b_->rates->take("cms76");
  EXPECT_GT(wait_a, 0);
  EXPECT_LE(wait_a, 200'000);
  EXPECT_GT(wait_b, 0);
  EXPECT_EQ(a_->rates->take("another-token"), 0);  // callers kept apart
  EXPECT_EQ(b_->rates->take("unlimited"), 0);
  EXPECT_EQ(a_->rates->limit("cms76").per_second, 5);
  // The bucket refills at the rate: after one interval, one more.
  ASSERT_TRUE(wait_until([&] { return b_->rates->take("cms76") == 0; }, 2000ms, 20ms));
}

TEST_F(SharedStateTest, AChangePublishedOnOneNodeReachesTheOther) {
  std::mutex mu;
  std::vector<std::string> seen;
  int id = b_->changes->subscribe([&](const std::string& topic) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(topic);
  });
  auto* bus = dynamic_cast<redis::RedisChangeBus*>(b_->changes.get());
  ASSERT_NE(bus, nullptr);
  ASSERT_TRUE(wait_until([&] { return bus->subscriptions() >= 1; }, 5000ms));
  a_->changes->publish(ChangeBus::kTokens);
  ASSERT_TRUE(wait_until(
      [&] {
        std::lock_guard<std::mutex> lock(mu);
        return std::find(seen.begin(), seen.end(), ChangeBus::kTokens) != seen.end();
      },
      2000ms));
  b_->changes->unsubscribe(id);
}

TEST_F(SharedStateTest, AMappingPublishedOnOneNodeIsActiveOnTheOtherWithinTwoSeconds) {
  TempDir dir("relais-redis-mappings-");
  StoreOptions so;
  so.path = dir.path() + "/relais.db";
  open_sqlite_store(so)->close();
  // Two repositories on one store, as two nodes on one database; B's polling is slowed down to
  // a minute so that only the notification can bring the change in time.
  MappingRepository node_a(open_sqlite_document_store(so.path, clock_), clock_);
  MappingRepository node_b(open_sqlite_document_store(so.path, clock_), clock_);
  node_a.notify_through(*a_->changes);
  node_b.notify_through(*b_->changes);
  node_b.watch(60000);
  auto* bus = dynamic_cast<redis::RedisChangeBus*>(b_->changes.get());
  ASSERT_TRUE(wait_until([&] { return bus->subscriptions() >= 1; }, 5000ms));

  const std::string text = "name: rdv\nfields:\n  id: $.id\n";
  MappingCheck check = node_a.add_version("rdv", text, "agnes", "first", true);
  ASSERT_TRUE(check.ok);
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_until([&] { return node_b.knows("rdv"); }, 2000ms))
      << "node B did not apply the publication within 2 s";
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_EQ(node_b.active_versions().at("rdv"), check.version);
}

TEST_F(SharedStateTest, ATokenRevokedOnOneNodeIsRefusedOnTheOtherWithinTwoSeconds) {
  TempDir dir("relais-redis-tokens-");
  StoreOptions so;
  so.path = dir.path() + "/relais.db";
  open_sqlite_store(so)->close();
  SystemClock& clock = SystemClock::instance();  // the tokens' own re-read counts real time
  auto console_a = open_sqlite_console_store(so.path, clock);
  auto console_b = open_sqlite_console_store(so.path, clock);
  int follow_b = api::follow_token_changes(*b_->changes, *console_b);
  auto* bus = dynamic_cast<redis::RedisChangeBus*>(b_->changes.get());
  ASSERT_TRUE(wait_until([&] { return bus->subscriptions() >= 1; }, 5000ms));

  const std::string digest = sha256_hex("rls_partner-token");
  ASSERT_TRUE(
      console_a->add_token(ApiTokenRecord{"partner", "system", {}, digest, 1, "agnes", 0}).ok);
  a_->changes->publish(ChangeBus::kTokens);
  ASSERT_TRUE(wait_until([&] { return console_b->token_by_sha256(digest).has_value(); }, 2000ms))
      << "node B did not see the new token within 2 s";
  // B has just read its tokens: without the notification it would accept this one for 10 s.
  ASSERT_TRUE(console_a->revoke_token("partner", clock.now_ms()).ok);
  a_->changes->publish(ChangeBus::kTokens);
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_until([&] { return !console_b->token_by_sha256(digest).has_value(); }, 2000ms))
      << "node B still accepts the revoked token";
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  b_->changes->unsubscribe(follow_b);
}

// The dashboard's reports (api/node_reports.h): each node's report is read by the other; a
// report not renewed expires and its node leaves the set; Redis down: the reader is told.
TEST_F(SharedStateTest, EachNodesReportIsReadOnTheOtherUntilItExpires) {
  ASSERT_TRUE(a_->reports->put(NodeReports::kDispatch, "noeud-a", "{\"agenda\":{}}", 5000).ok);
  ASSERT_TRUE(b_->reports->put(NodeReports::kDispatch, "noeud-b", "{}", 300).ok);
  ASSERT_TRUE(b_->reports->put(NodeReports::kAlerts, "noeud-b", "{\"rules\":[]}", 5000).ok);
  std::map<std::string, std::string> seen;
  ASSERT_TRUE(b_->reports->get(NodeReports::kDispatch, seen).ok);
  EXPECT_EQ(seen, (std::map<std::string, std::string>{{"noeud-a", "{\"agenda\":{}}"},
                                                      {"noeud-b", "{}"}}));
  EXPECT_GT(pttl("test:report:dispatch:noeud-b"), 0);
  // noeud-b stops reporting: it drops out of the figures and of the set.
  ASSERT_TRUE(wait_until(
      [&] {
        return a_->reports->get(NodeReports::kDispatch, seen).ok && seen.size() == 1 &&
               seen.count("noeud-a") == 1;
      },
      5000ms));
  redis::RedisClient c(redis::RedisAddress{"127.0.0.1", redis_->port()}, 500ms, "test");
  redis::RedisReply members;
  ASSERT_TRUE(c.command({"SMEMBERS", "test:reports:dispatch"}, members).ok);
  ASSERT_EQ(members.elements.size(), 1u);
  EXPECT_EQ(members.elements[0].str, "noeud-a");
  ASSERT_TRUE(a_->reports->get(NodeReports::kAlerts, seen).ok);
  EXPECT_EQ(seen.size(), 1u);

  redis_->stop();
  EXPECT_EQ(a_->reports->get(NodeReports::kDispatch, seen).http_status, 503);
  EXPECT_FALSE(a_->reports->put(NodeReports::kDispatch, "noeud-a", "{}", 5000).ok);
}

// One node alone: its own reports, forgotten when they expire.
TEST(LocalNodeReports, KeepsReportsUntilTheyExpire) {
  ManualClock clock{1'800'000'000'000};
  LocalNodeReports reports(clock);
  ASSERT_TRUE(reports.put(NodeReports::kAlerts, "", "{}", 1000).ok);
  std::map<std::string, std::string> seen;
  ASSERT_TRUE(reports.get(NodeReports::kAlerts, seen).ok);
  EXPECT_EQ(seen.size(), 1u);
  ASSERT_TRUE(reports.get(NodeReports::kDispatch, seen).ok);
  EXPECT_TRUE(seen.empty());
  clock.advance(1000);
  ASSERT_TRUE(reports.get(NodeReports::kAlerts, seen).ok);
  EXPECT_TRUE(seen.empty());
}

TEST_F(SharedStateTest, RedisDownRefusesSessionsAndLoginsAndLimitsPerNode) {
  api::SessionTable on_a(*a_->sessions, clock_);
  std::string id, csrf;
  ASSERT_TRUE(on_a.create("agnes", "admin", id, csrf).ok);
  redis_->stop();

  std::optional<api::Principal> who;
  Status st = on_a.find(id, who);
  EXPECT_FALSE(st.ok);  // never let in unchecked
  EXPECT_EQ(st.http_status, 503);
  EXPECT_FALSE(who.has_value());
  std::string id2;
  EXPECT_EQ(on_a.create("agnes", "admin", id2, csrf).http_status, 503);
  Millis wait = 0;
  st = a_->logins->blocked_for("agnes", "10.0.0.1", wait);
  EXPECT_FALSE(st.ok);  // fail closed: the login is refused
  EXPECT_EQ(st.http_status, 503);
  // Rate limits: the node's own bucket (5 then refused), not open, not closed.
  int admitted = 0;
  for (int i = 0; i < 8; ++i) admitted += a_->rates->take("cms76") == 0;
  EXPECT_EQ(admitted, 5);
}

TEST_F(SharedStateTest, ARestartOfAPersistentRedisKeepsTheSessionsAndTheNodesComeBack) {
  a_.reset();
  b_.reset();
  start(/*persistent=*/true);
  api::SessionTable on_a(*a_->sessions, clock_), on_b(*b_->sessions, clock_);
  std::string id, csrf;
  ASSERT_TRUE(on_a.create("agnes", "admin", id, csrf).ok);
  auto* bus = dynamic_cast<redis::RedisChangeBus*>(b_->changes.get());
  ASSERT_TRUE(wait_until([&] { return bus->subscriptions() >= 1; }, 5000ms));
  std::atomic<int> everything_again{0};
  int sub = b_->changes->subscribe([&](const std::string& topic) {
    if (topic == ChangeBus::kAll) ++everything_again;
  });

  redis_->stop();
  std::optional<api::Principal> who;
  EXPECT_EQ(on_b.find(id, who).http_status, 503);
  ASSERT_EQ(redis_->start(), "");

  // The nodes reconnect by themselves (back-off), the session is still there.
  ASSERT_TRUE(wait_until([&] { return on_b.find(id, who).ok && who.has_value(); }, 10000ms, 50ms));
  EXPECT_EQ(who->name, "agnes");
  // The subscriber subscribed again and told its handlers to re-read everything.
  ASSERT_TRUE(
      wait_until([&] { return bus->subscriptions() >= 2 && everything_again > 0; }, 10000ms));
  b_->changes->unsubscribe(sub);
}

TEST_F(SharedStateTest, PersistenceIsReported) {
  redis::RedisClient c(redis::RedisAddress{"127.0.0.1", redis_->port()}, 500ms, "test");
  EXPECT_NE(redis::persistence_problem(c).find("nothing on disk"), std::string::npos);
  RedisServer persistent(true);
  ASSERT_EQ(persistent.start(), "");
  redis::RedisClient p(redis::RedisAddress{"127.0.0.1", persistent.port()}, 500ms, "test");
  EXPECT_EQ(redis::persistence_problem(p), "");
}

TEST(RedisConfig, TheSectionIsReadAndChecked) {
  ConnectorRegistry registry;
  register_builtin_connectors(registry);
  const std::string base = "store:\n  path: relais.db\nsources:\n  s1:\n    type: $.event\n";
  auto load = [&](const std::string& text, HubConfig& out) {
    std::vector<ConfigError> errors;
    load_hub_config_text(base + text, "relais.yaml", "/tmp", registry, out, errors);
    std::string all;
    for (const auto& e : errors) all += e.to_string() + "\n";
    return all;
  };
  HubConfig none, one, bad, unset;
  EXPECT_EQ(load("", none), "");
  EXPECT_FALSE(none.redis.enabled());  // absent: one node, in process

  ::setenv("RELAIS_TEST_REDIS_PASSWORD", "s3cret", 1);
  EXPECT_EQ(load("redis:\n  uri: redis://10.0.0.5:6379/1\n  password_env: "
                 "RELAIS_TEST_REDIS_PASSWORD\n  prefix: \"cms76:\"\n  timeout: 500ms\n",
                 one),
            "");
  EXPECT_TRUE(one.redis.enabled());
  EXPECT_EQ(one.redis.uri, "redis://10.0.0.5:6379/1");
  EXPECT_EQ(one.redis.password, "s3cret");
  EXPECT_EQ(one.redis.prefix, "cms76:");
  EXPECT_EQ(one.redis.timeout_ms, 500);

  EXPECT_NE(load("redis:\n  uri: http://10.0.0.5:6379\n", bad).find("redis.uri"),
            std::string::npos);
  ::unsetenv("RELAIS_TEST_REDIS_UNSET");
  std::string e =
      load("redis:\n  uri: redis://10.0.0.5\n  password_env: RELAIS_TEST_REDIS_UNSET\n", unset);
  EXPECT_NE(e.find("RELAIS_TEST_REDIS_UNSET is not set"), std::string::npos) << e;
  EXPECT_EQ(e.find("s3cret"), std::string::npos);
}

TEST(RedisAddress, ParsesTheUri) {
  redis::RedisAddress a;
  std::string error;
  ASSERT_TRUE(redis::RedisAddress::parse("redis://:s3cret@10.1.2.3:6380/2", a, error)) << error;
  EXPECT_EQ(a.host, "10.1.2.3");
  EXPECT_EQ(a.port, 6380);
  EXPECT_EQ(a.db, 2);
  EXPECT_EQ(a.password, "s3cret");
  EXPECT_EQ(a.display().find("s3cret"), std::string::npos);
  ASSERT_TRUE(redis::RedisAddress::parse("redis://127.0.0.1", a, error));
  EXPECT_EQ(a.port, 6379);
  EXPECT_EQ(a.db, 0);
  EXPECT_FALSE(redis::RedisAddress::parse("http://127.0.0.1:6379", a, error));
  EXPECT_FALSE(redis::RedisAddress::parse("redis://127.0.0.1:6379/x", a, error));
}

}  // namespace
}  // namespace relais::testing

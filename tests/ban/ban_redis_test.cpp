// The BAN enricher with a real Redis (redis-server started by the test on a free loopback port
// in a temporary directory, without persistence): cache and rate limit shared by two enricher
// instances, as two relais nodes would. Fails (never skips) when redis-server is missing.

#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <thread>

#include "ban_simulator.h"
#include "connectors/ban/ban.h"
#include "core/crypto.h"
#include "tests/support/redis_server.h"
#include "tests/support/relais_process.h"

namespace relais::testing {
namespace {

using nlohmann::json;
using Kind = Enrichment::Kind;

class BanRedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string err = redis_.start();
    ASSERT_EQ(err, "") << err;
  }
  void TearDown() override { EXPECT_TRUE(sim_.violations().empty()); }

  ban::Options options() const {
    ban::Options o;
    o.base_url = sim_.search_url();
    o.rate_limit = 1000;
    o.redis = redis_.address();
    o.redis_prefix = "test:" + std::to_string(::getpid()) + ":";
    return o;
  }
  std::unique_ptr<ban::BanEnricher> enricher(ban::Options o) {
    ban::Fields f;
    JsonPath p;
    std::string err;
    JsonPath::parse("$.numero", p, err);
    f.number = p;
    JsonPath::parse("$.voie", p, err);
    f.street = p;
    JsonPath::parse("$.ville", p, err);
    f.city = p;
    return std::make_unique<ban::BanEnricher>(std::move(o), f, &clock_, nullptr, "ban");
  }
  static json address(const std::string& n, const std::string& voie) {
    return json{{"numero", n}, {"voie", voie}, {"ville", "Paris"}};
  }

  RedisServer redis_;
  BanSimulator sim_;
  ManualClock clock_{1'700'000'000'000};
  Message msg_;
};

TEST_F(BanRedisTest, CacheIsSharedByNodes) {
  sim_.on_query_fixture("kleber", "search-housenumber-20-avenue-kleber-paris.json");
  auto node_a = enricher(options());
  auto node_b = enricher(options());
  Enrichment a = node_a->enrich(msg_, address("20", "avenue Kl\u00e9ber"));
  EXPECT_EQ(a.kind, Kind::Ok);
  EXPECT_EQ(sim_.hit_count(), 1u);
  // Node B has never seen it: its memory is empty, Redis answers.
  EXPECT_EQ(node_b->geocoder().cache()->size(), 0u);
  Enrichment b = node_b->enrich(msg_, address("20", "AVENUE KLEBER"));
  EXPECT_EQ(b.kind, Kind::Ok);
  EXPECT_EQ(b.data, a.data);
  EXPECT_EQ(sim_.hit_count(), 1u);
  EXPECT_EQ(node_b->geocoder().cache()->size(), 1u);  // now in B's memory too

  // A negative answer is shared as well.
  node_a->enrich(msg_, address("1", "rue inconnue"));
  Enrichment c = node_b->enrich(msg_, address("1", "Rue Inconnue"));
  EXPECT_EQ(c.kind, Kind::Flagged);
  EXPECT_EQ(sim_.hit_count(), 2u);

  // The Redis entry carries the TTL and a key without the address in clear.
  ban::Redis r(redis_.address(), 500);
  ban::Query q =
      ban::build_query(ban::Address{"20", "avenue Kleber", "", "Paris", ""}, "housenumber", true);
  auto stored = r.get(options().redis_prefix + "c:" + sha256_hex(ban::cache_key(q)));
  ASSERT_TRUE(stored.has_value());
  EXPECT_NE(stored->find("75116_5159_00020"), std::string::npos);
}

TEST_F(BanRedisTest, RateLimitIsSharedByNodes) {
  // Each node alone may send 10/s; together they must stay at 10 per second.
  auto o = options();
  o.rate_limit = 10;
  o.cache_size = 0;
  auto node_a = enricher(o);
  auto node_b = enricher(o);
  // The property holds only while both nodes reach Redis (alone, each falls back to its own
  // local budget): make sure both are connected before counting, so a node that met the server
  // a moment too early cannot make the test pass or fail for the wrong reason.
  for (auto* node : {node_a.get(), node_b.get()}) {
    ASSERT_NE(node->geocoder().redis(), nullptr);
    ASSERT_TRUE(wait_until([&] { return node->geocoder().redis()->ping(); },
                           std::chrono::milliseconds(5000), std::chrono::milliseconds(100)));
  }
  const int per_node = 14;
  auto run = [&](ban::BanEnricher* e, const std::string& tag) {
    for (int i = 0; i < per_node; ++i) {
      auto r = e->enrich(msg_, address(std::to_string(i), "rue " + tag));
      EXPECT_EQ(r.kind, Kind::Flagged) << r.text;
    }
  };
  // Redis keys are per wall-clock second: both nodes share the budget of each second.
  std::thread ta(run, node_a.get(), "a");
  std::thread tb(run, node_b.get(), "b");
  ta.join();
  tb.join();
  auto hits = sim_.hits();
  ASSERT_EQ(hits.size(), static_cast<size_t>(2 * per_node));
  std::map<int64_t, int> per_second;
  for (const auto& h : hits) per_second[h.wall_ms / 1000]++;
  for (const auto& [sec, n] : per_second) {
    // 10 allowed; +1 for a request sent in the last milliseconds of a second and received in
    // the next one.
    EXPECT_LE(n, 11) << "second " << sec;
  }
  // 28 requests at 10/s overall need at least 3 distinct seconds (20/s would fit in 2).
  EXPECT_GE(per_second.size(), 3u);
}

TEST_F(BanRedisTest, RedisDownFallsBackToLocal) {
  sim_.on_query_fixture("kleber", "search-housenumber-20-avenue-kleber-paris.json");
  auto o = options();
  redis_.stop();
  auto e = enricher(o);
  EXPECT_EQ(e->enrich(msg_, address("20", "avenue Kleber")).kind, Kind::Ok);
  EXPECT_EQ(e->enrich(msg_, address("20", "avenue Kleber")).kind, Kind::Ok);
  EXPECT_EQ(sim_.hit_count(), 1u);  // the memory cache still works
}

}  // namespace
}  // namespace relais::testing

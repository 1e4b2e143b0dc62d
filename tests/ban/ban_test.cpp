// The BAN enricher against the BAN simulator (recorded answers of ../shared/fixtures/ban/):
// query building, quality rules, failures, cache, rate limit, bulk CSV, reverse, config.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "ban_simulator.h"
#include "connectors/ban/ban.h"
#include "connectors/registry.h"
#include "routing/hub_config.h"

namespace relais::testing {
namespace {

using ban::Address;
using nlohmann::json;
using Kind = Enrichment::Kind;

json individu() {
  return json::parse(
      read_text(std::string(RELAIS_SHARED_DIR) + "/fixtures/cms76/individu-created.json"));
}

ban::Fields cms76_fields() {
  ban::Fields f;
  std::string err;
  JsonPath p;
  auto path = [&](const char* t) {
    EXPECT_TRUE(JsonPath::parse(t, p, err)) << err;
    return std::optional<JsonPath>(p);
  };
  f.number = path("$.individu.adresse.numero");
  f.street = path("$.individu.adresse.voie");
  f.postcode = path("$.individu.adresse.code_postal");
  f.city = path("$.individu.adresse.localite");
  return f;
}

json body_with(const std::string& numero, const std::string& voie, const std::string& cp,
               const std::string& ville) {
  json b = individu();
  auto& a = b["individu"]["adresse"];
  a["numero"] = numero.empty() ? json(nullptr) : json(numero);
  a["voie"] = voie.empty() ? json(nullptr) : json(voie);
  a["code_postal"] = cp.empty() ? json(nullptr) : json(cp);
  a["localite"] = ville.empty() ? json(nullptr) : json(ville);
  return b;
}

class BanTest : public ::testing::Test {
 protected:
  void TearDown() override {
    EXPECT_TRUE(sim_.violations().empty()) << "the simulator refused: " << sim_.violations()[0];
  }

  ban::Options options() const {
    ban::Options o;
    o.base_url = sim_.search_url();
    o.reverse_url = sim_.reverse_url();
    o.csv_url = sim_.csv_url();
    o.rate_limit = 1000;
    o.timeout_ms = 2000;
    return o;
  }
  std::unique_ptr<ban::BanEnricher> enricher(ban::Options o) {
    return std::make_unique<ban::BanEnricher>(std::move(o), cms76_fields(), &clock_, &metrics_,
                                              "ban");
  }

  BanSimulator sim_;
  ManualClock clock_{1'700'000'000'000};
  Metrics metrics_;
  Message msg_;
};

// ---------------------------------------------------------------------------------------------
// Query building

TEST(BanQuery, NormaliseLowersStripsAccentsAndCollapsesSpaces) {
  EXPECT_EQ(ban::normalise("  12  R. Jeanne-d'Arc   ROUEN "), "12 r jeanne d arc rouen");
  EXPECT_EQ(ban::normalise("Avenue Kl\u00e9ber"), "avenue kleber");
  EXPECT_EQ(ban::normalise("\u0152uvre \u00c7a \u00e0 l\u2019\u00eele \u00df"),
            "oeuvre ca a l ile ss");
  EXPECT_EQ(ban::normalise("Puy-l'\u00c9v\u00eaque"), "puy l eveque");
  EXPECT_EQ(ban::normalise("12 rue Jeanne d'Arc Rouen"),
            ban::normalise("12 RUE JEANNE D\u2019ARC  rouen"));
}

TEST(BanQuery, BuildsQFiltersAndType) {
  ban::Fields f = cms76_fields();
  Address a = f.read(individu());
  EXPECT_EQ(a.number, "12");
  EXPECT_EQ(a.city, "Rouen");
  ban::Query q = ban::build_query(a, "housenumber", true);
  EXPECT_EQ(q.q, "12 Rue Jeanne d'Arc 76000 Rouen");
  EXPECT_EQ(q.postcode, "76000");
  EXPECT_EQ(q.type, "housenumber");
  std::string url = ban::search_url("https://data.geopf.fr/geocodage/search", q);
  EXPECT_EQ(url,
            "https://data.geopf.fr/geocodage/search?q=12%20Rue%20Jeanne%20d%27Arc%2076000%20Rouen"
            "&limit=1&autocomplete=0&type=housenumber&postcode=76000");
  auto params = query_params(url);
  EXPECT_EQ(params["q"][0], "12 Rue Jeanne d'Arc 76000 Rouen");

  // No postcode filter when it is not a postcode, or when told not to; citycode passes.
  a.postcode = "76 000";
  a.citycode = "76540";
  q = ban::build_query(a, "any", true);
  EXPECT_EQ(q.postcode, "");
  EXPECT_EQ(q.citycode, "76540");
  EXPECT_EQ(q.type, "");
  EXPECT_EQ(ban::search_url("http://x/s", q).find("type="), std::string::npos);
  a.postcode = "76000";
  EXPECT_EQ(ban::build_query(a, "street", false).postcode, "");

  // q is cut at 200 bytes without splitting a character.
  Address longa;
  longa.street = std::string(199, 'a') + "\u00e9\u00e9";
  q = ban::build_query(longa, "", true);
  EXPECT_EQ(q.q.size(), 199u);

  EXPECT_EQ(ban::reverse_url("http://x/r", 2.060204, 49.031407, "housenumber"),
            "http://x/r?lon=2.060204&lat=49.031407&limit=1&type=housenumber");
}

TEST(BanQuery, CacheKeyIgnoresCaseAccentsAndSpaces) {
  ban::Query a{"20 avenue Kléber  Paris", "75016", "", "housenumber"};
  ban::Query b{"20 AVENUE KLEBER paris", "75016", "", "housenumber"};
  ban::Query c{"20 AVENUE KLEBER paris", "75016", "", "street"};
  EXPECT_EQ(ban::cache_key(a), ban::cache_key(b));
  EXPECT_NE(ban::cache_key(a), ban::cache_key(c));
}

TEST(BanQuery, ParsesEveryRecordedAnswer) {
  ban::Match m;
  std::string err;
  ASSERT_TRUE(
      ban::parse_response(ban_fixture("search-housenumber-20-avenue-kleber-paris.json"), m, err));
  EXPECT_TRUE(m.found);
  EXPECT_NEAR(m.score, 0.9619, 1e-4);
  EXPECT_EQ(m.data["label"], "20 Avenue Kl\u00e9ber 75016 Paris");
  EXPECT_EQ(m.data["id"], "75116_5159_00020");
  EXPECT_EQ(m.data["housenumber"], "20");
  EXPECT_EQ(m.data["street"], "Avenue Kl\u00e9ber");
  EXPECT_EQ(m.data["citycode"], "75116");
  EXPECT_EQ(m.data["postcode"], "75016");
  EXPECT_EQ(m.data["city"], "Paris");
  EXPECT_EQ(m.data["context"], "75, Paris, \u00cele-de-France");
  EXPECT_DOUBLE_EQ(m.data["lon"].get<double>(), 2.292863);
  EXPECT_DOUBLE_EQ(m.data["lat"].get<double>(), 48.871176);
  EXPECT_DOUBLE_EQ(m.data["x"].get<double>(), 648129.93);
  EXPECT_DOUBLE_EQ(m.data["y"].get<double>(), 6863693.35);
  EXPECT_FALSE(m.data.contains("importance"));  // only the documented fields are added

  ASSERT_TRUE(ban::parse_response(ban_fixture("search-street-avenue-kleber-paris.json"), m, err));
  EXPECT_EQ(m.type, "street");
  EXPECT_EQ(m.data["street"], "Avenue Kl\u00e9ber");  // from `name`
  EXPECT_FALSE(m.data.contains("housenumber"));

  ASSERT_TRUE(
      ban::parse_response(ban_fixture("search-municipality-and-streets-meaux.json"), m, err));
  EXPECT_EQ(m.type, "municipality");
  EXPECT_EQ(m.data["citycode"], "77284");
  EXPECT_FALSE(m.data.contains("street"));

  ASSERT_TRUE(ban::parse_response(ban_fixture("search-no-result.json"), m, err));
  EXPECT_FALSE(m.found);

  EXPECT_FALSE(ban::parse_response("<html>busy</html>", m, err));
  EXPECT_FALSE(ban::parse_response("{\"type\":\"FeatureCollection\"}", m, err));
}

TEST(BanQuery, CsvRoundTrip) {
  std::string line = ban::csv_escape("a,b") + "," + ban::csv_escape("say \"hi\"") + "," +
                     ban::csv_escape("x\ny") + "\r\nplain,,end\n";
  auto rows = ban::csv_parse(line);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"a,b", "say \"hi\"", "x\ny"}));
  EXPECT_EQ(rows[1], (std::vector<std::string>{"plain", "", "end"}));
}

// ---------------------------------------------------------------------------------------------
// Mapping of each recorded answer to an Enrichment

TEST_F(BanTest, HousenumberAboveAcceptIsAddedAsIs) {
  sim_.on_query_fixture("jeanne d arc", "search-housenumber-20-avenue-kleber-paris.json");
  auto e = enricher(options());
  Enrichment r = e->enrich(msg_, individu());
  EXPECT_EQ(r.kind, Kind::Ok);
  EXPECT_TRUE(r.flag.empty());
  EXPECT_EQ(r.data["citycode"], "75116");
  EXPECT_EQ(r.data["label"], "20 Avenue Kl\u00e9ber 75016 Paris");
  for (const char* k : {"label", "score", "id", "housenumber", "street", "postcode", "citycode",
                        "city", "context", "lon", "lat", "x", "y"}) {
    EXPECT_TRUE(r.data.contains(k)) << k;
  }
  ASSERT_EQ(sim_.hit_count(), 1u);
  auto hit = sim_.hits()[0];
  EXPECT_EQ(hit.path, "/geocodage/search");
  EXPECT_EQ(hit.params["q"][0], "12 Rue Jeanne d'Arc 76000 Rouen");
  EXPECT_EQ(hit.params["postcode"][0], "76000");
  EXPECT_EQ(hit.params["type"][0], "housenumber");
}

TEST_F(BanTest, LegacyAnswerIsAccepted) {
  sim_.on_query_fixture("tourelle", "search-housenumber-6-quai-de-la-tourelle-cergy-legacy.json");
  auto e = enricher(options());
  Enrichment r = e->enrich(msg_, body_with("6", "quai de la tourelle", "95000", "cergy"));
  EXPECT_EQ(r.kind, Kind::Ok);
  EXPECT_EQ(r.data["id"], "ADRNIVX_0000000350442505");
  EXPECT_EQ(r.data["citycode"], "95127");
}

TEST_F(BanTest, BetweenTheMarksIsAddedWithAFlag) {
  sim_.on_query_fixture("kleber", "search-street-avenue-kleber-paris.json");
  sim_.expect_type("street");
  auto o = options();
  o.type = "street";
  o.accept_score = 0.9;
  auto e = enricher(o);
  Enrichment r = e->enrich(msg_, body_with("", "avenue Kleber", "", "Paris"));
  EXPECT_EQ(r.kind, Kind::Flagged);
  EXPECT_EQ(r.flag, "adresse \u00e0 v\u00e9rifier (score 0.83)");
  EXPECT_EQ(r.data["street"], "Avenue Kl\u00e9ber");
}

TEST_F(BanTest, StreetOnlyAnswerForANumberIsFlagged) {
  sim_.on_query_fixture("kleber", "search-street-avenue-kleber-paris.json");
  sim_.expect_type("");
  auto o = options();
  o.type = "";
  auto e = enricher(o);
  Enrichment r = e->enrich(msg_, body_with("20", "avenue Kleber", "", "Paris"));
  EXPECT_EQ(r.kind, Kind::Flagged);  // 0.83 is above accept, but the number was not found
  EXPECT_NE(r.flag.find("num\u00e9ro non trouv\u00e9, niveau street"), std::string::npos) << r.flag;
  EXPECT_EQ(r.data["id"], "75116_5159");
}

TEST_F(BanTest, MunicipalityOnlyAnswer) {
  sim_.on_query_fixture("meaux", "search-municipality-and-streets-meaux.json");
  sim_.expect_type("municipality");
  auto o = options();
  o.type = "municipality";
  auto e = enricher(o);
  Enrichment r = e->enrich(msg_, body_with("", "", "", "Meaux"));
  EXPECT_EQ(r.kind, Kind::Ok);
  EXPECT_EQ(r.data["type"], "municipality");
  EXPECT_EQ(r.data["citycode"], "77284");
  // With a number, a commune is not enough.
  Enrichment r2 = e->enrich(msg_, body_with("3", "", "", "Meaux"));
  EXPECT_EQ(r2.kind, Kind::Flagged);
  EXPECT_NE(r2.flag.find("niveau municipality"), std::string::npos);
}

TEST_F(BanTest, LowScorePassesUnenrichedWithAFlagOrRejects) {
  sim_.on_query_fixture("kleber", "search-locality-kleber-paris.json");
  auto e = enricher(options());
  Enrichment r = e->enrich(msg_, body_with("20", "avenue Kleber", "", "Paris"));
  EXPECT_EQ(r.kind, Kind::Flagged);
  EXPECT_EQ(r.flag, "adresse non reconnue (score 0.47)");
  EXPECT_TRUE(r.data.is_null());  // nothing added: the original address stays alone

  auto o = options();
  o.reject_below_review = true;
  o.cache_size = 0;
  auto rej = enricher(o);
  Enrichment r2 = rej->enrich(msg_, body_with("20", "avenue Kleber", "", "Paris"));
  EXPECT_EQ(r2.kind, Kind::Reject);
  EXPECT_EQ(r2.error_class, "ban");
  EXPECT_EQ(r2.text, "adresse non reconnue (score 0.47)");
}

TEST_F(BanTest, NoResultIsFlagged) {
  auto e = enricher(options());
  Enrichment r = e->enrich(msg_, body_with("1", "jsajhgsdkfjhsfkjhaldkadjaslgldasd", "", ""));
  EXPECT_EQ(r.kind, Kind::Flagged);
  EXPECT_EQ(r.flag, "adresse introuvable dans la BAN");
  EXPECT_TRUE(r.data.is_null());
}

TEST_F(BanTest, NoAddressMeansNoRequest) {
  auto e = enricher(options());
  Enrichment r = e->enrich(msg_, json{{"individu", {{"id", 1}}}});
  EXPECT_EQ(r.kind, Kind::Ok);
  EXPECT_TRUE(r.data.is_null());
  EXPECT_EQ(sim_.hit_count(), 0u);
}

TEST_F(BanTest, RefusedQueryIsFlagged) {
  sim_.on_query("jeanne", SimReply{400, R"({"code":400,"message":"q must contain..."})", {}, 0});
  auto e = enricher(options());
  Enrichment r = e->enrich(msg_, individu());
  EXPECT_EQ(r.kind, Kind::Flagged);
  EXPECT_NE(r.flag.find("non g\u00e9ocodable"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Unavailable

TEST_F(BanTest, TooManyRequestsHonoursRetryAfter) {
  sim_.on_query_fixture("jeanne d arc", "search-housenumber-20-avenue-kleber-paris.json");
  sim_.fail_next(1, SimReply{429, "Too Many Requests", {{"Retry-After", "1"}}, 0});
  auto e = enricher(options());
  Enrichment r = e->enrich(msg_, individu());
  EXPECT_EQ(r.kind, Kind::Retry);
  EXPECT_EQ(r.error_class, "ban");
  EXPECT_EQ(r.code, 429);
  ASSERT_TRUE(r.retry_after_ms.has_value());
  EXPECT_EQ(*r.retry_after_ms, 1000);
  // Nothing was cached, and the next request waits for the Retry-After.
  auto t0 = std::chrono::steady_clock::now();
  Enrichment r2 = e->enrich(msg_, individu());
  EXPECT_EQ(r2.kind, Kind::Ok);
  ASSERT_EQ(sim_.hit_count(), 2u);
  auto hits = sim_.hits();
  EXPECT_GE(hits[1].at - hits[0].at, std::chrono::milliseconds(900));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
}

TEST_F(BanTest, ServerErrorIsRetried) {
  sim_.fail_next(1, SimReply{503, "<html>maintenance</html>", {}, 0});
  auto e = enricher(options());
  Enrichment r = e->enrich(msg_, individu());
  EXPECT_EQ(r.kind, Kind::Retry);
  EXPECT_EQ(r.error_class, "ban");
  EXPECT_EQ(r.code, 503);
  EXPECT_FALSE(r.retry_after_ms.has_value());
}

TEST_F(BanTest, UnreadableAnswerIsRetried) {
  sim_.fail_next(1, SimReply{200, "<html>proxy page</html>", {}, 0});
  auto e = enricher(options());
  EXPECT_EQ(e->enrich(msg_, individu()).kind, Kind::Retry);
}

TEST_F(BanTest, TimeoutIsRetried) {
  sim_.fail_next(1, SimReply{200, ban_fixture("search-no-result.json"), {}, 1500});
  auto o = options();
  o.timeout_ms = 300;
  auto e = enricher(o);
  auto t0 = std::chrono::steady_clock::now();
  Enrichment r = e->enrich(msg_, individu());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1400));
  EXPECT_EQ(r.kind, Kind::Retry);
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.text.find("timeout"), std::string::npos) << r.text;
}

TEST_F(BanTest, UnreachableIsRetried) {
  auto o = options();
  o.base_url = "http://127.0.0.1:1/geocodage/search";
  auto e = enricher(o);
  Enrichment r = e->enrich(msg_, individu());
  EXPECT_EQ(r.kind, Kind::Retry);
  EXPECT_EQ(r.error_class, "ban");
}

// ---------------------------------------------------------------------------------------------
// Cache

TEST_F(BanTest, IdenticalAddressesCostOneRequest) {
  sim_.on_query_fixture("jeanne d arc", "search-housenumber-20-avenue-kleber-paris.json");
  auto e = enricher(options());
  Enrichment a = e->enrich(msg_, body_with("12", "Rue Jeanne d'Arc", "76000", "Rouen"));
  Enrichment b = e->enrich(msg_, body_with("12", "RUE  JEANNE D\u2019ARC", "76000", "rouen"));
  EXPECT_EQ(a.kind, Kind::Ok);
  EXPECT_EQ(b.kind, Kind::Ok);
  EXPECT_EQ(a.data, b.data);
  EXPECT_EQ(sim_.hit_count(), 1u);
  // A negative answer is cached too.
  e->enrich(msg_, body_with("1", "nowhere street", "", ""));
  e->enrich(msg_, body_with("1", "Nowhere Street", "", ""));
  EXPECT_EQ(sim_.hit_count(), 2u);
  EXPECT_NE(
      metrics_.render().find("relais_ban_lookups_total{enricher=\"ban\",result=\"memory\"} 2"),
      std::string::npos)
      << metrics_.render();
}

TEST_F(BanTest, CacheEntriesExpire) {
  sim_.on_query_fixture("jeanne d arc", "search-housenumber-20-avenue-kleber-paris.json");
  auto o = options();
  o.cache_ttl_ms = 60'000;
  auto e = enricher(o);
  e->enrich(msg_, individu());
  clock_.advance(59'000);
  e->enrich(msg_, individu());
  EXPECT_EQ(sim_.hit_count(), 1u);
  clock_.advance(1'000);
  e->enrich(msg_, individu());
  EXPECT_EQ(sim_.hit_count(), 2u);
}

TEST(BanLru, EvictsTheLeastRecentlyUsed) {
  ban::LruCache c(2, 1000);
  auto m = std::make_shared<const ban::Match>();
  c.put("a", m, 0);
  c.put("b", m, 0);
  EXPECT_NE(c.get("a", 1), nullptr);  // a is now the most recent
  c.put("c", m, 1);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_EQ(c.get("b", 2), nullptr);
  EXPECT_NE(c.get("a", 2), nullptr);
  EXPECT_NE(c.get("c", 2), nullptr);
  EXPECT_EQ(c.get("a", 1000), nullptr);  // expired
  EXPECT_EQ(c.size(), 1u);
}

TEST_F(BanTest, EvictedAddressIsAskedAgain) {
  auto o = options();
  o.cache_size = 2;
  auto e = enricher(o);
  e->enrich(msg_, body_with("1", "rue a", "", "x"));
  e->enrich(msg_, body_with("1", "rue b", "", "x"));
  e->enrich(msg_, body_with("1", "rue c", "", "x"));  // evicts a
  e->enrich(msg_, body_with("1", "rue c", "", "x"));
  EXPECT_EQ(sim_.hit_count(), 3u);
  e->enrich(msg_, body_with("1", "rue a", "", "x"));
  EXPECT_EQ(sim_.hit_count(), 4u);
}

// ---------------------------------------------------------------------------------------------
// Rate limit

// The largest number of hits inside any window of `window` (sliding).
size_t max_in_window(std::vector<SimHit> hits, std::chrono::milliseconds window) {
  std::sort(hits.begin(), hits.end(), [](const SimHit& a, const SimHit& b) { return a.at < b.at; });
  size_t best = 0, lo = 0;
  for (size_t hi = 0; hi < hits.size(); ++hi) {
    while (hits[hi].at - hits[lo].at >= window) ++lo;
    best = std::max(best, hi - lo + 1);
  }
  return best;
}

TEST_F(BanTest, RateLimitHoldsAcrossThreads) {
  auto o = options();
  o.rate_limit = 20;
  o.cache_size = 0;
  auto e = enricher(o);
  const int threads = 6, per_thread = 5;
  std::vector<std::thread> pool;
  std::atomic<int> ok{0};
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        auto r = e->enrich(msg_, body_with(std::to_string(i), "rue " + std::to_string(t), "", "x"));
        if (r.kind == Kind::Flagged) ok++;
      }
    });
  }
  for (auto& th : pool) th.join();
  EXPECT_EQ(ok.load(), threads * per_thread);
  auto hits = sim_.hits();
  ASSERT_EQ(hits.size(), static_cast<size_t>(threads * per_thread));
  // 20/s: at most 1 + 20·0.5 in any half second (+1 for scheduling noise); 30 requests take
  // at least 29/20 s.
  EXPECT_LE(max_in_window(hits, std::chrono::milliseconds(500)), 12u);
  EXPECT_LE(max_in_window(hits, std::chrono::milliseconds(1000)), 22u);
  auto span =
      std::max_element(hits.begin(), hits.end(), [](auto& a, auto& b) { return a.at < b.at; })->at -
      std::min_element(hits.begin(), hits.end(), [](auto& a, auto& b) { return a.at < b.at; })->at;
  EXPECT_GE(span, std::chrono::milliseconds(1300));
}

// ---------------------------------------------------------------------------------------------
// Bulk and reverse

TEST_F(BanTest, BulkGeocodesInChunksWithProgress) {
  ban::BulkGeocoder::Settings s;
  s.csv_url = sim_.csv_url();
  s.chunk_size = 2;
  ban::BulkGeocoder bulk(s);
  std::vector<Address> in = {
      {"20", "avenue Kl\u00e9ber", "75016", "Paris", ""},
      {"1", "chemin, \"perdu\"", "", "Nulle-Part", ""},
      {"20", "AVENUE KLEBER", "", "Paris", "75116"},
      {"", "rue inconnue", "76000", "Rouen", ""},
      {"20", "av kleber", "", "", ""},
  };
  std::vector<std::pair<size_t, size_t>> progress;
  auto out = bulk.geocode(in, [&](size_t done, size_t total) {
    progress.emplace_back(done, total);
    return true;
  });
  ASSERT_EQ(out.size(), in.size());
  EXPECT_EQ(progress, (std::vector<std::pair<size_t, size_t>>{{2, 5}, {4, 5}, {5, 5}}));
  for (size_t i = 0; i < out.size(); ++i) EXPECT_TRUE(out[i].ok) << i << " " << out[i].error;
  for (size_t i : {0u, 2u, 4u}) {
    EXPECT_TRUE(out[i].match.found) << i;
    EXPECT_EQ(out[i].match.data["citycode"], "75116");
    EXPECT_EQ(out[i].match.data["label"], "20 Avenue Kl\u00e9ber 75016 Paris");
    EXPECT_DOUBLE_EQ(out[i].match.data["lon"].get<double>(), 2.292863);
    EXPECT_NEAR(out[i].match.score, 0.9619, 1e-4);
  }
  EXPECT_FALSE(out[1].match.found);
  EXPECT_FALSE(out[3].match.found);

  auto reqs = sim_.csv_requests();
  ASSERT_EQ(reqs.size(), 3u);
  auto names = [](const std::vector<FormPart>& parts, const std::string& n) {
    std::vector<std::string> v;
    for (const auto& p : parts) {
      if (p.name == n) v.push_back(p.data);
    }
    return v;
  };
  EXPECT_EQ(names(reqs[0], "columns"),
            (std::vector<std::string>{"numero", "voie", "code_postal", "commune"}));
  EXPECT_EQ(names(reqs[0], "postcode"), std::vector<std::string>{"code_postal"});
  EXPECT_TRUE(names(reqs[0], "citycode").empty());
  EXPECT_EQ(names(reqs[1], "citycode"), std::vector<std::string>{"code_insee"});
  auto file = ban::csv_parse(names(reqs[0], "data")[0]);
  ASSERT_EQ(file.size(), 3u);
  EXPECT_EQ(file[2][2], "chemin, \"perdu\"");
}

TEST_F(BanTest, BulkRetriesAChunkAndCanBeCancelled) {
  sim_.fail_next(1, SimReply{503, "busy", {{"Retry-After", "0"}}, 0});
  ban::BulkGeocoder::Settings s;
  s.csv_url = sim_.csv_url();
  s.chunk_size = 1;
  ban::BulkGeocoder bulk(s);
  std::vector<Address> in(3, Address{"20", "avenue Kleber", "", "Paris", ""});
  auto out = bulk.geocode(in, [](size_t done, size_t) { return done < 2; });
  EXPECT_EQ(sim_.hit_count(), 3u);  // 503, then chunk 1, then chunk 2
  EXPECT_TRUE(out[0].ok);
  EXPECT_TRUE(out[1].ok);
  EXPECT_FALSE(out[2].ok);
  EXPECT_EQ(out[2].error, "cancelled");

  sim_.fail_next(10, SimReply{500, "down", {{"Retry-After", "0"}}, 0});
  s.max_retries = 1;
  ban::BulkGeocoder failing(s);
  auto bad = failing.geocode({in[0]});
  EXPECT_FALSE(bad[0].ok);
  EXPECT_EQ(bad[0].error, "HTTP 500");
}

TEST_F(BanTest, ReverseGeocoding) {
  auto r = ban::reverse_geocode(options(), 2.060204, 49.031407);
  ASSERT_EQ(r.kind, ban::Lookup::Kind::Found);
  EXPECT_EQ(r.match->data["label"], "6 Quai de la Tourelle 95000 Cergy");
  EXPECT_EQ(r.match->data["citycode"], "95127");
  auto hit = sim_.hits().at(0);
  EXPECT_EQ(hit.path, "/geocodage/reverse");
  EXPECT_EQ(hit.params["lon"][0], "2.060204");
  EXPECT_EQ(hit.params["lat"][0], "49.031407");
  EXPECT_EQ(hit.params["type"][0], "housenumber");
}

// ---------------------------------------------------------------------------------------------
// Configuration

const char* kHubHead = R"(
store: {path: /tmp/unused.db}
sources:
  cms76: {type: $.event}
connectors:
  sink: {connector: http, url: "http://127.0.0.1:1/x"}
)";

TEST(BanConfig, ValidAndInvalidSections) {
  Registries reg;
  ASSERT_NE(reg.enrichers.find("ban"), nullptr);
  std::string good = std::string(kHubHead) + R"(
enrichers:
  adresse:
    enricher: ban
    target: $.individu.adresse_ban
    fields:
      number: $.individu.adresse.numero
      street: $.individu.adresse.voie
      postcode: $.individu.adresse.code_postal
      city: $.individu.adresse.localite
    accept_score: 0.85
    below_review: reject
    cache: {size: 100, ttl: 1h}
    rate_limit: 40
routes:
  - name: r
    source: cms76
    enrich: [{enricher: adresse, on_unavailable: pass}]
    to: [{destination: sink}]
)";
  HubConfig cfg;
  std::vector<ConfigError> errors;
  EXPECT_TRUE(
      load_hub_config_text(good, "good.yaml", "/tmp", reg.connectors, cfg, errors, &reg.enrichers));
  for (const auto& e : errors) ADD_FAILURE() << e.to_string();
  ASSERT_EQ(cfg.enrichers.count("adresse"), 1u);
  EnricherContext ctx;
  ctx.name = "adresse";
  ctx.config = cfg.enrichers.at("adresse").settings;
  SystemClock clock;
  ctx.clock = &clock;
  auto e = ban::make_ban_enricher(ctx);
  EXPECT_DOUBLE_EQ(e->geocoder().options().accept_score, 0.85);
  EXPECT_DOUBLE_EQ(e->geocoder().options().review_score, 0.5);
  EXPECT_TRUE(e->geocoder().options().reject_below_review);
  EXPECT_EQ(e->geocoder().options().cache_ttl_ms, 3'600'000);
  EXPECT_EQ(e->geocoder().options().base_url, "https://data.geopf.fr/geocodage/search");
  EXPECT_EQ(e->geocoder().options().type, "housenumber");

  // Schema errors (unknown key, bad choice) are reported first…
  std::string bad = std::string(kHubHead) + R"(
enrichers:
  adresse:
    enricher: ban
    target: $.a
    fields: {street: $.s}
    below_review: drop
    colour: blue
)";
  errors.clear();
  HubConfig cfg2;
  EXPECT_FALSE(
      load_hub_config_text(bad, "bad.yaml", "/tmp", reg.connectors, cfg2, errors, &reg.enrichers));
  std::string all;
  for (const auto& e : errors) all += e.to_string() + "\n";
  for (const char* needle : {"colour", "below_review"}) {
    EXPECT_NE(all.find(needle), std::string::npos) << needle << " in\n" << all;
  }
  // … then the enricher's own checks.
  bad = std::string(kHubHead) + R"(
enrichers:
  adresse:
    enricher: ban
    target: $.a
    fields: {number: $.n}
    accept_score: 0.4
    review_score: 0.6
    redis: localhost
    base_url: ftp://x
)";
  errors.clear();
  HubConfig cfg3;
  EXPECT_FALSE(
      load_hub_config_text(bad, "bad.yaml", "/tmp", reg.connectors, cfg3, errors, &reg.enrichers));
  all.clear();
  for (const auto& e : errors) all += e.to_string() + "\n";
  for (const char* needle : {"review_score", "street or city", "host:port", "http(s)://"}) {
    EXPECT_NE(all.find(needle), std::string::npos) << needle << " in\n" << all;
  }
  EXPECT_NE(all.find("bad.yaml:"), std::string::npos);
}

}  // namespace
}  // namespace relais::testing

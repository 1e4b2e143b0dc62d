// End to end: the real relais binary with a `ban` enricher pointing at the BAN simulator, a
// route with `enrich:`, and a local sink as the destination.

#include <gtest/gtest.h>

#include <iostream>
#include <sstream>

#include "ban_simulator.h"
#include "tests/support/relais_process.h"

namespace relais::testing {
namespace {

using nlohmann::json;

class BanEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ostringstream y;
    y << "sources:\n"
         "  cms76:\n"
         "    type: $.event\n"
         "    correlation: \"individu:{$.individu.id}\"\n"
         "    idempotency: $.id\n"
         "enrichers:\n"
         "  adresse:\n"
         "    enricher: ban\n"
         "    target: $.individu.adresse_ban\n"
         "    base_url: "
      << sim_.search_url()
      << "\n"
         "    fields:\n"
         "      number: $.individu.adresse.numero\n"
         "      street: $.individu.adresse.voie\n"
         "      postcode: $.individu.adresse.code_postal\n"
         "      city: $.individu.adresse.localite\n"
         "    timeout: 2s\n"
         "connectors:\n"
         "  sink:\n"
         "    connector: http\n"
         "    url: http://127.0.0.1:"
      << sink_.port()
      << "/in\n"
         "    retry: {initial: 100ms, max: 1s, max_attempts: 3}\n"
         "routes:\n"
         "  - name: individus\n"
         "    source: cms76\n"
         "    enrich: [{enricher: adresse, on_unavailable: pass}]\n"
         "    to:\n"
         "      - destination: sink\n";
    RelaisOptions o;
    o.binary = RELAIS_BINARY;
    o.body_yaml = y.str();
    relais_ = std::make_unique<RelaisProcess>(o);
    relais_->start();
  }
  void TearDown() override {
    if (HasFailure() && relais_) {
      std::cout << "---- relais stdout\n"
                << relais_->stdout_text() << "---- relais stderr\n"
                << relais_->stderr_text().substr(0, 20000) << "----\n";
    }
    relais_.reset();
    EXPECT_TRUE(sim_.violations().empty());
  }

  std::string post(const json& body) {
    HttpClient api = relais_->client();
    HttpResponse r = api.post_json("/api/v1/sources/cms76/messages", body.dump());
    EXPECT_EQ(r.status, 202) << r.body << r.error;
    return r.json().value("id", "");
  }
  json message(const std::string& id) {
    HttpClient api = relais_->client();
    return api.get("/api/v1/messages/" + id).json();
  }
  // The message once its delivery is recorded as delivered (the store records it just after
  // the sink answers).
  json delivered(const std::string& id) {
    json m;
    bool ok = wait_until(
        [&] {
          m = message(id);
          return m.contains("deliveries") && m["deliveries"].size() == 1 &&
                 m["deliveries"][0].value("state", "") == "delivered";
        },
        std::chrono::milliseconds(15000));
    EXPECT_TRUE(ok) << m.dump();
    return m;
  }

  BanSimulator sim_;
  tools::HttpSink sink_;
  std::unique_ptr<RelaisProcess> relais_;
};

TEST_F(BanEndToEnd, AddsTheBanAddressAndFlagsWhatMustBeChecked) {
  sim_.on_query_fixture("jeanne d arc", "search-housenumber-20-avenue-kleber-paris.json");
  sim_.on_query_fixture("kleber", "search-locality-kleber-paris.json");
  json original = json::parse(
      read_text(std::string(RELAIS_SHARED_DIR) + "/fixtures/cms76/individu-created.json"));

  // 1. A good address: the BAN data is added at the target, the original is untouched.
  std::string id1 = post(original);
  ASSERT_EQ(sink_.wait_for(1, 15000), 1u);
  json got = json::parse(sink_.requests().at(0).body);
  EXPECT_EQ(got["individu"]["adresse"], original["individu"]["adresse"]);
  const json& b = got["individu"]["adresse_ban"];
  EXPECT_EQ(b["citycode"], "75116");
  EXPECT_EQ(b["id"], "75116_5159_00020");
  EXPECT_EQ(b["housenumber"], "20");
  EXPECT_DOUBLE_EQ(b["x"].get<double>(), 648129.93);
  EXPECT_DOUBLE_EQ(b["lat"].get<double>(), 48.871176);
  json m1 = delivered(id1);
  ASSERT_EQ(m1["deliveries"].size(), 1u);
  EXPECT_EQ(m1["deliveries"][0]["state"], "delivered");
  EXPECT_FALSE(m1["deliveries"][0].contains("flags")) << m1.dump();

  // 2. A low score: delivered un-enriched, with a flag support can see and filter on.
  json low = original;
  low["id"] = "evt-low";
  low["individu"]["id"] = 58124;
  low["individu"]["adresse"]["voie"] = "avenue Kleber";
  std::string id2 = post(low);
  ASSERT_EQ(sink_.wait_for(2, 15000), 2u);
  json got2 = json::parse(sink_.requests().at(1).body);
  EXPECT_FALSE(got2["individu"].contains("adresse_ban"));
  EXPECT_EQ(got2["individu"]["adresse"], low["individu"]["adresse"]);
  json m2 = delivered(id2);
  ASSERT_EQ(m2["deliveries"].size(), 1u);
  EXPECT_EQ(m2["deliveries"][0]["state"], "delivered");
  EXPECT_EQ(m2["deliveries"][0]["flags"],
            json::array({"adresse: adresse non reconnue (score 0.47)"}));

  HttpClient api = relais_->client();
  json flagged = api.get("/api/v1/messages?flagged=true").json();
  ASSERT_TRUE(flagged["items"].is_array()) << flagged.dump();
  ASSERT_EQ(flagged["items"].size(), 1u) << flagged.dump();
  EXPECT_EQ(flagged["items"][0]["id"], id2);

  // 3. The BAN is down and the route says pass: delivered un-enriched with a flag.
  sim_.fail_next(1, SimReply{503, "down", {}, 0});
  json third = original;
  third["id"] = "evt-down";
  third["individu"]["id"] = 58125;
  third["individu"]["adresse"]["voie"] = "Rue du Gros Horloge";
  std::string id3 = post(third);
  ASSERT_EQ(sink_.wait_for(3, 15000), 3u);
  json m3 = delivered(id3);
  EXPECT_EQ(m3["deliveries"][0]["state"], "delivered");
  EXPECT_EQ(m3["deliveries"][0]["flags"],
            json::array({"adresse: non enrichi (the BAN answered HTTP 503)"}));
}

}  // namespace
}  // namespace relais::testing

namespace relais::testing {
namespace {

// `relais ban geocode-csv`: a backfill file through the simulator's /search/csv, in chunks,
// with the progress on standard error and the BAN columns added to every row.
TEST(BanBulkCommand, GeocodesACsvFileInChunksWithProgress) {
  BanSimulator sim;
  TempDir dir("relais-ban-bulk-");
  std::string input = dir.write("adresses.csv",
                                "id,numero,voie,code_postal,commune\n"
                                "1,20,avenue Kléber,75016,Paris\n"
                                "2,6,\"quai de la Tourelle, bât. B\",95000,Cergy\n"
                                "3,20,av Kleber,75116,Paris\n");
  std::string output = dir.path() + "/resultat.csv";
  auto r = run_command({RELAIS_BINARY, "ban", "geocode-csv", "--input", input, "--output", output,
                        "--url", sim.csv_url(), "--chunk", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("ban: 2/3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ban: 3/3 (100 %)"), std::string::npos) << r.err;
  EXPECT_EQ(sim.csv_requests().size(), 2u);  // 3 rows in chunks of 2
  auto rows = ban::csv_parse(read_file(output));
  ASSERT_EQ(rows.size(), 4u);
  ASSERT_EQ(rows[0].back(), "ban_lat");
  EXPECT_EQ(rows[1][0], "1");
  EXPECT_EQ(rows[1][5], "found");
  EXPECT_NE(rows[1][7].find("Kléber"), std::string::npos);  // ban_label
  EXPECT_EQ(rows[2][2], "quai de la Tourelle, bât. B");     // the input row is kept as is
  EXPECT_EQ(rows[2][5], "not found");
  EXPECT_EQ(rows[3][5], "found");

  auto usage = run_command({RELAIS_BINARY, "ban", "geocode-csv"});
  EXPECT_EQ(usage.exit_code, 64);
  EXPECT_NE(usage.err.find("usage: relais ban geocode-csv"), std::string::npos);
}

}  // namespace
}  // namespace relais::testing

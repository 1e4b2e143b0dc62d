// Appariement through the real relais binary: the shipped SOAP profile (config/cms76.yaml's
// `genesis` destination, pointed at the simulator) and the shipped mappings, the store's real
// cross-references and pairings. A person with a homonym in Genesis: the candidates reach CMS76's
// stand-in; the person's request waits; relais is killed (-9) and restarted while both wait;
// CMS76's choice comes back as a message; Genesis then sees the person, then the request — and
// the candidates were posted once.

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tests/genesis/genesis_profile.h"
#include "tests/genesis/genesis_simulator.h"
#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using nlohmann::json;

TEST(GenesisEndToEnd, ChoiceAfterAKill9ThePersonThenItsRequest) {
  GenesisSimulator sim(GenesisSimulator::Protocol::Soap);
  sim.set_account("relais", "mot-de-passe-e2e", true);
  SimPerson dupont{"", "DUPONT", "DUPONT", "Jean", "1962-09-22", "M", "ROUEN", "", 0};
  const std::string chosen = sim.add_person(dupont);
  dupont.commune = "DIEPPE";
  sim.add_person(dupont);  // a homonym: never paired automatically
  tools::HttpSink cms76(0, true, 4);

  TempDir secrets("relais-genesis-e2e-");
  std::string password = secrets.write("genesis.password", "mot-de-passe-e2e\n");
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.body_yaml = appariement_yaml(sim, password, cms76.port());
  RelaisProcess relais(o);
  relais.start();
  const std::string fixtures = std::string(RELAIS_SHARED_DIR) + "/fixtures/cms76/";
  HttpClient c = relais.client();
  HttpResponse r =
      c.post_json("/api/v1/sources/cms76/messages", read_file(fixtures + "individu-created.json"));
  ASSERT_EQ(r.status, 202) << r.body;
  const std::string individu_id = r.json()["id"];
  ASSERT_TRUE(wait_until([&] { return cms76.count() >= 1; }, std::chrono::seconds(20)))
      << relais.stderr_text();
  json candidates = json::parse(cms76.requests()[0].body);
  EXPECT_EQ(candidates["personne"], "individu:58123");
  ASSERT_EQ(candidates["candidats"].size(), 2u);
  r = c.post_json("/api/v1/sources/cms76/messages", read_file(fixtures + "demande-created.json"));
  ASSERT_EQ(r.status, 202) << r.body;
  const std::string demande_id = r.json()["id"];
  // Both wait for the pairing (the console's list shows them), nothing applied in Genesis.
  ASSERT_TRUE(wait_until(
      [&] {
        auto items = c.get("/api/v1/pairings").json().value("items", json::array());
        return items.size() == 1 && items[0].value("waiting", json::array()).size() == 2;
      },
      std::chrono::seconds(20)))
      << c.get("/api/v1/pairings").body;
  EXPECT_TRUE(sim.applied().empty());

  relais.kill9();
  relais.restart();
  c = relais.client();
  json choice = {{"event", "appariement.choisi"},
                 {"id", "evt-choix-58123"},
                 {"appariement", {{"personne", "individu:58123"}, {"genesis_id", chosen}}}};
  r = c.post_json("/api/v1/sources/cms76/messages", choice.dump());
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_TRUE(wait_deliveries_state(c, r.json()["id"], "delivered", std::chrono::seconds(20)));
  EXPECT_TRUE(wait_deliveries_state(c, individu_id, "delivered", std::chrono::seconds(20)))
      << c.get("/api/v1/messages/" + individu_id).body;
  EXPECT_TRUE(wait_deliveries_state(c, demande_id, "delivered", std::chrono::seconds(20)))
      << c.get("/api/v1/messages/" + demande_id).body;
  auto applied = sim.applied();
  ASSERT_EQ(applied.size(), 2u);
  EXPECT_EQ(applied[0], "mettreAJourPersonne " + chosen);
  EXPECT_EQ(applied[1].rfind("creerProcessus PR-", 0), 0u) << applied[1];
  EXPECT_EQ(sim.processes().at(0).personne, chosen);
  EXPECT_EQ(cms76.count(), 1u) << "the candidates were posted again";
  EXPECT_TRUE(sim.violations().empty()) << sim.violations().front();
  EXPECT_EQ(relais.stop(), 0);
}

}  // namespace
}  // namespace relais::testing

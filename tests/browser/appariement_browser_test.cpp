// Drives the browser test of the appariements (appariement_test.mjs, real Chromium via
// playwright-core): relais runs the shipped `genesis` destination against the Genesis simulator,
// where the sample person has a homonym; the person and its request wait for a choice. An
// auditor sees the list with the identities masked and cannot choose; the support desk sees the
// candidates, chooses one — Genesis then gets the person before its request — and undoes the
// pairing with a reason. The audit trail keeps both.

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "tests/browser/console_scenario.h"
#include "tests/genesis/genesis_profile.h"
#include "tests/genesis/genesis_simulator.h"
#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;

TEST(AppariementBrowser, SupportChoosesAndUndoesAuditorSeesMasked) {
  ConsoleScenario::require_browser();
  if (HasFatalFailure()) return;
  GenesisSimulator sim(GenesisSimulator::Protocol::Soap);
  sim.set_account("relais", "mot-de-passe-navigateur", true);
  SimPerson dupont{"", "DUPONT", "DUPONT", "Jean", "1962-09-22", "M", "ROUEN", "", 0};
  const std::string chosen = sim.add_person(dupont);
  dupont.commune = "DIEPPE";
  const std::string homonym = sim.add_person(dupont);
  tools::HttpSink cms76(0, true, 2);  // receives the candidates

  TempDir secrets("relais-appariement-browser-");
  std::string password = secrets.write("genesis.password", "mot-de-passe-navigateur\n");
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.body_yaml = appariement_yaml(sim, password, cms76.port());
  RelaisProcess relais(o);
  relais.start();
  HttpClient admin = relais.client();
  ConsoleScenario::add_users(admin, {{"sophie.support", "support"}, {"aude.auditrice", "auditor"}});
  if (HasFatalFailure()) return;
  const std::string fixtures = std::string(RELAIS_SHARED_DIR) + "/fixtures/cms76/";
  auto individu = admin.post_json("/api/v1/sources/cms76/messages",
                                  read_file(fixtures + "individu-created.json"));
  ASSERT_EQ(individu.status, 202) << individu.body;
  auto demande = admin.post_json("/api/v1/sources/cms76/messages",
                                 read_file(fixtures + "demande-created.json"));
  ASSERT_EQ(demande.status, 202) << demande.body;
  ASSERT_TRUE(wait_until(
      [&] {
        auto items = admin.get("/api/v1/pairings?state=en_attente").json()["items"];
        return items.size() == 1 && items[0]["waiting"].size() == 2;
      },
      std::chrono::seconds(30)))
      << admin.get("/api/v1/pairings").body;
  EXPECT_TRUE(sim.applied().empty());

  std::string shots = std::string(RELAIS_SCREENSHOTS) + "-appariement";
  std::filesystem::remove_all(shots);
  setenv("RELAIS_URL", relais.base_url().c_str(), 1);
  setenv("SUPPORT_USER", "sophie.support", 1);
  setenv("SUPPORT_PASSWORD", "mot de passe de sophie.support", 1);
  setenv("AUDITOR_USER", "aude.auditrice", 1);
  setenv("AUDITOR_PASSWORD", "mot de passe de aude.auditrice", 1);
  setenv("PERSON", "individu:58123", 1);
  setenv("CHOSEN", chosen.c_str(), 1);
  setenv("HOMONYM", homonym.c_str(), 1);
  setenv("SCREENSHOTS", shots.c_str(), 1);
  setenv("CHROMIUM", RELAIS_CHROMIUM, 1);
  auto run = run_command({RELAIS_NODE, std::string(RELAIS_BROWSER_DIR) + "/appariement_test.mjs"},
                         std::chrono::seconds(300));
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  std::cout << run.out;

  // The choice made in the browser: Genesis got the person, then its request, on the chosen
  // record; nothing on the homonym.
  auto applied = sim.applied();
  ASSERT_EQ(applied.size(), 2u);
  EXPECT_EQ(applied[0], "mettreAJourPersonne " + chosen);
  EXPECT_EQ(applied[1].rfind("creerProcessus PR-", 0), 0u) << applied[1];
  EXPECT_TRUE(sim.violations().empty()) << sim.violations().front();
  // Then undone: the pairing says so, and the audit trail keeps who did what.
  auto pairings = admin.get("/api/v1/pairings").json()["items"];
  ASSERT_EQ(pairings.size(), 1u);
  EXPECT_EQ(pairings[0]["state"], "defait");
  EXPECT_EQ(pairings[0]["by"], "sophie.support");
  auto choices = admin.get("/api/v1/audit?actor=sophie.support&action=pairing.choice").json();
  ASSERT_EQ(choices["items"].size(), 1u);
  EXPECT_NE(choices["items"][0].dump().find(chosen), std::string::npos);
  auto undone = admin.get("/api/v1/audit?actor=sophie.support&action=pairing.undo").json();
  EXPECT_EQ(undone["items"].size(), 1u);
  // The auditor's view of the candidates was masked: no clear view audited for them.
  auto views = admin.get("/api/v1/audit?actor=aude.auditrice&action=pairing.view").json();
  EXPECT_EQ(views["items"].size(), 0u);
  for (const char* name : {"appariements-auditeur", "appariements-support", "apparie"}) {
    EXPECT_TRUE(std::filesystem::exists(shots + "/" + name + ".png")) << name;
  }
  EXPECT_EQ(relais.stop(), 0);
}

}  // namespace
}  // namespace relais::testing

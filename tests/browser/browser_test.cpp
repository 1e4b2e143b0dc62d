// Drives the browser test of the console (console_test.mjs, real Chromium via playwright-core):
// starts relais on loopback with a destination that refuses the first delivery of RDV 91877
// and accepts everything else, creates a support and an admin user, posts the messages, then
// runs the script with node and expects it to pass. Screenshots land in the build folder.

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>

#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;

TEST(ConsoleBrowser, SupportRetriesAndAdminPublishesInChromium) {
  ASSERT_TRUE(std::filesystem::exists(RELAIS_CHROMIUM))
      << RELAIS_CHROMIUM << " is missing: run scripts/install-deps.sh";
  ASSERT_TRUE(std::filesystem::exists(std::string(RELAIS_BROWSER_DIR) +
                                      "/node_modules/playwright-core/package.json"))
      << "playwright-core is missing in tests/browser: run scripts/install-deps.sh";

  std::atomic<int> refused{0}, refused_other{0};
  tools::HttpSink sink(0, true, 4);
  sink.set_responder([&](const tools::SinkRequest& r) {
    tools::SinkResponse out;
    // RDV 91877 and 91878: their first delivery is refused, the next ones accepted.
    if ((r.body.find("91877") != std::string::npos && refused.fetch_add(1) == 0) ||
        (r.body.find("91878") != std::string::npos && refused_other.fetch_add(1) == 0)) {
      out.status = 404;
      out.body = "{\"error\":\"not found\"}";
    }
    return out;
  });
  tools::HttpSink webhook(0, true, 2);  // receives the alerts
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.body_yaml = std::string("sources:\n  cms76:\n    type: $.event\n    correlation:\n") +
                "      - \"rdv:{$.rdv.id}\"\n" + "mappings:\n  directory: " + RELAIS_SOURCE_DIR +
                "/config/mappings\n  tables: " + RELAIS_SOURCE_DIR + "/config/tables\n" +
                "connectors:\n  agenda:\n    connector: http\n    url: http://127.0.0.1:" +
                std::to_string(sink.port()) +
                "/agenda\n    retry: {initial: 50ms, max: 100ms, max_attempts: 2}\n" +
                "routes:\n  - name: rdv-agenda\n    source: cms76\n    type: rdv.*\n    to:\n"
                "      - {destination: agenda, mapping: rdv-calendar}\n" +
                "alerts:\n  check_every: 200ms\n  quiet_period: 1h\n  webhook:\n    url: "
                "http://127.0.0.1:" +
                std::to_string(webhook.port()) +
                "/alerts\n  rules:\n"
                "    - {name: bloquees, kind: dead_deliveries, threshold: 1, window: 1h}\n"
                "    - {name: attente, kind: oldest_pending, max_age: 30m}\n";
  RelaisProcess relais(o);
  relais.start();
  HttpClient admin = relais.client();
  for (const auto& [name, role] : std::vector<std::pair<std::string, std::string>>{
           {"sophie.support", "support"}, {"alain.admin", "admin"}}) {
    auto r = admin.post_json(
        "/api/v1/users",
        json{{"name", name}, {"role", role}, {"password", "mot de passe de " + name}}.dump());
    ASSERT_EQ(r.status, 201) << r.body;
  }
  json planned =
      json::parse(read_file(std::string(RELAIS_SHARED_DIR) + "/fixtures/cms76/rdv-planned.json"));
  auto r1 = admin.post_json("/api/v1/sources/cms76/messages", planned.dump());
  ASSERT_EQ(r1.status, 202) << r1.body;
  planned["id"] = "evt-browser-2";
  planned["rdv"]["id"] = 91900;
  auto r2 = admin.post_json("/api/v1/sources/cms76/messages", planned.dump());
  ASSERT_EQ(r2.status, 202) << r2.body;
  planned["id"] = "evt-browser-3";
  planned["rdv"]["id"] = 91878;
  ASSERT_EQ(admin.post_json("/api/v1/sources/cms76/messages", planned.dump()).status, 202);
  // All settled: two dead (refused), one delivered.
  ASSERT_TRUE(wait_until(
      [&] {
        return admin.get("/api/v1/deliveries?state=dead").json()["items"].size() == 2 &&
               sink.count() == 1;
      },
      std::chrono::seconds(60)));

  // Two dead deliveries: the alert rule "more than 1" has fired once.
  ASSERT_TRUE(wait_until([&] { return webhook.count() == 1; }, std::chrono::seconds(60)));

  std::string shots = std::string(RELAIS_SCREENSHOTS);
  std::filesystem::remove_all(shots);
  setenv("RELAIS_URL", relais.base_url().c_str(), 1);
  setenv("SUPPORT_USER", "sophie.support", 1);
  setenv("SUPPORT_PASSWORD", "mot de passe de sophie.support", 1);
  setenv("ADMIN_USER", "alain.admin", 1);
  setenv("ADMIN_PASSWORD", "mot de passe de alain.admin", 1);
  setenv("RDV", "91877", 1);
  setenv("MESSAGE_ID", r2.json()["id"].get<std::string>().c_str(), 1);
  setenv("MAPPING", "rdv-calendar", 1);
  setenv("SCREENSHOTS", shots.c_str(), 1);
  setenv("CHROMIUM", RELAIS_CHROMIUM, 1);
  auto run = run_command({RELAIS_NODE, std::string(RELAIS_BROWSER_DIR) + "/console_test.mjs"},
                         std::chrono::seconds(300));
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  std::cout << run.out;
  // What the browser did is in the audit trail.
  auto audit = admin.get("/api/v1/audit?actor=sophie.support&action=delivery.retry").json();
  EXPECT_EQ(audit["items"].size(), 1u);
  auto rollback = admin.get("/api/v1/audit?actor=alain.admin&action=mapping.rollback").json();
  EXPECT_EQ(rollback["items"].size(), 1u);
  auto bulk = admin.get("/api/v1/audit?actor=sophie.support&action=delivery.bulk_retry").json();
  EXPECT_EQ(bulk["items"].size(), 1u);
  EXPECT_EQ(admin.get("/api/v1/deliveries").json()["items"].size(), 0u) << "nothing left failing";
  auto table = admin.get("/api/v1/tables/cms").json();
  EXPECT_NE(table.value("content", "").find("CMS de test"), std::string::npos);
  for (const char* name : {"tableau-de-bord", "echecs", "detail-livraison", "relance-groupee",
                           "mapping-erreur", "mapping-test", "table", "journal"}) {
    EXPECT_TRUE(std::filesystem::exists(shots + "/" + name + ".png")) << name;
  }
}

}  // namespace
}  // namespace relais::testing

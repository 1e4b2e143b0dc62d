#pragma once
// The relais side of the console's browser scenario (console_test.mjs), shared by the test on
// one node (browser_test.cpp) and the one on two nodes behind nginx (cluster_browser_test.cpp):
// a destination that refuses the first delivery of RDV 91877 and of RDV 91878 and accepts
// everything else, a webhook for the alerts, the configuration, a support and an admin user,
// the three messages; then the script run in Chromium against one address, and what the
// browser must have left behind (audit trail, table, screenshots).
//
// Not thread-safe: one test drives it. Owns the two sinks (stopped by the destructor).

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {

class ConsoleScenario {
 public:
  static constexpr const char* kRdv = "91877";       // retried alone by the support
  static constexpr const char* kOtherRdv = "91878";  // retried by filter
  static constexpr const char* kMapping = "rdv-calendar";

  ConsoleScenario() {
    sink_.set_responder([this](const tools::SinkRequest& r) {
      tools::SinkResponse out;
      std::lock_guard<std::mutex> lock(mu_);
      sent_.push_back(r);
      for (auto& [rdv, seen] : refused_first_) {
        if (r.body.find(rdv) != std::string::npos && seen++ == 0) {
          out.status = 404;
          out.body = "{\"error\":\"not found\"}";
        }
      }
      for (const auto& rdv : paused_) {
        if (r.body.find(rdv) != std::string::npos) {
          out.status = 503;
          out.headers["Retry-After"] = "3600";
        }
      }
      return out;
    });
  }

  // The first delivery of `rdv` will be refused too (404: dead after the attempts).
  void refuse_first(const std::string& rdv) {
    std::lock_guard<std::mutex> lock(mu_);
    refused_first_.emplace(rdv, 0);
  }

  // The agenda answers every delivery of `rdv` "503, come back in an hour": the destination
  // pauses and the delivery waits (not an attempt).
  void pause_on(const std::string& rdv) {
    std::lock_guard<std::mutex> lock(mu_);
    paused_.push_back(rdv);
  }

  // Every delivery of `rdv` the agenda destination was sent (refused or accepted), in order.
  std::vector<tools::SinkRequest> sent_for(const std::string& rdv) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<tools::SinkRequest> out;
    for (const auto& r : sent_) {
      if (r.body.find(rdv) != std::string::npos) out.push_back(r);
    }
    return out;
  }

  // What the agenda destination received (headers included).
  tools::HttpSink& sink() { return sink_; }
  tools::HttpSink& webhook() { return webhook_; }

  // The sources, mappings, connectors, routes and alerts sections. `agenda_extra`: more keys of
  // the agenda destination, each line "    key: value\n"; `more_sources`: more items of
  // `sources:`, each line indented by two spaces; `waiting_max_age`: the alert rule "attente"
  // (the oldest delivery waiting).
  std::string body_yaml(const std::string& agenda_extra = "", const std::string& more_sources = "",
                        const std::string& waiting_max_age = "30m") const {
    const std::string src = RELAIS_SOURCE_DIR;
    return "sources:\n  cms76:\n    type: $.event\n    correlation:\n"
           "      - \"rdv:{$.rdv.id}\"\n" +
           more_sources + "mappings:\n  directory: " + src + "/config/mappings\n  tables: " + src +
           "/config/tables\n"
           "connectors:\n  agenda:\n    connector: http\n    url: http://127.0.0.1:" +
           std::to_string(sink_.port()) +
           "/agenda\n    retry: {initial: 50ms, max: 100ms, max_attempts: 2}\n" + agenda_extra +
           "routes:\n  - name: rdv-agenda\n    source: cms76\n    type: rdv.*\n    to:\n"
           "      - {destination: agenda, mapping: " +
           kMapping +
           "}\n"
           "alerts:\n  check_every: 200ms\n  quiet_period: 1h\n  webhook:\n    url: "
           "http://127.0.0.1:" +
           std::to_string(webhook_.port()) +
           "/alerts\n  rules:\n"
           "    - {name: bloquees, kind: dead_deliveries, threshold: 1, window: 1h}\n"
           "    - {name: attente, kind: oldest_pending, max_age: " +
           waiting_max_age + "}\n";
  }

  // Creates the users and posts the three messages through `admin`, then waits until two
  // deliveries are dead, one delivered, and the alert sent once. Fatal failures: the caller
  // checks HasFatalFailure().
  void prepare(HttpClient& admin) {
    using json = nlohmann::json;
    add_users(admin, {{"sophie.support", "support"}, {"alain.admin", "admin"}});
    if (::testing::Test::HasFatalFailure()) return;
    json planned =
        json::parse(read_file(std::string(RELAIS_SHARED_DIR) + "/fixtures/cms76/rdv-planned.json"));
    ASSERT_EQ(planned["rdv"]["id"].dump(), kRdv);
    auto r1 = admin.post_json("/api/v1/sources/cms76/messages", planned.dump());
    ASSERT_EQ(r1.status, 202) << r1.body;
    planned["id"] = "evt-browser-2";
    planned["rdv"]["id"] = 91900;
    auto r2 = admin.post_json("/api/v1/sources/cms76/messages", planned.dump());
    ASSERT_EQ(r2.status, 202) << r2.body;
    message_id_ = r2.json()["id"].get<std::string>();
    planned["id"] = "evt-browser-3";
    planned["rdv"]["id"] = std::stoi(kOtherRdv);
    ASSERT_EQ(admin.post_json("/api/v1/sources/cms76/messages", planned.dump()).status, 202);
    // All settled: two dead (refused), one delivered.
    ASSERT_TRUE(wait_until(
        [&] {
          return admin.get("/api/v1/deliveries?state=dead").json()["items"].size() == 2 &&
                 sink_.count() == 1;
        },
        std::chrono::seconds(60)));
    // Two dead deliveries: the alert rule "more than 1" has fired once.
    ASSERT_TRUE(wait_until([&] { return webhook_.count() == 1; }, std::chrono::seconds(60)));
  }

  // Runs console_test.mjs in Chromium against `base_url`; screenshots in `shots` (emptied).
  CommandResult run_browser(const std::string& base_url, const std::string& shots) {
    std::filesystem::remove_all(shots);
    shots_ = shots;
    setenv("RELAIS_URL", base_url.c_str(), 1);
    setenv("SUPPORT_USER", "sophie.support", 1);
    setenv("SUPPORT_PASSWORD", "mot de passe de sophie.support", 1);
    setenv("ADMIN_USER", "alain.admin", 1);
    setenv("ADMIN_PASSWORD", "mot de passe de alain.admin", 1);
    setenv("RDV", kRdv, 1);
    setenv("MESSAGE_ID", message_id_.c_str(), 1);
    setenv("MAPPING", kMapping, 1);
    setenv("SCREENSHOTS", shots.c_str(), 1);
    setenv("CHROMIUM", RELAIS_CHROMIUM, 1);
    auto run = run_command({RELAIS_NODE, std::string(RELAIS_BROWSER_DIR) + "/console_test.mjs"},
                           std::chrono::seconds(300));
    std::cout << run.out;
    return run;
  }

  // What the browser did, read back through `admin`: the audit trail, nothing left failing, the
  // table edited, the screenshots.
  void check_outcome(HttpClient& admin) const {
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
      EXPECT_TRUE(std::filesystem::exists(shots_ + "/" + name + ".png")) << name;
    }
  }

  // Creates console users (name, role) through `admin`, each with the password "mot de passe de
  // NAME" that the scripts type. Fatal failures: the caller checks HasFatalFailure().
  static void add_users(HttpClient& admin,
                        const std::vector<std::pair<std::string, std::string>>& users) {
    for (const auto& [name, role] : users) {
      auto r = admin.post_json(
          "/api/v1/users",
          nlohmann::json{{"name", name}, {"role", role}, {"password", "mot de passe de " + name}}
              .dump());
      ASSERT_EQ(r.status, 201) << r.body;
    }
  }

  // Fails the test when Chromium or playwright-core is missing.
  static void require_browser() {
    ASSERT_TRUE(std::filesystem::exists(RELAIS_CHROMIUM))
        << RELAIS_CHROMIUM << " is missing: run scripts/install-deps.sh";
    ASSERT_TRUE(std::filesystem::exists(std::string(RELAIS_BROWSER_DIR) +
                                        "/node_modules/playwright-core/package.json"))
        << "playwright-core is missing in tests/browser: run scripts/install-deps.sh";
  }

 private:
  mutable std::mutex mu_;
  // Each RDV's first delivery is refused, the next ones accepted (guarded by mu_).
  std::map<std::string, int> refused_first_{{kRdv, 0}, {kOtherRdv, 0}};
  std::vector<tools::SinkRequest> sent_;  // guarded by mu_
  std::vector<std::string> paused_;       // guarded by mu_
  tools::HttpSink sink_{0, true, 4};
  tools::HttpSink webhook_{0, true, 2};  // receives the alerts
  std::string message_id_;
  std::string shots_;
};

}  // namespace relais::testing

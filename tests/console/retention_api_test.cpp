// Retention (docs/security.md, "Retention") on the real binary, with retentions of a second so
// that the wall clock ages the messages: POST /api/v1/retention/run (admin only; a dry run lists
// and changes nothing) purges the payloads past their route's and state's retention and not the
// others; the API shows "purgé (durée de conservation)"; a purged dead delivery cannot be
// retried (the tombstone would be sent); the run is audited by "retention" with its counts and
// counted in /metrics; `relais retention run` goes through the running relais or runs on the
// store when none runs; `relais store compact` refuses while relais runs, compacts offline.

#include <gtest/gtest.h>

#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;

class RetentionApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ok_ = std::make_unique<tools::HttpSink>(0, true, 4);
    refuses_ = std::make_unique<tools::HttpSink>(0, true, 4);
    refuses_->set_responder([](const tools::SinkRequest&) {
      tools::SinkResponse out;
      out.status = 400;
      out.body = "{\"error\":\"invalid\"}";
      return out;
    });
    RelaisOptions o;
    o.binary = RELAIS_BINARY;
    const std::string release = "    on_dead: release\n";
    o.body_yaml =
        "sources:\n  app:\n    type: $.type\n    correlation: \"rdv:{$.id}\"\n"
        "connectors:\n" +
        http_connector_yaml("partner", ok_->port(), release) +
        http_connector_yaml("refuses", refuses_->port(), release) +
        "routes:\n"
        "  - name: vite\n    source: app\n    type: rdv.fast\n    to:\n"
        "      - destination: partner\n"
        "  - name: lent\n    source: app\n    type: rdv.slow\n    to:\n"
        "      - destination: partner\n"
        "  - name: refus\n    source: app\n    type: rdv.bad\n    to:\n"
        "      - destination: refuses\n"
        "retention:\n"
        "  metadata: 2h\n  unrouted: 1h\n"
        "  default: {delivered: 1h, dead: 1s, discarded: 1h, skipped: 1h}\n"
        "  routes:\n    vite: {delivered: 1s}\n";
    relais_ = std::make_unique<RelaisProcess>(o);
    relais_->start();
    admin_ = relais_->client();
  }
  void TearDown() override {
    if (HasFailure() && relais_) std::cout << relais_->stderr_text().substr(0, 20000) << "\n";
    relais_.reset();
  }

  std::string post(const std::string& type, int id, const std::string& name) {
    json body = {{"type", type}, {"id", id}, {"personne", {{"nom", name}}}};
    auto r = admin_.post_json("/api/v1/sources/app/messages", body.dump());
    EXPECT_EQ(r.status, 202) << r.body;
    return r.json().value("id", "");
  }
  void wait_state(const std::string& mid, const std::string& state) {
    EXPECT_TRUE(wait_deliveries_state(admin_, mid, state)) << mid << " never became " << state;
  }
  HttpResponse run(HttpClient& c, bool dry) {
    return c.post_json("/api/v1/retention/run", json{{"dry_run", dry}}.dump());
  }
  CommandResult cli(std::vector<std::string> args) {
    std::vector<std::string> argv = {RELAIS_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--config");
    argv.push_back(relais_->config_path());
    return run_command(argv);
  }

  std::unique_ptr<tools::HttpSink> ok_, refuses_;
  std::unique_ptr<RelaisProcess> relais_;
  HttpClient admin_;
};

TEST_F(RetentionApiTest, PurgesWhatIsDueThroughTheApiAuditedAndCounted) {
  const std::string fast = post("rdv.fast", 1, "MARTIN-Zoé");
  const std::string slow = post("rdv.slow", 2, "LEROUX-Paul");
  const std::string bad = post("rdv.bad", 3, "BERNARD-Lou");
  wait_state(fast, "delivered");
  wait_state(slow, "delivered");
  wait_state(bad, "dead");

  for (const std::string role : {"support", "auditor", "system"}) {
    auto t =
        admin_.post_json("/api/v1/tokens", json{{"name", "ret-" + role}, {"role", role}}.dump());
    ASSERT_EQ(t.status, 201) << t.body;
    HttpClient c(relais_->base_url(), t.json().value("token", ""));
    EXPECT_EQ(run(c, true).status, 403) << role;
  }
  EXPECT_EQ(admin_.post_json("/api/v1/retention/run", "{\"dry_run\": 1}").status, 400);

  // A dry run, until the second has passed for both: it lists them and changes nothing.
  json dry;
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = run(admin_, true);
        if (r.status != 200) return false;
        dry = r.json();
        return dry["purged"].value("messages", 0) == 2;
      },
      std::chrono::seconds(15)))
      << dry.dump();
  EXPECT_EQ(dry["purged"]["sample"].size(), 2u);
  EXPECT_EQ(dry["purged"]["sample"].dump().find(slow), std::string::npos) << "kept an hour";
  EXPECT_NE(admin_.get("/api/v1/messages/" + fast).body.find("MARTIN-Zoé"), std::string::npos);

  auto r = run(admin_, false);
  ASSERT_EQ(r.status, 200) << r.body;
  json out = r.json();
  EXPECT_EQ(out["purged"].value("messages", 0), 2) << r.body;
  EXPECT_EQ(out["purged"].value("deliveries", 0), 2) << r.body;
  EXPECT_EQ(out["deleted"].value("messages", -1), 0) << r.body;
  EXPECT_TRUE(out.value("incremental_vacuum", false)) << r.body;

  // The API says purged, not erased; nothing of the persons is left; the other is intact.
  for (const auto& [mid, name] : std::vector<std::pair<std::string, std::string>>{
           {fast, "MARTIN-Zoé"}, {bad, "BERNARD-Lou"}}) {
    auto m = admin_.get("/api/v1/messages/" + mid);
    json j = m.json();
    ASSERT_TRUE(j.contains("erased")) << m.body;
    EXPECT_EQ(j["erased"].value("label", ""), "purgé (durée de conservation)") << m.body;
    EXPECT_EQ(m.body.find(name), std::string::npos) << m.body;
  }
  EXPECT_NE(admin_.get("/api/v1/messages/" + slow).body.find("LEROUX-Paul"), std::string::npos);

  // A purged dead delivery cannot be retried: the partner would receive the tombstone.
  const std::string dead_delivery =
      admin_.get("/api/v1/messages/" + bad).json()["deliveries"].at(0).value("id", "");
  const size_t sent = refuses_->requests().size();
  auto retry = admin_.post_json("/api/v1/deliveries/" + dead_delivery + "/retry", "{}");
  EXPECT_EQ(retry.status, 409) << retry.body;
  EXPECT_EQ(refuses_->requests().size(), sent);

  // Audited by "retention", counts only, naming who asked; the dry run by the admin.
  auto audit = admin_.get("/api/v1/audit?action=retention.run").json()["items"];
  ASSERT_EQ(audit.size(), 1u) << audit.dump();
  EXPECT_EQ(audit[0].value("actor", ""), "retention");
  EXPECT_NE(audit[0].value("detail", "").find("2 message(s) purgé(s)"), std::string::npos);
  EXPECT_NE(audit[0].value("detail", "").find("lancée par test-admin"), std::string::npos);
  EXPECT_EQ(audit.dump().find("MARTIN"), std::string::npos);
  EXPECT_FALSE(admin_.get("/api/v1/audit?action=retention.dry_run").json()["items"].empty());
  std::string metrics = admin_.get("/metrics").body;
  EXPECT_NE(metrics.find("relais_retention_messages_purged_total 2"), std::string::npos)
      << metrics.substr(0, 2000);

  // The command goes through the running relais; compact refuses while it runs.
  auto c = cli({"retention", "run", "--dry-run", "--token", relais_->token()});
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
  EXPECT_NE(c.out.find("would purge the payloads of 0 message(s)"), std::string::npos) << c.out;
  c = cli({"store", "compact"});
  EXPECT_EQ(c.exit_code, 1) << c.out << c.err;
  EXPECT_NE(c.err.find("offline only"), std::string::npos) << c.err;

  // Without relais: the purge runs on the store (audited there), compact rewrites it.
  ASSERT_EQ(relais_->stop(), 0);
  c = cli({"retention", "run"});
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
  EXPECT_NE(c.out.find("payloads purged: 0 message(s)"), std::string::npos) << c.out;
  c = cli({"store", "compact"});
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
  EXPECT_NE(c.out.find("incremental vacuum on"), std::string::npos) << c.out;
  relais_->start();
  admin_ = relais_->client();  // the port may have changed
  audit = admin_.get("/api/v1/audit?action=retention.run").json()["items"];
  EXPECT_EQ(audit.size(), 2u) << audit.dump();
}

}  // namespace
}  // namespace relais::testing

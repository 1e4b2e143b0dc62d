// Erasure of one person's payloads (docs/security.md, "Erasure") on the real binary: messages of
// two persons delivered, one erased through the admin API — its bodies, mapped payloads and
// partners' answers are tombstones in the API and in the SQLite file itself, the other's are
// intact, the audit trail has the erasure (key and counts only); a delivery still retrying
// blocks it unless forced; other roles get 403; the CLI goes through the running relais and
// refuses when none runs.

#include <gtest/gtest.h>

#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;

class ErasureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The partner accepts and echoes the request in its answer (the excerpt holds it too).
    ok_ = std::make_unique<tools::HttpSink>(0, true, 4);
    ok_->set_responder([](const tools::SinkRequest& r) {
      tools::SinkResponse out;
      out.body = "{\"accepted\":" + r.body + "}";
      return out;
    });
    // This one is down: its deliveries stay retrying (next attempt in ten minutes).
    down_ = std::make_unique<tools::HttpSink>(0, true, 4);
    down_->set_responder([](const tools::SinkRequest&) {
      tools::SinkResponse out;
      out.status = 503;
      out.body = "{\"error\":\"maintenance\"}";
      return out;
    });
    RelaisOptions o;
    o.binary = RELAIS_BINARY;
    o.body_yaml =
        "sources:\n"
        "  app:\n    type: $.type\n    correlation: \"individu:{$.personne.id}\"\n"
        "  held:\n    type: $.type\n    correlation: \"individu:{$.personne.id}\"\n"
        "connectors:\n" +
        http_connector_yaml("partner", ok_->port(),
                            "    retry: {initial: 50ms, max: 100ms, max_attempts: 3}\n") +
        http_connector_yaml("closed", down_->port(),
                            "    retry: {initial: 600s, max: 600s, max_attempts: 5}\n") +
        "routes:\n"
        "  - name: app-partner\n    source: app\n    to:\n      - destination: partner\n"
        "  - name: held-closed\n    source: held\n    to:\n      - destination: closed\n";
    relais_ = std::make_unique<RelaisProcess>(o);
    relais_->start();
    admin_ = relais_->client();
  }

  void TearDown() override {
    if (HasFailure() && relais_) std::cout << relais_->stderr_text().substr(0, 20000) << "\n";
    relais_.reset();
  }

  std::string post(const std::string& source, int person, const std::string& name,
                   const std::string& phone) {
    json body = {{"type", "rdv.planned"},
                 {"personne", {{"id", person}, {"nom", name}, {"telephone", phone}}}};
    auto r = admin_.post_json("/api/v1/sources/" + source + "/messages", body.dump());
    EXPECT_EQ(r.status, 202) << r.body;
    return r.json().value("id", "");
  }

  // Waits until every delivery of the message is in `state`.
  void wait_state(const std::string& mid, const std::string& state) {
    EXPECT_TRUE(wait_deliveries_state(admin_, mid, state)) << mid << " never became " << state;
  }

  std::string delivery_of(const std::string& mid) {
    return admin_.get("/api/v1/messages/" + mid).json()["deliveries"].at(0).value("id", "");
  }

  // Every text of the tables that hold payloads, as the sqlite3 tool reads them from the file.
  std::string table_rows() {
    auto r = run_command({"/usr/bin/sqlite3", "-readonly", relais_->store_path(),
                          "SELECT body FROM messages; SELECT payload, last_text FROM deliveries; "
                          "SELECT text, excerpt FROM attempts;"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }

  HttpResponse erase(HttpClient& c, const std::string& key, bool force) {
    return c.post_json(
        "/api/v1/privacy/erase",
        json{{"correlation", key}, {"reason", "demande d'effacement n°2026-117"}, {"force", force}}
            .dump());
  }

  std::unique_ptr<tools::HttpSink> ok_, down_;
  std::unique_ptr<RelaisProcess> relais_;
  HttpClient admin_;
};

const std::vector<std::string> kMartin = {"MARTIN-Zoé", "0611223344"};
const std::vector<std::string> kLeroux = {"LEROUX-Paul", "0655443322"};
const std::vector<std::string> kBernard = {"BERNARD-Lou", "0699887766"};

TEST_F(ErasureTest, ErasesOnePersonsPayloadsAndKeepsTheOthers) {
  std::string a1 = post("app", 58123, kMartin[0], kMartin[1]);
  std::string a2 = post("app", 58123, kMartin[0], kMartin[1]);
  std::string b1 = post("app", 77001, kLeroux[0], kLeroux[1]);
  for (const auto& m : {a1, a2, b1}) wait_state(m, "delivered");
  std::string a1_delivery = delivery_of(a1);
  // Before: the values are in the API and in the file (so that the test can fail).
  std::string before = admin_.get("/api/v1/deliveries/" + a1_delivery).body;
  std::string rows = table_rows();
  auto file_bytes = [&] {
    return read_file(relais_->store_path()) + read_file(relais_->store_path() + "-wal");
  };
  std::string raw = file_bytes();
  for (const auto& v : kMartin) {
    ASSERT_NE(before.find(v), std::string::npos) << v;
    ASSERT_NE(rows.find(v), std::string::npos) << v;
    ASSERT_NE(raw.find(v), std::string::npos) << v;
  }

  // Other roles may not erase.
  for (const std::string role : {"support", "auditor", "system"}) {
    auto t =
        admin_.post_json("/api/v1/tokens", json{{"name", "erase-" + role}, {"role", role}}.dump());
    ASSERT_EQ(t.status, 201) << t.body;
    HttpClient c(relais_->base_url(), t.json().value("token", ""));
    EXPECT_EQ(erase(c, "individu:58123", true).status, 403) << role;
  }

  auto r = erase(admin_, "individu:58123", false);
  ASSERT_EQ(r.status, 200) << r.body;
  json out = r.json();
  EXPECT_EQ(out.value("messages", 0), 2);
  EXPECT_EQ(out.value("deliveries", 0), 2);
  EXPECT_GE(out.value("attempts", 0), 2);
  // The WAL's truncation waits for readers (busy timeout); a reader holding a snapshot longer
  // (a loaded machine) leaves it for a second call, which erases nothing more and truncates.
  bool truncated = out.value("wal_truncated", false);
  size_t calls = 1;
  for (int i = 0; i < 3 && !truncated; ++i, ++calls) {
    auto again = erase(admin_, "individu:58123", false);
    ASSERT_EQ(again.status, 200) << again.body;
    EXPECT_EQ(again.json().value("messages", -1), 0) << again.body;
    truncated = again.json().value("wal_truncated", false);
  }
  EXPECT_TRUE(truncated);

  // The API shows the tombstone, nothing of the person.
  auto detail = admin_.get("/api/v1/deliveries/" + a1_delivery);
  auto message = admin_.get("/api/v1/messages/" + a2);
  for (const auto* resp : {&detail, &message}) {
    json j = resp->json();
    ASSERT_TRUE(j.contains("erased")) << resp->body;
    EXPECT_EQ(j["erased"].value("effacé", false), true);
    EXPECT_EQ(j["erased"].value("motif", ""), "demande d'effacement n°2026-117");
    EXPECT_FALSE(j["erased"].value("par", "").empty());
    for (const auto& v : kMartin) EXPECT_EQ(resp->body.find(v), std::string::npos) << v;
  }
  EXPECT_EQ(detail.json()["payload_before"].value("effacé", false), true) << detail.body;
  // In the file: no row of the tables holds them, nor (secure_delete, WAL truncated) any byte.
  rows = table_rows();
  raw = file_bytes();
  for (const auto& v : kMartin) {
    EXPECT_EQ(rows.find(v), std::string::npos) << v;
    EXPECT_EQ(raw.find(v), std::string::npos) << v << " is still in the file's bytes";
  }
  // The other person's payloads are intact.
  std::string other = admin_.get("/api/v1/messages/" + b1).body;
  for (const auto& v : kLeroux) {
    EXPECT_NE(other.find(v), std::string::npos) << v;
    EXPECT_NE(rows.find(v), std::string::npos) << v;
  }
  EXPECT_FALSE(json::parse(other).contains("erased"));

  // Audited: the key and the counts, nothing else of the person.
  auto audit = admin_.get("/api/v1/audit?action=privacy.erase").json()["items"];
  ASSERT_EQ(audit.size(), calls) << audit.dump();  // one entry per call
  bool counted = false;
  for (const auto& e : audit) {
    EXPECT_EQ(e.value("object", ""), "individu:58123");
    counted = counted || e.value("detail", "").find("2 message(s)") != std::string::npos;
  }
  EXPECT_TRUE(counted) << audit.dump();
  std::string csv = admin_.get("/api/v1/audit.csv").body;
  for (const auto& v : kMartin) EXPECT_EQ(csv.find(v), std::string::npos) << v;

  // Again: nothing left to erase.
  r = erase(admin_, "individu:58123", false);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json().value("messages", -1), 0);
}

TEST_F(ErasureTest, ARetryingDeliveryBlocksWithoutForce) {
  std::string c1 = post("held", 99001, kBernard[0], kBernard[1]);
  wait_state(c1, "retrying");
  auto r = erase(admin_, "individu:99001", false);
  ASSERT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(r.json().value("active", 0), 1);
  EXPECT_NE(admin_.get("/api/v1/messages/" + c1).body.find(kBernard[0]), std::string::npos);
  // Forced: the delivery is discarded first (never sent afterwards), then erased.
  r = erase(admin_, "individu:99001", true);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json().value("discarded", 0), 1);
  EXPECT_EQ(r.json().value("messages", 0), 1);
  auto m = admin_.get("/api/v1/messages/" + c1);
  EXPECT_EQ(m.json()["deliveries"].at(0).value("state", ""), "discarded") << m.body;
  for (const auto& v : kBernard) EXPECT_EQ(table_rows().find(v), std::string::npos) << v;
  auto audit = admin_.get("/api/v1/audit?action=privacy.erase").json()["items"];
  EXPECT_EQ(audit.size(), 2u) << "the refusal and the erasure: " << audit.dump();
}

TEST_F(ErasureTest, TheCommandGoesThroughTheRunningRelaisAndRefusesWithoutOne) {
  std::string b1 = post("app", 77001, kLeroux[0], kLeroux[1]);
  wait_state(b1, "delivered");
  auto cmd = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {RELAIS_BINARY,   "privacy",        "erase",
                                     "--correlation", "individu:77001", "--reason",
                                     "demande n°5",   "--config",       relais_->config_path()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_command(argv);
  };
  auto r = cmd({"--server", relais_->base_url(), "--token", relais_->token()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("1 message(s)"), std::string::npos) << r.out;
  EXPECT_EQ(table_rows().find(kLeroux[0]), std::string::npos);
  ASSERT_EQ(relais_->stop(), 0);
  r = cmd({});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("no relais is running"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace relais::testing

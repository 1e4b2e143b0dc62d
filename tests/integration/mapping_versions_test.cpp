// Mapping versions through the API of a running relais while messages flow: deliveries before a
// publication used version N, after it N+1; a rollback goes back to N; an invalid mapping is
// refused with its errors and changes nothing.

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream b;
  b << in.rdbuf();
  return b.str();
}

class MappingVersionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sink_ = std::make_unique<tools::HttpSink>(0, true, 8);
    RelaisOptions o;
    o.binary = RELAIS_BINARY;
    o.body_yaml = std::string(
                      "sources:\n  cms76:\n    type: $.event\n    correlation: "
                      "\"rdv:{$.rdv.id}\"\n") +
                  "mappings:\n  directory: " + RELAIS_SOURCE_DIR + "/config/mappings\n" +
                  "  tables: " + RELAIS_SOURCE_DIR + "/config/tables\n" +
                  "connectors:\n  agenda:\n    connector: http\n    url: http://127.0.0.1:" +
                  std::to_string(sink_->port()) +
                  "/agenda\n    concurrency: 4\n    retry: {initial: 50ms, max: 200ms, "
                  "max_attempts: 3}\n" +
                  "routes:\n  - name: rdv-agenda\n    source: cms76\n    type: rdv.*\n    to:\n"
                  "      - {destination: agenda, mapping: rdv-calendar}\n";
    relais_ = std::make_unique<RelaisProcess>(o);
    relais_->start();
    planned_ =
        json::parse(slurp(std::string(RELAIS_SHARED_DIR) + "/fixtures/cms76/rdv-planned.json"));
  }

  // Posts an rdv.planned for RDV `n`; returns the message id.
  std::string post(HttpClient& c, int n) {
    json body = planned_;
    body["rdv"]["id"] = n;
    auto r = c.post_json("/api/v1/sources/cms76/messages", body.dump());
    EXPECT_EQ(r.status, 202) << r.body;
    return r.json().value("id", "");
  }

  // The mapping version the message's delivery used (0 while not delivered).
  int64_t version_of(HttpClient& c, const std::string& id) {
    auto r = c.get("/api/v1/messages/" + id);
    auto j = r.json();
    if (!j.contains("deliveries") || j["deliveries"].empty()) return 0;
    const auto& d = j["deliveries"][0];
    if (d.value("state", "") != "delivered") return 0;
    return d.value("mapping_version", int64_t{0});
  }

  std::unique_ptr<tools::HttpSink> sink_;
  std::unique_ptr<RelaisProcess> relais_;
  json planned_;
};

TEST_F(MappingVersionsTest, PublishWhileMessagesFlowThenRollBack) {
  HttpClient admin = relais_->client();
  auto listed = admin.get("/api/v1/mappings/rdv-calendar").json();
  ASSERT_EQ(listed.value("active_version", 0), 1) << listed.dump();
  const std::string v1_text = listed["content"].get<std::string>();
  ASSERT_NE(v1_text.find("reminder_minutes: 15"), std::string::npos);

  // A producer posts continuously while the mapping is published.
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<std::pair<std::string, bool>> posted;  // id, posted after the publication
  std::atomic<bool> published{false};
  std::thread producer([&] {
    HttpClient c = relais_->client();
    for (int n = 1; !stop.load() && n < 2000; ++n) {
      bool after = published.load();
      std::string id = post(c, 100000 + n);
      std::lock_guard<std::mutex> lock(mu);
      posted.emplace_back(id, after);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  ASSERT_TRUE(wait_until([&] { return sink_->count() >= 20; }, std::chrono::seconds(20)));

  std::string v2_text = v1_text;
  v2_text.replace(v2_text.find("reminder_minutes: 15"), 20, "reminder_minutes: 30");
  auto pub = admin.post_json(
      "/api/v1/mappings/rdv-calendar/versions",
      json{{"content", v2_text}, {"comment", "rappel 30 minutes"}, {"activate", true}}.dump());
  ASSERT_EQ(pub.status, 201) << pub.body;
  ASSERT_EQ(pub.json()["version"], 2);
  published = true;
  size_t at_publish = sink_->count();
  ASSERT_TRUE(
      wait_until([&] { return sink_->count() >= at_publish + 20; }, std::chrono::seconds(20)));
  stop = true;
  producer.join();
  ASSERT_TRUE(wait_until(
      [&] {
        std::lock_guard<std::mutex> lock(mu);
        return sink_->count() >= posted.size();
      },
      std::chrono::seconds(30)));

  // Every delivery used v1 or v2; everything posted after the publication used v2; the payload
  // matches the version it claims.
  size_t v1 = 0, v2 = 0;
  for (const auto& [id, after] : posted) {
    int64_t v = version_of(admin, id);
    ASSERT_TRUE(v == 1 || v == 2) << id << " used version " << v;
    if (after) {
      EXPECT_EQ(v, 2) << id << " was posted after the publication";
    }
    (v == 1 ? v1 : v2)++;
  }
  EXPECT_GT(v1, 0u);
  EXPECT_GT(v2, 0u);
  for (const auto& r : sink_->requests()) {
    auto body = json::parse(r.body);
    int reminder = body["event"]["reminder_minutes"];
    EXPECT_TRUE(reminder == 15 || reminder == 30);
  }

  // Roll back to v1: new deliveries use v1 again.
  auto rb = admin.post_json("/api/v1/mappings/rdv-calendar/activate",
                            json{{"version", 1}, {"comment", "retour arrière"}}.dump());
  ASSERT_EQ(rb.status, 200) << rb.body;
  std::string id = post(admin, 777);
  ASSERT_TRUE(wait_until([&] { return version_of(admin, id) != 0; }, std::chrono::seconds(10)));
  EXPECT_EQ(version_of(admin, id), 1);
  auto last = json::parse(sink_->requests().back().body);
  EXPECT_EQ(last["event"]["reminder_minutes"], 15);

  // The history says who did what.
  auto info = admin.get("/api/v1/mappings/rdv-calendar").json();
  EXPECT_EQ(info["active_version"], 1);
  ASSERT_GE(info["activations"].size(), 3u);
  EXPECT_EQ(info["activations"][0]["comment"], "retour arrière");
  auto diff = admin.get("/api/v1/mappings/rdv-calendar/diff?from=1&to=2").json();
  EXPECT_NE(diff["diff"].get<std::string>().find("+      reminder_minutes: 30"), std::string::npos);
}

TEST_F(MappingVersionsTest, InvalidMappingIsRefusedWithItsErrors) {
  HttpClient admin = relais_->client();
  std::string bad =
      "name: rdv-calendar\nfields:\n  subject: uper($.rdv.id)\n"
      "  lieu: lookup('nulle-part', $.rdv.cms.nom)\n";
  auto r = admin.post_json("/api/v1/mappings/rdv-calendar/versions",
                           json{{"content", bad}, {"activate", true}}.dump());
  ASSERT_EQ(r.status, 422) << r.body;
  auto j = r.json();
  ASSERT_EQ(j["diagnostics"].size(), 2u) << r.body;
  EXPECT_EQ(j["diagnostics"][0]["line"], 3);
  EXPECT_EQ(j["diagnostics"][0]["column"], 12);
  EXPECT_NE(j["diagnostics"][0]["message"].get<std::string>().find("uper"), std::string::npos);
  EXPECT_NE(j["diagnostics"][1]["message"].get<std::string>().find("nulle-part"),
            std::string::npos);
  // Nothing was stored or activated; messages still map with v1.
  auto info = admin.get("/api/v1/mappings/rdv-calendar").json();
  EXPECT_EQ(info["active_version"], 1);
  EXPECT_EQ(info["versions"].size(), 1u);
  std::string id = post(admin, 4242);
  ASSERT_TRUE(wait_until([&] { return version_of(admin, id) != 0; }, std::chrono::seconds(10)));
  EXPECT_EQ(version_of(admin, id), 1);
}

TEST_F(MappingVersionsTest, DryRunOnAStoredMessageAndReplayCheck) {
  HttpClient admin = relais_->client();
  std::string id = post(admin, 5150);
  ASSERT_TRUE(wait_until([&] { return version_of(admin, id) != 0; }, std::chrono::seconds(10)));
  auto t = admin.post_json("/api/v1/mappings/rdv-calendar/test", json{{"message_id", id}}.dump());
  ASSERT_EQ(t.status, 200) << t.body;
  auto j = t.json();
  EXPECT_EQ(j["result"], "ok");
  EXPECT_EQ(j["output"]["action"], "create");
  EXPECT_EQ(j["output"]["event"]["start"], "2019-05-17T10:00:00+02:00");

  // A message the active mapping cannot map (no date) goes dead with the mapping's reason.
  json broken = planned_;
  broken["rdv"]["id"] = 6160;
  broken["rdv"].erase("date");
  auto r = admin.post_json("/api/v1/sources/cms76/messages", broken.dump());
  ASSERT_EQ(r.status, 202);
  std::string dead_id = r.json()["id"];
  json dead;
  ASSERT_TRUE(wait_until(
      [&] {
        dead = admin.get("/api/v1/messages/" + dead_id).json();
        return dead["deliveries"][0]["state"] == "dead";
      },
      std::chrono::seconds(10)));
  EXPECT_NE(dead["deliveries"][0]["last_outcome"]["text"].get<std::string>().find(
                "date du rendez-vous absente"),
            std::string::npos);
  EXPECT_EQ(dead["deliveries"][0]["last_outcome"]["class"], "mapping");

  // The replay check of the active version: still failing; of a corrected candidate: repaired.
  auto rc = admin.post_json("/api/v1/mappings/rdv-calendar/replay-check",
                            json{{"destination", "agenda"}}.dump());
  ASSERT_EQ(rc.status, 200) << rc.body;
  EXPECT_EQ(rc.json()["checked"], 1);
  EXPECT_EQ(rc.json()["still_failing"], 1);
  std::string text = admin.get("/api/v1/mappings/rdv-calendar").json()["content"];
  std::string from = "required($.rdv.date, 'date du rendez-vous absente')";
  ASSERT_NE(text.find(from), std::string::npos);
  text.replace(text.find(from), from.size(), "default($.rdv.date, '2019-05-17')");
  rc = admin.post_json("/api/v1/mappings/rdv-calendar/replay-check",
                       json{{"destination", "agenda"}, {"content", text}}.dump());
  ASSERT_EQ(rc.status, 200) << rc.body;
  EXPECT_EQ(rc.json()["would_succeed"], 1) << rc.body;
  EXPECT_EQ(rc.json()["still_failing"], 0);
}

}  // namespace
}  // namespace relais::testing

namespace relais::testing {
namespace {

// The command line: import publishes only what changed (all-or-nothing), list shows the
// versions, mapping test dry-runs, export writes the active versions back to files.
TEST(MappingCommands, ImportListTestExport) {
  TempDir dir("relais-mappings-cli-");
  std::string cfg = dir.write("relais.yaml",
                              "store: {path: relais.db}\n"
                              "sources: {cms76: {type: $.event}}\n");
  std::string src = RELAIS_SOURCE_DIR;
  auto import = [&](const std::string& from, const std::string& comment) {
    return run_command({RELAIS_BINARY, "mappings", "import", from, "--tables",
                        src + "/config/tables", "--config", cfg, "--author", "alice", "--comment",
                        comment});
  };
  auto r = import(src + "/config/mappings", "première version");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("published mapping rdv-calendar v1"), std::string::npos) << r.out;
  r = import(src + "/config/mappings", "rien de neuf");
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("0 published"), std::string::npos) << r.out;

  // A folder with one changed file and one broken file: nothing is published.
  std::string changed = read_file(src + "/config/mappings/rdv-calendar.yaml");
  changed.replace(changed.find("reminder_minutes: 15"), 20, "reminder_minutes: 45");
  dir.write("m/rdv-calendar.yaml", changed);
  dir.write("m/rdv-sms-moved.yaml", "name: rdv-sms-moved\nfields:\n  to: phone_e165($.x)\n");
  r = import(dir.path() + "/m", "cassé");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("rdv-sms-moved.yaml:3:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("nothing was published"), std::string::npos) << r.out;
  dir.write("m/rdv-sms-moved.yaml", read_file(src + "/config/mappings/rdv-sms-moved.yaml"));
  r = import(dir.path() + "/m", "rappel 45 min");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("published mapping rdv-calendar v2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 published"), std::string::npos) << r.out;

  r = run_command({RELAIS_BINARY, "mappings", "list", "--config", cfg});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("rdv-calendar (active v2)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("alice: rappel 45 min"), std::string::npos) << r.out;

  std::string planned = std::string(RELAIS_SHARED_DIR) + "/fixtures/cms76/rdv-planned.json";
  r = run_command(
      {RELAIS_BINARY, "mapping", "test", "rdv-calendar", "--input", planned, "--config", cfg});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("\"reminder_minutes\": 45"), std::string::npos) << r.out;
  r = run_command({RELAIS_BINARY, "mapping", "test", "rdv-calendar", "--input", planned,
                   "--version", "1", "--config", cfg});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("\"reminder_minutes\": 15"), std::string::npos) << r.out;

  r = run_command({RELAIS_BINARY, "mappings", "export", dir.path() + "/out", "--config", cfg});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(dir.path() + "/out/rdv-calendar.yaml"), changed);
  EXPECT_EQ(read_file(dir.path() + "/out/tables/cms.csv"),
            read_file(src + "/config/tables/cms.csv"));
}

}  // namespace
}  // namespace relais::testing

// Encryption at rest on the real binary (docs/security.md, "Encryption at rest";
// docs/operations.md, "Rotating the encryption key"): messages stored under key A, relais restarted
// with key B active, `relais store rekey` through the running relais's API (progress, audit),
// everything readable with key B alone, the rekey without a running relais, and a key file others
// may read refused at start-up.

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <fstream>

#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;

const char* kKeyA = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const char* kKeyB = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

class AtRestApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sink_ = std::make_unique<tools::HttpSink>(0, true, 4);
    sink_->set_responder([](const tools::SinkRequest& r) {
      tools::SinkResponse out;
      out.body = "{\"accepted\":" + r.body + "}";  // the partner echoes: the excerpt holds it
      return out;
    });
    key("a.key", kKeyA, 0600);
    key("b.key", kKeyB, 0600);
  }
  void TearDown() override {
    if (HasFailure() && relais_) std::cout << relais_->stderr_text().substr(0, 20000) << "\n";
    relais_.reset();
  }
  void key(const std::string& name, const char* hex, mode_t mode) {
    std::string p = keys_.path() + "/" + name;
    std::ofstream(p) << hex << "\n";
    ::chmod(p.c_str(), mode);
  }
  // A relais on the shared store with this encryption block (keys: "A", "B" or "A,B").
  std::unique_ptr<RelaisProcess> make(const std::string& active, const std::string& keys) {
    RelaisOptions o;
    o.binary = RELAIS_BINARY;
    o.store_path = keys_.path() + "/relais.db";
    o.store_extra_yaml = "  encryption:\n    active: " + active + "\n    keys:\n";
    for (char k : keys) {
      if (k == ',') continue;
      std::string id(1, k);
      o.store_extra_yaml += "      - {id: " + id + ", file: " + keys_.path() + "/" +
                            (k == 'A' ? "a" : "b") + ".key}\n";
    }
    o.body_yaml =
        "sources:\n  app:\n    type: $.type\n    correlation: \"individu:{$.id}\"\n"
        "connectors:\n  partner:\n    connector: http\n    url: http://127.0.0.1:" +
        std::to_string(sink_->port()) +
        "/in\n"
        "routes:\n  - name: r\n    source: app\n    to:\n      - destination: partner\n";
    return std::make_unique<RelaisProcess>(o);
  }
  std::string raw(const std::string& sql) {
    auto r = run_command({"/usr/bin/sqlite3", "-readonly", keys_.path() + "/relais.db", sql});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }

  TempDir keys_{"relais-keys-"};
  std::unique_ptr<tools::HttpSink> sink_;
  std::unique_ptr<RelaisProcess> relais_;
};

TEST_F(AtRestApiTest, RotationThroughTheRunningRelaisThenWithoutIt) {
  // Key A: 40 messages delivered (body, mapped payload none, the partner's echo).
  relais_ = make("A", "A");
  relais_->start();
  HttpClient admin = relais_->client();
  std::vector<std::string> ids;
  for (int i = 0; i < 40; ++i) {
    json body = {{"type", "rdv"}, {"id", i}, {"nom", "GERTRUDE-" + std::to_string(i)}};
    auto r = admin.post_json("/api/v1/sources/app/messages", body.dump());
    ASSERT_EQ(r.status, 202) << r.body;
    ids.push_back(r.json().value("id", ""));
  }
  ASSERT_GE(sink_->wait_for(40, 15000), 40u);
  ASSERT_TRUE(wait_until(
      [&] { return raw("SELECT COUNT(*) FROM attempts WHERE excerpt LIKE 'enc1:A:%';") == "40\n"; },
      std::chrono::seconds(15)));
  EXPECT_EQ(relais_->stop(), 0);
  EXPECT_EQ(raw("SELECT COUNT(*) FROM messages WHERE body LIKE 'enc1:A:%';"), "40\n");
  EXPECT_EQ(read_file(keys_.path() + "/relais.db").find("GERTRUDE"), std::string::npos);

  // Key B active, A kept: the rekey goes through the running relais.
  relais_ = make("B", "B,A");
  relais_->start();
  admin = relais_->client();
  EXPECT_NE(admin.get("/api/v1/messages/" + ids[3]).body.find("GERTRUDE-3"), std::string::npos);
  auto cli = run_command({RELAIS_BINARY, "store", "rekey", "--config", relais_->config_path(),
                          "--token", relais_->token(), "--batch", "16"});
  EXPECT_EQ(cli.exit_code, 0) << cli.out << cli.err;
  EXPECT_NE(cli.out.find("0 remaining not on key B"), std::string::npos) << cli.out;
  EXPECT_NE(cli.err.find("going through its API"), std::string::npos) << cli.err;
  auto progress = admin.get("/api/v1/store/rekey").json();
  EXPECT_EQ(progress.value("finished", false), true) << progress.dump();
  EXPECT_EQ(progress.value("remaining", -1), 0);
  EXPECT_EQ(progress.value("done", 0), 80) << "40 bodies and 40 excerpts";
  EXPECT_EQ(admin.get("/api/v1/audit?action=store.rekey").json()["items"].size(), 1u);
  // Other roles may not.
  EXPECT_EQ(HttpClient(relais_->base_url(), relais_->system_token())
                .post_json("/api/v1/store/rekey", "{}")
                .status,
            403);
  EXPECT_EQ(relais_->stop(), 0);
  EXPECT_EQ(raw("SELECT COUNT(*) FROM messages WHERE body LIKE 'enc1:B:%';"), "40\n");
  EXPECT_EQ(raw("SELECT COUNT(*) FROM attempts WHERE excerpt LIKE 'enc1:B:%';"), "40\n");

  // Key B alone: everything reads; the console shows it clear to the admin.
  relais_ = make("B", "B");
  relais_->start();
  admin = relais_->client();
  auto m = admin.get("/api/v1/messages/" + ids[39]);
  EXPECT_NE(m.body.find("GERTRUDE-39"), std::string::npos) << m.body;
  EXPECT_EQ(m.body.find("illisible"), std::string::npos);
  EXPECT_EQ(relais_->stop(), 0);

  // No relais running: the command opens the store itself; nothing is left to do.
  auto direct = run_command({RELAIS_BINARY, "store", "rekey", "--config", relais_->config_path()});
  EXPECT_EQ(direct.exit_code, 0) << direct.out << direct.err;
  EXPECT_NE(direct.out.find("0 / 0 value(s)"), std::string::npos) << direct.out;
}

TEST_F(AtRestApiTest, AKeyFileOthersMayReadStopsTheStart) {
  key("a.key", kKeyA, 0644);
  relais_ = make("A", "A");
  try {
    relais_->start();
    FAIL() << "relais started with a key file readable by others";
  } catch (const std::runtime_error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("permissions 0644"), std::string::npos) << what;
    EXPECT_NE(what.find("too open"), std::string::npos) << what;
    EXPECT_EQ(what.find(kKeyA), std::string::npos) << "the key is never printed";
  }
}

}  // namespace
}  // namespace relais::testing

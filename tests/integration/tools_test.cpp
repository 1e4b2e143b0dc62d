// The sub-commands never fight the server (issue 10, item 7), with the real binary:
//  - while relais runs, a read-only command (mappings list, users list) works, leaves the WAL
//    as it was (no checkpoint) and does not migrate;
//  - while relais runs, `users add` without --server refuses, naming the server's pid; with
//    --server and an admin token it goes through the API; once relais is stopped it writes the
//    store itself;
//  - a read-only command on a store with an older schema refuses instead of migrating;
//  - mappings import goes through the API of the running relais (refused without a token);
//  - a second server on the same store refuses to start.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "tests/support/relais_process.h"

namespace relais::testing {
namespace {

namespace fs = std::filesystem;

// A source without routes: accepted messages are only stored (nothing delivered afterwards,
// so the server writes nothing while the commands run).
const char* kBody =
    "sources:\n"
    "  app:\n"
    "    type: $.type\n"
    "    correlation: \"{$.key}\"\n"
    "    idempotency: $.id\n";

RelaisOptions options() {
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.body_yaml = kBody;
  o.log_level = "warn";
  return o;
}

CommandResult relais_cmd(std::vector<std::string> args) {
  args.insert(args.begin(), RELAIS_BINARY);
  return run_command(args);
}

std::string sql(const std::string& db, const std::string& statement) {
  CommandResult r = run_command({"/usr/bin/sqlite3", db, statement});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::string out = r.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class ToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("RELAIS_URL");
    unsetenv("RELAIS_TOKEN");
    setenv("RELAIS_PASSWORD", "a-long-enough-password", 1);
  }
};

TEST_F(ToolsTest, ReadOnlyCommandsWhileServingLeaveTheWalAlone) {
  RelaisProcess relais(options());
  relais.start();
  HttpClient http = relais.client();
  for (int i = 0; i < 50; ++i) {
    auto r = http.post_json(
        "/api/v1/sources/app/messages",
        R"({"type":"t","key":"k)" + std::to_string(i) + R"(","id":"m)" + std::to_string(i) + "\"}");
    ASSERT_EQ(r.status, 202) << r.body;
  }
  std::string wal = relais.store_path() + "-wal";
  ASSERT_TRUE(fs::exists(wal));
  std::string before = read_file(wal);
  ASSERT_FALSE(before.empty()) << "the commits should be in the WAL";

  CommandResult list = relais_cmd({"mappings", "list", "--config", relais.config_path()});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  CommandResult users = relais_cmd({"users", "list", "--config", relais.config_path()});
  EXPECT_EQ(users.exit_code, 0) << users.err;

  EXPECT_EQ(read_file(wal), before) << "a read-only command changed the WAL (checkpoint?)";
  EXPECT_TRUE(relais.running());
  EXPECT_EQ(relais.stop(), 0);
}

TEST_F(ToolsTest, UsersAddRefusesWhileServingUnlessThroughTheApi) {
  RelaisProcess relais(options());
  relais.start();
  const std::string cfg = relais.config_path();

  CommandResult refused =
      relais_cmd({"users", "add", "alice", "--role", "support", "--config", cfg});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("relais is running on this store (pid " +
                             std::to_string(relais.pid()) + ")"),
            std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find("--server"), std::string::npos) << refused.err;

  CommandResult via_api = relais_cmd({"users", "add", "bob", "--role", "support", "--config", cfg,
                                      "--server", relais.base_url(), "--token", relais.token()});
  EXPECT_EQ(via_api.exit_code, 0) << via_api.err << via_api.out;
  // A token alone: the URL comes from the lock file the server wrote.
  CommandResult discovered =
      relais_cmd({"users", "disable", "bob", "--config", cfg, "--token", relais.token()});
  EXPECT_EQ(discovered.exit_code, 0) << discovered.err << discovered.out;
  auto listed = relais.client().get("/api/v1/users");
  EXPECT_NE(listed.body.find("\"bob\""), std::string::npos) << listed.body;
  EXPECT_EQ(listed.body.find("\"alice\""), std::string::npos) << listed.body;

  ASSERT_EQ(relais.stop(), 0);
  CommandResult direct =
      relais_cmd({"users", "add", "alice", "--role", "support", "--config", cfg});
  EXPECT_EQ(direct.exit_code, 0) << direct.err;
  CommandResult list = relais_cmd({"users", "list", "--config", cfg});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find("alice\tsupport\tactive"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("bob\tsupport\tdisabled"), std::string::npos) << list.out;
}

TEST_F(ToolsTest, MappingsImportGoesThroughTheApiWhileServing) {
  const std::string src = RELAIS_SOURCE_DIR;
  RelaisOptions o = options();
  o.body_yaml +=
      "mappings:\n  directory: " + src + "/config/mappings\n  tables: " + src + "/config/tables\n";
  RelaisProcess relais(o);
  relais.start();
  TempDir dir("relais-import-");
  for (const auto& e : fs::directory_iterator(src + "/config/mappings")) {
    if (e.path().extension() == ".yaml")
      fs::copy(e.path(), dir.path() + "/" + e.path().filename().string());
  }
  std::string changed = read_file(dir.path() + "/rdv-calendar.yaml");
  changed.replace(changed.find("reminder_minutes: 15"), 20, "reminder_minutes: 45");
  dir.write("rdv-calendar.yaml", changed);
  std::vector<std::string> import = {
      "mappings",          "import", dir.path(), "--tables", src + "/config/tables", "--config",
      relais.config_path()};

  CommandResult refused = relais_cmd(import);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("relais is running on this store"), std::string::npos) << refused.err;
  import.insert(import.end(), {"--token", relais.token()});
  CommandResult r = relais_cmd(import);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("published mapping rdv-calendar v2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 published"), std::string::npos) << r.out;
  // The running relais uses it at once (published through its own API).
  auto m = relais.client().get("/api/v1/mappings/rdv-calendar").json();
  EXPECT_EQ(m["active_version"], 2) << m.dump();
  r = relais_cmd(import);
  EXPECT_NE(r.out.find("0 published"), std::string::npos) << r.out;
  EXPECT_EQ(relais.stop(), 0);
}

TEST_F(ToolsTest, ReadOnlyCommandRefusesAnOlderSchemaInsteadOfMigrating) {
  RelaisProcess relais(options());
  relais.start();
  ASSERT_EQ(relais.stop(), 0);
  const std::string db = relais.store_path();
  // Make it the store of an older relais: without the console's migration (6).
  sql(db,
      "DELETE FROM schema_migrations WHERE version = 6; DROP TABLE users; DROP TABLE api_tokens; "
      "DROP TABLE audit;");
  std::string before = read_file(db);

  CommandResult r = relais_cmd({"mappings", "list", "--config", relais.config_path()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("older schema"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("never migrates"), std::string::npos) << r.err;
  EXPECT_EQ(sql(db, "SELECT COUNT(*) FROM schema_migrations WHERE version = 6"), "0");
  EXPECT_EQ(sql(db, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'users'"), "0");

  // The server migrates at start-up; then the read-only command works.
  relais.start();
  ASSERT_EQ(relais.stop(), 0);
  CommandResult after = relais_cmd({"mappings", "list", "--config", relais.config_path()});
  EXPECT_EQ(after.exit_code, 0) << after.err;
}

TEST_F(ToolsTest, ASecondServerOnTheSameStoreRefusesToStart) {
  RelaisProcess relais(options());
  relais.start();
  CommandResult second = run_command({RELAIS_BINARY, "serve", "--config", relais.config_path()},
                                     std::chrono::milliseconds(30000));
  EXPECT_NE(second.exit_code, 0);
  EXPECT_NE(second.err.find("held by another relais (pid " + std::to_string(relais.pid())),
            std::string::npos)
      << second.err;
  EXPECT_TRUE(relais.running());
  EXPECT_EQ(relais.stop(), 0);
}

}  // namespace
}  // namespace relais::testing

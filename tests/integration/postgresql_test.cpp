// The real relais on `store: {kind: postgresql, uri, password_env, state_dir}` (issue 15): a
// throwaway PostgreSQL 15 server (tests/support/pg_server.h), the password only in the
// environment. relais accepts and delivers to a sink; messages accepted while the sink refuses
// are still delivered after a SIGKILL and a restart, and a message sent again after the restart
// is a duplicate (its idempotency key is in the database).

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "tests/support/pg_server.h"
#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;

constexpr const char* kPasswordEnv = "RELAIS_IT_PG_PASSWORD";

std::string body_yaml(int sink_port) {
  return "sources:\n"
         "  app:\n"
         "    type: $.type\n"
         "    correlation: \"{$.key}\"\n"
         "    idempotency: $.id\n"
         "connectors:\n"
         "  sink:\n"
         "    connector: http\n"
         "    url: http://127.0.0.1:" +
         std::to_string(sink_port) +
         "/in\n"
         "    timeout: 5s\n"
         "    retry:\n"
         "      initial: 100ms\n"
         "      max: 300ms\n"
         "      max_attempts: 1000\n"
         "routes:\n"
         "  - name: all\n"
         "    source: app\n"
         "    to:\n"
         "      - destination: sink\n";
}

std::string message(int n) {
  return json{{"type", "pg.test"},
              {"id", "pg-" + std::to_string(n)},
              {"key", "key-" + std::to_string(n % 7)},
              {"n", n}}
      .dump();
}

TEST(PostgresqlRelais, AcceptsDeliversAndLosesNothingAcrossAKill) {
  PgServer pg;
  pg.start();

  struct Seen {
    std::mutex mu;
    std::set<int> numbers;
    bool refuse = false;
  };
  auto seen = std::make_shared<Seen>();
  relais::tools::HttpSink sink(0, false, 4);
  sink.set_responder([seen](const relais::tools::SinkRequest& req) {
    relais::tools::SinkResponse out;
    std::lock_guard<std::mutex> lock(seen->mu);
    if (seen->refuse) {
      out.status = 503;
      return out;
    }
    json j = json::parse(req.body, nullptr, false);
    if (j.is_object() && j.contains("n")) seen->numbers.insert(j["n"].get<int>());
    return out;
  });
  auto delivered = [&]() {
    std::lock_guard<std::mutex> lock(seen->mu);
    return seen->numbers.size();
  };
  auto wait_delivered = [&](size_t n) {
    for (int i = 0; i < 600 && delivered() < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polled condition
    }
    return delivered();
  };

  TempDir state("relais-pg-state-");
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.body_yaml = body_yaml(sink.port());
  o.store_section_yaml = pg.relais_store_section(kPasswordEnv, state.path());
  RelaisProcess relais(o);
  relais.start();
  EXPECT_EQ(relais.stdout_text().find(pg.options().password), std::string::npos);

  constexpr int kFirst = 30;
  for (int n = 0; n < kFirst; ++n) {
    HttpResponse r = relais.client().post_json("/api/v1/sources/app/messages", message(n));
    ASSERT_EQ(r.status, 202) << r.body << r.error;
  }
  EXPECT_EQ(wait_delivered(kFirst), static_cast<size_t>(kFirst));

  // Accepted while the sink refuses: stored in PostgreSQL only.
  {
    std::lock_guard<std::mutex> lock(seen->mu);
    seen->refuse = true;
  }
  constexpr int kSecond = 20;
  for (int n = kFirst; n < kFirst + kSecond; ++n) {
    HttpResponse r = relais.client().post_json("/api/v1/sources/app/messages", message(n));
    ASSERT_EQ(r.status, 202) << r.body << r.error;
  }
  relais.kill9();
  {
    std::lock_guard<std::mutex> lock(seen->mu);
    seen->refuse = false;
  }
  relais.restart();
  EXPECT_EQ(wait_delivered(kFirst + kSecond), static_cast<size_t>(kFirst + kSecond));
  HttpResponse again = relais.client().post_json("/api/v1/sources/app/messages", message(3));
  EXPECT_EQ(again.status, 200) << again.body;  // a duplicate: the key is in the database

  // A second node on the same database is refused while this one dispatches (it would deliver
  // the same deliveries twice and out of order), with the reason; it starts once the first
  // has stopped.
  TempDir other_state("relais-pg-state-b-");
  RelaisOptions ob = o;
  ob.store_section_yaml = pg.relais_store_section(kPasswordEnv, other_state.path());
  RelaisProcess second(ob);
  CommandResult refused = run_command({RELAIS_BINARY, "serve", "--config", second.config_path()},
                                      std::chrono::seconds(60));
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE((refused.out + refused.err).find("another relais dispatches"), std::string::npos)
      << refused.out << refused.err;
  EXPECT_EQ((refused.out + refused.err).find(pg.options().password), std::string::npos);
  EXPECT_EQ(relais.stop(), 0);
  second.start();  // the lock went with the first node
  EXPECT_EQ(second.stop(), 0);
  EXPECT_TRUE(std::filesystem::exists(state.path() + "/relais.lock"));  // the node's lock
  // The messages are in PostgreSQL, not in a SQLite file.
  std::string count = pg.sql_as_user("SELECT COUNT(*) FROM messages;");
  EXPECT_EQ(count.substr(0, count.find_first_of("\r\n")), std::to_string(kFirst + kSecond));
  EXPECT_FALSE(std::filesystem::exists(relais.store_path()));
  EXPECT_EQ(relais.stdout_text().find(pg.options().password), std::string::npos);
  pg.stop();
}

// The commands that open the store, on PostgreSQL: `relais serve` makes its state folder when
// missing and names the store as its backend describes it (host:port/database, never the
// password nor the state folder); `relais store
// compact` runs VACUUM (ANALYZE) online, relais running; `relais privacy erase` finds the relais
// of this node by the lock in store.state_dir and erases through its API; without one it refuses
// naming the store; `relais retention run` without a relais purges on the database itself
// through the backend (the rows in PostgreSQL say so) and audits it there.
TEST(PostgresqlRelais, CommandsWorkOnAPostgresqlStore) {
  PgServer pg;
  pg.start();
  relais::tools::HttpSink sink(0, false, 4);

  TempDir state("relais-pg-state-");
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.body_yaml = body_yaml(sink.port()) +
                "retention:\n"
                "  metadata: 2h\n  unrouted: 1h\n"
                "  default: {delivered: 1s, dead: 1h, discarded: 1h, skipped: 1h}\n";
  o.store_section_yaml = pg.relais_store_section(kPasswordEnv, state.path() + "/node-a");
  RelaisProcess relais(o);
  relais.start();
  const std::string where = "127.0.0.1:" + std::to_string(pg.port()) + "/" + pg.options().database;
  EXPECT_NE(relais.stdout_text().find("(store " + where + ")"), std::string::npos)
      << relais.stdout_text();
  EXPECT_EQ(relais.stdout_text().find(state.path()), std::string::npos) << relais.stdout_text();

  auto post = [&](int n, const std::string& person) {
    json body = {
        {"type", "pg.test"}, {"id", "cmd-" + std::to_string(n)}, {"key", person}, {"nom", person}};
    HttpResponse r = relais.client().post_json("/api/v1/sources/app/messages", body.dump());
    EXPECT_EQ(r.status, 202) << r.body << r.error;
  };
  auto rows_with = [&](const std::string& text) {
    std::string n =
        pg.sql_as_user("SELECT COUNT(*) FROM messages WHERE body LIKE '%" + text + "%';");
    return std::stoi(n.substr(0, n.find_first_of("\r\n")));
  };
  auto delivered = [&] {
    std::string n = pg.sql_as_user("SELECT COUNT(*) FROM deliveries WHERE state = 'delivered';");
    return std::stoi(n.substr(0, n.find_first_of("\r\n")));
  };
  post(1, "DUPONT-Alice");
  post(2, "MARTIN-Zoe");
  post(3, "MARTIN-Zoe");
  for (int i = 0; i < 200 && delivered() < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polled condition
  }
  ASSERT_EQ(delivered(), 3);
  ASSERT_EQ(rows_with("DUPONT-Alice"), 1);

  auto cli = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {RELAIS_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--config");
    argv.push_back(relais.config_path());
    return run_command(argv, std::chrono::seconds(60));
  };
  // Online: compact runs beside the running relais.
  CommandResult c = cli({"store", "compact"});
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
  EXPECT_NE(c.out.find(where + ": "), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("VACUUM (ANALYZE) of"), std::string::npos) << c.out;

  // The erasure goes through this node's relais, found by its lock in the state folder.
  c = cli({"privacy", "erase", "--correlation", "DUPONT-Alice", "--reason", "demande n°7",
           "--token", relais.token()});
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
  EXPECT_NE(c.out.find("1 message(s)"), std::string::npos) << c.out;
  EXPECT_EQ(rows_with("DUPONT-Alice"), 0);
  EXPECT_EQ(rows_with("MARTIN-Zoe"), 2);

  ASSERT_EQ(relais.stop(), 0);
  c = cli({"privacy", "erase", "--correlation", "MARTIN-Zoe", "--reason", "demande n°8"});
  EXPECT_EQ(c.exit_code, 1) << c.out << c.err;
  EXPECT_NE(c.err.find("no relais is running on this node for the store " + where),
            std::string::npos)
      << c.err;
  EXPECT_EQ(rows_with("MARTIN-Zoe"), 2);

  // No relais: the purge runs on the database itself (the deliveries are a second old; the erased
  // message is done with).
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // the retention's clock
  c = cli({"retention", "run"});
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
  EXPECT_NE(c.out.find("payloads purged: 2 message(s)"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("VACUUM done"), std::string::npos) << c.out;
  EXPECT_EQ(c.out.find("incremental vacuum"), std::string::npos) << c.out;
  EXPECT_EQ(rows_with("MARTIN-Zoe"), 0);
  std::string audit = pg.sql_as_user("SELECT detail FROM audit WHERE action = 'retention.run';");
  EXPECT_NE(audit.find("2 message(s) purgé(s)"), std::string::npos) << audit;
  EXPECT_NE(audit.find("VACUUM fait"), std::string::npos) << audit;
  EXPECT_EQ((c.out + c.err).find(pg.options().password), std::string::npos);
  // The read-only commands open the same database through the backend.
  for (std::vector<std::string> args :
       {std::vector<std::string>{"users", "list"}, std::vector<std::string>{"mappings", "list"}}) {
    c = cli(args);
    EXPECT_EQ(c.exit_code, 0) << args[0] << ": " << c.out << c.err;
  }
  pg.stop();
}

}  // namespace
}  // namespace relais::testing

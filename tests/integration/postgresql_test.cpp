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

}  // namespace
}  // namespace relais::testing

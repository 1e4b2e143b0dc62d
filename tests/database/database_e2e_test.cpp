// The `database` polling source through the real relais binary, against a real PostgreSQL and a
// real MariaDB:
// demandes inserted and updated by a writer while relais polls them (outbox filled by a trigger,
// or a watermark on date_modification) and delivers them to an HTTP sink; relais is killed with
// SIGKILL several times during polling and the database is stopped and restarted mid-run.
// At the end: outbox mode, every outbox row is exactly one message in the store (no idempotency
// key on the source: the poller alone must not duplicate) and every row is marked done;
// watermark mode, no row state is a message twice and each demande's last state is one; in both
// the sink saw each demande's last state last (order per correlation key).

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "tests/database/test_databases.h"
#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;

constexpr int kDemandes = 200;
constexpr int kVersions = 4;  // one insert, three updates
constexpr int kKills = 4;

const char* kPgSchema = R"SQL(
CREATE TABLE demande (
  numero bigint PRIMARY KEY,
  etat text NOT NULL,
  version int NOT NULL,
  date_modification timestamp(6) NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX demande_suivi ON demande (date_modification, numero);
CREATE TABLE relais_outbox (
  id bigserial PRIMARY KEY,
  payload text NOT NULL,
  traite_le timestamptz NULL
);
CREATE FUNCTION relais_demande_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO relais_outbox (payload) VALUES (json_build_object(
    'event', CASE TG_OP WHEN 'INSERT' THEN 'demande.created' ELSE 'demande.updated' END,
    'demande', json_build_object('numero', NEW.numero, 'etat', NEW.etat,
                                 'version', NEW.version))::text);
  RETURN NEW;
END $$;
CREATE TRIGGER relais_demande AFTER INSERT OR UPDATE ON demande
  FOR EACH ROW EXECUTE FUNCTION relais_demande_event();
)SQL";

const char* kMariaDbSchema = R"SQL(
CREATE TABLE demande (
  numero bigint PRIMARY KEY,
  etat varchar(40) NOT NULL,
  version int NOT NULL,
  date_modification datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY demande_suivi (date_modification, numero)
) ENGINE=InnoDB;
CREATE TABLE relais_outbox (
  id bigint AUTO_INCREMENT PRIMARY KEY,
  payload longtext NOT NULL,
  traite_le datetime(6) NULL
) ENGINE=InnoDB;
CREATE TRIGGER relais_demande_ins AFTER INSERT ON demande FOR EACH ROW
  INSERT INTO relais_outbox (payload) VALUES (JSON_OBJECT('event', 'demande.created',
    'demande', JSON_OBJECT('numero', NEW.numero, 'etat', NEW.etat, 'version', NEW.version)));
CREATE TRIGGER relais_demande_upd AFTER UPDATE ON demande FOR EACH ROW
  INSERT INTO relais_outbox (payload) VALUES (JSON_OBJECT('event', 'demande.updated',
    'demande', JSON_OBJECT('numero', NEW.numero, 'etat', NEW.etat, 'version', NEW.version)));
)SQL";

// What differs between the two servers in this test.
struct Dialect {
  std::string driver;
  const char* schema;
  std::string clock;      // the time of the statement
  std::string slow_done;  // mark_done, slowed down
  std::string q;          // identifier quote
  std::string begin;
};

Dialect dialect(const std::string& driver) {
  if (driver == "postgresql") {
    return {driver,
            kPgSchema,
            "clock_timestamp()",
            "UPDATE relais_outbox SET traite_le = now() FROM (SELECT pg_sleep(0.15)) AS lent "
            "WHERE id IN (:ids)",
            "\"",
            "BEGIN;"};
  }
  return {driver,
          kMariaDbSchema,
          "NOW(6)",
          "UPDATE relais_outbox, (SELECT SLEEP(0.15) AS s) AS lent SET traite_le = NOW(6) WHERE "
          "id IN (:ids)",
          "`",
          "START TRANSACTION;"};
}

std::string poll_yaml(const std::string& mode, const Dialect& d, const std::string& connection) {
  std::string y =
      "    poll:\n"
      "      kind: database\n"
      "      interval: 100ms\n"
      "      max_backoff: 1s\n"
      "      driver: " +
      d.driver +
      "\n"
      "      connection: '" +
      connection +
      "'\n"
      "      batch: 25\n"
      "      connect_timeout: 2s\n";
  if (mode == "outbox") {
    y += "      mode: outbox\n"
         "      query: SELECT id, payload FROM relais_outbox WHERE traite_le IS NULL AND id > :id "
         "ORDER BY id LIMIT :limit\n"
         "      watermark: [id]\n"
         "      start: ['0']\n"
         "      body_column: payload\n"
         // A slow mark_done widens the window between relais's commit and the rows marked done,
         // so that kills land in it: rows found again must not be messages again.
         "      mark_done: " +
         d.slow_done + "\n";
  } else {
    auto q = [&](const std::string& name) { return d.q + name + d.q; };
    y += "      mode: watermark\n"
         "      query: >-\n"
         "        SELECT 'demande.changed' AS event, numero AS " +
         q("demande.numero") + ",\n        etat AS " + q("demande.etat") + ", version AS " +
         q("demande.version") +
         ", date_modification,\n"
         "        numero FROM demande WHERE (date_modification, numero) >\n"
         "        (:date_modification, :numero) ORDER BY date_modification, numero LIMIT :limit\n"
         "      watermark: [date_modification, numero]\n"
         "      start: ['1970-01-01 00:00:00', '0']\n";
  }
  return y;
}

std::string config_yaml(const std::string& mode, const Dialect& d, const std::string& connection,
                        int sink_port) {
  return "sources:\n"
         "  cms76:\n"
         "    type: $.event\n"
         "    correlation: \"demande:{$.demande.numero}\"\n" +
         poll_yaml(mode, d, connection) + "connectors:\n" +
         http_connector_yaml("sink", sink_port,
                             "    concurrency: 4\n    timeout: 5s\n    retry:\n"
                             "      initial: 100ms\n      max: 1s\n      max_attempts: 1000\n") +
         "routes:\n"
         "  - name: all\n"
         "    source: cms76\n"
         "    to:\n"
         "      - destination: sink\n";
}

// The store's messages of the source: (numero, version) → count.
std::map<std::pair<int, int>, int> stored_messages(const std::string& store) {
  CommandResult r = run_command({"/usr/bin/sqlite3", "-batch", "-readonly", store,
                                 "SELECT body FROM messages WHERE source = 'cms76'"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::map<std::pair<int, int>, int> out;
  size_t from = 0;
  while (from < r.out.size()) {
    size_t nl = r.out.find('\n', from);
    if (nl == std::string::npos) nl = r.out.size();
    json j = json::parse(r.out.substr(from, nl - from), nullptr, false);
    from = nl + 1;
    if (!j.is_object()) continue;
    ++out[{j["demande"]["numero"].get<int>(), j["demande"]["version"].get<int>()}];
  }
  return out;
}

class DatabaseEndToEnd : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(DatabaseEndToEnd, KillNineAndDatabaseRestartLoseAndRepeatNothing) {
  const std::string driver = std::get<0>(GetParam());
  const std::string mode = std::get<1>(GetParam());
  const Dialect d = dialect(driver);
  std::unique_ptr<TestDb> db = new_test_db(driver);
  db->sql(d.schema);

  // The sink records each demande's versions in arrival order.
  struct Seen {
    std::mutex mu;
    std::map<int, std::vector<int>> versions;  // numero → versions in arrival order
  };
  auto seen = std::make_shared<Seen>();
  relais::tools::HttpSink sink(0, /*keep_bodies=*/false, 8);
  sink.set_responder([seen](const relais::tools::SinkRequest& req) {
    relais::tools::SinkResponse out;
    json j = json::parse(req.body, nullptr, false);
    if (!j.is_object() || !j.contains("demande")) {
      out.status = 400;
      return out;
    }
    std::lock_guard<std::mutex> lock(seen->mu);
    seen->versions[j["demande"]["numero"].get<int>()].push_back(j["demande"]["version"].get<int>());
    return out;
  });

  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.body_yaml = config_yaml(mode, d, db->connection(), sink.port());
  o.log_level = "warn";
  RelaisProcess relais(o);
  relais.start();

  unsigned seed = std::random_device{}();
  std::cout << "database e2e (" << driver << ", " << mode << "): seed " << seed << std::endl;
  std::mt19937 rng(seed);

  // The writer: demandes inserted, then updated, a few statements per transaction, paced so
  // that polling, kills and the database restart happen while rows keep coming. It holds
  // `db_mu` while it writes; the main thread takes it to stop and start the database.
  std::mutex db_mu;
  std::atomic<bool> writing{true};
  std::atomic<int> written{0};
  std::string writer_error, main_error;
  std::thread writer([&] {
    try {
      std::mt19937 wrng(seed + 1);
      std::vector<int> next(kDemandes, 1);  // next version of each demande
      int remaining = kDemandes * kVersions;
      while (remaining > 0) {
        std::string batch = d.begin + "\n";
        int in_batch = 0;
        for (int k = 0; k < 6 && remaining > 0; ++k) {
          int n = static_cast<int>(wrng() % kDemandes);
          while (next[static_cast<size_t>(n)] > kVersions) n = (n + 1) % kDemandes;
          int v = next[static_cast<size_t>(n)]++;
          --remaining;
          ++in_batch;
          if (v == 1) {
            batch += "INSERT INTO demande (numero, etat, version) VALUES (" + std::to_string(n) +
                     ", 'depose', 1);\n";
          } else {
            batch += "UPDATE demande SET etat = 'etape-" + std::to_string(v) +
                     "', version = " + std::to_string(v) + ", date_modification = " + d.clock +
                     " WHERE numero = " + std::to_string(n) + ";\n";
          }
        }
        batch += "COMMIT;\n";
        std::lock_guard<std::mutex> lock(db_mu);
        db->sql(batch);
        written += in_batch;
        std::this_thread::sleep_for(milliseconds(15));  // pacing, not synchronisation
      }
    } catch (const std::exception& e) {
      writer_error = e.what();
    }
    writing = false;
  });

  // Kills during polling; the database goes down and up once in the middle.
  int kills_while_writing = 0;
  try {
    for (int k = 0; k < kKills; ++k) {
      std::this_thread::sleep_for(milliseconds(300 + rng() % 700));
      if (writing) ++kills_while_writing;
      relais.kill9();
      if (k == kKills / 2) {
        std::lock_guard<std::mutex> lock(db_mu);
        relais.restart();
        db->stop();
        // relais polls a database that is not there: a readable failure, counted, and shown
        // on the dashboard's list of sources (without the password).
        HttpClient client = relais.client();
        json state;
        auto source_state = [&] {
          for (const auto& item :
               client.get("/api/v1/sources").json().value("items", json::array())) {
            if (item.value("source", "") == "cms76") state = item;
          }
          return state;
        };
        bool failing = wait_until(
            [&] {
              return metric_value(client.get("/metrics").body,
                                  "relais_poll_failures_total{source=\"cms76\"}") >= 1 &&
                     source_state().value("failing", false);
            },
            std::chrono::seconds(15), milliseconds(50));
        db->start();
        EXPECT_TRUE(failing) << relais.stderr_text() << state.dump();
        std::string why = state.value("last_error", json("")).is_string()
                              ? state["last_error"].get<std::string>()
                              : "";
        EXPECT_NE(why.find("base de données injoignable"), std::string::npos) << why;
        EXPECT_EQ(why.find(db->password()), std::string::npos) << why;
        EXPECT_TRUE(relais.running());
        EXPECT_EQ(relais.stderr_text().find(db->password()), std::string::npos);
        // Back: the dashboard says so once a poll reaches it again.
        EXPECT_TRUE(wait_until([&] { return !source_state().value("failing", true); },
                               std::chrono::seconds(20), milliseconds(100)))
            << state.dump();
        continue;
      }
      relais.restart();
    }
  } catch (const std::exception& e) {
    main_error = e.what();
  }
  writer.join();
  ASSERT_TRUE(main_error.empty()) << main_error;
  ASSERT_TRUE(writer_error.empty()) << writer_error;
  ASSERT_FALSE(writing.load());
  EXPECT_GE(kills_while_writing, 3) << "the rows were written before the kills: slow the writer";
  ASSERT_EQ(written.load(), kDemandes * kVersions);

  // Everything polled and delivered: each demande's last version reached the sink.
  bool done = wait_until(
      [&] {
        std::lock_guard<std::mutex> lock(seen->mu);
        if (seen->versions.size() < static_cast<size_t>(kDemandes)) return false;
        for (const auto& [n, vs] : seen->versions) {
          if (vs.empty() || vs.back() != kVersions) return false;
        }
        return true;
      },
      std::chrono::seconds(60), milliseconds(100));
  ASSERT_TRUE(done) << "the sink did not see every demande's last state";
  if (mode == "outbox") {
    bool marked = wait_until(
        [&] {
          return db->sql("SELECT count(*) FROM relais_outbox WHERE traite_le IS NULL;\n") == "0\n";
        },
        std::chrono::seconds(30), milliseconds(100));
    EXPECT_TRUE(marked) << "outbox rows left undone";
  }
  ASSERT_EQ(relais.stop(), 0) << relais.stderr_text();

  // The store: no row state twice.
  auto stored = stored_messages(relais.store_path());
  int total = 0;
  for (const auto& [key, count] : stored) {
    EXPECT_EQ(count, 1) << "demande " << key.first << " version " << key.second;
    total += count;
  }
  if (mode == "outbox") {
    // Every outbox row (one per insert or update) is exactly one message.
    EXPECT_EQ(total, kDemandes * kVersions);
    EXPECT_EQ(db->sql("SELECT count(*) FROM relais_outbox;\n"),
              std::to_string(kDemandes * kVersions) + "\n");
  } else {
    // The watermark sees the last state of a row when it polls: some intermediate versions
    // may never be messages, the last one always is.
    for (int n = 0; n < kDemandes; ++n) {
      EXPECT_EQ(stored.count({n, kVersions}), 1u) << "demande " << n;
    }
  }
  // The sink saw each demande's versions in increasing order (a repeat after a kill is only of
  // the latest delivery, so the sequence never goes back).
  std::lock_guard<std::mutex> lock(seen->mu);
  for (const auto& [n, vs] : seen->versions) {
    for (size_t i = 1; i < vs.size(); ++i) {
      EXPECT_LE(vs[i - 1], vs[i]) << "demande " << n << " went back";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Databases, DatabaseEndToEnd,
                         ::testing::Combine(::testing::Values("postgresql", "mysql"),
                                            ::testing::Values("outbox", "watermark")),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_" + std::get<1>(info.param);
                         });

}  // namespace
}  // namespace relais::testing

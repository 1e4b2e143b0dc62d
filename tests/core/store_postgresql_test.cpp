// What is proper to the PostgreSQL store (store/postgresql/): the query plans of its hot
// statements, its schema migrations (a newer schema refused, two nodes migrating at once), the
// server going away mid-run with the dispatcher wired as the Hub wires it (accepts answered
// Failed, outcomes kept, everything resumed in order once the server is back), and two stores on
// one database — two nodes — accepting at once (no id collision, one Created per key).

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/clock.h"
#include "core/ids.h"
#include "core/metrics.h"
#include "core/store.h"
#include "routing/dispatcher.h"
#include "store/postgresql/pg_backend.h"
#include "store/postgresql/pg_connection.h"
#include "tests/core/dispatched_store.h"
#include "tests/core/store_backends.h"
#include "tests/core/test_support.h"

namespace relais {
namespace {

using relais::testing::fresh_pg_database;
using relais::testing::make_incoming;
using relais::testing::pg_password;
using relais::testing::start_pg_server;
using relais::testing::stop_pg_server;
using relais::testing::to_dest;
using relais::testing::wait_until;

constexpr Millis kT0 = 1'700'000'000'000;

std::unique_ptr<pg::Connection> connect(const std::string& uri) {
  std::unique_ptr<pg::Connection> c;
  Status s = pg::Connection::open(uri, 10, c);
  if (!s.ok) throw std::runtime_error(s.detail);
  return c;
}

int64_t scalar(pg::Connection& c, const std::string& sql) {
  pg::Result r;
  Status s = c.run_text(sql, pg::Params(), r);
  EXPECT_TRUE(s.ok) << sql << ": " << s.detail;
  return r.int64(0, 0);
}

// Every statement of the accept and delivery paths (and of erasure, rekey and retention) can be
// answered through an index: with sequential scans disabled, the planner still picks a Seq Scan
// only where no index serves. The plan is the generic one, as the store's prepared statements
// get it after a few runs.
TEST(PgStoreQueryPlan, NoHotStatementScansATable) {
  std::string uri = fresh_pg_database();
  StoreOptions o;
  o.uri = uri;
  open_postgresql_store(o)->close();  // creates and migrates
  auto c = connect(uri);
  ASSERT_TRUE(c->exec("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off").ok);
  auto statements = postgresql_hot_statements();
  ASSERT_GE(statements.size(), 20u);
  for (const auto& st : statements) {
    ASSERT_TRUE(c->exec("PREPARE hot AS " + st.sql).ok) << st.name;
    pg::Result plan;
    std::string explain = "EXPLAIN EXECUTE hot" + (st.args.empty() ? "" : "(" + st.args + ")");
    Status s = c->run_text(explain, pg::Params(), plan);
    ASSERT_TRUE(s.ok) << st.name << ": " << s.detail;
    std::string all;
    for (int i = 0; i < plan.rows(); ++i) all += plan.text(i, 0) + "\n";
    for (const char* table : {"messages", "deliveries", "attempts", "idempotency_keys"}) {
      EXPECT_EQ(all.find(std::string("Seq Scan on ") + table), std::string::npos)
          << st.name << " scans " << table << ":\n"
          << all;
    }
    ASSERT_TRUE(c->exec("DEALLOCATE hot").ok);
  }
}

// The erasure and the retention go through the indexes meant for them.
TEST(PgStoreQueryPlan, ErasureAndRetentionGoThroughTheirIndexes) {
  std::string uri = fresh_pg_database();
  StoreOptions o;
  o.uri = uri;
  open_postgresql_store(o)->close();
  auto c = connect(uri);
  ASSERT_TRUE(c->exec("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off").ok);
  const std::map<std::string, std::string> expected = {
      {"erasure: messages of a key", "messages_correlation"},
      {"erasure: active deliveries of a key", "messages_correlation"},
      {"retention: messages not purged yet", "messages_unpurged"},
      {"retention: messages past metadata", "messages_received"},
      {"accept a group", "idempotency_keys_pkey"},
      {"find idempotency keys", "idempotency_keys_pkey"},
  };
  size_t found = 0;
  for (const auto& st : postgresql_hot_statements()) {
    auto want = expected.find(st.name);
    if (want == expected.end()) continue;
    ++found;
    ASSERT_TRUE(c->exec("PREPARE hot AS " + st.sql).ok) << st.name;
    pg::Result plan;
    ASSERT_TRUE(c->run_text("EXPLAIN EXECUTE hot(" + st.args + ")", pg::Params(), plan).ok);
    std::string all;
    for (int i = 0; i < plan.rows(); ++i) all += plan.text(i, 0) + "\n";
    EXPECT_NE(all.find(want->second), std::string::npos) << st.name << ":\n" << all;
    ASSERT_TRUE(c->exec("DEALLOCATE hot").ok);
  }
  EXPECT_EQ(found, expected.size());
}

// What the plans above check is what the store runs: on a fresh database, a few hundred
// accepts, each delivery's outcome recorded as the dispatcher does, never scan a table — the
// writer's prepared statements get their generic plan while the tables are nearly empty, and
// keep it as they grow (the recorded outcomes once scanned every delivery at every group).
TEST(PgStoreQueryPlan, TheWriterNeverScansATableWhileTheStoreGrows) {
  std::string uri = fresh_pg_database();
  StoreOptions o;
  o.uri = uri;
  auto store = open_postgresql_store(o);
  Store* s = store.get();
  store->set_commit_listener([s](std::vector<QueuedDelivery>&& fresh) {
    for (const auto& q : fresh) {
      DeliveryUpdate u;
      u.id = q.id;
      u.state = DeliveryState::Delivered;
      u.attempts = 1;
      u.now = kT0 + 1;
      u.attempt = Attempt{kT0 + 1, 3, "delivered", "", 200, "HTTP 200", ""};
      s->record(std::move(u));
    }
  });
  IdGenerator ids(SystemClock::instance());
  constexpr int kMessages = 300;
  for (int i = 0; i < kMessages; ++i) {
    std::vector<Incoming> batch;
    batch.push_back(make_incoming(ids, "cms", "rdv", "rdv:" + std::to_string(i),
                                  "e" + std::to_string(i), kT0 + i, {to_dest("sms")}));
    ASSERT_EQ(store->accept(std::move(batch)).at(0).kind, AcceptResult::Kind::Created);
  }
  store->flush();
  store->close();  // the writer's session ends: its statistics are reported
  auto c = connect(uri);
  const std::string stats =
      "SELECT COALESCE(SUM(n_tup_upd), 0) FROM pg_stat_user_tables WHERE "
      "relname = 'deliveries'";
  ASSERT_TRUE(wait_until([&] { return scalar(*c, stats) >= kMessages; }))
      << "the outcomes were not all recorded";
  // Each index built by the migrations read its table once; nothing else may.
  for (const std::string table : {"messages", "deliveries", "attempts", "idempotency_keys"}) {
    EXPECT_EQ(
        scalar(*c, "SELECT seq_scan FROM pg_stat_user_tables WHERE relname = '" + table + "'"),
        scalar(*c, "SELECT COUNT(*) FROM pg_indexes WHERE tablename = '" + table + "'"))
        << table << " was scanned";
  }
}

// A database migrated by a newer relais is refused, naming both versions; the error names the
// server but never the password of the URI.
TEST(PgStoreSchema, ANewerSchemaIsRefusedWithBothVersionsAndNoPassword) {
  std::string uri = fresh_pg_database();
  StoreOptions o;
  o.uri = uri;
  open_postgresql_store(o)->close();
  const int newer = postgresql_schema_version() + 41;
  auto c = connect(uri);
  ASSERT_TRUE(c->exec("INSERT INTO relais_schema(version, description) VALUES(" +
                      std::to_string(newer) + ", 'from the future')")
                  .ok);
  try {
    open_postgresql_store(o);
    FAIL() << "a newer schema must be refused";
  } catch (const std::exception& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(std::to_string(newer)), std::string::npos) << what;
    EXPECT_NE(what.find("(" + std::to_string(postgresql_schema_version()) + ")"), std::string::npos)
        << what;
    EXPECT_NE(what.find("127.0.0.1"), std::string::npos) << what;
    EXPECT_EQ(what.find(pg_password()), std::string::npos) << what;
  }
}

// The role's password given apart from the URI (store.password_env) connects; a wrong one is
// refused with an error that shows neither.
TEST(PgStoreSchema, APasswordGivenApartConnectsAndIsNeverInAnError) {
  std::string uri = fresh_pg_database();
  const std::string with = " password=" + pg_password();
  ASSERT_NE(uri.find(with), std::string::npos);
  StoreOptions o;
  o.uri = uri.substr(0, uri.find(with)) + uri.substr(uri.find(with) + with.size());
  o.password = pg_password();
  auto store = open_postgresql_store(o);
  EXPECT_TRUE(store->healthy());
  store->close();
  o.password = "Wrong-Secret-4242";
  try {
    open_postgresql_store(o);
    FAIL() << "a wrong password must be refused";
  } catch (const std::exception& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("password"), std::string::npos) << what;  // libpq says why
    EXPECT_EQ(what.find("Wrong-Secret-4242"), std::string::npos) << what;
    EXPECT_EQ(what.find(pg_password()), std::string::npos) << what;
  }
}

// Two nodes starting at once on a new database: one migrates, the other waits for it (advisory
// lock) and finds the schema there; each migration is recorded once.
TEST(PgStoreSchema, TwoNodesStartingAtOnceMigrateOnce) {
  std::string uri = fresh_pg_database();
  StoreOptions o;
  o.uri = uri;
  std::atomic<int> opened{0};
  std::vector<std::string> errors(4);
  std::vector<std::thread> nodes;
  for (int i = 0; i < 4; ++i) {
    nodes.emplace_back([&, i] {
      try {
        open_postgresql_store(o)->close();
        ++opened;
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  }
  for (auto& t : nodes) t.join();
  for (const auto& e : errors) EXPECT_EQ(e, "");
  EXPECT_EQ(opened.load(), 4);
  auto c = connect(uri);
  EXPECT_EQ(scalar(*c, "SELECT COUNT(*) FROM relais_schema"),
            static_cast<int64_t>(postgresql_schema_migrations().size()));
  EXPECT_EQ(scalar(*c, "SELECT MAX(version) FROM relais_schema"), postgresql_schema_version());
}

// An error of a statement carries its SQLSTATE, never the values of the row.
TEST(PgConnection, AnErrorCarriesItsSqlstateButNoValue) {
  auto c = connect(fresh_pg_database());
  ASSERT_TRUE(c->exec("CREATE TABLE t (k text PRIMARY KEY)").ok);
  pg::Result r;
  ASSERT_TRUE(
      c->run_text("INSERT INTO t VALUES($1)", pg::Params().text("Dupont-0612345678"), r).ok);
  pg::Failure why;
  Status s =
      c->run_text("INSERT INTO t VALUES($1)", pg::Params().text("Dupont-0612345678"), r, &why);
  ASSERT_FALSE(s.ok);
  EXPECT_EQ(why.sqlstate, "23505");
  EXPECT_FALSE(why.connection_lost);
  EXPECT_NE(s.detail.find("23505"), std::string::npos) << s.detail;
  EXPECT_EQ(s.detail.find("Dupont"), std::string::npos) << s.detail;
  s = c->run_text("SELECT $1::integer", pg::Params().text("Dupont"), r, &why);
  ASSERT_FALSE(s.ok);
  EXPECT_EQ(why.sqlstate, "22P02");
  EXPECT_EQ(s.detail.find("Dupont"), std::string::npos) << s.detail;
}

// The dispatched store (tests/core/dispatched_store.h) on a database of the shared server.
class PgFaultTest : public relais::testing::DispatchedStoreTest {
 protected:
  PgFaultTest() : uri_(fresh_pg_database()) {}
  ~PgFaultTest() override {
    gate(true);
    shutdown();
    start_pg_server();  // for the next tests, whatever happened
  }

  void start() {
    StoreOptions o;
    o.uri = uri_;
    o.busy_timeout_ms = 2000;
    start_with(open_postgresql_store(o));
  }
  int64_t count(const std::string& sql) {
    auto c = connect(uri_);
    return scalar(*c, sql);
  }

  std::string uri_;
};

// The server stops while a delivery is at the partner: its outcome cannot be committed, so the
// key does not move on; accepts are answered Failed (the HTTP door's 503) and none is stored;
// writable() is false. The server comes back: the writer reconnects, the outcome is committed,
// the next message is accepted and delivered after it, in order.
TEST_F(PgFaultTest, ServerStoppedMidRunRefusesThenResumesInOrder) {
  start();
  ASSERT_EQ(send("e1", "rdv:1").kind, AcceptResult::Kind::Created);
  ASSERT_TRUE(wait_until([&] { return seen("rdv:1").size() == 1; }));
  store_->flush();
  gate(false);
  ASSERT_EQ(send("e2", "rdv:1").kind, AcceptResult::Kind::Created);
  ASSERT_EQ(send("e3", "rdv:1").kind, AcceptResult::Kind::Created);
  ASSERT_TRUE(wait_until([&] { return waiting() == 1; }));  // e2 at the partner
  stop_pg_server();
  gate(true);  // e2 delivered; its outcome cannot be committed
  AcceptResult refused = send("e4", "rdv:1");
  EXPECT_EQ(refused.kind, AcceptResult::Kind::Failed);
  EXPECT_NE(refused.error.find("storage"), std::string::npos) << refused.error;
  EXPECT_FALSE(store_->writable());
  EXPECT_FALSE(store_->healthy());
  // While the outcome of e2 is not durable, e3 is never attempted.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(seen("rdv:1"), (std::vector<std::string>{"e1", "e2"}));
  start_pg_server();
  ASSERT_TRUE(wait_until([&] { return store_->writable(); }, 15000));
  ASSERT_EQ(send("e5", "rdv:1").kind, AcceptResult::Kind::Created);
  ASSERT_TRUE(wait_until([&] { return seen("rdv:1").size() == 4; }, 15000));
  EXPECT_EQ(seen("rdv:1"), (std::vector<std::string>{"e1", "e2", "e3", "e5"}));
  EXPECT_TRUE(store_->healthy());
  store_->flush();
  shutdown();
  EXPECT_EQ(count("SELECT COUNT(*) FROM messages"), 4);
  EXPECT_EQ(count("SELECT COUNT(*) FROM messages WHERE type = 'e4'"), 0);
  EXPECT_EQ(count("SELECT COUNT(*) FROM deliveries WHERE state = 'delivered'"), 4);
}

// Two stores on one database (two nodes) accept at once, many of them the same keys: no seq or
// delivery id is used twice, each key is Created exactly once across both, and every other
// submission of it is a Duplicate naming the one created.
TEST(PgStoreNodes, TwoStoresOnOneDatabaseAcceptConcurrently) {
  std::string uri = fresh_pg_database();
  StoreOptions o;
  o.uri = uri;
  auto a = open_postgresql_store(o);
  auto b = open_postgresql_store(o);
  ManualClock clock(kT0);
  IdGenerator ids(clock);
  constexpr int kThreads = 4, kPerThread = 300, kKeys = 200;
  std::mutex mu;
  std::map<std::string, std::set<std::string>> created, duplicates;  // key -> ids
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2 * kThreads; ++t) {
    Store& store = t % 2 == 0 ? *a : *b;
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Every other message without a key; the others cycle through kKeys keys.
        std::string key = i % 2 == 0 ? "" : "k" + std::to_string((i * 7 + t) % kKeys);
        std::vector<Incoming> one;
        one.push_back(make_incoming(ids, "cms", "t", "c", key, kT0, {to_dest("a")}));
        auto r = store.accept(std::move(one)).at(0);
        std::lock_guard<std::mutex> lock(mu);
        if (r.kind == AcceptResult::Kind::Created) {
          created[key].insert(r.id);
        } else if (r.kind == AcceptResult::Kind::Duplicate) {
          duplicates[key].insert(r.id);
        } else {
          ++failed;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  a->close();
  b->close();
  EXPECT_EQ(failed.load(), 0);
  int64_t keyed = 0;
  for (const auto& [key, ids_of] : created) {
    if (key.empty()) continue;
    ++keyed;
    EXPECT_EQ(ids_of.size(), 1u) << key << " created more than once";
    auto d = duplicates.find(key);
    if (d != duplicates.end()) {
      EXPECT_EQ(d->second, ids_of) << key << ": a duplicate names another message";
    }
  }
  for (const auto& [key, ids_of] : duplicates) EXPECT_TRUE(created.count(key)) << key;
  EXPECT_EQ(keyed, kKeys);
  const int64_t unkeyed = static_cast<int64_t>(created[""].size());
  EXPECT_EQ(unkeyed, 2 * kThreads * kPerThread / 2);
  auto c = connect(uri);
  EXPECT_EQ(scalar(*c, "SELECT COUNT(*) FROM messages"), keyed + unkeyed);
  EXPECT_EQ(scalar(*c, "SELECT COUNT(DISTINCT seq) FROM messages"), keyed + unkeyed);
  EXPECT_EQ(scalar(*c, "SELECT COUNT(DISTINCT id) FROM deliveries"), keyed + unkeyed);
  EXPECT_EQ(scalar(*c, "SELECT COUNT(*) FROM idempotency_keys"), kKeys);
}

}  // namespace
}  // namespace relais

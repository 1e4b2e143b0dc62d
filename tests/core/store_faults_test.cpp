// The store under storage faults, with the dispatcher wired as the Hub wires it: fsync failing,
// the disk full (through a SQLite VFS shim), and the write lock held by another connection
// (SQLITE_BUSY). Each test ends with what the user is promised: nothing that was answered
// Failed is stored, nothing committed is lost, and the last state a partner sees for a key is
// the key's last message — across a restart too. Also: the query plan of every statement on
// the accept and delivery paths, idempotency conflicts and retention.

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>

#include "core/clock.h"
#include "core/console_store.h"
#include "core/ids.h"
#include "core/metrics.h"
#include "core/store.h"
#include "routing/dispatcher.h"
#include "store/sqlite/sqlite_backend.h"
#include "tests/core/dispatched_store.h"
#include "tests/core/fault_vfs.h"
#include "tests/core/test_support.h"

namespace relais {
namespace {

using relais::testing::install_fault_vfs;
using relais::testing::make_incoming;
using relais::testing::StorageFaults;
using relais::testing::TempDir;
using relais::testing::to_dest;
using relais::testing::wait_until;

// The dispatched store (tests/core/dispatched_store.h) on a SQLite file under the fault VFS.
class FaultTest : public relais::testing::DispatchedStoreTest {
 protected:
  FaultTest() : faults_(install_fault_vfs()) { faults_.clear(); }
  ~FaultTest() override {
    faults_.clear();
    gate(true);
    shutdown();
  }

  void start(int busy_timeout_ms = 10000) {
    StoreOptions o;
    o.path = dir_.file("faults.db");
    o.busy_timeout_ms = busy_timeout_ms;
    start_with(open_sqlite_store(o));
  }
  int64_t count(const std::string& sql) {
    Poco::Data::SQLite::Connector::registerConnector();
    Poco::Data::Session s("SQLite", dir_.file("faults.db"));
    int64_t v = 0;
    s << sql, Poco::Data::Keywords::into(v), Poco::Data::Keywords::now;
    return v;
  }

  StorageFaults& faults_;
  TempDir dir_;
};

// fsync fails after the first delivery of a key: its outcome cannot be committed, so the key
// does not move on (the second message is not sent), accepts answer Failed and nothing of them
// is stored, no new attempt starts; when fsync works again everything resumes, in order.
TEST_F(FaultTest, FsyncFailureStopsTheKeyAndResumesInOrder) {
  start();
  ASSERT_EQ(send("e1", "rdv:1").kind, AcceptResult::Kind::Created);
  ASSERT_TRUE(wait_until([&] { return attempts() == 1; }));
  store_->flush();
  faults_.fail_sync = true;
  // e2 cannot be stored: answered Failed, with the reason.
  AcceptResult r2 = send("e2", "rdv:1");
  EXPECT_EQ(r2.kind, AcceptResult::Kind::Failed);
  EXPECT_NE(r2.error.find("storage error"), std::string::npos) << r2.error;
  EXPECT_FALSE(store_->writable());
  faults_.fail_sync = false;
  ASSERT_EQ(send("e3", "rdv:1").kind, AcceptResult::Kind::Created);
  ASSERT_TRUE(wait_until([&] { return seen("rdv:1").size() == 2; }));
  faults_.fail_sync = true;
  // e4 cannot be accepted while fsync fails.
  EXPECT_EQ(send("e4", "rdv:1").kind, AcceptResult::Kind::Failed);
  EXPECT_TRUE(wait_until([&] { return !store_->writable(); }));
  faults_.fail_sync = false;
  ASSERT_EQ(send("e5", "rdv:1").kind, AcceptResult::Kind::Created);
  ASSERT_TRUE(wait_until([&] { return seen("rdv:1").size() == 3; }));
  EXPECT_TRUE(store_->writable());
  EXPECT_EQ(seen("rdv:1"), (std::vector<std::string>{"e1", "e3", "e5"}));
  store_->flush();
  shutdown();
  // Only what was answered Created is stored, and all of it is delivered.
  EXPECT_EQ(count("SELECT COUNT(*) FROM messages"), 3);
  EXPECT_EQ(count("SELECT COUNT(*) FROM deliveries WHERE state = 'delivered'"), 3);
  EXPECT_EQ(count("SELECT COUNT(*) FROM messages WHERE type IN ('e2', 'e4')"), 0);
}

// The outcome of a delivery cannot be committed and the key's next message is already queued:
// the next message is not attempted while the outcome is pending, however long that lasts.
TEST_F(FaultTest, NextDeliveryOfAKeyWaitsForThePreviousOutcome) {
  start();
  // Two messages of one key committed together, then fsync fails before any outcome commits.
  std::vector<Incoming> batch;
  batch.push_back(make_incoming(ids_, "cms", "a1", "rdv:7", "", clock_.now_ms(), {to_dest("cal")}));
  batch.push_back(make_incoming(ids_, "cms", "a2", "rdv:7", "", clock_.now_ms(), {to_dest("cal")}));
  // The first attempt waits until fsync fails, so its outcome is the one that cannot commit.
  gate(false);
  auto results = store_->accept(std::move(batch));
  ASSERT_EQ(results[0].kind, AcceptResult::Kind::Created);
  faults_.fail_sync = true;
  gate(true);
  ASSERT_TRUE(wait_until([&] { return attempts() >= 1; }));
  // While commits fail, a2 is never attempted (a1's outcome is not durable).
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_EQ(seen("rdv:7"), (std::vector<std::string>{"a1"}));
  EXPECT_FALSE(store_->writable());
  EXPECT_GT(faults_.syncs_failed.load(), 0);
  faults_.fail_sync = false;
  ASSERT_TRUE(wait_until([&] { return seen("rdv:7").size() == 2; }));
  EXPECT_EQ(seen("rdv:7"), (std::vector<std::string>{"a1", "a2"}));
  store_->flush();
  EXPECT_EQ(count("SELECT COUNT(*) FROM deliveries WHERE state = 'delivered'"), 2);
}

// The process stops while an outcome cannot be committed (the disk is full): after the restart
// the delivery whose outcome was lost is attempted again, then the later ones, so the last
// state the partner sees is the last message of the key.
TEST_F(FaultTest, DiskFullThenRestartKeepsTheLastStateLast) {
  start();
  gate(false);
  ASSERT_EQ(send("p1", "rdv:9").kind, AcceptResult::Kind::Created);
  ASSERT_EQ(send("p2", "rdv:9").kind, AcceptResult::Kind::Created);
  ASSERT_EQ(send("p3", "rdv:9").kind, AcceptResult::Kind::Created);
  faults_.fail_write = true;
  gate(true);
  // p1 reaches the partner; its outcome cannot be recorded, so p2 and p3 wait.
  ASSERT_TRUE(wait_until([&] { return attempts() == 1; }));
  EXPECT_EQ(send("p4", "rdv:9").kind, AcceptResult::Kind::Failed);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(seen("rdv:9"), (std::vector<std::string>{"p1"}));
  EXPECT_GT(faults_.writes_failed.load(), 0);
  shutdown();  // outcomes not committed are lost with the process
  faults_.clear();
  gate(true);
  start();
  ASSERT_TRUE(wait_until([&] {
    auto s = seen("rdv:9");
    return !s.empty() && s.back() == "p3" &&
           count(
               "SELECT COUNT(*) FROM deliveries WHERE state "
               "<> 'delivered'") == 0;
  }));
  // p1 again (its outcome was lost: at-least-once), then p2 and p3 in order, p3 last.
  EXPECT_EQ(seen("rdv:9"), (std::vector<std::string>{"p1", "p1", "p2", "p3"}));
  EXPECT_EQ(count("SELECT COUNT(*) FROM messages"), 3);  // p4 was refused, not stored
}

// Another process holds the write lock longer than the busy timeout: the commit fails with
// SQLITE_BUSY, accepts are refused, outcomes are kept; when the lock is released all resumes.
TEST_F(FaultTest, WriteLockHeldElsewhereRefusesThenResumes) {
  start(200);
  ASSERT_EQ(send("b1", "rdv:3").kind, AcceptResult::Kind::Created);
  ASSERT_TRUE(wait_until([&] { return seen("rdv:3").size() == 1; }));
  store_->flush();
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.file("faults.db").c_str(), &other), SQLITE_OK);
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> closer(other, sqlite3_close);
  // The writer may still be committing b1's outcome: wait for the lock like a real process.
  sqlite3_busy_timeout(other, 5000);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  AcceptResult r = send("b2", "rdv:3");
  EXPECT_EQ(r.kind, AcceptResult::Kind::Failed);
  EXPECT_NE(r.error.find("lock"), std::string::npos) << r.error;
  EXPECT_FALSE(store_->writable());
  ASSERT_EQ(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  closer.reset();
  ASSERT_EQ(send("b3", "rdv:3").kind, AcceptResult::Kind::Created);
  EXPECT_TRUE(store_->writable());
  ASSERT_TRUE(wait_until([&] { return seen("rdv:3").size() == 2; }));
  EXPECT_EQ(seen("rdv:3"), (std::vector<std::string>{"b1", "b3"}));
  store_->flush();
  EXPECT_EQ(count("SELECT COUNT(*) FROM deliveries WHERE state = 'delivered'"), 2);
}

// Ids handed out in a failed group are not reused wrongly: the counters are read back from the
// file, so the next accepted message continues right after the last committed one.
TEST_F(FaultTest, IdCountersAreReadBackAfterAFailedCommit) {
  start();
  ASSERT_EQ(send("c1", "").kind, AcceptResult::Kind::Created);
  faults_.fail_sync = true;
  EXPECT_EQ(send("c2", "").kind, AcceptResult::Kind::Failed);
  faults_.fail_sync = false;
  AcceptResult r3 = send("c3", "");
  ASSERT_EQ(r3.kind, AcceptResult::Kind::Created);
  auto rec = store_->message(r3.id, false);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->message->seq, 2);
  EXPECT_EQ(rec->deliveries.at(0).id, 2);
}

// --- query plans -----------------------------------------------------------------------------

// A store created and migrated, then ANALYZEd, and the query plans of statements on it.
// Owns its directory and connection.
class PlanStore {
 public:
  PlanStore() : db_(nullptr, sqlite3_close) {
    StoreOptions o;
    o.path = dir_.file("plan.db");
    open_sqlite_store(o)->close();  // creates and migrates
    reopen();
    // Statistics as a big store would have them, so the planner chooses as it would there.
    exec("ANALYZE");
  }
  void exec(const char* sql) {
    ASSERT_EQ(sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db_.get());
  }
  // After statistics were written: a new connection reads them.
  void reopen() {
    sqlite3* db = nullptr;
    db_.reset();
    EXPECT_EQ(sqlite3_open(dir_.file("plan.db").c_str(), &db), SQLITE_OK);
    db_.reset(db);
  }
  // The details of EXPLAIN QUERY PLAN, in order; a failure to prepare is a test failure.
  std::vector<std::string> plan(const HotStatement& st) {
    std::vector<std::string> out;
    sqlite3_stmt* stmt = nullptr;
    std::string sql = "EXPLAIN QUERY PLAN " + st.sql;
    EXPECT_EQ(sqlite3_prepare_v2(db_.get(), sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
        << st.name << ": " << sqlite3_errmsg(db_.get());
    while (stmt != nullptr && sqlite3_step(stmt) == SQLITE_ROW) {
      out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 3)));
    }
    sqlite3_finalize(stmt);
    return out;
  }
  static std::string joined(const std::vector<std::string>& plan) {
    std::string out;
    for (const auto& d : plan) out += d + "; ";
    return out;
  }

 private:
  TempDir dir_;
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db_;
};

// A plan step that reads a whole table (the rows of a recursive query's own CTE, `SCAN d`, a
// constant row and the rows of a multi-row INSERT's VALUES, `SCAN 64 CONSTANT ROWS`, are not
// tables).
bool scans_a_table(const std::string& detail) {
  bool constant_rows =
      detail.size() > 14 && detail.compare(detail.size() - 14, 14, " CONSTANT ROWS") == 0;
  return detail.rfind("SCAN ", 0) == 0 && detail != "SCAN CONSTANT ROW" && detail != "SCAN d" &&
         !constant_rows;
}

// Every statement of the accept and delivery paths is answered through an index: no SCAN of
// messages, deliveries, attempts or idempotency_keys (which would read whole tables as the
// store grows).
TEST(StoreQueryPlan, NoHotStatementScansATable) {
  PlanStore store;
  auto statements = sqlite_hot_statements();
  ASSERT_GE(statements.size(), 10u);
  for (const auto& st : statements) {
    auto plan = store.plan(st);
    for (const auto& detail : plan) {
      EXPECT_FALSE(scans_a_table(detail)) << st.name << " scans a table: " << detail;
    }
    // A plain INSERT … VALUES reads nothing (no plan); every other statement has one.
    bool plain_insert =
        st.sql.rfind("INSERT", 0) == 0 && st.sql.find("SELECT") == std::string::npos;
    EXPECT_TRUE(plain_insert || !plan.empty()) << st.name << " has no plan";
  }
}

// The erasure finds a person's messages through the correlation index, never by reading the
// table; the retention purge walks the messages not purged yet through their partial index (a
// purged message is never read again) and the old ones through the reception index.
TEST(StoreQueryPlan, ErasureAndRetentionGoThroughTheirIndexes) {
  PlanStore store;
  // The messages by key and cursor (correlation=? AND rowid>?); the active deliveries from the
  // partial index of active ones, each checked against the key through the index.
  const std::map<std::string, std::string> expected = {
      {"erasure: messages of a key", "INDEX messages_correlation (correlation=?"},
      {"erasure: active deliveries of a key", "INDEX messages_correlation (correlation=?"},
      {"retention: messages not purged yet", "INDEX messages_unpurged (received_at>?"},
      {"retention: messages past metadata", "INDEX messages_received (received_at>?"},
  };
  size_t found = 0;
  for (const auto& st : sqlite_hot_statements()) {
    auto want = expected.find(st.name);
    if (want == expected.end()) continue;
    ++found;
    std::string plan = PlanStore::joined(store.plan(st));
    EXPECT_NE(plan.find(want->second), std::string::npos) << st.name << ": " << plan;
  }
  EXPECT_EQ(found, expected.size());
}

// A destination's backlog is read back page by page through its own index, from where the
// last page ended: each page a seek, never a sort of every active delivery.
TEST(StoreQueryPlan, BacklogPagesSeekTheirIndex) {
  PlanStore store;
  bool found = false;
  for (const auto& st : sqlite_hot_statements()) {
    if (st.name != "a destination's backlog page") continue;
    found = true;
    std::string plan = PlanStore::joined(store.plan(st));
    EXPECT_NE(plan.find("INDEX deliveries_queue (destination=? AND id>?)"), std::string::npos)
        << plan;
    EXPECT_EQ(plan.find("TEMP B-TREE"), std::string::npos) << "sorted: " << plan;
  }
  EXPECT_TRUE(found);
}

// The dashboard's figures (and the alerts' monitor, every minute) seek their index for each
// destination and state instead of reading every delivery; with statistics of a store holding
// a million deliveries, so that the planner chooses as it would there.
TEST(StoreQueryPlan, DashboardFiguresSeekTheirIndexes) {
  PlanStore store;
  store.exec(
      "DELETE FROM sqlite_stat1 WHERE tbl = 'deliveries';"
      "INSERT INTO sqlite_stat1 VALUES('deliveries', 'deliveries_destination_state', "
      "'1000000 100000 30000 2');"
      "INSERT INTO sqlite_stat1 VALUES('deliveries', 'deliveries_active', '2000 1000');"
      "INSERT INTO sqlite_stat1 VALUES('deliveries', 'deliveries_message', '1000000 2');"
      "INSERT INTO sqlite_stat1 VALUES('deliveries', NULL, '1000000');");
  store.reopen();
  auto statements = sqlite_console_figures_statements();
  ASSERT_EQ(statements.size(), 5u);
  for (const auto& st : statements) {
    auto plan = store.plan(st);
    for (const auto& detail : plan) {
      EXPECT_FALSE(scans_a_table(detail)) << st.name << " scans: " << detail;
    }
    std::string all = PlanStore::joined(plan);
    EXPECT_NE(all.find("INDEX deliveries_"), std::string::npos) << st.name << ": " << all;
  }
}

}  // namespace
}  // namespace relais

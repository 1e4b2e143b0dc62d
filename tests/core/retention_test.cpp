// Retention (docs/security.md, "Retention") on the real SQLite store with a manual clock:
// messages delivered, dead, discarded, active and unrouted on two routes with different
// retentions are purged exactly when their every delivery is past its own retention (the
// longest wins), active ones never; the rows go after `metadata`; each run is audited with its
// counts and moves the metrics; a dry run changes nothing. Then space: ~20 MB of bodies purged
// make a new store's file shrink (incremental vacuum), an old store's only after `relais store
// compact` (which refuses while a server holds the store); accepts keep being answered while a
// purge runs. The purge's statements are among the store's hot statements: the query-plan tests
// of store_faults_test.cpp check them (no SCAN; the partial index messages_unpurged).

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "apps/commands.h"
#include "core/console_store.h"
#include "core/metrics.h"
#include "core/retention.h"
#include "core/store_lock.h"
#include "store/sqlite/sqlite_backend.h"
#include "tests/core/test_support.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;

constexpr Millis kT0 = 1767225600000;  // 2026-01-01T00:00:00Z
constexpr Millis kHour = 3600 * 1000;

RetentionPolicy two_routes() {
  RetentionPolicy p;
  p.defaults = {{"delivered", 30 * kDay},
                {"dead", 90 * kDay},
                {"discarded", 30 * kDay},
                {"skipped", 30 * kDay}};
  p.routes["fast"] = {{"delivered", 7 * kDay}};
  p.unrouted_ms = 10 * kDay;
  p.metadata_ms = 400 * kDay;
  p.batch = 3;  // several batches even with a few messages
  return p;
}

int64_t file_bytes(const std::string& path) {
  int64_t n = 0;
  std::error_code ec;
  for (const auto& p : {path, path + "-wal"}) {
    auto s = std::filesystem::file_size(p, ec);
    if (!ec) n += static_cast<int64_t>(s);
  }
  return n;
}

int64_t pragma(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  int64_t v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    v = sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

class RetentionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("store.db");
    open();
  }
  void TearDown() override {
    job_.reset();
    if (store_) store_->close();
  }
  void open() {
    StoreOptions o;
    o.path = path_;
    o.synchronous_full = false;
    store_ = open_sqlite_store(o);
    console_ = open_sqlite_console_store(path_, clock_);
  }
  void make_job(RetentionPolicy p) {
    job_ = std::make_unique<RetentionJob>(*store_, console_.get(), metrics_, clock_, std::move(p));
  }

  // A message on `routes` (one delivery each, to destination "d"), received now; each delivery
  // then goes to the given state an hour later, with an attempt whose partner echoed the body.
  std::string add(const std::vector<std::pair<std::string, DeliveryState>>& routes,
                  const std::string& body = "{\"nom\":\"Dupont\",\"telephone\":\"0612345678\"}") {
    std::vector<NewDelivery> ds;
    for (const auto& [route, state] : routes) ds.push_back(to_dest("d", 0, route));
    auto res = store_->accept(
        {make_incoming(ids_, "src", "rdv.planned", "rdv:1", "", clock_.now_ms(), ds, body)});
    EXPECT_EQ(res.at(0).kind, AcceptResult::Kind::Created);
    const std::string id = res.at(0).id;
    auto rec = store_->message(id, false);
    EXPECT_TRUE(rec.has_value());
    for (size_t i = 0; i < routes.size(); ++i) {
      DeliveryState state = routes[i].second;
      if (state == DeliveryState::Pending) continue;
      DeliveryUpdate u;
      u.id = rec->deliveries.at(i).id;
      u.state = state;
      u.attempts = 1;
      u.now = clock_.now_ms() + kHour;
      u.payload = body;
      u.attempt = Attempt{u.now,
                          12,
                          state == DeliveryState::Delivered ? "delivered" : "retry",
                          "",
                          200,
                          "texte " + body,
                          "{\"echo\":" + body + "}"};
      EXPECT_TRUE(store_->apply(std::move(u)).ok);
    }
    return id;
  }

  bool purged(const std::string& id) {
    auto rec = store_->message(id, true);
    if (!rec) return false;
    json t = erased_view(rec->message->body);
    if (t.is_null()) return false;
    EXPECT_EQ(t.value("label", ""), "purgé (durée de conservation)");
    EXPECT_EQ(t.value("par", ""), "retention");
    for (const auto& d : rec->deliveries) {
      EXPECT_EQ(d.payload.value_or(""), rec->message->body) << "the mapped payload is purged";
      for (const auto& a : d.history) {
        EXPECT_EQ(a.excerpt.find("Dupont"), std::string::npos) << a.excerpt;
        EXPECT_EQ(a.text.find("Dupont"), std::string::npos) << a.text;
      }
    }
    return true;
  }
  bool intact(const std::string& id) {
    auto rec = store_->message(id, false);
    return rec && rec->message->body.find("Dupont") != std::string::npos;
  }
  bool gone(const std::string& id) { return !store_->message(id, false).has_value(); }

  RetentionResult run(bool dry = false) {
    RetentionResult r;
    Status s = job_->run(dry, "", r);
    EXPECT_TRUE(s.ok) << s.error << " " << s.detail;
    return r;
  }

  std::string metric(const std::string& name) {
    std::string text = metrics_.render();
    auto at = text.find("\n" + name + " ");
    if (at == std::string::npos) return "";
    auto end = text.find('\n', at + 1);
    return text.substr(at + name.size() + 2, end - at - name.size() - 2);
  }

  TempDir dir_;
  std::string path_;
  ManualClock clock_{kT0};
  IdGenerator ids_{clock_};
  Metrics metrics_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<ConsoleStore> console_;
  std::unique_ptr<RetentionJob> job_;
};

TEST_F(RetentionTest, PurgesExactlyWhatIsDuePerRouteAndStateThenDeletesTheRows) {
  using S = DeliveryState;
  make_job(two_routes());
  const std::string fast_delivered = add({{"fast", S::Delivered}});
  const std::string slow_delivered = add({{"slow", S::Delivered}});
  const std::string fast_dead = add({{"fast", S::Dead}});
  const std::string slow_discarded = add({{"slow", S::Discarded}});
  const std::string fast_pending = add({{"fast", S::Pending}});
  const std::string both_delivered = add({{"fast", S::Delivered}, {"slow", S::Delivered}});
  const std::string one_retrying = add({{"fast", S::Delivered}, {"slow", S::Retrying}});
  const std::string unrouted = add({});
  auto all_active_intact = [&] {
    EXPECT_TRUE(intact(fast_pending)) << "a pending delivery's message is never touched";
    EXPECT_TRUE(intact(one_retrying)) << "a retrying delivery's message is never touched";
  };

  // Day 6: nothing is due.
  clock_.set(kT0 + 6 * kDay);
  RetentionResult r = run();
  EXPECT_EQ(r.purged_messages, 0);
  EXPECT_TRUE(intact(fast_delivered));

  // Day 8: the fast route's delivered message only (7 days on that route).
  clock_.set(kT0 + 8 * kDay);
  RetentionResult dry = run(true);
  EXPECT_EQ(dry.purged_messages, 1);
  EXPECT_EQ(dry.purge_sample, std::vector<std::string>{fast_delivered});
  EXPECT_TRUE(intact(fast_delivered)) << "a dry run changes nothing";
  r = run();
  EXPECT_EQ(r.purged_messages, 1);
  EXPECT_EQ(r.purged_deliveries, 1);
  EXPECT_EQ(r.purged_attempts, 1);
  EXPECT_TRUE(purged(fast_delivered));
  EXPECT_TRUE(intact(both_delivered)) << "its slow delivery keeps it 30 days (the longest wins)";
  EXPECT_TRUE(intact(slow_delivered));
  EXPECT_TRUE(intact(unrouted));
  all_active_intact();
  EXPECT_EQ(metric("relais_retention_messages_purged_total"), "1");

  // Day 11: the unrouted message (10 days, from its reception).
  clock_.set(kT0 + 11 * kDay);
  EXPECT_EQ(run().purged_messages, 1);
  EXPECT_TRUE(purged(unrouted));

  // Day 31: delivered and discarded on the default 30 days; the dead one waits 90.
  clock_.set(kT0 + 31 * kDay);
  r = run();
  EXPECT_EQ(r.purged_messages, 3);
  EXPECT_TRUE(purged(slow_delivered));
  EXPECT_TRUE(purged(slow_discarded));
  EXPECT_TRUE(purged(both_delivered));
  EXPECT_TRUE(intact(fast_dead));
  all_active_intact();

  // Day 91: the dead one.
  clock_.set(kT0 + 91 * kDay);
  EXPECT_EQ(run().purged_messages, 1);
  EXPECT_TRUE(purged(fast_dead));
  all_active_intact();
  EXPECT_EQ(metric("relais_retention_messages_purged_total"), "6");
  EXPECT_EQ(metric("relais_retention_messages_deleted_total"), "0");

  // The SMS destination's record of a delivery (the number as a pseudonym) goes with its rows.
  const int64_t sms_delivery = store_->message(fast_delivered, false)->deliveries.at(0).id;
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    std::string sql =
        "INSERT INTO sms_records(delivery_id, destination, driver, reference, number_hash, "
        "encoding, segments, cost_cents, state, created_at, updated_at) VALUES(" +
        std::to_string(sms_delivery) +
        ", 'sms', 'kannel', 'd1.1', 'h', 'gsm7', 1, 4.5, 'sent', 0, 0)";
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  EXPECT_EQ(pragma(path_, "SELECT COUNT(*) FROM sms_records"), 1);

  // Day 399: the rows stay; day 401: the rows of every final message go, not the active ones.
  clock_.set(kT0 + 399 * kDay);
  EXPECT_EQ(run().deleted_messages, 0);
  clock_.set(kT0 + 401 * kDay);
  r = run();
  EXPECT_EQ(r.deleted_messages, 6);
  EXPECT_EQ(r.deleted_deliveries, 6);  // two for both_delivered, none for unrouted
  EXPECT_EQ(r.deleted_attempts, 6);
  for (const auto& id :
       {fast_delivered, slow_delivered, fast_dead, slow_discarded, both_delivered, unrouted}) {
    EXPECT_TRUE(gone(id)) << id;
  }
  all_active_intact();
  EXPECT_EQ(pragma(path_, "SELECT COUNT(*) FROM sms_records"), 0);
  EXPECT_EQ(metric("relais_retention_messages_deleted_total"), "6");
  EXPECT_NE(metric("relais_retention_last_run_timestamp_seconds"), "0.000000");

  // One audit entry per real run (not the dry run), by "retention", with the counts only.
  AuditFilter f;
  f.action = "retention.run";
  auto entries = console_->audit_entries(f);
  ASSERT_EQ(entries.size(), 7u);
  for (const auto& e : entries) {
    EXPECT_EQ(e.actor, "retention");
    EXPECT_EQ(e.detail.find("Dupont"), std::string::npos);
  }
  EXPECT_NE(entries.front().detail.find("6 message(s) supprimé(s)"), std::string::npos)
      << entries.front().detail;  // newest first
  EXPECT_NE(entries.back().detail.find("0 message(s) purgé(s)"), std::string::npos)
      << entries.back().detail;
}

// An erasure's tombstone stays as it was: the purge skips a message already erased, and the
// console tells the two apart.
TEST_F(RetentionTest, AnErasedMessageKeepsItsErasureTombstone) {
  make_job(two_routes());
  const std::string id = add({{"fast", DeliveryState::Delivered}});
  ErasureRequest e;
  e.correlation = "rdv:1";
  e.by = "alice";
  e.reason = "demande 12";
  e.at = clock_.now_ms();
  ErasureResult er;
  ASSERT_TRUE(store_->erase(e, er).ok);
  clock_.set(kT0 + 8 * kDay);
  EXPECT_EQ(run().purged_messages, 0);
  json t = erased_view(store_->message(id, false)->message->body);
  EXPECT_EQ(t.value("label", ""), "effacé (demande d'effacement)");
  EXPECT_EQ(t.value("par", ""), "alice");
}

// Accepts go on while a purge runs: each batch is one job of the writer, between groups.
TEST_F(RetentionTest, AcceptsAreAnsweredWhileAPurgeRuns) {
  RetentionPolicy p = two_routes();
  p.batch = 50;
  make_job(p);
  std::vector<Incoming> many;
  for (int i = 0; i < 3000; ++i) {
    many.push_back(make_incoming(ids_, "src", "t", "k" + std::to_string(i), "", clock_.now_ms(), {},
                                 "{\"nom\":\"Dupont\",\"n\":" + std::to_string(i) + "}"));
  }
  for (const auto& r : store_->accept(std::move(many))) {
    ASSERT_EQ(r.kind, AcceptResult::Kind::Created);
  }
  clock_.set(kT0 + 11 * kDay);
  std::atomic<bool> running{true};
  std::atomic<int> during{0}, failed{0};
  std::thread accepter([&] {
    while (running) {
      auto res = store_->accept({make_incoming(ids_, "src", "t", "new", "", clock_.now_ms(), {})});
      if (res.at(0).kind != AcceptResult::Kind::Created) ++failed;
      if (running) ++during;
    }
  });
  RetentionResult r = run();
  running = false;
  accepter.join();
  EXPECT_EQ(r.purged_messages, 3000);
  EXPECT_GE(r.batches, 60);
  EXPECT_EQ(failed.load(), 0) << "no accept refused while the purge ran";
  EXPECT_GT(during.load(), 0) << "accepts were answered while the purge ran";
}

// ~20 MB of bodies purged: a new store (auto_vacuum=INCREMENTAL) gives the space back at once.
TEST_F(RetentionTest, PurgeShrinksTheFileOfANewStore) {
  RetentionPolicy p = two_routes();
  p.batch = 500;
  make_job(p);
  EXPECT_EQ(pragma(path_, "PRAGMA auto_vacuum"), 2) << "a new store is created incremental";
  const std::string big = "{\"nom\":\"" + std::string(10000, 'x') + "\"}";
  for (int chunk = 0; chunk < 4; ++chunk) {
    std::vector<Incoming> batch;
    for (int i = 0; i < 500; ++i) {
      batch.push_back(make_incoming(ids_, "src", "t", "k", "", clock_.now_ms(), {}, big));
    }
    store_->accept(std::move(batch));
  }
  job_.reset();
  store_->close();  // checkpointed: the file holds everything
  const int64_t before = file_bytes(path_);
  EXPECT_GT(before, 20'000'000);
  open();
  make_job(p);
  clock_.set(kT0 + 11 * kDay);
  RetentionResult r = run();
  EXPECT_EQ(r.purged_messages, 2000);
  EXPECT_TRUE(r.incremental);
  EXPECT_TRUE(r.checkpointed);
  EXPECT_GT(r.freed_bytes, 15'000'000);
  const int64_t after = file_bytes(path_);
  EXPECT_LT(after, before / 3) << before << " → " << after;
  EXPECT_EQ(metric("relais_retention_freed_bytes_total"), std::to_string(r.freed_bytes));
}

// An old store (created without auto_vacuum) reuses its free pages but does not shrink; `relais
// store compact` (offline only) rewrites it and turns incremental vacuum on.
TEST_F(RetentionTest, CompactShrinksAnOldStoreAndRefusesUnderAServer) {
  job_.reset();
  store_->close();
  console_.reset();
  std::filesystem::remove(path_);
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA auto_vacuum=NONE; CREATE TABLE old_store(x)", nullptr,
                           nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  open();
  RetentionPolicy p = two_routes();
  p.batch = 500;
  make_job(p);
  EXPECT_EQ(pragma(path_, "PRAGMA auto_vacuum"), 0);
  const std::string big = "{\"nom\":\"" + std::string(10000, 'x') + "\"}";
  std::vector<Incoming> batch;
  for (int i = 0; i < 2000; ++i) {
    batch.push_back(make_incoming(ids_, "src", "t", "k", "", clock_.now_ms(), {}, big));
  }
  store_->accept(std::move(batch));
  clock_.set(kT0 + 11 * kDay);
  RetentionResult r = run();
  EXPECT_EQ(r.purged_messages, 2000);
  EXPECT_FALSE(r.incremental);
  EXPECT_EQ(r.freed_bytes, 0);
  EXPECT_GT(r.free_pages, 4000) << "the freed pages stay in the file, for reuse";
  job_.reset();
  store_->close();
  store_.reset();
  console_.reset();
  const int64_t before = file_bytes(path_);
  EXPECT_GT(before, 20'000'000);

  const std::string config = dir_.file("relais.yaml");
  std::ofstream(config) << "store:\n  path: " << path_ << "\nsources:\n  src:\n    type: $.t\n";
  std::vector<std::string> args = {"store", "compact", "--config", config};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  {
    // A server holds the store: refused, the file unchanged.
    auto server = StoreLock::exclusive(path_, std::chrono::milliseconds(100));
    EXPECT_EQ(store_command(static_cast<int>(argv.size()), argv.data()), 1);
    EXPECT_EQ(file_bytes(path_), before);
  }
  EXPECT_EQ(store_command(static_cast<int>(argv.size()), argv.data()), 0);
  const int64_t after = file_bytes(path_);
  EXPECT_LT(after, before / 3) << before << " → " << after;
  EXPECT_EQ(pragma(path_, "PRAGMA auto_vacuum"), 2) << "incremental from now on";
  open();  // still a good store
  EXPECT_EQ(store_->list(MessageFilter{}).items.size(), 50u);
}

// retention: is declared as data: defaults when absent, per-route values, and the errors.
TEST(RetentionConfig, DefaultsRoutesAndErrors) {
  Registries registries;
  auto load = [&](const std::string& extra, HubConfig& cfg, std::vector<ConfigError>& errors) {
    std::string text =
        "store:\n  path: r.db\nsources:\n  src:\n    type: $.t\nconnectors:\n  d:\n"
        "    connector: http\n    url: http://127.0.0.1:9/in\nroutes:\n  - name: fast\n"
        "    source: src\n    to:\n      - destination: d\n" +
        extra;
    return load_hub_config_text(text, "relais.yaml", "/tmp", registries.connectors, cfg, errors,
                                &registries.enrichers);
  };
  HubConfig cfg;
  std::vector<ConfigError> errors;
  ASSERT_TRUE(load("", cfg, errors)) << (errors.empty() ? "" : errors[0].to_string());
  EXPECT_EQ(cfg.retention.of("fast", DeliveryState::Delivered), 30 * kDay);
  EXPECT_EQ(cfg.retention.of("fast", DeliveryState::Dead), 90 * kDay);
  EXPECT_EQ(cfg.retention.metadata_ms, 400 * kDay);
  EXPECT_EQ(cfg.retention.interval_ms, kHour);

  ASSERT_TRUE(
      load("retention:\n  interval: 10m\n  default: {delivered: 20d}\n  routes:\n"
           "    fast: {delivered: 7d, dead: 120d}\n",
           cfg, errors));
  EXPECT_EQ(cfg.retention.of("fast", DeliveryState::Delivered), 7 * kDay);
  EXPECT_EQ(cfg.retention.of("fast", DeliveryState::Dead), 120 * kDay);
  EXPECT_EQ(cfg.retention.of("fast", DeliveryState::Discarded), 30 * kDay);
  EXPECT_EQ(cfg.retention.of("other", DeliveryState::Delivered), 20 * kDay);
  EXPECT_EQ(cfg.retention.shortest(), 7 * kDay);

  EXPECT_TRUE(load("retention:\n  routes:\n    direct: {delivered: 3d}\n", cfg, errors))
      << "direct names the deliveries queued straight to a destination";
  EXPECT_EQ(cfg.retention.of("direct", DeliveryState::Delivered), 3 * kDay);
  errors.clear();
  EXPECT_FALSE(load("retention:\n  routes:\n    nowhere: {delivered: 7d}\n", cfg, errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].key, "retention.routes.nowhere");
  errors.clear();
  EXPECT_FALSE(load("retention:\n  metadata: 60d\n", cfg, errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].key, "retention.metadata") << errors[0].message;
  errors.clear();
  EXPECT_FALSE(load("retention:\n  default: {pending: 1d}\n", cfg, errors))
      << "an active state has no retention";
  errors.clear();
  EXPECT_FALSE(load("retention:\n  default: {delivered: forever}\n", cfg, errors));
}

}  // namespace
}  // namespace relais::testing

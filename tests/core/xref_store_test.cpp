// XrefStore on SQLite: get/put/upsert/remove, listing by destination and period, isolation of
// destinations, concurrency from many threads and two connections, reopen, the error on a store
// without the table, and the table made by the store's own migrations.

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/store.h"
#include "core/xref_store.h"
#include "store/sqlite/sqlite_backend.h"
#include "tests/core/test_support.h"

namespace relais {
namespace {

using relais::testing::TempDir;
using namespace Poco::Data::Keywords;

constexpr Millis kT0 = 1'700'000'000'000;

// The statements of migration 4 in store/sqlite/sqlite_store.cpp (kept identical on purpose: the
// MigratedStore test below checks the real migration gives a table this store works with).
const char* const kCreateTable =
    "CREATE TABLE xrefs (destination TEXT NOT NULL, key TEXT NOT NULL, "
    "external_id TEXT NOT NULL, version TEXT NOT NULL, message_id TEXT NOT NULL, "
    "updated_at INTEGER NOT NULL, PRIMARY KEY(destination, key))";
const char* const kCreateIndex = "CREATE INDEX xrefs_updated ON xrefs(destination, updated_at)";

CrossReference ref(const std::string& destination, const std::string& key,
                   const std::string& external_id, const std::string& version,
                   const std::string& message_id = "01MSG") {
  CrossReference r;
  r.destination = destination;
  r.key = key;
  r.external_id = external_id;
  r.version = version;
  r.message_id = message_id;
  return r;
}

std::vector<std::string> keys_of(const std::vector<CrossReference>& refs) {
  std::vector<std::string> out;
  for (const auto& r : refs) out.push_back(r.key);
  return out;
}

class XrefStoreTest : public ::testing::Test {
 protected:
  XrefStoreTest() : clock_(kT0) {}

  void SetUp() override {
    Poco::Data::SQLite::Connector::registerConnector();
    Poco::Data::Session s("SQLite", path());
    s << "PRAGMA journal_mode=WAL", now;  // as the real store leaves the file
    s << kCreateTable, now;
    s << kCreateIndex, now;
    xrefs_ = open_sqlite_xref_store(path(), clock_);
  }

  std::string path() const { return dir_.file("relais.db"); }

  // Rows in the table for (destination, key), counted behind the store's back.
  int raw_rows(const std::string& destination, const std::string& key) {
    Poco::Data::Session s("SQLite", path());
    std::string d = destination, k = key;
    int n = -1;
    s << "SELECT COUNT(*) FROM xrefs WHERE destination = ? AND key = ?", use(d), use(k), into(n),
        now;
    return n;
  }

  TempDir dir_;
  ManualClock clock_;
  std::unique_ptr<XrefStore> xrefs_;
};

TEST_F(XrefStoreTest, PutThenGetReturnsTheRecordStampedByTheClock) {
  auto in = ref("outlook", "rdv-1", "AAMkAD=", "DwAAABYA", "01HMSG1");
  in.updated_at = 42;  // ignored: the store stamps the time
  xrefs_->put(in);

  auto got = xrefs_->get("outlook", "rdv-1");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->destination, "outlook");
  EXPECT_EQ(got->key, "rdv-1");
  EXPECT_EQ(got->external_id, "AAMkAD=");
  EXPECT_EQ(got->version, "DwAAABYA");
  EXPECT_EQ(got->message_id, "01HMSG1");
  EXPECT_EQ(got->updated_at, kT0);
  EXPECT_EQ(xrefs_->count("outlook"), 1u);
}

TEST_F(XrefStoreTest, EmptyVersionAndDigitsOnlyTextRoundTripAsText) {
  xrefs_->put(ref("graph", "rdv-1", "0042", ""));
  xrefs_->put(ref("graph", "rdv-2", "id with spaces, 'quotes' and é", "007"));
  auto a = xrefs_->get("graph", "rdv-1");
  auto b = xrefs_->get("graph", "rdv-2");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->external_id, "0042");
  EXPECT_EQ(a->version, "");
  EXPECT_EQ(b->external_id, "id with spaces, 'quotes' and é");
  EXPECT_EQ(b->version, "007");
}

TEST_F(XrefStoreTest, UpsertKeepsOneRowAndUpdatesVersionTimeAndMessage) {
  xrefs_->put(ref("outlook", "rdv-1", "item-1", "ck-1", "01MSGA"));
  clock_.advance(5'000);
  xrefs_->put(ref("outlook", "rdv-1", "item-1", "ck-2", "01MSGB"));

  auto got = xrefs_->get("outlook", "rdv-1");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->external_id, "item-1");
  EXPECT_EQ(got->version, "ck-2");
  EXPECT_EQ(got->message_id, "01MSGB");
  EXPECT_EQ(got->updated_at, kT0 + 5'000);
  EXPECT_EQ(xrefs_->count("outlook"), 1u);
  EXPECT_EQ(raw_rows("outlook", "rdv-1"), 1);

  // A recreate (the item was gone) replaces the external id too.
  xrefs_->put(ref("outlook", "rdv-1", "item-2", "ck-1", "01MSGC"));
  EXPECT_EQ(xrefs_->get("outlook", "rdv-1")->external_id, "item-2");
  EXPECT_EQ(raw_rows("outlook", "rdv-1"), 1);
}

TEST_F(XrefStoreTest, RemoveDeletesAndSaysWhetherThereWasAReference) {
  xrefs_->put(ref("outlook", "rdv-1", "item-1", "ck-1"));
  xrefs_->put(ref("outlook", "rdv-2", "item-2", "ck-1"));

  EXPECT_TRUE(xrefs_->remove("outlook", "rdv-1"));
  EXPECT_FALSE(xrefs_->get("outlook", "rdv-1").has_value());
  EXPECT_EQ(raw_rows("outlook", "rdv-1"), 0);
  EXPECT_FALSE(xrefs_->remove("outlook", "rdv-1"));  // already gone
  EXPECT_FALSE(xrefs_->remove("outlook", "never"));
  EXPECT_TRUE(xrefs_->get("outlook", "rdv-2").has_value());
  EXPECT_EQ(xrefs_->count("outlook"), 1u);

  // After a removal, a put creates again.
  xrefs_->put(ref("outlook", "rdv-1", "item-3", "ck-1"));
  EXPECT_EQ(xrefs_->get("outlook", "rdv-1")->external_id, "item-3");
}

TEST_F(XrefStoreTest, GetOfAMissingKeyIsEmpty) {
  EXPECT_FALSE(xrefs_->get("outlook", "rdv-1").has_value());
  EXPECT_EQ(xrefs_->count("outlook"), 0u);
  xrefs_->put(ref("outlook", "rdv-1", "item-1", "ck-1"));
  EXPECT_FALSE(xrefs_->get("outlook", "rdv-10").has_value());
  EXPECT_FALSE(xrefs_->get("outlook", "RDV-1").has_value());  // keys are case-sensitive
  EXPECT_FALSE(xrefs_->get("outlook", "").has_value());
}

TEST_F(XrefStoreTest, PutRejectsMissingDestinationKeyOrExternalId) {
  EXPECT_THROW(xrefs_->put(ref("", "rdv-1", "item-1", "ck")), std::invalid_argument);
  EXPECT_THROW(xrefs_->put(ref("outlook", "", "item-1", "ck")), std::invalid_argument);
  EXPECT_THROW(xrefs_->put(ref("outlook", "rdv-1", "", "ck")), std::invalid_argument);
  EXPECT_EQ(xrefs_->count("outlook"), 0u);
  EXPECT_EQ(xrefs_->count(""), 0u);
}

TEST_F(XrefStoreTest, ListsByDestinationAndPeriodOldestFirstWithLimit) {
  // Written out of time order; two share a time (ordered by key then).
  clock_.set(kT0 + 300);
  xrefs_->put(ref("outlook", "c", "id-c", "v"));
  clock_.set(kT0 + 100);
  xrefs_->put(ref("outlook", "b", "id-b", "v"));
  clock_.set(kT0 + 100);
  xrefs_->put(ref("outlook", "a", "id-a", "v"));
  clock_.set(kT0 + 200);
  xrefs_->put(ref("outlook", "d", "id-d", "v"));
  xrefs_->put(ref("graph", "g", "id-g", "v"));  // another destination, same time
  clock_.set(kT0 + 400);
  xrefs_->put(ref("outlook", "e", "id-e", "v"));

  using V = std::vector<std::string>;
  EXPECT_EQ(keys_of(xrefs_->list("outlook", kT0, kT0 + 1'000, 100)), (V{"a", "b", "d", "c", "e"}));
  // from is inclusive, to exclusive.
  EXPECT_EQ(keys_of(xrefs_->list("outlook", kT0 + 100, kT0 + 300, 100)), (V{"a", "b", "d"}));
  EXPECT_EQ(keys_of(xrefs_->list("outlook", kT0 + 101, kT0 + 301, 100)), (V{"d", "c"}));
  // limit keeps the oldest.
  EXPECT_EQ(keys_of(xrefs_->list("outlook", kT0, kT0 + 1'000, 3)), (V{"a", "b", "d"}));
  EXPECT_TRUE(xrefs_->list("outlook", kT0, kT0 + 1'000, 0).empty());
  // Empty or inverted periods.
  EXPECT_TRUE(xrefs_->list("outlook", kT0 + 200, kT0 + 200, 100).empty());
  EXPECT_TRUE(xrefs_->list("outlook", kT0 + 300, kT0 + 100, 100).empty());
  EXPECT_TRUE(xrefs_->list("outlook", kT0 + 500, kT0 + 1'000, 100).empty());
  // A huge limit is no limit.
  EXPECT_EQ(xrefs_->list("outlook", kT0, kT0 + 1'000, static_cast<size_t>(-1)).size(), 5u);

  // Records come back whole.
  auto one = xrefs_->list("graph", kT0, kT0 + 1'000, 10);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0], (CrossReference{"graph", "g", "id-g", "v", kT0 + 200, "01MSG"}));

  // An update moves a reference to its new time.
  clock_.set(kT0 + 500);
  xrefs_->put(ref("outlook", "a", "id-a", "v2"));
  EXPECT_EQ(keys_of(xrefs_->list("outlook", kT0, kT0 + 1'000, 100)), (V{"b", "d", "c", "e", "a"}));
}

TEST_F(XrefStoreTest, KeysOfOtherDestinationsNeverLeak) {
  xrefs_->put(ref("outlook", "rdv-1", "ews-item", "ck-1"));
  xrefs_->put(ref("graph", "rdv-1", "graph-event", "etag-1"));
  xrefs_->put(ref("graph", "rdv-2", "graph-event-2", "etag-1"));

  EXPECT_EQ(xrefs_->get("outlook", "rdv-1")->external_id, "ews-item");
  EXPECT_EQ(xrefs_->get("graph", "rdv-1")->external_id, "graph-event");
  EXPECT_FALSE(xrefs_->get("outlook", "rdv-2").has_value());
  EXPECT_FALSE(xrefs_->get("outlook2", "rdv-1").has_value());
  EXPECT_FALSE(xrefs_->get("outloo", "rdv-1").has_value());
  EXPECT_EQ(xrefs_->count("outlook"), 1u);
  EXPECT_EQ(xrefs_->count("graph"), 2u);
  EXPECT_EQ(xrefs_->count("other"), 0u);
  EXPECT_EQ(keys_of(xrefs_->list("outlook", kT0, kT0 + 1, 10)), std::vector<std::string>{"rdv-1"});

  // Updating or removing in one destination leaves the other alone.
  xrefs_->put(ref("outlook", "rdv-1", "ews-item", "ck-2"));
  EXPECT_EQ(xrefs_->get("graph", "rdv-1")->version, "etag-1");
  EXPECT_FALSE(xrefs_->remove("outlook", "rdv-2"));
  EXPECT_TRUE(xrefs_->remove("graph", "rdv-1"));
  EXPECT_EQ(xrefs_->get("outlook", "rdv-1")->version, "ck-2");
  EXPECT_EQ(xrefs_->count("graph"), 1u);
}

// Each thread owns some keys (checks it reads back exactly what it wrote) and all fight over one
// shared key (which must end as a single row holding one thread's last write).
void hammer(XrefStore& xrefs, int threads, int rounds, int keys_per_thread,
            const std::function<XrefStore&(int)>& store_for) {
  std::atomic<int> mismatches{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      XrefStore& s = store_for(t);
      try {
        for (int i = 0; i < rounds; ++i) {
          std::string key = "t" + std::to_string(t) + "-k" + std::to_string(i % keys_per_thread);
          std::string version = std::to_string(i);
          s.put(ref("outlook", key, "item-" + key, version));
          auto got = s.get("outlook", key);
          if (!got || got->version != version || got->external_id != "item-" + key) ++mismatches;
          s.put(ref("outlook", "shared", "item-shared", "t" + std::to_string(t) + "-" + version));
          if (!s.get("outlook", "shared")) ++mismatches;
        }
      } catch (const std::exception&) {
        ++errors;
      }
    });
  }
  for (auto& th : pool) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(xrefs.count("outlook"), static_cast<size_t>(threads * keys_per_thread + 1));
  for (int t = 0; t < threads; ++t) {
    for (int k = 0; k < keys_per_thread; ++k) {
      std::string key = "t" + std::to_string(t) + "-k" + std::to_string(k);
      auto got = xrefs.get("outlook", key);
      ASSERT_TRUE(got.has_value()) << key;
      // The last round that wrote key k.
      int last = ((rounds - 1 - k) / keys_per_thread) * keys_per_thread + k;
      EXPECT_EQ(got->version, std::to_string(last)) << key;
    }
  }
  auto shared = xrefs.get("outlook", "shared");
  ASSERT_TRUE(shared.has_value());
  EXPECT_EQ(shared->version.substr(shared->version.find('-') + 1), std::to_string(rounds - 1));
}

TEST_F(XrefStoreTest, ConcurrentPutAndGetFromEightThreads) {
  hammer(*xrefs_, 8, 120, 10, [this](int) -> XrefStore& { return *xrefs_; });
}

TEST_F(XrefStoreTest, TwoConnectionsOnTheSameFileWorkTogether) {
  // As relais and `relais calendar reconcile` would.
  auto second = open_sqlite_xref_store(path(), clock_);
  hammer(*xrefs_, 8, 100, 5, [&](int t) -> XrefStore& { return t % 2 == 0 ? *xrefs_ : *second; });
  EXPECT_EQ(second->count("outlook"), xrefs_->count("outlook"));
}

TEST_F(XrefStoreTest, SurvivesReopen) {
  xrefs_->put(ref("outlook", "rdv-1", "item-1", "ck-1", "01MSGA"));
  clock_.advance(1'000);
  xrefs_->put(ref("graph", "rdv-2", "event-2", "", "01MSGB"));
  xrefs_->put(ref("outlook", "rdv-3", "item-3", "ck-1"));
  EXPECT_TRUE(xrefs_->remove("outlook", "rdv-3"));
  xrefs_.reset();

  xrefs_ = open_sqlite_xref_store(path(), clock_);
  EXPECT_EQ(xrefs_->get("outlook", "rdv-1"),
            (CrossReference{"outlook", "rdv-1", "item-1", "ck-1", kT0, "01MSGA"}));
  EXPECT_EQ(xrefs_->get("graph", "rdv-2"),
            (CrossReference{"graph", "rdv-2", "event-2", "", kT0 + 1'000, "01MSGB"}));
  EXPECT_FALSE(xrefs_->get("outlook", "rdv-3").has_value());
  EXPECT_EQ(xrefs_->count("outlook"), 1u);
}

TEST(XrefStoreOpen, AStoreWithoutTheTableIsAClearError) {
  TempDir dir;
  std::string path = dir.file("old.db");
  {
    Poco::Data::SQLite::Connector::registerConnector();
    Poco::Data::Session s("SQLite", path);
    s << "CREATE TABLE messages (seq INTEGER PRIMARY KEY)", now;
    s << "CREATE INDEX xrefs ON messages(seq)", now;  // an index of that name is not the table
  }
  ManualClock clock(kT0);
  try {
    open_sqlite_xref_store(path, clock);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "store " + path + " has no xrefs table: migrate it");
  }
}

TEST(XrefStoreOpen, AMissingFileIsAnErrorAndIsNotCreated) {
  TempDir dir;
  std::string path = dir.file("typo.db");
  ManualClock clock(kT0);
  try {
    open_sqlite_xref_store(path, clock);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("store " + path + " does not exist"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(XrefStoreOpen, TheStoreMigrationsCreateTheTable) {
  TempDir dir;
  StoreOptions o;
  o.path = dir.file("relais.db");
  auto store = open_sqlite_store(o);
  ManualClock clock(kT0);
  auto xrefs = open_sqlite_xref_store(o.path, clock);
  xrefs->put(ref("outlook", "rdv-1", "item-1", "ck-1"));
  EXPECT_EQ(xrefs->get("outlook", "rdv-1")->version, "ck-1");
  EXPECT_EQ(xrefs->list("outlook", kT0, kT0 + 1, 10).size(), 1u);
  store->close();
}

}  // namespace
}  // namespace relais

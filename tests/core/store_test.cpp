// What is proper to the SQLite store: its migrations (a fresh file, a migration numbered below the
// highest, a newer schema refused). The cases every engine shares are in
// store_conformance_test.cpp (run on SQLite and PostgreSQL).

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <gtest/gtest.h>

#include "core/store.h"
#include "store/sqlite/sqlite_backend.h"
#include "tests/core/test_support.h"

namespace relais {
namespace {

using relais::testing::TempDir;
using namespace Poco::Data::Keywords;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override { open(); }
  void TearDown() override {
    if (store_) store_->close();
  }

  void open() {
    StoreOptions o;
    o.path = path();
    store_ = open_sqlite_store(o);
  }
  void reopen() {
    store_->close();
    store_.reset();
    open();
  }
  std::string path() const { return dir_.file("relais.db"); }

  int64_t scalar(const std::string& sql) {
    Poco::Data::SQLite::Connector::registerConnector();
    Poco::Data::Session s("SQLite", path());
    int64_t v = 0;
    s << sql, into(v), now;
    return v;
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, FreshFileIsMigratedToTheCurrentVersion) {
  EXPECT_GE(sqlite_schema_version(), 1);
  EXPECT_EQ(scalar("SELECT MAX(version) FROM schema_migrations"), sqlite_schema_version());
  // Versions are numbered per branch (a number may be reserved and not used yet): each one
  // is applied once.
  const std::string once =
      "SELECT COUNT(*) = COUNT(DISTINCT version) AND COUNT(*) >= 4 FROM schema_migrations";
  EXPECT_EQ(scalar(once), 1);
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                   "('messages', 'deliveries', 'attempts')"),
            3);
  // Reopening applies nothing twice.
  int64_t applied = scalar("SELECT COUNT(*) FROM schema_migrations");
  reopen();
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM schema_migrations"), applied);
  EXPECT_EQ(scalar(once), 1);
}

TEST_F(StoreTest, AMigrationNumberedBelowTheHighestIsStillApplied) {
  // A store that met migration 6 before 5 (numbers are reserved per line of work): 5 is
  // applied when it arrives, even though 6 is already recorded.
  store_->close();
  store_.reset();
  {
    Poco::Data::SQLite::Connector::registerConnector();
    Poco::Data::Session s("SQLite", path());
    s << "DROP TABLE sms_optouts", now;
    s << "DROP TABLE sms_records", now;
    s << "DELETE FROM schema_migrations WHERE version = 5", now;
  }
  open();
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM schema_migrations WHERE version = 5"), 1);
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                   "('sms_records', 'sms_optouts')"),
            2);
}

TEST_F(StoreTest, NewerSchemaIsRefusedWithBothVersions) {
  store_->close();
  store_.reset();
  const int newer = sqlite_schema_version() + 41;
  {
    Poco::Data::SQLite::Connector::registerConnector();
    Poco::Data::Session s("SQLite", path());
    int v = newer;
    s << "INSERT INTO schema_migrations(version, description) VALUES(?, 'from the future')", use(v),
        now;
  }
  StoreOptions o;
  o.path = path();
  try {
    open_sqlite_store(o);
    FAIL() << "a newer schema must be refused";
  } catch (const std::exception& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(std::to_string(newer)), std::string::npos) << what;
    EXPECT_NE(what.find("(" + std::to_string(sqlite_schema_version()) + ")"), std::string::npos)
        << what;
    EXPECT_NE(what.find(path()), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace relais

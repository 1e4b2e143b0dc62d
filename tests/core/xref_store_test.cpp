// XrefStore on SQLite, what is proper to it: the error on a store without the table or without
// its file, and the table made by the store's own migrations. The cases both engines share are
// in store_conformance_test.cpp (XrefConformance).

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>
#include <string>

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

using relais::testing::xref;

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
  xrefs->put(xref("outlook", "rdv-1", "item-1", "ck-1"));
  EXPECT_EQ(xrefs->get("outlook", "rdv-1")->version, "ck-1");
  EXPECT_EQ(xrefs->list("outlook", kT0, kT0 + 1, 10).size(), 1u);
  store->close();
}

}  // namespace
}  // namespace relais

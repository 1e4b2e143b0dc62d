// The table-published seam (MappingRepository::on_table_published, Connector::on_table_published):
// a table published through the repository is announced once, after its commit, with its rows
// sorted by key; a refused version is not; a version published by another process is announced
// by the reload that finds it (the watcher's), never at the first load.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/clock.h"
#include "core/store.h"
#include "routing/mapping_repository.h"
#include "store/sqlite/sqlite_backend.h"
#include "tests/core/test_support.h"

namespace relais {
namespace {

using relais::testing::TempDir;

struct Heard {
  std::vector<PublishedTable> tables;
  MappingRepository::TableListener listener() {
    return [this](const PublishedTable& t) { tables.push_back(t); };
  }
};

TEST(TablePublished, AnnouncedOnceAfterTheCommitAndFromAnotherProcess) {
  TempDir dir;
  const std::string path = dir.file("relais.db");
  StoreOptions so;
  so.path = path;
  open_sqlite_store(so)->close();
  SystemClock clock;
  MappingRepository here(open_sqlite_document_store(path, clock), clock);
  MappingRepository elsewhere(open_sqlite_document_store(path, clock), clock);
  std::vector<std::string> errors;
  ASSERT_TRUE(here.reload(errors));
  ASSERT_TRUE(elsewhere.reload(errors));
  Heard h, e;
  here.on_table_published(h.listener());
  elsewhere.on_table_published(e.listener());

  MappingCheck c = here.add_table_version(
      "cms", "csv", "nom,adresse\n*,Siège\nRouen Nord,12 rue\nBarentin,Place\n", "admin", "");
  ASSERT_TRUE(c.ok);
  ASSERT_EQ(h.tables.size(), 1u);
  EXPECT_EQ(h.tables[0].name, "cms");
  EXPECT_EQ(h.tables[0].version, c.version);
  ASSERT_EQ(h.tables[0].rows.size(), 2u);
  EXPECT_EQ(h.tables[0].rows[0].first, "Barentin");
  EXPECT_EQ(h.tables[0].rows[0].second, "Place");
  // A version that does not load is refused: nothing stored, nothing announced.
  EXPECT_FALSE(here.add_table_version("cms", "yaml", "entries: [", "admin", "").ok);
  EXPECT_EQ(h.tables.size(), 1u);
  // The other process finds it when it reloads (once), not its own process again.
  ASSERT_TRUE(elsewhere.reload(errors));
  ASSERT_EQ(e.tables.size(), 1u);
  EXPECT_EQ(e.tables[0].version, c.version);
  EXPECT_EQ(e.tables[0].rows, h.tables[0].rows);
  ASSERT_TRUE(elsewhere.reload(errors));
  ASSERT_TRUE(here.reload(errors));
  EXPECT_EQ(e.tables.size(), 1u);
  EXPECT_EQ(h.tables.size(), 1u);
  // A new repository (a restart) announces nothing at its first load.
  MappingRepository restarted(open_sqlite_document_store(path, clock), clock);
  Heard r;
  restarted.on_table_published(r.listener());
  ASSERT_TRUE(restarted.reload(errors));
  EXPECT_TRUE(r.tables.empty());
}

}  // namespace
}  // namespace relais

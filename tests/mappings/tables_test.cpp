// Lookup tables from CSV and YAML, and their load errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "mappings/mapping.h"

namespace relais::mappings {
namespace {

using nlohmann::json;

std::shared_ptr<const TableSet> load(const std::string& name, const std::string& fmt,
                                     const std::string& text, std::vector<Diagnostic>& diags) {
  return TableSet::from_documents({{name, {fmt, text}}}, diags);
}

TEST(CsvTables, RecordsQuotesDefault) {
  std::vector<Diagnostic> diags;
  auto t =
      load("cms", "csv",
           "\xEF\xBB\xBFnom,adresse,telephone\r\n*,Siège,0\r\n\"Rouen, Nord\",\"12 \"\"bis\"\" "
           "rue\",02\r\n\r\nDieppe,,03\r\n",
           diags);
  ASSERT_TRUE(diags.empty()) << to_string(diags[0]);
  ASSERT_TRUE(t->has("cms"));
  EXPECT_EQ(*t->find("cms", "Rouen, Nord"),
            json::parse(R"({"adresse":"12 \"bis\" rue","telephone":"02"})"));
  EXPECT_EQ(*t->find("cms", "Dieppe"), json::parse(R"({"adresse":null,"telephone":"03"})"));
  EXPECT_EQ((*t->find("cms", "Ailleurs"))["adresse"], "Siège");
}

// The rows as a connector receives a published table (Connector::on_table_published): sorted
// by key, the default left out; an unknown table has none.
TEST(CsvTables, RowsAreSortedWithoutTheDefault) {
  std::vector<Diagnostic> diags;
  auto t =
      load("cms", "csv", "nom,utas,tel\n*,Siège,0\nRouen,UTAS R,1\nBarentin,UTAS B,2\n", diags);
  ASSERT_TRUE(diags.empty()) << to_string(diags[0]);
  auto rows = t->rows("cms");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].first, "Barentin");
  EXPECT_EQ(rows[0].second, json::parse(R"({"utas":"UTAS B","tel":"2"})"));
  EXPECT_EQ(rows[1].first, "Rouen");
  EXPECT_TRUE(t->rows("other").empty());
}

TEST(CsvTables, SemicolonSeparatedTwoColumns) {
  std::vector<Diagnostic> diags;
  auto t = load("codes", "csv", "cle;valeur\na;1\nb;2\n", diags);
  ASSERT_TRUE(diags.empty());
  EXPECT_EQ(*t->find("codes", "b"), "2");
  EXPECT_EQ(t->find("codes", "c"), nullptr);
}

TEST(CsvTables, Errors) {
  std::vector<Diagnostic> diags;
  auto t = load("t", "csv", "k,v\na,1\na,2\nb\n", diags);
  ASSERT_EQ(diags.size(), 2u);
  EXPECT_EQ(to_string(diags[0]), "t.csv:3:1: duplicate key 'a'");
  EXPECT_EQ(to_string(diags[1]), "t.csv:4:1: row has 1 fields, the header has 2");
  EXPECT_FALSE(t->has("t"));
  diags.clear();
  load("t", "csv", "k,v\n\"a,1\n", diags);
  ASSERT_EQ(diags.size(), 1u);
  EXPECT_EQ(to_string(diags[0]), "t.csv:2:1: quoted field is not closed");
  diags.clear();
  load("t", "csv", "k\n", diags);
  EXPECT_EQ(to_string(diags.at(0)),
            "t.csv:1:1: a CSV table needs a header line with at least two columns (key, value...)");
}

TEST(YamlTables, EntriesDefaultAndPlainMaps) {
  std::vector<Diagnostic> diags;
  auto t = TableSet::from_documents(
      {{"th", {"yaml", "default: DIV\nentries:\n  Budget: BUD\n  'Accès aux droits': ADR\n"}},
       {"plain", {"yaml", "a: {x: 1}\nb: {y: 2}\n"}}},
      diags);
  ASSERT_TRUE(diags.empty());
  EXPECT_EQ(*t->find("th", "Accès aux droits"), "ADR");
  EXPECT_EQ(*t->find("th", "Autre"), "DIV");
  EXPECT_EQ(*t->find("plain", "a"), json({{"x", 1}}));
  EXPECT_EQ(t->find("plain", "c"), nullptr);
  EXPECT_EQ(t->names(), (std::vector<std::string>{"plain", "th"}));
}

TEST(YamlTables, Errors) {
  std::vector<Diagnostic> diags;
  load("t", "yaml", "entries: {a: 1}\ndefaults: 2\n", diags);
  EXPECT_EQ(to_string(diags.at(0)),
            "t.yaml:2:1: unknown key 'defaults' (expected entries, default, description)");
  diags.clear();
  load("t", "yaml", "- a\n", diags);
  EXPECT_EQ(to_string(diags.at(0)),
            "t.yaml:1:1: a YAML table must be a map (entries: {key: value}, default: ...)");
  diags.clear();
  load("t", "yaml", "a: [1\n", diags);
  EXPECT_EQ(diags.at(0).line, 2);
  diags.clear();
  load("t", "xls", "", diags);
  EXPECT_EQ(to_string(diags.at(0)), "t.xls: unknown table format 'xls' (csv or yaml)");
}

TEST(TableDirs, LoadsCsvAndYamlFiles) {
  auto dir =
      std::filesystem::temp_directory_path() / ("relais-tables-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "a.csv") << "k,v\nx,1\n";
  std::ofstream(dir / "b.yaml") << "x: 2\n";
  std::ofstream(dir / "notes.txt") << "ignored";
  std::vector<Diagnostic> diags;
  auto t = TableSet::load_dir(dir.string(), diags);
  EXPECT_TRUE(diags.empty());
  EXPECT_EQ(t->names(), (std::vector<std::string>{"a", "b"}));
  std::filesystem::remove_all(dir);
  diags.clear();
  TableSet::load_dir((dir / "missing").string(), diags);
  EXPECT_EQ(diags.size(), 1u);
}

}  // namespace
}  // namespace relais::mappings

// The CSV and XML readers of the watched folder (connectors/file/record_reader.h): splitting,
// quoting, encodings, header mapping, nested paths, XML records with namespaces.

#include "connectors/file/record_reader.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace relais::file {
namespace {

using nlohmann::json;

ReadAt over(const std::string& text) {
  return [text](int64_t offset, size_t max, std::string& out) {
    out = offset >= int64_t(text.size()) ? "" : text.substr(size_t(offset), max);
    return Status::success();
  };
}

std::vector<CsvRow> rows_of(const std::string& text, const CsvFormat& f, size_t max = 1000) {
  int64_t offset = 0, line = 1;
  std::vector<CsvRow> rows;
  Status s = read_csv(over(text), int64_t(text.size()), f, offset, line, max, rows);
  EXPECT_TRUE(s.ok) << s.detail;
  return rows;
}

TEST(CsvReader, QuotedFieldsHoldDelimitersQuotesAndLineBreaks) {
  CsvFormat f;
  auto rows = rows_of("a;\"b;c\";\"d \"\"e\"\"\"\n\"multi\nligne\";x;\n\nlast;1;2", f);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].fields, (std::vector<std::string>{"a", "b;c", "d \"e\""}));
  EXPECT_EQ(rows[0].line, 1);
  EXPECT_EQ(rows[1].fields, (std::vector<std::string>{"multi\nligne", "x", ""}));
  EXPECT_EQ(rows[1].line, 2);
  // line 4 is blank (skipped, still counted), the last line has no line break
  EXPECT_EQ(rows[2].fields, (std::vector<std::string>{"last", "1", "2"}));
  EXPECT_EQ(rows[2].line, 5);
}

TEST(CsvReader, CommaDelimiterAndCrlf) {
  CsvFormat f;
  f.delimiter = ',';
  auto rows = rows_of("id,nom\r\n1,\"Dupont, Jean\"\r\n2,Martin\r\n", f);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[1].fields, (std::vector<std::string>{"1", "Dupont, Jean"}));
  EXPECT_EQ(rows[2].fields, (std::vector<std::string>{"2", "Martin"}));
  EXPECT_EQ(rows[2].line, 3);
}

TEST(CsvReader, SameRecordsWhateverTheChunkSize) {
  std::string text = "h1;h2\n";
  for (int i = 0; i < 200; ++i) {
    text += std::to_string(i) + ";\"v " + std::to_string(i) + "\r\n\"\"q\"\"\"\r\n";
  }
  CsvFormat big;
  auto expected = rows_of(text, big);
  for (size_t chunk : {1u, 2u, 3u, 7u, 64u}) {
    CsvFormat f;
    f.chunk = chunk;
    auto rows = rows_of(text, f);
    ASSERT_EQ(rows.size(), expected.size()) << "chunk " << chunk;
    for (size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(rows[i].fields, expected[i].fields) << "chunk " << chunk << " row " << i;
      EXPECT_EQ(rows[i].line, expected[i].line);
    }
  }
  EXPECT_EQ(expected.back().line, 1 + 2 * 200 - 1);
}

TEST(CsvReader, ResumesFromTheOffsetItReturned) {
  std::string text = "a;1\nb;2\nc;3\nd;4\ne;5\n";
  CsvFormat f;
  int64_t offset = 0, line = 1;
  std::vector<CsvRow> first, second;
  ASSERT_TRUE(read_csv(over(text), int64_t(text.size()), f, offset, line, 2, first).ok);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(offset, 8);
  EXPECT_EQ(line, 3);
  ASSERT_TRUE(read_csv(over(text), int64_t(text.size()), f, offset, line, 10, second).ok);
  ASSERT_EQ(second.size(), 3u);
  EXPECT_EQ(second[0].fields[0], "c");
  EXPECT_EQ(second[0].line, 3);
  EXPECT_EQ(offset, int64_t(text.size()));
}

TEST(CsvReader, UnclosedQuoteAndTooLongRecordAreUnreadableNotFatal) {
  CsvFormat f;
  f.max_record = 16;
  f.chunk = 4;
  auto rows = rows_of("ok;1\n" + std::string(40, 'x') + "\nok;2\n\"open;3", f);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_TRUE(rows[0].error.empty());
  EXPECT_NE(rows[1].error.find("trop long"), std::string::npos);
  EXPECT_EQ(rows[1].line, 2);
  EXPECT_EQ(rows[2].fields, (std::vector<std::string>{"ok", "2"}));
  EXPECT_EQ(rows[2].line, 3);
  EXPECT_NE(rows[3].error.find("guillemet"), std::string::npos);
}

TEST(Encoding, Windows1252AndLatin1AccentsBecomeUtf8) {
  std::string out;
  ASSERT_TRUE(to_utf8("\xC9lodie \xE0 No\xEBl \x80 \x9C", Encoding::Windows1252, out));
  EXPECT_EQ(out, "Élodie à Noël € œ");
  ASSERT_TRUE(to_utf8("\xC9t\xE9", Encoding::Latin1, out));
  EXPECT_EQ(out, "Été");
  EXPECT_FALSE(to_utf8("a\x81z", Encoding::Windows1252, out));  // undefined in Windows-1252
  EXPECT_FALSE(to_utf8("\xC9lodie", Encoding::Utf8, out));      // Latin-1 bytes are not UTF-8
  EXPECT_FALSE(to_utf8("\xC0\xAF", Encoding::Utf8, out));       // overlong
  EXPECT_TRUE(to_utf8("Élodie", Encoding::Utf8, out));
  Encoding e;
  EXPECT_TRUE(parse_encoding("CP1252", e));
  EXPECT_EQ(e, Encoding::Windows1252);
  EXPECT_FALSE(parse_encoding("ebcdic", e));
}

CsvFormat genesis_format() {
  CsvFormat f;
  f.encoding = Encoding::Windows1252;
  f.columns = {{"N° demande", message_path("demande.numero")},
               {"Identifiant", message_path("$.individu.id")},
               {"Montant", message_path("aide.montant")}};
  f.shape.constants = {{message_path("event"), "genesis.aide.accordee"}};
  f.shape.required = {message_path("demande.numero")};
  return f;
}

TEST(CsvMapper, HeaderNamesGoToNestedPathsWithConstants) {
  CsvFormat f = genesis_format();
  // The header in Windows-1252 ("N\xB0" is "N°"), one column not mapped (left out).
  auto rows = rows_of("Identifiant;N\xB0 demande;Nom;Montant\n58123;547;H\xE9lo\xEFse;120,50\n", f);
  ASSERT_EQ(rows.size(), 2u);
  CsvMapper m(f);
  std::string reason;
  ASSERT_TRUE(m.set_header(rows[0], reason)) << reason;
  std::string body, unreadable;
  m.map(rows[1], body, unreadable);
  ASSERT_TRUE(unreadable.empty()) << unreadable;
  EXPECT_EQ(json::parse(body), json::parse(R"({"event":"genesis.aide.accordee",
      "demande":{"numero":"547"},"individu":{"id":"58123"},"aide":{"montant":"120,50"}})"));
}

TEST(CsvMapper, MissingColumnWrongCountBadEncodingEmptyRequired) {
  CsvFormat f = genesis_format();
  CsvMapper m(f);
  std::string reason;
  CsvRow header{{"Identifiant", "Montant"}, 1, ""};
  EXPECT_FALSE(m.set_header(header, reason));
  EXPECT_EQ(reason, "colonne « N° demande » absente de l'en-tête");

  f.encoding = Encoding::Utf8;
  CsvMapper u(f);
  ASSERT_TRUE(u.set_header({{"\xEF\xBB\xBFN° demande", "Identifiant", "Montant"}, 1, ""}, reason))
      << reason;  // a UTF-8 byte-order mark before the first name
  std::string body, unreadable;
  u.map({{"1", "2"}, 7, ""}, body, unreadable);
  EXPECT_EQ(unreadable, "nombre de champs incorrect : 2 au lieu de 3");
  EXPECT_TRUE(body.empty());
  u.map({{"1", "Z\xE9ro", "3"}, 8, ""}, body, unreadable);
  EXPECT_EQ(unreadable, "colonne 2 : caractères invalides pour l'encodage utf-8");
  u.map({{" ", "2", "3"}, 9, ""}, body, unreadable);
  EXPECT_EQ(unreadable, "champ obligatoire absent : demande.numero");
}

TEST(CsvMapper, WithoutHeaderColumnsAreNumbers) {
  CsvFormat f;
  f.header = false;
  f.delimiter = ',';
  f.columns = {{"2", message_path("b")}, {"1", message_path("a.x")}};
  CsvMapper m(f);
  std::string reason, body, unreadable;
  ASSERT_TRUE(m.set_header(CsvRow{}, reason));
  m.map({{"un", "deux", "trois"}, 1, ""}, body, unreadable);
  EXPECT_EQ(json::parse(body), json::parse(R"({"a":{"x":"un"},"b":"deux"})"));
  m.map({{"un"}, 2, ""}, body, unreadable);
  EXPECT_EQ(unreadable, "nombre de champs insuffisant : 1, la colonne 2 est attendue");
}

TEST(CsvMapper, EmptyColumnsTakeEveryHeaderName) {
  CsvFormat f;
  CsvMapper m(f);
  std::string reason, body, unreadable;
  ASSERT_TRUE(m.set_header({{"id", "état"}, 1, ""}, reason));
  m.map({{"4", "accordée"}, 2, ""}, body, unreadable);
  EXPECT_EQ(json::parse(body), json::parse(R"({"id":"4","état":"accordée"})"));
}

TEST(MessagePath, DollarOptionalBadPathRefused) {
  EXPECT_EQ(message_path("demande.numero").text(), "$.demande.numero");
  EXPECT_EQ(message_path("$.a").text(), "$.a");
  EXPECT_THROW(message_path(""), std::invalid_argument);
  EXPECT_THROW(message_path("a..b"), std::invalid_argument);
}

XmlFormat aides_format() {
  XmlFormat f;
  f.record = "//aide";
  f.fields = {{message_path("individu.id"), "beneficiaire/@id"},
              {message_path("aide.type"), "type"},
              {message_path("aide.montant"), "montant"},
              {message_path("aide.etat"), "etat"}};
  f.shape.constants = {{message_path("event"), "genesis.aide.accordee"}};
  f.shape.required = {message_path("individu.id"), message_path("aide.type")};
  return f;
}

TEST(XmlRecords, PrefixedAndDefaultNamespacesAreIgnored) {
  XmlFormat f = aides_format();
  std::string doc = R"(<?xml version="1.0" encoding="UTF-8"?>
<g:export xmlns:g="urn:worldline:genesis:export:1" xmlns:x="urn:other">
  <g:aide><g:beneficiaire x:id="58123"/><g:type>APA</g:type><g:montant>412.30</g:montant>
    <g:etat>accordée</g:etat></g:aide>
  <aide xmlns="urn:worldline:genesis:export:1"><beneficiaire id="77"/><type>PCH</type></aide>
  <g:aide><g:type>FSL</g:type></g:aide>
</g:export>)";
  XmlRecords r(f, doc);
  ASSERT_TRUE(r.ok()) << r.error();
  ASSERT_EQ(r.count(), 3u);
  std::string body, unreadable;
  r.map(0, body, unreadable);
  ASSERT_TRUE(unreadable.empty()) << unreadable;
  EXPECT_EQ(json::parse(body), json::parse(R"({"event":"genesis.aide.accordee",
      "individu":{"id":"58123"},"aide":{"type":"APA","montant":"412.30","etat":"accordée"}})"));
  r.map(1, body, unreadable);
  EXPECT_EQ(json::parse(body)["aide"], json::parse(R"({"type":"PCH"})"));  // absent: left out
  r.map(2, body, unreadable);
  EXPECT_EQ(unreadable, "champ obligatoire absent : individu.id");
}

TEST(XmlRecords, MalformedDocumentNamesItsLineBadXPathThrows) {
  XmlFormat f = aides_format();
  XmlRecords r(f, "<export>\n<aide>\n<type>APA</typ>\n</aide></export>");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.error().rfind("XML mal formé ligne 3 : ", 0), 0u) << r.error();
  f.record = "//aide[";
  EXPECT_NE(check_xpaths(f), "");
  EXPECT_THROW(XmlRecords(f, "<a/>"), std::invalid_argument);
}

}  // namespace
}  // namespace relais::file

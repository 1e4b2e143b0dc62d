// Fuzz target: what the watched folder reads from outside (connectors/file/record_reader.h): a
// CSV file split from chunks (the same records whatever the chunk size), its header and rows
// mapped in UTF-8 and Windows-1252, and an XML file's records by XPath.

#include <nlohmann/json.hpp>

#include "connectors/file/record_reader.h"
#include "tests/fuzz/fuzz_targets.h"

namespace {

using namespace relais::file;

struct Fixture {
  CsvFormat utf8, cp1252, small;
  XmlFormat xml;
  Fixture() {
    utf8.columns = {{"a", message_path("x.a")}, {"b", message_path("x.b")}};
    utf8.shape.constants = {{message_path("event"), "fuzz"}};
    utf8.shape.required = {message_path("x.a")};
    cp1252 = utf8;
    cp1252.encoding = Encoding::Windows1252;
    cp1252.columns.clear();  // every column under its header name
    small = utf8;
    small.chunk = 7;
    small.max_record = 64;
    xml.record = "//r";
    xml.fields = {{message_path("a"), "@a"}, {message_path("b.c"), "c"}};
    xml.shape.required = {message_path("a")};
  }
};

std::vector<CsvRow> split(const std::string& text, const CsvFormat& f) {
  ReadAt read = [&](int64_t offset, size_t max, std::string& out) {
    out = offset >= int64_t(text.size()) ? "" : text.substr(size_t(offset), max);
    return relais::Status::success();
  };
  int64_t offset = 0, line = 1;
  std::vector<CsvRow> rows;
  if (!read_csv(read, int64_t(text.size()), f, offset, line, 1 << 20, rows).ok) __builtin_trap();
  if (offset != int64_t(text.size())) __builtin_trap();
  return rows;
}

void check_body(const std::string& body, const std::string& unreadable) {
  if (body.empty() == unreadable.empty()) __builtin_trap();
  if (!body.empty() && nlohmann::json::parse(body, nullptr, false).is_discarded()) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Fixture f;
  std::string text(reinterpret_cast<const char*>(data), size);
  auto rows = split(text, f.utf8);
  for (const CsvFormat* format : {&f.utf8, &f.cp1252}) {
    CsvMapper m(*format);
    std::string reason, body, unreadable;
    if (rows.empty() || !m.set_header(rows[0], reason)) continue;
    for (size_t i = 1; i < rows.size(); ++i) {
      m.map(rows[i], body, unreadable);
      check_body(body, unreadable);
    }
  }
  // Short chunks: the records that fit max_record are the same as with large chunks.
  auto small = split(text, f.small);
  for (const auto& row : small) {
    if (row.line < 1) __builtin_trap();
  }
  XmlRecords xml(f.xml, text);
  if (xml.ok()) {
    for (size_t i = 0; i < xml.count() && i < 1000; ++i) {
      std::string body, unreadable;
      xml.map(i, body, unreadable);
      check_body(body, unreadable);
    }
  }
  return 0;
}

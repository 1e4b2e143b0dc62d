#pragma once
// Reading the records of exported files — CSV and XML — into message bodies. Pure parsing: the
// bytes come through a ReadAt function (a local file, later an SFTP file: file_transport.h), so
// nothing here knows where a file lives, and nothing here keeps a file whole in memory for CSV
// (records are split from chunks; XML is a DOM, loaded once per file by its caller).
//
// Values are strings (a mapping converts them); a value goes to a JSON path of the message
// ("demande.numero" builds {"demande": {"numero": …}}). A record that cannot be read is not an
// error of the file: it carries a French reason for the desk and its position, never its
// content. Every type here is a plain value or immutable after construction (thread-safe
// const use) unless said otherwise.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/json_template.h"
#include "core/status.h"

namespace relais::file {

// Reads at most `max` bytes from `offset` (fewer at the end).
using ReadAt = std::function<Status(int64_t offset, size_t max, std::string& out)>;

enum class Encoding { Utf8, Windows1252, Latin1 };
// "utf-8", "windows-1252", "iso-8859-1" (and their usual spellings: cp1252, latin1…).
bool parse_encoding(const std::string& text, Encoding& out);
const char* to_string(Encoding e);
// `in` in UTF-8. False when `in` is not valid in `enc` (a byte Windows-1252 leaves undefined,
// a broken UTF-8 sequence); `out` is then unspecified.
bool to_utf8(std::string_view in, Encoding enc, std::string& out);

// A path of the message from configuration: "demande.numero" or "$.demande.numero". Throws
// std::invalid_argument naming the text when it is not a path.
JsonPath message_path(const std::string& text);

// What every record gets besides its values: constant fields, and the paths that must hold a
// non-empty value for the record to be readable.
struct RecordShape {
  std::vector<std::pair<JsonPath, std::string>> constants;
  std::vector<JsonPath> required;
  // Adds the constants, then checks the required paths; false with the reason.
  bool complete(nlohmann::json& doc, std::string& reason) const;
};

// How a CSV file is read.
struct CsvFormat {
  char delimiter = ';';
  char quote = '"';
  Encoding encoding = Encoding::Utf8;
  bool header = true;
  // Column (its header name, or its number from 1 without header) → path in the message. Empty
  // with a header: every column under its header name, at the top level.
  std::vector<std::pair<std::string, JsonPath>> columns;
  RecordShape shape;
  size_t max_record = 1 << 20;  // a longer record is unreadable (and skipped to its line's end)
  size_t chunk = 64 * 1024;     // bytes read at a time
};

// One CSV record, split but not converted: its fields as bytes in the file's encoding.
struct CsvRow {
  std::vector<std::string> fields;
  int64_t line = 0;   // its first line in the file (1-based)
  std::string error;  // set when it could not even be split (unclosed quote, too long)
};

// Reads CSV records from `offset` (a record's start; `line` its line number): at most
// `max_records` of them, never past `size`. RFC 4180 with the format's delimiter and quote:
// quoted fields may hold delimiters, doubled quotes and line breaks; LF or CRLF; blank lines are
// skipped. On return `offset`/`line` are the position after the last record returned; at most
// about max_record + chunk bytes are held at once.
Status read_csv(const ReadAt& read, int64_t size, const CsvFormat& format, int64_t& offset,
                int64_t& line, size_t max_records, std::vector<CsvRow>& rows);

// Turns CSV rows into message bodies. Built from the format; then set_header() once per file
// (or nothing without header). Not thread-safe to set up; const use is.
class CsvMapper {
 public:
  explicit CsvMapper(const CsvFormat& format) : format_(&format) {}
  // Resolves the configured columns against the file's header; false with the reason (a
  // declared column absent, a header that cannot be read). Without header: checks nothing.
  bool set_header(const CsvRow& header, std::string& reason);
  // The body of one row, or `unreadable` set (wrong number of fields, bad encoding, a
  // required field empty). `position` and `idempotency_key` are the caller's.
  void map(const CsvRow& row, std::string& body, std::string& unreadable) const;

 private:
  const CsvFormat* format_;
  size_t expected_fields_ = 0;                               // from the header; 0 = not checked
  std::vector<std::pair<size_t, const JsonPath*>> targets_;  // column index → path
  std::vector<std::string> flat_names_;  // header names, when every column is taken as is
};

// How an XML file is read: the repeated element and, relative to it, each field's XPath.
// Namespace prefixes are removed at load: XPaths name elements and attributes by local name.
struct XmlFormat {
  std::string record;                                    // XPath of the records, e.g. "//aide"
  std::vector<std::pair<JsonPath, std::string>> fields;  // path in the message → XPath
  RecordShape shape;
};

// An XML file's records. Holds the parsed document (pugixml) and the compiled queries;
// immutable after load; not copyable.
class XmlRecords {
 public:
  // Parses `content` and selects the records. Throws std::invalid_argument when an XPath of
  // the format does not compile (a configuration error). A document that does not parse gives
  // ok() false with the reason (position included).
  XmlRecords(const XmlFormat& format, const std::string& content);
  ~XmlRecords();
  XmlRecords(const XmlRecords&) = delete;
  XmlRecords& operator=(const XmlRecords&) = delete;
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  size_t count() const;
  // The body of record `index` (0-based), or `unreadable` set (a required field absent).
  void map(size_t index, std::string& body, std::string& unreadable) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string error_;
};

// Checks the format's XPaths (for configuration checks); "" when they compile, else the reason.
std::string check_xpaths(const XmlFormat& format);

}  // namespace relais::file

// Public API of the Relais mapping language.
//
// A mapping document (YAML, see docs/mappings.md) describes how to build the payload sent to
// a partner (JSON, or XML with namespaces) from a message body and its metadata. Documents are
// compiled once into an immutable tree of expressions; applying a compiled mapping never
// re-parses anything and never throws: failures come back as a MapResult with Kind::Error.
//
// This library knows nothing of HTTP, queues or the store.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace relais::mappings {

// A compile or load problem, located in the source file. line and column are 1-based
// (0 when unknown).
struct Diagnostic {
  std::string file;
  int line = 0;
  int column = 0;
  std::string message;
};

// "file:line:col: message".
std::string to_string(const Diagnostic&);

namespace detail {
struct Table;
class MappingImpl;
}  // namespace detail

// A set of lookup tables (key -> value or record, with an optional default per table), loaded
// from CSV or YAML documents.
//
// Thread-safety: immutable after load; every const member may be called concurrently.
// Ownership: shared (std::shared_ptr<const TableSet>) by the compiled mappings that use it;
// a compiled mapping keeps its TableSet alive.
class TableSet {
 public:
  // Loads every *.csv / *.yaml / *.yml table in a directory (table name = file stem).
  // Problems are appended to diags; tables that failed to load are left out. Never throws.
  static std::shared_ptr<const TableSet> load_dir(const std::string& dir,
                                                  std::vector<Diagnostic>& diags);
  // Builds tables from in-memory documents: table name -> (format "csv" | "yaml", text).
  static std::shared_ptr<const TableSet> from_documents(
      const std::map<std::string, std::pair<std::string, std::string>>& docs,
      std::vector<Diagnostic>& diags);
  // An empty table set.
  static std::shared_ptr<const TableSet> empty();

  bool has(const std::string& table) const;
  std::vector<std::string> names() const;
  // The value for key (the table default when the key is absent); nullptr when the table is
  // unknown or the key is absent and the table has no default.
  const nlohmann::json* find(const std::string& table, const std::string& key) const;
  // Every row of `table` (the default excepted), sorted by key; empty when it is unknown.
  std::vector<std::pair<std::string, nlohmann::json>> rows(const std::string& table) const;

  // Internal: resolved table for compiled lookups (nullptr when unknown).
  const detail::Table* table(const std::string& name) const;

  TableSet();
  ~TableSet();
  TableSet(const TableSet&) = delete;
  TableSet& operator=(const TableSet&) = delete;

 private:
  std::map<std::string, std::unique_ptr<detail::Table>> tables_;
  friend struct TableLoader;
};

// The outcome of applying a mapping to one message.
struct MapResult {
  enum class Kind { Ok, Skip, Error } kind = Kind::Ok;
  nlohmann::json value;      // Ok + json output: the document built
  std::string text;          // Ok: serialized output (JSON dump or XML text) ready to send
  std::string content_type;  // "application/json" or "text/xml; charset=utf-8" (or as configured)
  std::string reason;        // Skip reason or Error message (names mapping, rule, value path)
};

// A compiled mapping document.
//
// Thread-safety: immutable; apply() is const and may be called concurrently from any number
// of threads. Ownership: shared via std::shared_ptr<const CompiledMapping>; it owns its
// expression tree and shares the TableSet it was compiled against.
class CompiledMapping {
 public:
  explicit CompiledMapping(std::unique_ptr<detail::MappingImpl> impl);
  ~CompiledMapping();
  CompiledMapping(const CompiledMapping&) = delete;
  CompiledMapping& operator=(const CompiledMapping&) = delete;

  const std::string& name() const;
  // "json" or "xml".
  const std::string& output_format() const;
  // The declared personal paths of the output (`personal:`), as written.
  const std::vector<std::string>& personal_paths() const;
  // Applies the mapping to a message body and its metadata (id, source, type, correlation_key,
  // received_at). Never throws.
  MapResult apply(const nlohmann::json& body, const nlohmann::json& meta) const;

 private:
  std::unique_ptr<detail::MappingImpl> impl_;
};

// Compiles YAML text; returns nullptr and fills diags on any error. Never throws.
std::shared_ptr<const CompiledMapping> compile(const std::string& yaml_text,
                                               const std::string& file_name,
                                               std::shared_ptr<const TableSet> tables,
                                               std::vector<Diagnostic>& diags);

// Runs a `*.test.yaml` file against a compiled mapping and returns the failures as
// human-readable strings (empty = all cases passed). Problems with the test file itself are
// appended to diags. Never throws.
//
// cases: - name: ...
//          input: <inline JSON/YAML object> | <file path relative to the test file>
//          meta: {type: ..., id: ...}          (optional)
//          expect: {output: ...} | {output_includes: ...} | {output_text: ...}
//                  | {contains: [...]} | {skip: substring} | {error: substring}
std::vector<std::string> run_test_file(const std::string& test_path, const CompiledMapping&,
                                       std::vector<Diagnostic>& diags);

// Number of cases the last run_test_file call on this thread executed (for reporting).
int last_test_case_count();

}  // namespace relais::mappings

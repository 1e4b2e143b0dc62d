// Helpers for the mapping unit tests: evaluate one expression through a real compile().
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "mappings/mapping.h"

namespace relais::mappings::testing {

using nlohmann::json;

inline std::shared_ptr<const TableSet> test_tables() {
  static std::shared_ptr<const TableSet> tables = [] {
    std::vector<Diagnostic> diags;
    auto t = TableSet::from_documents(
        {{"cms",
          {"csv",
           "nom,adresse,telephone\n*,Département,02.35.00.00.99\nBarentin,\"Place de la "
           "Libération, 76360 Barentin\",02.35.00.00.00\n"}},
         {"thematique", {"yaml", "default: DIV\nentries:\n  Budget: BUD\n  Insertion: INS\n"}},
         {"strict", {"yaml", "entries:\n  a: 1\n"}}},
        diags);
    EXPECT_TRUE(diags.empty());
    return t;
  }();
  return tables;
}

// Compiles "fields: {v: <expr>}" (written as a block scalar with '=' so no YAML quoting
// applies) and applies it.
inline MapResult run_expr(const std::string& expr, const json& body = json::object(),
                          const json& meta = json::object()) {
  std::vector<Diagnostic> diags;
  auto m =
      compile("name: t\nfields:\n  v: >-\n    =" + expr + "\n", "t.yaml", test_tables(), diags);
  if (!m) {
    MapResult r;
    r.kind = MapResult::Kind::Error;
    r.reason = "COMPILE: " + (diags.empty() ? std::string("?") : to_string(diags[0]));
    return r;
  }
  return m->apply(body, meta);
}

inline json ev(const std::string& expr, const json& body = json::object(),
               const json& meta = json::object()) {
  MapResult r = run_expr(expr, body, meta);
  EXPECT_EQ(r.kind, MapResult::Kind::Ok) << expr << " -> " << r.reason;
  return r.kind == MapResult::Kind::Ok ? r.value["v"] : json("<error: " + r.reason + ">");
}

inline std::string run_error(const std::string& expr, const json& body = json::object()) {
  MapResult r = run_expr(expr, body);
  EXPECT_EQ(r.kind, MapResult::Kind::Error) << expr;
  return r.reason;
}

// The first diagnostic of compiling a whole document, as "file:line:col: message".
inline std::string compile_error(const std::string& yaml) {
  std::vector<Diagnostic> diags;
  auto m = compile(yaml, "m.yaml", test_tables(), diags);
  EXPECT_EQ(m, nullptr);
  return diags.empty() ? std::string("<no diagnostic>") : to_string(diags[0]);
}

}  // namespace relais::mappings::testing

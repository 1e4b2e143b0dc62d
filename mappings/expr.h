// Internals of the mapping language: the expression tree, its evaluation context and the
// parser. Not part of the public API (see mapping.h); used by the compiler and the tests.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "mappings/mapping.h"
#include "mappings/tz.h"

namespace relais::mappings::detail {

using json = nlohmann::json;

// One lookup table. Immutable after load.
struct Table {
  std::string name;
  std::unordered_map<std::string, json> rows;
  bool has_default = false;
  json default_value;
  std::vector<std::string> columns;  // record tables: the field names; empty for scalar tables
  const json* find(const std::string& key) const {
    auto it = rows.find(key);
    if (it != rows.end()) return &it->second;
    return has_default ? &default_value : nullptr;
  }
};

class MappingImpl;
class Expr;

// Per-apply evaluation state. Owned by one apply() call on one thread; never shared.
struct EvalContext {
  EvalContext(const json& b, const json& m, const MappingImpl& map);
  const json& body;
  const json& meta;
  const MappingImpl& mapping;
  std::vector<json> vars;
  std::vector<uint8_t> var_done;
  std::vector<const json*> items;  // for_each stack ($item)
  const std::string* rule = nullptr;
  bool failed = false;
  std::string error;
  // Records the first run-time failure: "mapping 'M', rule 'R': message (value: PATH)".
  void fail(std::string_view message, std::string_view value_path);
  const json& var(size_t index);
};

// A compiled expression. Immutable after compilation; eval() is const and reentrant.
class Expr {
 public:
  virtual ~Expr() = default;
  virtual json eval(EvalContext& ctx) const = 0;
  // Non-null when the expression is a literal known at compile time.
  virtual const json* constant() const { return nullptr; }
  std::string text;  // source text, used in run-time messages as the "value path"
  size_t offset = 0;
};
using ExprPtr = std::unique_ptr<Expr>;

class Literal : public Expr {
 public:
  explicit Literal(json v) : value(std::move(v)) {}
  json eval(EvalContext&) const override { return value; }
  const json* constant() const override { return &value; }
  json value;
};

// A compile error located at an offset of the expression text.
struct ExprError : std::runtime_error {
  ExprError(size_t off, const std::string& m) : std::runtime_error(m), offset(off) {}
  size_t offset;
};

// What the parser may refer to.
struct CompileScope {
  const TableSet* tables = nullptr;
  std::map<std::string, size_t> vars;  // visible variables (declared earlier)
  int item_depth = 0;                  // > 0 inside for_each
};

// Parses an expression ("$.rdv.date", "upper($.x)", "if(a == 'b', 1, 2)", ...).
ExprPtr parse_expression(std::string_view src, const CompileScope& scope);
// Parses text with {expression} placeholders ("RDV le {$.rdv.date}"); "{{" and "}}" are
// literal braces. Offsets in errors are relative to src.
ExprPtr parse_template(std::string_view src, const CompileScope& scope);

// Value helpers shared by the functions.
bool truthy(const json& v);
bool is_empty(const json& v);
// Text form of a value: strings as is, integral numbers without ".0", null as "".
std::string to_text(const json& v);
void append_text(std::string& out, const json& v);

// A function call node; the function evaluates (lazily) its own arguments.
class CallNode;
struct FunctionSpec {
  const char* name;
  int min_args;
  int max_args;  // -1: any number
  json (*impl)(const CallNode&, EvalContext&);
  // Compile-time checks and resolution (tables, zones, patterns); throws ExprError.
  void (*check)(CallNode&, const CompileScope&);
  const char* signature;
};
const FunctionSpec* find_function(std::string_view name);
const std::vector<FunctionSpec>& all_functions();

class CallNode : public Expr {
 public:
  json eval(EvalContext& ctx) const override { return spec->impl(*this, ctx); }
  json arg(size_t i, EvalContext& ctx) const { return args[i]->eval(ctx); }
  // The text of the first argument, named in run-time messages.
  std::string_view value_path() const {
    return args.empty() ? std::string_view() : std::string_view(args[0]->text);
  }
  const FunctionSpec* spec = nullptr;
  std::vector<ExprPtr> args;
  std::vector<size_t> arg_offsets;
  // Resolved at compile time by spec->check when arguments are literals.
  const Table* table = nullptr;
  std::shared_ptr<const TimeZone> zone;
  std::string pattern;
  std::string field;
};

}  // namespace relais::mappings::detail

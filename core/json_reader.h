#pragma once
// Reading JSON text that came from outside (inbound bodies, request bodies) or from the store
// (message bodies, mapped payloads) into a document, with the guards a hostile client calls for:
//   - nesting deeper than a limit is refused: the (iterative) parse stops at the first level
//     beyond it, so no deeper document is ever built, and the refusal says the deepest nesting
//     of the whole text, found by one linear pass over the refused text (no recursion; a text
//     refused for another reason is refused first for its depth when it is too deep): later
//     walks over a document (dump, copies, mappings) recurse, so a document of 100,000 levels
//     would exhaust the stack;
//   - an integer that fits in neither int64 nor uint64 keeps its digits as written (a JSON
//     string in the document): as a double, 18446744073709551616123 and
//     18446744073709551616456 would be the same key;
//   - a key given twice in one object is refused: which value counts differs from one parser
//     to the next (the raw body is forwarded to partners);
//   - a NUL byte is refused: nlohmann's lexer takes it for the end of the input, so whatever
//     follows it would be stored and forwarded unseen;
//   - nothing throws: errors come back as a JsonReadError with the byte offset when known.
// Free functions; thread-safe.

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace relais {

// The default `max_depth` (server.max_depth): 64 levels of arrays and objects.
inline constexpr size_t kDefaultJsonMaxDepth = 64;

struct JsonReadError {
  enum class Kind {
    Syntax,        // not JSON (offset known)
    NotNumber,     // a number a double cannot hold (1e999)
    TooDeep,       // nesting beyond the limit (offset of the first bracket beyond it)
    DuplicateKey,  // a key twice in one object (`path` names the object)
  };
  Kind kind = Kind::Syntax;
  std::string detail;       // the reason, in English, without any value of the text
  size_t offset = 0;        // byte offset of the problem (Syntax, TooDeep)
  bool has_offset = false;  // false for NotNumber and DuplicateKey
  size_t depth = 0;         // TooDeep: the deepest nesting found in the whole text
  size_t max_depth = 0;     // TooDeep: the limit
  std::string path;         // DuplicateKey: where, e.g. $.rdv.id
};

// The deepest nesting of arrays and objects in `text`, by one linear pass (strings and their
// escapes skipped, no recursion, no allocation). `over_at` is set to the offset of the first
// '[' or '{' that opens a level deeper than `limit`, or std::string_view::npos. The text need
// not be valid JSON (the parser reports that afterwards).
size_t json_nesting_depth(std::string_view text, size_t limit, size_t& over_at);

// Parses `text` (strict: one value, nothing after it) into `out` with the guards above. False
// with `error` filled when the text is refused; `out` is then unspecified.
bool read_json(std::string_view text, nlohmann::json& out, JsonReadError& error,
               size_t max_depth = kDefaultJsonMaxDepth);

// For a stored text shown or processed again: the document when it reads within the limit,
// else a discarded value (is_discarded()), never a document deeper than `max_depth`. A key
// twice keeps its last value (what an older relais accepted stays readable).
nlohmann::json read_stored_json(std::string_view text, size_t max_depth = kDefaultJsonMaxDepth);

}  // namespace relais

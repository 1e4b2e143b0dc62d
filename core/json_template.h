#pragma once
// Simple JSON paths ("$.rdv.id", "$.items[0].code") and string templates built from them
// ("rdv:{$.rdv.id}"). Used by the core for type and correlation expressions, idempotency paths
// and connector placeholders; the mapping language (mappings/) has its own, richer expressions.

#include <functional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace relais {

// A compiled path into a JSON document. Immutable after parse; thread-safe const use.
class JsonPath {
 public:
  // Parses `text`; on error returns false and sets `error` (with the offending position).
  static bool parse(const std::string& text, JsonPath& out, std::string& error);
  // The value at the path, or nullptr when any step is missing.
  const nlohmann::json* find(const nlohmann::json& doc) const;
  // Stores `value` at the path, creating missing objects; false when a step cannot be taken
  // (an index past the end, or a field of something that is not an object).
  bool set(nlohmann::json& doc, nlohmann::json value) const;
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::vector<std::variant<std::string, size_t>> steps_;
};

// Renders a scalar as text the way templates do: strings as is, numbers and booleans in JSON form.
// Returns false for null, objects and arrays.
bool scalar_text(const nlohmann::json& v, std::string& out);

// A string template: literal text with {path} placeholders, or a bare path ("$.event").
// Immutable after parse; thread-safe const use.
class JsonTemplate {
 public:
  static bool parse(const std::string& text, JsonTemplate& out, std::string& error);
  // Renders against `doc`. A placeholder whose value is missing or not a scalar makes the whole
  // rendering fail: returns false and names the path in `error`. `encode` (optional) transforms
  // each substituted value (e.g. URL-encoding); literal text is copied verbatim.
  bool render(const nlohmann::json& doc, std::string& out, std::string& error,
              const std::function<std::string(const std::string&)>& encode = {}) const;
  bool empty() const { return parts_.empty(); }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::vector<std::variant<std::string, JsonPath>> parts_;
};

}  // namespace relais

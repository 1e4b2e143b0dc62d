#include "core/json_reader.h"

#include <vector>

namespace relais {
namespace {

using json = nlohmann::json;

// True for the text of an integer (-?digits): nlohmann hands such a number to number_float
// only when it fits in neither int64 nor uint64.
bool is_integer_lexeme(const std::string& s) {
  size_t i = s.empty() || s[0] != '-' ? 0 : 1;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}

// Builds the document from nlohmann's SAX events (its parser is iterative): the same document
// as json::parse, except that integers beyond 64 bits keep their digits and duplicate keys stop
// the parse, and so does a value nested deeper than `max_depth` (too_deep() then; the caller
// words the error), so the stack stays small. One per parse.
class DomBuilder {
 public:
  DomBuilder(json& root, JsonReadError& error, bool refuse_duplicates, size_t max_depth)
      : root_(root), error_(error), refuse_duplicates_(refuse_duplicates), max_depth_(max_depth) {}

  bool too_deep() const { return too_deep_; }

  bool null() { return put(nullptr); }
  bool boolean(bool v) { return put(v); }
  bool number_integer(json::number_integer_t v) { return put(v); }
  bool number_unsigned(json::number_unsigned_t v) { return put(v); }
  bool number_float(json::number_float_t v, const json::string_t& lexeme) {
    if (is_integer_lexeme(lexeme)) return put(lexeme);
    return put(v);
  }
  bool string(json::string_t& v) { return put(std::move(v)); }
  bool binary(json::binary_t& v) { return put(std::move(v)); }

  bool start_object(std::size_t) { return open(json::object()); }
  bool start_array(std::size_t) { return open(json::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(json::string_t& k) {
    Level& top = stack_.back();
    // Moved in when new (try_emplace leaves `k` alone when the key is there already).
    auto [it, inserted] = top.value->get_ref<json::object_t&>().try_emplace(std::move(k), nullptr);
    if (!inserted && !refuse_duplicates_) {
      it->second = nullptr;  // the last value counts, as with json::parse
    } else if (!inserted) {
      error_.kind = JsonReadError::Kind::DuplicateKey;
      error_.path = path() + "." + k;
      error_.detail = "the key '" + k + "' appears twice in the object at " + path() +
                      ": which value is meant is ambiguous; send it once";
      return false;
    }
    top.slot = &it->second;
    top.key = &it->first;
    return true;
  }

  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) {
    std::string what = e.what();
    if (e.id == 406) {  // out_of_range: a number a double cannot hold
      error_.kind = JsonReadError::Kind::NotNumber;
      auto pos = what.find("] ");
      error_.detail = pos == std::string::npos ? what : what.substr(pos + 2);
      return false;
    }
    error_.kind = JsonReadError::Kind::Syntax;
    error_.offset = position > 0 ? position - 1 : 0;
    error_.has_offset = true;
    auto pos = what.find("parse error");
    error_.detail = pos == std::string::npos ? what : what.substr(pos);
    return false;
  }

 private:
  struct Level {
    json* value;
    json* slot = nullptr;              // object: the value of the last key
    const std::string* key = nullptr;  // object: the last key, in the object (for error paths)
  };

  json* place(json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    Level& top = stack_.back();
    if (top.value->is_array()) {
      auto& arr = top.value->get_ref<json::array_t&>();
      arr.push_back(std::move(v));
      return &arr.back();
    }
    *top.slot = std::move(v);
    return top.slot;
  }
  bool put(json&& v) {
    place(std::move(v));
    return true;
  }
  bool open(json&& v) {
    if (stack_.size() >= max_depth_) {
      too_deep_ = true;
      return false;
    }
    stack_.push_back(Level{place(std::move(v))});
    return true;
  }
  bool close() {
    stack_.pop_back();
    return true;
  }
  std::string path() const {
    std::string p = "$";
    for (size_t i = 0; i + 1 < stack_.size(); ++i) {
      const Level& l = stack_[i];
      // Appended piece by piece: "[" + std::to_string(…) trips GCC 12's false -Wrestrict at -O3.
      if (l.value->is_array()) {
        p += '[';
        p += std::to_string(l.value->size() - 1);
        p += ']';
      } else {
        p += '.';
        if (l.key != nullptr) p += *l.key;
      }
    }
    return p;
  }

  json& root_;
  JsonReadError& error_;
  std::vector<Level> stack_;
  bool refuse_duplicates_;
  size_t max_depth_;
  bool too_deep_ = false;
};

// A text nested deeper than `max_depth` is refused with the depth and where it goes over,
// before anything else is said of it: true (and `error` filled) when it is. Reads the whole
// text: only run when the text is refused anyway.
bool refused_as_too_deep(std::string_view text, size_t max_depth, JsonReadError& error) {
  size_t over_at = 0;
  size_t deepest = json_nesting_depth(text, max_depth, over_at);
  if (over_at == std::string_view::npos) return false;
  error = JsonReadError{};
  error.kind = JsonReadError::Kind::TooDeep;
  error.offset = over_at;
  error.has_offset = true;
  error.depth = deepest;
  error.max_depth = max_depth;
  error.detail = "the JSON is nested " + std::to_string(deepest) + " levels deep; the limit is " +
                 std::to_string(max_depth) + " (server.max_depth)";
  return true;
}

bool read(std::string_view text, json& out, JsonReadError& error, size_t max_depth,
          bool refuse_duplicates) {
  // nlohmann's lexer takes a NUL byte for the end of the input: "{...}\0anything" would pass,
  // with the bytes after it stored and forwarded. JSON text never holds one (\u0000 in strings).
  if (size_t nul = text.find('\0'); nul != std::string_view::npos) {
    if (refused_as_too_deep(text, max_depth, error)) return false;
    error.kind = JsonReadError::Kind::Syntax;
    error.offset = nul;
    error.has_offset = true;
    error.detail = "a NUL byte at offset ";
    error.detail += std::to_string(nul);
    error.detail += ": JSON text never contains one (in a string, write \\u0000)";
    return false;
  }
  out = json();
  DomBuilder builder(out, error, refuse_duplicates, max_depth);
  // Never throws: errors go to builder.parse_error (strict: nothing may follow the value). The
  // depth is bounded while parsing; a text refused for any reason is refused first for its
  // depth when it is too deep anywhere (the pre-scan, on refused texts only).
  if (json::sax_parse(text.begin(), text.end(), &builder)) return true;
  out = json();
  if (refused_as_too_deep(text, max_depth, error)) return false;
  if (builder.too_deep()) {  // the scan and the parser disagree: never expected, still refused
    error = JsonReadError{};
    error.kind = JsonReadError::Kind::TooDeep;
    error.depth = max_depth + 1;
    error.max_depth = max_depth;
    error.detail = "the JSON is nested deeper than the limit " + std::to_string(max_depth) +
                   " (server.max_depth)";
  }
  return false;
}

}  // namespace

size_t json_nesting_depth(std::string_view text, size_t limit, size_t& over_at) {
  over_at = std::string_view::npos;
  size_t depth = 0, deepest = 0;
  const size_t n = text.size();
  for (size_t i = 0; i < n; ++i) {
    char c = text[i];
    if (c == '"') {
      for (++i; i < n && text[i] != '"'; ++i) {
        if (text[i] == '\\') ++i;  // the escaped character is skipped
      }
    } else if (c == '[' || c == '{') {
      ++depth;
      if (depth > deepest) deepest = depth;
      if (depth > limit && over_at == std::string_view::npos) over_at = i;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

bool read_json(std::string_view text, json& out, JsonReadError& error, size_t max_depth) {
  return read(text, out, error, max_depth, true);
}

json read_stored_json(std::string_view text, size_t max_depth) {
  json out;
  JsonReadError error;
  if (!read(text, out, error, max_depth, false)) return json(json::value_t::discarded);
  return out;
}

}  // namespace relais

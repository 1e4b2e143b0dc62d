#include "core/config_spec.h"
#include "core/files.h"

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace relais {

std::string ConfigError::to_string() const {
  std::string out = file.empty() ? "<config>" : file;
  if (line > 0) {
    out += ':';
    out += std::to_string(line);
    out += ':';
    out += std::to_string(column);
  }
  out += ": ";
  if (!key.empty()) {
    out += key;
    out += ": ";
  }
  out += message;
  return out;
}

const char* to_string(FieldType t) {
  switch (t) {
    case FieldType::String:
      return "string";
    case FieldType::Secret:
      return "secret";
    case FieldType::Int:
      return "integer";
    case FieldType::Float:
      return "number";
    case FieldType::Bool:
      return "boolean";
    case FieldType::Duration:
      return "duration";
    case FieldType::Size:
      return "size";
    case FieldType::StringList:
      return "list of strings";
    case FieldType::StringMap:
      return "map of strings";
    case FieldType::Object:
      return "object";
    case FieldType::ObjectList:
      return "list of objects";
    case FieldType::ObjectMap:
      return "map of objects";
    case FieldType::Any:
      return "any";
  }
  return "?";
}

std::vector<FieldSpec> join_fields(std::initializer_list<std::vector<FieldSpec>> parts) {
  std::vector<FieldSpec> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

const FieldSpec* ConfigSpec::find(const std::string& key) const {
  for (const auto& f : fields) {
    if (f.key == key) return &f;
  }
  return nullptr;
}

bool parse_duration_ms(const std::string& text, int64_t& out) {
  if (text.empty()) return false;
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  if (i == 0) return false;
  double v = std::strtod(text.substr(0, i).c_str(), nullptr);
  std::string unit = text.substr(i);
  double mult;
  if (unit.empty() || unit == "s") {
    mult = 1000;
  } else if (unit == "ms") {
    mult = 1;
  } else if (unit == "m" || unit == "min") {
    mult = 60000;
  } else if (unit == "h") {
    mult = 3600000;
  } else if (unit == "d") {
    mult = 86400000;
  } else {
    return false;
  }
  if (!(v * mult < 9.2e18)) return false;  // beyond int64 milliseconds (and the cast's UB)
  out = static_cast<int64_t>(v * mult);
  return true;
}

bool parse_size(const std::string& text, int64_t& out) {
  if (text.empty()) return false;
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0 || i > 18) return false;  // more digits would overflow (std::stoll throws)
  int64_t v = std::stoll(text.substr(0, i));
  std::string unit = text.substr(i);
  int64_t mult;
  if (unit.empty() || unit == "B") {
    mult = 1;
  } else if (unit == "KiB" || unit == "KB" || unit == "k") {
    mult = 1024;
  } else if (unit == "MiB" || unit == "MB" || unit == "M") {
    mult = 1024 * 1024;
  } else if (unit == "GiB" || unit == "GB" || unit == "G") {
    mult = 1024LL * 1024 * 1024;
  } else {
    return false;
  }
  if (v > INT64_MAX / mult) return false;
  out = v * mult;
  return true;
}

ConfigError error_at(const YAML::Node& node, const std::string& file, const std::string& key,
                     const std::string& message) {
  ConfigError e;
  e.file = file;
  e.key = key;
  e.message = message;
  if (node.IsDefined()) {
    auto m = node.Mark();
    if (m.line >= 0) {
      e.line = m.line + 1;
      e.column = m.column + 1;
    }
  }
  return e;
}

namespace {

std::string join_path(const std::string& a, const std::string& b) {
  return a.empty() ? b : a + "." + b;
}

bool check_scalar(const YAML::Node& v, const FieldSpec& f, const std::string& key,
                  const std::string& file, std::vector<ConfigError>& errors) {
  if (!v.IsScalar()) {
    errors.push_back(error_at(v, file, key, std::string("expected a ") + to_string(f.type)));
    return false;
  }
  const std::string& s = v.Scalar();
  bool bounded = f.max > f.min;
  auto out_of_bounds = [&](double x) {
    if (bounded && (x < f.min || x > f.max)) {
      std::ostringstream m;
      m << "value " << s << " is out of range [" << f.min << ", " << f.max << "]";
      errors.push_back(error_at(v, file, key, m.str()));
      return true;
    }
    return false;
  };
  switch (f.type) {
    case FieldType::String:
    case FieldType::Secret:
      if (!f.choices.empty()) {
        bool ok = false;
        std::string list;
        for (const auto& c : f.choices) {
          ok = ok || c == s;
          list += (list.empty() ? "" : ", ") + c;
        }
        if (!ok) {
          errors.push_back(error_at(v, file, key, "'" + s + "' is not one of: " + list));
          return false;
        }
      }
      return true;
    case FieldType::Int: {
      char* end = nullptr;
      long long x = std::strtoll(s.c_str(), &end, 10);
      if (s.empty() || *end != '\0') {
        errors.push_back(error_at(v, file, key, "expected an integer, got '" + s + "'"));
        return false;
      }
      return !out_of_bounds(static_cast<double>(x));
    }
    case FieldType::Float: {
      char* end = nullptr;
      double x = std::strtod(s.c_str(), &end);
      if (s.empty() || *end != '\0') {
        errors.push_back(error_at(v, file, key, "expected a number, got '" + s + "'"));
        return false;
      }
      return !out_of_bounds(x);
    }
    case FieldType::Bool:
      if (s != "true" && s != "false" && s != "yes" && s != "no") {
        errors.push_back(error_at(v, file, key, "expected true or false, got '" + s + "'"));
        return false;
      }
      return true;
    case FieldType::Duration: {
      int64_t ms = 0;
      if (!parse_duration_ms(s, ms)) {
        errors.push_back(error_at(
            v, file, key, "expected a duration like 500ms, 10s, 5m, 2h or 1d, got '" + s + "'"));
        return false;
      }
      return !out_of_bounds(static_cast<double>(ms));
    }
    case FieldType::Size: {
      int64_t n = 0;
      if (!parse_size(s, n)) {
        errors.push_back(
            error_at(v, file, key, "expected a size like 512, 64KiB or 1MiB, got '" + s + "'"));
        return false;
      }
      return !out_of_bounds(static_cast<double>(n));
    }
    default:
      return true;
  }
}

}  // namespace

bool validate(const YAML::Node& node, const std::vector<const ConfigSpec*>& specs,
              const std::string& path, const std::string& file, std::vector<ConfigError>& errors) {
  size_t before = errors.size();
  if (!node.IsMap()) {
    if (node.IsNull() || !node.IsDefined()) {
      // an empty section: only required keys can fail below
    } else {
      errors.push_back(error_at(node, file, path, "expected a mapping of keys"));
      return false;
    }
  }
  auto lookup = [&](const std::string& key) -> const FieldSpec* {
    for (const auto* s : specs) {
      if (const auto* f = s->find(key)) return f;
    }
    return nullptr;
  };
  if (node.IsMap()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      std::string key = it->first.as<std::string>();
      std::string full = join_path(path, key);
      const FieldSpec* f = lookup(key);
      if (f == nullptr) {
        std::string known;
        for (const auto* s : specs) {
          for (const auto& fs : s->fields) known += (known.empty() ? "" : ", ") + fs.key;
        }
        errors.push_back(
            error_at(it->first, file, full, "unknown key (known keys: " + known + ")"));
        continue;
      }
      // A copy (a handle): it->second lives in a temporary behind the iterator's operator->.
      const YAML::Node v = it->second;
      switch (f->type) {
        case FieldType::StringList:
          if (!v.IsSequence()) {
            errors.push_back(error_at(v, file, full, "expected a list of strings"));
          } else {
            for (const auto& item : v) {
              if (!item.IsScalar())
                errors.push_back(error_at(item, file, full, "expected a string"));
            }
          }
          break;
        case FieldType::StringMap:
          if (!v.IsMap()) {
            errors.push_back(error_at(v, file, full, "expected a mapping of names to strings"));
          } else {
            for (auto kv = v.begin(); kv != v.end(); ++kv) {
              if (!kv->second.IsScalar()) {
                errors.push_back(error_at(kv->second, file,
                                          join_path(full, kv->first.as<std::string>()),
                                          "expected a string"));
              }
            }
          }
          break;
        case FieldType::Object:
          validate(v, {f->nested}, full, file, errors);
          break;
        case FieldType::ObjectList:
          if (!v.IsSequence()) {
            errors.push_back(error_at(v, file, full, "expected a list"));
          } else {
            size_t i = 0;
            for (const auto& item : v) {
              validate(item, {f->nested}, full + "[" + std::to_string(i++) + "]", file, errors);
            }
          }
          break;
        case FieldType::ObjectMap:
          if (!v.IsMap()) {
            errors.push_back(error_at(v, file, full, "expected a mapping of names"));
          } else {
            for (auto kv = v.begin(); kv != v.end(); ++kv) {
              validate(kv->second, {f->nested}, join_path(full, kv->first.as<std::string>()), file,
                       errors);
            }
          }
          break;
        case FieldType::Any:
          break;
        default:
          check_scalar(v, *f, full, file, errors);
      }
    }
  }
  for (const auto* s : specs) {
    for (const auto& f : s->fields) {
      if (f.required && (!node.IsMap() || !node[f.key])) {
        errors.push_back(error_at(node, file, join_path(path, f.key),
                                  "required key is missing (" + f.description + ")"));
      }
    }
  }
  return errors.size() == before;
}

void expand_references(YAML::Node node, const std::string& file, const std::string& path,
                       std::vector<ConfigError>& errors, std::vector<std::string>& notices,
                       const std::string& base_dir) {
  if (node.IsMap()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      expand_references(it->second, file, join_path(path, it->first.as<std::string>()), errors,
                        notices, base_dir);
    }
    return;
  }
  if (node.IsSequence()) {
    size_t i = 0;
    for (auto item : node) {
      expand_references(item, file, path + "[" + std::to_string(i++) + "]", errors, notices,
                        base_dir);
    }
    return;
  }
  if (!node.IsScalar()) return;
  const std::string s = node.Scalar();
  if (s.rfind("@file:", 0) == 0) {
    std::string p = s.substr(6);
    if (!p.empty() && p[0] != '/') p = base_dir + "/" + p;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(p, ec)) {
      errors.push_back(error_at(node, file, path, "@file: " + p + " is not a readable file"));
      return;
    }
    if (std::filesystem::file_size(p, ec) > (1u << 20)) {
      errors.push_back(error_at(node, file, path, "@file: " + p + " is larger than 1 MiB"));
      return;
    }
    std::string content;
    if (!read_text_file(p, content)) {
      errors.push_back(error_at(node, file, path, "cannot read the file named by @file: " + p));
      return;
    }
    while (!content.empty() && (content.back() == '\n' || content.back() == '\r')) {
      content.pop_back();
    }
    node = content;
    return;
  }
  if (s.find("${") == std::string::npos) return;
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '{') {
      size_t close = s.find('}', i);
      if (close == std::string::npos) {
        errors.push_back(error_at(node, file, path, "unclosed ${ in '" + s + "'"));
        return;
      }
      std::string inner = s.substr(i + 2, close - i - 2);
      std::string name = inner, fallback;
      bool has_default = false;
      if (auto p = inner.find(":-"); p != std::string::npos) {
        name = inner.substr(0, p);
        fallback = inner.substr(p + 2);
        has_default = true;
      }
      const char* env = std::getenv(name.c_str());
      if (env != nullptr && *env != '\0') {
        out += env;
      } else if (has_default) {
        out += fallback;
        notices.push_back(name + " is not set: " + path + " uses the default" +
                          (path.find("token") != std::string::npos ||
                                   path.find("password") != std::string::npos ||
                                   path.find("secret") != std::string::npos
                               ? std::string(" (not shown)")
                               : " " + fallback));
      } else {
        errors.push_back(error_at(node, file, path,
                                  "environment variable " + name + " is not set (and no default)"));
        return;
      }
      i = close;
    } else {
      out += s[i];
    }
  }
  node = out;
}

const FieldSpec* ConfigView::field(const std::string& key) const {
  for (const auto* s : specs_) {
    if (const auto* f = s->find(key)) return f;
  }
  return nullptr;
}

bool ConfigView::has(const std::string& key) const {
  return node_.IsMap() && node_[key].IsDefined() && !node_[key].IsNull();
}

std::string ConfigView::text_or_default(const std::string& key) const {
  if (has(key) && node_[key].IsScalar()) return node_[key].Scalar();
  const FieldSpec* f = field(key);
  if (f == nullptr) throw std::logic_error("config key not declared: " + path_ + "." + key);
  return f->default_value;
}

std::string ConfigView::str(const std::string& key) const {
  return text_or_default(key);
}

// Never throws: a value that validate() refused reads as 0 (its error is already reported).
int64_t ConfigView::integer(const std::string& key) const {
  std::string t = text_or_default(key);
  return std::strtoll(t.c_str(), nullptr, 10);
}

double ConfigView::number(const std::string& key) const {
  std::string t = text_or_default(key);
  return std::strtod(t.c_str(), nullptr);
}

bool ConfigView::boolean(const std::string& key) const {
  std::string t = text_or_default(key);
  return t == "true" || t == "yes";
}

int64_t ConfigView::duration_ms(const std::string& key) const {
  int64_t v = 0;
  parse_duration_ms(text_or_default(key), v);
  return v;
}

int64_t ConfigView::size(const std::string& key) const {
  int64_t v = 0;
  parse_size(text_or_default(key), v);
  return v;
}

std::vector<std::string> ConfigView::strings(const std::string& key) const {
  std::vector<std::string> out;
  if (has(key)) {
    for (const auto& item : node_[key]) out.push_back(item.Scalar());
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> ConfigView::string_map(
    const std::string& key) const {
  std::vector<std::pair<std::string, std::string>> out;
  if (has(key)) {
    for (auto it = node_[key].begin(); it != node_[key].end(); ++it) {
      out.emplace_back(it->first.as<std::string>(), it->second.Scalar());
    }
  }
  return out;
}

ConfigView ConfigView::object(const std::string& key) const {
  const FieldSpec* f = field(key);
  YAML::Node n = has(key) ? node_[key] : YAML::Node(YAML::NodeType::Map);
  return ConfigView(n, {f ? f->nested : nullptr}, join_path(path_, key));
}

std::vector<ConfigView> ConfigView::objects(const std::string& key) const {
  std::vector<ConfigView> out;
  const FieldSpec* f = field(key);
  if (has(key)) {
    size_t i = 0;
    for (const auto& item : node_[key]) {
      out.emplace_back(item, std::vector<const ConfigSpec*>{f ? f->nested : nullptr},
                       join_path(path_, key) + "[" + std::to_string(i++) + "]");
    }
  }
  return out;
}

std::vector<std::pair<std::string, ConfigView>> ConfigView::object_map(
    const std::string& key) const {
  std::vector<std::pair<std::string, ConfigView>> out;
  const FieldSpec* f = field(key);
  if (has(key)) {
    for (auto it = node_[key].begin(); it != node_[key].end(); ++it) {
      std::string name = it->first.as<std::string>();
      out.emplace_back(name, ConfigView(it->second, {f ? f->nested : nullptr},
                                        join_path(join_path(path_, key), name)));
    }
  }
  return out;
}

}  // namespace relais

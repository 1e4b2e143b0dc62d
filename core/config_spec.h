#pragma once
// Configuration declared as data. Every configurable thing (the hub, each connector) publishes a
// ConfigSpec: its keys with type, default, whether required, and a description. YAML is
// validated against it (unknown keys are errors; every error carries file, line, column and
// key), docs can be generated from it, and a ConfigView reads validated values with defaults.

#include <cstdint>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace relais {

struct ConfigError {
  std::string file;
  int line = 0;     // 1-based; 0 when unknown
  int column = 0;   // 1-based
  std::string key;  // dotted path, e.g. "connectors.sandbox.url"
  std::string message;
  std::string to_string() const;
};

enum class FieldType {
  String,
  Secret,  // a string that may be given as ${ENV} or @file:PATH; never printed
  Int,
  Float,
  Bool,
  Duration,  // "500ms", "10s", "5m", "2h", "1d" or a number of seconds
  Size,      // "512", "64KiB", "1MiB", "1GiB"
  StringList,
  StringMap,   // string → string
  Object,      // nested spec
  ObjectList,  // list of nested spec
  ObjectMap,   // name → nested spec
  Any,         // validated by its owner (e.g. route predicates)
};
const char* to_string(FieldType t);

struct ConfigSpec;

// One key of a spec. Plain value.
struct FieldSpec {
  std::string key;
  FieldType type = FieldType::String;
  std::string default_value;  // textual default ("" = none)
  bool required = false;
  std::string description;
  std::vector<std::string> choices;    // for String: allowed values (empty = any)
  const ConfigSpec* nested = nullptr;  // Object / ObjectList / ObjectMap
  double min = 0, max = 0;             // Int / Float / Duration(ms) / Size: bounds when max > min
};

// A set of keys. Specs are static data owned by whoever declares them.
struct ConfigSpec {
  std::string name;
  std::vector<FieldSpec> fields;
  const FieldSpec* find(const std::string& key) const;
};

// The fields of several lists, in order: a spec made of its own keys and shared ones (e.g. the
// transfer options of every libcurl client, connectors/http/curl_capture.h).
std::vector<FieldSpec> join_fields(std::initializer_list<std::vector<FieldSpec>> parts);

// Parses "10s" etc.; false on bad syntax.
bool parse_duration_ms(const std::string& text, int64_t& out);
bool parse_size(const std::string& text, int64_t& out);

// Validates `node` against the specs (several specs may share one mapping node, e.g. the generic
// destination keys plus the connector's own). Appends errors; returns true when none were added.
bool validate(const YAML::Node& node, const std::vector<const ConfigSpec*>& specs,
              const std::string& path, const std::string& file, std::vector<ConfigError>& errors);

// Replaces ${VAR}, ${VAR:-default} and @file:PATH references in every scalar, in place.
// Missing variables without default are errors; notices list the defaults used.
void expand_references(YAML::Node node, const std::string& file, const std::string& path,
                       std::vector<ConfigError>& errors, std::vector<std::string>& notices,
                       const std::string& base_dir);

ConfigError error_at(const YAML::Node& node, const std::string& file, const std::string& key,
                     const std::string& message);

// Reads a validated node with the spec's defaults. Cheap to copy; not thread-safe to mutate.
class ConfigView {
 public:
  ConfigView() = default;
  ConfigView(YAML::Node node, std::vector<const ConfigSpec*> specs, std::string path)
      : node_(std::move(node)), specs_(std::move(specs)), path_(std::move(path)) {}

  bool has(const std::string& key) const;
  std::string str(const std::string& key) const;
  int64_t integer(const std::string& key) const;
  double number(const std::string& key) const;
  bool boolean(const std::string& key) const;
  int64_t duration_ms(const std::string& key) const;
  int64_t size(const std::string& key) const;
  std::vector<std::string> strings(const std::string& key) const;
  std::vector<std::pair<std::string, std::string>> string_map(const std::string& key) const;
  ConfigView object(const std::string& key) const;
  std::vector<ConfigView> objects(const std::string& key) const;
  std::vector<std::pair<std::string, ConfigView>> object_map(const std::string& key) const;
  YAML::Node raw(const std::string& key) const { return node_[key]; }
  const YAML::Node& node() const { return node_; }
  const std::string& path() const { return path_; }

 private:
  const FieldSpec* field(const std::string& key) const;
  std::string text_or_default(const std::string& key) const;
  YAML::Node node_;
  std::vector<const ConfigSpec*> specs_;
  std::string path_;
};

}  // namespace relais

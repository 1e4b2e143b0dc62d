#include "mappings/yaml_json.h"

#include <charconv>
#include <cstdlib>

namespace relais::mappings {

namespace {
nlohmann::json scalar_to_json(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (!is_plain_scalar(n)) return s;
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  const char* b = s.data();
  const char* e = s.data() + s.size();
  if (*b == '+') ++b;
  int64_t i = 0;
  auto r = std::from_chars(b, e, i);
  if (r.ec == std::errc() && r.ptr == e && b != e) return i;
  bool numeric = b != e && (std::isdigit(static_cast<unsigned char>(*b)) || *b == '-' || *b == '.');
  if (numeric) {
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (end && *end == '\0' && s.find_first_of("0123456789") != std::string::npos &&
        s.find_first_of("xXnNiI") == std::string::npos)
      return d;
  }
  return s;
}
}  // namespace

nlohmann::json yaml_to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      return scalar_to_json(node);
    case YAML::NodeType::Sequence: {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& el : node) a.push_back(yaml_to_json(el));
      return a;
    }
    case YAML::NodeType::Map: {
      nlohmann::json o = nlohmann::json::object();
      for (const auto& kv : node) o[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return o;
    }
  }
  return nullptr;
}

}  // namespace relais::mappings

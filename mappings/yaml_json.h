// Conversion of yaml-cpp nodes to nlohmann::json (plain scalars typed as YAML 1.2 core
// schema: null, booleans, integers, floats; quoted scalars stay text). Thread-safe.
#pragma once

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

namespace relais::mappings {

nlohmann::json yaml_to_json(const YAML::Node& node);
// True when the scalar was written without quotes (yaml-cpp tag "?").
inline bool is_plain_scalar(const YAML::Node& n) {
  return n.Tag() == "?" || n.Tag().empty();
}

}  // namespace relais::mappings

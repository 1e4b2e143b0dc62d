#pragma once
// A hub for tests that need a connector of their own: the kind registered under a name, the
// configuration loaded from YAML text. Not thread-safe; used by one test at a time.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "connectors/registry.h"
#include "core/config_spec.h"
#include "routing/hub_config.h"

namespace relais::testing {

// Registers the connector kind `name` (no settings of its own), made by `create`.
inline void add_test_connector(
    Registries& registries, const std::string& name,
    std::function<std::unique_ptr<Connector>(const ConnectorContext&)> create) {
  static const ConfigSpec kNoSettings{"test connector", {}};
  ConnectorKind k;
  k.name = name;
  k.description = "test connector";
  k.spec = &kNoSettings;
  k.create = std::move(create);
  registries.connectors.add(std::move(k));
}

// Loads `yaml` (paths relative to `dir`) into `cfg`; the first error's text in `error`.
inline bool load_test_hub_config(const std::string& yaml, const std::string& dir,
                                 const Registries& registries, HubConfig& cfg, std::string& error) {
  std::vector<ConfigError> errors;
  if (load_hub_config_text(yaml, "t.yaml", dir, registries.connectors, cfg, errors)) return true;
  error = errors.empty() ? "not loaded" : errors.front().to_string();
  return false;
}

}  // namespace relais::testing

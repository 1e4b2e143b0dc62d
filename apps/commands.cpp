#include "apps/commands.h"

#include <cstring>
#include <iostream>

#include "connectors/registry.h"
#include "core/clock.h"

namespace relais {
namespace {

bool wants_help(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) return true;
  }
  return false;
}

int check_config(int argc, char** argv) {
  if (wants_help(argc, argv) || argc != 2) {
    (argc == 2 ? std::cout : std::cerr)
        << "usage: relais check-config FILE\n\n"
           "Validates FILE (YAML) without starting anything: unknown keys, wrong types, missing "
           "required keys, unknown sources, destinations, connectors and mappings, unset "
           "environment variables. Prints every error as FILE:LINE:COLUMN: KEY: MESSAGE and "
           "exits 1 when there is any, 0 when the configuration is valid.\n";
    return argc == 2 ? 0 : 64;
  }
  ConnectorRegistry registry;
  register_builtin_connectors(registry);
  HubConfig cfg;
  std::vector<ConfigError> errors;
  bool ok = load_hub_config(argv[1], registry, cfg, errors);
  if (ok) ok = check_mappings(cfg, errors);
  for (const auto& n : cfg.notices) std::cout << "note: " << n << "\n";
  if (!ok) {
    for (const auto& e : errors) std::cout << e.to_string() << "\n";
    std::cout << errors.size() << " error(s) in " << argv[1] << "\n";
    return 1;
  }
  std::cout << argv[1] << ": valid (" << cfg.sources.size() << " source(s), "
            << cfg.destinations.size() << " destination(s), " << cfg.routes.size()
            << " route(s))\n";
  return 0;
}

}  // namespace

bool check_mappings(const HubConfig& config, std::vector<ConfigError>& errors) {
  size_t before = errors.size();
  for (const auto& route : config.routes) {
    for (const auto& t : route.to) {
      if (t.mapping.empty()) continue;
      errors.push_back(ConfigError{config.file, 0, 0, "routes." + route.name,
                                   "mapping '" + t.mapping + "' is not available"});
    }
  }
  return errors.size() == before;
}

std::string extra_commands_usage() { return ""; }

int run_command(const std::string& cmd, int argc, char** argv) {
  if (cmd == "check-config") return check_config(argc, argv);
  return -1;
}

std::unique_ptr<Hub> make_hub(const HubConfig& config, const ConnectorRegistry& registry) {
  return std::make_unique<Hub>(config, registry, SystemClock::instance(), nullptr);
}

}  // namespace relais

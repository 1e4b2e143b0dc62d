#pragma once
// The relais sub-commands other than serve, and the factory that builds a Hub with everything
// it needs (used by serve and by the commands).

#include <memory>
#include <string>

#include "core/connector.h"
#include "routing/hub.h"

namespace relais {

// Runs `relais CMD ...` (argv[0] is the command). Returns -1 for an unknown command.
int run_command(const std::string& cmd, int argc, char** argv);
std::string extra_commands_usage();
// Checks that every mapping a route names can be loaded and compiles. Appends errors.
bool check_mappings(const HubConfig& config, std::vector<ConfigError>& errors);
// Builds the hub for a validated configuration (loads mappings when configured). Throws.
std::unique_ptr<Hub> make_hub(const HubConfig& config, const ConnectorRegistry& registry);

}  // namespace relais

// Fuzz target: the configuration loader (YAML parsing, reference expansion, validation,
// predicates, connector and enricher checks). Any text must give errors, never a crash.

#include "connectors/registry.h"
#include "routing/hub_config.h"
#include "tests/fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const relais::Registries registries;
  std::string text(reinterpret_cast<const char*>(data), size);
  relais::HubConfig cfg;
  std::vector<relais::ConfigError> errors;
  relais::load_hub_config_text(text, "fuzz.yaml", "/nonexistent", registries.connectors, cfg,
                               errors, &registries.enrichers);
  for (const auto& e : errors) (void)e.to_string();
  return 0;
}

#pragma once
// Explicit registration of every built-in connector kind. The one place that names them.

#include "core/connector.h"
#include "core/enricher.h"

namespace relais {

void register_builtin_connectors(ConnectorRegistry& registry);
void register_builtin_enrichers(EnricherRegistry& registry);

// Both registries, filled with every built-in kind.
struct Registries {
  ConnectorRegistry connectors;
  EnricherRegistry enrichers;
  Registries() {
    register_builtin_connectors(connectors);
    register_builtin_enrichers(enrichers);
  }
};

}  // namespace relais

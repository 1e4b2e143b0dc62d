#pragma once
// Explicit registration of every built-in connector kind. The one place that names them.

#include "core/connector.h"
#include "core/enricher.h"
#include "core/poller.h"

namespace relais {

void register_builtin_connectors(ConnectorRegistry& registry);
void register_builtin_enrichers(EnricherRegistry& registry);
void register_builtin_pollers(PollerRegistry& registry);

// Every registry, filled with every built-in kind.
struct Registries {
  ConnectorRegistry connectors;
  EnricherRegistry enrichers;
  PollerRegistry pollers;
  Registries() {
    register_builtin_connectors(connectors);
    register_builtin_enrichers(enrichers);
    register_builtin_pollers(pollers);
  }
};

}  // namespace relais

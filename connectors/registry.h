#pragma once
// Explicit registration of every built-in connector kind. The one place that names them.

#include "core/connector.h"

namespace relais {

void register_builtin_connectors(ConnectorRegistry& registry);

}  // namespace relais

#pragma once
// The `alerts:` section of the hub configuration, declared as data (validated with the rest of
// the configuration; the rules are evaluated by AlertMonitor in api/alerts.h).

#include "core/config_spec.h"

namespace relais {

const ConfigSpec& alerts_spec();

}  // namespace relais

#pragma once
// The `booking:` section of the hub configuration (the portal's online booking of
// appointments), declared as data and validated with the rest of the configuration; read by
// connectors/booking/booking.h at start-up. See docs/booking.md.

#include "core/config_spec.h"

namespace relais {

const ConfigSpec& booking_spec();

}  // namespace relais

#pragma once
// The SMS destination ("sms" connector kind): Kannel, OVH or generic HTTP drivers, numbers
// through libphonenumber, segments and cost per SMS, the sending window, reminders as
// deferred deliveries, the opt-out list, delivery reports and replies (see
// docs/connectors/sms.md).

#include "core/connector.h"

namespace relais {

// Registers the "sms" connector kind.
void register_sms_connector(ConnectorRegistry& registry);

}  // namespace relais

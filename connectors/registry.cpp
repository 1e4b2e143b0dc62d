#include "connectors/registry.h"

#include "connectors/ban/ban.h"
#include "connectors/booking/booking.h"
#include "connectors/calendar/calendar.h"
#include "connectors/capdemat/capdemat.h"
#include "connectors/database/database_poller.h"
#include "connectors/demarches/demarches.h"
#include "connectors/file/file_destination.h"
#include "connectors/file/folder_poller.h"
#include "connectors/genesis/genesis.h"
#include "connectors/http/http_connector.h"
#include "connectors/sms/sms_connector.h"

namespace relais {

void register_builtin_connectors(ConnectorRegistry& registry) {
  register_http_connector(registry);
  register_sms_connector(registry);
  register_calendar_connector(registry);
  register_file_destination(registry);
  register_genesis_connector(registry);
  register_demarches_connector(registry);
  register_capdemat_connector(registry);
  booking::register_booking_connector(registry);
}

void register_builtin_enrichers(EnricherRegistry& registry) {
  register_ban_enricher(registry);
}

void register_builtin_pollers(PollerRegistry& registry) {
  register_folder_poller(registry);
  register_database_poller(registry);
  register_demarches_poller(registry);
  register_capdemat_poller(registry);
}

}  // namespace relais

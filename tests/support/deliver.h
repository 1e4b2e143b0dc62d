#pragma once
// Delivers one message straight to a connector the way the dispatcher does (the body, the
// mapping's output as the mapped document and as the JSON payload), for the connectors' unit
// tests. Stateless; header-only.

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "core/connector.h"

namespace relais::testing {

inline Outcome deliver_mapped(Connector& connector, const Message& m, const nlohmann::json& body,
                              const nlohmann::json& mapped, int64_t delivery_id, int attempt = 1,
                              int slot = 0) {
  std::string payload = mapped.dump();
  DeliveryRequest r;
  r.delivery_id = delivery_id;
  r.message = &m;
  r.body = &body;
  r.mapped = &mapped;
  r.payload = &payload;
  r.content_type = "application/json";
  r.attempt = attempt;
  r.slot = slot;
  return connector.deliver(r);
}

}  // namespace relais::testing

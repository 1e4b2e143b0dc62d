#include "core/message.h"

#include "core/status.h"

namespace relais {

const char* to_string(Outcome::Kind k) {
  switch (k) {
    case Outcome::Kind::Delivered:
      return "delivered";
    case Outcome::Kind::Retry:
      return "retry";
    case Outcome::Kind::Reject:
      return "reject";
    case Outcome::Kind::Skip:
      return "skip";
    case Outcome::Kind::Defer:
      return "defer";
    case Outcome::Kind::Throttle:
      return "throttled";
  }
  return "?";
}

const char* to_string(DeliveryState s) {
  switch (s) {
    case DeliveryState::Pending:
      return "pending";
    case DeliveryState::InFlight:
      return "in_flight";
    case DeliveryState::Delivered:
      return "delivered";
    case DeliveryState::Retrying:
      return "retrying";
    case DeliveryState::Dead:
      return "dead";
    case DeliveryState::Discarded:
      return "discarded";
    case DeliveryState::Skipped:
      return "skipped";
  }
  return "?";
}

std::optional<DeliveryState> delivery_state_from(const std::string& s) {
  for (auto st : {DeliveryState::Pending, DeliveryState::InFlight, DeliveryState::Delivered,
                  DeliveryState::Retrying, DeliveryState::Dead, DeliveryState::Discarded,
                  DeliveryState::Skipped}) {
    if (s == to_string(st)) return st;
  }
  return std::nullopt;
}

}  // namespace relais

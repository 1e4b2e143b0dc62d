#pragma once
// The message model: what was received, and per destination what happened to it.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.h"

namespace relais {

// A received message. Immutable once committed; shared read-only between threads.
struct Message {
  int64_t seq = 0;                             // store-assigned commit order (0 before commit)
  std::string id;                              // time-ordered unique id (ULID)
  std::string source;                          // configured source name
  std::string type;                            // e.g. "rdv.planned"
  std::string correlation;                     // e.g. "rdv:91877"; "" when the source defines none
  std::string idempotency;                     // dedup key; "" when none
  std::map<std::string, std::string> headers;  // the inbound headers kept (allow-listed)
  std::string body;                            // the JSON body as received (UTF-8 text)
  Millis received_at = 0;
  std::shared_ptr<const nlohmann::json> doc;  // the parsed body (set at accept or load)
  // Read from the store: why the stored body could not be decrypted ("" = it could; otherwise
  // `body` is a placeholder for the console and the message must not be delivered).
  std::string unreadable;
};
using MessagePtr = std::shared_ptr<const Message>;

enum class DeliveryState {
  Pending,    // waiting for its turn or its not-before time
  InFlight,   // a connector is working on it now (runtime only; stored as pending)
  Delivered,  // the destination accepted it
  Retrying,   // failed transiently; next attempt scheduled
  Dead,       // gave up (rejected or out of attempts); waits for a person
  Discarded,  // a person decided it is not to be delivered
  Skipped,    // the mapping decided it is not wanted (e.g. no consent)
};
const char* to_string(DeliveryState s);
std::optional<DeliveryState> delivery_state_from(const std::string& s);
inline bool is_active(DeliveryState s) {
  return s == DeliveryState::Pending || s == DeliveryState::Retrying ||
         s == DeliveryState::InFlight;
}

// One attempt at delivering, for the history.
struct Attempt {
  Millis at = 0;
  int64_t duration_ms = 0;
  std::string outcome;  // delivered | retry | reject | skip
  std::string error_class;
  int code = 0;
  std::string text;
  std::string excerpt;  // bounded
};

// A message's delivery to one destination. Plain value.
struct Delivery {
  int64_t id = 0;
  int64_t message_seq = 0;
  std::string message_id;
  std::string destination;
  std::string route;
  std::string mapping;  // mapping name ("" = body passes through)
  int64_t mapping_version = 0;
  DeliveryState state = DeliveryState::Pending;
  int attempts = 0;
  Millis next_attempt_at = 0;
  Millis not_before = 0;
  Millis updated_at = 0;
  std::string last_outcome;  // delivered | retry | reject | skip | "" before any attempt
  std::string last_class;
  int last_code = 0;
  std::string last_text;
  std::string external_ref;
  std::optional<std::string> payload;  // the payload after mapping (none = the body as is)
  std::vector<std::string> flags;      // quality flags (e.g. "ban: adresse à vérifier")
  std::vector<Attempt> history;        // filled only by detail queries
};

}  // namespace relais

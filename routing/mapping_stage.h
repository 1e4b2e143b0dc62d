#pragma once
// The seam between routing and the mapping language: turns a message body into what one
// destination receives. The Hub calls it for deliveries whose route names a mapping.

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "core/message.h"

namespace relais {

struct MappedPayload {
  enum class Kind { Ok, Skip, Error } kind = Kind::Ok;
  std::string text;          // Ok: the payload to send
  nlohmann::json json;       // Ok: the JSON output (null for XML)
  std::string content_type;  // Ok
  std::string reason;        // Skip / Error: names the mapping, the rule and the value path
  int64_t version = 0;       // the mapping version used
};

// Implementations are thread-safe: map() runs concurrently on every worker thread, and a new
// version may be activated at any time (each call uses one consistent version).
class MappingStage {
 public:
  virtual ~MappingStage() = default;
  virtual bool knows(const std::string& mapping) const = 0;
  virtual MappedPayload map(const std::string& mapping, const Message& message,
                            const nlohmann::json& body) const = 0;
};

}  // namespace relais

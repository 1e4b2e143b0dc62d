#pragma once
// Enrichers: steps that add data to a message before it is mapped for a destination (e.g. the
// BAN geocoder adds a normalised address with its INSEE code). Same shape as connectors: a
// kind with a config spec and a factory, registered explicitly; instances configured under
// `enrichers:` and named by routes (`enrich: [name, …]`).

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/config_spec.h"
#include "core/message.h"
#include "core/metrics.h"
#include "core/registry.h"
#include "core/status.h"

namespace relais {

// What one enrichment produced. Value type.
struct Enrichment {
  enum class Kind {
    Ok,       // `data` is added to the message
    Flagged,  // `data` (possibly empty) is added, and the delivery carries `flag` for a person
    Retry,    // the service is unavailable: try the delivery again later
    Reject,   // the message cannot be enriched and the route says so is fatal
  };
  Kind kind = Kind::Ok;
  nlohmann::json data;  // object inserted at the enricher's target path (null = nothing)
  std::string flag;     // Flagged: a short reason a person can read (no personal data)
  std::string error_class;
  int code = 0;
  std::string text;  // Retry / Reject: the reason
  std::optional<int64_t> retry_after_ms;
};

// A configured enricher. enrich() is called concurrently from every worker thread: instances
// are thread-safe. Owned by the Hub; lives until shutdown. Never throws.
class Enricher {
 public:
  virtual ~Enricher() = default;
  virtual Enrichment enrich(const Message& message, const nlohmann::json& body) = 0;
  virtual Status probe() { return Status::success(); }
};

struct EnricherContext {
  std::string name;
  ConfigView config;
  Metrics* metrics = nullptr;
  const Clock* clock = nullptr;
};

struct EnricherKind {
  std::string name;
  std::string description;
  const ConfigSpec* spec = nullptr;
  std::function<void(const ConfigView&, const std::string& file, std::vector<ConfigError>&)> check;
  std::function<std::unique_ptr<Enricher>(const EnricherContext&)> create;  // may throw
};

using EnricherRegistry = Registry<EnricherKind>;

}  // namespace relais

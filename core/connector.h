#pragma once
// The one shape every destination connector has: a kind (name, config spec, factory) registered
// explicitly in a ConnectorRegistry, and instances that turn a delivery into an Outcome.
// The core never names a connector; connectors/registry.cpp registers the built-in kinds.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/config_spec.h"
#include "core/message.h"
#include "core/metrics.h"
#include "core/pairing_store.h"
#include "core/registry.h"
#include "core/status.h"

namespace relais {

class StoreBackend;
class XrefStore;

// What a connector may ask of the hub that owns it. Implemented by the Hub; thread-safe; valid
// for the connector's whole life (set in ConnectorContext::hub, null in unit tests that build a
// connector alone).
class HubServices {
 public:
  virtual ~HubServices() = default;
  // Commits a message for one destination only (no route, no mapping: the body is what that
  // destination's connector receives), e.g. a pairing's candidates sent back to CMS76. Blocks
  // until committed; success fills `id`; failures: 404 unknown destination, 400 body not
  // JSON, 503 not stored. May be called from a worker's deliver().
  virtual Status post(const std::string& destination, const std::string& type,
                      const std::string& correlation, const std::string& body, std::string& id) = 0;
  // Makes the deferred head delivery of (destination, key) due now: what it waited for (a
  // pairing) is there. Nothing when the key has no deferred delivery in memory.
  virtual void wake(const std::string& destination, const std::string& key) = 0;
  // The same for one delivery, whether its message has a correlation key (`key`) or not ("").
  virtual void wake_delivery(const std::string& destination, int64_t delivery_id,
                             const std::string& key) {
    (void)delivery_id;
    wake(destination, key);
  }
  // Accepts a message as if the configured `source` had sent it: its expressions (type,
  // correlation), its routes, its mappings; deduplicated by `idempotency_key` ("" = the source's
  // own expression). For a partner's push received by a connector's inbound endpoint (e.g. a
  // Capdémat request): the connector answers its partner only after this returned success.
  // Blocks until committed; success fills `id` and `duplicate` (already taken, same body).
  // Failures: 404 unknown source, 400/422 body refused, 409 same key other body, 503 not stored.
  // Default (hubs of unit tests): 501.
  virtual Status submit(const std::string& source, const std::string& body,
                        const std::string& idempotency_key, std::string& id, bool& duplicate) {
    (void)source;
    (void)body;
    (void)idempotency_key;
    (void)id;
    duplicate = false;
    return Status::failure(501, "not available", "this hub cannot accept messages");
  }
};

// What a connector gets for one attempt. References are valid for the call only.
struct DeliveryRequest {
  int64_t delivery_id = 0;
  const Message* message = nullptr;
  const nlohmann::json* body = nullptr;    // the message body, parsed
  const nlohmann::json* mapped = nullptr;  // the mapping's JSON output (or the body)
  const std::string* payload = nullptr;    // what to send (mapped text, or the body as received)
  std::string content_type;                // of payload
  int attempt = 1;                         // 1-based
  int slot = 0;                            // worker slot in [0, concurrency)
};

// A request a connector's partner makes to relais (delivery reports, replies) or a person's
// request about the connector's own records, routed by the API to
// /api/v1/connectors/{destination}/{path}. References are valid for the call only.
struct InboundRequest {
  std::string method;
  std::string path;                          // after /api/v1/connectors/{destination}/
  std::map<std::string, std::string> query;  // query string and form fields, decoded
  std::string body;
  std::string content_type;
  std::string role;   // the bearer token's role; "" when the request carries none
  std::string actor;  // the bearer token's name; "" when none
  // The Authorization header as sent (a partner's HTTP Basic credentials on inbound/ paths,
  // which carry no bearer token: the connector checks them); "" when absent.
  std::string authorization;
};

struct InboundResponse {
  int status = 200;
  nlohmann::json body = nlohmann::json::object();  // sent as JSON
};

// A lookup table an admin has just published (its new active version is committed), as its
// rows: key → value (a text for a table of values, an object of columns for a table of
// records), sorted by key; the table's default ("*") is not a row. Plain value.
struct PublishedTable {
  std::string name;
  int64_t version = 0;
  std::vector<std::pair<std::string, nlohmann::json>> rows;
};

// A configured destination instance. deliver() is called concurrently from up to `concurrency`
// worker threads, each with its own slot index: implementations keep per-slot state (e.g. one
// connection per slot) or synchronise internally. Owned by the Hub; lives until shutdown.
class Connector {
 public:
  virtual ~Connector() = default;
  // Never throws: every failure is an Outcome with a reason a person can read.
  virtual Outcome deliver(const DeliveryRequest& request) = 0;
  // Checks that the destination is reachable and the credentials work, without sending data.
  // The default says that this kind cannot test itself (never a false "OK").
  virtual Status probe() {
    return Status::failure(501, "test non disponible",
                           "ce type de connecteur ne sait pas tester sa connexion");
  }
  // Answers an inbound request (see InboundRequest); nullopt when the connector has no such
  // endpoint. Called concurrently from API threads. Never throws.
  virtual std::optional<InboundResponse> inbound(const InboundRequest& request) {
    (void)request;
    return std::nullopt;
  }
  // A person was paired outside the connector (the console's choice): wakes, in the order the
  // partner needs, the deliveries that waited (e.g. the person before its requests). False when
  // this connector has no order of its own: the caller wakes them (HubServices::wake). Called
  // from an API thread. Never throws.
  virtual bool wake_paired(const std::string& person, const std::vector<PairingWaiter>& woken) {
    (void)person;
    (void)woken;
    return false;
  }
  // A lookup table was published (committed, now active): a connector that sends some tables
  // to its partner (Capdémat's referentials) posts what it will send as a durable message
  // (HubServices::post), so that the push is retried like any delivery. Called by the hub for
  // every destination, on the publisher's thread (an API thread), after the commit. Never
  // throws. Default: nothing.
  virtual void on_table_published(const PublishedTable& table) { (void)table; }
};

// What a factory gets to build an instance.
struct ConnectorContext {
  std::string name;  // the instance (destination) name
  ConfigView config;
  int concurrency = 1;
  Metrics* metrics = nullptr;
  const Clock* clock = nullptr;
  // The hub's store (owned by the hub, outlives the connector; null in unit tests that build a
  // connector alone): a connector's own records (StoreBackend::sms()) and the node's own folder
  // (state_dir()), whatever the engine.
  StoreBackend* stores = nullptr;
  std::string base_dir;  // the configuration file's folder: relative paths resolve from it
  // The cross-references of the hub's store (owned by the hub, outlives the connector; null
  // where no store is open). Connectors that update or delete what they created use it.
  XrefStore* xrefs = nullptr;
  // The pairings of persons with partners' records (core/pairing_store.h; owned by the hub,
  // outlives the connector; null where no store is open).
  PairingStore* pairings = nullptr;
  // The hub's services (post a message to another destination, wake a deferred key).
  HubServices* hub = nullptr;
  // The destination's retry.max_retry_after: the longest pause a partner's "slow down"
  // (Retry-After, BackOffMilliseconds) may impose; the bound of the connector's ThrottleGate.
  Millis max_retry_after_ms = 15 * 60 * 1000;
};

// A kind of connector. Plain value held by the registry.
struct ConnectorKind {
  std::string name;
  std::string description;
  const ConfigSpec* spec = nullptr;
  // Semantic checks beyond the spec (e.g. a URL template that does not parse). Optional.
  std::function<void(const ConfigView&, const std::string& file, std::vector<ConfigError>&)> check;
  // Builds an instance; may throw at start-up with a message naming the problem.
  std::function<std::unique_ptr<Connector>(const ConnectorContext&)> create;
};

// The set of known connector kinds (see core/registry.h).
using ConnectorRegistry = Registry<ConnectorKind>;

}  // namespace relais

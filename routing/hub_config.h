#pragma once
// The hub's configuration: server, store, auth tokens, sources, destinations (connector
// instances) and routes. Loaded from YAML, validated against declared specs (unknown keys are
// errors), with every error located by file, line, column and key.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "core/at_rest.h"
#include "core/cluster.h"
#include "core/config_spec.h"
#include "core/connector.h"
#include "core/enricher.h"
#include "core/json_template.h"
#include "core/personal_paths.h"
#include "core/poller.h"
#include "core/retention.h"
#include "core/retry_policy.h"
#include "core/shared_state.h"
#include "core/signature.h"
#include "core/store_backend.h"
#include "core/tls_options.h"
#include "routing/predicate.h"

namespace relais {

// A source that is polled (core/poller.h): its kind and its `poll:` block.
struct PollConfig {
  std::string kind;           // a kind of the PollerRegistry given to the loader (and to the Hub)
  ConfigView settings;        // the hub's keys (poll_spec) and the kind's (static specs)
  Millis interval_ms = 5000;  // between two polls that found nothing
  Millis max_backoff_ms = 300000;  // the longest wait after failures
};

struct SourceConfig {
  std::string name;
  JsonTemplate type;  // e.g. "$.event"
  // e.g. "rdv:{$.rdv.id}"; several templates are tried in order and the first that renders
  // wins; none = no ordering key.
  std::vector<JsonTemplate> correlation;
  std::optional<JsonPath> idempotency;    // e.g. "$.id"; the Idempotency-Key header wins
  std::vector<std::string> keep_headers;  // inbound headers kept with the message
  PersonalPaths personal;                 // declared personal paths of the body (masking)
  // Set: every request to this source must carry a valid HMAC signature (core/signature.h);
  // others are answered 401 and nothing is stored.
  std::optional<SignatureScheme> signature;
  // Set: the hub polls this source (a database, a folder) instead of (as well as) being sent
  // messages by HTTP.
  std::optional<PollConfig> poll;
};

struct RouteTarget {
  std::string destination;
  std::string mapping;  // "" = the body passes through
};

struct RouteEnrich {
  std::string enricher;
  bool pass_when_unavailable = false;  // false: hold and retry the delivery
};

struct RouteConfig {
  std::string name;
  std::string source;
  std::vector<std::string> types;         // globs; empty = any type
  std::shared_ptr<const Predicate> when;  // null = always
  std::vector<RouteEnrich> enrich;        // run in order before mapping, for every target
  std::vector<RouteTarget> to;
};

struct DestinationConfig {
  std::string name;
  std::string connector;
  int concurrency = 1;
  RetryPolicy retry;
  bool hold_on_dead = true;        // on_dead: hold | release
  bool replace_pending = false;    // a newer delivery of a key replaces the waiting older ones
  size_t queue_in_memory = 10000;  // active deliveries in memory at most (routing/dispatcher.h)
  int nice = 0;                    // CPU niceness of the delivery workers (0 = as the process)
  ConfigView settings;             // validated against the generic and the connector's spec
};

struct EnricherConfig {
  std::string name;
  std::string kind;
  JsonPath target;  // where the enrichment is added to the body
  ConfigView settings;
};

struct TokenConfig {
  std::string name;
  std::string sha256;                // hex digest of the token; the token itself is not kept
  std::string role;                  // system | admin | support | auditor
  std::vector<std::string> sources;  // sources a system token may post to (empty = all)
  std::vector<std::string> free_busy_mailboxes;  // globs; a system token reads these only
  std::string client_certificate;  // SHA-256 (lower-case hex) it must come with; "" = any
  double rate_limit = -1;          // requests per second (0 = none); < 0: server.rate_limit
  int64_t burst = -1;              // < 0: server.rate_limit.burst
};

struct HubConfig {
  std::string file;
  std::string base_dir;
  YAML::Node root;

  std::string address = "127.0.0.1";
  int port = 8080;
  int64_t max_body = 1 << 20;
  int64_t max_batch_lines = 10000;
  int64_t max_depth = 64;  // nesting of arrays and objects in a JSON body (kDefaultJsonMaxDepth)
  int threads = 64;
  int max_queued = 512;
  int64_t request_timeout_ms = 30000;  // keep-alive idle timeout and write deadline
  int max_connections = 4096;
  int64_t header_timeout_ms = 10000;
  int64_t body_timeout_ms = 60000;
  int64_t max_header_size = 16 * 1024;
  int64_t max_header_count = 100;
  double rate_limit = 0;                     // requests per second per caller (0 = none)
  int64_t rate_burst = 0;                    // 0: twice rate_limit
  std::vector<std::string> trusted_proxies;  // addresses / CIDR ranges (api/proxy.h)
  TlsServerOptions tls;                      // server.tls (not enabled(): plain HTTP)

  StoreLocation store;     // store.kind and where (core/store_backend.h)
  std::string store_path;  // store.path (sqlite): the file, for the commands that open it
  bool store_sync_full = true;
  int store_max_batch = 2000;
  Millis store_idempotency_retention_ms = 30LL * 24 * 3600 * 1000;
  int store_busy_timeout_ms = 10000;
  AtRestSettings store_encryption;  // store.encryption (absent: no encryption)

  std::string log_level = "info";
  std::string mappings_dir;        // "" = none
  std::string tables_dir;          // "" = none
  std::string pseudonym_key_file;  // "" = RELAIS_PSEUDONYM_KEY, else none (core/pseudonym.h)
  int64_t shutdown_grace_ms = 30000;
  RetentionPolicy retention;  // retention: (docs/security.md, "Retention")
  RedisSettings redis;        // redis: (absent: one node, the shared state in process)
  ClusterSettings cluster;    // cluster: (with store.kind postgresql and redis: several nodes)
  // Several nodes share the work: a PostgreSQL store and Redis (docs/scaling.md).
  bool cluster_enabled() const { return store.kind == "postgresql" && redis.enabled(); }

  std::vector<TokenConfig> tokens;
  std::map<std::string, SourceConfig> sources;
  std::map<std::string, DestinationConfig> destinations;
  std::map<std::string, EnricherConfig> enrichers;
  std::vector<RouteConfig> routes;

  std::vector<std::string> notices;  // defaults used for unset environment variables, …
};

// The declared spec of the top level (for docs and tests).
const ConfigSpec& hub_config_spec();
const ConfigSpec& destination_spec();
const ConfigSpec& enricher_spec();
const ConfigSpec& poll_spec();  // the hub's keys of a `poll:` block (kind, interval, max_backoff)

// Loads and validates `path`. Returns false with every error found (never stops at the first).
bool load_hub_config(const std::string& path, const ConnectorRegistry& registry, HubConfig& out,
                     std::vector<ConfigError>& errors, const EnricherRegistry* enrichers = nullptr,
                     const PollerRegistry* pollers = nullptr);
// Same from text (tests); `file` names the text in errors; relative paths resolve from base_dir.
bool load_hub_config_text(const std::string& text, const std::string& file,
                          const std::string& base_dir, const ConnectorRegistry& registry,
                          HubConfig& out, std::vector<ConfigError>& errors,
                          const EnricherRegistry* enrichers = nullptr,
                          const PollerRegistry* pollers = nullptr);

}  // namespace relais

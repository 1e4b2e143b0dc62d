#include "routing/hub_config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/crypto.h"
#include "core/files.h"
#include "core/tls_client.h"
#include "routing/alerts_config.h"
#include "routing/booking_config.h"

namespace relais {
namespace {

using F = FieldType;

const ConfigSpec& rate_limit_spec() {
  static const ConfigSpec s{
      "rate_limit",
      {
          {"per_token",
           F::Float,
           "0",
           false,
           "average requests per second each token (or console user) may send, on every "
           "authenticated request; 0 = no limit",
           {},
           nullptr,
           0,
           1e6},
          {"burst",
           F::Int,
           "0",
           false,
           "requests a caller may send at once above the average (0 = twice per_token, at "
           "least 1)",
           {},
           nullptr,
           0,
           1e7},
      }};
  return s;
}

const ConfigSpec& server_tls_spec() {
  static const ConfigSpec s{
      "server.tls",
      {
          {"certificate", F::String, "", true,
           "the server's certificate chain (PEM: the certificate, then the intermediates); read "
           "again on SIGHUP"},
          {"key", F::String, "", true, "its private key (PEM); read again on SIGHUP"},
          {"key_password_file", F::String, "", false,
           "file holding the password of an encrypted key (one line); never in the YAML"},
          {"min_version",
           F::String,
           "1.2",
           false,
           "oldest TLS version accepted (1.2: ECDHE with AEAD ciphers only; 1.3)",
           {"1.2", "1.3"}},
          {"client_ca", F::String, "", false,
           "CA bundle (PEM) that client certificates must chain to (mutual TLS: e.g. the "
           "IGC-Santé CAs); read again on SIGHUP"},
          {"client_certificates",
           F::String,
           "",
           false,
           "none: no client certificate asked for; optional: asked for, a client without one is "
           "served (one sent must be valid); required: refused at the handshake without a valid "
           "one. Default: optional when client_ca is set, else none",
           {"none", "optional", "required"}},
      }};
  return s;
}

const ConfigSpec& server_spec() {
  static const ConfigSpec s{
      "server",
      {
          {"address", F::String, "127.0.0.1", false, "address to listen on"},
          {"port", F::Int, "8080", false, "TCP port (0 = any free port)", {}, nullptr, 0, 65535},
          {"max_body",
           F::Size,
           "1MiB",
           false,
           "largest accepted request body",
           {},
           nullptr,
           1,
           1024.0 * 1024 * 1024},
          {"max_batch_lines",
           F::Int,
           "10000",
           false,
           "largest NDJSON batch, in lines",
           {},
           nullptr,
           1,
           1e7},
          {"max_depth",
           F::Int,
           "64",
           false,
           "deepest nesting of arrays and objects in a JSON body (deeper: 422, before parsing)",
           {},
           nullptr,
           1,
           1000},
          {"threads",
           F::Int,
           "64",
           false,
           "HTTP handler threads: each takes a ready connection, reads it and runs its complete "
           "requests (a connection waiting for its bytes holds no thread)",
           {},
           nullptr,
           1,
           4096},
          {"max_queued",
           F::Int,
           "512",
           false,
           "unused (kept so that existing configurations load): a handler thread reads its "
           "connections itself, so no request waits in a queue",
           {},
           nullptr,
           1,
           1e6},
          {"max_connections",
           F::Int,
           "4096",
           false,
           "open HTTP connections; a connection beyond gets 503 and is closed",
           {},
           nullptr,
           1,
           1e6},
          {"header_timeout",
           F::Duration,
           "10s",
           false,
           "the whole request head must arrive within this time of its first byte (of the "
           "connection for a new one); else 408 and close",
           {},
           nullptr,
           1,
           3600000},
          {"body_timeout",
           F::Duration,
           "60s",
           false,
           "the whole request body must arrive within this time of the head; else 408 and close",
           {},
           nullptr,
           1,
           86400000},
          {"max_header_size",
           F::Size,
           "16KiB",
           false,
           "largest request head (request line and headers); beyond, 431",
           {},
           nullptr,
           1024,
           1024.0 * 1024},
          {"max_header_count",
           F::Int,
           "100",
           false,
           "most header lines in a request head; beyond, 431",
           {},
           nullptr,
           1,
           10000},
          {"rate_limit",
           F::Object,
           "",
           false,
           "requests per second per caller (bearer token or console user); beyond, 429 with "
           "Retry-After",
           {},
           &rate_limit_spec()},
          {"request_timeout", F::Duration, "30s", false,
           "keep-alive: an idle connection is closed after this time between two requests; also "
           "the deadline to write one answer"},
          {"shutdown_grace", F::Duration, "30s", false,
           "how long in-flight deliveries may take to finish at shutdown"},
          {"tls",
           F::Object,
           "",
           false,
           "HTTPS on the API port (absent: plain HTTP). Certificates reloaded on SIGHUP without "
           "dropping open connections (docs/security.md, \"TLS\")",
           {},
           &server_tls_spec()},
          {"trusted_proxies", F::StringList, "", false,
           "reverse proxies (addresses or CIDR ranges, e.g. 127.0.0.1, 10.0.0.0/8) whose "
           "X-Forwarded-For is believed: login throttling and the audit trail then see the real "
           "client (the rightmost X-Forwarded-For address that is not a trusted proxy). From "
           "any other peer the header is ignored"},
      }};
  return s;
}

const ConfigSpec& encryption_key_spec() {
  static const ConfigSpec s{
      "encryption key",
      {
          {"id", F::String, "", true,
           "the key's name, written in every value it encrypts (letters, digits, - _ .; 32 at "
           "most), e.g. 2026-12"},
          {"file", F::String, "", false,
           "file holding the 32-byte key: 32 raw bytes, or 64 hexadecimal characters, or the "
           "base64 of the 32 bytes (a trailing newline is ignored); mode 0600 or 0400: a file "
           "the group or others may access is refused at start-up. Relative to the "
           "configuration file. Create one with `openssl rand -hex 32`"},
          {"env", F::String, "", false,
           "instead of file: the name of an environment variable holding the key (64 "
           "hexadecimal characters or base64)"},
      }};
  return s;
}

const ConfigSpec& encryption_spec() {
  static const ConfigSpec s{
      "encryption",
      {
          {"active", F::String, "", true,
           "id of the key that encrypts what is written from now on (one of keys)"},
          {"keys",
           F::ObjectList,
           "",
           true,
           "every key that may have encrypted a stored value: the active one and the older "
           "ones until `relais store rekey` reports 0 remaining",
           {},
           &encryption_key_spec()},
      }};
  return s;
}

const ConfigSpec& store_spec() {
  static const ConfigSpec s{
      "store",
      {
          {"kind",
           F::String,
           "sqlite",
           false,
           "the engine: sqlite (one file, one node) or postgresql (several nodes; "
           "docs/operations.md)",
           {"sqlite", "postgresql"}},
          {"path", F::String, "", false,
           "sqlite: the SQLite file (relative to the configuration file); required for sqlite"},
          {"uri", F::String, "", false,
           "postgresql: the libpq connection URI, e.g. postgresql://relais@db1:5432/relais "
           "(no password in it: see password_env); required for postgresql"},
          {"password_env", F::String, "", false,
           "postgresql: the environment variable that holds the role's password (or use "
           "libpq's ~/.pgpass)"},
          {"state_dir", F::String, "", false,
           "the node's own files that are not shared with other nodes (a file destination's "
           "batch journal); default: the SQLite file's folder; required for postgresql"},
          {"synchronous",
           F::String,
           "full",
           false,
           "full: fsync at each group commit (survives power loss); normal: survives a crash "
           "of relais only",
           {"full", "normal"}},
          {"max_batch",
           F::Int,
           "2000",
           false,
           "messages per group commit at most",
           {},
           nullptr,
           1,
           100000},
          {"idempotency_retention",
           F::Duration,
           "30d",
           false,
           "how long an idempotency key is remembered; the same key after that is a new message",
           {},
           nullptr,
           60000,
           3650.0 * 86400000},
          {"busy_timeout",
           F::Duration,
           "10s",
           false,
           "how long a commit waits for the write lock when another process holds it; then "
           "the commit fails, accepts answer 503 and outcomes are kept until it succeeds",
           {},
           nullptr,
           0,
           600000},
          {"encryption",
           F::Object,
           "",
           false,
           "encryption at rest (AES-256-GCM) of message bodies, mapped payloads and partners' "
           "answers; absent = stored in clear (turn it on in production: docs/security.md, "
           "\"Encryption at rest\")",
           {},
           &encryption_spec()},
      }};
  return s;
}

const ConfigSpec& log_spec() {
  static const ConfigSpec s{"log",
                            {{"level",
                              F::String,
                              "info",
                              false,
                              "debug, info, warn or error",
                              {"debug", "info", "warn", "error"}}}};
  return s;
}

const ConfigSpec& token_spec() {
  static const ConfigSpec s{
      "token",
      {
          {"name", F::String, "", true, "who uses the token (shown in logs and audit)"},
          {"token", F::Secret, "", false, "the token (${ENV} or @file:PATH); kept only hashed"},
          {"token_sha256", F::String, "", false, "the SHA-256 of the token, in hex"},
          {"role",
           F::String,
           "system",
           false,
           "system, admin, support or auditor",
           {"system", "admin", "support", "auditor"}},
          {"sources", F::StringList, "", false,
           "sources a system token may post to (all if "
           "absent)"},
          {"free_busy_mailboxes", F::StringList, "", false,
           "mailboxes (globs, e.g. *@cms76.fr or agenda-*@seinemaritime.fr) whose free/busy a "
           "system token may read; none if absent (admins read any; every read is audited)"},
          {"client_certificate", F::String, "", false,
           "SHA-256 fingerprint (hex, colons allowed) of the client certificate this token must "
           "come with (mutual TLS, server.tls.client_ca): presented without it, 401"},
          {"rate_limit",
           F::Float,
           "",
           false,
           "this token's requests per second (0 = no limit); server.rate_limit.per_token if "
           "absent",
           {},
           nullptr,
           0,
           1e6},
          {"burst",
           F::Int,
           "",
           false,
           "this token's burst; server.rate_limit.burst (or twice rate_limit) if absent",
           {},
           nullptr,
           0,
           1e7},
      }};
  return s;
}

const ConfigSpec& auth_spec() {
  static const ConfigSpec s{
      "auth", {{"tokens", F::ObjectList, "", false, "API bearer tokens", {}, &token_spec()}}};
  return s;
}

const ConfigSpec& source_spec() {
  static const ConfigSpec s{
      "source",
      {
          {"type", F::String, "", true, "expression giving the message type, e.g. $.event"},
          {"correlation", F::Any, "", false,
           "template giving the ordering key, e.g. rdv:{$.rdv.id}, or a list of templates tried "
           "in order"},
          {"idempotency", F::String, "", false,
           "path of the deduplication key in the body (the Idempotency-Key header wins)"},
          {"keep_headers", F::StringList, "", false, "inbound headers kept with the message"},
          {"personal", F::StringList, "", false,
           "paths of the body holding personal data, masked for every role but admin, e.g. "
           "[$.individu, $.rdv.demandeur]; [*] for any element. Always masked besides: keys "
           "naming personal data (nom, téléphone, adresse, …) and everything under a person "
           "(individu, personne, bénéficiaire, usager, citoyen, demandeur, …)"},
          {"signature",
           F::Object,
           "",
           false,
           "require an HMAC-SHA256 signature on every request (see docs/security.md)",
           {},
           &signature_verify_spec()},
          {"poll", F::Any, "", false,
           "poll this source instead of waiting for HTTP messages: `kind` (a polling-source "
           "kind, e.g. database or folder) and its keys; see `poll` below and each kind"},
      }};
  return s;
}

const ConfigSpec& retry_spec() {
  static const ConfigSpec s{
      "retry",
      {
          {"initial", F::Duration, "1s", false, "first back-off ceiling"},
          {"max", F::Duration, "5m", false, "largest back-off ceiling"},
          {"factor",
           F::Float,
           "2",
           false,
           "growth of the ceiling per attempt",
           {},
           nullptr,
           1,
           100},
          {"max_attempts",
           F::Int,
           "10",
           false,
           "attempts before dead (0 = no limit: without max_age either, a delivery retries "
           "until it succeeds, its back-off capped at max)",
           {},
           nullptr,
           0,
           1e6},
          {"max_age", F::Duration, "0s", false, "age after which a delivery goes dead (0 = none)"},
          {"max_retry_after", F::Duration, "15m", false,
           "longest delay a partner may impose (Retry-After, BackOffMilliseconds); longer asks "
           "are cut to it"},
          {"throttle_pause", F::Duration, "5s", false,
           "pause when a partner says \"slow down\" without saying for how long"},
      }};
  return s;
}

const ConfigSpec& target_spec() {
  static const ConfigSpec s{
      "target",
      {
          {"destination", F::String, "", true, "a destination (connector instance) name"},
          {"mapping", F::String, "", false, "mapping applied before delivery"},
      }};
  return s;
}

const ConfigSpec& route_spec() {
  static const ConfigSpec s{
      "route",
      {
          {"name", F::String, "", true, "route name (shown on each delivery)"},
          {"source", F::String, "", true, "source the route listens to"},
          {"type", F::Any, "", false, "type glob or list of globs, e.g. rdv.*"},
          {"when", F::Any, "", false,
           "condition on body fields (equals/in/exists/regex, "
           "all/any/not)"},
          {"enrich", F::Any, "", false,
           "enrichers run before mapping: names, or {enricher, on_unavailable: retry|pass}"},
          {"to", F::ObjectList, "", true, "destinations", {}, &target_spec()},
      }};
  return s;
}

const ConfigSpec& mappings_spec() {
  static const ConfigSpec s{
      "mappings",
      {
          {"directory", F::String, "", false, "folder of mapping files seeded into the store"},
          {"tables", F::String, "", false, "folder of lookup tables (CSV or YAML)"},
      }};
  return s;
}

// A retention per final state; `with_defaults`: the documented safe values (retention.default),
// else none (a route's own, falling back on retention.default).
const ConfigSpec& retention_states_spec(bool with_defaults) {
  auto make = [](bool d) {
    auto field = [d](const char* state, const char* value, const char* what) {
      return FieldSpec{state,   F::Duration, d ? value : "",   false, what, {},
                       nullptr, 1000,        3650.0 * 86400000};
    };
    return ConfigSpec{
        d ? "retention.default" : "retention.route",
        {
            field("delivered", "30d",
                  "payload of a message delivered (long enough to answer a "
                  "partner's question about what it received)"),
            field("dead", "90d", "payload of a delivery given up: a person has a quarter to act"),
            field("discarded", "30d", "payload of a delivery a person discarded"),
            field("skipped", "30d", "payload of a delivery the mapping skipped"),
        }};
  };
  static const ConfigSpec defaults = make(true);
  static const ConfigSpec route = make(false);
  return with_defaults ? defaults : route;
}

const ConfigSpec& retention_spec() {
  static const ConfigSpec s{
      "retention",
      {
          {"interval",
           F::Duration,
           "1h",
           false,
           "how often the server runs the purge",
           {},
           nullptr,
           1000,
           7.0 * 86400000},
          {"batch",
           F::Int,
           "1000",
           false,
           "messages per writer job of the purge (the accept path waits for one job at most)",
           {},
           nullptr,
           1,
           100000},
          {"vacuum_pages",
           F::Int,
           "2048",
           false,
           "pages given back to the file system per incremental_vacuum step",
           {},
           nullptr,
           1,
           1000000},
          {"metadata",
           F::Duration,
           "400d",
           false,
           "after this, a message's rows (ids, states, times, attempts) are deleted — not the "
           "audit trail; at least every payload retention",
           {},
           nullptr,
           1000,
           36500.0 * 86400000},
          {"unrouted",
           F::Duration,
           "30d",
           false,
           "payload of a message no route took, from its reception",
           {},
           nullptr,
           1000,
           3650.0 * 86400000},
          {"default",
           F::Object,
           "",
           false,
           "payload retention per final state, from the delivery's last change; a message is "
           "purged when every one of its deliveries is final and past its own retention",
           {},
           &retention_states_spec(true)},
          {"routes",
           F::ObjectMap,
           "",
           false,
           "per route name: the final states whose retention differs from the default",
           {},
           &retention_states_spec(false)},
      }};
  return s;
}

const ConfigSpec& privacy_spec() {
  static const ConfigSpec s{
      "privacy",
      {
          {"pseudonym_key_file", F::String, "", false,
           "file holding the secret (32 bytes or more) of every pseudonym: HMAC-SHA256 for the "
           "mappings' pseudonym() and the SMS opt-out list. Without it, the environment "
           "variable RELAIS_PSEUDONYM_KEY; without either, plain SHA-256 (warned at start-up; "
           "see docs/security.md)"},
      }};
  return s;
}

const ConfigSpec& cluster_spec() {
  static const ConfigSpec s{
      "cluster",
      {
          {"node", F::String, "", false,
           "this node's name among the live nodes (unique); absent = the host name and a random "
           "suffix"},
          {"partitions",
           F::Int,
           "64",
           false,
           "how many parts the correlation keys are cut into (each sent by one node at a time): "
           "the same on every node, more than the nodes will ever be",
           {},
           nullptr,
           1,
           4096},
          {"lease",
           F::Duration,
           "5s",
           false,
           "how long a node's hold on its keys lasts without renewal: a dead node's keys are "
           "taken over after about twice this; longer than a partner's slowest answer",
           {},
           nullptr,
           500,
           600000},
          {"feed_poll",
           F::Duration,
           "50ms",
           false,
           "how often a node reads the store for deliveries committed by the others",
           {},
           nullptr,
           1,
           10000},
      }};
  return s;
}

const ConfigSpec& redis_spec() {
  static const ConfigSpec s{
      "redis",
      {
          {"uri", F::String, "", true,
           "where Redis is: redis://host:port/db (a password may be given as "
           "redis://:password@host:port/db, better through password_env)"},
          {"password_env", F::String, "", false,
           "the environment variable holding Redis's password (AUTH); absent = none"},
          {"prefix", F::String, "relais:", false,
           "of every key and channel: installations sharing one Redis use different prefixes"},
          {"timeout",
           F::Duration,
           "2s",
           false,
           "connect, read and write timeout of each Redis connection",
           {},
           nullptr,
           10,
           60000},
      }};
  return s;
}

// "10.0.0.0/8", "127.0.0.1", "fd00::/8" (api/proxy.h reads them).
bool valid_ip_range(const std::string& text) {
  std::string addr = text.substr(0, text.find('/'));
  unsigned char buf[16];
  bool v4 = inet_pton(AF_INET, addr.c_str(), buf) == 1;
  if (!v4 && inet_pton(AF_INET6, addr.c_str(), buf) != 1) return false;
  if (text.find('/') == std::string::npos) return true;
  std::string bits = text.substr(text.find('/') + 1);
  if (bits.empty() || bits.size() > 3 ||
      bits.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  return std::stoi(bits) <= (v4 ? 32 : 128);
}

std::string resolve(const std::string& base, const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  return (std::filesystem::path(base) / p).lexically_normal().string();
}

// Loads the named instances of one section (connectors, enrichers): each names its kind under
// `kind_key`, is validated against the section's generic spec plus its kind's spec, passes the
// kind's own checks, then is handed to `build`.
template <class Kind, class Build>
void load_instances(const YAML::Node& section, const std::string& section_name,
                    const std::string& kind_key, const char* example,
                    const Registry<Kind>* registry, const ConfigSpec& generic,
                    const std::string& file, std::vector<ConfigError>& errors, Build build) {
  if (!section || section.IsNull()) return;
  if (!section.IsMap()) {
    errors.push_back(error_at(section, file, section_name, "expected a mapping of names"));
    return;
  }
  for (auto it = section.begin(); it != section.end(); ++it) {
    std::string name = it->first.as<std::string>();
    std::string key = section_name + "." + name;
    YAML::Node node = it->second;
    if (!node.IsMap() || !node[kind_key] || !node[kind_key].IsScalar()) {
      errors.push_back(
          error_at(node, file, key + "." + kind_key,
                   "required key is missing (the " + kind_key + " kind, e.g. " + example + ")"));
      continue;
    }
    std::string kind_name = node[kind_key].Scalar();
    const Kind* kind = registry ? registry->find(kind_name) : nullptr;
    if (kind == nullptr) {
      std::string known;
      if (registry) {
        for (const auto& n : registry->names()) known += (known.empty() ? "" : ", ") + n;
      }
      errors.push_back(
          error_at(node[kind_key], file, key + "." + kind_key,
                   "unknown " + kind_key + " '" + kind_name + "' (known: " + known + ")"));
      continue;
    }
    std::vector<const ConfigSpec*> specs{&generic, kind->spec};
    if (!validate(node, specs, key, file, errors)) continue;
    ConfigView settings(node, specs, key);
    if (kind->check) kind->check(settings, file, errors);
    build(name, key, node, *kind, std::move(settings));
  }
}

}  // namespace

const ConfigSpec& poll_spec() {
  static const ConfigSpec s{
      "poll",
      {
          {"kind", F::String, "", true, "the polling-source kind (e.g. database, folder)"},
          {"interval", F::Duration, "5s", false,
           "wait between two polls that found nothing (a full batch polls again at once)"},
          {"max_backoff", F::Duration, "5m", false,
           "longest wait between two attempts while the source cannot be read (the wait "
           "doubles from 1 s)"},
      }};
  return s;
}

const ConfigSpec& destination_spec() {
  static const ConfigSpec s{
      "destination",
      {
          {"connector", F::String, "", true, "the connector kind (e.g. http)"},
          {"concurrency", F::Int, "4", false, "deliveries in flight at once", {}, nullptr, 1, 256},
          {"on_dead",
           F::String,
           "hold",
           false,
           "when a delivery goes dead: hold later messages of the same key, or release them",
           {"hold", "release"}},
          {"retry", F::Object, "", false, "back-off with full jitter", {}, &retry_spec()},
          {"queue_in_memory",
           F::Int,
           "10000",
           false,
           "active deliveries held in memory at most; beyond, the backlog waits in the store "
           "and is read back in order as the queue drains (one node; several nodes hold their "
           "partitions' deliveries)",
           {},
           nullptr,
           100,
           10000000},
          {"replace_pending", F::Bool, "false", false,
           "only the newest delivery of a correlation key matters: a newer one replaces the "
           "older ones still waiting (skipped, naming the newer message), e.g. reminders"},
          {"nice",
           F::Int,
           "0",
           false,
           "CPU niceness of this destination's delivery workers (Linux nice, 0-19): when the "
           "CPU is saturated (a backfill, a burst), intake — HTTP, the store's writer — goes "
           "first and these deliveries catch up afterwards; no effect while the CPU has room. "
           "Every message is still stored before it is answered, and delivered in order",
           {},
           nullptr,
           0,
           19},
      }};
  return s;
}

const ConfigSpec& enricher_spec() {
  static const ConfigSpec s{
      "enricher",
      {
          {"enricher", F::String, "", true, "the enricher kind (e.g. ban)"},
          {"target", F::String, "", true,
           "where the result is added to the message, e.g. $.individu.adresse_ban"},
      }};
  return s;
}

const ConfigSpec& hub_config_spec() {
  static const ConfigSpec s{
      "relais",
      {
          {"server", F::Object, "", false, "HTTP server", {}, &server_spec()},
          {"store", F::Object, "", true, "durable store", {}, &store_spec()},
          {"log", F::Object, "", false, "logging", {}, &log_spec()},
          {"auth", F::Object, "", false, "API authentication", {}, &auth_spec()},
          {"sources", F::ObjectMap, "", true, "inbound sources by name", {}, &source_spec()},
          {"connectors", F::Any, "", false, "destinations: connector instances by name"},
          {"enrichers", F::Any, "", false, "enricher instances by name (e.g. the BAN geocoder)"},
          {"routes", F::ObjectList, "", false, "routes", {}, &route_spec()},
          {"mappings",
           F::Object,
           "",
           false,
           "mapping files and lookup tables",
           {},
           &mappings_spec()},
          {"privacy", F::Object, "", false, "pseudonym key", {}, &privacy_spec()},
          {"retention",
           F::Object,
           "",
           false,
           "how long payloads and rows are kept, and the purge (docs/security.md, Retention)",
           {},
           &retention_spec()},
          {"alerts",
           F::Object,
           "",
           false,
           "alert rules and channels (webhook, SMTP)",
           {},
           &alerts_spec()},
          {"booking",
           F::Object,
           "",
           false,
           "the portal's online booking of appointments (docs/booking.md)",
           {},
           &booking_spec()},
          {"redis",
           F::Object,
           "",
           false,
           "what several nodes share: console sessions, login throttling, rate limits and "
           "change notifications (docs/operations.md, \"Several nodes: the shared state "
           "(Redis)\"); absent = one "
           "node, "
           "all of it in process",
           {},
           &redis_spec()},
          {"cluster",
           F::Object,
           "",
           false,
           "several nodes sharing the work (with store.kind postgresql and redis: docs/scaling.md)",
           {},
           &cluster_spec()},
      }};
  return s;
}

bool load_hub_config(const std::string& path, const ConnectorRegistry& registry, HubConfig& out,
                     std::vector<ConfigError>& errors, const EnricherRegistry* enrichers,
                     const PollerRegistry* pollers) {
  std::string text;
  if (!read_text_file(path, text)) {
    errors.push_back(ConfigError{path, 0, 0, "", "cannot open the configuration file"});
    return false;
  }
  std::string base = std::filesystem::absolute(path).parent_path().string();
  return load_hub_config_text(text, path, base, registry, out, errors, enrichers, pollers);
}

namespace {
bool load_text(const std::string& text, const std::string& file, const std::string& base_dir,
               const ConnectorRegistry& registry, HubConfig& out, std::vector<ConfigError>& errors,
               const EnricherRegistry* enrichers, const PollerRegistry* pollers);
}  // namespace

bool load_hub_config_text(const std::string& text, const std::string& file,
                          const std::string& base_dir, const ConnectorRegistry& registry,
                          HubConfig& out, std::vector<ConfigError>& errors,
                          const EnricherRegistry* enrichers, const PollerRegistry* pollers) {
  // A document of an unexpected shape (a scalar where a mapping belongs, a list as a key…) is
  // reported, never thrown out of here.
  try {
    return load_text(text, file, base_dir, registry, out, errors, enrichers, pollers);
  } catch (const YAML::Exception& e) {
    errors.push_back(ConfigError{file, e.mark.line >= 0 ? e.mark.line + 1 : 0,
                                 e.mark.column >= 0 ? e.mark.column + 1 : 0, "",
                                 "unexpected structure: " + e.msg});
  } catch (const std::exception& e) {
    errors.push_back(
        ConfigError{file, 0, 0, "", std::string("invalid configuration: ") + e.what()});
  }
  return false;
}

namespace {
// retention: → out.retention; the routes named must exist, and the rows must outlive every
// payload (metadata is at least the longest payload retention).
void load_retention(const ConfigView& v, HubConfig& out, const std::string& file,
                    std::vector<ConfigError>& errors) {
  RetentionPolicy& p = out.retention;
  p.interval_ms = v.duration_ms("interval");
  p.batch = v.integer("batch");
  p.vacuum_pages = v.integer("vacuum_pages");
  p.metadata_ms = v.duration_ms("metadata");
  p.unrouted_ms = v.duration_ms("unrouted");
  auto defaults = v.object("default");
  Millis longest = p.unrouted_ms;
  for (const auto& state : RetentionPolicy::final_states()) {
    p.defaults[state] = defaults.duration_ms(state);
    longest = std::max(longest, p.defaults[state]);
  }
  for (const auto& [route, states] : v.object_map("routes")) {
    // "direct": the deliveries queued straight to a destination (Hub::accept_for_destination).
    // Named: clang 14 (the fuzz build's compiler) cannot capture a structured binding.
    const std::string& name = route;
    bool known =
        name == "direct" || std::any_of(out.routes.begin(), out.routes.end(),
                                        [&name](const RouteConfig& r) { return r.name == name; });
    if (!known) {
      errors.push_back(error_at(v.raw("routes")[route], file, "retention.routes." + route,
                                "unknown route '" + route + "'"));
    }
    for (const auto& state : RetentionPolicy::final_states()) {
      if (!states.has(state)) continue;
      p.routes[route][state] = states.duration_ms(state);
      longest = std::max(longest, p.routes[route][state]);
    }
  }
  if (p.metadata_ms < longest) {
    errors.push_back(error_at(v.raw("metadata"), file, "retention.metadata",
                              "shorter than a payload retention (" +
                                  std::to_string(longest / 86400000) +
                                  " days): the rows must outlive every payload"));
  }
}

bool load_text(const std::string& text, const std::string& file, const std::string& base_dir,
               const ConnectorRegistry& registry, HubConfig& out, std::vector<ConfigError>& errors,
               const EnricherRegistry* enrichers, const PollerRegistry* pollers) {
  size_t before = errors.size();
  out = HubConfig();
  out.file = file;
  out.base_dir = base_dir;
  try {
    out.root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    errors.push_back(
        ConfigError{file, e.mark.line + 1, e.mark.column + 1, "", "YAML syntax error: " + e.msg});
    return false;
  }
  if (!out.root.IsMap()) {
    errors.push_back(error_at(out.root, file, "", "the configuration must be a mapping of keys"));
    return false;
  }
  expand_references(out.root, file, "", errors, out.notices, base_dir);
  validate(out.root, {&hub_config_spec()}, "", file, errors);

  ConfigView top(out.root, {&hub_config_spec()}, "");
  auto server = top.object("server");
  out.address = server.str("address");
  out.port = static_cast<int>(server.integer("port"));
  out.max_body = server.size("max_body");
  out.max_batch_lines = server.integer("max_batch_lines");
  out.max_depth = server.integer("max_depth");
  out.threads = static_cast<int>(server.integer("threads"));
  out.max_queued = static_cast<int>(server.integer("max_queued"));
  out.request_timeout_ms = server.duration_ms("request_timeout");
  out.max_connections = static_cast<int>(server.integer("max_connections"));
  out.header_timeout_ms = server.duration_ms("header_timeout");
  out.body_timeout_ms = server.duration_ms("body_timeout");
  out.max_header_size = server.size("max_header_size");
  out.max_header_count = server.integer("max_header_count");
  auto rate = server.object("rate_limit");
  out.rate_limit = rate.number("per_token");
  out.rate_burst = rate.integer("burst");
  out.shutdown_grace_ms = server.duration_ms("shutdown_grace");
  out.trusted_proxies = server.strings("trusted_proxies");
  if (server.has("tls")) {
    auto tls = server.object("tls");
    auto path_of = [&](const char* key) {
      if (!tls.has(key)) return std::string();
      std::string p = resolve(base_dir, tls.str(key));
      if (!std::filesystem::is_regular_file(p)) {
        errors.push_back(
            error_at(tls.raw(key), file, std::string("server.tls.") + key, "no such file: " + p));
      }
      return p;
    };
    out.tls.certificate = path_of("certificate");
    out.tls.key = path_of("key");
    out.tls.key_password_file = path_of("key_password_file");
    out.tls.client_ca = path_of("client_ca");
    out.tls.min_version = tls.str("min_version");
    std::string mode = tls.str("client_certificates");
    if (mode.empty()) mode = out.tls.client_ca.empty() ? "none" : "optional";
    out.tls.client_certificates = mode == "required"   ? ClientCertificates::Required
                                  : mode == "optional" ? ClientCertificates::Optional
                                                       : ClientCertificates::None;
    if (mode != "none" && out.tls.client_ca.empty()) {
      errors.push_back(error_at(tls.node(), file, "server.tls.client_ca",
                                "client_certificates: " + mode +
                                    " needs client_ca (the CAs client certificates chain to)"));
    }
  }
  for (const auto& p : out.trusted_proxies) {
    if (!valid_ip_range(p)) {
      errors.push_back(error_at(server.raw("trusted_proxies"), file, "server.trusted_proxies",
                                "'" + p + "' is not an IP address or a CIDR range"));
    }
  }

  check_tls_client(top.object("alerts").object("webhook").object("tls"), file, errors);

  auto store = top.object("store");
  out.store.kind = store.str("kind");
  if (store.has("path")) out.store.path = resolve(base_dir, store.str("path"));
  out.store.uri = store.str("uri");
  out.store.password_env = store.str("password_env");
  if (store.has("state_dir")) out.store.state_dir = resolve(base_dir, store.str("state_dir"));
  if (out.store.kind == "sqlite" && out.store.path.empty()) {
    errors.push_back(error_at(store.node(), file, "store.path",
                              "the SQLite file is required when store.kind is sqlite"));
  }
  if (out.store.kind == "postgresql") {
    if (out.store.uri.empty()) {
      errors.push_back(error_at(store.node(), file, "store.uri",
                                "the connection URI is required when store.kind is postgresql"));
    }
    if (out.store.state_dir.empty()) {
      errors.push_back(error_at(store.node(), file, "store.state_dir",
                                "the node's own folder is required when store.kind is postgresql"));
    }
  }
  // The node's store lock is STORE.lock (core/store_lock.h): beside the SQLite file, or in the
  // node's own folder when the store is shared (PostgreSQL: relais.lock in store.state_dir).
  out.store_path = out.store.kind == "postgresql" && !out.store.state_dir.empty()
                       ? out.store.state_dir + "/relais"
                       : out.store.path;
  out.store_sync_full = store.str("synchronous") == "full";
  out.store_max_batch = static_cast<int>(store.integer("max_batch"));
  out.store_idempotency_retention_ms = store.duration_ms("idempotency_retention");
  out.store_busy_timeout_ms = static_cast<int>(store.duration_ms("busy_timeout"));
  if (store.has("encryption")) {
    auto enc = store.object("encryption");
    out.store_encryption.active = enc.str("active");
    bool active_found = false;
    for (const auto& k : enc.objects("keys")) {
      AtRestKeySource src;
      src.id = k.str("id");
      if (k.has("file")) src.file = resolve(base_dir, k.str("file"));
      if (k.has("env")) src.env = k.str("env");
      if (src.file.empty() == src.env.empty()) {
        errors.push_back(
            error_at(k.node(), file, k.path(), "give exactly one of file or env for a key"));
      }
      for (const auto& other : out.store_encryption.keys) {
        if (other.id == src.id) {
          errors.push_back(error_at(k.raw("id"), file, k.path() + ".id",
                                    "key id '" + src.id + "' is given twice"));
        }
      }
      active_found = active_found || src.id == out.store_encryption.active;
      out.store_encryption.keys.push_back(std::move(src));
    }
    if (!active_found) {
      errors.push_back(error_at(
          enc.raw("active"), file, "store.encryption.active",
          "'" + out.store_encryption.active + "' is not the id of one of store.encryption.keys"));
    }
  }
  out.log_level = top.object("log").str("level");
  auto mappings = top.object("mappings");
  if (mappings.has("directory")) out.mappings_dir = resolve(base_dir, mappings.str("directory"));
  if (mappings.has("tables")) out.tables_dir = resolve(base_dir, mappings.str("tables"));
  if (top.has("redis")) {
    auto redis = top.object("redis");
    out.redis.uri = redis.str("uri");
    out.redis.prefix = redis.str("prefix");
    out.redis.timeout_ms = redis.duration_ms("timeout");
    if (out.redis.uri.rfind("redis://", 0) != 0) {
      errors.push_back(error_at(redis.raw("uri"), file, "redis.uri",
                                "must start with redis:// (e.g. redis://127.0.0.1:6379/0)"));
    }
    if (redis.has("password_env")) {
      std::string var = redis.str("password_env");
      const char* value = std::getenv(var.c_str());
      if (value == nullptr || *value == '\0') {
        errors.push_back(error_at(redis.raw("password_env"), file, "redis.password_env",
                                  "environment variable " + var + " is not set"));
      } else {
        out.redis.password = value;
      }
    }
  }
  {
    auto cluster = top.object("cluster");
    if (cluster.has("node")) out.cluster.node = cluster.str("node");
    out.cluster.partitions = static_cast<int>(cluster.integer("partitions"));
    out.cluster.lease_ms = cluster.duration_ms("lease");
    out.cluster.feed_poll_ms = cluster.duration_ms("feed_poll");
    if (top.has("cluster") && !out.cluster_enabled()) {
      errors.push_back(error_at(top.raw("cluster"), file, "cluster",
                                "several nodes need store.kind: postgresql and a redis: section"));
    }
  }
  auto privacy = top.object("privacy");
  if (privacy.has("pseudonym_key_file")) {
    out.pseudonym_key_file = resolve(base_dir, privacy.str("pseudonym_key_file"));
  }

  for (const auto& t : top.object("auth").objects("tokens")) {
    TokenConfig tc;
    tc.name = t.str("name");
    tc.role = t.str("role");
    tc.sources = t.strings("sources");
    tc.free_busy_mailboxes = t.strings("free_busy_mailboxes");
    if (t.has("rate_limit")) tc.rate_limit = t.number("rate_limit");
    if (t.has("burst")) tc.burst = t.integer("burst");
    if (t.has("client_certificate")) {
      tc.client_certificate = normalize_fingerprint(t.str("client_certificate"));
      if (tc.client_certificate.empty()) {
        errors.push_back(error_at(t.raw("client_certificate"), file,
                                  t.path() + ".client_certificate",
                                  "expected a SHA-256 fingerprint: 64 hexadecimal digits "
                                  "(colons allowed)"));
      } else if (out.tls.client_ca.empty()) {
        errors.push_back(error_at(t.raw("client_certificate"), file,
                                  t.path() + ".client_certificate",
                                  "a token bound to a client certificate needs mutual TLS "
                                  "(server.tls.client_ca)"));
      }
    }
    if (t.has("token") == t.has("token_sha256")) {
      errors.push_back(error_at(t.node(), file, t.path(),
                                "give exactly one of token (${ENV} or @file:) or token_sha256"));
    } else if (t.has("token")) {
      if (t.str("token").size() < 16) {
        errors.push_back(error_at(t.raw("token"), file, t.path() + ".token",
                                  "a token must be at least 16 characters long"));
      }
      tc.sha256 = sha256_hex(t.str("token"));
    } else {
      tc.sha256 = t.str("token_sha256");
      if (tc.sha256.size() != 64) {
        errors.push_back(error_at(t.raw("token_sha256"), file, t.path() + ".token_sha256",
                                  "expected 64 hexadecimal characters"));
      }
    }
    out.tokens.push_back(std::move(tc));
  }

  for (const auto& [name, s] : top.object_map("sources")) {
    SourceConfig sc;
    sc.name = name;
    std::string err;
    if (s.has("type") && !JsonTemplate::parse(s.str("type"), sc.type, err)) {
      errors.push_back(error_at(s.raw("type"), file, s.path() + ".type", err));
    }
    if (s.has("correlation")) {
      YAML::Node c = s.raw("correlation");
      std::vector<YAML::Node> items;
      if (c.IsScalar()) {
        items.push_back(c);
      } else if (c.IsSequence() && c.size() > 0) {
        for (const auto& i : c) items.push_back(i);
      } else {
        errors.push_back(error_at(c, file, s.path() + ".correlation",
                                  "expected a template or a list of templates"));
      }
      for (const auto& i : items) {
        JsonTemplate t;
        if (!i.IsScalar() || !JsonTemplate::parse(i.Scalar(), t, err)) {
          errors.push_back(error_at(i, file, s.path() + ".correlation",
                                    i.IsScalar() ? err : "expected a template"));
        } else {
          sc.correlation.push_back(std::move(t));
        }
      }
    }
    if (s.has("idempotency")) {
      JsonPath p;
      if (!JsonPath::parse(s.str("idempotency"), p, err)) {
        errors.push_back(error_at(s.raw("idempotency"), file, s.path() + ".idempotency", err));
      } else {
        sc.idempotency = p;
      }
    }
    sc.keep_headers = s.strings("keep_headers");
    if (s.has("personal") && !PersonalPaths::parse(s.strings("personal"), sc.personal, err)) {
      errors.push_back(error_at(s.raw("personal"), file, s.path() + ".personal", err));
    }
    if (s.has("signature")) {
      sc.signature = signature_scheme_from(s.object("signature"));
      if (sc.signature->secret.size() < 16) {
        errors.push_back(error_at(s.raw("signature"), file, s.path() + ".signature.secret",
                                  "a signing secret must be at least 16 characters long"));
      }
    }
    if (s.has("poll")) {
      YAML::Node pn = s.raw("poll");
      std::string key = s.path() + ".poll";
      const PollerKind* kind = nullptr;
      if (!pn.IsMap() || !pn["kind"] || !pn["kind"].IsScalar()) {
        errors.push_back(error_at(pn, file, key + ".kind",
                                  "required key is missing (the polling-source kind, e.g. "
                                  "database or folder)"));
      } else if ((kind = pollers ? pollers->find(pn["kind"].Scalar()) : nullptr) == nullptr) {
        std::string known;
        if (pollers) {
          for (const auto& n : pollers->names()) known += (known.empty() ? "" : ", ") + n;
        }
        errors.push_back(error_at(
            pn["kind"], file, key + ".kind",
            "unknown polling-source kind '" + pn["kind"].Scalar() + "' (known: " + known + ")"));
      } else {
        std::vector<const ConfigSpec*> specs{&poll_spec(), kind->spec};
        if (validate(pn, specs, key, file, errors)) {
          PollConfig pc;
          pc.kind = kind->name;
          pc.settings = ConfigView(pn, specs, key);
          pc.interval_ms = std::max<Millis>(100, pc.settings.duration_ms("interval"));
          pc.max_backoff_ms =
              std::max<Millis>(pc.interval_ms, pc.settings.duration_ms("max_backoff"));
          if (kind->check) kind->check(pc.settings, file, errors);
          sc.poll = std::move(pc);
        }
      }
    }
    out.sources.emplace(name, std::move(sc));
  }

  YAML::Node conns = out.root["connectors"];
  load_instances<ConnectorKind>(
      conns, "connectors", "connector", "http", &registry, destination_spec(), file, errors,
      [&](const std::string& name, const std::string&, const YAML::Node&, const ConnectorKind& kind,
          ConfigView settings) {
        DestinationConfig dc;
        dc.name = name;
        dc.connector = kind.name;
        dc.settings = std::move(settings);
        dc.concurrency = static_cast<int>(dc.settings.integer("concurrency"));
        dc.hold_on_dead = dc.settings.str("on_dead") == "hold";
        dc.replace_pending = dc.settings.boolean("replace_pending");
        dc.queue_in_memory = static_cast<size_t>(dc.settings.integer("queue_in_memory"));
        dc.nice = static_cast<int>(dc.settings.integer("nice"));
        auto r = dc.settings.object("retry");
        dc.retry.initial_ms = r.duration_ms("initial");
        dc.retry.max_ms = r.duration_ms("max");
        dc.retry.factor = r.number("factor");
        dc.retry.max_attempts = static_cast<int>(r.integer("max_attempts"));
        dc.retry.max_age_ms = r.duration_ms("max_age");
        dc.retry.max_retry_after_ms = r.duration_ms("max_retry_after");
        dc.retry.throttle_default_ms = r.duration_ms("throttle_pause");
        out.destinations.emplace(name, std::move(dc));
      });

  YAML::Node enr = out.root["enrichers"];
  load_instances<EnricherKind>(
      enr, "enrichers", "enricher", "ban", enrichers, enricher_spec(), file, errors,
      [&](const std::string& name, const std::string& key, const YAML::Node& node,
          const EnricherKind& kind, ConfigView settings) {
        EnricherConfig ec;
        ec.name = name;
        ec.kind = kind.name;
        ec.settings = std::move(settings);
        std::string err;
        if (!JsonPath::parse(ec.settings.str("target"), ec.target, err)) {
          errors.push_back(error_at(node["target"], file, key + ".target", err));
        }
        out.enrichers.emplace(name, std::move(ec));
      });

  for (const auto& r : top.objects("routes")) {
    RouteConfig rc;
    rc.name = r.str("name");
    rc.source = r.str("source");
    if (!rc.source.empty() && !out.sources.count(rc.source)) {
      errors.push_back(error_at(r.raw("source"), file, r.path() + ".source",
                                "unknown source '" + rc.source + "'"));
    }
    YAML::Node type = r.raw("type");
    if (type && type.IsScalar()) {
      rc.types.push_back(type.Scalar());
    } else if (type && type.IsSequence()) {
      for (const auto& t : type) rc.types.push_back(t.Scalar());
    } else if (type) {
      errors.push_back(error_at(type, file, r.path() + ".type", "expected a glob or a list"));
    }
    if (r.has("when")) {
      rc.when = Predicate::compile(r.raw("when"), file, r.path() + ".when", errors);
    }
    if (r.has("enrich")) {
      YAML::Node list = r.raw("enrich");
      if (!list.IsSequence()) {
        errors.push_back(error_at(list, file, r.path() + ".enrich", "expected a list"));
      } else {
        for (const auto& item : list) {
          RouteEnrich re;
          if (item.IsScalar()) {
            re.enricher = item.Scalar();
          } else if (item.IsMap() && item["enricher"] && item["enricher"].IsScalar()) {
            re.enricher = item["enricher"].Scalar();
            std::string mode = item["on_unavailable"] ? item["on_unavailable"].Scalar() : "retry";
            if (mode != "retry" && mode != "pass") {
              errors.push_back(error_at(item["on_unavailable"], file, r.path() + ".enrich",
                                        "on_unavailable is retry (hold) or pass (un-enriched, "
                                        "flagged)"));
            }
            re.pass_when_unavailable = mode == "pass";
            for (auto kv = item.begin(); kv != item.end(); ++kv) {
              std::string k = kv->first.as<std::string>();
              if (k != "enricher" && k != "on_unavailable") {
                errors.push_back(error_at(kv->first, file, r.path() + ".enrich." + k,
                                          "unknown key (known keys: enricher, on_unavailable)"));
              }
            }
          } else {
            errors.push_back(error_at(item, file, r.path() + ".enrich",
                                      "expected an enricher name or {enricher, on_unavailable}"));
            continue;
          }
          if (!out.enrichers.count(re.enricher) && !(enr && enr[re.enricher])) {
            errors.push_back(error_at(item, file, r.path() + ".enrich",
                                      "unknown enricher '" + re.enricher + "'"));
          }
          rc.enrich.push_back(std::move(re));
        }
      }
    }
    for (const auto& t : r.objects("to")) {
      RouteTarget target{t.str("destination"), t.str("mapping")};
      if (!target.destination.empty() && !out.destinations.count(target.destination) &&
          !(conns && conns[target.destination])) {
        errors.push_back(error_at(t.raw("destination"), file, t.path() + ".destination",
                                  "unknown destination '" + target.destination + "'"));
      }
      rc.to.push_back(std::move(target));
    }
    for (const auto& other : out.routes) {
      if (other.name == rc.name) {
        errors.push_back(error_at(r.raw("name"), file, r.path() + ".name",
                                  "route name '" + rc.name + "' is used twice"));
      }
    }
    out.routes.push_back(std::move(rc));
  }
  load_retention(top.object("retention"), out, file, errors);
  if (top.has("booking")) {  // the destinations it names, of the kinds it needs (docs/booking.md)
    ConfigView b = top.object("booking");
    for (const auto& [key, kind] :
         {std::pair<std::string, std::string>{"calendar", "calendar"}, {"cms76", "http"}}) {
      auto d = out.destinations.find(b.str(key));
      if (d == out.destinations.end() || d->second.connector != kind) {
        errors.push_back(
            error_at(b.raw(key), file, "booking." + key,
                     "'" + b.str(key) + "' is not a configured " + kind + " destination"));
      }
    }
  }
  return errors.size() == before;
}

}  // namespace

}  // namespace relais

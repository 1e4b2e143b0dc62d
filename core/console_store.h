#pragma once
// The console's records in the store file (tables of migration 6 in sqlite_store.cpp): local
// users, API tokens created through the console, the append-only audit trail, and the read-only
// queries of the support desk over deliveries (failed/dead by business object, per-destination
// figures of the day).

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/at_rest.h"
#include "core/clock.h"
#include "core/status.h"
#include "core/store.h"
#include "core/store_access.h"

namespace relais {

struct UserRecord {
  std::string name;
  std::string role;      // admin | support | auditor
  std::string password;  // encoded PBKDF2 hash (core/crypto.h), never the password
  Millis created_at = 0;
  std::string created_by;
  bool disabled = false;
};

struct ApiTokenRecord {
  std::string name;
  std::string role;                  // system | admin | support | auditor
  std::vector<std::string> sources;  // sources a system token may post to (empty = all)
  std::string sha256;                // hex digest of the token; the token itself is not kept
  Millis created_at = 0;
  std::string created_by;
  Millis revoked_at = 0;  // 0 = valid
};

// One line of the audit trail: who did what, when, to which object.
struct AuditEntry {
  int64_t id = 0;
  Millis at = 0;
  std::string actor;    // user or token name
  std::string role;     // the actor's role at the time
  std::string action;   // e.g. delivery.retry, mapping.publish, payload.view, login.failed
  std::string object;   // e.g. delivery:42, mapping:rdv-calendar, user:alice
  std::string detail;   // free text (a reason, a comment, a count); never a payload
  std::string address;  // client IP
};

struct AuditFilter {
  std::string actor;
  std::string action;  // exact, or a prefix ending with '.' (e.g. "mapping.")
  std::string object;  // substring
  Millis from = 0, to = 0;
  int64_t before_id = 0;  // cursor (0 = newest first)
  int limit = 100;
};

// Filter of the support desk's list (deliveries waiting for a person).
struct DeskFilter {
  std::vector<std::string> states = {"retrying", "dead"};
  std::string destination;
  std::string route;
  std::string error_class;
  std::string text;  // matches the correlation key, the message id, the type or the error text
  Millis from = 0, to = 0;  // on the delivery's last update
  int64_t before_id = 0;    // cursor on the delivery id (0 = newest first)
  int limit = 50;
};

struct DeskItem {
  int64_t delivery_id = 0;
  std::string message_id;
  std::string source;
  std::string type;
  std::string correlation;
  std::string destination;
  std::string route;
  std::string state;
  int attempts = 0;
  std::string last_class;
  int last_code = 0;
  std::string last_text;
  std::string last_excerpt;  // of the peer's answer to the last attempt (for explanations)
  Millis updated_at = 0;
  Millis received_at = 0;
};

// Figures of one destination: counts by state updated since a time, last success, last
// failure, delivered per hour over the last 24 hours (oldest first).
struct DestinationFigures {
  std::string destination;
  int64_t delivered = 0, failed = 0, dead = 0;
  Millis last_success = 0;
  Millis last_failure = 0;
  std::vector<int64_t> hourly = std::vector<int64_t>(24, 0);
};

// Thread-safe: one SQLite connection serialised by a mutex (each call is short); the API
// tokens are also cached in memory for the per-request lookup (re-read every 10 seconds, so
// other nodes' changes are seen). Does not own the store file,
// which relais opens (and migrates) first.
class ConsoleStore {
 public:
  virtual ~ConsoleStore() = default;

  virtual Status add_user(const UserRecord& user) = 0;  // 409 when the name exists
  virtual std::optional<UserRecord> user(const std::string& name) = 0;
  virtual std::vector<UserRecord> users() = 0;
  virtual Status update_user(const std::string& name, const std::optional<std::string>& role,
                             const std::optional<std::string>& password_hash,
                             const std::optional<bool>& disabled) = 0;  // 404 when unknown

  virtual Status add_token(const ApiTokenRecord& token) = 0;  // 409 when the name exists
  virtual std::vector<ApiTokenRecord> tokens() = 0;
  // The valid (not revoked) token with this digest.
  virtual std::optional<ApiTokenRecord> token_by_sha256(const std::string& sha256) = 0;
  // Tokens were created or revoked elsewhere (a change notification): the next lookup re-reads
  // them from the store instead of waiting for the periodic re-read.
  virtual void tokens_changed() {}
  virtual Status revoke_token(const std::string& name, Millis at) = 0;  // 404 when unknown

  // Appends to the audit trail (the table refuses updates and deletes). Never throws; a
  // failure is logged.
  virtual void audit(const AuditEntry& entry) = 0;
  virtual std::vector<AuditEntry> audit_entries(const AuditFilter& filter) = 0;

  virtual std::vector<DeskItem> desk(const DeskFilter& filter) = 0;
  virtual int64_t desk_count(const DeskFilter& filter) = 0;  // ignores limit and cursor
  // Delivery ids matching (ignores limit and cursor), oldest first, at most `max`.
  virtual std::vector<int64_t> desk_ids(const DeskFilter& filter, size_t max) = 0;
  // Counts by state updated since `since`; hourly delivered counts over the 24 hours ending
  // at `now`.
  virtual std::vector<DestinationFigures> figures(Millis since, Millis now) = 0;
};

}  // namespace relais

#pragma once
// What the console stores of every engine (store/sqlite/sqlite_console.cpp,
// store/postgresql/pg_console.cpp) build the same way: the audit trail's and the support desk's
// filtered queries (SQL with `?` placeholders and their values, in order; an engine numbers them
// as it needs), the API tokens' sources as JSON, and the tokens' cache of the per-request lookup.
// Free functions are pure; TokenCache is not thread-safe (its store's mutex guards it).

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/console_store.h"

namespace relais::console_sql {

// A statement with `?` placeholders and its values, in order.
struct Query {
  std::string sql;
  std::vector<std::variant<std::string, int64_t>> args;
  void str(std::string v) { args.emplace_back(std::move(v)); }
  void num(int64_t v) { args.emplace_back(v); }
};

// The columns of audit_entries: id, at, actor, role, action, object, detail, address.
Query audit(const AuditFilter& f);
// The columns of desk: the delivery's id, message id, source, type, correlation, destination,
// route, state, attempts, last class, last code, last text, updated_at, received_at, then the
// last attempt's excerpt and time (NULL when there is none).
Query desk(const DeskFilter& f);
Query desk_count(const DeskFilter& f);
Query desk_ids(const DeskFilter& f, size_t max);

// `sql` with its `?` numbered $1, $2 … (PostgreSQL); the statements above have no `?` in a
// literal.
std::string numbered(const std::string& sql);

// A token's sources as stored (a JSON array), and back (anything else: none).
std::string join_sources(const std::vector<std::string>& v);
std::vector<std::string> split_sources(const std::string& text);

// The API tokens by digest, for the per-request lookup: read again from the store every 10
// seconds, so that tokens created or revoked on another node (or by the CLI) are seen.
class TokenCache {
 public:
  // The valid token with this digest; `load` reads every token when the cache is stale.
  std::optional<ApiTokenRecord> find(const std::string& sha256, Millis now,
                                     const std::function<std::vector<ApiTokenRecord>()>& load);
  void reload(std::vector<ApiTokenRecord> tokens, Millis now);
  void added(const ApiTokenRecord& t) { tokens_[t.sha256] = t; }
  void revoked(const std::string& name, Millis at);
  // The next find() reads every token again (a change another node announced).
  void stale() { loaded_ = std::numeric_limits<Millis>::min() / 2; }

 private:
  std::map<std::string, ApiTokenRecord> tokens_;  // by sha256 (revoked ones kept, marked)
  Millis loaded_ = 0;                             // when tokens_ was read from the store
};

}  // namespace relais::console_sql

// ConsoleStore on PostgreSQL (tables of migration 104, store/postgresql/pg_tables.cpp), the same
// contract as store/sqlite/sqlite_console.cpp, with the same filtered queries
// (store/console_queries.h) numbered for PostgreSQL. One PgSession; the audit trail is
// append-only in the database itself (triggers refuse UPDATE, DELETE and TRUNCATE). The API
// tokens are cached for the per-request lookup and read again every 10 seconds, so that another
// node's tokens are seen. Storage failures are thrown (audit() logs them instead).

#include <map>
#include <stdexcept>
#include <variant>

#include "core/console_store.h"
#include "core/log.h"
#include "store/console_queries.h"
#include "store/postgresql/pg_session.h"
#include "store/postgresql/pg_stores.h"

namespace relais {
namespace {

constexpr const char* kUserExists = "SELECT COUNT(*) FROM users WHERE name = $1";
constexpr const char* kAddUser =
    "INSERT INTO users(name, role, password, created_at, created_by, disabled) "
    "VALUES($1, $2, $3, $4, $5, $6)";
constexpr const char* kUser =
    "SELECT name, role, password, created_at, created_by, disabled FROM users WHERE name = $1";
constexpr const char* kUsers =
    "SELECT name, role, password, created_at, created_by, disabled FROM users ORDER BY name";
constexpr const char* kUpdateUser =
    "UPDATE users SET role = COALESCE($2, role), password = COALESCE($3, password), "
    "disabled = COALESCE($4::boolean, disabled) WHERE name = $1";
constexpr const char* kTokenExists = "SELECT COUNT(*) FROM api_tokens WHERE name = $1";
constexpr const char* kAddToken =
    "INSERT INTO api_tokens(name, role, sources, sha256, created_at, created_by) "
    "VALUES($1, $2, $3, $4, $5, $6)";
constexpr const char* kTokens =
    "SELECT name, role, sources, sha256, created_at, created_by, revoked_at FROM api_tokens "
    "ORDER BY name";
constexpr const char* kRevoke =
    "UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at = 0";
constexpr const char* kAudit =
    "INSERT INTO audit(at, actor, role, action, object, detail, address) "
    "VALUES($1, $2, $3, $4, $5, $6, $7)";

// The dashboard's figures: each an index seek (deliveries_destination_state, deliveries_active).
constexpr const char* kFiguresDestinations =
    "WITH RECURSIVE d(name) AS (SELECT MIN(destination) FROM deliveries UNION ALL "
    "SELECT (SELECT MIN(destination) FROM deliveries WHERE destination > d.name) FROM d "
    "WHERE d.name IS NOT NULL) SELECT name FROM d WHERE name IS NOT NULL";
constexpr const char* kFiguresCount =
    "SELECT COUNT(*) FROM deliveries WHERE destination = $1 AND state = $2 AND updated_at >= $3";
constexpr const char* kFiguresLast =
    "SELECT updated_at FROM deliveries WHERE destination = $1 AND state = $2 "
    "ORDER BY updated_at DESC LIMIT 1";
constexpr const char* kFiguresHourly =
    "SELECT (updated_at - $1) / 3600000, COUNT(*) FROM deliveries WHERE destination = $2 AND "
    "state = 'delivered' AND updated_at >= $1 GROUP BY 1";
constexpr const char* kFiguresRetrying =
    "SELECT destination, COUNT(*) FILTER (WHERE updated_at >= $1), MAX(updated_at) "
    "FROM deliveries WHERE state = 'retrying' AND last_outcome <> 'throttled' "
    "GROUP BY destination";

pg::Params params_of(const console_sql::Query& q) {
  pg::Params p;
  for (const auto& a : q.args) {
    if (const auto* s = std::get_if<std::string>(&a)) {
      p.ref(*s);
    } else {
      p.num(std::get<int64_t>(a));
    }
  }
  return p;
}

class PgConsoleStore final : public ConsoleStore {
 public:
  PgConsoleStore(const std::string& uri, const std::string& password, const Clock& clock,
                 StoreAccess access, std::shared_ptr<const AtRestCipher> cipher)
      : clock_(clock),
        access_(access),
        cipher_(std::move(cipher)),
        s_(uri, password, "PostgreSQL console records") {
    s_.locked([&]() { tokens_.reload(load_tokens(), clock_.now_ms()); });
  }

  Status add_user(const UserRecord& u) override {
    writable();
    return s_.locked([&]() {
      if (s_.query(kUserExists, pg::Params().ref(u.name)).int64(0, 0) > 0) {
        return Status::failure(409, "conflict", "a user named '" + u.name + "' exists");
      }
      s_.query(kAddUser, pg::Params()
                             .ref(u.name)
                             .ref(u.role)
                             .ref(u.password)
                             .num(u.created_at ? u.created_at : clock_.now_ms())
                             .ref(u.created_by)
                             .flag(u.disabled));
      return Status::success();
    });
  }

  std::optional<UserRecord> user(const std::string& name) override {
    return s_.locked([&]() -> std::optional<UserRecord> {
      pg::Result r = s_.query(kUser, pg::Params().ref(name));
      if (r.rows() == 0) return std::nullopt;
      return user_row(r, 0);
    });
  }

  std::vector<UserRecord> users() override {
    return s_.locked([&]() {
      pg::Result r = s_.query(kUsers);
      std::vector<UserRecord> out;
      for (int i = 0; i < r.rows(); ++i) out.push_back(user_row(r, i));
      return out;
    });
  }

  Status update_user(const std::string& name, const std::optional<std::string>& role,
                     const std::optional<std::string>& password_hash,
                     const std::optional<bool>& disabled) override {
    writable();
    pg::Params p;
    p.ref(name);
    role ? p.ref(*role) : p.null();
    password_hash ? p.ref(*password_hash) : p.null();
    disabled ? p.flag(*disabled) : p.null();
    return s_.locked([&]() {
      if (s_.query(kUpdateUser, p).affected() == 0) {
        return Status::failure(404, "not found", "no user '" + name + "'");
      }
      return Status::success();
    });
  }

  Status add_token(const ApiTokenRecord& t) override {
    writable();
    return s_.locked([&]() {
      if (s_.query(kTokenExists, pg::Params().ref(t.name)).int64(0, 0) > 0) {
        return Status::failure(409, "conflict", "a token named '" + t.name + "' exists");
      }
      ApiTokenRecord copy = t;
      copy.created_at = t.created_at ? t.created_at : clock_.now_ms();
      s_.query(kAddToken, pg::Params()
                              .ref(t.name)
                              .ref(t.role)
                              .text(console_sql::join_sources(t.sources))
                              .ref(t.sha256)
                              .num(copy.created_at)
                              .ref(t.created_by));
      tokens_.added(copy);
      return Status::success();
    });
  }

  std::vector<ApiTokenRecord> tokens() override {
    return s_.locked([&]() { return load_tokens(); });
  }

  std::optional<ApiTokenRecord> token_by_sha256(const std::string& sha256) override {
    return s_.locked([&]() {
      return tokens_.find(sha256, clock_.now_ms(), [this]() { return load_tokens(); });
    });
  }

  void tokens_changed() override {
    s_.locked([&]() { tokens_.stale(); });
  }

  Status revoke_token(const std::string& name, Millis at) override {
    writable();
    return s_.locked([&]() {
      if (s_.query(kRevoke, pg::Params().num(at).ref(name)).affected() == 0) {
        return Status::failure(404, "not found", "no valid token '" + name + "'");
      }
      tokens_.revoked(name, at);
      return Status::success();
    });
  }

  void audit(const AuditEntry& e) override {
    try {
      writable();
      s_.locked([&]() {
        s_.query(kAudit, pg::Params()
                             .num(e.at ? e.at : clock_.now_ms())
                             .ref(e.actor)
                             .ref(e.role)
                             .ref(e.action)
                             .ref(e.object)
                             .ref(e.detail)
                             .ref(e.address));
      });
    } catch (const std::exception& ex) {
      log_error("audit", std::string("cannot append to the audit trail: ") + ex.what());
    }
  }

  std::vector<AuditEntry> audit_entries(const AuditFilter& f) override {
    return rows<AuditEntry>(console_sql::audit(f), [](const pg::Result& r, int i) {
      return AuditEntry{r.int64(i, 0), r.int64(i, 1), r.text(i, 2), r.text(i, 3),
                        r.text(i, 4),  r.text(i, 5),  r.text(i, 6), r.text(i, 7)};
    });
  }

  std::vector<DeskItem> desk(const DeskFilter& f) override {
    return rows<DeskItem>(console_sql::desk(f), [this](const pg::Result& r, int i) {
      DeskItem d;
      d.delivery_id = r.int64(i, 0);
      d.message_id = r.text(i, 1);
      d.source = r.text(i, 2);
      d.type = r.text(i, 3);
      d.correlation = r.text(i, 4);
      d.destination = r.text(i, 5);
      d.route = r.text(i, 6);
      d.state = r.text(i, 7);
      d.attempts = static_cast<int>(r.int64(i, 8));
      d.last_class = r.text(i, 9);
      d.last_code = static_cast<int>(r.int64(i, 10));
      d.last_text = r.text(i, 11);
      d.updated_at = r.int64(i, 12);
      d.received_at = r.int64(i, 13);
      if (!r.null(i, 14)) {
        // Only for the explanation: an excerpt that does not decrypt explains nothing.
        Status st =
            AtRestCipher::open_with(cipher_.get(), excerpt_aad(d.delivery_id, r.int64(i, 15)),
                                    r.text(i, 14), d.last_excerpt);
        if (!st.ok) d.last_excerpt.clear();
      }
      return d;
    });
  }

  int64_t desk_count(const DeskFilter& f) override {
    auto q = console_sql::desk_count(f);
    return s_.locked(
        [&]() { return s_.query_text(console_sql::numbered(q.sql), params_of(q)).int64(0, 0); });
  }

  std::vector<int64_t> desk_ids(const DeskFilter& f, size_t max) override {
    return rows<int64_t>(console_sql::desk_ids(f, max),
                         [](const pg::Result& r, int i) { return r.int64(i, 0); });
  }

  std::vector<DestinationFigures> figures(Millis since, Millis now_ms) override {
    std::map<std::string, DestinationFigures> by;
    const int64_t day_start = now_ms - 24 * 3600000LL;
    s_.locked([&]() {
      pg::Result names = s_.query(kFiguresDestinations);
      for (int n = 0; n < names.rows(); ++n) {
        std::string dest = names.text(n, 0);
        auto& f = by[dest];
        f.destination = dest;
        for (const char* state : {"delivered", "dead"}) {
          int64_t count =
              s_.query(kFiguresCount, pg::Params().ref(dest).text(state).num(since)).int64(0, 0);
          Millis at = s_.query(kFiguresLast, pg::Params().ref(dest).text(state)).int64(0, 0);
          if (std::string(state) == "delivered") {
            f.delivered = count;
            f.last_success = at;
          } else {
            f.dead = count;
            f.last_failure = std::max(f.last_failure, at);
          }
        }
        pg::Result h = s_.query(kFiguresHourly, pg::Params().num(day_start).ref(dest));
        for (int i = 0; i < h.rows(); ++i) {
          int64_t hour = h.int64(i, 0);
          if (hour >= 0 && hour < 24) f.hourly[static_cast<size_t>(hour)] += h.int64(i, 1);
        }
      }
      // A delivery waiting because the partner asked to slow down is not failing: it counts
      // neither as a failure of the day nor in the circuit (nor in the connector_failing alert).
      pg::Result r = s_.query(kFiguresRetrying, pg::Params().num(since));
      for (int i = 0; i < r.rows(); ++i) {
        auto& f = by[r.text(i, 0)];
        f.destination = r.text(i, 0);
        f.failed += r.int64(i, 1);
        f.last_failure = std::max(f.last_failure, r.int64(i, 2));
      }
    });
    std::vector<DestinationFigures> out;
    for (auto& [k, v] : by) out.push_back(std::move(v));
    return out;
  }

 private:
  void writable() const {
    if (access_ == StoreAccess::ReadOnly) {
      throw std::runtime_error("the console's records are open read-only");
    }
  }

  template <class Row, class Fn>
  std::vector<Row> rows(const console_sql::Query& q, Fn row) {
    return s_.locked([&]() {
      pg::Result r = s_.query_text(console_sql::numbered(q.sql), params_of(q));
      std::vector<Row> out;
      out.reserve(static_cast<size_t>(r.rows()));
      for (int i = 0; i < r.rows(); ++i) out.push_back(row(r, i));
      return out;
    });
  }

  static UserRecord user_row(const pg::Result& r, int i) {
    UserRecord u;
    u.name = r.text(i, 0);
    u.role = r.text(i, 1);
    u.password = r.text(i, 2);
    u.created_at = r.int64(i, 3);
    u.created_by = r.text(i, 4);
    u.disabled = r.text(i, 5) == "t";
    return u;
  }

  // Inside locked().
  std::vector<ApiTokenRecord> load_tokens() {
    pg::Result r = s_.query(kTokens);
    std::vector<ApiTokenRecord> out;
    for (int i = 0; i < r.rows(); ++i) {
      ApiTokenRecord t;
      t.name = r.text(i, 0);
      t.role = r.text(i, 1);
      t.sources = console_sql::split_sources(r.text(i, 2));
      t.sha256 = r.text(i, 3);
      t.created_at = r.int64(i, 4);
      t.created_by = r.text(i, 5);
      t.revoked_at = r.int64(i, 6);
      out.push_back(std::move(t));
    }
    return out;
  }

  const Clock& clock_;
  StoreAccess access_;
  const std::shared_ptr<const AtRestCipher> cipher_;
  PgSession s_;
  console_sql::TokenCache tokens_;
};

}  // namespace

std::unique_ptr<ConsoleStore> open_postgresql_console_store(
    const std::string& uri, const std::string& password, const Clock& clock, StoreAccess access,
    std::shared_ptr<const AtRestCipher> cipher) {
  return std::make_unique<PgConsoleStore>(uri, password, clock, access, std::move(cipher));
}

}  // namespace relais

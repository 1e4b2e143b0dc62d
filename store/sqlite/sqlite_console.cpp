// ConsoleStore on the SQLite store file (tables created by migration 6 of sqlite_store.cpp).

#include <Poco/Data/RecordSet.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>

#include <map>
#include <mutex>
#include <stdexcept>
#include <variant>

#include "core/console_store.h"
#include "core/log.h"
#include "store/console_queries.h"
#include "store/sqlite/sqlite_backend.h"
#include "store/sqlite/sqlite_session.h"

using namespace Poco::Data::Keywords;
using Poco::Data::RecordSet;
using Poco::Data::Session;
using Poco::Data::Statement;

namespace relais {
namespace {

// The dashboard's figures (figures()): each an index seek, see sqlite_console_figures_statements.
// The destinations that have deliveries, by skipping through the index (one seek each).
constexpr const char* kFiguresDestinations =
    "WITH RECURSIVE d(name) AS (SELECT MIN(destination) FROM deliveries UNION ALL "
    "SELECT (SELECT MIN(destination) FROM deliveries WHERE destination > d.name) FROM d "
    "WHERE d.name IS NOT NULL) SELECT name FROM d WHERE name IS NOT NULL";
constexpr const char* kFiguresCount =
    "SELECT COUNT(*) FROM deliveries WHERE destination = ? AND state = ? AND updated_at >= ?";
constexpr const char* kFiguresLast =
    "SELECT updated_at FROM deliveries WHERE destination = ? AND state = ? "
    "ORDER BY updated_at DESC LIMIT 1";
constexpr const char* kFiguresHourly =
    "SELECT (updated_at - ?) / 3600000, COUNT(*) FROM deliveries WHERE destination = ? AND "
    "state = 'delivered' AND updated_at >= ? GROUP BY 1";
// The retrying ones are few (active): through the partial index of active deliveries.
constexpr const char* kFiguresRetrying =
    "SELECT destination, SUM(updated_at >= ?), MAX(updated_at) FROM deliveries "
    "WHERE state = 'retrying' AND last_outcome <> 'throttled' GROUP BY destination";

// Binds a shared query's values to a statement (the query must outlive its execution).
void bind(Statement& st, console_sql::Query& q) {
  for (auto& a : q.args) std::visit([&](auto& v) { st, use(v); }, a);
}

using console_sql::join_sources;
using console_sql::split_sources;

class SqliteConsoleStore final : public ConsoleStore {
 public:
  SqliteConsoleStore(const std::string& path, const Clock& clock, StoreAccess access,
                     std::shared_ptr<const AtRestCipher> cipher)
      : clock_(clock),
        cipher_(std::move(cipher)),
        s_(open_store_session(path, "audit", "console", access)) {
    tokens_.reload(load_tokens(), clock_.now_ms());
  }

  Status add_user(const UserRecord& u) override {
    std::lock_guard<std::mutex> lock(mu_);
    int exists = 0;
    std::string name = u.name;
    *s_ << "SELECT COUNT(*) FROM users WHERE name = ?", use(name), into(exists), now;
    if (exists) return Status::failure(409, "conflict", "a user named '" + u.name + "' exists");
    std::string role = u.role, pw = u.password, by = u.created_by;
    int64_t at = u.created_at ? u.created_at : clock_.now_ms();
    int disabled = u.disabled ? 1 : 0;
    *s_ << "INSERT INTO users(name, role, password, created_at, created_by, disabled) "
           "VALUES(?,?,?,?,?,?)",
        use(name), use(role), use(pw), use(at), use(by), use(disabled), now;
    return Status::success();
  }

  std::optional<UserRecord> user(const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    Statement st(*s_);
    std::string n = name;
    st << "SELECT name, role, password, created_at, created_by, disabled FROM users "
          "WHERE name = ?",
        use(n), now;
    RecordSet rs(st);
    if (rs.rowCount() == 0) return std::nullopt;
    return user_row(rs, 0);
  }

  std::vector<UserRecord> users() override {
    std::lock_guard<std::mutex> lock(mu_);
    Statement st(*s_);
    st << "SELECT name, role, password, created_at, created_by, disabled FROM users "
          "ORDER BY name",
        now;
    RecordSet rs(st);
    std::vector<UserRecord> out;
    for (size_t i = 0; i < rs.rowCount(); ++i) out.push_back(user_row(rs, i));
    return out;
  }

  Status update_user(const std::string& name, const std::optional<std::string>& role,
                     const std::optional<std::string>& password_hash,
                     const std::optional<bool>& disabled) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::string n = name;
    int exists = 0;
    *s_ << "SELECT COUNT(*) FROM users WHERE name = ?", use(n), into(exists), now;
    if (!exists) return Status::failure(404, "not found", "no user '" + name + "'");
    if (role) {
      std::string r = *role;
      *s_ << "UPDATE users SET role = ? WHERE name = ?", use(r), use(n), now;
    }
    if (password_hash) {
      std::string p = *password_hash;
      *s_ << "UPDATE users SET password = ? WHERE name = ?", use(p), use(n), now;
    }
    if (disabled) {
      int d = *disabled ? 1 : 0;
      *s_ << "UPDATE users SET disabled = ? WHERE name = ?", use(d), use(n), now;
    }
    return Status::success();
  }

  Status add_token(const ApiTokenRecord& t) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::string name = t.name;
    int exists = 0;
    *s_ << "SELECT COUNT(*) FROM api_tokens WHERE name = ?", use(name), into(exists), now;
    if (exists) return Status::failure(409, "conflict", "a token named '" + t.name + "' exists");
    std::string role = t.role, sources = join_sources(t.sources), sha = t.sha256, by = t.created_by;
    int64_t at = t.created_at ? t.created_at : clock_.now_ms();
    *s_ << "INSERT INTO api_tokens(name, role, sources, sha256, created_at, created_by) "
           "VALUES(?,?,?,?,?,?)",
        use(name), use(role), use(sources), use(sha), use(at), use(by), now;
    ApiTokenRecord copy = t;
    copy.created_at = at;
    tokens_.added(copy);
    return Status::success();
  }

  std::vector<ApiTokenRecord> tokens() override {
    std::lock_guard<std::mutex> lock(mu_);
    return load_tokens();
  }

  std::optional<ApiTokenRecord> token_by_sha256(const std::string& sha256) override {
    std::lock_guard<std::mutex> lock(mu_);
    return tokens_.find(sha256, clock_.now_ms(), [this]() { return load_tokens(); });
  }

  void tokens_changed() override {
    std::lock_guard<std::mutex> lock(mu_);
    tokens_.stale();
  }

  Status revoke_token(const std::string& name, Millis at) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::string n = name;
    int64_t a = at;
    Statement st(*s_);
    st << "UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at = 0", use(a), use(n);
    size_t changed = st.execute();
    if (changed == 0) return Status::failure(404, "not found", "no valid token '" + name + "'");
    tokens_.revoked(name, at);
    return Status::success();
  }

  void audit(const AuditEntry& e) override {
    try {
      std::lock_guard<std::mutex> lock(mu_);
      int64_t at = e.at ? e.at : clock_.now_ms();
      std::string actor = e.actor, role = e.role, action = e.action, object = e.object,
                  detail = e.detail, address = e.address;
      *s_ << "INSERT INTO audit(at, actor, role, action, object, detail, address) "
             "VALUES(?,?,?,?,?,?,?)",
          use(at), use(actor), use(role), use(action), use(object), use(detail), use(address), now;
    } catch (const std::exception& ex) {
      log_error("audit", std::string("cannot append to the audit trail: ") + ex.what());
    }
  }

  std::vector<AuditEntry> audit_entries(const AuditFilter& f) override {
    auto q = console_sql::audit(f);
    return rows<AuditEntry>(q, [](RecordSet& rs, size_t i) {
      AuditEntry e;
      e.id = rs.value(0, i).convert<int64_t>();
      e.at = rs.value(1, i).convert<int64_t>();
      e.actor = rs.value(2, i).convert<std::string>();
      e.role = rs.value(3, i).convert<std::string>();
      e.action = rs.value(4, i).convert<std::string>();
      e.object = rs.value(5, i).convert<std::string>();
      e.detail = rs.value(6, i).convert<std::string>();
      e.address = rs.value(7, i).convert<std::string>();
      return e;
    });
  }

  std::vector<DeskItem> desk(const DeskFilter& f) override {
    auto q = console_sql::desk(f);
    return rows<DeskItem>(q, [this](RecordSet& rs, size_t i) {
      DeskItem d;
      d.delivery_id = rs.value(0, i).convert<int64_t>();
      d.message_id = rs.value(1, i).convert<std::string>();
      d.source = rs.value(2, i).convert<std::string>();
      d.type = rs.value(3, i).convert<std::string>();
      d.correlation = rs.value(4, i).convert<std::string>();
      d.destination = rs.value(5, i).convert<std::string>();
      d.route = rs.value(6, i).convert<std::string>();
      d.state = rs.value(7, i).convert<std::string>();
      d.attempts = rs.value(8, i).convert<int>();
      d.last_class = rs.value(9, i).convert<std::string>();
      d.last_code = rs.value(10, i).convert<int>();
      d.last_text = rs.value(11, i).convert<std::string>();
      d.updated_at = rs.value(12, i).convert<int64_t>();
      d.received_at = rs.value(13, i).convert<int64_t>();
      if (!rs.value(14, i).isEmpty()) {
        // Only for the explanation: an excerpt that does not decrypt explains nothing.
        Status st = AtRestCipher::open_with(
            cipher_.get(), excerpt_aad(d.delivery_id, rs.value(15, i).convert<int64_t>()),
            rs.value(14, i).convert<std::string>(), d.last_excerpt);
        if (!st.ok) d.last_excerpt.clear();
      }
      return d;
    });
  }

  int64_t desk_count(const DeskFilter& f) override {
    auto q = console_sql::desk_count(f);
    std::lock_guard<std::mutex> lock(mu_);
    Statement st(*s_);
    int64_t n = 0;
    st << q.sql;
    bind(st, q);
    st, into(n);
    st.execute();
    return n;
  }

  std::vector<int64_t> desk_ids(const DeskFilter& f, size_t max) override {
    auto q = console_sql::desk_ids(f, max);
    return rows<int64_t>(q,
                         [](RecordSet& rs, size_t i) { return rs.value(0, i).convert<int64_t>(); });
  }

  std::vector<DestinationFigures> figures(Millis since, Millis now_ms) override {
    // Every statement is an index seek (deliveries_destination_state: destination, state,
    // updated_at; deliveries_active for the retrying ones), so the dashboard and the alerts'
    // monitor cost the same on a store of a million deliveries as on an empty one
    // (StoreQueryPlan.DashboardFiguresSeekTheirIndexes checks the plans).
    std::map<std::string, DestinationFigures> by;
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> destinations;
    {
      Statement st(*s_);
      st << kFiguresDestinations, into(destinations), now;
    }
    const int64_t day_start = now_ms - 24 * 3600000LL;
    for (const std::string& dest : destinations) {
      auto& f = by[dest];
      f.destination = dest;
      for (const char* state : {"delivered", "dead"}) {
        std::string d = dest, s = state;
        int64_t from = since, count = 0;
        Poco::Nullable<int64_t> last;
        Statement c(*s_);
        c << kFiguresCount, use(d), use(s), use(from), into(count), now;
        Statement m(*s_);
        m << kFiguresLast, use(d), use(s), into(last), now;
        Millis at = last.isNull() ? 0 : last.value();
        if (s == "delivered") {
          f.delivered = count;
          f.last_success = at;
        } else {
          f.dead = count;
          f.last_failure = std::max(f.last_failure, at);
        }
      }
      std::string d = dest;
      int64_t start = day_start, start2 = day_start;
      Statement h(*s_);
      h << kFiguresHourly, use(start), use(d), use(start2), now;
      RecordSet rs(h);
      for (size_t i = 0; i < rs.rowCount(); ++i) {
        int64_t hour = rs.value(0, i).convert<int64_t>();
        if (hour >= 0 && hour < 24) {
          f.hourly[static_cast<size_t>(hour)] += rs.value(1, i).convert<int64_t>();
        }
      }
    }
    {
      // A delivery waiting because the partner asked to slow down is not failing: it counts
      // neither as a failure of the day nor in the circuit (nor in the connector_failing alert).
      int64_t from = since;
      Statement st(*s_);
      st << kFiguresRetrying, use(from), now;
      RecordSet rs(st);
      for (size_t i = 0; i < rs.rowCount(); ++i) {
        auto& f = by[rs.value(0, i).convert<std::string>()];
        f.destination = rs.value(0, i).convert<std::string>();
        f.failed += rs.value(1, i).isEmpty() ? 0 : rs.value(1, i).convert<int64_t>();
        int64_t last = rs.value(2, i).isEmpty() ? 0 : rs.value(2, i).convert<int64_t>();
        f.last_failure = std::max(f.last_failure, last);
      }
    }
    std::vector<DestinationFigures> out;
    for (auto& [k, v] : by) out.push_back(std::move(v));
    return out;
  }

 private:
  // Runs a SELECT built with bound parameters; one Row per result row.
  template <class Row, class Fn>
  std::vector<Row> rows(console_sql::Query& q, Fn row) {
    std::lock_guard<std::mutex> lock(mu_);
    Statement st(*s_);
    st << q.sql;
    bind(st, q);
    st.execute();
    RecordSet rs(st);
    std::vector<Row> out;
    out.reserve(rs.rowCount());
    for (size_t i = 0; i < rs.rowCount(); ++i) out.push_back(row(rs, i));
    return out;
  }

  static UserRecord user_row(RecordSet& rs, size_t i) {
    UserRecord u;
    u.name = rs.value(0, i).convert<std::string>();
    u.role = rs.value(1, i).convert<std::string>();
    u.password = rs.value(2, i).convert<std::string>();
    u.created_at = rs.value(3, i).convert<int64_t>();
    u.created_by = rs.value(4, i).convert<std::string>();
    u.disabled = rs.value(5, i).convert<int>() != 0;
    return u;
  }

  std::vector<ApiTokenRecord> load_tokens() {
    Statement st(*s_);
    st << "SELECT name, role, sources, sha256, created_at, created_by, revoked_at "
          "FROM api_tokens ORDER BY name",
        now;
    RecordSet rs(st);
    std::vector<ApiTokenRecord> out;
    for (size_t i = 0; i < rs.rowCount(); ++i) {
      ApiTokenRecord t;
      t.name = rs.value(0, i).convert<std::string>();
      t.role = rs.value(1, i).convert<std::string>();
      t.sources = split_sources(rs.value(2, i).convert<std::string>());
      t.sha256 = rs.value(3, i).convert<std::string>();
      t.created_at = rs.value(4, i).convert<int64_t>();
      t.created_by = rs.value(5, i).convert<std::string>();
      t.revoked_at = rs.value(6, i).convert<int64_t>();
      out.push_back(std::move(t));
    }
    return out;
  }

  const Clock& clock_;
  const std::shared_ptr<const AtRestCipher> cipher_;
  std::mutex mu_;
  std::unique_ptr<Session> s_;
  console_sql::TokenCache tokens_;
};

}  // namespace

std::unique_ptr<ConsoleStore> open_sqlite_console_store(
    const std::string& path, const Clock& clock, StoreAccess access,
    std::shared_ptr<const AtRestCipher> cipher) {
  return std::make_unique<SqliteConsoleStore>(path, clock, access, std::move(cipher));
}

std::vector<HotStatement> sqlite_console_figures_statements() {
  return {{"figures: destinations", kFiguresDestinations},
          {"figures: count since", kFiguresCount},
          {"figures: last outcome", kFiguresLast},
          {"figures: hourly", kFiguresHourly},
          {"figures: retrying", kFiguresRetrying}};
}

}  // namespace relais

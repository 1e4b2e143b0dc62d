// ConsoleStore on the SQLite store file (tables created by migration 6 of sqlite_store.cpp).

#include <Poco/Data/RecordSet.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>

#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "core/console_store.h"
#include "core/log.h"
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

// Bound values of a statement built piece by piece (a deque keeps their addresses stable).
struct Params {
  struct P {
    bool is_int = false;
    std::string s;
    int64_t i = 0;
  };
  std::deque<P> items;
  void str(std::string v) { items.push_back({false, std::move(v), 0}); }
  void num(int64_t v) { items.push_back({true, {}, v}); }
  void bind(Statement& st) {
    for (auto& p : items) {
      if (p.is_int) {
        st, use(p.i);
      } else {
        st, use(p.s);
      }
    }
  }
};

std::string join_sources(const std::vector<std::string>& v) {
  nlohmann::json j = v;
  return j.dump();
}

std::vector<std::string> split_sources(const std::string& text) {
  std::vector<std::string> out;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_array()) {
    for (const auto& e : j) {
      if (e.is_string()) out.push_back(e.get<std::string>());
    }
  }
  return out;
}

// `s` for a LIKE pattern with ESCAPE '\\': its wildcards and backslashes escaped, between
// `before` and `after` ("%" for "contains"). Built by appending: `"%" + like_escape(s)` inlines
// std::string::insert, on which GCC 12 at -O3 reports a false -Wrestrict overlap.
std::string like_pattern(const std::string& s, const char* before, const char* after) {
  std::string out = before;
  for (char c : s) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  out += after;
  return out;
}

class SqliteConsoleStore final : public ConsoleStore {
 public:
  SqliteConsoleStore(const std::string& path, const Clock& clock, StoreAccess access,
                     std::shared_ptr<const AtRestCipher> cipher)
      : clock_(clock),
        cipher_(std::move(cipher)),
        s_(open_store_session(path, "audit", "console", access)) {
    for (auto& t : load_tokens()) tokens_[t.sha256] = t;
    tokens_loaded_ = clock_.now_ms();
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
    tokens_[sha] = copy;
    return Status::success();
  }

  std::vector<ApiTokenRecord> tokens() override {
    std::lock_guard<std::mutex> lock(mu_);
    return load_tokens();
  }

  std::optional<ApiTokenRecord> token_by_sha256(const std::string& sha256) override {
    std::lock_guard<std::mutex> lock(mu_);
    // Tokens created or revoked on another node (or by the CLI) are seen within 10 seconds.
    Millis now = clock_.now_ms();
    if (now - tokens_loaded_ >= 10000) {
      tokens_.clear();
      for (auto& t : load_tokens()) tokens_[t.sha256] = t;
      tokens_loaded_ = now;
    }
    auto it = tokens_.find(sha256);
    if (it == tokens_.end() || it->second.revoked_at != 0) return std::nullopt;
    return it->second;
  }

  void tokens_changed() override {
    std::lock_guard<std::mutex> lock(mu_);
    tokens_loaded_ = std::numeric_limits<Millis>::min() / 2;
  }

  Status revoke_token(const std::string& name, Millis at) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::string n = name;
    int64_t a = at;
    Statement st(*s_);
    st << "UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at = 0", use(a), use(n);
    size_t changed = st.execute();
    if (changed == 0) return Status::failure(404, "not found", "no valid token '" + name + "'");
    for (auto& [sha, t] : tokens_) {
      if (t.name == name) t.revoked_at = at;
    }
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
    std::string sql =
        "SELECT id, at, actor, role, action, object, detail, address FROM audit WHERE 1=1";
    Params p;
    if (!f.actor.empty()) {
      sql += " AND actor = ?";
      p.str(f.actor);
    }
    if (!f.action.empty()) {
      if (f.action.back() == '.') {
        sql += " AND action LIKE ? ESCAPE '\\'";
        p.str(like_pattern(f.action, "", "%"));
      } else {
        sql += " AND action = ?";
        p.str(f.action);
      }
    }
    if (!f.object.empty()) {
      sql += " AND object LIKE ? ESCAPE '\\'";
      p.str(like_pattern(f.object, "%", "%"));
    }
    if (f.from) {
      sql += " AND at >= ?";
      p.num(f.from);
    }
    if (f.to) {
      sql += " AND at < ?";
      p.num(f.to);
    }
    if (f.before_id) {
      sql += " AND id < ?";
      p.num(f.before_id);
    }
    sql += " ORDER BY id DESC LIMIT ?";
    p.num(f.limit);
    return rows<AuditEntry>(sql, p, [](RecordSet& rs, size_t i) {
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
    Params p;
    std::string sql =
        "SELECT d.id, m.id, m.source, m.type, m.correlation, d.destination, d.route, d.state, "
        "d.attempts, d.last_class, d.last_code, d.last_text, d.updated_at, m.received_at, "
        "(SELECT a.excerpt FROM attempts a WHERE a.delivery_id = d.id ORDER BY a.id DESC "
        "LIMIT 1), "
        "(SELECT a.at FROM attempts a WHERE a.delivery_id = d.id ORDER BY a.id DESC LIMIT 1) "
        "FROM deliveries d JOIN messages m ON m.seq = d.message_seq WHERE " +
        where(f, p);
    if (f.before_id) {
      sql += " AND d.id < ?";
      p.num(f.before_id);
    }
    sql += " ORDER BY d.id DESC LIMIT ?";
    p.num(f.limit);
    return rows<DeskItem>(sql, p, [this](RecordSet& rs, size_t i) {
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
    Params p;
    std::string sql =
        "SELECT COUNT(*) FROM deliveries d JOIN messages m ON m.seq = d.message_seq WHERE " +
        where(f, p);
    std::lock_guard<std::mutex> lock(mu_);
    Statement st(*s_);
    int64_t n = 0;
    st << sql;
    p.bind(st);
    st, into(n);
    st.execute();
    return n;
  }

  std::vector<int64_t> desk_ids(const DeskFilter& f, size_t max) override {
    Params p;
    std::string sql =
        "SELECT d.id FROM deliveries d JOIN messages m ON m.seq = d.message_seq WHERE " +
        where(f, p) + " ORDER BY d.id LIMIT ?";
    p.num(static_cast<int64_t>(max));
    return rows<int64_t>(sql, p,
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
  std::vector<Row> rows(const std::string& sql, Params& p, Fn row) {
    std::lock_guard<std::mutex> lock(mu_);
    Statement st(*s_);
    st << sql;
    p.bind(st);
    st.execute();
    RecordSet rs(st);
    std::vector<Row> out;
    out.reserve(rs.rowCount());
    for (size_t i = 0; i < rs.rowCount(); ++i) out.push_back(row(rs, i));
    return out;
  }

  static std::string where(const DeskFilter& f, Params& p) {
    std::string w = "d.state IN (";
    for (size_t i = 0; i < f.states.size(); ++i) {
      w += i ? ",?" : "?";
      p.str(f.states[i]);
    }
    if (f.states.empty()) w += "''";
    w += ")";
    if (!f.destination.empty()) {
      w += " AND d.destination = ?";
      p.str(f.destination);
    }
    if (!f.route.empty()) {
      w += " AND d.route = ?";
      p.str(f.route);
    }
    if (!f.error_class.empty()) {
      w += " AND d.last_class = ?";
      p.str(f.error_class);
    }
    if (f.from) {
      w += " AND d.updated_at >= ?";
      p.num(f.from);
    }
    if (f.to) {
      w += " AND d.updated_at < ?";
      p.num(f.to);
    }
    if (!f.text.empty()) {
      std::string like = like_pattern(f.text, "%", "%");
      w += " AND (m.correlation LIKE ? ESCAPE '\\' OR m.id = ? OR m.type LIKE ? ESCAPE '\\' "
           "OR d.last_text LIKE ? ESCAPE '\\')";
      p.str(like);
      p.str(f.text);
      p.str(like);
      p.str(like);
    }
    return w;
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
  std::map<std::string, ApiTokenRecord> tokens_;  // by sha256 (revoked ones kept, marked)
  Millis tokens_loaded_ = 0;                      // when tokens_ was read from the store
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

// The console stores' shared queries (store/console_queries.h).

#include "store/console_queries.h"

#include <nlohmann/json.hpp>

namespace relais::console_sql {
namespace {

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

// The desk's conditions, appended to q.sql.
void where(const DeskFilter& f, Query& q) {
  std::string& w = q.sql;
  w += "d.state IN (";
  for (size_t i = 0; i < f.states.size(); ++i) {
    w += i ? ",?" : "?";
    q.str(f.states[i]);
  }
  if (f.states.empty()) w += "''";
  w += ")";
  if (!f.destination.empty()) {
    w += " AND d.destination = ?";
    q.str(f.destination);
  }
  if (!f.route.empty()) {
    w += " AND d.route = ?";
    q.str(f.route);
  }
  if (!f.error_class.empty()) {
    w += " AND d.last_class = ?";
    q.str(f.error_class);
  }
  if (f.from) {
    w += " AND d.updated_at >= ?";
    q.num(f.from);
  }
  if (f.to) {
    w += " AND d.updated_at < ?";
    q.num(f.to);
  }
  if (!f.text.empty()) {
    std::string like = like_pattern(f.text, "%", "%");
    w += " AND (m.correlation LIKE ? ESCAPE '\\' OR m.id = ? OR m.type LIKE ? ESCAPE '\\' "
         "OR d.last_text LIKE ? ESCAPE '\\')";
    q.str(like);
    q.str(f.text);
    q.str(like);
    q.str(like);
  }
}

constexpr const char* kDeskFrom =
    " FROM deliveries d JOIN messages m ON m.seq = d.message_seq WHERE ";

}  // namespace

Query audit(const AuditFilter& f) {
  Query q;
  q.sql = "SELECT id, at, actor, role, action, object, detail, address FROM audit WHERE 1=1";
  if (!f.actor.empty()) {
    q.sql += " AND actor = ?";
    q.str(f.actor);
  }
  if (!f.action.empty()) {
    if (f.action.back() == '.') {
      q.sql += " AND action LIKE ? ESCAPE '\\'";
      q.str(like_pattern(f.action, "", "%"));
    } else {
      q.sql += " AND action = ?";
      q.str(f.action);
    }
  }
  if (!f.object.empty()) {
    q.sql += " AND object LIKE ? ESCAPE '\\'";
    q.str(like_pattern(f.object, "%", "%"));
  }
  if (f.from) {
    q.sql += " AND at >= ?";
    q.num(f.from);
  }
  if (f.to) {
    q.sql += " AND at < ?";
    q.num(f.to);
  }
  if (f.before_id) {
    q.sql += " AND id < ?";
    q.num(f.before_id);
  }
  q.sql += " ORDER BY id DESC LIMIT ?";
  q.num(f.limit);
  return q;
}

Query desk(const DeskFilter& f) {
  Query q;
  q.sql =
      "SELECT d.id, m.id, m.source, m.type, m.correlation, d.destination, d.route, d.state, "
      "d.attempts, d.last_class, d.last_code, d.last_text, d.updated_at, m.received_at, "
      "(SELECT a.excerpt FROM attempts a WHERE a.delivery_id = d.id ORDER BY a.id DESC "
      "LIMIT 1), "
      "(SELECT a.at FROM attempts a WHERE a.delivery_id = d.id ORDER BY a.id DESC LIMIT 1)";
  q.sql += kDeskFrom;
  where(f, q);
  if (f.before_id) {
    q.sql += " AND d.id < ?";
    q.num(f.before_id);
  }
  q.sql += " ORDER BY d.id DESC LIMIT ?";
  q.num(f.limit);
  return q;
}

Query desk_count(const DeskFilter& f) {
  Query q;
  q.sql = std::string("SELECT COUNT(*)") + kDeskFrom;
  where(f, q);
  return q;
}

Query desk_ids(const DeskFilter& f, size_t max) {
  Query q;
  q.sql = std::string("SELECT d.id") + kDeskFrom;
  where(f, q);
  q.sql += " ORDER BY d.id LIMIT ?";
  q.num(static_cast<int64_t>(max));
  return q;
}

std::string numbered(const std::string& sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int n = 0;
  for (char c : sql) {
    if (c == '?') {
      out += '$';
      out += std::to_string(++n);
    } else {
      out += c;
    }
  }
  return out;
}

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

std::optional<ApiTokenRecord> TokenCache::find(
    const std::string& sha256, Millis now,
    const std::function<std::vector<ApiTokenRecord>()>& load) {
  if (now - loaded_ >= 10000) reload(load(), now);
  auto it = tokens_.find(sha256);
  if (it == tokens_.end() || it->second.revoked_at != 0) return std::nullopt;
  return it->second;
}

void TokenCache::reload(std::vector<ApiTokenRecord> tokens, Millis now) {
  tokens_.clear();
  for (auto& t : tokens) tokens_[t.sha256] = std::move(t);
  loaded_ = now;
}

void TokenCache::revoked(const std::string& name, Millis at) {
  for (auto& [sha, t] : tokens_) {
    if (t.name == name) t.revoked_at = at;
  }
}

}  // namespace relais::console_sql

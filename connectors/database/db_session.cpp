#include "connectors/database/db_session.h"

#include "core/log.h"

#include <libpq-fe.h>
#include <mysql.h>

#include <Poco/Data/Date.h>
#include <Poco/Data/LOB.h>
#include <Poco/Data/MetaColumn.h>
#include <Poco/Data/RecordSet.h>
#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>
#include <Poco/Data/Time.h>
#include <Poco/DateTime.h>
#include <Poco/Exception.h>

#include <cctype>
#include <charconv>
#include <cstdio>
#include <mutex>
#include <stdexcept>

namespace relais::db {

// ---------------------------------------------------------------------------------------------
// SqlTemplate

namespace {

bool name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool name_char(char c) {
  return name_start(c) || (c >= '0' && c <= '9');
}

}  // namespace

bool SqlTemplate::parse(const std::string& sql, SqlTemplate& out, std::string& error) {
  out = SqlTemplate{};
  out.text_ = sql;
  std::string piece;
  size_t i = 0;
  const size_t n = sql.size();
  while (i < n) {
    char c = sql[i];
    if (c == '\'' || c == '"' || c == '`') {  // a literal or a quoted identifier, copied whole
      size_t end = i + 1;
      while (true) {
        if (end >= n) {
          error = std::string("unterminated ") + (c == '\'' ? "string literal" : "quoted name");
          return false;
        }
        if (sql[end] == '\\' && c == '\'' && end + 1 < n) {
          end += 2;  // MySQL escapes
          continue;
        }
        if (sql[end] == c) {
          if (end + 1 < n && sql[end + 1] == c) {  // doubled quote
            end += 2;
            continue;
          }
          break;
        }
        ++end;
      }
      piece.append(sql, i, end + 1 - i);
      i = end + 1;
    } else if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
      size_t end = sql.find('\n', i);
      if (end == std::string::npos) end = n;
      piece.append(sql, i, end - i);
      i = end;
    } else if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
      size_t end = sql.find("*/", i + 2);
      if (end == std::string::npos) {
        error = "unterminated /* comment";
        return false;
      }
      piece.append(sql, i, end + 2 - i);
      i = end + 2;
    } else if (c == ':' && i + 1 < n && sql[i + 1] == ':') {  // PostgreSQL cast
      piece += "::";
      i += 2;
    } else if (c == ':' && i + 1 < n && name_start(sql[i + 1]) &&
               (i == 0 || !name_char(sql[i - 1]))) {
      size_t end = i + 1;
      while (end < n && name_char(sql[end])) ++end;
      out.pieces_.push_back(std::move(piece));
      piece.clear();
      out.names_.push_back(sql.substr(i + 1, end - i - 1));
      i = end;
    } else {
      piece += c;
      ++i;
    }
  }
  out.pieces_.push_back(std::move(piece));
  return true;
}

bool SqlTemplate::uses(const std::string& name) const {
  for (const auto& n : names_) {
    if (n == name) return true;
  }
  return false;
}

std::string Session::render(const SqlTemplate& sql, const std::vector<Param>& params,
                            Placeholders style, std::vector<const Param*>& bound_params,
                            std::vector<std::string>& bound, Status& status,
                            const std::function<std::string(const std::string&)>& literal) {
  std::string text = sql.pieces_.empty() ? sql.text_ : sql.pieces_[0];
  for (size_t i = 0; i < sql.names_.size(); ++i) {
    const Param* p = nullptr;
    for (const auto& candidate : params) {
      if (candidate.name == sql.names_[i]) p = &candidate;
    }
    if (p == nullptr || (!p->list && p->values.size() != 1) || p->values.empty()) {
      status =
          Status::failure(500, "paramètre sans valeur",
                          "the statement names :" + sql.names_[i] + ", which has no value here");
      return {};
    }
    for (size_t k = 0; k < p->values.size(); ++k) {
      if (k > 0) text += ", ";
      bound.push_back(p->values[k]);
      bound_params.push_back(p);
      if (style == Placeholders::Numbered) {
        // Appended piece by piece: "$" + std::to_string(…) trips GCC 12's false -Wrestrict
        // at -O3 (a packager's Release build).
        text += '$';
        text += std::to_string(bound.size());
      } else if (style == Placeholders::Question) {
        text += "?";
      } else if (p->integer) {
        text += std::to_string(std::stoll(p->values[k]));  // digits only
      } else {
        text += literal(p->values[k]);
      }
    }
    text += sql.pieces_[i + 1];
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// Error texts

namespace {

// The password of a connection string ("password=…" up to a space or ';', or a URI's
// user:password@), or "".
std::string password_of(const std::string& connection) {
  size_t at = connection.find("password=");
  if (at != std::string::npos) {
    size_t start = at + 9;
    size_t end = connection.find_first_of(" ;", start);
    return connection.substr(start, end == std::string::npos ? std::string::npos : end - start);
  }
  size_t scheme = connection.find("://");
  size_t arobase = connection.find('@');
  if (scheme != std::string::npos && arobase != std::string::npos && arobase > scheme) {
    size_t colon = connection.find(':', scheme + 3);
    if (colon != std::string::npos && colon < arobase) {
      return connection.substr(colon + 1, arobase - colon - 1);
    }
  }
  return "";
}

}  // namespace

std::string mask_error_text(const std::string& text, const std::string& password,
                            const std::vector<std::string>& quoted_ok) {
  std::string t = text;
  size_t nl = t.find('\n');
  if (nl != std::string::npos) t.resize(nl);
  while (!t.empty() && (t.back() == ' ' || t.back() == '\r')) t.pop_back();
  if (!password.empty()) {
    for (size_t at = t.find(password); at != std::string::npos; at = t.find(password, at)) {
      t.replace(at, password.size(), "«…»");
    }
  }
  std::string out;
  size_t i = 0;
  while (i < t.size()) {
    char q = t[i];
    // A quote opens a quoted value at the start or after a non-alphanumeric character ("can't"
    // has none).
    bool opens =
        (q == '"' || q == '\'') && (i == 0 || !std::isalnum(static_cast<unsigned char>(t[i - 1])));
    if (!opens) {
      out += q;
      ++i;
      continue;
    }
    size_t end = t.find(q, i + 1);
    if (end == std::string::npos) {
      out += "«…»";  // an unterminated quote: nothing after it is shown
      break;
    }
    std::string inside = t.substr(i + 1, end - i - 1);
    bool known = inside.empty();
    for (const auto& ok : quoted_ok) {
      if (!known && ok.find(inside) != std::string::npos) known = true;
    }
    out += q;
    out += known ? inside : "«…»";
    out += q;
    i = end + 1;
  }
  return out;
}

Status Session::failed(int status, std::string title, const std::string& words,
                       const std::string& suffix) {
  healthy_ = false;
  return Status::failure(status, std::move(title),
                         mask_error_text(words, password_, quoted_ok_) + suffix);
}

namespace {

// ---------------------------------------------------------------------------------------------
// PostgreSQL through libpq

CellKind pg_kind(Oid oid) {
  switch (oid) {
    case 16:
      return CellKind::Bool;
    case 20:
    case 21:
    case 23:
    case 26:
      return CellKind::Integer;
    case 700:
    case 701:
    case 1700:
      return CellKind::Number;
    case 114:
    case 3802:
      return CellKind::Json;
    case 1082:
      return CellKind::Date;
    case 1083:
      return CellKind::Time;
    case 1114:
      return CellKind::Timestamp;
    case 1184:
      return CellKind::TimestampTz;
    case 17:
      return CellKind::Bytes;
    default:
      return CellKind::Text;
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// bytea's hex output ("\x0102") as raw bytes.
std::string pg_bytes(const char* text, int length) {
  std::string out;
  if (length >= 2 && text[0] == '\\' && text[1] == 'x') {
    for (int i = 2; i + 1 < length; i += 2) {
      int hi = hex_value(text[i]);
      int lo = hex_value(text[i + 1]);
      if (hi < 0 || lo < 0) break;
      out += static_cast<char>(hi * 16 + lo);
    }
    return out;
  }
  return std::string(text, static_cast<size_t>(length));
}

class PgSession final : public Session {
 public:
  PgSession(PGconn* conn, std::string password, std::vector<std::string> quoted_ok)
      : Session(std::move(password), std::move(quoted_ok)), conn_(conn) {}
  ~PgSession() override { PQfinish(conn_); }

  Status query(const SqlTemplate& sql, const std::vector<Param>& params, ResultSet& out) override {
    out = ResultSet{};
    PGresult* r = nullptr;
    Status s = run(sql, params, r);
    if (!s.ok) return s;
    int cols = PQnfields(r);
    int rows = PQntuples(r);
    std::vector<CellKind> kinds;
    for (int c = 0; c < cols; ++c) {
      out.columns.emplace_back(PQfname(r, c));
      kinds.push_back(pg_kind(PQftype(r, c)));
    }
    out.rows.resize(static_cast<size_t>(rows));
    for (int i = 0; i < rows; ++i) {
      auto& row = out.rows[static_cast<size_t>(i)];
      row.resize(static_cast<size_t>(cols));
      for (int c = 0; c < cols; ++c) {
        Cell& cell = row[static_cast<size_t>(c)];
        if (PQgetisnull(r, i, c)) continue;
        cell.kind = kinds[static_cast<size_t>(c)];
        const char* v = PQgetvalue(r, i, c);
        int len = PQgetlength(r, i, c);
        if (cell.kind == CellKind::Bool) {
          cell.text = v[0] == 't' ? "true" : "false";
        } else if (cell.kind == CellKind::Bytes) {
          cell.text = pg_bytes(v, len);
        } else {
          cell.text.assign(v, static_cast<size_t>(len));
        }
      }
    }
    PQclear(r);
    return Status::success();
  }

  Status execute(const SqlTemplate& sql, const std::vector<Param>& params,
                 int64_t& affected) override {
    PGresult* r = nullptr;
    Status s = run(sql, params, r);
    if (!s.ok) return s;
    const char* n = PQcmdTuples(r);
    affected = (n != nullptr && *n != '\0') ? std::stoll(n) : 0;
    PQclear(r);
    return Status::success();
  }

  bool healthy() const override { return healthy_ && PQstatus(conn_) == CONNECTION_OK; }

  // Runs a statement without parameters (session settings). Failure text masked.
  Status simple(const std::string& text) {
    PGresult* r = PQexec(conn_, text.c_str());
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      // A server going down may accept the connection and close it at once.
      bool down = PQstatus(conn_) != CONNECTION_OK;
      Status f = failed(down ? 503 : 502,
                        down ? "base de données injoignable" : "réglage de session refusé",
                        PQresultErrorMessage(r));
      PQclear(r);
      return f;
    }
    PQclear(r);
    return Status::success();
  }

 private:
  Status run(const SqlTemplate& sql, const std::vector<Param>& params, PGresult*& r) {
    Status s;
    std::vector<const Param*> bound_params;
    std::vector<std::string> bound;
    std::string text = render(sql, params, Placeholders::Numbered, bound_params, bound, s);
    if (!s.ok) return s;
    std::vector<const char*> values;
    for (const auto& b : bound) values.push_back(b.c_str());
    r = PQexecParams(conn_, text.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                     nullptr, nullptr, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) return Status::success();
    std::string words = r != nullptr ? PQresultErrorMessage(r) : PQerrorMessage(conn_);
    const char* state = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    std::string code = state != nullptr ? state : "";
    PQclear(r);
    r = nullptr;
    // The connection lost, or the server shutting down or starting (57P01, 57P02, 57P03).
    if (PQstatus(conn_) != CONNECTION_OK || code.rfind("57P0", 0) == 0) {
      return failed(503, "base de données injoignable", words);
    }
    if (code == "57014") return failed(504, "requête trop longue", words);
    return failed(502, "requête refusée par la base", words,
                  code.empty() ? "" : " (SQLSTATE " + code + ")");
  }

  PGconn* conn_;
};

Status connect_pg(const std::string& connection, const Timeouts& t,
                  const std::vector<std::string>& quoted_ok, std::unique_ptr<Session>& out) {
  std::string password = password_of(connection);
  std::string connect_s = std::to_string(std::max<int64_t>(2, (t.connect_ms + 999) / 1000));
  // A connection that stops answering is cut after the query time plus a margin.
  std::string user_timeout = std::to_string(t.query_ms + 10000);
  const char* keys[] = {"dbname",     "connect_timeout",  "tcp_user_timeout",
                        "keepalives", "application_name", nullptr};
  const char* values[] = {
      connection.c_str(), connect_s.c_str(), user_timeout.c_str(), "1", "relais", nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, 1);
  if (conn == nullptr) return Status::failure(503, "base de données injoignable", "out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string detail = mask_error_text(PQerrorMessage(conn), password, quoted_ok);
    PQfinish(conn);
    return Status::failure(503, "base de données injoignable", detail);
  }
  auto session = std::make_unique<PgSession>(conn, password, quoted_ok);
  Status s = session->simple("SET statement_timeout = " + std::to_string(t.query_ms) +
                             "; SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD';"
                             " SET client_encoding = 'UTF8'");
  if (!s.ok) return s;
  out = std::move(session);
  return Status::success();
}

// ---------------------------------------------------------------------------------------------
// SQLite through Poco::Data

std::string two(int v) {
  char b[8];
  std::snprintf(b, sizeof b, "%02d", v);
  return b;
}

// ".5" for 500000 µs (as PostgreSQL writes it), "" for none.
std::string fraction(int micros) {
  if (micros == 0) return "";
  char b[16];
  std::snprintf(b, sizeof b, ".%06d", micros);
  std::string out = b;
  while (out.back() == '0') out.pop_back();
  return out;
}

std::string shortest(double d) {
  char b[64];
  auto r = std::to_chars(b, b + sizeof b, d);
  return std::string(b, r.ptr);
}

Cell poco_cell(const Poco::Dynamic::Var& v, Poco::Data::MetaColumn::ColumnDataType type) {
  using MC = Poco::Data::MetaColumn;
  Cell c;
  if (v.isEmpty()) return c;
  switch (type) {
    case MC::FDT_BOOL:
      c.kind = CellKind::Bool;
      c.text = v.convert<bool>() ? "true" : "false";
      break;
    case MC::FDT_INT8:
    case MC::FDT_INT16:
    case MC::FDT_INT32:
    case MC::FDT_INT64:
      c.kind = CellKind::Integer;
      c.text = std::to_string(v.convert<Poco::Int64>());
      break;
    case MC::FDT_UINT8:
    case MC::FDT_UINT16:
    case MC::FDT_UINT32:
    case MC::FDT_UINT64:
      c.kind = CellKind::Integer;
      c.text = std::to_string(v.convert<Poco::UInt64>());
      break;
    case MC::FDT_FLOAT:
    case MC::FDT_DOUBLE:
      c.kind = CellKind::Number;
      c.text = shortest(v.convert<double>());
      break;
    case MC::FDT_CLOB: {
      const auto& lob = v.extract<Poco::Data::CLOB>();
      c.kind = CellKind::Text;
      c.text.assign(lob.rawContent(), lob.size());
      break;
    }
    case MC::FDT_BLOB: {
      const auto& lob = v.extract<Poco::Data::BLOB>();
      c.kind = CellKind::Bytes;
      c.text.assign(reinterpret_cast<const char*>(lob.rawContent()), lob.size());
      break;
    }
    case MC::FDT_DATE: {
      const auto& d = v.extract<Poco::Data::Date>();
      c.kind = CellKind::Date;
      c.text = std::to_string(d.year()) + "-" + two(d.month()) + "-" + two(d.day());
      break;
    }
    case MC::FDT_TIME: {
      const auto& t = v.extract<Poco::Data::Time>();
      c.kind = CellKind::Time;
      c.text = two(t.hour()) + ":" + two(t.minute()) + ":" + two(t.second());
      break;
    }
    case MC::FDT_TIMESTAMP: {
      const auto& t = v.extract<Poco::DateTime>();
      c.kind = CellKind::Timestamp;
      c.text = std::to_string(t.year()) + "-" + two(t.month()) + "-" + two(t.day()) + " " +
               two(t.hour()) + ":" + two(t.minute()) + ":" + two(t.second()) +
               fraction(t.millisecond() * 1000 + t.microsecond());
      break;
    }
    case MC::FDT_UNKNOWN:
      throw std::runtime_error("a column of a type Poco::Data cannot read (cast it in the query)");
    default:
      c.kind = CellKind::Text;
      c.text = v.convert<std::string>();
      break;
  }
  return c;
}

// SQLite's words when the file cannot be opened (the database "down").
bool sqlite_unreachable(const std::string& text) {
  return text.find("unable to open database") != std::string::npos;
}

std::once_flag poco_registered;

class PocoSession final : public Session {
 public:
  PocoSession(std::unique_ptr<Poco::Data::Session> session, std::string password,
              std::vector<std::string> quoted_ok)
      : Session(std::move(password), std::move(quoted_ok)), session_(std::move(session)) {}
  ~PocoSession() override {
    try {
      if (session_) session_->close();
    } catch (...) {  // closing a connection that died: nothing to do
    }
  }

  Status query(const SqlTemplate& sql, const std::vector<Param>& params, ResultSet& out) override {
    out = ResultSet{};
    return guarded([&] {
      Poco::Data::Statement st(*session_);
      if (!prepare(st, sql, params)) return;
      st.execute();
      Poco::Data::RecordSet rs(st);
      size_t cols = rs.columnCount();
      std::vector<Poco::Data::MetaColumn::ColumnDataType> types;
      for (size_t c = 0; c < cols; ++c) {
        out.columns.push_back(rs.columnName(c));
        types.push_back(rs.columnType(c));
      }
      size_t rows = rs.rowCount();
      out.rows.resize(rows);
      for (size_t r = 0; r < rows; ++r) {
        out.rows[r].reserve(cols);
        for (size_t c = 0; c < cols; ++c)
          out.rows[r].push_back(poco_cell(rs.value(c, r), types[c]));
      }
    });
  }

  Status execute(const SqlTemplate& sql, const std::vector<Param>& params,
                 int64_t& affected) override {
    return guarded([&] {
      Poco::Data::Statement st(*session_);
      if (!prepare(st, sql, params)) return;
      affected = static_cast<int64_t>(st.execute());
    });
  }

  bool healthy() const override { return healthy_; }

  // Runs a session setting; false when the server refuses it (the session stays usable).
  bool setting(const std::string& text) {
    try {
      Poco::Data::Statement st(*session_);
      st << text;
      st.execute();
      return true;
    } catch (const Poco::Exception&) {
      return false;
    }
  }

 private:
  bool prepare(Poco::Data::Statement& st, const SqlTemplate& sql,
               const std::vector<Param>& params) {
    std::vector<const Param*> bound_params;
    std::vector<std::string> bound;
    pending_ = Status::success();
    std::string text = render(sql, params, Placeholders::Question, bound_params, bound, pending_);
    if (!pending_.ok) return false;
    st << text;
    integers_.clear();
    texts_ = std::move(bound);
    integers_.reserve(texts_.size());
    for (size_t i = 0; i < texts_.size(); ++i) {
      if (bound_params[i]->integer) {
        integers_.push_back(std::stoll(texts_[i]));
        st, Poco::Data::Keywords::use(integers_.back());
      } else {
        st, Poco::Data::Keywords::use(texts_[i]);
      }
    }
    return true;
  }

  template <class F>
  Status guarded(F&& f) {
    pending_ = Status::success();
    try {
      f();
      return pending_;
    } catch (const Poco::Data::ConnectionFailedException& e) {
      return failed(503, "base de données injoignable", e.displayText());
    } catch (const Poco::Exception& e) {
      bool down = sqlite_unreachable(e.displayText());
      return failed(down ? 503 : 502,
                    down ? "base de données injoignable" : "requête refusée par la base",
                    e.displayText());
    } catch (const std::exception& e) {
      return failed(502, "requête refusée par la base", e.what());
    }
  }

  std::unique_ptr<Poco::Data::Session> session_;
  std::vector<std::string> texts_;  // the values bound by reference (use) for one statement
  std::vector<Poco::Int64> integers_;
  Status pending_;
};

Status connect_sqlite(const std::string& connection, const Timeouts& t,
                      const std::vector<std::string>& quoted_ok, std::unique_ptr<Session>& out) {
  std::call_once(poco_registered, [] { Poco::Data::SQLite::Connector::registerConnector(); });
  std::unique_ptr<Poco::Data::Session> session;
  try {
    // The timeout is SQLite's busy timeout: how long a statement waits for a lock.
    session = std::make_unique<Poco::Data::Session>(
        "sqlite", connection, static_cast<size_t>(std::max<int64_t>(1, (t.query_ms + 999) / 1000)));
  } catch (const Poco::Exception& e) {
    return Status::failure(503, "base de données injoignable",
                           mask_error_text(e.displayText(), "", quoted_ok));
  }
  out = std::make_unique<PocoSession>(std::move(session), "", quoted_ok);
  return Status::success();
}

// ---------------------------------------------------------------------------------------------
// MySQL/MariaDB through MariaDB Connector/C (text protocol: every value as the server's text)

std::once_flag mysql_initialised;

// The connection string's keys, Poco's MySQL syntax: "host=…;port=…;db=…;user=…;password=…".
struct MySqlTarget {
  std::string host = "localhost", user, password, db, socket, charset = "utf8mb4", ssl_ca;
  unsigned port = 3306;
  bool ssl = false;
};

bool parse_mysql_target(const std::string& text, MySqlTarget& out, std::string& error) {
  size_t from = 0;
  while (from < text.size()) {
    size_t end = text.find(';', from);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(from, end - from);
    from = end + 1;
    size_t eq = item.find('=');
    if (item.find_first_not_of(" ") == std::string::npos) continue;
    if (eq == std::string::npos) {
      error = "an item of the connection string has no '='";
      return false;
    }
    std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    while (!key.empty() && key.front() == ' ') key.erase(0, 1);
    while (!key.empty() && key.back() == ' ') key.pop_back();
    if (key == "host") {
      out.host = value;
    } else if (key == "port") {
      out.port = static_cast<unsigned>(std::atoi(value.c_str()));
    } else if (key == "user") {
      out.user = value;
    } else if (key == "password") {
      out.password = value;
    } else if (key == "db" || key == "database") {
      out.db = value;
    } else if (key == "socket") {
      out.socket = value;
    } else if (key == "character-set") {
      out.charset = value;
    } else if (key == "ssl-ca") {
      out.ssl_ca = value;
      out.ssl = true;
    } else if (key == "ssl") {
      out.ssl = value == "1" || value == "true" || value == "required";
    } else {
      error = "unknown key " + key +
              " in the connection string (host, port, db, user, password, socket, "
              "character-set, ssl, ssl-ca)";
      return false;
    }
  }
  return true;
}

CellKind mysql_kind(const MYSQL_FIELD& f) {
  switch (f.type) {
    case MYSQL_TYPE_TINY:
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_LONG:
    case MYSQL_TYPE_LONGLONG:
    case MYSQL_TYPE_INT24:
    case MYSQL_TYPE_YEAR:
      return CellKind::Integer;
    case MYSQL_TYPE_DECIMAL:
    case MYSQL_TYPE_NEWDECIMAL:
    case MYSQL_TYPE_FLOAT:
    case MYSQL_TYPE_DOUBLE:
      return CellKind::Number;
    case MYSQL_TYPE_DATE:
    case MYSQL_TYPE_NEWDATE:
      return CellKind::Date;
    case MYSQL_TYPE_TIME:
      return CellKind::Time;
    case MYSQL_TYPE_DATETIME:
      return CellKind::Timestamp;
    case MYSQL_TYPE_TIMESTAMP:
      return CellKind::TimestampTz;  // an instant, given in the session's zone (UTC)
    case MYSQL_TYPE_JSON:
      return CellKind::Json;
    case MYSQL_TYPE_BIT:
    case MYSQL_TYPE_GEOMETRY:
      return CellKind::Bytes;
    default:
      return f.charsetnr == 63 ? CellKind::Bytes : CellKind::Text;  // 63: binary
  }
}

class MySqlSession final : public Session {
 public:
  MySqlSession(MYSQL* m, std::string password, std::vector<std::string> quoted_ok)
      : Session(std::move(password), std::move(quoted_ok)), m_(m) {}
  ~MySqlSession() override { mysql_close(m_); }

  Status query(const SqlTemplate& sql, const std::vector<Param>& params, ResultSet& out) override {
    out = ResultSet{};
    MYSQL_RES* res = nullptr;
    Status st = run(sql, params, res);
    if (!st.ok) return st;
    if (res == nullptr) return Status::success();
    unsigned cols = mysql_num_fields(res);
    MYSQL_FIELD* fields = mysql_fetch_fields(res);
    std::vector<CellKind> kinds;
    for (unsigned c = 0; c < cols; ++c) {
      out.columns.emplace_back(fields[c].name, fields[c].name_length);
      kinds.push_back(mysql_kind(fields[c]));
    }
    out.rows.reserve(mysql_num_rows(res));
    while (MYSQL_ROW row = mysql_fetch_row(res)) {
      unsigned long* lengths = mysql_fetch_lengths(res);
      std::vector<Cell> cells(cols);
      for (unsigned c = 0; c < cols; ++c) {
        if (row[c] == nullptr) continue;
        cells[c].kind = kinds[c];
        cells[c].text.assign(row[c], lengths[c]);
      }
      out.rows.push_back(std::move(cells));
    }
    mysql_free_result(res);
    return Status::success();
  }

  Status execute(const SqlTemplate& sql, const std::vector<Param>& params,
                 int64_t& affected) override {
    MYSQL_RES* res = nullptr;
    Status st = run(sql, params, res);
    if (!st.ok) return st;
    if (res != nullptr) mysql_free_result(res);
    affected = static_cast<int64_t>(mysql_affected_rows(m_));
    return Status::success();
  }

  bool healthy() const override { return healthy_; }

  // A session setting; false when the server refuses it (the session stays usable).
  bool setting(const std::string& text) {
    return mysql_real_query(m_, text.c_str(), text.size()) == 0;
  }

 private:
  Status run(const SqlTemplate& sql, const std::vector<Param>& params, MYSQL_RES*& res) {
    Status st;
    std::vector<const Param*> bound_params;
    std::vector<std::string> bound;
    std::string text = render(
        sql, params, Placeholders::Inline, bound_params, bound, st, [this](const std::string& v) {
          std::string out(v.size() * 2 + 3, '\0');
          out[0] = '\'';
          unsigned long n = mysql_real_escape_string(m_, &out[1], v.data(), v.size());
          out.resize(n + 1);
          return out + "'";
        });
    if (!st.ok) return st;
    if (mysql_real_query(m_, text.data(), text.size()) != 0) return fail();
    res = mysql_store_result(m_);
    if (res == nullptr && mysql_field_count(m_) != 0) return fail();
    return Status::success();
  }

  Status fail() {
    unsigned no = mysql_errno(m_);
    std::string code = " (" + std::to_string(no) + ")";
    // CR_CONNECTION_ERROR, CR_CONN_HOST_ERROR, CR_SERVER_GONE_ERROR, CR_SERVER_LOST,
    // CR_SERVER_LOST_EXTENDED: the server is not there (any more); ER_SERVER_SHUTDOWN,
    // ER_CONNECTION_KILLED: it is going away.
    if (no == 2002 || no == 2003 || no == 2006 || no == 2013 || no == 2055 || no == 1053 ||
        no == 1927) {
      return failed(503, "base de données injoignable", mysql_error(m_), code);
    }
    // ER_STATEMENT_TIMEOUT (MariaDB), ER_QUERY_TIMEOUT (MySQL 5.7+)
    if (no == 1969 || no == 3024) return failed(504, "requête trop longue", mysql_error(m_), code);
    return failed(502, "requête refusée par la base", mysql_error(m_), code);
  }

  MYSQL* m_;
};

Status connect_mysql(const std::string& connection, const Timeouts& t,
                     const std::vector<std::string>& quoted_ok, std::unique_ptr<Session>& out) {
  std::call_once(mysql_initialised, [] { mysql_library_init(0, nullptr, nullptr); });
  MySqlTarget target;
  std::string error;
  if (!parse_mysql_target(connection, target, error)) {
    return Status::failure(503, "base de données injoignable", error);
  }
  MYSQL* m = mysql_init(nullptr);
  if (m == nullptr) return Status::failure(503, "base de données injoignable", "out of memory");
  unsigned connect_s = static_cast<unsigned>(std::max<int64_t>(1, (t.connect_ms + 999) / 1000));
  // A connection that stops answering is cut after the query time plus a margin.
  unsigned io_s = static_cast<unsigned>((t.query_ms + 10999) / 1000);
  mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &connect_s);
  mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &io_s);
  mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &io_s);
  mysql_options(m, MYSQL_SET_CHARSET_NAME, target.charset.c_str());
  if (target.ssl) {
    my_bool yes = 1;
    mysql_options(m, MYSQL_OPT_SSL_ENFORCE, &yes);
    mysql_options(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &yes);
    if (!target.ssl_ca.empty()) mysql_options(m, MYSQL_OPT_SSL_CA, target.ssl_ca.c_str());
  }
  if (mysql_real_connect(m, target.host.c_str(), target.user.c_str(), target.password.c_str(),
                         target.db.empty() ? nullptr : target.db.c_str(), target.port,
                         target.socket.empty() ? nullptr : target.socket.c_str(), 0) == nullptr) {
    std::string detail = mask_error_text(mysql_error(m), target.password, quoted_ok) + " (" +
                         std::to_string(mysql_errno(m)) + ")";
    mysql_close(m);
    return Status::failure(503, "base de données injoignable", detail);
  }
  auto s = std::make_unique<MySqlSession>(m, target.password, quoted_ok);
  s->setting("SET time_zone = '+00:00'");
  // MariaDB's limit on a statement's time, else MySQL's (SELECT only, milliseconds).
  if (!s->setting("SET SESSION max_statement_time = " +
                  shortest(static_cast<double>(t.query_ms) / 1000.0)) &&
      !s->setting("SET SESSION max_execution_time = " + std::to_string(t.query_ms))) {
    log_warn("database", "the server accepts no statement time limit: query_timeout unused");
  }
  out = std::move(s);
  return Status::success();
}

}  // namespace

Status connect(const std::string& driver, const std::string& connection, const Timeouts& t,
               const std::vector<std::string>& quoted_ok, std::unique_ptr<Session>& out) {
  out.reset();
  if (driver == "postgresql") return connect_pg(connection, t, quoted_ok, out);
  if (driver == "mysql") return connect_mysql(connection, t, quoted_ok, out);
  if (driver == "sqlite") return connect_sqlite(connection, t, quoted_ok, out);
  return Status::failure(500, "pilote inconnu", "driver " + driver + " is not known");
}

}  // namespace relais::db

#include "store/postgresql/pg_connection.h"

#include <libpq-fe.h>

#include <algorithm>
#include <charconv>
#include <regex>
#include <stdexcept>

#include "core/log.h"

namespace relais::pg {

// --- Params, ArrayText ---------------------------------------------------------------------

Params& Params::operator=(const Params& o) {
  if (this == &o) return *this;
  owned_ = o.owned_;
  owned_at_ = o.owned_at_;
  values_ = o.values_;
  for (size_t i = 0; i < values_.size(); ++i) {
    if (owned_at_[i] >= 0) values_[i] = owned_[static_cast<size_t>(owned_at_[i])].c_str();
  }
  return *this;
}

Params& Params::text(std::string v) {
  owned_.push_back(std::move(v));
  owned_at_.push_back(static_cast<int>(owned_.size() - 1));
  values_.push_back(owned_.back().c_str());
  return *this;
}

Params& Params::ref(const std::string& v) {
  owned_at_.push_back(-1);
  values_.push_back(v.c_str());
  return *this;
}

Params& Params::num(int64_t v) {
  return text(std::to_string(v));
}

Params& Params::null() {
  owned_at_.push_back(-1);
  values_.push_back(nullptr);
  return *this;
}

void ArrayText::add(const std::string& v) {
  text_ += first_ ? "{\"" : ",\"";
  first_ = false;
  for (char c : v) {
    if (c == '"' || c == '\\') text_ += '\\';
    text_ += c;
  }
  text_ += '"';
}

void ArrayText::add(int64_t v) {
  text_ += first_ ? "{" : ",";
  first_ = false;
  text_ += std::to_string(v);
}

void ArrayText::add_null() {
  text_ += first_ ? "{NULL" : ",NULL";
  first_ = false;
}

std::string ArrayText::take() {
  std::string out = first_ ? std::string("{}") : std::move(text_) + "}";
  text_.clear();
  first_ = true;
  return out;
}

// --- Result ------------------------------------------------------------------------------------

Result::~Result() {
  if (r_ != nullptr) PQclear(r_);
}

Result& Result::operator=(Result&& o) noexcept {
  if (this != &o) {
    if (r_ != nullptr) PQclear(r_);
    r_ = std::exchange(o.r_, nullptr);
  }
  return *this;
}

int Result::rows() const {
  return r_ == nullptr ? 0 : PQntuples(r_);
}

bool Result::has(int row, int col) const {
  return r_ != nullptr && row >= 0 && col >= 0 && row < PQntuples(r_) && col < PQnfields(r_);
}

bool Result::null(int row, int col) const {
  return !has(row, col) || PQgetisnull(r_, row, col) != 0;
}

std::string Result::text(int row, int col) const {
  if (null(row, col)) return {};
  return std::string(PQgetvalue(r_, row, col), static_cast<size_t>(PQgetlength(r_, row, col)));
}

int64_t Result::int64(int row, int col) const {
  if (null(row, col)) return 0;
  const char* v = PQgetvalue(r_, row, col);
  int64_t out = 0;
  std::from_chars(v, v + PQgetlength(r_, row, col), out);
  return out;
}

int64_t Result::affected() const {
  if (r_ == nullptr) return 0;
  const char* n = PQcmdTuples(r_);
  int64_t out = 0;
  if (n != nullptr) std::from_chars(n, n + std::char_traits<char>::length(n), out);
  return out;
}

// --- Connection --------------------------------------------------------------------------------

namespace {

std::string password_of(const std::string& uri) {
  static const std::regex kv(R"((?:^|\s)password\s*=\s*'?([^'\s]+))");
  static const std::regex url(R"(^postgres(?:ql)?://[^:/@]*:([^@]*)@)");
  std::smatch m;
  if (std::regex_search(uri, m, kv) || std::regex_search(uri, m, url)) return m[1].str();
  return {};
}

std::string without(std::string text, const std::string& secret) {
  if (secret.empty()) return text;
  for (size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at)) {
    text.replace(at, secret.size(), "***");
  }
  return text;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::string masked_uri(const std::string& uri) {
  return without(uri, password_of(uri));
}

Status Connection::open(const std::string& uri, int timeout_s, std::unique_ptr<Connection>& out,
                        const std::string& password) {
  std::string timeout = std::to_string(std::max(1, timeout_s));
  // Later keywords override what the expanded URI says: the password given apart wins.
  const char* keys[] = {
      "dbname", "connect_timeout", "application_name", "client_encoding", "keepalives", "password",
      nullptr};
  const char* values[] = {uri.c_str(), timeout.c_str(),  "relais", "UTF8",
                          "1",         password.c_str(), nullptr};
  if (password.empty()) keys[5] = nullptr;  // libpq's own ways (URI, ~/.pgpass, PGPASSWORD)
  PGconn* c = PQconnectdbParams(keys, values, 1);
  if (c == nullptr) return Status::failure(503, "storage unreachable", "out of memory");
  if (PQstatus(c) != CONNECTION_OK) {
    std::string why = without(without(trimmed(PQerrorMessage(c)), password_of(uri)), password);
    PQfinish(c);
    return Status::failure(503, "storage unreachable", "PostgreSQL: " + why);
  }
  out.reset(new Connection(c));
  // Integers as the store writes them; times are epoch milliseconds (bigint), never timestamps.
  return out->exec("SET TimeZone = 'UTC'");
}

Connection::~Connection() {
  PQfinish(conn_);
}

bool Connection::ok() const {
  return PQstatus(conn_) == CONNECTION_OK;
}

Status Connection::finish(PGresult* r, Result& out, Failure* why) {
  ExecStatusType st = r == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    out = Result(r);
    return Status::success();
  }
  const char* state = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  const char* primary = r != nullptr ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  std::string code = state != nullptr ? state : "";
  bool lost = !ok() || code.rfind("57P0", 0) == 0 || code.rfind("08", 0) == 0;
  std::string detail;
  if (code.empty()) {
    detail = "PostgreSQL: " + trimmed(PQerrorMessage(conn_));
  } else if (code.rfind("22", 0) == 0 || code.rfind("23", 0) == 0) {
    // Data and integrity errors quote the values they met: only their SQLSTATE.
    detail = "PostgreSQL SQLSTATE " + code;
  } else {
    detail = "PostgreSQL SQLSTATE " + code + ": " + (primary != nullptr ? primary : "");
  }
  if (r != nullptr) PQclear(r);
  if (why != nullptr) *why = Failure{code, lost};
  return Status::failure(503, lost ? "storage unreachable" : "storage error", detail);
}

Status Connection::prepared(const char* sql, const std::string*& name, Failure* why) {
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    std::string n(1, 's');  // piece by piece: GCC 12 -O3 false -Wrestrict on "s" + text
    n += std::to_string(prepared_.size());
    PGresult* p = PQprepare(conn_, n.c_str(), sql, 0, nullptr);
    Result ignored;
    Status s = finish(p, ignored, why);
    if (!s.ok) return s;
    it = prepared_.emplace(sql, std::move(n)).first;
  }
  name = &it->second;
  return Status::success();
}

Status Connection::run(const char* sql, const Params& params, Result& out, Failure* why) {
  const std::string* name = nullptr;
  Status s = prepared(sql, name, why);
  if (!s.ok) return s;
  PGresult* r =
      PQexecPrepared(conn_, name->c_str(), params.size(), params.values(), nullptr, nullptr, 0);
  return finish(r, out, why);
}

Status Connection::transaction(const std::vector<Step>& steps, std::vector<Result>& out,
                               Failure* why) {
  out.clear();
  out.resize(steps.size());
  std::vector<const std::string*> names(steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    Status s = prepared(steps[i].sql, names[i], why);
    if (!s.ok) return s;
  }
  auto lost = [&](const char* what) {
    if (why != nullptr) *why = Failure{"", true};
    return Status::failure(
        503, "storage unreachable",
        std::string("PostgreSQL: ") + what + ": " + trimmed(PQerrorMessage(conn_)));
  };
  if (PQenterPipelineMode(conn_) != 1) return lost("cannot enter pipeline mode");
  bool sent = PQsendQueryParams(conn_, "BEGIN", 0, nullptr, nullptr, nullptr, nullptr, 0) == 1;
  for (size_t i = 0; sent && i < steps.size(); ++i) {
    sent = PQsendQueryPrepared(conn_, names[i]->c_str(), steps[i].params.size(),
                               steps[i].params.values(), nullptr, nullptr, 0) == 1;
  }
  sent = sent && PQsendQueryParams(conn_, "COMMIT", 0, nullptr, nullptr, nullptr, nullptr, 0) == 1;
  sent = sent && PQpipelineSync(conn_) == 1;
  if (!sent) {
    PQexitPipelineMode(conn_);
    return lost("cannot send");
  }
  // One result per query (then a null), the sync last. The first failure is the answer; the
  // queries after it are skipped by the server (PGRES_PIPELINE_ABORTED).
  Status first = Status::success();
  for (size_t q = 0; q < steps.size() + 2; ++q) {
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr) return lost("connection lost");
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_PIPELINE_ABORTED) {
      PQclear(r);
    } else if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
      if (q >= 1 && q <= steps.size()) {
        out[q - 1] = Result(r);
      } else {
        PQclear(r);
      }
    } else {
      Result ignored;
      Status s = finish(r, ignored, first.ok ? why : nullptr);
      if (first.ok) first = s;
    }
    while ((r = PQgetResult(conn_)) != nullptr) PQclear(r);  // the query's end
  }
  PGresult* sync = PQgetResult(conn_);
  bool synced = sync != nullptr && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
  if (sync != nullptr) PQclear(sync);
  if (!synced || PQexitPipelineMode(conn_) != 1) return lost("pipeline not synchronised");
  return first;
}

Status Connection::run_text(const std::string& sql, const Params& params, Result& out,
                            Failure* why) {
  PGresult* r = PQexecParams(conn_, sql.c_str(), params.size(), nullptr, params.values(), nullptr,
                             nullptr, 0);
  return finish(r, out, why);
}

Status Connection::exec(const std::string& sql, Failure* why) {
  Result out;
  return finish(PQexec(conn_, sql.c_str()), out, why);
}

Status Connection::copy_in(const std::string& copy_sql, const std::string& data, Failure* why) {
  PGresult* start = PQexec(conn_, copy_sql.c_str());
  if (start == nullptr || PQresultStatus(start) != PGRES_COPY_IN) {
    Result ignored;
    if (start != nullptr && PQresultStatus(start) == PGRES_COMMAND_OK) {
      PQclear(start);
      return Status::failure(503, "storage error", "PostgreSQL: not a COPY FROM STDIN");
    }
    return finish(start, ignored, why);
  }
  PQclear(start);
  bool sent = true;
  constexpr size_t kPiece = 1 << 20;  // PQputCopyData takes an int: pieces of 1 MiB
  for (size_t at = 0; sent && at < data.size(); at += kPiece) {
    sent = PQputCopyData(conn_, data.data() + at,
                         static_cast<int>(std::min(kPiece, data.size() - at))) == 1;
  }
  sent = PQputCopyEnd(conn_, sent ? nullptr : "relais: input not sent") == 1 && sent;
  Result out;
  Status s = finish(PQgetResult(conn_), out, why);
  while (PGresult* r = PQgetResult(conn_)) PQclear(r);  // the COPY's end
  if (s.ok && !sent) {
    if (why != nullptr) *why = Failure{"", true};
    return Status::failure(503, "storage unreachable",
                           "PostgreSQL: " + trimmed(PQerrorMessage(conn_)));
  }
  return s;
}

UriTarget parse_uri(const std::string& uri) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(uri.c_str(), &err);
  if (err != nullptr) PQfreemem(err);  // libpq's reason may quote the string: left out
  if (opts == nullptr) throw std::runtime_error("not a libpq connection string");
  auto get = [opts](const char* key) -> std::string {
    for (auto* o = opts; o->keyword != nullptr; ++o) {
      if (std::string(o->keyword) == key) return o->val ? o->val : "";
    }
    return "";
  };
  UriTarget t;
  std::string host = get("host"), port = get("port"), db = get("dbname");
  t.describe = (host.empty() ? "localhost" : host) + ":" + (port.empty() ? "5432" : port) + "/" +
               (db.empty() ? get("user") : db);
  t.has_password = !get("password").empty();
  PQconninfoFree(opts);
  return t;
}

// --- Pool --------------------------------------------------------------------------------------

Pool::Handle::~Handle() {
  if (pool_ == nullptr || !c_ || !c_->ok()) return;
  std::lock_guard<std::mutex> lock(pool_->mu_);
  if (static_cast<int>(pool_->idle_.size()) < pool_->max_) pool_->idle_.push_back(std::move(c_));
}

Pool::Handle Pool::get() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return Handle(this, std::move(c));
    }
  }
  std::unique_ptr<Connection> c;
  Status s = Connection::open(uri_, timeout_s_, c, password_);
  if (!s.ok) throw std::runtime_error(s.detail);
  if (!setup_.empty()) {
    s = c->exec(setup_);
    if (!s.ok) throw std::runtime_error(s.detail);
  }
  return Handle(this, std::move(c));
}

Status Pool::run(const char* sql, const Params& params, Result& out) {
  for (int attempt = 0;; ++attempt) {
    Failure why;
    Status s;
    try {
      auto c = get();
      s = c->run(sql, params, out, &why);
    } catch (const std::exception& e) {
      return Status::failure(503, "storage unreachable", e.what());
    }
    if (s.ok || !why.connection_lost || attempt > 0) return s;
    clear();
  }
}

Result Pool::query(const char* sql, const Params& params) {
  Result r;
  Status s = run(sql, params, r);
  if (!s.ok) throw std::runtime_error(s.detail);
  return r;
}

void Pool::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  idle_.clear();
}

// --- migrations --------------------------------------------------------------------------------

namespace {

void must(const Status& s, const std::string& what) {
  if (!s.ok) throw std::runtime_error(what + ": " + s.detail);
}

// The advisory lock's key: one per schema line (the store's), the same on every node.
constexpr const char* kLockKey = "7011873202";

}  // namespace

void migrate(Connection& c, const std::vector<Migration>& migrations, const std::string& what) {
  must(c.exec("BEGIN; SELECT pg_advisory_xact_lock(" + std::string(kLockKey) +
              "); CREATE TABLE IF NOT EXISTS relais_schema (version integer PRIMARY KEY, "
              "description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now()); COMMIT"),
       what + ": cannot create relais_schema");
  for (const auto& m : migrations) {
    Status s = c.exec("BEGIN; SELECT pg_advisory_xact_lock(" + std::string(kLockKey) + ")");
    must(s, what + ": cannot lock the schema");
    try {
      Result r;
      must(c.run_text("SELECT COALESCE(MAX(version), 0), "
                      "COUNT(*) FILTER (WHERE version = $1) FROM relais_schema",
                      Params().num(m.version), r),
           what);
      int64_t newest = r.int64(0, 0);
      if (newest > migrations.back().version) {
        throw std::runtime_error(what + " has schema version " + std::to_string(newest) +
                                 ", newer than this relais (" +
                                 std::to_string(migrations.back().version) + "): upgrade relais");
      }
      if (r.int64(0, 1) > 0) {  // another node, or an earlier start, applied it
        must(c.exec("COMMIT"), what);
        continue;
      }
      for (const char* sql : m.statements) {
        must(c.exec(sql), what + ": migration " + std::to_string(m.version));
      }
      must(c.run_text("INSERT INTO relais_schema(version, description) VALUES($1, $2)",
                      Params().num(m.version).text(m.description), r),
           what);
      must(c.exec("COMMIT"), what + ": migration " + std::to_string(m.version));
      log_info("store", "applied PostgreSQL schema migration " + std::to_string(m.version) + " (" +
                            m.description + ")");
    } catch (...) {
      c.exec("ROLLBACK");
      throw;
    }
  }
}

void check_schema(Connection& c, int version, const std::string& what) {
  Result r;
  Status s = c.run_text("SELECT COALESCE(MAX(version), 0) FROM relais_schema", Params(), r);
  if (!s.ok) throw std::runtime_error(what + " has no relais schema (" + s.detail + ")");
  if (r.int64(0, 0) < version) {
    throw std::runtime_error(what + " has schema version " + std::to_string(r.int64(0, 0)) +
                             ", older than this relais (" + std::to_string(version) +
                             "): open it once read-write to migrate it");
  }
}

void warn_unsafe_settings(Connection& c) {
  Result r;
  if (!c.run_text("SHOW synchronous_commit", Params(), r).ok) return;
  std::string v = r.text(0, 0);
  if (v == "off") {
    log_warn("store",
             "PostgreSQL synchronous_commit is off: a message may be acknowledged (202) before "
             "its commit is on disk, and lost if the server crashes; set it to on (or "
             "remote_apply with replicas) for the store's role or database");
  }
}

}  // namespace relais::pg

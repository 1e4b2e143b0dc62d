#pragma once
// libpq for the PostgreSQL store (store/postgresql/): one connection to the server, its
// statements run with text parameters (prepared once per connection, by their SQL), their results
// read safely, and failures turned into a Status that carries the SQLSTATE but never a value of a
// row (PostgreSQL's DETAIL lines and the messages of data and integrity errors quote values: they
// are left out). Also the schema migrations of the store (relais_schema) and the start-up checks.
// libpq rather than Poco::Data PostgreSQL: see docs/dependencies.md.

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/status.h"

struct pg_conn;
struct pg_result;

namespace relais::pg {

// The text parameters of one statement. Values are copied in (text, num) or referenced (ref:
// the string must outlive the statement's run). Not thread-safe; a plain value per statement.
class Params {
 public:
  Params() = default;
  // Copies point at their own copies of the owned values (references stay references).
  Params(const Params& o) { *this = o; }
  Params& operator=(const Params& o);
  Params(Params&& o) noexcept = default;  // a deque's elements keep their addresses
  Params& operator=(Params&& o) noexcept = default;

  Params& text(std::string v);
  Params& ref(const std::string& v);
  Params& num(int64_t v);
  Params& flag(bool v) { return text(v ? "t" : "f"); }
  Params& null();
  int size() const { return static_cast<int>(values_.size()); }
  const char* const* values() const { return values_.data(); }

 private:
  std::deque<std::string> owned_;  // stable addresses
  std::vector<const char*> values_;
  std::vector<int> owned_at_;  // per value: its index in owned_, or -1 (a reference, or null)
};

// A PostgreSQL array literal ({"a","b\"c"}) of text values, for `$n::text[]` parameters (the
// multi-row statements of the store: unnest).
class ArrayText {
 public:
  void add(const std::string& v);
  void add(int64_t v);
  void add_null();
  // The literal; the builder is empty again afterwards.
  std::string take();

 private:
  std::string text_;
  bool first_ = true;
};

// The rows of one statement. Owns its PGresult; movable, not copyable. Reads are bounds-checked
// (a missing row or column reads as empty or 0).
class Result {
 public:
  Result() = default;
  explicit Result(pg_result* r) : r_(r) {}
  ~Result();
  Result(Result&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
  Result& operator=(Result&& o) noexcept;
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;

  int rows() const;
  bool null(int row, int col) const;
  std::string text(int row, int col) const;
  int64_t int64(int row, int col) const;
  // Rows changed by an INSERT, UPDATE or DELETE.
  int64_t affected() const;

 private:
  bool has(int row, int col) const;
  pg_result* r_ = nullptr;
};

// What went wrong, for the callers that must tell a lost connection from a refused statement.
struct Failure {
  std::string sqlstate;  // "" when the connection itself failed
  bool connection_lost = false;
};

// One statement of a transaction run in one round trip (Connection::transaction).
struct Step {
  const char* sql;  // a constant of the caller's (prepared by its address, as run())
  Params params;
};

// One libpq connection. Not thread-safe: one thread at a time (the store's writer, or a reader
// that took it from a Pool). Owns the PGconn.
class Connection {
 public:
  // Connects (connect_timeout `timeout_s`), UTF-8, application_name relais. On failure, 503
  // "storage unreachable" with libpq's reason (its password, if it quotes the URI, masked).
  // `password` (may be empty) overrides one in the URI and is masked in errors too.
  static Status open(const std::string& uri, int timeout_s, std::unique_ptr<Connection>& out,
                     const std::string& password = "");
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs `sql` (prepared on this connection the first time it runs, named after its address:
  // pass the store's constant statements) with text parameters.
  Status run(const char* sql, const Params& params, Result& out, Failure* why = nullptr);
  Status run(const char* sql, const Params& params = {}) {
    Result r;
    return run(sql, params, r);
  }
  // Runs BEGIN, the steps and COMMIT in one round trip (libpq's pipeline mode); `out` gets the
  // result of each step. On failure, the Status of the first step that failed (or of COMMIT);
  // the transaction may then be left aborted: the caller rolls back.
  Status transaction(const std::vector<Step>& steps, std::vector<Result>& out,
                     Failure* why = nullptr);
  // Runs a statement built at run time (not prepared).
  Status run_text(const std::string& sql, const Params& params, Result& out,
                  Failure* why = nullptr);
  // Runs statements without parameters (BEGIN, COMMIT, DDL), several separated by ';'.
  Status exec(const std::string& sql, Failure* why = nullptr);
  // Runs `copy_sql` (COPY … FROM STDIN, text format) and sends `data` (rows in COPY's text
  // format: tab-separated, '\n'-ended, \N for NULL, backslash escapes) as its input. Inside the
  // caller's transaction when one is open. A refused row fails it whole (SQLSTATE only: COPY's
  // errors quote the rows).
  Status copy_in(const std::string& copy_sql, const std::string& data, Failure* why = nullptr);
  // Whether the connection is still up (as libpq last saw it).
  bool ok() const;

 private:
  explicit Connection(pg_conn* c) : conn_(c) {}
  Status finish(pg_result* r, Result& out, Failure* why);
  // The name `sql` is prepared under on this connection (prepared now the first time).
  Status prepared(const char* sql, const std::string*& name, Failure* why);
  pg_conn* conn_;
  std::unordered_map<const char*, std::string> prepared_;  // SQL address -> statement name
};

// Connections for the readers, opened on demand up to `max` idle ones kept. Thread-safe.
class Pool {
 public:
  // `password` as Connection::open's.
  Pool(std::string uri, int timeout_s, int max, std::string password = "")
      : uri_(std::move(uri)), password_(std::move(password)), timeout_s_(timeout_s), max_(max) {}
  // A connection, back into the pool when the handle goes out of scope (dropped instead when it
  // lost its server).
  class Handle {
   public:
    Handle(Pool* pool, std::unique_ptr<Connection> c) : pool_(pool), c_(std::move(c)) {}
    ~Handle();
    Handle(Handle&&) = default;
    Connection& operator*() { return *c_; }
    Connection* operator->() { return c_.get(); }

   private:
    Pool* pool_;
    std::unique_ptr<Connection> c_;
  };
  // Run on each connection the pool opens, before its first use (e.g. a session setting).
  void set_setup(std::string sql) { setup_ = std::move(sql); }
  // Throws std::runtime_error (the connection's failure) when none can be opened.
  Handle get();
  // Runs one statement on a pooled connection; when the connection turns out lost (the server
  // restarted since it was last used), the idle connections are dropped and it runs once more
  // on a new one. The statement's failure, or 503 when no connection can be opened.
  Status run(const char* sql, const Params& params, Result& out);
  // The same, throwing std::runtime_error (the Status's detail) when it fails.
  Result query(const char* sql, const Params& params);
  void clear();

 private:
  std::string setup_;  // set before the pool is shared
  std::string uri_;
  std::string password_;
  int timeout_s_;
  int max_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_;
};

// One schema migration: its statements run in one transaction with its row in relais_schema.
struct Migration {
  int version;
  const char* description;
  std::vector<const char*> statements;
};

// Applies every migration not recorded in relais_schema yet, in order, each in its own
// transaction that first takes pg_advisory_xact_lock (two nodes starting at once: the second
// waits, then finds the version recorded and skips it). Throws std::runtime_error at start-up
// failures, and when the database holds a version newer than `migrations` knows.
void migrate(Connection& c, const std::vector<Migration>& migrations, const std::string& what);
// Throws std::runtime_error when relais_schema is missing or older than `version` (read-only
// opening: the schema is checked, never migrated).
void check_schema(Connection& c, int version, const std::string& what);

// Warns (log) when the server's synchronous_commit is off: a commit would be answered before it
// is on disk, so an acknowledged message could be lost in a crash of the server.
void warn_unsafe_settings(Connection& c);

// `uri` with its password (password=… or postgresql://user:pw@…) replaced by "***", for errors.
std::string masked_uri(const std::string& uri);

// What a connection string or URI names, read by libpq's own parser: where (for messages:
// host:port/database, never a password) and whether it holds a password. Throws
// std::runtime_error ("not a libpq connection string", without the string) when it does not
// parse.
struct UriTarget {
  std::string describe;  // host:port/database (libpq's defaults when absent)
  bool has_password = false;
};
UriTarget parse_uri(const std::string& uri);

}  // namespace relais::pg

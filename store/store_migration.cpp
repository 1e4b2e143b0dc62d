// StoreMigration (store/store_migration.h): SQLite → PostgreSQL, batch by batch, resumable,
// verified by counts and checksums.

#include "store/store_migration.h"

#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>

#include "core/crypto.h"
#include "store/postgresql/pg_backend.h"
#include "store/postgresql/pg_connection.h"
#include "store/sqlite/sqlite_backend.h"
#include "store/sqlite/sqlite_raw.h"

namespace relais {
namespace {

// How a column's values are compared and written: both engines' text of a value is turned into
// one canonical text (which is also what COPY reads).
enum class Kind { Integer, Text, Real, Boolean };

struct Column {
  const char* sqlite;  // its name in the SQLite schema
  const char* pg;      // its name in the PostgreSQL schema
  Kind kind;
};

// One table of the stores. Its first `key_columns` columns are its primary key, in order.
// `sequence`: how PostgreSQL draws its next keys — nullptr: it does not (keys are names), a
// sequence's name, or "serial" (the key column's own, a bigserial).
// `target_only`: PostgreSQL columns SQLite does not have, left to their default by the copy and
// out of the comparison.
struct Table {
  const char* name;
  int key_columns;
  const char* sequence;
  std::vector<Column> columns;
  std::vector<const char*> target_only = {};
};

Column I(const char* n) {
  return {n, n, Kind::Integer};
}
Column T(const char* n) {
  return {n, n, Kind::Text};
}

// Every table of every store, from the SQLite migrations (store/sqlite/sqlite_store.cpp, 1-12)
// and the PostgreSQL ones (pg_store.cpp 1-2, pg_tables.cpp 101-104), in copy order (messages
// before deliveries: their foreign key). Not copied: schema_migrations / relais_schema (each
// engine's own), store_probe (the row each engine's writer rewrites; PostgreSQL's migration
// creates it).
const std::vector<Table>& migrated_tables() {
  static const std::vector<Table> list = {
      {"messages",
       1,
       "messages_seq",
       {I("seq"), T("id"), T("source"), T("type"), T("correlation"), T("idempotency"), T("headers"),
        T("body"), I("received_at"), I("routed"), I("erased_at")}},
      {"deliveries",
       1,
       "deliveries_id_seq",
       {I("id"), I("message_seq"), T("destination"), T("route"), T("mapping"), I("mapping_version"),
        T("state"), I("attempts"), I("next_attempt_at"), I("not_before"), I("updated_at"),
        T("last_outcome"), T("last_class"), I("last_code"), T("last_text"), T("external_ref"),
        T("payload"), T("flags")},
       // The transaction that last wrote the delivery (the feed of several nodes, pg_store.cpp
       // migration 3): by default the copy's, older than any node's start, so a node reads the
       // copied deliveries when it gains their partition (load_active_upto), as it reads those
       // written before that migration.
       {"tx"}},
      {"attempts",
       1,
       "serial",
       {I("id"), I("delivery_id"), I("at"), I("duration_ms"), T("outcome"), T("class"), I("code"),
        T("text"), T("excerpt")}},
      {"idempotency_keys",
       2,
       nullptr,
       {T("source"), T("key"), T("message_id"), T("digest"), I("expires_at")}},
      {"source_checkpoints", 1, nullptr, {T("source"), T("value"), I("updated_at")}},
      {"source_rejects",
       1,
       "serial",
       {I("id"), T("source"), T("position"), I("status"), T("error"), T("detail"), I("at")}},
      {"xrefs",
       2,
       nullptr,
       {T("destination"), T("key"), T("external_id"), T("version"), T("message_id"),
        I("updated_at")}},
      {"sms_records",
       1,
       nullptr,
       {I("delivery_id"),
        T("destination"),
        T("driver"),
        T("reference"),
        T("gateway_ref"),
        T("number_hash"),
        T("encoding"),
        I("segments"),
        {"cost_cents", "cost_cents", Kind::Real},
        T("state"),
        I("dlr_status"),
        T("detail"),
        I("created_at"),
        I("updated_at")}},
      {"sms_optouts", 1, nullptr, {T("number_hash"), I("created_at"), T("source"), T("keyword")}},
      {"users",
       1,
       nullptr,
       {T("name"),
        T("role"),
        T("password"),
        I("created_at"),
        T("created_by"),
        {"disabled", "disabled", Kind::Boolean}}},
      {"api_tokens",
       1,
       nullptr,
       {T("name"), T("role"), T("sources"), T("sha256"), I("created_at"), T("created_by"),
        I("revoked_at")}},
      {"audit",
       1,
       "serial",
       {I("id"), I("at"), T("actor"), T("role"), T("action"), T("object"), T("detail"),
        T("address")}},
      {"documents",
       1,
       "serial",
       {I("id"), T("kind"), T("name"), I("version"), T("format"), T("content"), T("author"),
        T("comment"), I("created_at")}},
      {"document_active", 2, nullptr, {T("kind"), T("name"), I("version")}},
      {"document_activations",
       1,
       "serial",
       {I("id"),
        T("kind"),
        T("name"),
        I("version"),
        {"by", "actor", Kind::Text},
        T("comment"),
        I("at")}},
      {"pairings",
       1,
       "serial",
       {I("id"), T("partner"), T("person"), T("state"), T("external_id"), T("candidates"),
        T("waiters"), T("how"), T("actor"), T("reason"), I("created_at"), I("updated_at")}},
  };
  return list;
}

// The tables each engine has that are not copied (see above), and the migration's own.
const std::set<std::string> kSqliteOwn = {"schema_migrations", "store_probe"};
const std::set<std::string> kPgOwn = {"relais_schema", "store_probe", "store_migration",
                                      "store_migration_progress"};

using Value = std::optional<std::string>;  // nullopt: NULL
using Row = std::vector<Value>;

std::string quoted(const char* name) {
  return std::string("\"") + name + "\"";
}

std::string real_text(double d) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, r.ptr);
}

// A row's canonical text, appended to `out`: the same bytes for the same values whichever
// engine they were read from (length-prefixed, so that no value can look like two).
void append_canonical(std::string& out, const Row& row) {
  for (const auto& v : row) {
    if (!v) {
      out += "N;";
      continue;
    }
    out += 'S';
    out += std::to_string(v->size());
    out += ':';
    out += *v;
  }
  out += '\n';
}

// A row as a line of COPY's text format.
void append_copy(std::string& out, const Row& row) {
  for (size_t i = 0; i < row.size(); ++i) {
    if (i > 0) out += '\t';
    if (!row[i]) {
      out += "\\N";
      continue;
    }
    for (char c : *row[i]) {
      switch (c) {
        case '\\':
          out += "\\\\";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        default:
          out += c;
      }
    }
  }
  out += '\n';
}

// "seq=42" or "destination=sms, key=abc": a row's key, to name where a difference is.
std::string key_text(const Table& t, const Row& row) {
  std::string out;
  for (int i = 0; i < t.key_columns && i < static_cast<int>(row.size()); ++i) {
    if (i > 0) out += ", ";
    out += t.columns[static_cast<size_t>(i)].sqlite;
    out += '=';
    out += row[static_cast<size_t>(i)].value_or("NULL");
  }
  return out;
}

// The key as JSON (the progress table's last_key): numbers and strings.
nlohmann::json key_json(const Table& t, const Row& row) {
  auto out = nlohmann::json::array();
  for (int i = 0; i < t.key_columns; ++i) {
    const auto& v = row[static_cast<size_t>(i)];
    if (t.columns[static_cast<size_t>(i)].kind == Kind::Integer) {
      out.push_back(std::stoll(v.value_or("0")));
    } else {
      out.push_back(v.value_or(""));
    }
  }
  return out;
}

int64_t as_int(const std::string& v) {
  int64_t out = 0;
  std::from_chars(v.data(), v.data() + v.size(), out);
  return out;
}

// Orders two rows by key as both engines order them (integers by value, texts by bytes: SQLite's
// BINARY collation, PostgreSQL's "C").
int compare_keys(const Table& t, const Row& a, const Row& b) {
  for (int i = 0; i < t.key_columns; ++i) {
    const std::string& x = *a[static_cast<size_t>(i)];
    const std::string& y = *b[static_cast<size_t>(i)];
    if (t.columns[static_cast<size_t>(i)].kind == Kind::Integer) {
      int64_t u = as_int(x), v = as_int(y);
      if (u != v) return u < v ? -1 : 1;
    } else if (int c = x.compare(y); c != 0) {
      return c < 0 ? -1 : 1;
    }
  }
  return 0;
}

std::string column_list(const Table& t, bool pg) {
  std::string out;
  for (const auto& c : t.columns) {
    if (!out.empty()) out += ", ";
    out += quoted(pg ? c.pg : c.sqlite);
  }
  return out;
}

std::string key_order(const Table& t, bool pg) {
  std::string out;
  for (int i = 0; i < t.key_columns; ++i) {
    const Column& c = t.columns[static_cast<size_t>(i)];
    if (i > 0) out += ", ";
    out += quoted(pg ? c.pg : c.sqlite);
    if (pg && c.kind == Kind::Text) out += " COLLATE \"C\"";
  }
  return out;
}

// --- SQLite ---------------------------------------------------------------------------------

// The current row of `q`, `t`'s columns, canonical. A value of a kind its column cannot hold (an
// integer column holding text: SQLite allows it) stops the migration rather than change it.
Row sqlite_row(const RawStatement& q, const Table& t) {
  Row out;
  out.reserve(t.columns.size());
  for (size_t i = 0; i < t.columns.size(); ++i) {
    const Column& c = t.columns[i];
    int col = static_cast<int>(i);
    int type = q.type(col);
    if (type == SQLITE_NULL) {
      out.emplace_back(std::nullopt);
      continue;
    }
    bool fits = c.kind == Kind::Text || type == SQLITE_INTEGER ||
                (c.kind == Kind::Real && type == SQLITE_FLOAT);
    if (!fits) {
      throw std::runtime_error("source store: table " + std::string(t.name) + ", column " +
                               c.sqlite + " holds a value that is not a number (row " +
                               key_text(t, out) + ")");
    }
    switch (c.kind) {
      case Kind::Integer:
        out.emplace_back(std::to_string(q.int64(col)));
        break;
      case Kind::Boolean:
        out.emplace_back(q.int64(col) != 0 ? "1" : "0");
        break;
      case Kind::Real:
        out.emplace_back(real_text(q.real(col)));
        break;
      case Kind::Text:
        out.emplace_back(q.text(col));
        break;
    }
  }
  return out;
}

// A value read from PostgreSQL, canonical.
Value pg_value(const pg::Result& r, int row, int col, const Column& c) {
  if (r.null(row, col)) return std::nullopt;
  std::string v = r.text(row, col);
  if (c.kind == Kind::Boolean) return v == "t" ? "1" : "0";
  if (c.kind == Kind::Real) {
    double d = 0;
    auto res = std::from_chars(v.data(), v.data() + v.size(), d);
    if (res.ec == std::errc() && res.ptr == v.data() + v.size()) return real_text(d);
  }
  return v;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct StoreMigration::Impl {
  MigrationSettings settings;
  MigrationProgressFn progress;
  sqlite3* db = nullptr;
  std::unique_ptr<pg::Connection> pg;
  std::string target;  // host:port/database
  int64_t batches = 0;

  ~Impl() {
    if (db != nullptr) sqlite3_close_v2(db);
  }

  [[noreturn]] void fail(const std::string& what, const Status& s) {
    throw std::runtime_error(what + ": " + (s.detail.empty() ? s.error : s.detail));
  }
  pg::Result pg_query(const std::string& sql, const pg::Params& params = {}) {
    pg::Result r;
    Status s = pg->run_text(sql, params, r);
    if (!s.ok) fail("target " + target, s);
    return r;
  }
  void pg_exec(const std::string& sql) {
    Status s = pg->exec(sql);
    if (!s.ok) fail("target " + target, s);
  }
  int64_t sqlite_scalar(const std::string& sql) {
    RawStatement q(db, sql.c_str());
    return q.row() ? q.int64(0) : 0;
  }
  void sqlite_exec(const char* sql) {
    if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
      throw std::runtime_error(std::string("source store: ") + sqlite3_errmsg(db));
    }
  }

  void open_source() {
    const std::string& path = settings.sqlite_path;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      throw std::runtime_error("source store " + path + ": " +
                               (db ? sqlite3_errmsg(db) : "cannot open"));
    }
    sqlite3_busy_timeout(db, 10000);
    int64_t version = 0;
    try {
      version = sqlite_scalar("SELECT MAX(version) FROM schema_migrations");
    } catch (const std::exception&) {
      throw std::runtime_error("source " + path + " is not a relais store");
    }
    if (version != sqlite_schema_version()) {
      throw std::runtime_error("source " + path + " has schema version " + std::to_string(version) +
                               "; this relais reads version " +
                               std::to_string(sqlite_schema_version()));
    }
  }

  // The tables and columns of each engine are the listed ones: nothing is left behind.
  void check_schemas() {
    std::map<std::string, std::set<std::string>> sqlite_cols, pg_cols;
    {
      RawStatement q(db,
                     "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p "
                     "WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'");
      while (q.row()) sqlite_cols[q.text(0)].insert(q.text(1));
    }
    pg::Result r = pg_query(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c JOIN "
        "information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = "
        "c.table_name WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'");
    for (int i = 0; i < r.rows(); ++i) pg_cols[r.text(i, 0)].insert(r.text(i, 1));
    auto check = [](const std::map<std::string, std::set<std::string>>& have,
                    const std::set<std::string>& own, bool pg, const std::string& where) {
      std::set<std::string> listed;
      for (const auto& t : migrated_tables()) {
        listed.insert(t.name);
        std::set<std::string> cols;
        for (const auto& c : t.columns) cols.insert(pg ? c.pg : c.sqlite);
        if (pg) cols.insert(t.target_only.begin(), t.target_only.end());
        auto it = have.find(t.name);
        if (it == have.end()) {
          throw std::runtime_error(where + " has no table " + t.name);
        }
        if (it->second != cols) {
          throw std::runtime_error(where + ": the columns of table " + std::string(t.name) +
                                   " are not the ones this relais migrates (a newer or older "
                                   "schema?)");
        }
      }
      for (const auto& [name, cols] : have) {
        if (!listed.count(name) && !own.count(name)) {
          throw std::runtime_error(where + " has a table this relais does not migrate: " + name);
        }
      }
    };
    check(sqlite_cols, kSqliteOwn, false, "source " + settings.sqlite_path);
    check(pg_cols, kPgOwn, true, "target " + target);
  }

  // What tells this source from another one: its first message's id (a ULID) and its first
  // audit entry (append-only), neither of which a store without a relais running changes.
  std::string source_identity() {
    RawStatement m(db, "SELECT id FROM messages ORDER BY seq LIMIT 1");
    RawStatement a(db, "SELECT id, at, action FROM audit ORDER BY id LIMIT 1");
    std::string out = m.row() ? "first message " + m.text(0) : "no message";
    out += a.row() ? "; first audit entry " + a.text(0) + " at " + a.text(1) + " " + a.text(2)
                   : "; no audit entry";
    return out;
  }

  void emit(const char* phase, const Table& t, int64_t done, int64_t total, int64_t done_now,
            std::chrono::steady_clock::time_point start, bool finished) {
    if (!progress) return;
    MigrationProgress p;
    p.phase = phase;
    p.table = t.name;
    p.done = done;
    p.total = total;
    p.done_now = done_now;
    p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    p.finished = finished;
    progress(p);
  }

  struct TableProgress {
    std::string last_key;  // JSON, "" before the first batch
    int64_t rows = 0;
    bool done = false;
  };

  // Claims the target for this source, or refuses it.
  void claim_target() {
    pg_exec("BEGIN");
    pg::Result r = pg_query("SELECT source, source_path FROM store_migration");
    const std::string identity = source_identity();
    if (r.rows() == 0) {
      for (const auto& t : migrated_tables()) {
        pg::Result any =
            pg_query("SELECT EXISTS (SELECT 1 FROM " + quoted(t.name) + ")", pg::Params());
        if (any.text(0, 0) == "t") {
          pg->exec("ROLLBACK");
          throw std::runtime_error("target " + target + " already holds data (table " + t.name +
                                   ") that did not come from a migration: migrate into an "
                                   "empty database");
        }
      }
      pg::Params p;
      p.ref(identity).ref(settings.sqlite_path).num(now_ms());
      pg_query("INSERT INTO store_migration(source, source_path, started_at) VALUES($1, $2, $3)",
               p);
    } else if (r.text(0, 0) != identity) {
      std::string path = r.text(0, 1);
      pg->exec("ROLLBACK");
      throw std::runtime_error("target " + target + " holds a migration from another store (" +
                               path + "): migrate into an empty database");
    }
    pg_exec("COMMIT");
  }

  std::map<std::string, TableProgress> load_progress() {
    std::map<std::string, TableProgress> out;
    pg::Result r =
        pg_query("SELECT table_name, last_key, rows, done FROM store_migration_progress");
    for (int i = 0; i < r.rows(); ++i) {
      out[r.text(i, 0)] = TableProgress{r.text(i, 1), r.int64(i, 2), r.text(i, 3) == "t"};
    }
    return out;
  }

  int64_t copy_table(const Table& t, TableProgress& tp) {
    const int64_t total = sqlite_scalar("SELECT COUNT(*) FROM " + quoted(t.name));
    const auto start = std::chrono::steady_clock::now();
    std::string base = "SELECT " + column_list(t, false) + " FROM " + quoted(t.name);
    std::string order = " ORDER BY " + key_order(t, false) + " LIMIT ?";
    std::string after = " WHERE (";
    for (int i = 0; i < t.key_columns; ++i) {
      after += (i > 0 ? ", " : "") + quoted(t.columns[static_cast<size_t>(i)].sqlite);
    }
    after += ") > (";
    for (int i = 0; i < t.key_columns; ++i) after += i > 0 ? ", ?" : "?";
    after += ")";
    const std::string first_sql = base + order, next_sql = base + after + order;
    RawStatement first(db, first_sql.c_str()), next(db, next_sql.c_str());
    const std::string copy_sql =
        "COPY " + quoted(t.name) + " (" + column_list(t, true) + ") FROM STDIN";
    int64_t copied = 0;
    std::string data;
    while (!tp.done) {
      RawStatement& q = tp.last_key.empty() ? first : next;
      q.reset();
      std::vector<std::string> texts;  // bound (SQLITE_STATIC): alive until the batch is read
      texts.reserve(static_cast<size_t>(t.key_columns));
      int at = 1;
      if (!tp.last_key.empty()) {
        for (const auto& k : nlohmann::json::parse(tp.last_key)) {
          if (k.is_number()) {
            q.bind(at++, k.get<int64_t>());
          } else {
            q.bind(at++, texts.emplace_back(k.get<std::string>()));
          }
        }
      }
      q.bind(at, settings.batch);
      data.clear();
      int64_t n = 0;
      Row last;
      while (q.row()) {
        last = sqlite_row(q, t);
        append_copy(data, last);
        ++n;
      }
      TableProgress after_batch = tp;
      if (n > 0) after_batch.last_key = key_json(t, last).dump();
      after_batch.rows += n;
      after_batch.done = n < settings.batch;
      // The batch and the table's progress in one transaction.
      pg::Params p;
      p.text(t.name).ref(after_batch.last_key).num(after_batch.rows).flag(after_batch.done);
      pg::Result ignored;
      Status s = pg->exec("BEGIN");
      if (s.ok && n > 0) s = pg->copy_in(copy_sql, data);
      if (s.ok) {
        s = pg->run_text(
            "INSERT INTO store_migration_progress(table_name, last_key, rows, done) "
            "VALUES($1, $2, $3, $4) ON CONFLICT (table_name) DO UPDATE SET last_key = "
            "excluded.last_key, rows = excluded.rows, done = excluded.done",
            p, ignored);
      }
      if (s.ok) s = pg->exec("COMMIT");
      if (!s.ok) {
        pg->exec("ROLLBACK");
        fail("copying table " + std::string(t.name) + " to " + target + " (the batch after " +
                 (tp.last_key.empty() ? std::string("its start") : "key " + tp.last_key) + ")",
             s);
      }
      tp = after_batch;
      copied += n;
      emit("copy", t, tp.rows, total, copied, start, tp.done);
      if (settings.kill_after_batches > 0 && ++batches >= settings.kill_after_batches) {
        ::kill(::getpid(), SIGKILL);  // the test hook: a kill right after a commit
      }
    }
    return copied;
  }

  // Every sequence past the largest key copied (and past SQLite's AUTOINCREMENT counter, which
  // remembers deleted rows), never moved back.
  void set_sequences() {
    pg_exec("BEGIN");
    for (const auto& t : migrated_tables()) {
      if (t.sequence == nullptr) continue;
      const char* key = t.columns[0].pg;
      std::string seq = t.sequence;
      if (seq == "serial") {
        pg::Params p;
        p.text(quoted(t.name)).text(key);
        seq = pg_query("SELECT pg_get_serial_sequence($1, $2)", p).text(0, 0);
      }
      int64_t floor = 0;
      {
        RawStatement q(db, "SELECT seq FROM sqlite_sequence WHERE name = ?");
        const std::string name = t.name;
        q.bind(1, name);
        if (q.row()) floor = q.int64(0);
      }
      pg::Params p;
      p.text(seq).num(floor);
      pg_query("SELECT setval($1, GREATEST($2::bigint, (SELECT COALESCE(MAX(" + quoted(key) +
                   "), 0) FROM " + quoted(t.name) +
                   "), (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM " +
                   seq + ")) + 1, false)",
               p);
    }
    pg_exec("COMMIT");
  }

  TableCheck verify_table(const Table& t) {
    TableCheck out;
    out.table = t.name;
    const int64_t total = sqlite_scalar("SELECT COUNT(*) FROM " + quoted(t.name));
    const auto start = std::chrono::steady_clock::now();
    const std::string sql = "SELECT " + column_list(t, false) + " FROM " + quoted(t.name) +
                            " ORDER BY " + key_order(t, false);
    RawStatement src(db, sql.c_str());
    pg_exec("DECLARE relais_verify NO SCROLL CURSOR FOR SELECT " + column_list(t, true) + " FROM " +
            quoted(t.name) + " ORDER BY " + key_order(t, true));
    Sha256 src_sum, dst_sum;
    pg::Result chunk;
    int at = 0;
    bool src_more = src.row(), dst_more = true;
    auto next_dst = [&]() -> std::optional<Row> {
      if (!dst_more) return std::nullopt;
      if (at >= chunk.rows()) {
        chunk = pg_query("FETCH 5000 FROM relais_verify");
        at = 0;
        if (chunk.rows() == 0) {
          dst_more = false;
          return std::nullopt;
        }
      }
      Row r;
      r.reserve(t.columns.size());
      for (size_t c = 0; c < t.columns.size(); ++c) {
        r.push_back(pg_value(chunk, at, static_cast<int>(c), t.columns[c]));
      }
      ++at;
      return r;
    };
    std::optional<Row> a = src_more ? std::optional<Row>(sqlite_row(src, t)) : std::nullopt;
    std::optional<Row> b = next_dst();
    auto differ = [&](const Row& row, const char* what) {
      if (out.first_difference.empty()) out.first_difference = key_text(t, row) + ": " + what;
    };
    while (a || b) {
      int c = !a ? 1 : !b ? -1 : compare_keys(t, *a, *b);
      std::string ta, tb;
      if (c <= 0) append_canonical(ta, *a);
      if (c >= 0) append_canonical(tb, *b);
      if (c == 0 && ta != tb) differ(*a, "the row differs");
      if (c < 0) differ(*a, "missing in the target");
      if (c > 0) differ(*b, "in the target only");
      if (c <= 0) {
        src_sum.update(ta);
        ++out.source_rows;
        a = src.row() ? std::optional<Row>(sqlite_row(src, t)) : std::nullopt;
        if (out.source_rows % 5000 == 0) {
          emit("verify", t, out.source_rows, total, out.source_rows, start, false);
        }
      }
      if (c >= 0) {
        dst_sum.update(tb);
        ++out.target_rows;
        b = next_dst();
      }
    }
    pg_exec("CLOSE relais_verify");
    out.source_sha256 = src_sum.hex();
    out.target_sha256 = dst_sum.hex();
    if (out.first_difference.empty() && out.source_sha256 != out.target_sha256) {
      out.first_difference = "checksums differ";  // cannot happen when every row is equal
    }
    emit("verify", t, out.source_rows, total, out.source_rows, start, true);
    return out;
  }
};

StoreMigration::StoreMigration(MigrationSettings settings, MigrationProgressFn progress,
                               bool verify_only)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.settings = std::move(settings);
  m.progress = std::move(progress);
  if (m.settings.batch < 1) throw std::runtime_error("the batch is at least one row");
  pg::UriTarget where = pg::parse_uri(m.settings.pg_uri);
  if (where.has_password) {
    throw std::runtime_error(
        "the target URI holds a password: give it through an environment variable "
        "(--password-env VAR) instead");
  }
  m.target = where.describe;
  m.open_source();
  Status s = pg::Connection::open(m.settings.pg_uri, 10, m.pg, m.settings.pg_password);
  if (!s.ok) m.fail("target " + m.target, s);
  // No relais dispatching on the target, no other migration; held until the end of the run (a
  // relais starting on the target meanwhile stops, saying another one holds the lock).
  pg::Result locks = m.pg_query(
      "SELECT pg_try_advisory_lock(hashtext('relais.dispatch')), "
      "pg_try_advisory_lock(hashtext('relais.store_migration'))");
  if (locks.text(0, 0) != "t") {
    throw std::runtime_error("a relais runs on the target " + m.target +
                             " (it holds the dispatch lock): stop it first");
  }
  if (locks.text(0, 1) != "t") {
    throw std::runtime_error("another `relais store migrate` runs on the target " + m.target);
  }
  if (verify_only) {
    pg::check_schema(*m.pg, postgresql_schema_version(), "target " + m.target);
  } else {
    // The schema through the normal migrations, as relais creates it.
    StoreOptions o;
    o.uri = m.settings.pg_uri;
    o.password = m.settings.pg_password;
    o.read_pool = 1;
    open_postgresql_store(o)->close();
    if (m.pg_query("SELECT to_regclass('store_migration_progress') IS NULL").text(0, 0) == "t") {
      m.pg_exec(
          "CREATE TABLE IF NOT EXISTS store_migration (source text NOT NULL, source_path text "
          "NOT NULL, started_at bigint NOT NULL, finished_at bigint NOT NULL DEFAULT 0); "
          "CREATE TABLE store_migration_progress (table_name text PRIMARY KEY, last_key text NOT "
          "NULL, rows bigint NOT NULL, done boolean NOT NULL)");
    }
  }
  m.check_schemas();
}

StoreMigration::~StoreMigration() = default;

int64_t StoreMigration::copy() {
  Impl& m = *impl_;
  m.claim_target();
  auto progress = m.load_progress();
  int64_t copied = 0;
  for (const auto& t : migrated_tables()) {
    auto& tp = progress[t.name];
    if (tp.done) {
      int64_t total = m.sqlite_scalar("SELECT COUNT(*) FROM " + quoted(t.name));
      m.emit("copy", t, tp.rows, total, 0, std::chrono::steady_clock::now(), true);
      continue;
    }
    copied += m.copy_table(t, tp);
  }
  m.set_sequences();
  return copied;
}

std::vector<TableCheck> StoreMigration::verify() {
  Impl& m = *impl_;
  std::vector<TableCheck> out;
  // One snapshot on each side.
  m.sqlite_exec("BEGIN");
  m.pg_exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  for (const auto& t : migrated_tables()) out.push_back(m.verify_table(t));
  m.pg_exec("COMMIT");
  m.sqlite_exec("COMMIT");
  bool all = true;
  for (const auto& c : out) all = all && c.ok();
  if (all) {
    pg::Params p;
    p.num(now_ms());
    // Absent with --verify-only on a database that was not migrated: nothing to record.
    if (m.pg_query("SELECT to_regclass('store_migration') IS NOT NULL").text(0, 0) == "t") {
      m.pg_query("UPDATE store_migration SET finished_at = $1 WHERE finished_at = 0", p);
    }
  }
  return out;
}

std::vector<std::string> StoreMigration::tables() {
  std::vector<std::string> out;
  for (const auto& t : migrated_tables()) out.emplace_back(t.name);
  return out;
}

}  // namespace relais

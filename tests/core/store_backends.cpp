#include "tests/core/store_backends.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <stdexcept>

#include "store/postgresql/pg_backend.h"
#include "store/postgresql/pg_connection.h"
#include "store/sqlite/sqlite_backend.h"
#include "tests/support/pg_server.h"

namespace relais::testing {
namespace {

class SqliteBackend final : public StoreBackend {
 public:
  std::string name() const override { return "sqlite"; }
  std::unique_ptr<Store> open(StoreOptions o) override {
    o.path = file();
    return open_sqlite_store(o);
  }
  std::unique_ptr<XrefStore> open_xrefs(const Clock& clock) override {
    return open_sqlite_xref_store(file(), clock);
  }
  int64_t scalar(const std::string& sql) override {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(file().c_str(), &db), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    int64_t v = -1;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK)
        << sql << ": " << sqlite3_errmsg(db);
    if (st != nullptr && sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
  }
  std::vector<std::string> column(const std::string& sql) override {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(file().c_str(), &db), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    std::vector<std::string> out;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK)
        << sql << ": " << sqlite3_errmsg(db);
    while (st != nullptr && sqlite3_step(st) == SQLITE_ROW) {
      const auto* p = sqlite3_column_text(st, 0);
      out.emplace_back(p ? reinterpret_cast<const char*>(p) : "");
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
  }
  void exec(const std::string& sql) override {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(file().c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sql << ": " << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  relais::StoreLocation location() override {
    relais::StoreLocation l;
    l.kind = "sqlite";
    l.path = file();
    return l;
  }

 private:
  std::string file() const { return dir_.path() + "/relais.db"; }
  TempDir dir_{"relais-store-"};
};

class PostgresBackend final : public StoreBackend {
 public:
  PostgresBackend() : uri_(fresh_pg_database()) {}
  std::string name() const override { return "postgresql"; }
  std::unique_ptr<Store> open(StoreOptions o) override {
    o.uri = uri_;
    return open_postgresql_store(o);
  }
  std::unique_ptr<XrefStore> open_xrefs(const Clock& clock) override {
    return open_postgresql_xref_store(uri_, clock);
  }
  int64_t scalar(const std::string& sql) override {
    pg::Result r;
    Status s = connection().run_text(sql, pg::Params(), r);
    EXPECT_TRUE(s.ok) << sql << ": " << s.detail;
    if (r.rows() == 0) return -1;
    std::string v = r.text(0, 0);
    if (v == "t" || v == "f") return v == "t" ? 1 : 0;
    return r.int64(0, 0);
  }
  std::vector<std::string> column(const std::string& sql) override {
    pg::Result r;
    Status s = connection().run_text(sql, pg::Params(), r);
    EXPECT_TRUE(s.ok) << sql << ": " << s.detail;
    std::vector<std::string> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(r.text(i, 0));
    return out;
  }
  void exec(const std::string& sql) override {
    Status s = connection().exec(sql);
    EXPECT_TRUE(s.ok) << sql << ": " << s.detail;
  }
  relais::StoreLocation location() override {
    relais::StoreLocation l;
    l.kind = "postgresql";
    std::string from = " password=" + pg_password();
    l.uri = uri_;
    l.uri.erase(l.uri.find(from), from.size());
    l.password_env = "RELAIS_TEST_PG_PASSWORD";
    ::setenv(l.password_env.c_str(), pg_password().c_str(), 1);
    l.state_dir = state_.path();
    return l;
  }

 private:
  TempDir state_{"relais-state-"};
  pg::Connection& connection() {
    if (!c_ || !c_->ok()) {
      Status s = pg::Connection::open(uri_, 10, c_);
      if (!s.ok) throw std::runtime_error(s.detail);
    }
    return *c_;
  }
  std::string uri_;
  std::unique_ptr<pg::Connection> c_;
};

// Stops the shared server when the binary's tests end.
class PgEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { server.reset(); }
  std::unique_ptr<PgServer> server;
};
PgEnvironment* environment() {
  static PgEnvironment* env =
      static_cast<PgEnvironment*>(::testing::AddGlobalTestEnvironment(new PgEnvironment));
  return env;
}
// Registered before main runs the tests (a test may only add environments before that).
[[maybe_unused]] PgEnvironment* const kRegistered = environment();

PgServer& server() {
  auto* env = environment();
  if (!env->server) {
    env->server = std::make_unique<PgServer>();
    env->server->start();
  }
  if (!env->server->running()) env->server->start();
  return *env->server;
}

}  // namespace

std::unique_ptr<StoreBackend> StoreBackend::make(const std::string& name) {
  if (name == "sqlite") return std::make_unique<SqliteBackend>();
  if (name == "postgresql") return std::make_unique<PostgresBackend>();
  throw std::invalid_argument("no store backend " + name);
}

void stop_pg_server() {
  server().stop();
}

void start_pg_server() {
  server().start();
}

std::string pg_password() {
  return server().options().password;
}

std::string fresh_pg_database() {
  static std::atomic<int> counter{0};
  PgServer& pg = server();
  std::string name = "store_" + std::to_string(counter.fetch_add(1));
  pg.sql("CREATE DATABASE " + name + " OWNER " + pg.options().user + ";\n");
  std::string uri = pg.connection();
  std::string from = "dbname=" + pg.options().database;
  return uri.replace(uri.find(from), from.size(), "dbname=" + name);
}

}  // namespace relais::testing

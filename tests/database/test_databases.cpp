#include "tests/database/test_databases.h"

#include <map>
#include <stdexcept>

#include "connectors/database/database_poller.h"
#include "connectors/registry.h"

namespace relais::testing {

namespace {

class PgDb final : public TestDb {
 public:
  PgDb() { server_.start(); }
  std::string driver() const override { return "postgresql"; }
  std::string connection() const override { return server_.connection(); }
  std::string password() const override { return server_.options().password; }
  std::string sql(const std::string& s) override { return server_.sql_as_user(s); }
  std::string admin_sql(const std::string& s) override { return server_.sql(s); }
  std::string connection_as(const std::string& user, const std::string& pw) const override {
    return "host=127.0.0.1 port=" + std::to_string(server_.port()) +
           " dbname=" + server_.options().database + " user=" + user + " password=" + pw;
  }
  void stop() override { server_.stop(); }
  void start() override { server_.start(); }
  std::string timestamp_type() const override { return "timestamp(6)"; }
  std::string decimal_type() const override { return "numeric(12,2)"; }

 private:
  PgServer server_;
};

class MariaDb final : public TestDb {
 public:
  MariaDb() { server_.start(); }
  std::string driver() const override { return "mysql"; }
  std::string connection() const override { return server_.connection(); }
  std::string password() const override { return server_.options().password; }
  std::string sql(const std::string& s) override {
    std::string out = server_.sql(s);
    for (auto& c : out) {
      if (c == '\t') c = '|';
    }
    return out;
  }
  std::string admin_sql(const std::string& s) override { return sql(s); }
  std::string connection_as(const std::string& user, const std::string& pw) const override {
    return "host=127.0.0.1;port=" + std::to_string(server_.port()) +
           ";db=" + server_.options().database + ";user=" + user + ";password=" + pw;
  }
  void stop() override { server_.stop(); }
  void start() override { server_.start(); }
  std::string quote(const std::string& name) const override { return "`" + name + "`"; }
  std::string timestamp_type() const override { return "datetime(6)"; }
  std::string now() const override { return "NOW(6)"; }

 private:
  MariaDbServer server_;
};

class SqliteDb final : public TestDb {
 public:
  SqliteDb() : dir_("relais-sqlite-") { path_ = dir_.path() + "/cms76.db"; }
  std::string driver() const override { return "sqlite"; }
  std::string connection() const override { return path_; }
  std::string sql(const std::string& s) override {
    std::string file = dir_.write("statements.sql", s);
    return run_or_throw({"/usr/bin/sqlite3", "-batch", "-bail", "-cmd", ".timeout 5000", path_,
                         ".read " + file},
                        "sqlite3")
        .out;
  }
  // A file cannot go down; the tests that stop a server do not use SQLite.
  void stop() override {}
  void start() override {}
  std::string timestamp_type() const override { return "TEXT"; }
  std::string now() const override { return "strftime('%Y-%m-%d %H:%M:%f','now')"; }

 private:
  TempDir dir_;
  std::string path_;
};

std::map<std::string, std::unique_ptr<TestDb>>& dbs() {
  static std::map<std::string, std::unique_ptr<TestDb>> m;
  return m;
}

const PollerKind& database_kind() {
  static Registries registries;
  const PollerKind* k = registries.pollers.find("database");
  if (k == nullptr) throw std::runtime_error("the database poller kind is not registered");
  return *k;
}

}  // namespace

TestDb& test_db(const std::string& driver) {
  auto& m = dbs();
  auto it = m.find(driver);
  if (it != m.end()) return *it->second;
  return *m.emplace(driver, new_test_db(driver)).first->second;
}

std::unique_ptr<TestDb> new_test_db(const std::string& driver) {
  if (driver == "postgresql") return std::make_unique<PgDb>();
  if (driver == "mysql") return std::make_unique<MariaDb>();
  if (driver == "sqlite") return std::make_unique<SqliteDb>();
  throw std::runtime_error("unknown test database " + driver);
}

std::string database_poller_errors(const std::string& yaml) {
  YAML::Node node = YAML::Load(yaml);
  std::vector<ConfigError> errors;
  const PollerKind& kind = database_kind();
  if (validate(node, {kind.spec}, "sources.cms76.poll", "test.yaml", errors)) {
    kind.check(ConfigView(node, {kind.spec}, "sources.cms76.poll"), "test.yaml", errors);
  }
  std::string out;
  for (const auto& e : errors) out += e.to_string() + "\n";
  return out;
}

std::unique_ptr<Poller> make_database_poller(const std::string& yaml) {
  std::string errors = database_poller_errors(yaml);
  if (!errors.empty()) throw std::runtime_error(errors);
  const PollerKind& kind = database_kind();
  PollerContext ctx;
  ctx.name = "cms76";
  ctx.config = ConfigView(YAML::Load(yaml), {kind.spec}, "sources.cms76.poll");
  return kind.create(ctx);
}

}  // namespace relais::testing

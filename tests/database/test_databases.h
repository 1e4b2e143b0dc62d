#pragma once
// The three databases the `database` polling source is tested against, behind one interface:
// a real PostgreSQL and a real MariaDB (started once per test binary, shared by its tests, each
// test on tables of its own) and a SQLite file. Each knows its dialect's spelling of the few
// things the tests' SQL needs. Not thread-safe; owned by the test environment.

#include <memory>
#include <string>

#include <yaml-cpp/yaml.h>

#include "core/poller.h"
#include "tests/support/mariadb_server.h"
#include "tests/support/pg_server.h"

namespace relais::testing {

class TestDb {
 public:
  virtual ~TestDb() = default;
  virtual std::string driver() const = 0;
  virtual std::string connection() const = 0;
  virtual std::string password() const { return ""; }
  // Runs statements as the administrator; returns the text output (rows on lines, fields
  // separated by '|').
  virtual std::string sql(const std::string& statements) = 0;
  // The same as the server's administrator (roles, grants); SQLite: as sql().
  virtual std::string admin_sql(const std::string& statements) { return sql(statements); }
  // The connection string of another account of the server.
  virtual std::string connection_as(const std::string& user, const std::string& password) const {
    return connection();
  }
  virtual void stop() = 0;
  virtual void start() = 0;
  // Dialect.
  virtual std::string quote(const std::string& name) const { return "\"" + name + "\""; }
  virtual std::string timestamp_type() const = 0;
  virtual std::string decimal_type() const { return "decimal(12,2)"; }
  virtual std::string now() const { return "CURRENT_TIMESTAMP"; }
};

// The database named by `driver` ("postgresql", "mysql", "sqlite"), started on first use and
// shared by the binary's tests.
TestDb& test_db(const std::string& driver);
// A database of its own (a new server, started), stopped and removed with the object.
std::unique_ptr<TestDb> new_test_db(const std::string& driver);

// A poller of kind `database` built from the YAML text of its `poll:` block (validated and
// checked as the hub does; throws std::runtime_error with the errors).
std::unique_ptr<Poller> make_database_poller(const std::string& yaml);
// The errors validate + check report for that block ("" when none).
std::string database_poller_errors(const std::string& yaml);

}  // namespace relais::testing

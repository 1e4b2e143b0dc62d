#pragma once
// A throwaway PostgreSQL 15 server for tests (the CMS76 database of the polling source, the
// PostgreSQL store of issue 15): initdb in a temporary folder owned by the `postgres` account
// (root cannot run postgres), a free loopback port, its own socket folder; a database and a
// user with a password (scram-sha-256 over TCP). start() runs `postgres` as a child of the test
// (it dies with the thread that started it) and waits until it accepts connections (pg_isready,
// polled); stop() takes it down (fast shutdown) and start() brings it back on the same port with
// the same data, to test a database that goes away mid-run.
//
//   PgServer pg;            // nothing runs yet
//   pg.start();             // throws std::runtime_error (with the server's log) on failure
//   pg.sql("CREATE TABLE t (id int)");
//   Poco::Data::Session s("postgresql", pg.connection());
//
// Not thread-safe: drive it from one thread. Owns the server process and the folder: the
// destructor stops the server (immediate shutdown) and removes everything.

#include <sys/types.h>

#include <string>

#include "tests/support/db_server_util.h"

namespace relais::testing {

class PgServer {
 public:
  explicit PgServer(DbServerOptions options = {});
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  // The first call creates the cluster, the database and the user; later calls start it again.
  void start();
  void stop();
  bool running() const { return running_; }

  int port() const { return port_; }
  const DbServerOptions& options() const { return options_; }
  // libpq / Poco::Data "postgresql" connection string of the test user over TCP.
  std::string connection() const;
  // The same without the password, which goes into the environment variable `password_env`
  // instead (as `store.password_env` reads it: relais refuses a URI that holds one).
  std::string connection_with_password_in(const char* password_env) const;
  // The `store:` keys of a relais on this database (RelaisOptions::store_section_yaml): kind
  // postgresql, the URI without the password — which goes through the environment variable
  // `password_env`, set here in this process so that the relais children inherit it — and the
  // node's own `state_dir`.
  std::string relais_store_section(const std::string& password_env,
                                   const std::string& state_dir) const;
  // Runs SQL statements as the superuser (psql over the socket, stops at the first error);
  // returns psql's output (unaligned, tuples only, fields separated by '|'). Throws on error.
  std::string sql(const std::string& statements) const;
  // The same in the test database as the test user (checks what that user may do).
  std::string sql_as_user(const std::string& statements) const;

 private:
  std::string psql(const std::string& statements, bool as_user) const;
  DbServerOptions options_;
  ServerAccount account_;
  TempDir dir_;
  std::string bin_;
  int port_ = 0;
  pid_t pid_ = -1;  // the postmaster, our child
  bool created_ = false;
  bool running_ = false;
};

}  // namespace relais::testing

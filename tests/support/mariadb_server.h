#pragma once
// A throwaway MariaDB server for tests (the CMS76 database in its MariaDB form):
// mariadb-install-db in a temporary folder owned by the `mysql` account, `mariadbd` on a free
// loopback port (--skip-networking=0 --bind-address=127.0.0.1) with its own socket, datadir and
// pid file; a database and a user with a password. start() waits until the server answers a
// ping (polled); stop() takes it down (SIGTERM, clean shutdown) and start() brings it back on
// the same port with the same data.
//
// Not thread-safe: drive it from one thread. Owns the server process (it also dies with the
// thread that started it) and the folder: the destructor stops the server and removes everything.

#include <sys/types.h>

#include <string>

#include "tests/support/db_server_util.h"

namespace relais::testing {

class MariaDbServer {
 public:
  explicit MariaDbServer(DbServerOptions options = {});
  ~MariaDbServer();
  MariaDbServer(const MariaDbServer&) = delete;
  MariaDbServer& operator=(const MariaDbServer&) = delete;

  void start();
  void stop();
  bool running() const { return pid_ > 0; }

  int port() const { return port_; }
  const DbServerOptions& options() const { return options_; }
  // Poco::Data "mysql" connection string of the test user over TCP.
  std::string connection() const;
  // Runs SQL statements as the server's root account (the `mariadb` client over the socket, in
  // the test database once it exists); returns the client's batch output (tab-separated, no
  // column names). Throws on error.
  std::string sql(const std::string& statements) const;

 private:
  bool ping() const;
  DbServerOptions options_;
  ServerAccount account_;
  TempDir dir_;
  std::string server_bin_;
  int port_ = 0;
  pid_t pid_ = -1;
  bool created_ = false;
};

}  // namespace relais::testing

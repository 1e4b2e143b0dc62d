#include "tests/support/mariadb_server.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <stdexcept>

namespace relais::testing {

MariaDbServer::MariaDbServer(DbServerOptions options)
    : options_(std::move(options)),
      account_(ServerAccount::for_server("mysql")),
      dir_("relais-mariadb-") {
  server_bin_ = find_executable({"/usr/sbin/mariadbd", "/usr/bin/mariadbd"});
  if (server_bin_.empty() || find_executable({"/usr/bin/mariadb-install-db"}).empty()) {
    throw std::runtime_error(
        "MariaDB is not installed (scripts/install-deps.sh installs mariadb-server)");
  }
}

MariaDbServer::~MariaDbServer() {
  if (pid_ > 0) stop_child(pid_, SIGKILL, std::chrono::seconds(30));
}

std::string MariaDbServer::connection() const {
  return "host=127.0.0.1;port=" + std::to_string(port_) + ";db=" + options_.database +
         ";user=" + options_.user + ";password=" + options_.password;
}

void MariaDbServer::start() {
  if (pid_ > 0) return;
  const std::string& d = dir_.path();
  if (!created_) {
    account_.own(d);
    run_or_throw(
        account_.command(
            {"/usr/bin/mariadb-install-db", "--no-defaults", "--datadir=" + d + "/data",
             "--auth-root-authentication-method=socket", "--auth-root-socket-user=" + account_.name,
             "--skip-test-db", "--skip-name-resolve"},
            d),
        "mariadb-install-db");
    port_ = free_port();
  }
  std::vector<std::string> argv{server_bin_,
                                "--no-defaults",
                                "--datadir=" + d + "/data",
                                "--socket=" + d + "/mariadb.sock",
                                "--pid-file=" + d + "/mariadb.pid",
                                "--log-error=" + d + "/server.log",
                                "--port=" + std::to_string(port_),
                                "--skip-networking=0",
                                "--bind-address=127.0.0.1",
                                "--skip-name-resolve",
                                "--innodb-buffer-pool-size=32M",
                                "--innodb-flush-log-at-trx-commit=0",
                                "--innodb-doublewrite=0",
                                "--skip-log-bin"};
  pid_ = account_.spawn(argv, d, d + "/stdout.log");
  wait_until_ready(
      pid_, [&] { return ping(); }, "mariadbd", d + "/server.log");
  if (!created_) {
    created_ = true;  // sql() now runs in the test database, created first
    std::string create =
        "CREATE DATABASE " + options_.database + " CHARACTER SET utf8mb4;\nCREATE USER '" +
        options_.user + "'@'127.0.0.1' IDENTIFIED BY " + sql_literal(options_.password, true) +
        ";\nGRANT ALL ON " + options_.database + ".* TO '" + options_.user + "'@'127.0.0.1';\n";
    run_or_throw(
        account_.command({"/usr/bin/mariadb", "--no-defaults", "--socket=" + d + "/mariadb.sock",
                          "-u" + account_.name, "-e", create},
                         d),
        "mariadb (create the database)");
  }
}

bool MariaDbServer::ping() const {
  CommandResult r =
      run_command(account_.command({"/usr/bin/mariadb-admin", "--no-defaults",
                                    "--socket=" + dir_.path() + "/mariadb.sock",
                                    "-u" + account_.name, "--connect-timeout=2", "ping"},
                                   dir_.path()),
                  std::chrono::seconds(10));
  return r.exit_code == 0;
}

void MariaDbServer::stop() {
  if (pid_ <= 0) return;
  int code = stop_child(pid_, SIGTERM, std::chrono::seconds(60));
  pid_ = -1;
  if (code < 0) throw std::runtime_error("mariadbd did not stop within 60 s (killed)");
}

std::string MariaDbServer::sql(const std::string& statements) const {
  static std::atomic<int> counter{0};
  std::string file = dir_.write(
      "sql-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)) + ".sql",
      statements);
  account_.own(file);
  CommandResult r =
      run_or_throw(account_.command({"/usr/bin/mariadb", "--no-defaults",
                                     "--socket=" + dir_.path() + "/mariadb.sock",
                                     "-u" + account_.name, "--batch", "--skip-column-names",
                                     options_.database, "-e", "source " + file},
                                    dir_.path()),
                   "mariadb");
  ::unlink(file.c_str());
  return r.out;
}

}  // namespace relais::testing

#include "tests/support/pg_server.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace relais::testing {

PgServer::PgServer(DbServerOptions options)
    : options_(std::move(options)),
      account_(ServerAccount::for_server("postgres")),
      dir_("relais-pg-") {
  bin_ = "/usr/lib/postgresql/15/bin";
  if (find_executable({bin_ + "/postgres"}).empty()) {
    throw std::runtime_error(
        "PostgreSQL 15 is not installed (scripts/install-deps.sh installs postgresql-15)");
  }
}

PgServer::~PgServer() {
  if (pid_ > 0) stop_child(pid_, SIGQUIT, std::chrono::seconds(30));  // immediate shutdown
}

std::string PgServer::connection() const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + options_.database +
         " user=" + options_.user + " password=" + options_.password;
}

std::string PgServer::connection_with_password_in(const char* password_env) const {
  if (::setenv(password_env, options_.password.c_str(), 1) != 0) {
    throw std::runtime_error(std::string("cannot set ") + password_env);
  }
  return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + options_.database +
         " user=" + options_.user;
}

std::string PgServer::relais_store_section(const std::string& password_env,
                                           const std::string& state_dir) const {
  return "  kind: postgresql\n  uri: \"" + connection_with_password_in(password_env.c_str()) +
         "\"\n  password_env: " + password_env + "\n  state_dir: " + state_dir + "\n";
}

void PgServer::start() {
  if (running_) return;
  const std::string& d = dir_.path();
  if (!created_) {
    account_.own(d);
    std::string pwfile = dir_.write("pw", options_.password + "\n");
    account_.own(pwfile);
    run_or_throw(account_.command({bin_ + "/initdb", "-D", d + "/data", "--no-sync", "-U",
                                   "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
                                   "--pwfile=" + pwfile, "--encoding=UTF8", "--no-locale"},
                                  d),
                 "initdb");
    port_ = free_port();
  }
  // `postgres` itself as a child (not pg_ctl, whose server outlives a test that crashes):
  // 127.0.0.1 only, its socket in the folder, durability off (a test server).
  pid_ = account_.spawn(
      {bin_ + "/postgres", "-D", d + "/data", "-p", std::to_string(port_), "-k", d, "-c",
       "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c",
       "full_page_writes=off", "-c", "max_connections=50"},
      d, d + "/server.log");
  // Ready when it accepts connections on its socket (pg_isready, polled).
  wait_until_ready(
      pid_,
      [&] {
        return run_command(
                   account_.command(
                       {bin_ + "/pg_isready", "-q", "-h", d, "-p", std::to_string(port_)}, d),
                   std::chrono::seconds(10))
                   .exit_code == 0;
      },
      "postgres", d + "/server.log");
  running_ = true;
  if (!created_) {
    psql("CREATE ROLE " + options_.user + " LOGIN PASSWORD " +
             sql_literal(options_.password, false) + ";\nCREATE DATABASE " + options_.database +
             " OWNER " + options_.user + ";\n",
         false);
    created_ = true;
  }
}

void PgServer::stop() {
  if (!running_) return;
  int code = stop_child(pid_, SIGINT, std::chrono::seconds(60));  // fast shutdown
  pid_ = -1;
  running_ = false;
  if (code < 0) throw std::runtime_error("postgres did not stop within 60 s (killed)");
}

std::string PgServer::sql(const std::string& statements) const {
  return psql(statements, false);
}

std::string PgServer::sql_as_user(const std::string& statements) const {
  return psql(statements, true);
}

std::string PgServer::psql(const std::string& statements, bool as_user) const {
  static std::atomic<int> counter{0};
  std::string file = dir_.write(
      "sql-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)) + ".sql",
      statements);
  account_.own(file);
  std::vector<std::string> argv{bin_ + "/psql",    "-X", "-q", "-A", "-t", "-v",
                                "ON_ERROR_STOP=1", "-f", file};
  if (as_user) {
    argv.insert(argv.end(), {"-h", "127.0.0.1", "-p", std::to_string(port_), "-U", options_.user,
                             "-d", options_.database});
  } else {
    argv.insert(argv.end(), {"-h", dir_.path(), "-p", std::to_string(port_), "-U", "postgres", "-d",
                             created_ ? options_.database : "postgres"});
  }
  std::vector<std::string> cmd = account_.command(argv, dir_.path());
  if (as_user) {
    // libpq reads the password from the environment.
    cmd.insert(cmd.begin() + (account_.switch_user ? 4 : 0),
               {"/usr/bin/env", "PGPASSWORD=" + options_.password});
  }
  CommandResult r = run_or_throw(cmd, "psql");
  ::unlink(file.c_str());
  return r.out;
}

}  // namespace relais::testing

#pragma once
// What the throwaway database servers of the tests share (pg_server.h, mariadb_server.h): the
// account a server runs as (root cannot run postgres; mariadbd refuses root without --user), a
// folder handed to that account, and commands run as it. Nothing here is linked into relais.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "tests/support/relais_process.h"

namespace relais::testing {

// The database a test server creates, and the account (with a password) that the code under
// test connects with over TCP on 127.0.0.1. Plain value.
struct DbServerOptions {
  std::string database = "cms76";
  std::string user = "relais";
  std::string password = "relais-test-Pw-0123456789";
};

// The system account a server runs as: `preferred` ("postgres", "mysql") when this process runs
// as root, else the current user (a non-root CI user runs the server itself).
struct ServerAccount {
  bool switch_user = false;  // true: commands go through runuser -u NAME --
  std::string name;
  unsigned uid = 0;
  unsigned gid = 0;
  static ServerAccount for_server(const std::string& preferred);
  // argv run as the account, in the folder `cwd` (env -C: the account must be able to read it).
  std::vector<std::string> command(const std::vector<std::string>& argv,
                                   const std::string& cwd) const;
  // Gives `path` (and what it holds) to the account.
  void own(const std::string& path) const;
  // Starts argv (argv[0] a full path) as the account, in `cwd`, stdin from /dev/null, stdout
  // and stderr into `log`. The child gets SIGKILL when the thread that started it dies: the
  // death signal is set after the change of account (which would clear it), so a test that
  // crashes leaves no server behind.
  pid_t spawn(const std::vector<std::string>& argv, const std::string& cwd,
              const std::string& log) const;
};

// Waits (polling, up to 60 s) until `ready()` holds for the server child `pid`; when it exits
// or never gets ready, kills it and throws std::runtime_error with `what` and the server's
// `log`. `pid` is -1 afterwards when the server is gone.
void wait_until_ready(pid_t& pid, const std::function<bool()>& ready, const std::string& what,
                      const std::string& log);

// Sends `signal` to pid and waits up to `timeout` for it (SIGKILL after); the exit code as
// wait_command gives it.
int stop_child(pid_t pid, int signal, std::chrono::milliseconds timeout);

// Runs argv; throws std::runtime_error naming `what` with its output when it fails.
CommandResult run_or_throw(const std::vector<std::string>& argv, const std::string& what,
                           std::chrono::milliseconds timeout = std::chrono::seconds(60));

// `s` as an SQL string literal: quotes doubled (PostgreSQL), or quotes and backslashes escaped
// with a backslash (`backslash_escapes`: MariaDB).
std::string sql_literal(const std::string& s, bool backslash_escapes);

// The first of `candidates` that is an executable file, or "".
std::string find_executable(const std::vector<std::string>& candidates);

}  // namespace relais::testing

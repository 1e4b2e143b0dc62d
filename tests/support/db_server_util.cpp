#include "tests/support/db_server_util.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>

namespace relais::testing {

namespace fs = std::filesystem;

ServerAccount ServerAccount::for_server(const std::string& preferred) {
  ServerAccount a;
  if (::geteuid() == 0) {
    const passwd* pw = ::getpwnam(preferred.c_str());
    if (pw == nullptr) {
      throw std::runtime_error("the system account " + preferred +
                               " is missing (scripts/install-deps.sh installs the server that "
                               "creates it)");
    }
    a.switch_user = true;
    a.name = preferred;
    a.uid = pw->pw_uid;
    a.gid = pw->pw_gid;
  } else {
    const passwd* pw = ::getpwuid(::geteuid());
    a.name = pw != nullptr ? pw->pw_name : "";
    a.uid = ::geteuid();
    a.gid = ::getegid();
  }
  return a;
}

std::vector<std::string> ServerAccount::command(const std::vector<std::string>& argv,
                                                const std::string& cwd) const {
  std::vector<std::string> out;
  if (switch_user) out = {"/usr/sbin/runuser", "-u", name, "--"};
  out.insert(out.end(), {"/usr/bin/env", "-C", cwd});
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

void ServerAccount::own(const std::string& path) const {
  if (!switch_user) return;
  if (::chown(path.c_str(), uid, gid) != 0) {
    throw std::runtime_error("cannot give " + path + " to " + name);
  }
  if (!fs::is_directory(path)) return;
  for (const auto& e : fs::recursive_directory_iterator(path)) {
    if (::lchown(e.path().c_str(), uid, gid) != 0) {
      throw std::runtime_error("cannot give " + e.path().string() + " to " + name);
    }
  }
}

pid_t ServerAccount::spawn(const std::vector<std::string>& argv, const std::string& cwd,
                           const std::string& log) const {
  int in_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (in_fd < 0 || out_fd < 0) {
    if (in_fd >= 0) ::close(in_fd);
    if (out_fd >= 0) ::close(out_fd);
    throw std::runtime_error("cannot open " + log);
  }
  if (switch_user && ::fchown(out_fd, uid, gid) != 0) {
    ::close(in_fd);
    ::close(out_fd);
    throw std::runtime_error("cannot give " + log + " to " + name);
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {  // only async-signal-safe calls from here
    if (switch_user && (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0)) {
      ::_exit(126);
    }
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    if (::chdir(cwd.c_str()) != 0) ::_exit(125);
    ::dup2(in_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(out_fd, 2);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(in_fd);
  ::close(out_fd);
  if (pid < 0) throw std::runtime_error("fork failed");
  return pid;
}

void wait_until_ready(pid_t& pid, const std::function<bool()>& ready, const std::string& what,
                      const std::string& log) {
  bool up = wait_until(
      [&] {
        int code = 0;
        if (::waitpid(pid, &code, WNOHANG) == pid) {
          pid = -1;
          return true;
        }
        return ready();
      },
      std::chrono::seconds(60), std::chrono::milliseconds(50));
  if (up && pid > 0) return;
  if (pid > 0) stop_child(pid, SIGKILL, std::chrono::seconds(30));
  pid = -1;
  std::string text;
  try {
    text = read_file(log);
  } catch (...) {  // no log: the message says what it can
  }
  throw std::runtime_error(what + " did not start: " + text);
}

int stop_child(pid_t pid, int signal, std::chrono::milliseconds timeout) {
  ::kill(pid, signal);
  return wait_command(pid, timeout);
}

CommandResult run_or_throw(const std::vector<std::string>& argv, const std::string& what,
                           std::chrono::milliseconds timeout) {
  CommandResult r = run_command(argv, timeout);
  if (r.exit_code != 0) {
    throw std::runtime_error(what + " failed (exit " + std::to_string(r.exit_code) + "): " + r.err +
                             r.out);
  }
  return r;
}

std::string sql_literal(const std::string& s, bool backslash_escapes) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += backslash_escapes ? '\\' : '\'';
    if (c == '\\' && backslash_escapes) out += '\\';
    out += c;
  }
  return out + "'";
}

std::string find_executable(const std::vector<std::string>& candidates) {
  for (const auto& c : candidates) {
    if (::access(c.c_str(), X_OK) == 0) return c;
  }
  return "";
}

}  // namespace relais::testing

#include "tests/support/db_server_util.h"

#include <grp.h>
#include <pwd.h>
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

CommandResult run_or_throw(const std::vector<std::string>& argv, const std::string& what,
                           std::chrono::milliseconds timeout) {
  CommandResult r = run_command(argv, timeout);
  if (r.exit_code != 0) {
    throw std::runtime_error(what + " failed (exit " + std::to_string(r.exit_code) + "): " + r.err +
                             r.out);
  }
  return r;
}

std::string find_executable(const std::vector<std::string>& candidates) {
  for (const auto& c : candidates) {
    if (::access(c.c_str(), X_OK) == 0) return c;
  }
  return "";
}

}  // namespace relais::testing

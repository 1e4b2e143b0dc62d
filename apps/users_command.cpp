// `relais users add|list|passwd|disable|enable`: the console's local users, from the command
// line (the first admin is created here; later ones through the console).

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>

#include "apps/api_client.h"
#include "apps/commands.h"
#include "core/clock.h"
#include "core/console_store.h"
#include "core/crypto.h"
#include "core/store_backend.h"

namespace relais {
namespace {

const char* kUsersUsage =
    "usage: relais users add NAME --role admin|support|auditor --config FILE [--server URL] "
    "[--token TOKEN]\n"
    "       relais users passwd NAME --config FILE [--server URL] [--token TOKEN]\n"
    "       relais users disable|enable NAME --config FILE [--server URL] [--token TOKEN]\n"
    "       relais users list --config FILE\n\n"
    "add and passwd read the password from the environment variable RELAIS_PASSWORD, or else "
    "from the first line of standard input (at least 12 characters). It is stored as a "
    "PBKDF2-SHA256 hash (600,000 iterations); the action is written to the audit trail.\n"
    "add, passwd, disable and enable write: while relais runs on the store they go through its "
    "API (--server URL, default $RELAIS_URL, else the URL the running relais published next to "
    "its store; --token, default $RELAIS_TOKEN, an admin token) and refuse without a token; "
    "when no relais runs they write the store itself. list only reads: it opens the store "
    "read-only (safe while relais runs; never migrated).\n";

// add/passwd/disable/enable through the API of a running relais (POST /api/v1/users,
// PATCH /api/v1/users/{name}); the server audits them under the token's name.
int users_via_api(const WriteTarget& target, const std::string& op, const std::string& name,
                  const std::string& role, const std::string& password) {
  ApiClient api(target.url, target.token);
  ApiAnswer a;
  if (op == "add") {
    a = api.send_json("POST", "/api/v1/users",
                      {{"name", name}, {"role", role}, {"password", password}});
  } else if (op == "passwd") {
    a = api.send_json("PATCH", "/api/v1/users/" + api.escape(name), {{"password", password}});
  } else {
    a = api.send_json("PATCH", "/api/v1/users/" + api.escape(name),
                      {{"disabled", op == "disable"}});
  }
  if (a.status != 200 && a.status != 201) {
    std::cerr << "relais users " << op << ": " << a.describe() << "\n";
    return 1;
  }
  if (op == "add") {
    std::cout << "user " << name << " (" << role << ") created\n";
  } else {
    std::cout << "user " << name << ": " << (op == "passwd" ? "password changed" : op + "d")
              << "\n";
  }
  return 0;
}

bool read_password(std::string& out) {
  if (const char* env = std::getenv("RELAIS_PASSWORD")) {
    out = env;
  } else {
    if (isatty(STDIN_FILENO)) std::cerr << "password: " << std::flush;
    std::getline(std::cin, out);
    while (!out.empty() && (out.back() == '\r' || out.back() == '\n')) out.pop_back();
  }
  if (out.size() < 12) {
    std::cerr << "relais users: a password has at least 12 characters\n";
    return false;
  }
  return true;
}

}  // namespace

int users_command(int argc, char** argv) {
  auto pos = cli_positionals(argc, argv);
  bool help = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) help = true;
  }
  if (help || pos.empty()) {
    (help ? std::cout : std::cerr) << kUsersUsage;
    return help ? 0 : 64;
  }
  try {
    HubConfig cfg;
    const Clock& clock = SystemClock::instance();
    const std::string& op = pos[0];
    if (op == "list" && pos.size() == 1) {
      open_configured_store(argc, argv, cfg, StoreAccess::ReadOnly);
      auto store =
          open_store_backend(cfg.store)->open_console(clock, StoreAccess::ReadOnly, nullptr);
      for (const auto& u : store->users()) {
        std::cout << u.name << "\t" << u.role << "\t" << (u.disabled ? "disabled" : "active")
                  << "\t" << format_rfc3339(u.created_at) << "\t" << u.created_by << "\n";
      }
      return 0;
    }
    if (pos.size() != 2) {
      std::cerr << kUsersUsage;
      return 64;
    }
    const std::string& name = pos[1];
    if (op != "add" && op != "passwd" && op != "disable" && op != "enable") {
      std::cerr << kUsersUsage;
      return 64;
    }
    std::string role = cli_option(argc, argv, "--role");
    if (op == "add" && role != "admin" && role != "support" && role != "auditor") {
      std::cerr << "relais users add: --role admin|support|auditor is required\n";
      return 64;
    }
    load_configuration(argc, argv, cfg);
    WriteTarget target = resolve_write_target(cfg, argc, argv, "relais users " + op);
    std::string password;
    if ((op == "add" || op == "passwd") && !read_password(password)) return 1;
    if (target.via_api) return users_via_api(target, op, name, role, password);
    // No relais on this store: write it directly (creating or migrating it), lock held.
    open_configured_store(argc, argv, cfg, StoreAccess::ReadWrite);
    auto store =
        open_store_backend(cfg.store)->open_console(clock, StoreAccess::ReadWrite, nullptr);
    if (op == "add") {
      Status s = store->add_user(UserRecord{name, role, hash_password(password), 0, cli_actor()});
      if (!s.ok) {
        std::cerr << "relais users add: " << s.detail << "\n";
        return 1;
      }
      store->audit(AuditEntry{0, 0, cli_actor(), "cli", "user.create", "user:" + name,
                              "role " + role, "local"});
      std::cout << "user " << name << " (" << role << ") created\n";
      return 0;
    }
    if (op == "passwd" || op == "disable" || op == "enable") {
      std::optional<std::string> hash;
      std::optional<bool> disabled;
      if (op == "passwd") {
        hash = hash_password(password);
      } else {
        disabled = op == "disable";
      }
      Status s = store->update_user(name, std::nullopt, hash, disabled);
      if (!s.ok) {
        std::cerr << "relais users " << op << ": " << s.detail << "\n";
        return 1;
      }
      store->audit(AuditEntry{0, 0, cli_actor(), "cli", "user.update", "user:" + name,
                              op == "passwd" ? "password changed" : op + "d", "local"});
      std::cout << "user " << name << ": " << (op == "passwd" ? "password changed" : op + "d")
                << "\n";
      return 0;
    }
    std::cerr << kUsersUsage;
    return 64;
  } catch (const std::exception& e) {
    std::cerr << "relais users: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace relais

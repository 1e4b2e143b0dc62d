// `relais store migrate --from sqlite:PATH --to postgresql:URI`: moves an installation from the
// embedded SQLite store to PostgreSQL (store/store_migration.h does the work; this file reads the
// command line, keeps the relais servers out, draws the progress bar and prints the summary).
// docs/operations.md, "Moving an installation to PostgreSQL".

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <sstream>

#include "apps/commands.h"
#include "store/sqlite/sqlite_backend.h"
#include "store/store_migration.h"

namespace relais {
namespace {

const char* kMigrateUsage =
    "usage: relais store migrate --from sqlite:PATH --to postgresql:URI [--password-env VAR]\n"
    "                            [--batch N] [--verify-only]\n\n"
    "Copies every table of the SQLite store PATH into the PostgreSQL database URI (a libpq URI "
    "or connection string, without password: the password is read from the environment "
    "variable VAR), creating its schema as relais does. Ids stay the same; encrypted values are "
    "copied as they are (no key needed). Rows go in key order, N per transaction (default "
    "5000); killed or stopped, run it again: it continues where it stopped, copying nothing "
    "twice. At the end every table is compared on both sides (row counts and SHA-256 of the "
    "rows) and a summary printed; --verify-only only compares.\n"
    "Refused while a relais holds the SQLite store or runs on the database, and when the "
    "database already holds data that did not come from a migration of this store. Exit "
    "status: 0 done and equal, 1 error, 2 the verification found a difference (the table and "
    "the first differing key are printed).\n";

std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string duration(double seconds) {
  auto s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  return buf;
}

// The progress on stderr: one line redrawn in place on a terminal (at most 10 times a second),
// else plain lines (one every 5 s per table, and one when a table is finished).
class ProgressBar {
 public:
  explicit ProgressBar(bool tty) : tty_(tty) {}
  void operator()(const MigrationProgress& p) {
    auto now = std::chrono::steady_clock::now();
    if (!p.finished &&
        now - last_ < (tty_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(5000))) {
      return;
    }
    last_ = now;
    std::ostringstream line;
    line << (p.phase == "copy" ? "copy   " : "verify ");
    line.width(22);
    line << std::left << p.table << " ";
    const double part = p.total > 0 ? std::min(1.0, double(p.done) / double(p.total)) : 1.0;
    if (tty_) {
      const int filled = static_cast<int>(part * 24);
      line << "[" << std::string(static_cast<size_t>(filled), '#')
           << std::string(static_cast<size_t>(24 - filled), '.') << "] ";
    }
    line << with_commas(p.done) << " / " << with_commas(p.total) << " rows";
    const double rate = p.seconds > 0 ? double(p.done_now) / p.seconds : 0;
    if (p.done_now > 0) line << ", " << with_commas(static_cast<int64_t>(rate)) << " rows/s";
    if (p.finished) {
      line << ", done in " << duration(p.seconds);
    } else if (rate > 0) {
      line << ", ETA " << duration(double(std::max<int64_t>(0, p.total - p.done)) / rate);
    }
    if (tty_) {
      std::cerr << "\r" << line.str() << "\x1b[K" << (p.finished ? "\n" : "") << std::flush;
    } else {
      std::cerr << line.str() << std::endl;
    }
  }

 private:
  bool tty_;
  std::chrono::steady_clock::time_point last_{};
};

// The value of `--name` that must start with `scheme:` (the rest), or "" with a message.
std::string located(int argc, char** argv, const std::string& name,
                    std::initializer_list<const char*> schemes) {
  std::string v = cli_option(argc, argv, name);
  for (const char* s : schemes) {
    std::string prefix = std::string(s) + ":";
    if (v.rfind(prefix, 0) == 0 && v.size() > prefix.size()) return v.substr(prefix.size());
  }
  std::cerr << "relais store migrate: " << name << " " << *schemes.begin() << ":… is required\n";
  return {};
}

void print_summary(const std::vector<TableCheck>& checks) {
  std::printf("%-22s %12s %12s  %-16s %s\n", "table", "sqlite rows", "pg rows", "sha256", "result");
  for (const auto& c : checks) {
    std::string sum = c.ok() ? c.source_sha256.substr(0, 16) : c.target_sha256.substr(0, 16);
    std::printf("%-22s %12s %12s  %-16s %s\n", c.table.c_str(), with_commas(c.source_rows).c_str(),
                with_commas(c.target_rows).c_str(), sum.c_str(),
                c.ok() ? "equal" : ("DIFFERENT at " + c.first_difference).c_str());
  }
}

}  // namespace

int store_migrate_command(int argc, char** argv) {
  if (cli_flag(argc, argv, "--help") || cli_flag(argc, argv, "-h")) {
    std::cout << kMigrateUsage;
    return 0;
  }
  MigrationSettings s;
  s.sqlite_path = located(argc, argv, "--from", {"sqlite"});
  s.pg_uri = located(argc, argv, "--to", {"postgresql", "postgres"});
  if (s.sqlite_path.empty() || s.pg_uri.empty()) {
    std::cerr << kMigrateUsage;
    return 64;
  }
  if (std::string b = cli_option(argc, argv, "--batch"); !b.empty()) {
    try {
      s.batch = std::stoll(b);
    } catch (const std::exception&) {
      s.batch = 0;
    }
    if (s.batch < 1 || s.batch > 100000) {
      std::cerr << "relais store migrate: --batch is a number of rows, 1 to 100000\n";
      return 64;
    }
  }
  if (std::string var = cli_option(argc, argv, "--password-env"); !var.empty()) {
    const char* pw = std::getenv(var.c_str());
    if (pw == nullptr || *pw == '\0') {
      std::cerr << "relais store migrate: the environment variable " << var << " is not set\n";
      return 64;
    }
    s.pg_password = pw;
  }
  if (const char* k = std::getenv("RELAIS_MIGRATE_TEST_KILL_AFTER_BATCHES")) {
    s.kill_after_batches = std::atoll(k);
  }
  const bool verify_only = cli_flag(argc, argv, "--verify-only");
  try {
    s.sqlite_path = std::filesystem::absolute(s.sqlite_path).string();
    if (!std::filesystem::is_regular_file(s.sqlite_path)) {
      std::cerr << "relais store migrate: " << s.sqlite_path << " is not a store file\n";
      return 1;
    }
    // No relais writes the source meanwhile, and none starts on it (the shared lock).
    auto lock =
        offline_lock(s.sqlite_path, "relais store migrate", "stop it, then run the migration");
    if (!lock) return 1;
    // The source at this build's schema, as relais would bring it at its next start.
    StoreOptions so;
    so.path = s.sqlite_path;
    so.read_pool = 1;
    open_sqlite_store(so)->close();

    ProgressBar bar(::isatty(STDERR_FILENO) == 1);
    StoreMigration migration(s, std::ref(bar), verify_only);
    if (!verify_only) {
      auto start = std::chrono::steady_clock::now();
      int64_t rows = migration.copy();
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::cerr << "copied " << with_commas(rows) << " row(s) in " << duration(secs);
      if (secs > 0 && rows > 0) {
        std::cerr << " (" << with_commas(static_cast<int64_t>(double(rows) / secs)) << " rows/s)";
      }
      std::cerr << "; verifying" << std::endl;
    }
    auto checks = migration.verify();
    print_summary(checks);
    for (const auto& c : checks) {
      if (!c.ok()) {
        std::cerr << "relais store migrate: table " << c.table << " differs: " << c.first_difference
                  << "\n";
        return 2;
      }
    }
    std::cout << (verify_only ? "verified: " : "migrated and verified: ") << checks.size()
              << " tables equal" << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "relais store migrate: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace relais

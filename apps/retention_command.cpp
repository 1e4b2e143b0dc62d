// `relais retention run` (the purge now: through the running relais's API when one holds the
// store, else on the store itself with the store lock held) and `relais store compact` (VACUUM
// of a store no relais holds, converting it to incremental vacuum). docs/operations.md,
// docs/security.md "Retention".

#include <sqlite3.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "apps/api_client.h"
#include "apps/commands.h"
#include "core/console_store.h"
#include "core/metrics.h"
#include "core/retention.h"
#include "core/store_backend.h"

namespace relais {
namespace {

const char* kRetentionUsage =
    "usage: relais retention run [--dry-run] --config FILE [--server URL] [--token TOKEN]\n\n"
    "Runs the retention purge now, as relais runs it every retention.interval: the payloads of "
    "the messages whose every delivery is final and past its retention are replaced by a "
    "tombstone, the rows of the messages past retention.metadata are deleted, then the freed "
    "pages are given back. --dry-run changes nothing and prints what would go (counts and a "
    "sample of message ids).\n"
    "With a relais running on the store it goes through its API (POST /api/v1/retention/run; "
    "--server URL, default $RELAIS_URL, else the URL it published next to its store; --token, "
    "default $RELAIS_TOKEN, an admin token). Without one, it runs on the store file itself "
    "(a relais starting meanwhile waits for it). Audited as retention.run.\n";

const char* kCompactUsage =
    "usage: relais store compact --config FILE\n\n"
    "Rewrites the store file without its free pages (VACUUM) and turns on incremental vacuum, "
    "so that the retention purge gives the space it frees back to the file system from then "
    "on. Offline only: refused while a relais holds the store. Needs free disk space as large "
    "as the store, and takes time in proportion to its size.\n";

// Prints a run's result (retention_json, from the API or from the run here).
void print_result(const nlohmann::json& j) {
  const bool dry = j.value("dry_run", false);
  auto counts = [](const nlohmann::json& c) {
    return std::to_string(c.value("messages", 0)) + " message(s), " +
           std::to_string(c.value("deliveries", 0)) + " delivery(ies), " +
           std::to_string(c.value("attempts", 0)) + " attempt(s)";
  };
  std::cout << (dry ? "would purge the payloads of " : "payloads purged: ")
            << counts(j.value("purged", nlohmann::json::object())) << "\n"
            << (dry ? "would delete the rows of " : "rows deleted: ")
            << counts(j.value("deleted", nlohmann::json::object())) << "\n";
  if (dry) {
    for (const char* stage : {"purged", "deleted"}) {
      auto sample = j[stage].value("sample", nlohmann::json::array());
      if (sample.empty()) continue;
      std::cout << "  " << (std::strcmp(stage, "purged") == 0 ? "to purge" : "to delete")
                << ", first ids:";
      for (const auto& id : sample) std::cout << " " << id.get<std::string>();
      std::cout << "\n";
    }
    return;
  }
  std::cout << "freed: " << j.value("freed_bytes", 0)
            << " byte(s); free pages left: " << j.value("free_pages", 0) << "\n";
  if (!j.value("incremental_vacuum", false)) {
    std::cout << "this store was created without incremental vacuum: its free pages are reused "
                 "but the file does not shrink; stop relais and run `relais store compact`\n";
  }
}

// 0 after printing the usage for --help, 64 after printing it for anything but `sub`, else -1
// (go on).
int usage_exit(int argc, char** argv, const char* usage, const char* sub) {
  if (cli_flag(argc, argv, "--help") || cli_flag(argc, argv, "-h")) {
    std::cout << usage;
    return 0;
  }
  if (argc < 2 || std::strcmp(argv[1], sub) != 0) {
    std::cerr << usage;
    return 64;
  }
  return -1;
}

int64_t file_bytes(const std::string& path) {
  std::error_code ec;
  int64_t n = 0;
  for (const auto& p : {path, path + "-wal"}) {
    auto size = std::filesystem::file_size(p, ec);
    if (!ec) n += static_cast<int64_t>(size);
  }
  return n;
}

}  // namespace

int retention_command(int argc, char** argv) {
  if (int rc = usage_exit(argc, argv, kRetentionUsage, "run"); rc >= 0) return rc;
  const bool dry = cli_flag(argc, argv, "--dry-run");
  try {
    HubConfig cfg;
    load_configuration(argc, argv, cfg);
    WriteTarget target = resolve_write_target(cfg, argc, argv, "relais retention run");
    if (target.via_api) {
      ApiClient api(target.url, target.token, 3600 * 1000);
      ApiAnswer a = api.send_json("POST", "/api/v1/retention/run", {{"dry_run", dry}});
      if (a.status != 200) {
        std::cerr << "relais retention run: " << a.describe() << "\n";
        return 1;
      }
      print_result(a.json());
      return 0;
    }
    // No relais on this store: the purge runs here, the store lock held (target.lock).
    StoreOptions so;
    so.synchronous_full = cfg.store_sync_full;
    so.busy_timeout_ms = cfg.store_busy_timeout_ms;
    so.read_pool = 1;
    auto backend = open_store_backend(cfg.store);
    auto store = backend->open_messages(so);
    auto console = backend->open_console(SystemClock::instance(), StoreAccess::ReadWrite, nullptr);
    Metrics metrics;
    RetentionResult r;
    Status s;
    {
      RetentionJob job(*store, console.get(), metrics, SystemClock::instance(), cfg.retention);
      s = job.run(dry, cli_actor(), r);
    }
    if (dry) {
      console->audit(AuditEntry{0, 0, cli_actor(), "cli", "retention.dry_run", "store",
                                retention_summary(r), "local"});
    }
    store->close();
    if (!s.ok) {
      std::cerr << "relais retention run: " << s.error << " " << s.detail << "\n";
      return 1;
    }
    print_result(retention_json(r, dry));
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "relais retention run: " << e.what() << "\n";
    return 1;
  }
}

int store_compact_command(int argc, char** argv) {
  if (int rc = usage_exit(argc, argv, kCompactUsage, "compact"); rc >= 0) return rc;
  try {
    HubConfig cfg;
    load_configuration(argc, argv, cfg);
    auto lock = offline_lock(cfg.store_path, "relais store compact",
                             "compact works offline only; stop relais, then run it again");
    if (!lock) return 1;
    if (!std::filesystem::exists(cfg.store_path)) {
      std::cerr << "relais store compact: no store at " << cfg.store_path << "\n";
      return 1;
    }
    const int64_t before = file_bytes(cfg.store_path);
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(cfg.store_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      std::string err = db ? sqlite3_errmsg(db) : "cannot open";
      sqlite3_close(db);
      std::cerr << "relais store compact: " << err << "\n";
      return 1;
    }
    sqlite3_busy_timeout(db, std::max(0, cfg.store_busy_timeout_ms));
    // auto_vacuum changes on an existing file only with a VACUUM, which rewrites it whole.
    char* err = nullptr;
    int rc = sqlite3_exec(db,
                          "PRAGMA auto_vacuum=INCREMENTAL; VACUUM; "
                          "PRAGMA wal_checkpoint(TRUNCATE);",
                          nullptr, nullptr, &err);
    std::string error = rc == SQLITE_OK ? "" : (err ? err : sqlite3_errstr(rc));
    sqlite3_free(err);
    sqlite3_close(db);
    if (!error.empty()) {
      std::cerr << "relais store compact: " << error << " (the store is unchanged)\n";
      return 1;
    }
    const int64_t after = file_bytes(cfg.store_path);
    std::cout << cfg.store_path << ": " << before << " → " << after
              << " byte(s); incremental vacuum on\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "relais store compact: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace relais

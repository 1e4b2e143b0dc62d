#pragma once
// The relais sub-commands other than serve, and the factory that builds a Hub with everything
// it needs (used by serve and by the commands).

#include <memory>
#include <string>

#include "connectors/registry.h"
#include "core/connector.h"
#include "core/store_access.h"
#include "core/store_lock.h"
#include "routing/hub.h"
#include "routing/mapping_repository.h"

namespace relais {

// Runs `relais CMD ...` (argv[0] is the command). Returns -1 for an unknown command.
int run_command(const std::string& cmd, int argc, char** argv);
std::string extra_commands_usage();
// `relais ban …` (apps/ban_command.cpp).
int ban_command(int argc, char** argv);
// `relais calendar …` (apps/calendar_command.cpp).
int calendar_command(int argc, char** argv);
// `relais users …` (apps/users_command.cpp).
int users_command(int argc, char** argv);
// `relais privacy erase …` (apps/privacy_command.cpp).
int privacy_command(int argc, char** argv);
// `relais retention run …` and `relais store compact …` (apps/retention_command.cpp).
int retention_command(int argc, char** argv);
int store_compact_command(int argc, char** argv);
// `relais store rekey …` (apps/store_command.cpp; `store compact` is handed to the above).
int store_command(int argc, char** argv);
// `relais store migrate …` (apps/migrate_command.cpp): SQLite → PostgreSQL.
int store_migrate_command(int argc, char** argv);
// `relais backfill …` (apps/backfill_command.cpp).
int backfill_command(int argc, char** argv);
// Loads the configuration named by --config (or $RELAIS_CONFIG). Throws with every error.
void load_configuration(int argc, char** argv, HubConfig& cfg);
// Loads the configuration and opens its store: ReadOnly checks the schema and never migrates
// (throws when it differs from this build's, or when the store does not exist); ReadWrite
// creates or migrates it (only when no server holds it: see resolve_write_target).
void open_configured_store(int argc, char** argv, HubConfig& cfg,
                           StoreAccess access = StoreAccess::ReadWrite);

// Where a command that writes goes (decided once, at its start):
//   --server URL (or $RELAIS_URL) → the API of that relais, with --token (or $RELAIS_TOKEN);
//   else a relais serving this store (its lock, core/store_lock.h) and a token → its API, at
//        the URL it published in the lock file;
//   else a relais serving this store and no token → refused (std::runtime_error: "relais is
//        running on this store (pid N); use --server URL --token TOKEN or stop it");
//   else → the store file itself, with the shared lock held for the command's run (a server
//        starting meanwhile waits for it).
struct WriteTarget {
  bool via_api = false;
  std::string url;
  std::string token;
  std::unique_ptr<StoreLock> lock;  // direct writes only
};
WriteTarget resolve_write_target(const HubConfig& cfg, int argc, char** argv,
                                 const std::string& command);
// For a command that works offline only: the shared store lock, or nullptr after printing
// "COMMAND: relais is running on PATH (pid N): WHAT" on stderr.
std::unique_ptr<StoreLock> offline_lock(const std::string& store_path, const std::string& command,
                                        const std::string& what);
// The value after `name` in argv ("" when absent), and the arguments that are not options
// (every option of the sub-commands takes a value).
std::string cli_option(int argc, char** argv, const std::string& name);
std::vector<std::string> cli_positionals(int argc, char** argv);
// Who runs a command, for the audit trail: "cli:" + $USER.
std::string cli_actor();
// Whether the flag (an option without a value, e.g. --force) is among the arguments.
bool cli_flag(int argc, char** argv, const std::string& name);
// Checks that every mapping a route names can be loaded and compiles. Appends errors.
bool check_mappings(const HubConfig& config, std::vector<ConfigError>& errors);
// What `serve` runs: the versioned mappings and the hub that uses them.
struct Runtime {
  // What the nodes share (`redis:`, else in process); first: it outlives what subscribes to it.
  std::unique_ptr<SharedState> shared;
  std::shared_ptr<MappingRepository> mappings;
  std::unique_ptr<Hub> hub;
};
// Builds the runtime for a validated configuration: migrates the store, seeds the mappings and
// tables from the configured folders when the store has none, compiles the active versions and
// builds the hub. Throws with a readable message.
// `clock` is the system clock in `relais serve`; tests pass a ManualClock (in-process only).
Runtime make_runtime(const HubConfig& config, const Registries& registries,
                     const Clock& clock = SystemClock::instance());

}  // namespace relais

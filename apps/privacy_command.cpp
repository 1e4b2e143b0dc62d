// `relais privacy erase`: the erasure of one person's payloads (docs/security.md, "Erasure"),
// always through the API of the running relais, which owns the store's writer: the erasure is
// one more job of its group commits, discards the key's active deliveries from its dispatcher
// when forced, and is audited under the token's name. On either engine: the running relais is
// found by the lock of its store (core/store_lock.h: beside the SQLite file, or in the node's
// store.state_dir on PostgreSQL), or named with --server.

#include <cstring>
#include <iostream>

#include "apps/api_client.h"
#include "apps/commands.h"
#include "core/store_backend.h"

namespace relais {
namespace {

const char* kPrivacyUsage =
    "usage: relais privacy erase --correlation KEY --reason TEXT [--force] --config FILE "
    "[--server URL] [--token TOKEN]\n\n"
    "Replaces the payloads of every message whose correlation key is KEY (bodies, mapped "
    "payloads, partners' answers, error texts) by a tombstone saying when, by whom and why; "
    "audited as privacy.erase. Refused while deliveries of the key are pending, retrying or "
    "in flight, unless --force (they are then discarded first).\n"
    "It goes through the API of the running relais (--server URL, default $RELAIS_URL, else the "
    "URL the running relais published next to its store; --token, default $RELAIS_TOKEN, an "
    "admin token). When no relais runs on the store it refuses: start relais, or call "
    "POST /api/v1/privacy/erase.\n";

}  // namespace

int privacy_command(int argc, char** argv) {
  if (cli_flag(argc, argv, "--help") || cli_flag(argc, argv, "-h")) {
    std::cout << kPrivacyUsage;
    return 0;
  }
  std::string correlation = cli_option(argc, argv, "--correlation");
  std::string reason = cli_option(argc, argv, "--reason");
  if (argc < 2 || std::strcmp(argv[1], "erase") != 0 || correlation.empty() || reason.empty()) {
    std::cerr << kPrivacyUsage;
    return 64;
  }
  try {
    HubConfig cfg;
    load_configuration(argc, argv, cfg);
    WriteTarget target = resolve_write_target(cfg, argc, argv, "relais privacy erase");
    if (!target.via_api) {
      // On a shared store (PostgreSQL) the relais that dispatches may run on another node: only
      // its dispatcher can discard the deliveries it holds, so the erasure goes through it.
      std::cerr << "relais privacy erase: no relais is running on this node for the store "
                << open_store_backend(cfg.store)->describe()
                << ": the erasure runs in relais (its store writer, its dispatcher, its audit "
                   "trail). Start relais, then run this again with an admin token; or give "
                   "--server URL --token TOKEN of the relais that runs it (on a shared store, "
                   "another node's); or call POST /api/v1/privacy/erase\n";
      return 1;
    }
    ApiClient api(target.url, target.token);
    ApiAnswer a = api.send_json("POST", "/api/v1/privacy/erase",
                                {{"correlation", correlation},
                                 {"reason", reason},
                                 {"force", cli_flag(argc, argv, "--force")}});
    if (a.status != 200) {
      std::cerr << "relais privacy erase: " << a.describe() << "\n";
      return a.status == 409 ? 2 : 1;
    }
    auto j = a.json();
    std::cout << correlation << ": " << j.value("messages", 0) << " message(s), "
              << j.value("deliveries", 0) << " delivery(ies), " << j.value("attempts", 0)
              << " attempt(s) erased";
    if (j.value("discarded", 0) > 0) std::cout << "; " << j.value("discarded", 0) << " discarded";
    std::cout << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "relais privacy erase: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace relais

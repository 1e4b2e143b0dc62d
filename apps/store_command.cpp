// `relais store rekey`: re-encrypts the stored payloads under the active key of
// store.encryption (docs/operations.md, "Rotating the encryption key"). Tools never fight the
// server: while relais runs on the store, the rekey runs in relais (POST /api/v1/store/rekey,
// admin token, audited) and this command follows its progress; otherwise it opens the store
// itself (the shared lock held: a server starting meanwhile waits).

#include <chrono>
#include <iostream>
#include <thread>

#include "apps/api_client.h"
#include "apps/commands.h"
#include "core/store_backend.h"

namespace relais {
namespace {

const char* kStoreUsage =
    "usage: relais store rekey --config FILE [--batch N] [--server URL] [--token TOKEN]\n"
    "       relais store compact --config FILE   (relais store compact --help)\n"
    "       relais store migrate --from sqlite:PATH --to postgresql:URI   (… --help)\n\n"
    "Re-encrypts every message body, mapped payload and partner's answer that is not on the "
    "active key of store.encryption (older keys, or plain text written before encryption was "
    "turned on), in batches of N rows (default 500), and prints the progress. Resumable: run it "
    "again after an interruption. Remove an old key from the configuration only once it reports "
    "0 remaining.\n"
    "While relais runs on the store it goes through its API (--server URL, default $RELAIS_URL, "
    "else the URL the running relais published next to its store; --token, default "
    "$RELAIS_TOKEN, an admin token); otherwise it opens the store itself.\n";

void print(const RekeyProgress& p) {
  std::cout << "rekey to key " << p.active << ": " << p.done << " / " << p.to_do
            << " value(s) re-encrypted";
  if (p.unreadable > 0) std::cout << ", " << p.unreadable << " unreadable";
  if (p.remaining >= 0) std::cout << "; " << p.remaining << " remaining not on key " << p.active;
  std::cout << std::endl;
}

RekeyProgress progress_from(const nlohmann::json& j) {
  RekeyProgress p;
  if (!j.is_object()) return p;
  p.active = j.value("active", "");
  p.to_do = j.value("to_do", int64_t{0});
  p.done = j.value("done", int64_t{0});
  p.unreadable = j.value("unreadable", int64_t{0});
  p.remaining = j.value("remaining", int64_t{-1});
  p.running = j.value("running", false);
  p.finished = j.value("finished", false);
  p.error = j.value("error", "");
  return p;
}

int outcome(const RekeyProgress& p) {
  if (!p.error.empty()) std::cerr << "relais store rekey: " << p.error << "\n";
  if (!p.finished) return 1;
  if (p.remaining != 0) {
    std::cerr << "relais store rekey: " << p.remaining
              << " value(s) are still not on the active key (unreadable: a key missing from "
                 "store.encryption.keys, or changed values); keep the old keys configured\n";
    return 1;
  }
  return 0;
}

int rekey_via_api(const WriteTarget& target, int64_t batch) {
  ApiClient api(target.url, target.token);
  ApiAnswer a = api.send_json("POST", "/api/v1/store/rekey", {{"batch", batch}});
  if (a.status != 202) {
    std::cerr << "relais store rekey: " << a.describe() << "\n";
    return 1;
  }
  RekeyProgress p = progress_from(a.json());
  int64_t shown = -1;
  while (p.running) {
    if (p.done != shown) {
      print(p);
      shown = p.done;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));  // a person watches: once a second
    a = api.get("/api/v1/store/rekey");
    if (a.status != 200) {
      std::cerr << "relais store rekey: " << a.describe() << "\n";
      return 1;
    }
    p = progress_from(a.json());
  }
  print(p);
  return outcome(p);
}

int rekey_direct(const HubConfig& cfg, int64_t batch) {
  StoreOptions so;
  so.read_pool = 1;
  so.cipher = load_at_rest_cipher(cfg.store_encryption);
  if (!so.cipher) {
    std::cerr << "relais store rekey: store.encryption is not configured (an active key and "
                 "its keys): nothing to encrypt to\n";
    return 1;
  }
  auto store = open_store_backend(cfg.store)->open_messages(so);
  RekeyRequest r;
  r.batch = batch;
  RekeyProgress p;
  Status st = store->rekey(r, p, [](const RekeyProgress& now) {
    print(now);
    return true;
  });
  store->close();
  if (!st.ok && p.error.empty()) p.error = st.detail.empty() ? st.error : st.detail;
  return outcome(p);
}

}  // namespace

int store_command(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "compact") return store_compact_command(argc, argv);
  if (argc >= 2 && std::string(argv[1]) == "migrate") return store_migrate_command(argc, argv);
  if (cli_flag(argc, argv, "--help") || cli_flag(argc, argv, "-h")) {
    std::cout << kStoreUsage;
    return 0;
  }
  auto pos = cli_positionals(argc, argv);
  if (pos.size() != 1 || pos[0] != "rekey") {
    std::cerr << kStoreUsage;
    return 64;
  }
  int64_t batch = 500;
  std::string b = cli_option(argc, argv, "--batch");
  if (!b.empty()) {
    try {
      batch = std::stoll(b);
    } catch (const std::exception&) {
      batch = 0;
    }
    if (batch < 1 || batch > 100000) {
      std::cerr << "relais store rekey: --batch is a number of rows, 1 to 100000\n";
      return 64;
    }
  }
  try {
    HubConfig cfg;
    load_configuration(argc, argv, cfg);
    WriteTarget target = resolve_write_target(cfg, argc, argv, "relais store rekey");
    return target.via_api ? rekey_via_api(target, batch) : rekey_direct(cfg, batch);
  } catch (const std::exception& e) {
    std::cerr << "relais store rekey: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace relais

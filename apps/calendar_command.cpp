// `relais calendar reconcile`: compares what Relais believes about a calendar destination
// (cross-references, last delivered state) with the calendars themselves, reports duplicates,
// missing, stale and leftover events, and with --repair queues a repair for each through the
// running relais (POST /api/v1/destinations/{D}/messages, so it goes through the normal queue).

#include <curl/curl.h>

#include <iostream>

#include "apps/commands.h"
#include "connectors/calendar/calendar.h"
#include "core/clock.h"
#include "core/store.h"
#include "core/store_backend.h"
#include "core/xref_store.h"

namespace relais {
namespace {

const char* kUsage =
    "usage: relais calendar reconcile --config FILE --destination D --from DATE --to DATE\n"
    "                                 [--repair [--url URL] [--token TOKEN]]\n\n"
    "Compares the cross-references and the last delivered state of the calendar destination D "
    "with the events carrying the Relais key in each professional's calendar, for events "
    "starting in [--from, --to) (dates YYYY-MM-DD or RFC 3339 times), and prints one line per "
    "difference: duplicate, missing, stale or leftover (an event for a cancelled "
    "appointment). With --repair, queues one repair per difference through the running relais "
    "(--url, default $RELAIS_URL or http://127.0.0.1:8080; --token, default $RELAIS_TOKEN, an "
    "admin token). The store is opened read-only: safe while relais runs, never migrated (a "
    "store whose schema differs from this relais's is refused). Exit 0 when the calendars agree, 1 "
    "when differences were found (and queued "
    "with --repair), 2 when a calendar could not be read or a repair could not be queued, 64 on "
    "bad usage.\n";

std::string opt(int argc, char** argv, const std::string& name) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return argv[i + 1];
  }
  return {};
}

bool utc_bound(const std::string& text, std::string& out) {
  Millis t = 0;
  if (!parse_rfc3339(text, t)) return false;
  out = format_rfc3339(t).substr(0, 19) + "Z";
  return true;
}

size_t collect(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

// Posts one repair; "" on success, else why not.
std::string post_repair(const std::string& url, const std::string& token,
                        const std::string& destination, const calendar::Finding& f) {
  CURL* h = curl_easy_init();
  if (h == nullptr) return "curl_easy_init failed";
  std::string body = nlohmann::json{
      {"type", "calendar.repair"},
      {"correlation", f.key},
      {"body", f.repair}}.dump();
  std::string target = url + "/api/v1/destinations/" + destination + "/messages";
  std::string answer;
  struct curl_slist* hdrs = nullptr;
  hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
  hdrs = curl_slist_append(hdrs, ("Authorization: Bearer " + token).c_str());
  curl_easy_setopt(h, CURLOPT_URL, target.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &answer);
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(h);
  if (rc != CURLE_OK)
    return std::string("cannot reach relais at ") + url + ": " + curl_easy_strerror(rc);
  if (status != 202) return "relais answered HTTP " + std::to_string(status) + ": " + answer;
  return "";
}

}  // namespace

int calendar_command(int argc, char** argv) {
  if (cli_flag(argc, argv, "--help") || cli_flag(argc, argv, "-h")) {
    std::cout << kUsage;
    return 0;
  }
  std::string config = opt(argc, argv, "--config");
  if (config.empty() && std::getenv("RELAIS_CONFIG")) config = std::getenv("RELAIS_CONFIG");
  std::string dest = opt(argc, argv, "--destination");
  std::string from, to;
  if (argc < 2 || std::string(argv[1]) != "reconcile" || config.empty() || dest.empty() ||
      !utc_bound(opt(argc, argv, "--from"), from) || !utc_bound(opt(argc, argv, "--to"), to)) {
    std::cerr << kUsage;
    return 64;
  }
  try {
    Registries registries;
    HubConfig cfg;
    std::vector<ConfigError> errors;
    if (!load_hub_config(config, registries.connectors, cfg, errors, &registries.enrichers,
                         &registries.pollers)) {
      for (const auto& e : errors) std::cerr << e.to_string() << "\n";
      return 64;
    }
    auto it = cfg.destinations.find(dest);
    if (it == cfg.destinations.end() || it->second.connector != "calendar") {
      std::cerr << "relais calendar: '" << dest << "' is not a calendar destination of " << config
                << "\n";
      return 64;
    }
    const Clock& clock = SystemClock::instance();
    // Read-only (safe while relais runs: no migration, no checkpoint); repairs go through the
    // API of the running relais.
    StoreOptions so;
    so.read_only = true;
    so.read_pool = 1;
    so.cipher = load_at_rest_cipher(cfg.store_encryption);  // the payloads it compares
    auto backend = open_store_backend(cfg.store);
    auto store = backend->open_messages(so);
    auto xrefs = backend->open_xrefs(clock, StoreAccess::ReadOnly);
    auto driver = calendar::make_driver(it->second.settings, dest, 1, clock);
    calendar::ReconcileReport rep = calendar::reconcile(*driver, *xrefs, *store, dest, from, to);
    store->close();
    for (const auto& e : rep.errors) std::cout << "error\t" << e << "\n";
    for (const auto& f : rep.findings) {
      std::cout << f.kind << "\t" << f.mailbox << "\t" << f.key << "\t" << f.detail << "\n";
    }
    std::cout << rep.findings.size() << " difference(s); " << rep.keys_known << " key(s) known, "
              << rep.remote_events << " event(s) in the calendars from " << from << " to " << to
              << "\n";
    int code = !rep.errors.empty() ? 2 : rep.findings.empty() ? 0 : 1;
    if (cli_flag(argc, argv, "--repair") && !rep.findings.empty()) {
      std::string url = opt(argc, argv, "--url");
      if (url.empty()) url = std::getenv("RELAIS_URL") ? std::getenv("RELAIS_URL") : "";
      if (url.empty()) url = "http://127.0.0.1:8080";
      std::string token = opt(argc, argv, "--token");
      if (token.empty() && std::getenv("RELAIS_TOKEN")) token = std::getenv("RELAIS_TOKEN");
      int queued = 0;
      for (const auto& f : rep.findings) {
        std::string err = post_repair(url, token, dest, f);
        if (!err.empty()) {
          std::cout << "not queued\t" << f.key << "\t" << err << "\n";
          code = 2;
        } else {
          ++queued;
        }
      }
      std::cout << queued << " repair(s) queued\n";
    }
    return code;
  } catch (const std::exception& e) {
    std::cerr << "relais calendar: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace relais

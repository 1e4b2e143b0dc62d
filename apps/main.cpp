// relais: the integration hub's single binary.
//   relais serve --config FILE     run the hub
//   relais check-config FILE       validate a configuration, print every error
//   relais version                 print the version
// Every command takes --help.

#include <Poco/Util/HelpFormatter.h>
#include <Poco/Util/Option.h>
#include <Poco/Util/OptionSet.h>
#include <Poco/Util/ServerApplication.h>
#include <curl/curl.h>
#include <signal.h>

#include <cstring>
#include <filesystem>
#include <iostream>

#include "api/http_api.h"
#include "apps/commands.h"
#include "connectors/registry.h"
#include "core/log.h"
#include "core/store.h"
#include "core/store_backend.h"
#include "core/store_lock.h"
#include "routing/hub.h"
#include "store/postgresql/pg_backend.h"
#include "store/sqlite/sqlite_backend.h"

#ifndef RELAIS_VERSION
#define RELAIS_VERSION "0.0.0"
#endif

namespace relais {
namespace {

// The address a local command reaches the server at ("0.0.0.0" and "::" listen everywhere).
std::string local_host(const std::string& address) {
  if (address.empty() || address == "0.0.0.0") return "127.0.0.1";
  if (address == "::") return "[::1]";
  if (address.find(':') != std::string::npos) return "[" + address + "]";
  return address;
}

// Waits for the signals `relais serve` acts on (blocked in every thread by main(), taken here
// with sigwait): SIGHUP reloads the API server's TLS certificates (server.tls) and waits on; a
// failed reload keeps the certificates in use and says why. Returns on SIGTERM, SIGINT or
// SIGQUIT. Runs on the main thread only.
void wait_for_signals(ApiServer& api, bool tls) {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGINT, SIGTERM, SIGQUIT, SIGHUP}) sigaddset(&set, sig);
  while (true) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig != SIGHUP) return;
    if (!tls) {
      log_info("relais", "SIGHUP: nothing to reload (server.tls is not set)");
      continue;
    }
    std::string error;
    if (api.reload_tls(error)) {
      log_info("relais", "SIGHUP: TLS certificates reloaded; new connections use them");
    } else {
      log_error("relais", "SIGHUP: TLS certificates NOT reloaded, the current ones stay: " + error);
    }
  }
}

// `relais serve`: a Poco ServerApplication. Owns the hub and the API server for its run.
class ServeApp final : public Poco::Util::ServerApplication {
 protected:
  void defineOptions(Poco::Util::OptionSet& options) override {
    ServerApplication::defineOptions(options);
    options.addOption(Poco::Util::Option("help", "h", "print this help")
                          .required(false)
                          .repeatable(false)
                          .callback(Poco::Util::OptionCallback<ServeApp>(this, &ServeApp::help)));
    options.addOption(Poco::Util::Option("config", "c", "the configuration file (YAML)")
                          .required(false)
                          .repeatable(false)
                          .argument("FILE")
                          .callback(Poco::Util::OptionCallback<ServeApp>(this, &ServeApp::config)));
  }

  void help(const std::string&, const std::string&) {
    Poco::Util::HelpFormatter f(options());
    f.setCommand("relais serve");
    f.setUsage("--config FILE");
    f.setHeader(
        "Runs the Relais hub: accepts messages, stores them, routes, maps and delivers "
        "them. Stops cleanly on SIGTERM or SIGINT (Ctrl-C); SIGHUP reloads the TLS "
        "certificates (server.tls).");
    f.format(std::cout);
    stopOptionsProcessing();
    help_ = true;
  }

  void config(const std::string&, const std::string& value) { config_path_ = value; }

  int main(const std::vector<std::string>& args) override {
    if (help_) return Application::EXIT_OK;
    if (config_path_.empty() && !args.empty()) config_path_ = args.front();
    if (config_path_.empty()) {
      std::cerr << "relais serve: --config FILE is required (see relais serve --help)\n";
      return Application::EXIT_USAGE;
    }
    Registries registries;
    HubConfig cfg;
    std::vector<ConfigError> errors;
    if (!load_hub_config(config_path_, registries.connectors, cfg, errors, &registries.enrichers,
                         &registries.pollers)) {
      for (const auto& e : errors) std::cerr << e.to_string() << "\n";
      std::cerr << "relais serve: " << errors.size()
                << " configuration error(s); nothing started\n";
      return Application::EXIT_CONFIG;
    }
    LogLevel level;
    if (parse_log_level(cfg.log_level, level)) set_log_level(level);
    for (const auto& n : cfg.notices) std::cout << "relais: " << n << std::endl;
    // The store lock (core/store_lock.h) is taken before the store is opened and released
    // after it is closed (declared first, destroyed last): the sub-commands see "a server holds
    // this store" exactly while this process may write it.
    std::unique_ptr<StoreLock> lock;
    Runtime rt;
    std::unique_ptr<ApiServer> api;
    try {
      // The node's own folder holds the lock on a shared store (PostgreSQL): made if missing,
      // as the backend would make it.
      if (!cfg.store.state_dir.empty()) std::filesystem::create_directories(cfg.store.state_dir);
      lock = StoreLock::exclusive(cfg.store_path, std::chrono::seconds(10));
      rt = make_runtime(cfg, registries);
      rt.hub->start();
      api = std::make_unique<ApiServer>(*rt.hub, cfg, rt.mappings.get(), rt.shared.get());
      int port = api->start();
      const std::string scheme = cfg.tls.enabled() ? "https://" : "http://";
      lock->publish_url(scheme + local_host(cfg.address) + ":" + std::to_string(port));
      // The store as its backend describes it: the SQLite file, or PostgreSQL's
      // host:port/database (never a password).
      std::cout << "relais " << RELAIS_VERSION << " listening on " << scheme << cfg.address << ":"
                << port << " (store " << open_store_backend(cfg.store)->describe() << ")"
                << std::endl;
    } catch (const std::exception& e) {
      std::cerr << "relais serve: cannot start: " << e.what() << std::endl;
      if (api) api->stop();
      if (rt.hub) rt.hub->stop();
      return Application::EXIT_SOFTWARE;
    }
    wait_for_signals(*api, cfg.tls.enabled());
    std::cout << "relais: stopping (no new connections; finishing deliveries in flight)"
              << std::endl;
    api->stop();
    rt.hub->stop();
    std::cout << "relais: stopped cleanly" << std::endl;
    return Application::EXIT_OK;
  }

 private:
  bool help_ = false;
  std::string config_path_;
};

void usage(std::ostream& out) {
  out << "usage: relais <command> [options]\n\n"
         "commands:\n"
         "  serve --config FILE       run the hub until SIGTERM/SIGINT\n"
         "  check-config FILE         validate a configuration and print every error\n"
         "  version                   print the version\n"
      << extra_commands_usage() << "\nEvery command takes --help.\n";
}

}  // namespace
}  // namespace relais

int main(int argc, char** argv) {
  using namespace relais;
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    usage(argc < 2 ? std::cerr : std::cout);
    return argc < 2 ? 64 : 0;
  }
  std::string cmd = argv[1];
  if (cmd == "version" || cmd == "--version") {
    std::cout << "relais " << RELAIS_VERSION << " (store schema: SQLite " << sqlite_schema_version()
              << ", PostgreSQL " << postgresql_schema_version() << ")\n";
    return 0;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc;
  if (cmd == "serve") {
    // Block the termination signals and SIGHUP in every thread; the main thread waits for them
    // with sigwait (wait_for_signals), so no worker thread is ever killed by one.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    signal(SIGPIPE, SIG_IGN);
    ServeApp app;
    rc = app.run(argc - 1, argv + 1);
  } else {
    rc = run_command(cmd, argc - 1, argv + 1);
    if (rc == -1) {
      std::cerr << "relais: unknown command '" << cmd << "'\n";
      usage(std::cerr);
      rc = 64;
    }
  }
  curl_global_cleanup();
  return rc;
}

#pragma once
// The HTTP API served by relais: inbound messages, operations (messages, deliveries, retry,
// discard), health, readiness and metrics, the console (its assets, sessions, users, tokens,
// audit, support desk) and the OpenAPI description. Served by the event-driven api::HttpServer
// (http_server.h); the handlers use Poco's HTTPServerRequest/HTTPServerResponse interfaces.

#include <memory>
#include <string>

#include "core/console_store.h"
#include "core/periodic.h"
#include "core/retention.h"
#include "core/shared_state.h"
#include "routing/hub.h"
#include "routing/mapping_repository.h"

namespace relais {
class AlertMonitor;
namespace api {
struct ApiShared;
class HttpServer;
class BookingSetup;
}  // namespace api

// Owns the HTTP server (its listening socket, acceptor and handler threads), the console's store
// and the alert monitor (started and stopped with the server). Thread-safe: requests are served
// concurrently on the server's handler threads; the Hub must outlive it.
class ApiServer {
 public:
  // `mappings` (optional, not owned) enables the /api/v1/mappings endpoints. `state` (optional,
  // not owned, outlives the server): the sessions, login throttle and rate limits shared with
  // other nodes (store/redis/); null: in process (core/shared_state.h).
  ApiServer(Hub& hub, const HubConfig& config, MappingRepository* mappings = nullptr,
            SharedState* state = nullptr);
  ~ApiServer();
  // Binds and starts serving; returns the bound port (useful with port 0).
  int start();
  // Stops the reports, the alert monitor and the purge job, then the server: stops accepting
  // connections and waits for the requests in progress to be answered.
  void stop();
  int port() const { return port_; }
  // Reads the TLS certificate, key and client CA files again (server.tls) for the connections
  // to come; open connections keep theirs. On failure the current ones stay and `error` says
  // why. Called on SIGHUP (apps/main.cpp). Thread-safe.
  bool reload_tls(std::string& error);

 private:
  Hub& hub_;
  const HubConfig& config_;
  MappingRepository* mappings_;
  std::unique_ptr<ConsoleStore> console_;       // users, tokens, audit, desk queries
  std::unique_ptr<AlertMonitor> alerts_;        // rules evaluated on its own thread
  std::unique_ptr<RetentionJob> retention_;     // the purge, every retention.interval
  std::unique_ptr<api::BookingSetup> booking_;  // before shared_, which points into it
  SharedState* state_;                          // the caller's, or own_state_
  std::unique_ptr<SharedState> own_state_;      // in process, when the caller gave none
  int tokens_subscription_ = 0;                 // state_->changes: tokens re-read
  std::unique_ptr<api::ApiShared> shared_;
  std::unique_ptr<api::HttpServer> server_;
  // On a cluster: this node's reports for the dashboard every second (api/node_reports.h).
  PeriodicThread reporter_;
  int port_ = 0;
};

}  // namespace relais

#pragma once
// The HTTP API served by relais: inbound messages, operations (messages, deliveries, retry,
// discard), health, readiness and metrics, the console (its assets, sessions, users, tokens,
// audit, support desk) and the OpenAPI description. Built on Poco::Net::HTTPServer.

#include <memory>
#include <string>

#include <Poco/Net/HTTPServer.h>
#include <Poco/ThreadPool.h>

#include "core/console_store.h"
#include "routing/hub.h"
#include "routing/mapping_repository.h"

namespace relais {
class AlertMonitor;
namespace api {
struct ApiShared;
}

// Owns the listening socket, the thread pool and the server, the console's store and the alert
// monitor (started and stopped with the server). Thread-safe: requests are served
// concurrently on the pool's threads; the Hub must outlive it.
class ApiServer {
 public:
  // `mappings` (optional, not owned) enables the /api/v1/mappings endpoints.
  ApiServer(Hub& hub, const HubConfig& config, MappingRepository* mappings = nullptr);
  ~ApiServer();
  // Binds and starts serving; returns the bound port (useful with port 0).
  int start();
  // Stops accepting connections and waits for requests in progress to finish.
  void stop();
  int port() const { return port_; }

 private:
  Hub& hub_;
  const HubConfig& config_;
  MappingRepository* mappings_;
  std::unique_ptr<ConsoleStore> console_;  // users, tokens, audit, desk queries
  std::unique_ptr<AlertMonitor> alerts_;   // rules evaluated on its own thread
  std::unique_ptr<api::ApiShared> shared_;
  std::unique_ptr<Poco::ThreadPool> pool_;
  std::unique_ptr<Poco::Net::HTTPServer> server_;
  int port_ = 0;
};

}  // namespace relais

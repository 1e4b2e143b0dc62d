#pragma once
// What the API's handlers share: the hub, the configuration, the mappings, the console's store,
// sessions and login throttle (ApiShared, owned by ApiServer, thread-safe parts only), and what
// one request carries (RequestContext, per request).

#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/URI.h>

#include <map>
#include <memory>
#include <string>

#include "api/alerts.h"
#include "api/auth.h"
#include "api/endpoints.h"
#include "api/proxy.h"
#include "core/console_store.h"
#include "routing/hub.h"
#include "routing/mapping_repository.h"

namespace relais::api {

struct ApiShared {
  ApiShared(Hub& h, const HubConfig& c, MappingRepository* m, ConsoleStore* cs, AlertMonitor* a,
            TrustedProxies p = {})
      : hub(h),
        config(c),
        mappings(m),
        console(cs),
        alerts(a),
        proxies(std::move(p)),
        sessions(h.clock()),
        throttle(h.clock()) {}
  Hub& hub;
  const HubConfig& config;
  MappingRepository* mappings;   // may be null (no mapping endpoints)
  ConsoleStore* console;         // may be null (no users, audit, desk)
  AlertMonitor* alerts;          // may be null (no alerts configured)
  const TrustedProxies proxies;  // server.trusted_proxies
  SessionTable sessions;
  LoginThrottle throttle;
};

struct RequestContext {
  ApiShared& shared;
  const Endpoint& endpoint;
  const Principal& who;
  std::map<std::string, std::string> params;  // path parameters
  const Poco::URI& uri;
  Poco::Net::HTTPServerRequest& req;
  Poco::Net::HTTPServerResponse& resp;
  std::string address;  // client IP (the real client's behind a trusted proxy)

  // Appends to the audit trail as this request's principal.
  void audit(const std::string& action, const std::string& object,
             const std::string& detail = "") const;
};

// The console's endpoints (console_api.cpp): session, users, tokens, audit, overview, desk,
// delivery detail, bulk retry, destinations. Returns false when `id` is not one of them.
bool handle_console_endpoint(Ep id, RequestContext& rc);
// Session login (public endpoint): no principal yet.
void handle_login(ApiShared& shared, Poco::Net::HTTPServerRequest& req,
                  Poco::Net::HTTPServerResponse& resp, const std::string& address);
// A payload as this request's role may see it: admins see it clear (`personal` tells whether it
// holds personal data: the caller audits the view), other roles see personal fields masked.
nlohmann::json payload_for(const RequestContext& rc, const nlohmann::json& value, bool& personal,
                           bool& masked);

}  // namespace relais::api

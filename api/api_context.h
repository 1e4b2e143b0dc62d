#pragma once

#include <algorithm>
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
#include "core/rate_bucket.h"
#include "core/rekey_run.h"
#include "core/retention.h"
#include "routing/hub.h"
#include "routing/mapping_repository.h"

namespace relais::booking {
class BookingService;
class RdvApi;
}  // namespace relais::booking

namespace relais::api {

// The name a principal's requests are counted under: a token's name, or "session:" + the user
// of a console session (a user and a token may share a name).
std::string rate_caller(const Principal& who);
// The limit of a caller: its token's own rate_limit/burst, else server.rate_limit.
RateLimit rate_limit_of(const HubConfig& config, const std::string& caller);

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
        throttle(h.clock()),
        rate_limited(c.rate_limit > 0 ||
                     std::any_of(c.tokens.begin(), c.tokens.end(),
                                 [](const auto& t) { return t.rate_limit > 0; })),
        rate_buckets([&c](const std::string& caller) { return rate_limit_of(c, caller); }),
        rekey(h.store()) {}
  Hub& hub;
  const HubConfig& config;
  MappingRepository* mappings;        // may be null (no mapping endpoints)
  ConsoleStore* console;              // may be null (no users, audit, desk)
  AlertMonitor* alerts;               // may be null (no alerts configured)
  RetentionJob* retention = nullptr;  // the purge job (ApiServer's); null in tests without it
  booking::BookingService* booking = nullptr;  // online booking (BookingSetup); null: none
  const TrustedProxies proxies;                // server.trusted_proxies
  SessionTable sessions;
  LoginThrottle throttle;
  // Any rate limit configured (server.rate_limit or a token's own): else no request pays for
  // a bucket lookup.
  const bool rate_limited;
  RateBuckets rate_buckets;  // server.rate_limit, per caller (rate_caller())
  RekeyRun rekey;            // POST /api/v1/store/rekey: stopped and joined with ApiShared
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
// The polling sources' state and refused records, and the appariements (pairings_api.cpp).
// Returns false when `id` is not one of them.
bool handle_pairing_endpoint(Ep id, RequestContext& rc);
// The portal's online booking (booking_api.cpp). Returns false when `id` is not one of them.
bool handle_booking_endpoint(Ep id, RequestContext& rc);

// The `booking:` section made alive: CMS76's RDV API (the configured http destination) and the
// BookingService reading free/busy through the hub's calendar connector and claiming slots in
// the hub's cross-references. Nothing when the section is absent. Start-up only: throws on a
// destination that is missing or of the wrong kind. The hub's destinations of kind `booking`
// (claims released when an RDV is cancelled or moved) tell the service, from its construction
// to its destruction. Owned by ApiServer; the hub outlives it.
class BookingSetup {
 public:
  BookingSetup(Hub& hub, const HubConfig& config);
  ~BookingSetup();
  booking::BookingService* service() const { return service_.get(); }

 private:
  std::unique_ptr<booking::RdvApi> rdv_;
  std::unique_ptr<booking::BookingService> service_;
  std::vector<Connector*> releases_;  // the hub's `booking` destinations told of this service
};

// Session login (public endpoint): no principal yet.
void handle_login(ApiShared& shared, Poco::Net::HTTPServerRequest& req,
                  Poco::Net::HTTPServerResponse& resp, const std::string& address);
// How one request may see one message and what was derived from it (docs/security.md,
// "Masking"). Admins see everything clear (`personal` tells whether anything was personal: the
// caller audits the view); every other role sees personal values masked: the source's declared
// paths in the body, the mapping's declared paths in a mapped payload, the name and person rules
// everywhere, and the body's personal values wherever they reappear (a mapped payload, an error
// text). Partners' response excerpts are masked whole for them. Per request, one thread.
class PayloadMasker {
 public:
  // `source` names the message's source (its declared paths); `body` is the stored body.
  PayloadMasker(const RequestContext& rc, const std::string& source, const nlohmann::json& body);
  bool clear() const { return clear_; }
  // The body as this role may see it.
  nlohmann::json body() const { return body_; }
  // A payload derived from the body: mapped by `mapping` (its version; "" = none), or a dry run's
  // output (`extra` declared paths: a candidate mapping's).
  nlohmann::json derived(const nlohmann::json& value, const std::string& mapping, int64_t version,
                         const PersonalPaths* extra = nullptr);
  // A text written by Relais about the message (error texts, mapping errors).
  std::string text(const std::string& t) const;
  // A partner's own words (response excerpt): they may echo anything.
  std::string excerpt(const std::string& e);

  bool personal = false;  // admin only: something personal was shown clear (audit the view)
  bool masked = false;    // something was masked

 private:
  nlohmann::json mask(const nlohmann::json& value, const PersonalPaths& declared);
  const RequestContext& rc_;
  bool clear_;
  PersonalPaths source_paths_;
  std::vector<std::string> values_;  // the body's personal values
  nlohmann::json body_;
};

}  // namespace relais::api

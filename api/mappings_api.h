#pragma once
// The /api/v1/mappings and /api/v1/tables endpoints: list, read, validate, add a version,
// publish/roll back (activate), diff, dry-run test, replay check over dead deliveries.

#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/URI.h>

#include <string>
#include <vector>

#include "api/api_context.h"
#include "routing/hub.h"
#include "routing/mapping_repository.h"

namespace relais {

// One request's view of the mapping endpoints. Cheap, per request; references outlive it.
struct MappingsApi {
  Hub& hub;
  const HubConfig& config;
  MappingRepository& repo;
  const TokenConfig& token;
  // The request (audit of dry runs, masking of what they read from the store); may be null in
  // tests of the mapping endpoints alone: nothing read from the store is then shown.
  const api::RequestContext* rc = nullptr;

  // Returns false when the path is not one of these endpoints (the caller answers 404).
  bool handle(const std::vector<std::string>& seg, const Poco::URI& uri,
              Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp);
};

}  // namespace relais

#pragma once
// The table of every HTTP endpoint relais serves: method, path pattern, the roles allowed and a
// summary. The server routes through it and checks the role from it before any handler runs;
// the role × endpoint tests and the OpenAPI test are driven by it, so an endpoint added here is
// tested and must be described. Static data; thread-safe.

#include <map>
#include <string>
#include <vector>

namespace relais::api {

enum class Ep {
  Healthz,
  Readyz,
  Metrics,
  OpenApi,
  Inbound,
  InboundBatch,
  MessagesList,
  MessageGet,
  DeliveriesList,
  DeliveryGet,
  DeliveryRetry,
  DeliveryDiscard,
  DeliveriesBulkRetry,
  Overview,
  AlertsStatus,
  SessionLogin,
  SessionGet,
  SessionLogout,
  UsersList,
  UserCreate,
  UserUpdate,
  TokensList,
  TokenCreate,
  TokenRevoke,
  AuditList,
  AuditCsv,
  DestinationsList,
  DestinationProbe,
  MappingsList,
  MappingGet,
  MappingVersionGet,
  MappingVersionAdd,
  MappingValidate,
  MappingActivate,
  MappingDiff,
  MappingTest,
  MappingReplayCheck,
  TablesList,
  TableGet,
  TableVersionAdd,
  FreeBusy,
  DestinationMessage,
  ConnectorInbound,
  ConnectorInboundPost,
  ConnectorRecord,
  OptoutsList,
  OptoutAdd,
  OptoutRemoveByNumber,
  OptoutGet,
  OptoutRemove,
  PrivacyErase,
  StoreRekeyStart,
  StoreRekeyStatus,
  RetentionRun,
  SourcesList,
  SourceRejects,
  PairingsList,
  PairingGet,
  PairingChoice,
  PairingUndo,
  BookingSlots,
  BookingCreate,
};

struct Endpoint {
  Ep id;
  std::string method;              // GET, POST, PATCH, DELETE
  std::string path;                // e.g. /api/v1/deliveries/{id}/retry
  std::vector<std::string> roles;  // allowed roles; empty = public (no credentials needed)
  std::string summary;
  bool is_public() const { return roles.empty(); }
  bool allows(const std::string& role) const;
};

// Every role a principal may have.
const std::vector<std::string>& all_roles();
const std::vector<Endpoint>& endpoints();

// Matches a request path (split into segments) against the table. `path_matched` is set when
// some endpoint has this path with another method (→ 405, `allow` lists the methods).
const Endpoint* match_endpoint(const std::string& method, const std::vector<std::string>& segments,
                               std::map<std::string, std::string>& params, bool& path_matched,
                               std::string& allow);

}  // namespace relais::api

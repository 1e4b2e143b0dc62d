#include "api/endpoints.h"

#include <algorithm>

#include "api/http_util.h"

namespace relais::api {
namespace {

bool is_param(const std::string& part) {  // "{name}"
  return part.size() > 2 && part.front() == '{' && part.back() == '}';
}

}  // namespace

bool Endpoint::allows(const std::string& role) const {
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

const std::vector<std::string>& all_roles() {
  static const std::vector<std::string> r = {"admin", "support", "auditor", "system"};
  return r;
}

const std::vector<Endpoint>& endpoints() {
  const std::vector<std::string> any = {"admin", "support", "auditor", "system"};
  const std::vector<std::string> people = {"admin", "support", "auditor"};
  const std::vector<std::string> operate = {"admin", "support"};
  const std::vector<std::string> admin = {"admin"};
  const std::vector<std::string> audit = {"admin", "auditor"};
  const std::vector<std::string> post = {"system", "admin"};
  static const std::vector<Endpoint> table = {
      {Ep::Healthz, "GET", "/healthz", {}, "liveness"},
      {Ep::Readyz, "GET", "/readyz", any, "readiness (store writable, workers running)"},
      {Ep::Metrics, "GET", "/metrics", any, "Prometheus metrics"},
      {Ep::OpenApi, "GET", "/api/v1/openapi.json", {}, "this API described in OpenAPI 3"},
      {Ep::Inbound, "POST", "/api/v1/sources/{source}/messages", post, "post one message"},
      {Ep::InboundBatch, "POST", "/api/v1/sources/{source}/messages:batch", post,
       "post NDJSON messages, committed together"},
      {Ep::MessagesList, "GET", "/api/v1/messages", people, "list messages (filters, cursor)"},
      {Ep::MessageGet, "GET", "/api/v1/messages/{id}", people,
       "a message with its deliveries (personal fields masked unless admin)"},
      {Ep::DeliveriesList, "GET", "/api/v1/deliveries", people,
       "deliveries waiting for a person, by business object"},
      {Ep::DeliveryGet, "GET", "/api/v1/deliveries/{id}", people,
       "a delivery: attempts, explanation, payloads before and after mapping"},
      {Ep::DeliveryRetry, "POST", "/api/v1/deliveries/{id}/retry", operate, "retry a delivery"},
      {Ep::DeliveryDiscard, "POST", "/api/v1/deliveries/{id}/discard", operate,
       "discard a delivery with a reason"},
      {Ep::DeliveriesBulkRetry, "POST", "/api/v1/deliveries:retry", operate,
       "count, then retry, the deliveries matching a filter"},
      {Ep::Overview, "GET", "/api/v1/overview", people, "figures per destination"},
      {Ep::AlertsStatus, "GET", "/api/v1/alerts", people,
       "alert rules: firing, sent, suppressed during the quiet period"},
      {Ep::SessionLogin, "POST", "/api/v1/session", {}, "log in (session cookie)"},
      {Ep::SessionGet, "GET", "/api/v1/session", any, "who is logged in, CSRF token"},
      {Ep::SessionLogout, "DELETE", "/api/v1/session", any, "log out"},
      {Ep::UsersList, "GET", "/api/v1/users", admin, "local users"},
      {Ep::UserCreate, "POST", "/api/v1/users", admin, "create a user"},
      {Ep::UserUpdate, "PATCH", "/api/v1/users/{name}", admin,
       "change a user's role, password or disabled flag"},
      {Ep::TokensList, "GET", "/api/v1/tokens", admin, "API tokens (never their value)"},
      {Ep::TokenCreate, "POST", "/api/v1/tokens", admin, "create an API token (shown once)"},
      {Ep::TokenRevoke, "DELETE", "/api/v1/tokens/{name}", admin, "revoke an API token"},
      {Ep::AuditList, "GET", "/api/v1/audit", audit, "the audit trail (filters, cursor)"},
      {Ep::AuditCsv, "GET", "/api/v1/audit.csv", audit, "the audit trail as CSV"},
      {Ep::DestinationsList, "GET", "/api/v1/destinations", admin,
       "connector instances, secrets hidden"},
      {Ep::DestinationProbe, "POST", "/api/v1/destinations/{name}/probe", admin,
       "test the connection of a connector instance"},
      {Ep::MappingsList, "GET", "/api/v1/mappings", people, "mappings and their active version"},
      {Ep::MappingGet, "GET", "/api/v1/mappings/{name}", people, "a mapping and its versions"},
      {Ep::MappingVersionGet, "GET", "/api/v1/mappings/{name}/versions/{version}", people,
       "one version of a mapping"},
      {Ep::MappingVersionAdd, "POST", "/api/v1/mappings/{name}/versions", admin,
       "store a new version (optionally activate it)"},
      {Ep::MappingValidate, "POST", "/api/v1/mappings/{name}/validate", operate,
       "compile a candidate, return the diagnostics"},
      {Ep::MappingActivate, "POST", "/api/v1/mappings/{name}/activate", admin,
       "publish or roll back to a version"},
      {Ep::MappingDiff, "GET", "/api/v1/mappings/{name}/diff", people, "diff two versions"},
      {Ep::MappingTest, "POST", "/api/v1/mappings/{name}/test", operate,
       "dry-run on a sample or a stored message"},
      {Ep::MappingReplayCheck, "POST", "/api/v1/mappings/{name}/replay-check", operate,
       "a candidate over the dead deliveries"},
      {Ep::TablesList, "GET", "/api/v1/tables", people, "lookup tables"},
      {Ep::TableGet, "GET", "/api/v1/tables/{name}", people, "a lookup table"},
      {Ep::TableVersionAdd, "POST", "/api/v1/tables/{name}/versions", admin,
       "store and activate a new version (CSV or YAML)"},
      {Ep::FreeBusy, "GET", "/api/v1/destinations/{name}/free-busy", post,
       "a professional's busy periods (calendar destination)"},
      {Ep::DestinationMessage, "POST", "/api/v1/destinations/{name}/messages", admin,
       "one message for one destination, no route or mapping (calendar repairs)"},
      // Partners' callbacks cannot send a bearer token: the connector checks its own secret.
      {Ep::ConnectorInbound,
       "GET",
       "/api/v1/connectors/{destination}/inbound/{kind}",
       {},
       "a partner's callback (SMS delivery report or reply), checked by the connector"},
      {Ep::ConnectorInboundPost,
       "POST",
       "/api/v1/connectors/{destination}/inbound/{kind}",
       {},
       "a partner's callback (SMS delivery report or reply), checked by the connector"},
      {Ep::ConnectorRecord, "GET", "/api/v1/connectors/{destination}/records/{id}", any,
       "a connector's record of a delivery (the SMS record)"},
      {Ep::OptoutsList, "GET", "/api/v1/connectors/{destination}/optouts", admin,
       "the SMS opt-out list, or one number (?number=)"},
      {Ep::OptoutAdd, "POST", "/api/v1/connectors/{destination}/optouts", admin,
       "add a number to the SMS opt-out list (?number=)"},
      {Ep::OptoutRemoveByNumber, "DELETE", "/api/v1/connectors/{destination}/optouts", admin,
       "remove a number from the SMS opt-out list (?number=)"},
      {Ep::OptoutGet, "GET", "/api/v1/connectors/{destination}/optouts/{hash}", admin,
       "one opt-out entry by hash"},
      {Ep::OptoutRemove, "DELETE", "/api/v1/connectors/{destination}/optouts/{hash}", admin,
       "remove an opt-out entry by hash"},
      {Ep::PrivacyErase, "POST", "/api/v1/privacy/erase", admin,
       "erase the payloads of every message of one correlation key (tombstone, audited)"},
      {Ep::StoreRekeyStart, "POST", "/api/v1/store/rekey", admin,
       "re-encrypt every stored payload not on the active key, in the background (audited)"},
      {Ep::StoreRekeyStatus, "GET", "/api/v1/store/rekey", admin,
       "the progress of the current or last rekey"},
      {Ep::RetentionRun, "POST", "/api/v1/retention/run", admin,
       "run the retention purge now (payloads past their retention, rows past "
       "retention.metadata); dry_run lists what would go"},
      {Ep::SourcesList, "GET", "/api/v1/sources", people,
       "sources: the polling ones' state (last poll, failing and why, records, refused)"},
      {Ep::SourceRejects, "GET", "/api/v1/sources/{source}/rejects", people,
       "records a polling source could not take (position and reason, cursor)"},
      {Ep::PairingsList, "GET", "/api/v1/pairings", people,
       "appariements (state: en_attente | apparie | defait; partner; cursor)"},
      {Ep::PairingGet, "GET", "/api/v1/pairings/{id}", people,
       "one appariement and its candidates (identity masked for roles that do not pair)"},
      {Ep::PairingChoice, "POST", "/api/v1/pairings/{id}/choice", operate,
       "pair the person with a partner's record; the deliveries that waited flow (audited)"},
      {Ep::PairingUndo, "POST", "/api/v1/pairings/{id}/undo", operate,
       "undo an appariement; the person's next messages wait again (audited)"},
      // The citizen portal's token has the system role (docs/booking.md).
      {Ep::BookingSlots, "GET", "/api/v1/booking/slots", post,
       "the free slots of a CMS's motif (opening hours minus the professionals' busy times)"},
      {Ep::BookingCreate, "POST", "/api/v1/booking", post,
       "book one slot: re-checked, created in CMS76, answered once CMS76 accepted (audited)"},
  };
  return table;
}

const Endpoint* match_endpoint(const std::string& method, const std::vector<std::string>& segments,
                               std::map<std::string, std::string>& params, bool& path_matched,
                               std::string& allow) {
  path_matched = false;
  allow.clear();
  // The patterns split once (this runs on every request, the inbound path included).
  static const std::vector<std::vector<std::string>> patterns = [] {
    std::vector<std::vector<std::string>> out;
    for (const auto& e : endpoints()) out.push_back(split_path(e.path));
    return out;
  }();
  const Endpoint* found = nullptr;
  const auto& table = endpoints();
  for (size_t n = 0; n < table.size(); ++n) {
    const Endpoint& e = table[n];
    const auto& pattern = patterns[n];
    if (pattern.size() != segments.size()) continue;
    // Literal segments first (no allocation for the endpoints that do not match).
    bool ok = true;
    for (size_t i = 0; i < pattern.size() && ok; ++i) {
      ok = is_param(pattern[i]) ? !segments[i].empty() : pattern[i] == segments[i];
    }
    if (!ok) continue;
    path_matched = true;
    allow += (allow.empty() ? "" : ", ") + e.method;
    if (e.method == method && found == nullptr) {
      found = &e;
      params.clear();
      for (size_t i = 0; i < pattern.size(); ++i) {
        if (is_param(pattern[i])) params[pattern[i].substr(1, pattern[i].size() - 2)] = segments[i];
      }
    }
  }
  return found;
}

}  // namespace relais::api

#pragma once
// The console's dashboard on several nodes behind one address (issue 15): what a node keeps in
// its own process — its dispatcher's queues (its partitions' only), the alert monitor's state
// and the polling sources' states (both on the leader only) — is reported to the others through
// the shared state (core/shared_state.h, NodeReports: Redis with a `redis:` section), so that
// GET /api/v1/overview, /api/v1/alerts and /api/v1/sources answer the same on every node and the
// dashboard does not change with the node a request reaches. Alone (no cluster) nothing is
// reported and they answer this process's figures as before.
//
// Free functions over ApiShared; thread-safe as its parts are.

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "api/api_context.h"
#include "routing/polling.h"

namespace relais::api {

// How often each node reports, and how long a report lives without being renewed (a node that
// stopped drops out of the figures after it).
constexpr Millis kReportEveryMs = 1000;
constexpr Millis kReportTtlMs = 5000;

// Puts this node's reports: its dispatcher's figures, and the alerts' and the polling sources'
// states when it leads.
// Called every kReportEveryMs by ApiServer's reporter on a node of a cluster.
void report_node(ApiShared& shared);

// The installation's dispatcher figures by destination: this node's own, plus the other live
// nodes' reports on a cluster. Sets out["nodes"] (how many nodes are counted) on a cluster, and
// out["partial"] when the reports could not be read (this node's figures only).
std::map<std::string, DestinationStats> dispatch_figures(ApiShared& shared, nlohmann::json& out);

// GET /api/v1/alerts: the state of the node that evaluates the rules. On a cluster,
// "evaluated_by" names it (null when no leader has reported: this node's unevaluated rules).
nlohmann::json alerts_status(ApiShared& shared);

// A polling source's state as GET /api/v1/sources shows it.
nlohmann::json polling_json(const PollingState& state);
// The polling sources' states by source: this node's when it runs them (alone, or the leader),
// else the leader's report (this node's idle ones when no leader has reported).
std::map<std::string, nlohmann::json> polling_states(ApiShared& shared);

}  // namespace relais::api

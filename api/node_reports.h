#pragma once
// The console's dashboard on several nodes behind one address (issue 15): what a node keeps in
// its own process — its dispatcher's queues (its partitions' only) and the alert monitor's
// state (evaluated on the leader only) — is reported to the others through the shared state
// (core/shared_state.h, NodeReports: Redis with a `redis:` section), so that GET
// /api/v1/overview and GET /api/v1/alerts answer the same on every node and the dashboard does
// not change with the node a request reaches. Alone (no cluster) nothing is reported and both
// answer this process's figures as before.
//
// Free functions over ApiShared; thread-safe as its parts are.

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "api/api_context.h"

namespace relais::api {

// How often each node reports, and how long a report lives without being renewed (a node that
// stopped drops out of the figures after it).
constexpr Millis kReportEveryMs = 1000;
constexpr Millis kReportTtlMs = 5000;

// Puts this node's reports: its dispatcher's figures, and the alerts' state when it leads.
// Called every kReportEveryMs by ApiServer's reporter on a node of a cluster.
void report_node(ApiShared& shared);

// The installation's dispatcher figures by destination: this node's own, plus the other live
// nodes' reports on a cluster. Sets out["nodes"] (how many nodes are counted) on a cluster, and
// out["partial"] when the reports could not be read (this node's figures only).
std::map<std::string, DestinationStats> dispatch_figures(ApiShared& shared, nlohmann::json& out);

// GET /api/v1/alerts: the state of the node that evaluates the rules. On a cluster,
// "evaluated_by" names it (null when no leader has reported: this node's unevaluated rules).
nlohmann::json alerts_status(ApiShared& shared);

}  // namespace relais::api

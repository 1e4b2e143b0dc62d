#include "api/node_reports.h"

#include <algorithm>

namespace relais::api {

namespace {

using json = nlohmann::json;

json dispatch_report(const std::vector<DestinationStats>& all) {
  json out = json::object();
  for (const auto& s : all) {
    out[s.name] = {{"queued", s.queued},
                   {"in_flight", s.in_flight},
                   {"held_keys", s.held_keys},
                   {"oldest_received", s.oldest_received},
                   {"throttled_until", s.throttled_until},
                   {"throttled_scopes", s.throttled_scopes}};
  }
  return out;
}

// Adds another node's figures: the counts add up; the oldest delivery and the latest pause
// win (a partner's pause is seen by each node that calls it: not added).
void merge(std::map<std::string, DestinationStats>& stats, const json& report) {
  for (const auto& [name, f] : report.items()) {
    if (!f.is_object()) continue;
    DestinationStats& s = stats[name];
    s.name = name;
    s.queued += f.value("queued", size_t{0});
    s.in_flight += f.value("in_flight", size_t{0});
    s.held_keys += f.value("held_keys", size_t{0});
    Millis oldest = f.value("oldest_received", Millis{0});
    if (oldest != 0 && (s.oldest_received == 0 || oldest < s.oldest_received)) {
      s.oldest_received = oldest;
    }
    s.throttled_until = std::max(s.throttled_until, f.value("throttled_until", Millis{0}));
    s.throttled_scopes = std::max(s.throttled_scopes, f.value("throttled_scopes", size_t{0}));
  }
}

json time_or_null(Millis t) {
  return t ? json(format_rfc3339(t)) : json(nullptr);
}

// The latest report on `topic` of a node that leads (two for a while after the leadership
// moved: the latest one is the leader's), without its time; null when none can be read.
json leader_report(ApiShared& shared, const char* topic) {
  std::map<std::string, std::string> reports;
  NodeReports* source = shared.state.reports.get();
  json newest;
  if (source == nullptr || !source->get(topic, reports).ok) return newest;
  for (const auto& [node, text] : reports) {
    json r = json::parse(text, nullptr, false);
    if (!r.is_object()) continue;
    if (newest.is_null() ||
        r.value("reported_at", Millis{0}) > newest.value("reported_at", Millis{0})) {
      newest = std::move(r);
    }
  }
  if (newest.is_object()) newest.erase("reported_at");
  return newest;
}

json local_polling(Hub& hub) {
  json out = json::object();
  for (const auto& s : hub.polling_states()) out[s.source] = polling_json(s);
  return out;
}

}  // namespace

json polling_json(const PollingState& s) {
  return {{"kind", s.kind},
          {"failing", s.failing},
          {"failures_in_row", s.failures_in_row},
          {"last_error", s.last_error.empty() ? json() : json(s.last_error)},
          {"last_poll_at", time_or_null(s.last_poll_at)},
          {"last_record_at", time_or_null(s.last_record_at)},
          {"next_poll_at", time_or_null(s.next_poll_at)},
          {"records", s.records},
          {"rejected", s.rejected}};
}

void report_node(ApiShared& shared) {
  NodeReports* reports = shared.state.reports.get();
  if (reports == nullptr) return;
  Hub& hub = shared.hub;
  const std::string node = hub.node();
  // A report that cannot be put is retried by the next round; the client logs the loss of Redis.
  (void)reports->put(NodeReports::kDispatch, node, dispatch_report(hub.dispatcher().stats()).dump(),
                     kReportTtlMs);
  if (!hub.leader()) return;
  const Millis now = hub.clock().now_ms();
  if (shared.alerts != nullptr && shared.alerts->enabled()) {
    json status = shared.alerts->status();
    status["evaluated_by"] = node;
    status["reported_at"] = now;
    (void)reports->put(NodeReports::kAlerts, node, status.dump(), kReportTtlMs);
  }
  json polling = local_polling(hub);
  if (!polling.empty()) {
    (void)reports->put(NodeReports::kSources, node,
                       json{{"sources", polling}, {"reported_at", now}}.dump(), kReportTtlMs);
  }
}

std::map<std::string, DestinationStats> dispatch_figures(ApiShared& shared, json& out) {
  Hub& hub = shared.hub;
  std::map<std::string, DestinationStats> stats;
  for (auto& s : hub.dispatcher().stats()) stats[s.name] = s;
  if (!hub.clustered()) return stats;
  int nodes = 1;
  std::map<std::string, std::string> reports;
  NodeReports* source = shared.state.reports.get();
  if (source != nullptr && source->get(NodeReports::kDispatch, reports).ok) {
    for (const auto& [node, text] : reports) {
      if (node == hub.node()) continue;  // its own figures are fresher than its report
      json r = json::parse(text, nullptr, false);
      if (!r.is_object()) continue;
      merge(stats, r);
      ++nodes;
    }
  } else {
    out["partial"] = true;
  }
  out["nodes"] = nodes;
  return stats;
}

json alerts_status(ApiShared& shared) {
  if (shared.alerts == nullptr) return {{"rules", json::array()}, {"channels", json::array()}};
  Hub& hub = shared.hub;
  json local = shared.alerts->status();
  if (!hub.clustered()) return local;
  if (hub.leader()) {
    local["evaluated_by"] = hub.node();
    return local;
  }
  json report = leader_report(shared, NodeReports::kAlerts);
  if (report.is_object()) return report;
  local["evaluated_by"] = nullptr;
  return local;
}

std::map<std::string, json> polling_states(ApiShared& shared) {
  Hub& hub = shared.hub;
  json states;
  if (hub.clustered() && !hub.leader()) states = leader_report(shared, NodeReports::kSources);
  states = states.is_object() ? states["sources"] : local_polling(hub);
  std::map<std::string, json> out;
  for (const auto& [source, state] : states.items()) out[source] = state;
  return out;
}

}  // namespace relais::api

#pragma once
// A Microsoft Graph simulator for the tests (calendar events and the Entra ID token endpoint):
// an in-process HTTP server (relais::tools::HttpSink) with an in-memory calendar per mailbox.
//
// Semantics kept from the real service: client-credentials tokens with a lifetime (expired or
// revoked tokens get 401 InvalidAuthenticationToken), the token endpoint's error answers
// (invalid_client, the invalid_scope sample), transactionId on POST /users/{id}/events (a
// repeated create with the same transactionId returns the existing event, no duplicate),
// (pessimistically, also when that event was deleted since: Microsoft does not say how long
// it remembers a transactionId, so the simulator never forgets one),
// singleValueExtendedProperties stored and filterable ($filter with Any on id and value,
// $expand on calendarView), PATCH/DELETE with 404 ErrorItemNotFound, getSchedule, and 429 with
// Retry-After built from the throttling sample. Throttling is per mailbox and strict: after a
// 429, every request of that mailbox gets 429 (Retry-After: the time left) until the delay it
// gave has passed, on the simulator's clock (steady clock unless a test gives its own).
// Random (seeded) faults for scenarios, including "saved, then the connection reset without an
// answer" on reused keep-alive connections. Strict: unknown users get 404 ErrorInvalidUser;
// malformed bodies (no subject/start/end, times with an offset, an unknown time zone) get 400
// and are recorded as violations. Times are read in their zone with the system's tz database.
//
// Thread-safe: every public method locks; requests are served on the sink's thread pool.

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "connectors/calendar/calendar.h"
#include "connectors/calendar/calendar_http.h"
#include "tests/calendar/ews_simulator.h"
#include "tests/calendar/sim_faults.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {

inline std::string graph_fixture(const std::string& name) {
  return read_text(std::string(RELAIS_SHARED_DIR) + "/fixtures/graph/" + name);
}

struct GraphEvent {
  std::string id;
  std::string change_key;
  std::string transaction_id;
  std::string key;  // the Relais extended property
  nlohmann::json body;
};

class GraphSimulator : public SimulatorFaults {
 public:
  enum class Fault { Throttle, Http503, Forbidden };

  GraphSimulator() : sink_(0, true, 16) {
    sink_.set_responder([this](const tools::SinkRequest& r) { return answer(r); });
  }
  ~GraphSimulator() { sink_.set_responder(nullptr); }

  std::string base() const { return "http://127.0.0.1:" + std::to_string(sink_.port()); }
  std::string url() const { return base() + "/v1.0"; }
  std::string token_url() const { return base() + "/tenant-1/oauth2/v2.0/token"; }

  void add_mailbox(const std::string& mailbox) {
    std::lock_guard<std::mutex> lock(mu_);
    calendars_[mailbox];
  }
  void set_credentials(std::string client_id, std::string secret, int lifetime_s = 3599) {
    std::lock_guard<std::mutex> lock(mu_);
    client_id_ = std::move(client_id);
    secret_ = std::move(secret);
    lifetime_s_ = lifetime_s;
  }
  void revoke_tokens() {
    std::lock_guard<std::mutex> lock(mu_);
    tokens_.clear();
  }
  int tokens_issued() const {
    std::lock_guard<std::mutex> lock(mu_);
    return tokens_issued_;
  }
  void inject(Fault f, int n = 1) {
    std::lock_guard<std::mutex> lock(mu_);
    for (int i = 0; i < n; ++i) injected_.push_back(f);
  }
  // Every n-th event request is throttled (429) / fails with 503 / loses its response
  // (the operation is applied, then 503 is answered); 0 = off.
  void periodic(int throttle_every, int unavailable_every, int lose_every = 0) {
    std::lock_guard<std::mutex> lock(mu_);
    throttle_every_ = throttle_every;
    unavailable_every_ = unavailable_every;
    lose_every_ = lose_every;
  }
  // Random faults from a seeded generator, each a probability per event request: 429, 503,
  // a lost answer after the operation (503), and — on a reused connection, for POST, PATCH and
  // DELETE — the operation saved then the connection reset without an answer.
  void random_faults(uint64_t seed, double throttle, double unavailable, double lose,
                     double reset) {
    std::lock_guard<std::mutex> lock(mu_);
    this->seed(seed);
    p_throttle_ = throttle, p_unavailable_ = unavailable, p_lose_ = lose, p_reset_ = reset;
  }
  // Another time zone the simulated tenant accepts (IANA or Windows name).
  void allow_time_zone(const std::string& zone) {
    std::lock_guard<std::mutex> lock(mu_);
    zones_.insert(zone);
  }
  // The Retry-After value sent with 429 (the sample says 2.128).
  void set_retry_after(std::string v) {
    std::lock_guard<std::mutex> lock(mu_);
    retry_after_ = std::move(v);
  }
  // Adds an event behind Relais's back (a duplicate, a leftover); returns its id.
  std::string put(const std::string& mailbox, GraphEvent e) {
    std::lock_guard<std::mutex> lock(mu_);
    e.id = "AAMkAGI1AAAt9AHjAAA" + std::to_string(++item_seq_) + "=";
    calendars_[mailbox][e.id] = e;
    return e.id;
  }
  // Moves an event behind Relais's back (`wall`: local time, as stored).
  void set_start(const std::string& mailbox, const std::string& id, const std::string& wall) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& cal = calendars_[mailbox];
    if (auto it = cal.find(id); it != cal.end()) it->second.body["start"]["dateTime"] = wall;
  }
  // Deletes an event behind Relais's back (its transactionId stays remembered).
  void erase(const std::string& mailbox, const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& cal = calendars_[mailbox];
    if (auto it = cal.find(id); it != cal.end() && !it->second.transaction_id.empty()) {
      deleted_[mailbox + "\n" + it->second.transaction_id] = it->second;
    }
    cal.erase(id);
  }

  std::vector<GraphEvent> events(const std::string& mailbox) const {
    std::lock_guard<std::mutex> lock(mu_);
    return items_of(calendars_, mailbox);
  }
  std::map<std::string, std::vector<GraphEvent>> all_events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return items_by_mailbox(calendars_);
  }
  // The requests answered 2xx (HttpSink keeps only those), and every request.
  std::vector<tools::SinkRequest> requests() const { return sink_.requests(); }
  size_t total() const { return sink_.total(); }
  std::vector<std::string> violations() const {
    std::lock_guard<std::mutex> lock(mu_);
    return violations_;
  }

 private:
  using json = nlohmann::json;

  static tools::SinkResponse reply(int status, const json& body) {
    tools::SinkResponse r;
    r.status = status;
    r.headers["Content-Type"] = "application/json";
    r.body = body.is_null() ? "" : body.dump();
    return r;
  }
  static tools::SinkResponse graph_error(int status, const std::string& code,
                                         const std::string& message) {
    return reply(status, {{"error", {{"code", code}, {"message", message}}}});
  }
  tools::SinkResponse bad(const std::string& why) {
    violations_.push_back(why);
    return graph_error(400, "ErrorInvalidRequest", why);
  }
  tools::SinkResponse throttled(const std::string& retry_after) {
    // Built from the sample: its status, headers and body (Retry-After set by the test).
    std::string t = graph_fixture("throttling-429-response.http");
    auto blank = t.find("\n\n");
    tools::SinkResponse r;
    r.status = 429;
    r.headers["Content-Type"] = "application/json";
    r.headers["Retry-After"] = retry_after;
    r.body = blank == std::string::npos ? "" : t.substr(blank + 2);
    return r;
  }

  tools::SinkResponse token(const tools::SinkRequest& r) {
    auto f = form_fields(r.body);
    if (f["grant_type"] != "client_credentials" || f["client_id"] != client_id_ ||
        f["client_secret"] != secret_) {
      return reply(401, {{"error", "invalid_client"},
                         {"error_description", "AADSTS7000215: Invalid client secret provided."}});
    }
    if (f["scope"] != "https://graph.microsoft.com/.default") {
      tools::SinkResponse x;
      x.status = 400;
      x.headers["Content-Type"] = "application/json";
      x.body = graph_fixture("token-error-invalid-scope-response.json");
      return x;
    }
    json sample = json::parse(graph_fixture("token-client-credentials-response.json"));
    std::string tok = "graph-token-" + std::to_string(++tokens_issued_);
    tokens_.insert(tok);
    sample["access_token"] = tok;
    sample["expires_in"] = lifetime_s_;
    return reply(200, sample);
  }

  // The sample's event, with this event's fields.
  // A stored start/end ({dateTime (wall clock), timeZone}) in UTC, "2026-12-04T09:00:00",
  // read in its zone with the system's tz database.
  static std::string utc_of(const json& t) {
    std::string wall = t.value("dateTime", std::string()).substr(0, 19);
    std::string utc;
    if (!calendar::utc_from_wall(wall, t.value("timeZone", std::string()), utc)) return wall;
    return utc.substr(0, 19);
  }
  // How a time is shown: as stored, or in UTC when the client asked for it
  // (Prefer: outlook.timezone="UTC").
  json shown(const json& t) const {
    if (!prefer_utc_) return t;
    return {{"dateTime", utc_of(t) + ".0000000"}, {"timeZone", "UTC"}};
  }

  json event_view(const GraphEvent& e, bool expand) const {
    json s = json::parse(graph_fixture("create-event-transactionid-response.json"));
    s["id"] = e.id;
    s["changeKey"] = e.change_key;
    s["@odata.etag"] = "W/\"" + e.change_key + "\"";
    s["transactionId"] = e.transaction_id.empty() ? json() : json(e.transaction_id);
    for (const char* k :
         {"subject", "categories", "showAs", "isReminderOn", "reminderMinutesBeforeStart"}) {
      if (e.body.contains(k)) s[k] = e.body[k];
    }
    s["body"] = e.body.value("body", json::object());
    s["start"] = shown(e.body["start"]);
    s["end"] = shown(e.body["end"]);
    s["location"] = e.body.value("location", json::object());
    s["attendees"] = json::array();
    if (expand) {
      s["singleValueExtendedProperties"] = json::array({{{"id", property_id_}, {"value", e.key}}});
    }
    return s;
  }

  bool valid_time(const json& t, std::string& why) const {
    if (!t.is_object() || !t.contains("dateTime") || !t.contains("timeZone")) {
      why = "start/end need dateTime and timeZone";
      return false;
    }
    std::string dt = t["dateTime"].get<std::string>();
    if (dt.size() != 19 || dt[10] != 'T') {
      why = "dateTime must be a local time without offset: " + dt;
      return false;
    }
    if (zones_.count(t["timeZone"].get<std::string>()) == 0) {
      why = "unknown timeZone " + t["timeZone"].get<std::string>();
      return false;
    }
    return true;
  }

  tools::SinkResponse answer(const tools::SinkRequest& r) {
    std::lock_guard<std::mutex> lock(mu_);
    if (r.path.rfind("/tenant-1/oauth2/v2.0/token", 0) == 0) return token(r);
    prefer_utc_ = r.headers.count("prefer") > 0 &&
                  r.headers.at("prefer").find("outlook.timezone=\"UTC\"") != std::string::npos;
    std::string auth = r.headers.count("authorization") ? r.headers.at("authorization") : "";
    if (auth.rfind("Bearer ", 0) != 0 || tokens_.count(auth.substr(7)) == 0) {
      return graph_error(401, "InvalidAuthenticationToken",
                         "Access token has expired or is not "
                         "yet valid.");
    }
    std::string path = r.path.substr(0, r.path.find('?'));
    std::string query =
        r.path.find('?') == std::string::npos ? "" : r.path.substr(r.path.find('?') + 1);
    const std::string prefix = "/v1.0/users/";
    if (path.rfind(prefix, 0) != 0) return graph_error(404, "ResourceNotFound", "no such path");
    std::string rest = path.substr(prefix.size());
    std::string mailbox = url_decode(rest.substr(0, rest.find('/')));
    std::string tail = rest.find('/') == std::string::npos ? "" : rest.substr(rest.find('/'));
    if (calendars_.count(mailbox) == 0) {
      return graph_error(404, "ErrorInvalidUser",
                         "The requested user '" + mailbox + "' is invalid.");
    }
    // Per-mailbox throttling, as strict as Exchange Online: during the delay a 429 gave, every
    // request of the mailbox is refused with the time left.
    int64_t now = this->now();
    if (int64_t ms = busy_left(mailbox, now); ms > 0) {
      char left[32];
      std::snprintf(left, sizeof left, "%.3f", static_cast<double>(ms) / 1000.0);
      ++busy_answers_;
      return throttled(left);
    }
    ++seq_;
    auto throttle = [&] {
      start_backoff(mailbox, now, calendar::retry_after_ms(retry_after_, 0).value_or(0));
      return throttled(retry_after_);
    };
    if (!injected_.empty()) {
      Fault f = injected_.front();
      injected_.erase(injected_.begin());
      if (f == Fault::Throttle) return throttle();
      if (f == Fault::Http503) return graph_error(503, "ServiceUnavailable", "try later");
      if (f == Fault::Forbidden) return graph_error(403, "ErrorAccessDenied", "Access is denied.");
    }
    if (throttle_every_ > 0 && seq_ % throttle_every_ == 0) return throttle();
    if (unavailable_every_ > 0 && seq_ % unavailable_every_ == 1 % unavailable_every_ && seq_ > 1) {
      return graph_error(503, "ServiceUnavailable", "try later");
    }
    if (chance(p_throttle_)) return throttle();
    if (chance(p_unavailable_)) return graph_error(503, "ServiceUnavailable", "try later");
    bool lose = (lose_every_ > 0 && seq_ % lose_every_ == 2 % lose_every_) || chance(p_lose_);
    bool reset = r.reused && r.method != "GET" && chance(p_reset_);
    tools::SinkResponse out = event_request(r, mailbox, tail, query);
    if (reset && out.status < 300) {
      ++resets_;
      out.reset = true;
      return out;
    }
    if (lose && out.status < 300) return graph_error(503, "ServiceUnavailable", "try later");
    return out;
  }

  tools::SinkResponse event_request(const tools::SinkRequest& r, const std::string& mailbox,
                                    const std::string& tail, const std::string& query) {
    auto& cal = calendars_[mailbox];
    if (tail == "/events" && r.method == "POST") {
      json b = json::parse(r.body, nullptr, false);
      if (!b.is_object() || !b.contains("subject")) {
        return bad("POST event without subject (" + std::to_string(r.body.size()) + " bytes)");
      }
      std::string why;
      if (!valid_time(b.value("start", json()), why) || !valid_time(b.value("end", json()), why)) {
        return bad(why);
      }
      std::string tx = b.value("transactionId", std::string());
      if (!tx.empty()) {
        for (const auto& [id, e] : cal) {
          if (e.transaction_id == tx) return reply(201, event_view(e, false));
        }
        if (auto d = deleted_.find(mailbox + "\n" + tx); d != deleted_.end()) {
          return reply(201, event_view(d->second, false));
        }
      }
      GraphEvent e;
      e.id = "AAMkAGI1AAAt9AHjAAA" + std::to_string(++item_seq_) + "=";
      e.change_key = "ZlnW4RIAV06KYYwlrfNZvQAAL" + std::to_string(++change_seq_);
      e.transaction_id = tx;
      for (const auto& p : b.value("singleValueExtendedProperties", json::array())) {
        if (p.value("id", std::string()) == property_id_) e.key = p.value("value", std::string());
      }
      e.body = b;
      cal[e.id] = e;
      return reply(201, event_view(e, false));
    }
    if (tail.rfind("/events/", 0) == 0) {
      std::string id = url_decode(tail.substr(8));
      auto it = cal.find(id);
      if (it == cal.end()) {
        return graph_error(404, "ErrorItemNotFound",
                           "The specified object was not found in the "
                           "store.");
      }
      if (r.method == "DELETE") {
        if (!it->second.transaction_id.empty()) {
          deleted_[mailbox + "\n" + it->second.transaction_id] = it->second;
        }
        cal.erase(it);
        tools::SinkResponse x;
        x.status = 204;
        x.body = "";
        return x;
      }
      if (r.method == "PATCH") {
        json b = json::parse(r.body, nullptr, false);
        if (!b.is_object()) return bad("PATCH body is not JSON");
        std::string why;
        if (b.contains("start") && !valid_time(b["start"], why)) return bad(why);
        if (b.contains("end") && !valid_time(b["end"], why)) return bad(why);
        if (b.contains("transactionId")) return bad("transactionId is only for creation");
        for (auto& [k, v] : b.items()) it->second.body[k] = v;
        it->second.change_key = "ZlnW4RIAV06KYYwlrfNZvQAAL" + std::to_string(++change_seq_);
        return reply(200, event_view(it->second, false));
      }
      if (r.method == "GET") return reply(200, event_view(it->second, false));
    }
    if ((tail == "/events" || tail == "/calendarView") && r.method == "GET") {
      auto q = form_fields(query);
      std::string key;
      bool any_key = false;
      if (tail == "/events") {
        std::string f = q["$filter"];
        auto v = f.find("ep/value eq '");
        auto id = f.find("ep/id eq '" + property_id_ + "'");
        if (v == std::string::npos || id == std::string::npos) {
          return bad("$filter must name the property id and value: " + f);
        }
        key = f.substr(v + 13, f.find('\'', v + 13) - v - 13);
      } else {
        any_key = true;
        if (q["startDateTime"].empty() || q["endDateTime"].empty()) {
          return bad("calendarView needs startDateTime and endDateTime");
        }
      }
      json value = json::array();
      for (const auto& [id, e] : cal) {
        if (any_key) {
          std::string start = utc_of(e.body["start"]);
          if (e.key.empty() || start < q["startDateTime"].substr(0, 19) ||
              start >= q["endDateTime"].substr(0, 19)) {
            continue;
          }
        } else if (e.key != key) {
          continue;
        }
        json v = event_view(e, q["$expand"].find(property_id_) != std::string::npos);
        value.push_back(v);
      }
      return reply(200, {{"value", value}});
    }
    if (tail == "/calendar/getSchedule" && r.method == "POST") {
      json b = json::parse(r.body, nullptr, false);
      if (!b.is_object() || !b.contains("schedules")) return bad("getSchedule without schedules");
      json items = json::array();
      for (const auto& [id, e] : cal) {
        items.push_back({{"status", e.body.value("showAs", std::string("busy"))},
                         {"start", shown(e.body["start"])},
                         {"end", shown(e.body["end"])}});
      }
      return reply(200,
                   {{"value", json::array({{{"scheduleId", mailbox}, {"scheduleItems", items}}})}});
    }
    return graph_error(405, "ErrorInvalidRequest", "not simulated: " + r.method + " " + tail);
  }

  tools::HttpSink sink_;
  std::map<std::string, std::map<std::string, GraphEvent>> calendars_;
  std::map<std::string, GraphEvent> deleted_;  // by mailbox + "\n" + transactionId
  std::string client_id_ = "relais-client", secret_ = "relais-secret";
  int lifetime_s_ = 3599;
  std::set<std::string> tokens_;
  int tokens_issued_ = 0;
  std::vector<Fault> injected_;
  int throttle_every_ = 0, unavailable_every_ = 0, lose_every_ = 0;
  std::string retry_after_ = "2.128";
  std::set<std::string> zones_{"Romance Standard Time", "UTC", "W. Europe Standard Time",
                               "Europe/Paris"};
  double p_throttle_ = 0, p_unavailable_ = 0, p_lose_ = 0, p_reset_ = 0;
  long seq_ = 0, item_seq_ = 0, change_seq_ = 0;
  std::vector<std::string> violations_;
  bool prefer_utc_ = false;  // of the request being answered (guarded by mu_)
  std::string property_id_ = "String {f3a6c1d0-76cd-4c5e-9b1a-2c0d7e6f7601} Name RelaisKey";
};

}  // namespace relais::testing

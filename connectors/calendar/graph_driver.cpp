// The Microsoft Graph driver: POST /users/{mailbox}/events with a transactionId derived from
// the correlation key (a repeated create returns the existing event) and a
// singleValueExtendedProperty holding the key; PATCH for moves; DELETE for cancellations;
// calendarView / $filter on the property for searches; getSchedule for free/busy.

#include <curl/curl.h>

#include <cstdlib>

#include "connectors/calendar/calendar.h"
#include "connectors/calendar/calendar_http.h"
#include "connectors/calendar/graph_json.h"

namespace relais::calendar {
namespace {

using nlohmann::json;

// The Graph driver of one destination. Thread-safe for distinct slots: each slot owns one curl
// handle; the token cache is shared and locks itself. Owns its handles; the clock is the hub's.
class GraphDriver final : public Driver {
 public:
  GraphDriver(const ConfigView& c, const std::string& destination, int slots, const Clock& clock,
              ThrottleGate* gate)
      : destination_(destination), clock_(clock), gate_(gate, clock), handles_(slots) {
    base_ = c.str("url");
    if (base_.empty()) base_ = "https://graph.microsoft.com/v1.0";
    while (!base_.empty() && base_.back() == '/') base_.pop_back();
    token_ = token_settings(c, "https://graph.microsoft.com/.default");
    transfer_ = token_.transfer;
    time_zone_ = c.str("time_zone");
    property_id_ = "String {" + c.str("property_set_id") + "} Name " + c.str("property_name");
  }

  std::string name() const override { return "graph"; }
  Status probe() override { return probe_server(true, token_, clock_, base_, transfer_); }
  bool idempotent_create() const override { return true; }

  Result create(const Event& e, int slot) override {
    json body = event_json(e);
    body["transactionId"] = transaction_id(e.key, e.generation);
    body["singleValueExtendedProperties"] = json::array({{{"id", property_id_}, {"value", e.key}}});
    Answer a = call(slot, "POST", user_url(slot, e.mailbox) + "/events", body.dump(), e.mailbox,
                    false, Send::Once);
    if (!a.ok && a.status == 409) {
      // The transactionId is known and Graph refuses it as a duplicate: the event exists (an
      // earlier attempt made it). Find it by its key and bring it to what is asked now.
      Result f = find(e.mailbox, e.key, "", "", slot);
      int n = a.requests + f.requests;
      if (f.kind == Result::Kind::Failed) return with(f, n);
      if (f.found.empty()) return with(a.result, n);
      Result u = update(e, f.found[0].ref, kAllFields, slot);
      return with(u, n + u.requests);
    }
    if (!a.ok) return a.result;
    RemoteRef ref = graph::ref_of(a.doc);
    // A transactionId hit returns the event as an earlier attempt made it, which may be older
    // than what is asked now (a move delivered after a lost cross-reference): compare, and
    // PATCH what differs.
    unsigned stale = graph::differing_fields(a.doc, e);
    if (stale == 0 || ref.id.empty()) return with(Result::ok(ref), a);
    Result u = update(e, ref, stale, slot);
    return with(u, a.requests + u.requests);
  }

  Result update(const Event& e, const RemoteRef& ref, unsigned fields, int slot) override {
    Answer a = call(slot, "PATCH", event_url(slot, e.mailbox, ref.id), event_json(e, fields).dump(),
                    e.mailbox, true);
    if (!a.ok) return a.result;
    RemoteRef r = graph::ref_of(a.doc);
    if (r.id.empty()) r = ref;
    return with(Result::ok(r), a);
  }

  Result remove(const std::string& mailbox, const RemoteRef& ref, int slot) override {
    Answer a = call(slot, "DELETE", event_url(slot, mailbox, ref.id), "", mailbox, true);
    if (!a.ok) return a.result;
    return with(Result::ok(ref), a);
  }

  Result find(const std::string& mailbox, const std::string& key, const std::string& from,
              const std::string& to, int slot) override {
    CURL* h = handles_.at(slot);
    std::string expand =
        "&$expand=" +
        url_escape(h, "singleValueExtendedProperties($filter=id eq '" + property_id_ + "')");
    std::string select = "&$select=id,subject,start,end,changeKey";
    std::string url;
    if (!key.empty()) {
      url = user_url(slot, mailbox) + "/events?$filter=" +
            url_escape(h, "singleValueExtendedProperties/Any(ep: ep/id eq '" + property_id_ +
                              "' and ep/value eq '" + quote(key) + "')") +
            select + expand + "&$top=50";
    } else {
      url = user_url(slot, mailbox) + "/calendarView?startDateTime=" + url_escape(h, from) +
            "&endDateTime=" + url_escape(h, to) + select + expand + "&$top=100";
    }
    Result out;
    for (int page = 0; page < 1000 && !url.empty(); ++page) {
      Answer a = call(slot, "GET", url, "", mailbox);
      out.requests += a.requests;
      if (!a.ok) return with(a.result, out.requests);
      graph::EventsPage events = graph::read_events(a.doc, property_id_, key);
      if (!events.valid) return with(unexpected_answer("a search", a), out.requests);
      out.found.insert(out.found.end(), events.items.begin(), events.items.end());
      url = events.next_link;
    }
    return out;
  }

  Result free_busy(const std::string& mailbox, const std::string& from, const std::string& to,
                   int slot) override {
    json body = {{"schedules", json::array({mailbox})},
                 {"startTime", {{"dateTime", from.substr(0, 19)}, {"timeZone", "UTC"}}},
                 {"endTime", {{"dateTime", to.substr(0, 19)}, {"timeZone", "UTC"}}},
                 {"availabilityViewInterval", 30}};
    Answer a =
        call(slot, "POST", user_url(slot, mailbox) + "/calendar/getSchedule", body.dump(), mailbox);
    if (!a.ok) return a.result;
    graph::Schedule schedule = graph::read_schedule(a.doc);
    if (!schedule.valid) return with(unexpected_answer("getSchedule", a), a);
    if (schedule.failed) {
      return with(Result::failed(Outcome::reject("graph", 0,
                                                 "getSchedule could not read the schedule of "
                                                 "mailbox " +
                                                     mailbox + ": " + schedule.error)),
                  a);
    }
    Result out = with(Result::ok(), a);
    out.busy = std::move(schedule.busy);
    return out;
  }

 private:
  struct Answer {
    bool ok = false;
    long status = 0;  // the last HTTP status
    Result result;    // !ok: the failure (or NotFound)
    json doc;
    int requests = 0;
  };

  // A 2xx answer whose shape is not the one asked for (a proxy's page, a truncated list): never
  // read as "nothing found"; tried again, with the answer's start for the desk.
  static Result unexpected_answer(const std::string& what, const Answer& a) {
    Outcome o = Outcome::retry(
        "graph", static_cast<int>(a.status),
        "unexpected answer from the calendar server to " + what + ": not a list of objects");
    o.excerpt = excerpt(a.doc.dump());
    return Result::failed(o);
  }

  static Result with(Result r, const Answer& a) { return with(std::move(r), a.requests); }
  static Result with(Result r, int n) {
    r.requests = n;
    return r;
  }

  static std::string quote(const std::string& v) {
    std::string out;
    for (char c : v) {
      out.push_back(c);
      if (c == '\'') out.push_back('\'');
    }
    return out;
  }

  std::string user_url(int slot, const std::string& mailbox) {
    return base_ + "/users/" + url_escape(handles_.at(slot), mailbox);
  }
  std::string event_url(int slot, const std::string& mailbox, const std::string& id) {
    return user_url(slot, mailbox) + "/events/" + url_escape(handles_.at(slot), id);
  }

  // A time as Graph takes it: the wall clock, in the event's zone (the mapping's, else the
  // configured one), of the instant the mapping gave; in UTC when the zone is unknown here.
  json graph_time(const Event& e, const std::string& iso) const {
    // The configured (Windows) name when it is the mapping's zone under another name.
    std::string zone = e.time_zone.empty() || iana_zone(e.time_zone) == iana_zone(time_zone_)
                           ? time_zone_
                           : e.time_zone;
    std::string wall;
    if (wall_clock_in(iso, iana_zone(zone), wall)) return {{"dateTime", wall}, {"timeZone", zone}};
    std::string utc;
    to_utc(iso, utc);
    return {{"dateTime", utc.substr(0, 19)}, {"timeZone", "UTC"}};
  }

  // The event's `fields` (FieldBits) as Graph JSON.
  json event_json(const Event& e, unsigned fields = kAllFields) const {
    json j = json::object();
    if (fields & kSubject) j["subject"] = e.subject;
    if (fields & kBody) j["body"] = {{"contentType", "text"}, {"content", e.body}};
    if (fields & kStart) j["start"] = graph_time(e, e.start);
    if (fields & kEnd) j["end"] = graph_time(e, e.end);
    if (fields & kLocation) j["location"] = {{"displayName", e.location}};
    if (fields & kCategories) j["categories"] = e.categories;
    if (fields & kReminder) {
      j["isReminderOn"] = e.reminder_minutes >= 0;
      if (e.reminder_minutes >= 0) j["reminderMinutesBeforeStart"] = e.reminder_minutes;
    }
    if (fields & kShowAs) j["showAs"] = e.show_as;
    return j;
  }

  // One request with a bearer token (refreshed once on a 401). `on_item`: a 404 means the event
  // is gone (NotFound) unless Graph says the mailbox is the problem.
  // `send`: Send::Once for a create (see set_request); searches, updates and deletes may go twice.
  Answer call(int slot, const std::string& method, const std::string& url, const std::string& body,
              const std::string& mailbox, bool on_item = false, Send send = Send::Idempotent) {
    Answer a;
    if (std::optional<Outcome> paused = gate_.closed(mailbox)) {
      a.result = Result::failed(*paused);
      return a;
    }
    for (int pass = 0; pass < 2; ++pass) {
      TokenResult t = shared_token_cache().get(token_, clock_, pass > 0);
      if (!t.ok) {
        a.result = Result::failed(t.failure);
        return a;
      }
      HttpAuth auth;
      auth.mode = HttpAuth::Mode::Bearer;
      auth.bearer = t.token;
      std::vector<std::string> headers{"Accept: application/json",
                                       "Prefer: outlook.timezone=\"UTC\""};
      if (!body.empty()) headers.push_back("Content-Type: application/json");
      HttpAnswer h =
          http_exchange(handles_.at(slot), method, url, headers, body, transfer_, auth, send);
      ++a.requests;
      a.status = h.status;
      if (h.rc != CURLE_OK) {
        a.result = Result::failed(network_failure(h, "Microsoft Graph"));
        return a;
      }
      json doc = json::parse(h.body, nullptr, false);
      if (h.status >= 200 && h.status < 300) {
        a.ok = true;
        a.doc = doc.is_discarded() ? json::object() : doc;
        return a;
      }
      graph::Error error = graph::read_error(doc);
      const std::string& code = error.code;
      const std::string& message = error.message;
      std::string what = method + " answered HTTP " + std::to_string(h.status) +
                         (code.empty() ? std::string() : " " + code);
      if (h.status == 401 && pass == 0) {
        shared_token_cache().invalidate(token_);
        continue;
      }
      Outcome o;
      if (h.status == 401) {
        o = Outcome::reject("config", 401,
                            what + " for mailbox " + mailbox +
                                " even with a fresh token: check that the app registration has "
                                "the Calendars.ReadWrite application permission with admin "
                                "consent, in the right tenant");
      } else if (h.status == 403) {
        o = Outcome::reject("config", 403,
                            what + " for mailbox " + mailbox +
                                ": the application may not write this calendar; grant "
                                "Calendars.ReadWrite (application) with admin consent and check "
                                "that no application access policy excludes this mailbox");
      } else if (h.status == 404 && on_item && code != "ErrorInvalidUser" &&
                 code != "MailboxNotEnabledForRESTAPI" && code != "ResourceNotFound") {
        a.result = Result::not_found();
        return a;
      } else if (h.status == 404) {
        o = Outcome::reject("config", 404,
                            what + " for mailbox " + mailbox +
                                ": the mailbox does not exist in Exchange Online or is not "
                                "enabled for Graph (an on-premises mailbox needs the ews driver); "
                                "correct the professional's address in CMS76");
      } else if (h.status == 429 ||
                 (h.status == 503 && retry_after_ms(h.header("retry-after"), clock_.now_ms()))) {
        // Graph throttles per mailbox (and per app and tenant): every slot waits for the
        // time asked before sending anything more for this mailbox.
        o = gate_.pause(mailbox, static_cast<int>(h.status), what + " (throttled)",
                        retry_after_ms(h.header("retry-after"), clock_.now_ms()));
      } else if (h.status == 408 || h.status >= 500 || h.status == 409 || h.status == 412) {
        std::optional<int64_t> after = retry_after_ms(h.header("retry-after"), clock_.now_ms());
        o = Outcome::retry(
            "http", static_cast<int>(h.status),
            what + (h.status == 429 ? " (throttled)" : "") + ": will try again" +
                (after ? " after " + std::to_string((*after + 999) / 1000) + " s" : std::string()),
            after);
      } else {
        o = Outcome::reject("graph", static_cast<int>(h.status),
                            what + " for mailbox " + mailbox +
                                (message.empty() ? std::string() : " (" + message + ")") +
                                ": the request was refused");
      }
      o.excerpt = excerpt(h.body);
      a.result = Result::failed(o);
      return a;
    }
    return a;
  }

  std::string destination_;
  const Clock& clock_;
  MailboxGate gate_;
  CurlHandles handles_;
  std::string base_;
  TokenSettings token_;
  CurlTransfer transfer_;
  std::string time_zone_;
  std::string property_id_;
};

}  // namespace

std::unique_ptr<Driver> make_graph_driver(const ConfigView& c, const std::string& destination,
                                          int slots, const Clock& clock, ThrottleGate* gate) {
  return std::make_unique<GraphDriver>(c, destination, slots, clock, gate);
}

}  // namespace relais::calendar

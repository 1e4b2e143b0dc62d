// Reading Microsoft Graph's answers without trusting their shape: see graph_json.h.

#include "connectors/calendar/graph_json.h"

#include <cctype>

#include "connectors/calendar/calendar_http.h"

namespace relais::calendar::graph {

using nlohmann::json;

namespace {

// The member `key` of an object, or null (absent, or `j` not an object).
const json& member(const json& j, const char* key) {
  static const json null_value;
  if (!j.is_object()) return null_value;
  auto it = j.find(key);
  return it == j.end() ? null_value : *it;
}

// Whether `key` holds a list of objects.
bool list_of_objects(const json& j, const char* key) {
  const json& v = member(j, key);
  if (!v.is_array()) return false;
  for (const json& e : v) {
    if (!e.is_object()) return false;
  }
  return true;
}

// The array at `key`, or an empty one.
const json& array_at(const json& j, const char* key) {
  static const json empty = json::array();
  const json& v = member(j, key);
  return v.is_array() ? v : empty;
}

bool same_text_ignoring_case(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string text(const json& j, const char* key) {
  const json& v = member(j, key);
  return v.is_string() ? v.get<std::string>() : std::string();
}

std::string utc(const json& t) {
  if (!t.is_object()) return {};
  std::string s = text(t, "dateTime");
  std::string zone = member(t, "timeZone").is_string() ? text(t, "timeZone") : "UTC";
  std::string out;
  if (utc_from_wall(s, zone, out)) return out;
  if (s.size() > 19) s = s.substr(0, 19);
  return s.empty() ? s : s + "Z";
}

RemoteRef ref_of(const json& event) {
  return RemoteRef{text(event, "id"), text(event, "changeKey")};
}

EventsPage read_events(const json& doc, const std::string& property_id, const std::string& key) {
  EventsPage page;
  page.valid = list_of_objects(doc, "value");
  if (!page.valid) return page;
  for (const json& ev : array_at(doc, "value")) {
    RemoteEvent r;
    r.ref = ref_of(ev);
    r.subject = text(ev, "subject");
    r.start = utc(member(ev, "start"));
    r.end = utc(member(ev, "end"));
    for (const json& p : array_at(ev, "singleValueExtendedProperties")) {
      if (same_text_ignoring_case(text(p, "id"), property_id)) r.key = text(p, "value");
    }
    if (r.key.empty() || (!key.empty() && r.key != key)) continue;
    page.items.push_back(std::move(r));
  }
  page.next_link = text(doc, "@odata.nextLink");
  return page;
}

Schedule read_schedule(const json& doc) {
  Schedule out;
  out.valid = list_of_objects(doc, "value");
  if (!out.valid) return out;
  for (const json& s : array_at(doc, "value")) {
    const json& error = member(s, "error");
    if (error.is_object()) {
      out.failed = true;
      out.error = text(error, "responseCode");
      if (out.error.empty()) out.error = "error";
      out.busy.clear();
      return out;
    }
    for (const json& item : array_at(s, "scheduleItems")) {
      std::string status = member(item, "status").is_string() ? text(item, "status") : "busy";
      if (status == "free") continue;
      out.busy.push_back(BusyPeriod{utc(member(item, "start")), utc(member(item, "end")), status});
    }
  }
  return out;
}

Error read_error(const json& doc) {
  const json& e = member(doc, "error");
  return Error{text(e, "code"), text(e, "message")};
}

unsigned differing_fields(const json& got, const Event& e) {
  if (!got.is_object()) return 0;
  unsigned d = 0;
  if (text(got, "subject") != e.subject) d |= kSubject;
  const json& body = member(got, "body");
  if (text(body, "contentType") == "text" && text(body, "content") != e.body) d |= kBody;
  std::string start, end;
  to_utc(e.start, start);
  to_utc(e.end, end);
  if (utc(member(got, "start")) != start) d |= kStart;
  if (utc(member(got, "end")) != end) d |= kEnd;
  if (text(member(got, "location"), "displayName") != e.location) d |= kLocation;
  std::vector<std::string> cats;
  for (const json& c : array_at(got, "categories")) {
    if (c.is_string()) cats.push_back(c.get<std::string>());
  }
  if (cats != e.categories) d |= kCategories;
  const json& on_value = member(got, "isReminderOn");
  bool on = on_value.is_boolean() && on_value.get<bool>();
  const json& minutes = member(got, "reminderMinutesBeforeStart");
  bool same_minutes = minutes.is_number_integer() && minutes.get<int64_t>() == e.reminder_minutes;
  if (on != (e.reminder_minutes >= 0) || (on && !same_minutes)) d |= kReminder;
  const json& show_as = member(got, "showAs");
  if (show_as.is_string() && show_as.get<std::string>() != e.show_as) d |= kShowAs;
  return d;
}

}  // namespace relais::calendar::graph

#pragma once
// Reading Microsoft Graph's answers: events, pages, schedules, errors, an event compared with
// what Relais wants. Every reader takes any JSON (an answer may be broken, truncated or
// hostile) and never throws: a field of the wrong type reads as absent. Stateless and
// thread-safe. Fuzzed by tests/fuzz/fuzz_calendar.cpp.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "connectors/calendar/calendar.h"

namespace relais::calendar::graph {

// The string at `key` of an object, "" when absent or not a string.
std::string text(const nlohmann::json& j, const char* key);
// A Graph time ({"dateTime": "2019-05-17T08:00:00.0000000", "timeZone": "UTC"}) in UTC ISO 8601;
// a time in another zone is read in that zone; "" when it is not a time.
std::string utc(const nlohmann::json& t);
// The id and changeKey of an event.
RemoteRef ref_of(const nlohmann::json& event);

// One page of events (valid: the answer is an object whose "value" is a list of objects; a
// broken answer must not read as "no event"): those carrying the extended property `property_id`
// (compared without case: Graph may answer it in another case) whose value is `key` (any value when
// `key` is empty), and the next page's link ("" on the last page).
struct EventsPage {
  bool valid = false;
  std::vector<RemoteEvent> items;
  std::string next_link;
};
EventsPage read_events(const nlohmann::json& doc, const std::string& property_id,
                       const std::string& key);

// A getSchedule answer (valid: "value" is a list of objects): the busy periods (free ones left
// out), or the error Graph gave for the schedule (its responseCode) in `error`.
struct Schedule {
  bool valid = false;
  std::vector<BusyPeriod> busy;
  bool failed = false;
  std::string error;
};
Schedule read_schedule(const nlohmann::json& doc);

// The "error" object of a refusal: its code and message ("" when absent).
struct Error {
  std::string code;
  std::string message;
};
Error read_error(const nlohmann::json& doc);

// The fields (FieldBits) of the event Graph answered that differ from `e`. Times are compared
// as instants (answers are in UTC: Prefer outlook.timezone); the body only when Graph gives it
// back as text. 0 when `got` is not an event.
unsigned differing_fields(const nlohmann::json& got, const Event& e);

}  // namespace relais::calendar::graph

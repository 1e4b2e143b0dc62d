#pragma once
// The EWS requests of the calendar driver, built with pugixml in the order of Microsoft's schema
// (types.xsd / messages.xsd), and small helpers to read answers by local name. Stateless and
// thread-safe. Every request built here is validated against the schema by a ctest
// (tests/calendar).

#include <cstdint>
#include <string>
#include <vector>

#include <pugixml.hpp>

#include "connectors/calendar/calendar.h"

namespace relais::calendar::ews {

inline constexpr const char* kSoapNs = "http://schemas.xmlsoap.org/soap/envelope/";
inline constexpr const char* kTypesNs = "http://schemas.microsoft.com/exchange/services/2006/types";
inline constexpr const char* kMessagesNs =
    "http://schemas.microsoft.com/exchange/services/2006/messages";

struct Options {
  std::string server_version = "Exchange2013_SP1";
  std::string time_zone = "Romance Standard Time";
  std::string property_set_id = "f3a6c1d0-76cd-4c5e-9b1a-2c0d7e6f7601";
  std::string property_name = "RelaisKey";
  std::string conflict_resolution = "AlwaysOverwrite";
  bool impersonation = true;  // ExchangeImpersonation header; else DistinguishedFolderId/Mailbox
};

std::string create_item(const Options& o, const Event& e);
// SetItemField for the `fields` (FieldBits) of the event, on the item `ref` (Id and ChangeKey).
std::string update_item(const Options& o, const Event& e, const RemoteRef& ref,
                        unsigned fields = kAllFields);
std::string delete_item(const Options& o, const std::string& mailbox, const std::string& id);
std::string get_item(const Options& o, const std::string& mailbox, const std::string& id);
// The calendar items whose extended property equals `key`; with an empty key, those carrying
// the property whose start is in [from_utc, to_utc). One page of at most `max` from `offset`.
std::string find_item(const Options& o, const std::string& mailbox, const std::string& key,
                      const std::string& from_utc, const std::string& to_utc, int offset, int max);
std::string get_user_availability(const Options& o, const std::string& mailbox,
                                  const std::string& from_utc, const std::string& to_utc);

// What one EWS answer says, read down to its first response message (or its SOAP Fault).
// Owns the parsed document; `message` points into it.
struct Answer {
  std::string code;  // NoError, an Error* response code, the fault's code, or "" (none found)
  std::string text;  // MessageText or faultstring
  int64_t backoff_ms = -1;  // BackOffMilliseconds of an ErrorServerBusy, -1 when absent
  pugi::xml_document doc;
  pugi::xml_node message;  // the element carrying ResponseClass (or the Fault)
};
// Parses an answer's body; false when it is not XML (then `out` is left without a code).
bool read_answer(const std::string& body, Answer& out);
// The first ItemId under `n` (Id and ChangeKey), empty when there is none.
RemoteRef item_id(pugi::xml_node n);
// One FindItem page (valid: it has a RootFolder; a broken answer must not read as "no item"):
// the items (those whose key is `key`, every one when `key` is empty), how
// many items the page held, and whether it was the last.
struct FoundPage {
  bool valid = false;
  std::vector<RemoteEvent> items;
  int count = 0;
  bool last = true;
};
FoundPage read_found_items(pugi::xml_node message, const std::string& key);
// The busy periods of a GetUserAvailability answer (Free and NoData left out), in UTC.
std::vector<BusyPeriod> read_free_busy(pugi::xml_node message);

// "t:Subject" → "Subject".
std::string local(const std::string& name);
// The first child element with this local name (any prefix).
pugi::xml_node child(pugi::xml_node n, const char* local_name);
std::string trim(const std::string& s);

}  // namespace relais::calendar::ews

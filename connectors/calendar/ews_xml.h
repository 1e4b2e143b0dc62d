#pragma once
// The EWS requests of the calendar driver, built with pugixml in the order of Microsoft's schema
// (types.xsd / messages.xsd), and small helpers to read answers by local name. Stateless and
// thread-safe. Every request built here is validated against the schema by a ctest
// (tests/calendar).

#include <string>

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

// "t:Subject" → "Subject".
std::string local(const std::string& name);
// The first child element with this local name (any prefix).
pugi::xml_node child(pugi::xml_node n, const char* local_name);
std::string trim(const std::string& s);

}  // namespace relais::calendar::ews

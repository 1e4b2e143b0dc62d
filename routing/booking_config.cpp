// The declared spec of the `booking:` section (read by connectors/booking/booking.cpp).

#include "routing/booking_config.h"

namespace relais {
namespace {

using F = FieldType;

const ConfigSpec& professional_spec() {
  static const ConfigSpec s{
      "booking professional",
      {
          {"id", F::String, "", true,
           "the professional's id in CMS76 (sent with the RDV; shown to the portal)"},
          {"mailbox", F::String, "", true,
           "the professional's Outlook mailbox (SMTP address) whose free/busy is read"},
      }};
  return s;
}

const ConfigSpec& offer_spec() {
  static const ConfigSpec s{
      "booking offer",
      {
          {"cms", F::String, "", true, "the CMS code the portal asks for (cms=)"},
          {"motif", F::String, "", true, "the RDV motif code the portal asks for (motif=)"},
          {"slot",
           F::Duration,
           "30m",
           false,
           "length of one slot",
           {},
           nullptr,
           5 * 60000.0,
           8 * 3600000.0},
          {"days", F::StringList, "mon,tue,wed,thu,fri", false,
           "opening weekdays: mon tue wed thu fri sat sun"},
          {"hours", F::StringList, "09:00-12:00,13:30-17:00", false,
           "opening hours of each open day, local time (booking.time_zone), as HH:MM-HH:MM; "
           "slots start at each range's opening and end before its close"},
          {"public_holidays", F::Bool, "true", false,
           "closed on the French public holidays (connectors/sms/sending_window.h)"},
          {"closed_dates", F::StringList, "", false, "other closed dates (YYYY-MM-DD)"},
          {"professionals",
           F::ObjectList,
           "",
           true,
           "who receives this motif",
           {},
           &professional_spec()},
      }};
  return s;
}

}  // namespace

const ConfigSpec& booking_spec() {
  static const ConfigSpec s{
      "booking",
      {
          {"calendar", F::String, "", true,
           "the calendar destination (connector calendar) whose free/busy is read"},
          {"cms76", F::String, "", true,
           "the http destination of CMS76's RDV API: booking POSTs the RDV to its url, with its "
           "headers, authentication and transfer options, synchronously (not through the queue)"},
          {"time_zone", F::String, "Europe/Paris", false, "the zone of the opening hours"},
          {"cache_ttl",
           F::Duration,
           "60s",
           false,
           "how long a professional's free/busy answer is reused for slot lists (0 = never); a "
           "booking drops it",
           {},
           nullptr,
           0,
           3600000.0},
          {"timeout",
           F::Duration,
           "10s",
           false,
           "deadline of one slot list's free/busy reads; past it the answer is 503",
           {},
           nullptr,
           100.0,
           120000.0},
          {"parallel",
           F::Int,
           "8",
           false,
           "free/busy reads in flight for one slot list",
           {},
           nullptr,
           1,
           64},
          {"max_days",
           F::Int,
           "62",
           false,
           "the longest from–to period a slot list may ask for",
           {},
           nullptr,
           1,
           366},
          {"claim_ttl",
           F::Duration,
           "7d",
           false,
           "how long a booked slot's claim (cross-reference, destination \"booking\") refuses "
           "that slot to another booking, whatever the calendar says; after it the calendar "
           "decides",
           {},
           nullptr,
           60000.0,
           366 * 86400000.0},
          {"offers",
           F::ObjectList,
           "",
           true,
           "what can be booked: one entry per CMS and motif",
           {},
           &offer_spec()},
      }};
  return s;
}

}  // namespace relais

// When an SMS may be sent: French public holidays, and the sending window (opening hours in a
// time zone, closed weekdays and dates) that moves a due time to the next opening or skips
// the SMS when that opening would come at or after the appointment it is about.
#pragma once

#include <compare>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"

namespace relais::mappings {
class TimeZone;
}

namespace relais::sms {

struct LocalDate {
  int year = 1970;
  unsigned month = 1;  // 1-12
  unsigned day = 1;    // 1-31
  auto operator<=>(const LocalDate&) const = default;
};
// "2026-04-06".
std::string to_string(const LocalDate& d);

// Easter Sunday of a Gregorian year (anonymous Gregorian algorithm, a.k.a. Meeus/Jones/Butcher).
LocalDate easter_sunday(int year);

struct PublicHoliday {
  LocalDate date;
  std::string name;  // French, e.g. "Lundi de Pentecôte"
};
// The 11 French public holidays of a year, in date order: 1 Jan, Easter Monday, 1 May, 8 May,
// Ascension Thursday, Whit Monday, 14 Jul, 15 Aug, 1 Nov, 11 Nov, 25 Dec. (Alsace-Moselle's
// Good Friday and 26 Dec, and the overseas abolition days, are not included: configure them
// as extra closed dates.)
std::vector<PublicHoliday> french_public_holidays(int year);
// The holiday's name when the date is one, else nullopt.
std::optional<std::string> french_public_holiday(const LocalDate& d);

struct SendingWindowConfig {
  std::string time_zone = "Europe/Paris";
  // Opening hours as minutes since local midnight: [open, close). 0 <= open < close <= 1440.
  int open_minute = 8 * 60;
  int close_minute = 20 * 60;
  // Weekdays with no sending, 0 = Sunday .. 6 = Saturday.
  std::vector<unsigned> closed_weekdays = {0};
  bool closed_on_public_holidays = true;  // the French public holidays above
  std::vector<LocalDate> extra_closed_dates;
};

// The outcome of scheduling one SMS through the window.
struct WindowDecision {
  bool skip = false;
  Millis send_at = 0;  // when not skipped: the first instant inside the window at or after due
  std::string reason;  // when skipped: why (French, shown to support)
};

// A sending window: opening hours in a time zone (DST-correct through mappings::TimeZone),
// closed weekdays, French public holidays and extra closed dates.
//
// Responsibility: pure time arithmetic - the next opening at or after a due time, skip
// decisions against an appointment start, reminder due times. It does not queue or send.
// Thread-safety: immutable after construction; all members are const and safe to call
// concurrently. Ownership: holds a shared reference to the process-wide cached TimeZone.
class SendingWindow {
 public:
  // Throws std::invalid_argument for an unknown time zone, hours out of range or open >=
  // close, a weekday > 6, or every weekday closed.
  explicit SendingWindow(SendingWindowConfig config = {});

  const SendingWindowConfig& config() const { return config_; }

  // True when the local date is closed all day (closed weekday, holiday or extra date).
  bool is_closed_day(const LocalDate& d) const;
  // True when t (UTC ms) is inside the window.
  bool is_open(Millis t) const;
  // due itself when inside the window, else the next opening (UTC ms).
  Millis next_opening(Millis due) const;

  // next_opening(due), or a skip when that instant is at or after rdv_start: "l'ouverture
  // suivante tombe après le rendez-vous (...)" when the window delayed it, "l'heure d'envoi
  // tombe après le début du rendez-vous (...)" when due itself is already too late.
  WindowDecision schedule(Millis due, std::optional<Millis> rdv_start = std::nullopt) const;

  // When the reminder of an appointment is due: rdv_start - offset. An offset that is a whole
  // number of days is applied on the local calendar ("the day before at the same time"), so
  // across a DST change the 24 h default gives the same wall-clock time, as the mapping's
  // add_days() does; any other offset is elapsed time. Throws std::invalid_argument when
  // offset < 0.
  Millis reminder_due(Millis rdv_start, Millis offset = 24 * 3600 * 1000LL) const;

  // "2026-04-07 08:00 Europe/Paris" (local wall clock), for reasons and logs.
  std::string format_local(Millis t) const;

 private:
  SendingWindowConfig config_;
  std::shared_ptr<const mappings::TimeZone> tz_;
  bool closed_weekday_[7] = {};
};

}  // namespace relais::sms

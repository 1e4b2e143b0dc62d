// French public holidays and the SMS sending window (Europe/Paris, DST-correct).
#include "connectors/sms/sending_window.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <stdexcept>

namespace relais::sms {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

Millis at(const char* rfc3339) {
  Millis t = 0;
  EXPECT_TRUE(parse_rfc3339(rfc3339, t)) << rfc3339;
  return t;
}

constexpr Millis kHour = 3600 * 1000LL;

TEST(Holidays, EasterSunday) {
  EXPECT_EQ(easter_sunday(2024), (LocalDate{2024, 3, 31}));
  EXPECT_EQ(easter_sunday(2025), (LocalDate{2025, 4, 20}));
  EXPECT_EQ(easter_sunday(2026), (LocalDate{2026, 4, 5}));
  EXPECT_EQ(easter_sunday(2000), (LocalDate{2000, 4, 23}));
  EXPECT_EQ(easter_sunday(2008), (LocalDate{2008, 3, 23}));
  EXPECT_EQ(easter_sunday(2011), (LocalDate{2011, 4, 24}));
  EXPECT_EQ(easter_sunday(2019), (LocalDate{2019, 4, 21}));
  EXPECT_EQ(easter_sunday(2038), (LocalDate{2038, 4, 25}));  // latest possible
  EXPECT_EQ(easter_sunday(2285), (LocalDate{2285, 3, 22}));  // earliest possible
}

std::vector<std::string> dates(int year) {
  std::vector<std::string> out;
  for (const PublicHoliday& h : french_public_holidays(year)) out.push_back(to_string(h.date));
  return out;
}

TEST(Holidays, Every2024To2026Holiday) {
  EXPECT_EQ(dates(2024),
            (std::vector<std::string>{"2024-01-01", "2024-04-01", "2024-05-01", "2024-05-08",
                                      "2024-05-09", "2024-05-20", "2024-07-14", "2024-08-15",
                                      "2024-11-01", "2024-11-11", "2024-12-25"}));
  EXPECT_EQ(dates(2025),
            (std::vector<std::string>{"2025-01-01", "2025-04-21", "2025-05-01", "2025-05-08",
                                      "2025-05-29", "2025-06-09", "2025-07-14", "2025-08-15",
                                      "2025-11-01", "2025-11-11", "2025-12-25"}));
  EXPECT_EQ(dates(2026),
            (std::vector<std::string>{"2026-01-01", "2026-04-06", "2026-05-01", "2026-05-08",
                                      "2026-05-14", "2026-05-25", "2026-07-14", "2026-08-15",
                                      "2026-11-01", "2026-11-11", "2026-12-25"}));
}

TEST(Holidays, NamesAndNonHolidays) {
  EXPECT_EQ(french_public_holiday({2026, 5, 25}), "Lundi de Pentecôte");
  EXPECT_EQ(french_public_holiday({2025, 4, 21}), "Lundi de Pâques");
  EXPECT_EQ(french_public_holiday({2024, 5, 9}), "Ascension");
  EXPECT_EQ(french_public_holiday({2026, 7, 14}), "Fête nationale");
  EXPECT_EQ(french_public_holiday({2026, 4, 5}), std::nullopt);  // Easter Sunday itself
  EXPECT_EQ(french_public_holiday({2026, 12, 26}), std::nullopt);
  EXPECT_EQ(french_public_holiday({2026, 5, 15}), std::nullopt);
  // 2008: Ascension on 1 May - both listed, still in date order.
  const auto h = french_public_holidays(2008);
  ASSERT_EQ(h.size(), 11u);
  EXPECT_EQ(h[2].date, (LocalDate{2008, 5, 1}));
  EXPECT_EQ(h[3].date, (LocalDate{2008, 5, 1}));
  EXPECT_TRUE(std::is_sorted(h.begin(), h.end(), [](auto& a, auto& b) { return a.date < b.date; }));
}

TEST(SendingWindow, InsideTheWindowIsDueItself) {
  SendingWindow w;
  const Millis t = at("2026-06-02T12:34:56.789+02:00");  // Tuesday
  EXPECT_TRUE(w.is_open(t));
  EXPECT_EQ(w.next_opening(t), t);
  EXPECT_EQ(w.next_opening(at("2026-06-02T08:00:00+02:00")), at("2026-06-02T08:00:00+02:00"));
  EXPECT_EQ(w.next_opening(at("2026-06-02T19:59:59.999+02:00")),
            at("2026-06-02T19:59:59.999+02:00"));
}

TEST(SendingWindow, MorningEdge) {
  SendingWindow w;
  EXPECT_FALSE(w.is_open(at("2026-06-02T07:59:00+02:00")));
  EXPECT_EQ(w.next_opening(at("2026-06-02T07:59:00+02:00")), at("2026-06-02T08:00:00+02:00"));
  EXPECT_EQ(w.next_opening(at("2026-06-02T07:59:59.999+02:00")), at("2026-06-02T08:00:00+02:00"));
  EXPECT_EQ(w.next_opening(at("2026-06-02T00:00:00+02:00")), at("2026-06-02T08:00:00+02:00"));
  // Winter (CET): 08:00 Paris is 07:00 UTC.
  EXPECT_EQ(w.next_opening(at("2026-01-13T06:59:00Z")), at("2026-01-13T07:00:00Z"));
}

TEST(SendingWindow, EveningEdge) {
  SendingWindow w;
  EXPECT_FALSE(w.is_open(at("2026-06-02T20:00:00+02:00")));
  EXPECT_EQ(w.next_opening(at("2026-06-02T20:00:00+02:00")), at("2026-06-03T08:00:00+02:00"));
  EXPECT_EQ(w.next_opening(at("2026-06-02T23:59:59+02:00")), at("2026-06-03T08:00:00+02:00"));
}

TEST(SendingWindow, SaturdayEveningWaitsForMonday) {
  SendingWindow w;
  EXPECT_TRUE(w.is_open(at("2026-06-06T10:00:00+02:00")));  // Saturday is open
  EXPECT_EQ(w.next_opening(at("2026-06-06T21:00:00+02:00")), at("2026-06-08T08:00:00+02:00"));
  EXPECT_FALSE(w.is_open(at("2026-06-07T12:00:00+02:00")));  // Sunday
  EXPECT_EQ(w.next_opening(at("2026-06-07T12:00:00+02:00")), at("2026-06-08T08:00:00+02:00"));
}

TEST(SendingWindow, EveningBeforeAHoliday) {
  SendingWindow w;
  // Ascension (Thursday 14 May 2026) -> Friday.
  EXPECT_EQ(w.next_opening(at("2026-05-13T20:30:00+02:00")), at("2026-05-15T08:00:00+02:00"));
  EXPECT_FALSE(w.is_open(at("2026-05-14T10:00:00+02:00")));
  // 14 July (Tuesday).
  EXPECT_EQ(w.next_opening(at("2026-07-13T21:00:00+02:00")), at("2026-07-15T08:00:00+02:00"));
  // Christmas Friday -> Saturday 26 (CET).
  EXPECT_EQ(w.next_opening(at("2026-12-24T20:00:00+01:00")), at("2026-12-26T08:00:00+01:00"));
  // New Year's Eve -> 1 Jan 2027 (Friday) closed -> Saturday 2 Jan.
  EXPECT_EQ(w.next_opening(at("2026-12-31T20:00:00+01:00")), at("2027-01-02T08:00:00+01:00"));
  // Easter weekend: Saturday night -> Sunday, Easter Monday closed -> Tuesday.
  EXPECT_EQ(w.next_opening(at("2026-04-04T21:00:00+02:00")), at("2026-04-07T08:00:00+02:00"));
  // Whit weekend.
  EXPECT_EQ(w.next_opening(at("2026-05-23T21:00:00+02:00")), at("2026-05-26T08:00:00+02:00"));
  // Without holidays, Ascension is an ordinary Thursday.
  SendingWindowConfig c;
  c.closed_on_public_holidays = false;
  EXPECT_EQ(SendingWindow(c).next_opening(at("2026-05-13T20:30:00+02:00")),
            at("2026-05-14T08:00:00+02:00"));
}

TEST(SendingWindow, AcrossTheSpringDstChange) {
  SendingWindow w;
  // Saturday 28 March 2026 21:00 CET -> Monday 30 March 08:00 CEST (06:00 UTC).
  EXPECT_EQ(w.next_opening(at("2026-03-28T20:00:00Z")), at("2026-03-30T06:00:00Z"));
  // With Sundays open: the DST Sunday opens at 08:00 CEST = 06:00 UTC.
  SendingWindowConfig c;
  c.closed_weekdays = {};
  SendingWindow open_sundays(c);
  EXPECT_EQ(open_sundays.next_opening(at("2026-03-28T19:30:00Z")), at("2026-03-29T06:00:00Z"));
  EXPECT_EQ(open_sundays.next_opening(at("2026-03-29T00:30:00Z")), at("2026-03-29T06:00:00Z"));
  EXPECT_FALSE(open_sundays.is_open(at("2026-03-29T05:59:00Z")));  // 07:59 CEST
  EXPECT_TRUE(open_sundays.is_open(at("2026-03-29T06:00:00Z")));
  EXPECT_TRUE(open_sundays.is_open(at("2026-03-29T17:59:00Z")));  // 19:59 CEST
  EXPECT_FALSE(open_sundays.is_open(at("2026-03-29T18:00:00Z")));
  // The day before: 08:00 CET = 07:00 UTC.
  EXPECT_FALSE(open_sundays.is_open(at("2026-03-28T06:30:00Z")));
  EXPECT_TRUE(open_sundays.is_open(at("2026-03-28T07:00:00Z")));
}

TEST(SendingWindow, AcrossTheAutumnDstChange) {
  SendingWindow w;
  // Saturday 24 October 2026 21:00 CEST -> Monday 26 October 08:00 CET (07:00 UTC).
  EXPECT_EQ(w.next_opening(at("2026-10-24T19:00:00Z")), at("2026-10-26T07:00:00Z"));
  SendingWindowConfig c;
  c.closed_weekdays = {};
  SendingWindow open_sundays(c);
  EXPECT_EQ(open_sundays.next_opening(at("2026-10-24T18:30:00Z")), at("2026-10-25T07:00:00Z"));
  EXPECT_EQ(open_sundays.next_opening(at("2026-10-25T01:30:00Z")), at("2026-10-25T07:00:00Z"));
  EXPECT_FALSE(open_sundays.is_open(at("2026-10-25T06:59:00Z")));
  EXPECT_TRUE(open_sundays.is_open(at("2026-10-25T07:00:00Z")));
  EXPECT_TRUE(open_sundays.is_open(at("2026-10-25T18:59:00Z")));  // 19:59 CET
  EXPECT_FALSE(open_sundays.is_open(at("2026-10-25T19:00:00Z")));
}

TEST(SendingWindow, ConfigurableHoursDaysAndDates) {
  SendingWindowConfig c;
  c.open_minute = 9 * 60 + 30;
  c.close_minute = 18 * 60;
  c.closed_weekdays = {0, 6};  // weekends
  c.extra_closed_dates = {{2026, 6, 3}};
  SendingWindow w(c);
  EXPECT_EQ(w.next_opening(at("2026-06-02T09:29:00+02:00")), at("2026-06-02T09:30:00+02:00"));
  EXPECT_TRUE(w.is_open(at("2026-06-02T17:59:00+02:00")));
  // Tuesday 18:00 -> Wednesday closed (extra date) -> Thursday 09:30.
  EXPECT_EQ(w.next_opening(at("2026-06-02T18:00:00+02:00")), at("2026-06-04T09:30:00+02:00"));
  // Friday evening -> Monday.
  EXPECT_EQ(w.next_opening(at("2026-06-05T18:00:00+02:00")), at("2026-06-08T09:30:00+02:00"));
  EXPECT_TRUE(w.is_closed_day({2026, 6, 3}));
  EXPECT_TRUE(w.is_closed_day({2026, 6, 6}));
  EXPECT_FALSE(w.is_closed_day({2026, 6, 4}));
  // Other zone: Cayenne (UTC-3, no DST).
  SendingWindowConfig g;
  g.time_zone = "America/Cayenne";
  EXPECT_EQ(SendingWindow(g).next_opening(at("2026-06-02T10:00:00Z")), at("2026-06-02T11:00:00Z"));
}

TEST(SendingWindow, RejectsInvalidConfigurations) {
  SendingWindowConfig c;
  c.time_zone = "Europe/Nowhere";
  EXPECT_THROW(SendingWindow{c}, std::invalid_argument);
  c = {};
  c.open_minute = 20 * 60;
  c.close_minute = 8 * 60;
  EXPECT_THROW(SendingWindow{c}, std::invalid_argument);
  c = {};
  c.close_minute = 24 * 60 + 1;
  EXPECT_THROW(SendingWindow{c}, std::invalid_argument);
  c = {};
  c.closed_weekdays = {7};
  EXPECT_THROW(SendingWindow{c}, std::invalid_argument);
  c = {};
  c.closed_weekdays = {0, 1, 2, 3, 4, 5, 6};
  EXPECT_THROW(SendingWindow{c}, std::invalid_argument);
  c = {};
  c.open_minute = 0;
  c.close_minute = 24 * 60;
  EXPECT_NO_THROW(SendingWindow{c});
}

TEST(SendingWindow, SendsWhenTheNextOpeningIsBeforeTheRdv) {
  SendingWindow w;
  // RDV Tuesday 7 April 2026 08:30; reminder due Easter Monday 08:30 (closed) -> Tuesday 08:00.
  const Millis rdv = at("2026-04-07T08:30:00+02:00");
  const WindowDecision d = w.schedule(w.reminder_due(rdv), rdv);
  EXPECT_FALSE(d.skip) << d.reason;
  EXPECT_EQ(d.send_at, at("2026-04-07T08:00:00+02:00"));
  EXPECT_TRUE(d.reason.empty());
  // Without an RDV, never skipped.
  EXPECT_FALSE(w.schedule(at("2026-04-06T08:30:00+02:00")).skip);
}

TEST(SendingWindow, SkipsWhenTheNextOpeningIsAtOrAfterTheRdv) {
  SendingWindow w;
  // RDV exactly at the next opening: skipped ("at or after").
  Millis rdv = at("2026-04-07T08:00:00+02:00");
  WindowDecision d = w.schedule(w.reminder_due(rdv), rdv);
  EXPECT_TRUE(d.skip);
  EXPECT_THAT(d.reason, StartsWith("l'ouverture suivante tombe après le rendez-vous"));
  EXPECT_THAT(d.reason, HasSubstr("2026-04-07 08:00 Europe/Paris"));
  // RDV Monday 07:30; reminder Sunday 07:30 -> next opening Monday 08:00, after the RDV.
  rdv = at("2026-03-30T07:30:00+02:00");
  d = w.schedule(w.reminder_due(rdv), rdv);
  EXPECT_TRUE(d.skip);
  EXPECT_THAT(d.reason, StartsWith("l'ouverture suivante tombe après le rendez-vous"));
  // One millisecond before the opening: sent.
  rdv = at("2026-04-07T08:00:00.001+02:00");
  EXPECT_FALSE(w.schedule(at("2026-04-06T08:00:00+02:00"), rdv).skip);
  // Due (inside the window) after the RDV started: skipped with its own reason.
  rdv = at("2026-06-02T10:00:00+02:00");
  d = w.schedule(at("2026-06-02T10:05:00+02:00"), rdv);
  EXPECT_TRUE(d.skip);
  EXPECT_THAT(d.reason, StartsWith("l'heure d'envoi tombe après le début du rendez-vous"));
  EXPECT_TRUE(w.schedule(rdv, rdv).skip);
}

TEST(SendingWindow, ReminderDue) {
  SendingWindow w;
  // Default: the day before at the same time.
  EXPECT_EQ(w.reminder_due(at("2026-06-02T10:00:00.250+02:00")),
            at("2026-06-01T10:00:00.250+02:00"));
  // Across spring-forward (29 March 2026): Monday 10:00 CEST -> Sunday 10:00 CEST (23 h).
  EXPECT_EQ(w.reminder_due(at("2026-03-30T10:00:00+02:00")), at("2026-03-29T10:00:00+02:00"));
  // Across fall-back (25 October 2026): Monday 09:00 CET -> Sunday 09:00 CET (25 h), as the
  // rdv-sms-reminder mapping does.
  EXPECT_EQ(w.reminder_due(at("2026-10-26T09:00:00+01:00")), at("2026-10-25T09:00:00+01:00"));
  EXPECT_EQ(w.reminder_due(at("2026-10-26T09:00:00+01:00"), 2 * 24 * kHour),
            at("2026-10-24T09:00:00+02:00"));
  // Non-day offsets are elapsed time.
  EXPECT_EQ(w.reminder_due(at("2026-06-02T10:00:00+02:00"), 2 * kHour),
            at("2026-06-02T08:00:00+02:00"));
  EXPECT_EQ(w.reminder_due(at("2026-03-29T04:00:00+02:00"), 3 * kHour),
            at("2026-03-29T00:00:00+01:00"));
  EXPECT_EQ(w.reminder_due(at("2026-06-02T10:00:00+02:00"), 0), at("2026-06-02T10:00:00+02:00"));
  EXPECT_THROW(w.reminder_due(0, -1), std::invalid_argument);
}

TEST(SendingWindow, FormatLocal) {
  SendingWindow w;
  EXPECT_EQ(w.format_local(at("2026-03-29T06:00:00Z")), "2026-03-29 08:00 Europe/Paris");
  EXPECT_EQ(w.format_local(at("2026-10-25T07:00:00Z")), "2026-10-25 08:00 Europe/Paris");
}

}  // namespace
}  // namespace relais::sms

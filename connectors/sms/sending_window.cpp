#include "connectors/sms/sending_window.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "mappings/tz.h"

namespace relais::sms {

namespace {

constexpr int64_t kDay = 86400;
constexpr Millis kDayMs = kDay * 1000;

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t days_of(const LocalDate& d) {
  return mappings::days_from_civil(d.year, d.month, d.day);
}

LocalDate date_of(int64_t days) {
  const mappings::CivilDate c = mappings::civil_from_days(days);
  return {static_cast<int>(c.year), c.month, c.day};
}

LocalDate add_days(const LocalDate& d, int64_t n) {
  return date_of(days_of(d) + n);
}

}  // namespace

std::string to_string(const LocalDate& d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", d.year, d.month, d.day);
  return buf;
}

LocalDate easter_sunday(int year) {
  const int a = year % 19;
  const int b = year / 100;
  const int c = year % 100;
  const int d = b / 4;
  const int e = b % 4;
  const int f = (b + 8) / 25;
  const int g = (b - f + 1) / 3;
  const int h = (19 * a + b - d - g + 15) % 30;
  const int i = c / 4;
  const int k = c % 4;
  const int l = (32 + 2 * e + 2 * i - h - k) % 7;
  const int m = (a + 11 * h + 22 * l) / 451;
  const int month = (h + l - 7 * m + 114) / 31;
  const int day = (h + l - 7 * m + 114) % 31 + 1;
  return {year, static_cast<unsigned>(month), static_cast<unsigned>(day)};
}

std::vector<PublicHoliday> french_public_holidays(int year) {
  const LocalDate easter = easter_sunday(year);
  std::vector<PublicHoliday> h = {
      {{year, 1, 1}, "Jour de l'an"},
      {add_days(easter, 1), "Lundi de Pâques"},
      {{year, 5, 1}, "Fête du Travail"},
      {{year, 5, 8}, "Victoire 1945"},
      {add_days(easter, 39), "Ascension"},
      {add_days(easter, 50), "Lundi de Pentecôte"},
      {{year, 7, 14}, "Fête nationale"},
      {{year, 8, 15}, "Assomption"},
      {{year, 11, 1}, "Toussaint"},
      {{year, 11, 11}, "Armistice 1918"},
      {{year, 12, 25}, "Noël"},
  };
  // Ascension can fall on 1 or 8 May (e.g. 2008: 1 May); keep date order, both entries.
  std::stable_sort(h.begin(), h.end(),
                   [](const PublicHoliday& x, const PublicHoliday& y) { return x.date < y.date; });
  return h;
}

std::optional<std::string> french_public_holiday(const LocalDate& d) {
  for (const PublicHoliday& h : french_public_holidays(d.year))
    if (h.date == d) return h.name;
  return std::nullopt;
}

SendingWindow::SendingWindow(SendingWindowConfig config) : config_(std::move(config)) {
  tz_ = mappings::TimeZone::get(config_.time_zone);
  if (!tz_) throw std::invalid_argument("unknown time zone '" + config_.time_zone + "'");
  if (config_.open_minute < 0 || config_.close_minute > 24 * 60 ||
      config_.open_minute >= config_.close_minute)
    throw std::invalid_argument("sending window hours must satisfy 00:00 <= open < close <= 24:00");
  for (unsigned w : config_.closed_weekdays) {
    if (w > 6) throw std::invalid_argument("closed weekday must be 0 (Sunday) to 6 (Saturday)");
    closed_weekday_[w] = true;
  }
  if (std::all_of(std::begin(closed_weekday_), std::end(closed_weekday_), [](bool b) { return b; }))
    throw std::invalid_argument("sending window: every weekday is closed");
}

bool SendingWindow::is_closed_day(const LocalDate& d) const {
  if (closed_weekday_[mappings::weekday_from_days(days_of(d))]) return true;
  if (config_.closed_on_public_holidays && french_public_holiday(d)) return true;
  return std::find(config_.extra_closed_dates.begin(), config_.extra_closed_dates.end(), d) !=
         config_.extra_closed_dates.end();
}

bool SendingWindow::is_open(Millis t) const {
  const int64_t utc = floor_div(t, 1000);
  const int64_t local = utc + tz_->offset_at_utc(utc);
  const int64_t day = floor_div(local, kDay);
  const int64_t sec = local - day * kDay;
  return sec >= config_.open_minute * 60 && sec < config_.close_minute * 60 &&
         !is_closed_day(date_of(day));
}

Millis SendingWindow::next_opening(Millis due) const {
  if (is_open(due)) return due;
  const int64_t utc = floor_div(due, 1000);
  const int64_t local = utc + tz_->offset_at_utc(utc);
  int64_t day = floor_div(local, kDay);
  const int64_t sec = local - day * kDay;
  const int64_t open = config_.open_minute * 60;
  if (sec >= open || is_closed_day(date_of(day))) ++day;
  // At least one weekday is open, so the closed days in a row are bounded by the holidays and
  // the extra dates; this bound is never reached with a valid configuration.
  const int64_t limit = day + 7 + 12 * 2 + static_cast<int64_t>(config_.extra_closed_dates.size());
  while (is_closed_day(date_of(day))) {
    if (++day > limit) throw std::logic_error("sending window: no opening found");
  }
  const Millis opening = tz_->local_to_utc(day * kDay + open) * 1000;
  // Only with an opening inside a fall-back overlap could the earlier instant precede due.
  return std::max(opening, due);
}

WindowDecision SendingWindow::schedule(Millis due, std::optional<Millis> rdv_start) const {
  WindowDecision d;
  d.send_at = next_opening(due);
  if (rdv_start && d.send_at >= *rdv_start) {
    d.skip = true;
    if (d.send_at == due) {
      d.reason = "l'heure d'envoi tombe après le début du rendez-vous (envoi " + format_local(due) +
                 ", rendez-vous " + format_local(*rdv_start) + ")";
    } else {
      d.reason = "l'ouverture suivante tombe après le rendez-vous (ouverture " +
                 format_local(d.send_at) + ", rendez-vous " + format_local(*rdv_start) + ")";
    }
  }
  return d;
}

Millis SendingWindow::reminder_due(Millis rdv_start, Millis offset) const {
  if (offset < 0) throw std::invalid_argument("reminder offset must be >= 0");
  if (offset % kDayMs != 0) return rdv_start - offset;
  const int64_t utc = floor_div(rdv_start, 1000);
  const Millis sub_second = rdv_start - utc * 1000;
  const int64_t local = utc + tz_->offset_at_utc(utc) - (offset / kDayMs) * kDay;
  return tz_->local_to_utc(local) * 1000 + sub_second;
}

std::string SendingWindow::format_local(Millis t) const {
  const int64_t utc = floor_div(t, 1000);
  const int64_t local = utc + tz_->offset_at_utc(utc);
  const int64_t day = floor_div(local, kDay);
  const int64_t sec = local - day * kDay;
  char buf[16];
  std::snprintf(buf, sizeof buf, " %02d:%02d ", static_cast<int>(sec / 3600),
                static_cast<int>(sec / 60 % 60));
  return to_string(date_of(day)) + buf + config_.time_zone;
}

}  // namespace relais::sms

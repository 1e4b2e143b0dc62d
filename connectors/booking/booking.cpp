#include "connectors/booking/booking.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <thread>

#include "connectors/calendar/calendar_http.h"
#include "mappings/tz.h"

namespace relais::booking {
namespace {

constexpr int64_t kDayMs = 86400000;

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

bool parse_hhmm(const std::string& s, int& minutes) {
  unsigned h = 0, m = 0;
  char tail = 0;
  if (s.size() != 5 || std::sscanf(s.c_str(), "%2u:%2u%c", &h, &m, &tail) != 2) return false;
  if (h > 24 || m > 59 || (h == 24 && m != 0)) return false;
  minutes = static_cast<int>(h * 60 + m);
  return true;
}

bool parse_date(const std::string& s, sms::LocalDate& d) {
  int y = 0;
  unsigned m = 0, day = 0;
  char tail = 0;
  if (s.size() != 10 || std::sscanf(s.c_str(), "%4d-%2u-%2u%c", &y, &m, &day, &tail) != 3) {
    return false;
  }
  if (m < 1 || m > 12 || day < 1 || day > mappings::days_in_month(y, m)) return false;
  d = {y, m, day};
  return true;
}

int weekday_index(const std::string& name) {
  static const char* names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
  for (int i = 0; i < 7; ++i) {
    if (name == names[i]) return i;
  }
  return -1;
}

// "09:00-12:00,13:30-17:00" may come as one comma-separated default or as a list.
std::vector<std::string> items(const std::vector<std::string>& list) {
  std::vector<std::string> out;
  for (const auto& entry : list) {
    size_t pos = 0;
    while (pos <= entry.size()) {
      size_t comma = entry.find(',', pos);
      if (comma == std::string::npos) comma = entry.size();
      std::string item = entry.substr(pos, comma - pos);
      item.erase(0, item.find_first_not_of(' '));
      item.erase(item.find_last_not_of(' ') + 1);
      if (!item.empty()) out.push_back(item);
      pos = comma + 1;
    }
  }
  return out;
}

std::string utc_text(Millis t) {  // "2026-03-30T07:00:00Z"
  return format_rfc3339(t).substr(0, 19) + "Z";
}

}  // namespace

std::vector<std::string> config_list(const ConfigView& v, const std::string& key) {
  std::vector<std::string> raw;
  if (v.has(key)) {
    raw = v.strings(key);
  } else {
    raw.push_back(v.str(key));
  }
  return items(raw);
}

Settings read_settings(const ConfigView& b) {
  Settings s;
  s.calendar = b.str("calendar");
  s.cms76 = b.str("cms76");
  s.time_zone = b.str("time_zone");
  s.cache_ttl_ms = b.duration_ms("cache_ttl");
  s.timeout_ms = b.duration_ms("timeout");
  s.parallel = static_cast<int>(b.integer("parallel"));
  s.max_days = static_cast<int>(b.integer("max_days"));
  s.claim_ttl_ms = b.duration_ms("claim_ttl");
  size_t i = 0;
  for (const ConfigView& o : b.objects("offers")) {
    const std::string where = "booking.offers[" + std::to_string(i++) + "]";
    Offer offer;
    offer.cms = o.str("cms");
    offer.motif = o.str("motif");
    offer.slot_ms = o.duration_ms("slot");
    for (const auto& d : config_list(o, "days")) {
      int w = weekday_index(d);
      if (w < 0) throw std::invalid_argument(where + ".days: '" + d + "' is not mon…sun");
      offer.open_day[static_cast<size_t>(w)] = true;
    }
    for (const auto& h : config_list(o, "hours")) {
      size_t dash = h.find('-');
      int open = 0, close = 0;
      if (dash == std::string::npos || !parse_hhmm(h.substr(0, dash), open) ||
          !parse_hhmm(h.substr(dash + 1), close) || open >= close) {
        throw std::invalid_argument(where + ".hours: '" + h + "' is not HH:MM-HH:MM");
      }
      offer.hours.emplace_back(open, close);
    }
    std::sort(offer.hours.begin(), offer.hours.end());
    offer.public_holidays = o.boolean("public_holidays");
    for (const auto& d : config_list(o, "closed_dates")) {
      sms::LocalDate date;
      if (!parse_date(d, date)) {
        throw std::invalid_argument(where + ".closed_dates: '" + d + "' is not YYYY-MM-DD");
      }
      offer.closed_dates.push_back(date);
    }
    for (const ConfigView& p : o.objects("professionals")) {
      for (const auto& known : offer.professionals) {
        if (known.id == p.str("id")) {
          throw std::invalid_argument(where + ".professionals: the id '" + p.str("id") +
                                      "' is given twice");
        }
      }
      offer.professionals.push_back({p.str("id"), p.str("mailbox")});
      if (offer.professionals.back().mailbox.find('@') == std::string::npos) {
        throw std::invalid_argument(where + ".professionals: '" + p.str("mailbox") +
                                    "' is not an SMTP address");
      }
    }
    for (const Offer& other : s.offers) {
      if (other.cms == offer.cms && other.motif == offer.motif) {
        throw std::invalid_argument(where + ": cms " + offer.cms + " and motif " + offer.motif +
                                    " are offered twice");
      }
    }
    s.offers.push_back(std::move(offer));
  }
  return s;
}

std::vector<Slot> opening_slots(const Offer& offer, const mappings::TimeZone& tz, Millis from,
                                Millis to) {
  std::vector<Slot> out;
  if (to <= from) return out;
  // Local days that may hold a slot starting in [from, to): one day of margin each side.
  const int64_t first = floor_div(from / 1000 + tz.offset_at_utc(from / 1000), 86400) - 1;
  const int64_t last = floor_div(to / 1000 + tz.offset_at_utc(to / 1000), 86400) + 1;
  for (int64_t day = first; day <= last; ++day) {
    if (!offer.open_day[mappings::weekday_from_days(day)]) continue;
    const mappings::CivilDate c = mappings::civil_from_days(day);
    const sms::LocalDate date{static_cast<int>(c.year), c.month, c.day};
    if (offer.public_holidays && sms::french_public_holiday(date)) continue;
    if (std::find(offer.closed_dates.begin(), offer.closed_dates.end(), date) !=
        offer.closed_dates.end()) {
      continue;
    }
    for (const auto& [open, close] : offer.hours) {
      for (int64_t m = open * 60000LL; m + offer.slot_ms <= close * 60000LL; m += offer.slot_ms) {
        const int64_t local_start = day * 86400 + m / 1000;
        const int64_t local_end = local_start + offer.slot_ms / 1000;
        const int64_t start = tz.local_to_utc(local_start);
        const int64_t end = tz.local_to_utc(local_end);
        // A wall-clock time the DST change skipped, or a slot the change lengthens or shortens.
        if (start + tz.offset_at_utc(start) != local_start ||
            end + tz.offset_at_utc(end) != local_end || (end - start) * 1000 != offer.slot_ms) {
          continue;
        }
        if (start * 1000 < from || start * 1000 >= to) continue;
        for (const auto& p : offer.professionals) out.push_back({p.id, start * 1000, end * 1000});
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const Slot& a, const Slot& b) {
    return a.start != b.start ? a.start < b.start : a.professional < b.professional;
  });
  return out;
}

// ---- CMS76 over HTTP ---------------------------------------------------------------------

namespace {

class HttpRdvApi final : public RdvApi {
 public:
  HttpRdvApi(const ConfigView& d, const std::string& name)
      : name_(name), url_(d.str("url")), transfer_(curl_transfer_from(d, name)) {
    for (const auto& [k, v] : d.string_map("headers")) headers_.push_back(k + ": " + v);
    headers_.push_back("Content-Type: application/json");
    headers_.push_back("Accept: application/json");
    if (!d.str("bearer_token").empty()) {
      auth_.mode = calendar::HttpAuth::Mode::Bearer;
      auth_.bearer = d.str("bearer_token");
    } else if (!d.str("basic_user").empty()) {
      auth_.mode = calendar::HttpAuth::Mode::Basic;
      auth_.user = d.str("basic_user");
      auth_.password = d.str("basic_password");
    }
  }

  RdvReply create(const RdvRequest& r) override {
    nlohmann::json body = {{"cms", r.cms},     {"motif", r.motif}, {"professional", r.professional},
                           {"start", r.start}, {"end", r.end},     {"citizen", r.citizen}};
    std::vector<std::string> headers = headers_;
    headers.push_back("Idempotency-Key: " + r.claim);
    CURL* h = curl_easy_init();
    if (h == nullptr) return {RdvReply::Kind::Unavailable, "", "libcurl could not start"};
    calendar::HttpAnswer a = calendar::http_exchange(
        h, "POST", url_, headers, body.dump(), transfer_, auth_, calendar::Send::Once, 64 * 1024);
    curl_easy_cleanup(h);
    RdvReply out;
    const std::string where = "CMS76 (" + name_ + ")";
    if (a.rc != CURLE_OK) {
      out.kind = a.failure == CurlFailure::UnknownOutcome ? RdvReply::Kind::Unknown
                                                          : RdvReply::Kind::Unavailable;
      out.text = where + ": " + calendar::network_failure(a, "the RDV").text;
      return out;
    }
    if (a.status == 200 || a.status == 201) {
      nlohmann::json j = nlohmann::json::parse(a.body, nullptr, false);
      if (j.is_object() && j.contains("id") && (j["id"].is_string() || j["id"].is_number())) {
        out.kind = RdvReply::Kind::Created;
        out.id = j["id"].is_string() ? j["id"].get<std::string>() : j["id"].dump();
        return out;
      }
      out.kind = RdvReply::Kind::Unknown;  // accepted, but which RDV: a person must look
      out.text = where + " accepted the RDV without giving its id";
      return out;
    }
    out.text = where + " answered HTTP " + std::to_string(a.status);
    if (a.status == 409) {
      out.kind = RdvReply::Kind::Taken;
    } else if (a.status >= 400 && a.status < 500 && a.status != 408 && a.status != 429) {
      out.kind = RdvReply::Kind::Refused;
    } else {
      out.kind = RdvReply::Kind::Unavailable;
    }
    return out;
  }

 private:
  std::string name_, url_;
  CurlTransfer transfer_;
  std::vector<std::string> headers_;
  calendar::HttpAuth auth_;
};

}  // namespace

std::unique_ptr<RdvApi> make_http_rdv_api(const ConfigView& destination, const std::string& name) {
  return std::make_unique<HttpRdvApi>(destination, name);
}

// ---- the service -------------------------------------------------------------------------

BookingService::BookingService(Settings settings, BusyReader busy, RdvApi& rdv, XrefStore& xrefs,
                               const Clock& clock)
    : settings_(std::move(settings)),
      tz_(mappings::TimeZone::get(settings_.time_zone)),
      busy_(std::move(busy)),
      rdv_(rdv),
      xrefs_(xrefs),
      clock_(clock),
      ids_(clock) {
  if (!tz_) throw std::invalid_argument("booking.time_zone: unknown zone " + settings_.time_zone);
  reload_claims();
}

void BookingService::reload_claims() {
  const Millis now = clock_.now_ms();
  std::map<std::string, Millis> alive;
  for (const auto& ref :
       xrefs_.list(kClaimDestination, now - settings_.claim_ttl_ms, now + 1, 1000000)) {
    alive[ref.key] = ref.updated_at;
  }
  std::lock_guard<std::mutex> lock(claims_mu_);
  claims_ = std::move(alive);
}

void BookingService::released(const std::string& key) {
  {
    std::lock_guard<std::mutex> lock(claims_mu_);
    claims_.erase(key);
  }
  forget(key.substr(0, key.find('|')));
}

const Offer* BookingService::find_offer(const std::string& cms, const std::string& motif) const {
  for (const auto& o : settings_.offers) {
    if (o.cms == cms && o.motif == motif) return &o;
  }
  return nullptr;
}

std::optional<std::vector<BookingService::Interval>> BookingService::cached(const Professional& p,
                                                                            Millis from,
                                                                            Millis to) const {
  if (settings_.cache_ttl_ms <= 0) return std::nullopt;
  const Millis now = clock_.now_ms();
  std::lock_guard<std::mutex> lock(cache_mu_);
  auto mb = cache_.find(p.mailbox);
  if (mb == cache_.end()) return std::nullopt;
  auto it = mb->second.find({from, to});
  if (it == mb->second.end() || now - it->second.at >= settings_.cache_ttl_ms) return std::nullopt;
  return it->second.busy;
}

std::optional<std::vector<BookingService::Interval>> BookingService::busy_of(const Professional& p,
                                                                             Millis from, Millis to,
                                                                             bool fresh,
                                                                             std::string& why) {
  const Millis now = clock_.now_ms();
  if (!fresh) {
    if (auto hit = cached(p, from, to)) return hit;
  }
  ++reads_;
  calendar::Result r = busy_(p.mailbox, utc_text(from), utc_text(to));
  if (r.kind != calendar::Result::Kind::Ok) {
    why = "the calendar of professional " + p.id + " (" + p.mailbox +
          ") cannot be read: " + r.failure.text;
    return std::nullopt;
  }
  std::vector<Interval> busy;
  for (const auto& b : r.busy) {
    Millis s = 0, e = 0;
    if (b.status == "free") continue;
    if (!parse_rfc3339(b.start, s) || !parse_rfc3339(b.end, e)) {
      why = "the calendar of professional " + p.id + " (" + p.mailbox +
            ") gave a busy period that cannot be read";
      return std::nullopt;
    }
    busy.push_back({s, e});
  }
  if (settings_.cache_ttl_ms > 0) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto& entries = cache_[p.mailbox];
    for (auto it = entries.begin(); it != entries.end();) {  // drop the stale ones on the way
      it = now - it->second.at >= settings_.cache_ttl_ms ? entries.erase(it) : std::next(it);
    }
    entries[{from, to}] = {now, busy};
  }
  return busy;
}

void BookingService::forget(const std::string& mailbox) {
  std::lock_guard<std::mutex> lock(cache_mu_);
  cache_.erase(mailbox);
}

bool BookingService::claimed(const std::string& key, Millis now) const {
  std::lock_guard<std::mutex> lock(claims_mu_);
  auto it = claims_.find(key);
  return it != claims_.end() && now - it->second < settings_.claim_ttl_ms;
}

std::string claim_key(const std::string& mailbox, Millis start) {
  return mailbox + "|" + utc_text(start);
}

namespace {
bool overlaps(Millis s, Millis e, Millis bs, Millis be) {
  return s < be && bs < e;
}
}  // namespace

BookingService::SlotsAnswer BookingService::slots(const std::string& cms, const std::string& motif,
                                                  Millis from, Millis to) {
  SlotsAnswer out;
  const Offer* offer = find_offer(cms, motif);
  if (offer == nullptr) {
    out.failure = Failure{404, "unknown offer", "no booking is offered for this cms and motif"};
    return out;
  }
  if (to <= from || to - from > settings_.max_days * kDayMs) {
    out.failure = Failure{400, "bad request",
                          "give from before to, at most " + std::to_string(settings_.max_days) +
                              " days apart (booking.max_days)"};
    return out;
  }
  const Millis now = clock_.now_ms();
  std::vector<Slot> candidates = opening_slots(*offer, *tz_, std::max(from, now), to);
  if (candidates.empty()) return out;
  // Each professional's calendar over the span of the candidates, read in parallel.
  const Millis span_from = candidates.front().start;
  Millis span_to = span_from;
  for (const auto& s : candidates) span_to = std::max(span_to, s.end);
  const auto& pros = offer->professionals;
  std::vector<std::optional<std::vector<Interval>>> busy(pros.size());
  std::vector<std::string> why(pros.size());
  // The cache first, without a thread; the misses are read in parallel.
  std::vector<size_t> misses;
  for (size_t i = 0; i < pros.size(); ++i) {
    busy[i] = cached(pros[i], span_from, span_to);
    if (!busy[i]) misses.push_back(i);
  }
  std::atomic<size_t> next{0};
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(settings_.timeout_ms);
  auto work = [&] {
    for (size_t n = next++; n < misses.size(); n = next++) {
      const size_t i = misses[n];
      if (std::chrono::steady_clock::now() > deadline) {
        why[i] = "the calendar of professional " + pros[i].id + " (" + pros[i].mailbox +
                 ") was not read in time (booking.timeout)";
        continue;
      }
      busy[i] = busy_of(pros[i], span_from, span_to, false, why[i]);
    }
  };
  const size_t threads = std::min<size_t>(static_cast<size_t>(settings_.parallel), misses.size());
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < pros.size(); ++i) {
    if (!busy[i]) {
      out.failure = Failure{503, "calendar unavailable", why[i], 5000};
      return out;
    }
    index[pros[i].id] = i;
  }
  for (const auto& s : candidates) {
    const size_t i = index.at(s.professional);
    bool free = !claimed(claim_key(pros[i].mailbox, s.start), now);
    for (const auto& b : *busy[i]) free = free && !overlaps(s.start, s.end, b.start, b.end);
    if (free) out.slots.push_back(s);
  }
  return out;
}

std::vector<Slot> BookingService::day_slots(const Offer& offer, Millis t) {
  const int64_t local = t / 1000 + tz_->offset_at_utc(t / 1000);
  const int64_t midnight = floor_div(local, 86400) * 86400;
  const Millis from = tz_->local_to_utc(midnight) * 1000;
  const Millis to = tz_->local_to_utc(midnight + 86400) * 1000;
  SlotsAnswer a = slots(offer.cms, offer.motif, from, to);
  return a.failure ? std::vector<Slot>{} : a.slots;
}

BookingService::BookAnswer BookingService::book(const std::string& cms, const std::string& motif,
                                                const std::string& professional, Millis start,
                                                const nlohmann::json& citizen) {
  BookAnswer out;
  const Offer* offer = find_offer(cms, motif);
  if (offer == nullptr) {
    out.failure = Failure{404, "unknown offer", "no booking is offered for this cms and motif"};
    return out;
  }
  auto pro = std::find_if(offer->professionals.begin(), offer->professionals.end(),
                          [&](const Professional& p) { return p.id == professional; });
  const Millis now = clock_.now_ms();
  std::optional<Slot> slot;
  if (pro != offer->professionals.end() && start > now) {
    for (const auto& s : opening_slots(*offer, *tz_, start, start + 1)) {
      if (s.professional == professional) slot = s;
    }
  }
  if (!slot) {
    out.failure = Failure{400, "not a slot",
                          "this professional has no slot starting then for this cms and motif "
                          "(opening hours, holidays, past)"};
    return out;
  }
  out.slot = *slot;
  const std::string key = claim_key(pro->mailbox, slot->start);
  // true: answered; false: the slot is taken (answered once its lock is released).
  auto attempt = [&]() -> bool {
    std::lock_guard<std::mutex> lock(
        slot_locks_[std::hash<std::string>{}(key) % slot_locks_.size()]);
    std::optional<CrossReference> claim = xrefs_.get(kClaimDestination, key);
    if (claimed(key, now) || (claim && now - claim->updated_at < settings_.claim_ttl_ms)) {
      return false;
    }
    std::string why;
    auto busy = busy_of(*pro, slot->start, slot->end, true, why);
    if (!busy) {
      out.failure = Failure{503, "calendar unavailable", why, 5000};
      return true;
    }
    for (const auto& b : *busy) {
      if (overlaps(slot->start, slot->end, b.start, b.end)) return false;
    }
    const std::string claim_id = ids_.next();
    xrefs_.put({kClaimDestination, key, "pending:" + claim_id, "", 0, claim_id});
    {
      std::lock_guard<std::mutex> c(claims_mu_);
      claims_[key] = now;
    }
    RdvRequest req{claim_id, cms, motif, professional, utc_text(slot->start), utc_text(slot->end),
                   citizen};
    RdvReply reply = rdv_.create(req);
    if (reply.kind == RdvReply::Kind::Created) {
      xrefs_.put({kClaimDestination, key, reply.id, "", 0, claim_id});
      forget(pro->mailbox);
      out.rdv_id = reply.id;
      return true;
    }
    if (reply.kind == RdvReply::Kind::Taken) {
      // CMS76 has an RDV there already (not yet in Outlook): the claim keeps the slot refused.
      xrefs_.put({kClaimDestination, key, "taken-in-cms76", "", 0, claim_id});
    } else if (reply.kind != RdvReply::Kind::Unknown) {  // surely not created: free again
      xrefs_.remove(kClaimDestination, key);
      std::lock_guard<std::mutex> c(claims_mu_);
      claims_.erase(key);
    }
    if (reply.kind == RdvReply::Kind::Taken) return false;
    if (reply.kind == RdvReply::Kind::Refused) {
      out.failure = Failure{502, "refused by CMS76", reply.text};
      return true;
    }
    out.failure = Failure{
        503, "CMS76 unavailable",
        reply.text + (reply.kind == RdvReply::Kind::Unknown
                          ? " — the RDV may have been created: the slot stays reserved; check "
                            "CMS76 before booking it again"
                          : ""),
        5000};
    return true;
  };
  if (attempt()) return out;
  forget(pro->mailbox);
  out.failure = Failure{409, "créneau plus disponible",
                        "this slot was just taken; choose another one among the fresh slots"};
  out.fresh = day_slots(*offer, slot->start);
  return out;
}

}  // namespace relais::booking

#pragma once
// The portal's online booking of appointments (docs/booking.md): the free slots of a CMS's
// motif — each professional's opening hours (French public holidays closed, Europe/Paris with
// its DST changes) minus the busy times of their Outlook calendar, read through the calendar
// connector's free/busy — and the booking of one slot: re-checked against a fresh free/busy,
// claimed durably (a cross-reference of destination "booking"), then created in CMS76 through its
// RDV API, synchronously. Two citizens booking one slot at once: one wins, the other is told
// "créneau plus disponible".
//
// Personal data: the citizen's fields go to CMS76 only; nothing here logs them or puts them in
// an error text. Error texts name professionals (their id and mailbox: staff, not citizens).

#include <array>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "connectors/calendar/calendar.h"
#include "connectors/sms/sending_window.h"
#include "core/clock.h"
#include "core/config_spec.h"
#include "core/connector.h"
#include "core/ids.h"
#include "core/xref_store.h"

namespace relais::mappings {
class TimeZone;
}

namespace relais::booking {

// The cross-reference destination of the slots' claims (key: claim_key()). The reference's
// external id is CMS76's RDV id once the RDV is created ("pending:…" before, "taken-in-cms76"
// when CMS76 had it already).
inline constexpr const char* kClaimDestination = "booking";
// A slot's claim key: the mailbox, "|", the start in UTC ("2027-01-04T08:00:00Z").
std::string claim_key(const std::string& mailbox, Millis start);

struct Professional {
  std::string id;       // CMS76's id
  std::string mailbox;  // Outlook
};

// What can be booked for one CMS and motif: opening hours and who receives it. Plain value.
struct Offer {
  std::string cms;
  std::string motif;
  int64_t slot_ms = 30 * 60000;
  std::array<bool, 7> open_day = {};       // 0 = Sunday
  std::vector<std::pair<int, int>> hours;  // [open, close) minutes after local midnight
  bool public_holidays = true;             // closed on the French public holidays
  std::vector<sms::LocalDate> closed_dates;
  std::vector<Professional> professionals;
};

struct Settings {
  std::string calendar;  // the calendar destination
  std::string cms76;     // the http destination of CMS76's RDV API
  std::string time_zone = "Europe/Paris";
  int64_t cache_ttl_ms = 60000;
  int64_t timeout_ms = 10000;
  int parallel = 8;
  int max_days = 62;
  int64_t claim_ttl_ms = 7 * 86400000LL;
  std::vector<Offer> offers;
};

// A list key's items, or its declared default ("mon,tue,…", split at commas) when absent:
// ConfigView::strings() gives no default.
std::vector<std::string> config_list(const ConfigView& v, const std::string& key);

// Reads a validated `booking:` section (routing/booking_config.h). Throws std::invalid_argument
// naming the key on what the spec cannot check (hours, days, dates, duplicate offers).
Settings read_settings(const ConfigView& booking);

// One bookable slot of one professional. Plain value.
struct Slot {
  std::string professional;  // the professional's id
  Millis start = 0;          // UTC
  Millis end = 0;
  bool operator==(const Slot&) const = default;
};

// The slots of `offer`'s opening hours that start in [from, to), sorted by start then by
// professional, for every professional. A day closed (weekday, public holiday, closed date)
// has none; a slot whose wall-clock start or end does not exist, or whose length differs
// from slot_ms (a DST change inside it), is left out. Pure.
std::vector<Slot> opening_slots(const Offer& offer, const mappings::TimeZone& tz, Millis from,
                                Millis to);

// An error answered to the portal: HTTP status, short error, readable text (no personal data).
struct Failure {
  int status = 0;
  std::string error;
  std::string text;
  std::optional<int64_t> retry_after_ms;
};

// ---- CMS76's RDV API: the request–reply seam ------------------------------------------------

struct RdvRequest {
  std::string claim;  // unique per booking attempt (Idempotency-Key)
  std::string cms, motif, professional;
  std::string start, end;  // RFC 3339 UTC
  nlohmann::json citizen;  // as the portal gave it, passed through
};

struct RdvReply {
  enum class Kind { Created, Taken, Refused, Unknown, Unavailable };
  Kind kind = Kind::Unavailable;
  std::string id;    // Created: CMS76's RDV id
  std::string text;  // otherwise: why (no personal data)
};

// Creates one RDV in CMS76, synchronously. Implementations are safe for concurrent calls.
class RdvApi {
 public:
  virtual ~RdvApi() = default;
  virtual RdvReply create(const RdvRequest& r) = 0;
};

// CMS76's RDV API over HTTP, described by the settings of an `http` destination (url, headers,
// basic_user/basic_password or bearer_token, timeout and TLS): POST of the RDV as JSON, sent at
// most once (no automatic re-send); 200/201 {"id": …} = created, 409 = slot taken, other 4xx =
// refused, 5xx or network = unavailable, a failure after the request went out = unknown.
// Throws at start-up (a TLS file missing).
std::unique_ptr<RdvApi> make_http_rdv_api(const ConfigView& destination, const std::string& name);

// Reads a professional's busy periods over [from_utc, to_utc) (ISO 8601 UTC): in the hub, the
// calendar connector's free/busy (calendar::free_busy). Called from several threads at once.
using BusyReader = std::function<calendar::Result(
    const std::string& mailbox, const std::string& from_utc, const std::string& to_utc)>;

// Responsibility: answers slot lists (opening hours minus busy times and claimed slots, with a
// short free/busy cache per professional and period) and books one slot (per-slot lock, claim,
// fresh free/busy, CMS76, cache dropped for that professional).
// Thread-safety: every method may be called from any number of threads at once (the HTTP
// server's); internal mutexes, none held during a remote call except the slot's own lock while
// that slot is booked.
// Ownership: owns its settings, cache and claims in memory; `rdv`, `xrefs` and `clock` are the
// caller's and must outlive it.
class BookingService {
 public:
  // Loads the claims still alive from `xrefs`. Throws std::invalid_argument on an unknown zone.
  BookingService(Settings settings, BusyReader busy, RdvApi& rdv, XrefStore& xrefs,
                 const Clock& clock);

  struct SlotsAnswer {
    std::optional<Failure> failure;
    std::vector<Slot> slots;
  };
  // The free slots of `cms`/`motif` starting in [from, to). Failures: 404 (no such offer), 400
  // (period), 503 naming the professional whose calendar could not be read (or not in time).
  SlotsAnswer slots(const std::string& cms, const std::string& motif, Millis from, Millis to);

  struct BookAnswer {
    std::optional<Failure> failure;  // 409 "créneau plus disponible": `fresh` is filled
    std::string rdv_id;
    Slot slot;
    std::vector<Slot> fresh;  // the free slots of that day, after a 409
  };
  BookAnswer book(const std::string& cms, const std::string& motif, const std::string& professional,
                  Millis start, const nlohmann::json& citizen);

  // A claim was released durably (its cross-reference removed: the RDV was cancelled or moved,
  // see ClaimRelease): the slot is offered again and its professional's cached free/busy is
  // dropped. `key` is the claim's key (mailbox|start).
  void released(const std::string& key);
  // Reads the claims again from the cross-references (those younger than claim_ttl): what
  // another writer (the release destination, before this service listened) changed.
  void reload_claims();

  const Settings& settings() const { return settings_; }
  // Free/busy reads sent so far (the cache's hits are not counted), for tests and metrics.
  int64_t reads() const { return reads_.load(); }

 private:
  struct Interval {
    Millis start, end;
  };
  struct Cached {
    Millis at = 0;
    std::vector<Interval> busy;
  };
  const Offer* find_offer(const std::string& cms, const std::string& motif) const;
  // The cached busy intervals of `p` over exactly [from, to), when young enough.
  std::optional<std::vector<Interval>> cached(const Professional& p, Millis from, Millis to) const;
  // The busy intervals of `p` over [from, to): the cache's when `fresh` is false and it is
  // young enough. nullopt with `why` set when it cannot be read.
  std::optional<std::vector<Interval>> busy_of(const Professional& p, Millis from, Millis to,
                                               bool fresh, std::string& why);
  void forget(const std::string& mailbox);
  bool claimed(const std::string& key, Millis now) const;
  // The slots of the local day of `t`, for a 409's fresh slots (empty when they cannot be read).
  std::vector<Slot> day_slots(const Offer& offer, Millis t);

  Settings settings_;
  std::shared_ptr<const mappings::TimeZone> tz_;
  BusyReader busy_;
  RdvApi& rdv_;
  XrefStore& xrefs_;
  const Clock& clock_;
  IdGenerator ids_;
  std::atomic<int64_t> reads_{0};

  mutable std::mutex cache_mu_;
  std::map<std::string, std::map<std::pair<Millis, Millis>, Cached>> cache_;  // by mailbox
  mutable std::mutex claims_mu_;
  std::map<std::string, Millis> claims_;   // key → when claimed
  std::array<std::mutex, 64> slot_locks_;  // striped by the slot's key
};

// ---- the release of a claim when its RDV is cancelled or moved ------------------------------

// Registers the "booking" connector kind: a destination that releases the claim of a slot
// booked online when a message says its RDV was cancelled or moved (docs/booking.md, "A
// cancelled RDV"). Which messages reach it is the routes' business; which types cancel or move
// and which fields give the RDV's id, mailbox and start is its configuration.
void register_booking_connector(ConnectorRegistry& registry);

// Makes `service` hear the releases of `destination`'s connector (one of kind "booking"), then
// reads the claims again (a release committed before it listened is not missed). False when
// the connector is not of that kind. `service` must stay alive until detach_release().
bool attach_release(Connector& destination, BookingService* service);
void detach_release(Connector& destination);

}  // namespace relais::booking

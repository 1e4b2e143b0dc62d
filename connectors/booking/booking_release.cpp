// The `booking` destination (booking.h, docs/booking.md "A cancelled or moved RDV"): releases the
// claim of a slot booked online when its RDV is cancelled or moved, so that the slot is offered
// again before claim_ttl. The claim is a cross-reference (destination "booking", key
// mailbox|start, external id = CMS76's RDV id): the release removes it — durable, and read again
// by a BookingService that starts later — then tells the running BookingService (attach_release)
// to forget it and drop that professional's cached free/busy.
//
// Nothing here names CMS76: which messages reach the destination is the routes' business; which
// types cancel or move, and which fields give the RDV's id, mailbox and start, is configuration.

#include <cstdio>
#include <mutex>
#include <stdexcept>

#include "connectors/booking/booking.h"
#include "core/glob.h"
#include "core/json_template.h"
#include "mappings/tz.h"

namespace relais::booking {
namespace {

using F = FieldType;

const ConfigSpec& release_spec() {
  static const ConfigSpec s{
      "booking",
      {
          {"rdv_id", F::String, "$.rdv.id", false,
           "JSON path of the RDV's id in CMS76 (the id its RDV API gave the booking): finds the "
           "claim booked for that RDV; \"\" = find it by mailbox and start only"},
          {"mailbox", F::String, "", false,
           "JSON path of the professional's mailbox (e.g. $.rdv.tms.email): with start, the slot "
           "the message names"},
          {"start", F::String, "", false,
           "JSON path of the RDV's start: an RFC 3339 time, or a date (YYYY-MM-DD) completed by "
           "start_time, local in time_zone"},
          {"start_time", F::String, "", false,
           "JSON path of the start's local time (HH:MM) when start gives a date (e.g. "
           "$.rdv.heure)"},
          {"time_zone", F::String, "Europe/Paris", false,
           "the zone of a local start (date and time without offset)"},
          {"cancel_types", F::StringList, "rdv.cancelled", false,
           "message types (globs) that cancel an RDV: its claim is released"},
          {"move_types", F::StringList, "rdv.moved", false,
           "message types (globs) that move an RDV: its claim is released unless the slot the "
           "message names (mailbox, start) is the one claimed; needs rdv_id"},
      }};
  return s;
}

// One configured destination of kind "booking". deliver() may run on several worker threads:
// the cross-references serialise their writes; the listener is read under its mutex. Owns
// nothing but its settings; the hub's XrefStore outlives it.
class ClaimRelease final : public Connector {
 public:
  explicit ClaimRelease(const ConnectorContext& ctx) : name_(ctx.name), xrefs_(ctx.xrefs) {
    const ConfigView& c = ctx.config;
    const std::string where = "connector " + name_ + ": ";
    std::string err;
    auto path = [&](const char* key, std::optional<JsonPath>& out) {
      if (c.str(key).empty()) return;
      JsonPath p;
      if (!JsonPath::parse(c.str(key), p, err)) throw std::runtime_error(where + key + ": " + err);
      out = std::move(p);
    };
    path("rdv_id", rdv_id_);
    path("mailbox", mailbox_);
    path("start", start_);
    path("start_time", start_time_);
    cancel_types_ = config_list(c, "cancel_types");
    move_types_ = config_list(c, "move_types");
    tz_ = mappings::TimeZone::get(c.str("time_zone"));
    if (!tz_) throw std::runtime_error(where + "time_zone: unknown zone " + c.str("time_zone"));
    if (!rdv_id_ && (!mailbox_ || !start_)) {
      throw std::runtime_error(where + "give rdv_id, or mailbox and start");
    }
    if (!rdv_id_ && c.has("move_types") && !move_types_.empty()) {
      throw std::runtime_error(where + "move_types need rdv_id (a move names the new slot only)");
    }
    if (!rdv_id_) move_types_.clear();
  }

  Outcome deliver(const DeliveryRequest& req) override {
    if (req.message == nullptr || req.mapped == nullptr) {
      return Outcome::reject("config", 0, "no message to deliver");
    }
    const bool cancel = matches(cancel_types_, req.message->type);
    const bool move = !cancel && matches(move_types_, req.message->type);
    if (!cancel && !move) {
      return Outcome::skip("le type " + req.message->type + " n'annule ni ne déplace un RDV");
    }
    if (xrefs_ == nullptr) return Outcome::retry("internal", 0, "no cross-reference store");
    std::string rdv;
    if (rdv_id_) {
      const nlohmann::json* v = rdv_id_->find(*req.mapped);
      if (v == nullptr || !scalar_text(*v, rdv) || rdv.empty()) {
        return Outcome::reject("mapping", 0,
                               "l'identifiant du RDV manque (" + rdv_id_->text() + ")");
      }
    }
    std::string slot;  // the slot the message names ("" when it names none)
    if (mailbox_ && start_) slot = slot_key(*req.mapped);
    try {
      std::vector<std::string> keys;
      if (rdv_id_) {
        // The claim booked for this RDV, found by its id (kClaimByRdv); the claim itself must
        // still name that RDV (a slot booked again since belongs to another one).
        if (auto by_rdv = xrefs_->get(kClaimByRdv, rdv)) {
          const std::string& key = by_rdv->external_id;
          auto claim = xrefs_->get(kClaimDestination, key);
          if (!(move && key == slot)) {
            if (claim && claim->external_id == rdv) keys.push_back(key);
            xrefs_->remove(kClaimByRdv, rdv);
          }
        }
      } else if (!slot.empty() && xrefs_->get(kClaimDestination, slot)) {
        keys.push_back(slot);
      }
      for (const auto& key : keys) {
        xrefs_->remove(kClaimDestination, key);  // durable first: a restart reads it so
        std::lock_guard<std::mutex> lock(mu_);
        if (service_ != nullptr) service_->released(key);
      }
      const std::string what = rdv.empty() ? std::string("le RDV") : "le RDV " + rdv;
      if (keys.empty()) {
        return Outcome::delivered(rdv, what + " n'avait pas de créneau réservé en ligne à libérer");
      }
      return Outcome::delivered(rdv, what + (cancel ? " annulé" : " déplacé") + " : " +
                                         std::to_string(keys.size()) + " créneau(x) libéré(s)");
    } catch (const std::exception& e) {
      return Outcome::retry("store", 0, std::string("cross-reference store: ") + e.what());
    }
  }

  void attach(BookingService* service) {
    std::lock_guard<std::mutex> lock(mu_);
    service_ = service;
  }

 private:
  static bool matches(const std::vector<std::string>& globs, const std::string& type) {
    for (const auto& g : globs) {
      if (glob_match(g, type)) return true;
    }
    return false;
  }

  // mailbox|start of the slot the message names, or "" when a field is missing or unreadable.
  std::string slot_key(const nlohmann::json& body) const {
    std::string mailbox, start, time;
    const nlohmann::json* m = mailbox_->find(body);
    const nlohmann::json* s = start_->find(body);
    if (m == nullptr || s == nullptr || !scalar_text(*m, mailbox) || !scalar_text(*s, start)) {
      return {};
    }
    if (start_time_) {
      const nlohmann::json* t = start_time_->find(body);
      if (t == nullptr || !scalar_text(*t, time)) return {};
    }
    Millis at = 0;
    if (!time.empty() || start.size() == 10) {  // a local date (and time) in time_zone
      int y = 0;
      unsigned mo = 0, d = 0, h = 0, mi = 0;
      char tail = 0;
      if (std::sscanf(start.c_str(), "%4d-%2u-%2u%c", &y, &mo, &d, &tail) != 3 ||
          (!time.empty() && std::sscanf(time.c_str(), "%2u:%2u%c", &h, &mi, &tail) != 2) ||
          mo < 1 || mo > 12 || d < 1 || d > mappings::days_in_month(y, mo) || h > 23 || mi > 59) {
        return {};
      }
      const int64_t local = mappings::days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60;
      at = tz_->local_to_utc(local) * 1000;
    } else if (!parse_rfc3339(start, at)) {
      return {};
    }
    return claim_key(mailbox, at);
  }

  std::string name_;
  XrefStore* xrefs_;
  std::optional<JsonPath> rdv_id_, mailbox_, start_, start_time_;
  std::vector<std::string> cancel_types_, move_types_;
  std::shared_ptr<const mappings::TimeZone> tz_;
  std::mutex mu_;
  BookingService* service_ = nullptr;  // guarded by mu_
};

}  // namespace

void register_booking_connector(ConnectorRegistry& registry) {
  ConnectorKind k;
  k.name = "booking";
  k.description =
      "online booking: releases the claim of a slot booked online when its RDV is cancelled or "
      "moved, so that the slot is offered again";
  k.spec = &release_spec();
  k.create = [](const ConnectorContext& ctx) -> std::unique_ptr<Connector> {
    return std::make_unique<ClaimRelease>(ctx);
  };
  registry.add(std::move(k));
}

bool attach_release(Connector& destination, BookingService* service) {
  auto* release = dynamic_cast<ClaimRelease*>(&destination);
  if (release == nullptr) return false;
  release->attach(service);
  if (service != nullptr) service->reload_claims();
  return true;
}

void detach_release(Connector& destination) {
  attach_release(destination, nullptr);
}

}  // namespace relais::booking

// The portal's online booking endpoints (docs/booking.md): GET /api/v1/booking/slots and
// POST /api/v1/booking, answered synchronously by the BookingService (connectors/booking/).
// Stateless functions over the request's context.

#include <exception>

#include "api/api_context.h"
#include "api/http_util.h"
#include "connectors/booking/booking.h"
#include "core/log.h"
#include "routing/booking_config.h"

namespace relais::api {
namespace {

using json = nlohmann::json;

json slots_json(const std::vector<booking::Slot>& slots) {
  json out = json::array();
  for (const auto& s : slots) {
    out.push_back({{"professional", s.professional},
                   {"start", format_rfc3339(s.start).substr(0, 19) + "Z"},
                   {"end", format_rfc3339(s.end).substr(0, 19) + "Z"}});
  }
  return out;
}

void send_failure(RequestContext& rc, const booking::Failure& f, json extra = json::object()) {
  if (f.retry_after_ms) {
    rc.resp.set("Retry-After",
                std::to_string(std::max<int64_t>(1, (*f.retry_after_ms + 999) / 1000)));
  }
  send_error(rc.resp, f.status, f.error, f.text, extra);
}

// The query read once; a repeated parameter is refused.
bool read_query(RequestContext& rc, std::map<std::string, std::string>& q) {
  for (const auto& [k, v] : rc.uri.getQueryParameters()) {
    if (!q.emplace(k, v).second) {
      send_error(rc.resp, 400, "bad request", "the parameter '" + k + "' is given twice");
      return false;
    }
  }
  return true;
}

void list_slots(RequestContext& rc, booking::BookingService& service) {
  std::map<std::string, std::string> q;
  if (!read_query(rc, q)) return;
  Millis from = 0, to = 0;
  if (q["cms"].empty() || q["motif"].empty() || !parse_rfc3339(q["from"], from) ||
      !parse_rfc3339(q["to"], to)) {
    return send_error(rc.resp, 400, "bad request",
                      "give cms, motif, from and to (dates or RFC 3339 times)");
  }
  booking::BookingService::SlotsAnswer a = service.slots(q["cms"], q["motif"], from, to);
  if (a.failure) return send_failure(rc, *a.failure);
  send_json(rc.resp, 200,
            {{"cms", q["cms"]}, {"motif", q["motif"]}, {"slots", slots_json(a.slots)}});
}

void book(RequestContext& rc, booking::BookingService& service, const HubConfig& config) {
  std::string text;
  if (!read_body(rc.req, config.max_body, text, &rc.resp)) {
    rc.resp.setKeepAlive(false);
    return send_error(rc.resp, 413, "payload too large", "the body exceeds the limit");
  }
  json j;
  AcceptResponse perr;
  if (!parse_json_body(text, j, perr, static_cast<size_t>(config.max_depth))) {
    return send_error(rc.resp, perr.status, perr.error, perr.detail, perr.extra);
  }
  Millis start = 0;
  auto str = [&](const char* k) {
    return j.is_object() && j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : "";
  };
  if (str("cms").empty() || str("motif").empty() || str("professional").empty() ||
      !parse_rfc3339(str("start"), start) || !j.contains("citizen") || !j["citizen"].is_object()) {
    return send_error(rc.resp, 400, "bad request",
                      "give cms, motif, professional, start (RFC 3339) and citizen (an object)");
  }
  booking::BookingService::BookAnswer a =
      service.book(str("cms"), str("motif"), str("professional"), start, j["citizen"]);
  const std::string object = "booking:" + str("cms") + "/" + str("motif") +
                             " professional:" + str("professional") + " " + format_rfc3339(start);
  if (a.failure) {
    rc.audit("booking.refused", object, "HTTP " + std::to_string(a.failure->status));
    json extra = json::object();
    if (a.failure->status == 409) extra["slots"] = slots_json(a.fresh);
    return send_failure(rc, *a.failure, extra);
  }
  rc.audit("booking.created", object, "rdv " + a.rdv_id);
  send_json(rc.resp, 201,
            {{"rdv_id", a.rdv_id},
             {"professional", a.slot.professional},
             {"start", format_rfc3339(a.slot.start).substr(0, 19) + "Z"},
             {"end", format_rfc3339(a.slot.end).substr(0, 19) + "Z"}});
}

}  // namespace

bool handle_booking_endpoint(Ep id, RequestContext& rc) {
  if (id != Ep::BookingSlots && id != Ep::BookingCreate) return false;
  booking::BookingService* service = rc.shared.booking;
  if (service == nullptr) {
    send_error(rc.resp, 404, "not found", "online booking is not configured (booking:)");
    return true;
  }
  try {
    if (id == Ep::BookingSlots) {
      list_slots(rc, *service);
    } else {
      book(rc, *service, rc.shared.config);
    }
  } catch (const std::exception& e) {  // the store's failures (claims): nothing was booked
    log_error("booking", std::string("store failure: ") + e.what());
    if (!rc.resp.sent()) {
      send_error(rc.resp, 503, "unavailable", "the booking store failed; try again");
    }
  }
  return true;
}

BookingSetup::BookingSetup(Hub& hub, const HubConfig& config) {
  YAML::Node node = config.root["booking"];
  if (!node || !node.IsMap()) return;
  booking::Settings s = booking::read_settings(ConfigView(node, {&booking_spec()}, "booking"));
  // load_hub_config checked that both destinations exist and are of the right kinds.
  rdv_ = booking::make_http_rdv_api(config.destinations.at(s.cms76).settings, s.cms76);
  const std::string calendar = s.calendar;
  service_ = std::make_unique<booking::BookingService>(
      std::move(s),
      [&hub, calendar](const std::string& mailbox, const std::string& from, const std::string& to) {
        Connector* c = hub.connector(calendar);
        if (c == nullptr) {
          return calendar::Result::failed(Outcome::retry("config", 0, "no calendar connector"));
        }
        return calendar::free_busy(*c, mailbox, from, to);
      },
      *rdv_, hub.xrefs(), hub.clock());
  // The destinations that release claims (kind "booking") tell this service.
  for (const auto& [name, d] : config.destinations) {
    Connector* c = d.connector == "booking" ? hub.connector(name) : nullptr;
    if (c != nullptr && booking::attach_release(*c, service_.get())) releases_.push_back(c);
  }
}

BookingSetup::~BookingSetup() {
  for (Connector* c : releases_) booking::detach_release(*c);
}

}  // namespace relais::api

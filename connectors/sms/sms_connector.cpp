// The SMS destination. One place decides whether and when an SMS goes (deliver: number,
// opt-out, length, RDV start, reminder time, sending window), the driver builds the gateway
// request and classifies its answer, the SMS store keeps one record per SMS and the opt-out
// list; inbound() answers the gateway's delivery reports and replies and the admins' opt-out
// requests.

#include "connectors/sms/sms_connector.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "connectors/http/curl_capture.h"
#include "connectors/http/http_connector.h"
#include "connectors/sms/sending_window.h"
#include "connectors/sms/sms_drivers.h"
#include "connectors/sms/sms_phone.h"
#include "connectors/sms/sms_text.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/rate_bucket.h"
#include "core/sms_store.h"
#include "core/store_backend.h"

namespace relais {
namespace {

using F = FieldType;
using json = nlohmann::json;

// The class of an outcome whose request reached the partner but whose answer never came.
constexpr const char* kUnknownOutcome = "unknown_outcome";

// "5 min", "90 s".
std::string human_duration(Millis ms) {
  if (ms % 60000 == 0) return std::to_string(ms / 60000) + " min";
  return std::to_string((ms + 999) / 1000) + " s";
}

const ConfigSpec& sms_spec() {
  static const ConfigSpec s = [] {
    ConfigSpec spec{"sms", sms::sms_driver_spec().fields};
    std::vector<FieldSpec> own = {
        {"sender", F::String, "", false, "sender id shown on the phone (\"\" = the gateway's)"},
        {"default_region", F::String, "FR", false,
         "region of national numbers when the mapping gives no `region` and no overseas "
         "postcode"},
        {"max_segments",
         F::Int,
         "3",
         false,
         "longest SMS accepted, in segments",
         {},
         nullptr,
         1,
         10},
        {"price_per_segment_cents",
         F::Float,
         "5",
         false,
         "estimated price of one segment, for the cost recorded per SMS",
         {},
         nullptr,
         0,
         1000},
        {"rate_limit",
         F::Float,
         "10",
         false,
         "messages per second sent to the gateway (0 = no limit); a burst waits its turn",
         {},
         nullptr,
         0,
         10000},
        {"rate_limit_group", F::String, "", false,
         "destinations naming the same group share one rate limit (\"\" = this destination)"},
        {"reminder_offset", F::Duration, "24h", false,
         "a reminder (mapped `reminder: true` without `send_at`) is due this long before the "
         "RDV; whole days keep the wall-clock time across DST"},
        {"unknown_outcome_wait", F::Duration, "5m", false,
         "an SMS whose send went out without an answer (connection cut, timeout, relais "
         "stopped) waits this long for its delivery report before it is sent again"},
        {"unknown_outcome_check", F::Duration, "15s", false,
         "how often such an SMS looks for its delivery report while it waits"},
        {"window", F::Bool, "true", false, "apply the sending window"},
        {"window_open", F::String, "08:00", false, "first minute of the window (local time)"},
        {"window_close", F::String, "20:00", false, "end of the window (local time, excluded)"},
        {"time_zone", F::String, "Europe/Paris", false, "time zone of the window"},
        {"closed_weekdays", F::StringList, "", false,
         "days without SMS (sunday … saturday); default [sunday]"},
        {"public_holidays", F::Bool, "true", false, "no SMS on French public holidays"},
        {"closed_dates", F::StringList, "", false, "more days without SMS (YYYY-MM-DD)"},
        {"inbound_token", F::Secret, "", false,
         "secret the gateway puts in the delivery-report and reply URLs (?token=…); \"\" = "
         "those endpoints refuse every call"},
        {"timeout", F::Duration, "15s", false, "total time allowed for one gateway request"},
        {"connect_timeout", F::Duration, "5s", false, "time allowed to connect"},
        {"tls_verify", F::Bool, "true", false, "verify the gateway's certificate"},
        {"ca_file", F::String, "", false,
         "CA bundle to verify the gateway with (PEM); superseded by tls.ca_file"},
        tls_client_field(),
    };
    spec.fields.insert(spec.fields.end(), own.begin(), own.end());
    return spec;
  }();
  return s;
}

bool parse_hhmm(const std::string& s, int& minutes) {
  int h = 0, m = 0;
  char sep = 0;
  if (std::sscanf(s.c_str(), "%d%c%d", &h, &sep, &m) != 3 || (sep != ':' && sep != 'h')) {
    return false;
  }
  if (h < 0 || h > 24 || m < 0 || m > 59 || (h == 24 && m != 0)) return false;
  minutes = h * 60 + m;
  return true;
}

bool parse_weekday(std::string s, unsigned& out) {
  static const char* names[] = {"sunday",   "monday", "tuesday", "wednesday",
                                "thursday", "friday", "saturday"};
  static const char* fr[] = {"dimanche", "lundi",    "mardi", "mercredi",
                             "jeudi",    "vendredi", "samedi"};
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (unsigned i = 0; i < 7; ++i) {
    if (s == names[i] || s == fr[i] || s == std::string(names[i]).substr(0, 3)) {
      out = i;
      return true;
    }
  }
  return false;
}

// Builds the window from the settings; throws std::invalid_argument with the problem.
sms::SendingWindowConfig window_config(const ConfigView& c) {
  sms::SendingWindowConfig w;
  w.time_zone = c.str("time_zone");
  if (!parse_hhmm(c.str("window_open"), w.open_minute)) {
    throw std::invalid_argument("window_open: expected HH:MM");
  }
  if (!parse_hhmm(c.str("window_close"), w.close_minute)) {
    throw std::invalid_argument("window_close: expected HH:MM");
  }
  if (c.has("closed_weekdays")) {
    w.closed_weekdays.clear();
    for (const auto& d : c.strings("closed_weekdays")) {
      unsigned wd = 0;
      if (!parse_weekday(d, wd)) throw std::invalid_argument("closed_weekdays: '" + d + "'");
      w.closed_weekdays.push_back(wd);
    }
  }
  w.closed_on_public_holidays = c.boolean("public_holidays");
  for (const auto& d : c.strings("closed_dates")) {
    sms::LocalDate ld;
    if (std::sscanf(d.c_str(), "%d-%u-%u", &ld.year, &ld.month, &ld.day) != 3) {
      throw std::invalid_argument("closed_dates: '" + d + "' is not YYYY-MM-DD");
    }
    w.extra_closed_dates.push_back(ld);
  }
  return w;
}

// Messages per second towards one gateway, shared by the destinations of a group: core's token
// bucket with a burst of 1 (core/rate_bucket.h). A caller waits for its slot (a burst is spread,
// never dropped). Thread-safe.
class RateLimiter {
 public:
  explicit RateLimiter(double per_second) {
    if (per_second > 0) bucket_.emplace(per_second, 1);
  }
  void acquire() {
    if (!bucket_) return;
    for (Micros wait = bucket_->take(steady_micros()); wait > 0;
         wait = bucket_->take(steady_micros())) {
      std::this_thread::sleep_for(std::chrono::microseconds(wait));
    }
  }
  static std::shared_ptr<RateLimiter> shared(const std::string& group, double per_second) {
    static std::mutex mu;
    static std::map<std::string, std::weak_ptr<RateLimiter>> limiters;
    std::lock_guard<std::mutex> lock(mu);
    auto& w = limiters[group];
    if (auto l = w.lock()) return l;
    auto l = std::make_shared<RateLimiter>(per_second);
    w = l;
    return l;
  }

 private:
  std::optional<RateBucket> bucket_;
};

std::string text_of(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return "";
  const auto& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number()) return v.dump();
  return "";
}

// One configured SMS destination. deliver() runs on up to `concurrency` workers: each slot
// owns one curl handle; the driver is immutable; the store and the rate limiter are
// thread-safe and shared with the other SMS destinations of the process.
class SmsConnector final : public Connector {
 public:
  explicit SmsConnector(const ConnectorContext& ctx)
      : name_(ctx.name),
        clock_(*ctx.clock),
        metrics_(*ctx.metrics),
        max_retry_after_ms_(ctx.max_retry_after_ms) {
    const auto& c = ctx.config;
    try {
      driver_ = sms::make_sms_driver(c);
      window_ = std::make_unique<sms::SendingWindow>(window_config(c));
    } catch (const std::exception& e) {
      throw std::runtime_error("connector " + name_ + ": " + e.what());
    }
    window_on_ = c.boolean("window");
    sender_ = c.str("sender");
    region_ = c.str("default_region");
    max_segments_ = static_cast<size_t>(c.integer("max_segments"));
    price_ = c.number("price_per_segment_cents");
    reminder_offset_ = c.duration_ms("reminder_offset");
    unknown_wait_ = c.duration_ms("unknown_outcome_wait");
    unknown_check_ = std::max<Millis>(1, c.duration_ms("unknown_outcome_check"));
    inbound_token_ = c.str("inbound_token");
    transfer_ = curl_transfer_from(c, "connector " + name_);
    std::string group = c.str("rate_limit_group");
    limiter_ = RateLimiter::shared(group.empty() ? "destination:" + name_ : "group:" + group,
                                   c.number("rate_limit"));
    if (ctx.stores == nullptr) throw std::runtime_error("connector " + name_ + ": no store");
    store_ = ctx.stores->sms(clock_);
    for (int i = 0; i < ctx.concurrency; ++i) {
      CURL* h = curl_easy_init();
      if (h == nullptr) throw std::runtime_error("connector " + name_ + ": curl_easy_init failed");
      handles_.push_back(h);
    }
    metrics_.describe("relais_sms_sent_total", "counter", "SMS accepted by a gateway");
    metrics_.describe("relais_sms_segments_total", "counter", "SMS segments sent to a gateway");
    metrics_.describe("relais_sms_not_sent_total", "counter",
                      "SMS skipped, by reason (number, opt-out, window, RDV started)");
    metrics_.describe("relais_sms_dlr_total", "counter", "Delivery reports received, by state");
    metrics_.describe("relais_sms_optouts_total", "counter", "Numbers added to the opt-out list");
  }

  ~SmsConnector() override {
    for (CURL* h : handles_) curl_easy_cleanup(h);
  }

  // Connects to the gateway (TLS included) at the address the driver sends to; no SMS is sent.
  Status probe() override {
    sms::SmsToSend none;
    none.to = "+33600000000";
    none.reference = "probe";
    return probe_connection(driver_->build(none, clock_.now_ms()).url, transfer_);
  }

  Outcome deliver(const DeliveryRequest& req) override {
    const json& m = req.mapped != nullptr ? *req.mapped : json();
    std::string to_raw = text_of(m, "to"), text = text_of(m, "text");
    if (!m.is_object() || !m.contains("text")) {
      return Outcome::reject("mapping", 0,
                             "the SMS mapping must give an object with `to` and `text`");
    }
    // The region of a national number: the mapping's, else the postcode's, else the default.
    std::string region = text_of(m, "region");
    if (!region.empty() && !sms::known_region(region)) {
      return Outcome::reject("mapping", 0,
                             "region: '" + region + "' is not a phone region (FR, RE, GP …)");
    }
    sms::PhoneCheck pc = region.empty() ? sms::check_mobile(to_raw, text_of(m, "postcode"), region_)
                                        : sms::check_mobile(to_raw, "", region);
    if (!pc.ok) return not_sent("number", "SMS non envoyé : " + pc.reason);
    std::string hash = sms::optout_hash(pc.e164);
    std::optional<sms::OptOut> opted;
    try {
      opted = store_->find_optout(hash, sms::legacy_optout_hash(pc.e164));
    } catch (const std::exception& e) {
      return Outcome::retry("store", 0, std::string(e.what()) + ": will try again");
    }
    if (auto o = opted) {
      return not_sent("optout", "SMS non envoyé : le destinataire a demandé l'arrêt des SMS (" +
                                    o->keyword + ", " + format_rfc3339(o->created_at) + ")");
    }
    sms::SmsTextInfo info = sms::analyse_sms_text(text);
    if (auto why = sms::check_max_segments(info, max_segments_)) {
      return Outcome::reject("sms", 0, *why);
    }

    // When: the RDV start (never after it), the reminder's time, the sending window.
    Millis now = clock_.now_ms();
    std::optional<Millis> rdv_start, send_at;
    if (std::string s = text_of(m, "rdv_start"); !s.empty()) {
      Millis t = 0;
      if (!parse_rfc3339(s, t)) return Outcome::reject("mapping", 0, "rdv_start: not a timestamp");
      rdv_start = t;
    }
    if (std::string s = text_of(m, "send_at"); !s.empty()) {
      Millis t = 0;
      if (!parse_rfc3339(s, t)) return Outcome::reject("mapping", 0, "send_at: not a timestamp");
      send_at = t;
    } else if (m.contains("reminder") && m["reminder"].is_boolean() && m["reminder"].get<bool>() &&
               rdv_start) {
      send_at = window_->reminder_due(*rdv_start, reminder_offset_);
    }
    if (rdv_start && now >= *rdv_start) {
      return not_sent("rdv_started", "SMS non envoyé : le rendez-vous a commencé (" +
                                         window_->format_local(*rdv_start) + ")");
    }
    Millis due = std::max(now, send_at.value_or(now));
    if (window_on_) {
      sms::WindowDecision d = window_->schedule(due, rdv_start);
      if (d.skip) return not_sent("window", "SMS non envoyé : " + d.reason);
      due = d.send_at;
    } else if (rdv_start && due >= *rdv_start) {
      return not_sent("rdv_started",
                      "SMS non envoyé : l'heure d'envoi tombe après le début "
                      "du rendez-vous");
    }
    if (due > now) {
      return Outcome::defer(due, "SMS programmé pour " + window_->format_local(due) +
                                     (send_at && *send_at == due ? "" : " (plage d'envoi)"));
    }

    sms::SmsRecord rec;
    rec.delivery_id = req.delivery_id;
    rec.destination = name_;
    rec.driver = driver_->name();
    rec.number_hash = hash;
    rec.encoding = std::string(sms::to_string(info.encoding));
    rec.segments = static_cast<int>(info.segments);
    rec.cost_cents = sms::cost_estimate(info.segments, price_);
    std::string note;
    if (std::optional<Outcome> settled = start_send(rec, now, note)) return *settled;

    sms::SmsToSend sms;
    sms.to = pc.e164;
    sms.text = text;
    sms.ucs2 = info.encoding == sms::SmsEncoding::Ucs2;
    sms.sender = sender_;
    sms.reference = rec.reference;
    sms.client_ref = text_of(m, "reference");
    if (sms.client_ref.empty()) sms.client_ref = sms::send_reference(req.delivery_id, 1);

    limiter_->acquire();
    sms::Submission sub =
        sms::submit_sms(handles_.at(static_cast<size_t>(req.slot) % handles_.size()), *driver_, sms,
                        transfer_, clock_, max_retry_after_ms_);
    if (!sub.answered) {
      if (sub.not_sent) {
        // Certainly not sent (nothing reached the gateway): an ordinary retry.
        store_->answer(rec.delivery_id, rec.reference, "retry", "",
                       sub.outcome.text.substr(0, 200));
        return sub.outcome;
      }
      // Sent, no answer (a timeout, a connection cut): the gateway may have taken it. Wait for
      // its delivery report before sending again.
      store_->mark_unknown(rec.delivery_id, rec.reference, sub.outcome.text.substr(0, 200));
      rec.updated_at = clock_.now_ms();
      return waiting_for_report(rec, clock_.now_ms(), sub.outcome.text);
    }
    long status = sub.status;
    const sms::GatewayAnswer& a = sub.answer;
    std::string cost = " — " + std::to_string(info.segments) + " segment(s) " + rec.encoding +
                       ", ~" + std::to_string(rec.cost_cents).substr(0, 5) + " c";
    Outcome o;
    switch (a.kind) {
      case Outcome::Kind::Delivered:
        store_->answer(rec.delivery_id, rec.reference, a.state.empty() ? "accepted" : a.state,
                       a.gateway_ref, "");
        metrics_
            .counter("relais_sms_sent_total", {{"destination", name_}, {"encoding", rec.encoding}})
            .inc();
        metrics_.counter("relais_sms_segments_total", {{"destination", name_}}).inc(info.segments);
        o = Outcome::delivered(a.gateway_ref.empty() ? rec.reference : a.gateway_ref,
                               a.text + cost + note);
        break;
      case Outcome::Kind::Retry:
        // The gateway answered: it did not take the SMS.
        store_->answer(rec.delivery_id, rec.reference, "retry", "", a.text.substr(0, 200));
        o = sub.outcome;  // a retry, or a throttle (429, 503 with Retry-After)
        break;
      default:
        store_->answer(rec.delivery_id, rec.reference, "failed", "", a.text.substr(0, 200));
        o = Outcome::reject("http", static_cast<int>(status), a.text);
    }
    o.code = static_cast<int>(status);
    o.excerpt = sub.body.substr(0, 1024);
    return o;
  }

  std::optional<InboundResponse> inbound(const InboundRequest& in) override {
    try {
      return route(in);
    } catch (const std::exception& e) {
      log_error("sms", "connector " + name_ + ": inbound " + in.path + ": " + e.what());
      return InboundResponse{500, {{"error", "internal error"}, {"detail", "see the relais log"}}};
    }
  }

 private:
  static InboundResponse error(int status, const std::string& title, const std::string& detail) {
    return InboundResponse{status, {{"error", title}, {"detail", detail}}};
  }
  static std::string q(const InboundRequest& in, const char* key) {
    auto it = in.query.find(key);
    return it == in.query.end() ? "" : it->second;
  }

  std::optional<InboundResponse> route(const InboundRequest& in) {
    if (in.path == "inbound/dlr" || in.path == "inbound/mo") {
      bool ok = in.role == "system" || in.role == "admin" ||
                (!inbound_token_.empty() && constant_time_equals(q(in, "token"), inbound_token_));
      if (!ok) return error(401, "unauthorized", "a valid token is required");
      return in.path == "inbound/dlr" ? dlr(in) : mo(in);
    }
    if (in.path == "optouts" || in.path.rfind("optouts/", 0) == 0) {
      if (in.role != "admin")
        return error(403, "forbidden", "the opt-out list needs the admin role");
      return optouts(in);
    }
    if (in.path.rfind("records/", 0) == 0) {
      if (in.role.empty()) return error(401, "unauthorized", "a bearer token is required");
      if (in.method != "GET") return error(405, "method not allowed", "use GET");
      int64_t id = 0;
      try {
        id = std::stoll(in.path.substr(8));
      } catch (const std::exception&) {
        return error(400, "bad request", "records/{delivery id}");
      }
      auto r = store_->by_delivery(id);
      if (!r) return error(404, "not found", "no SMS record for delivery " + std::to_string(id));
      return InboundResponse{200,
                             {{"delivery_id", std::to_string(r->delivery_id)},
                              {"destination", r->destination},
                              {"driver", r->driver},
                              {"reference", r->reference},
                              {"gateway_ref", r->gateway_ref},
                              {"encoding", r->encoding},
                              {"segments", r->segments},
                              {"cost_cents", r->cost_cents},
                              {"state", r->state},
                              {"dlr_status", r->dlr_status},
                              {"detail", r->detail},
                              {"created_at", format_rfc3339(r->created_at)},
                              {"updated_at", format_rfc3339(r->updated_at)}}};
    }
    return std::nullopt;
  }

  // Delivery report. Kannel: ref (ours) + status (%d); OVH: id (its SMS id) + dlr.
  InboundResponse dlr(const InboundRequest& in) {
    std::string ref = q(in, "ref"), gw = q(in, "id");
    std::string st = q(in, "status");
    if (st.empty()) st = q(in, "dlr");
    int code = 0;
    try {
      code = std::stoi(st);
    } catch (const std::exception&) {
      return error(400, "bad request", "status (or dlr) must be a number");
    }
    if (ref.empty() && gw.empty()) return error(400, "bad request", "ref or id is required");
    std::string state;
    if (code & 1) {
      state = "delivered";
    } else if (code & (2 | 16)) {
      state = "failed";
    } else if (code & (4 | 8)) {
      state = "smsc";
    } else {
      state = "accepted";  // 32 and unknown types: intermediate, no progress
    }
    auto r = store_->report(ref, gw, state, code, q(in, "text").substr(0, 200));
    metrics_.counter("relais_sms_dlr_total", {{"destination", name_}, {"state", state}}).inc();
    if (!r) return error(404, "not found", "no SMS with this reference");
    return InboundResponse{200,
                           {{"delivery_id", std::to_string(r->delivery_id)}, {"state", r->state}}};
  }

  // A reply from a phone (Kannel sms-service get-url: from=%p&text=%a).
  InboundResponse mo(const InboundRequest& in) {
    std::string text = q(in, "text");
    if (!sms::is_stop_request(text)) return InboundResponse{200, {{"optout", false}}};
    sms::PhoneCheck pc = sms::check_mobile(q(in, "from"), "", region_);
    if (!pc.ok) {
      return InboundResponse{200, {{"optout", false}, {"reason", pc.reason}}};
    }
    sms::OptOut o{sms::optout_hash(pc.e164), 0, "mo:" + name_, sms::stop_keyword(text)};
    bool added = store_->add_optout(o);
    if (added) {
      metrics_.counter("relais_sms_optouts_total", {{"destination", name_}}).inc();
      log_info("sms", "connector " + name_ + ": a number was added to the opt-out list (reply " +
                          o.keyword + ")");
    }
    return InboundResponse{200, {{"optout", true}, {"hash", o.number_hash}, {"new", added}}};
  }

  InboundResponse optouts(const InboundRequest& in) {
    std::string hash, legacy;  // legacy: the unkeyed hash of a number given in clear
    if (in.path.size() > 8) hash = in.path.substr(8);
    if (std::string number = q(in, "number"); !number.empty()) {
      sms::PhoneCheck pc = sms::check_mobile(number, "", region_);
      if (!pc.ok) return error(400, "bad number", pc.reason);
      hash = sms::optout_hash(pc.e164);
      legacy = sms::legacy_optout_hash(pc.e164);
    }
    auto entry = [](const sms::OptOut& o) {
      return json{{"hash", o.number_hash},
                  {"created_at", format_rfc3339(o.created_at)},
                  {"source", o.source},
                  {"keyword", o.keyword}};
    };
    if (in.method == "GET") {
      if (!hash.empty()) {
        auto o = legacy.empty() ? store_->optout(hash) : store_->find_optout(hash, legacy);
        if (!o) return error(404, "not found", "this number is not on the opt-out list");
        return InboundResponse{200, entry(*o)};
      }
      int limit = 100;
      try {
        if (!q(in, "limit").empty()) limit = std::clamp(std::stoi(q(in, "limit")), 1, 1000);
      } catch (const std::exception&) {
        return error(400, "bad request", "limit must be a number");
      }
      json items = json::array();
      auto list = store_->optouts(limit, q(in, "after"));
      for (const auto& o : list) items.push_back(entry(o));
      json out = {{"items", items}};
      if (static_cast<int>(list.size()) == limit) out["next_after"] = list.back().number_hash;
      return InboundResponse{200, out};
    }
    if (in.method == "POST") {
      if (hash.empty()) return error(400, "bad request", "give the number (?number=…)");
      sms::OptOut o{hash, 0, "admin:" + in.actor, "ADMIN"};
      bool added = store_->add_optout(o);
      log_info("sms", "opt-out list: entry added by " + in.actor);
      auto stored = store_->optout(hash);
      if (!stored) return error(503, "not stored", "the opt-out list cannot be written");
      return InboundResponse{added ? 201 : 200, entry(*stored)};
    }
    if (in.method == "DELETE") {
      if (hash.empty()) return error(400, "bad request", "optouts/{hash} or ?number=…");
      bool removed = store_->remove_optout(hash);
      if (!legacy.empty() && legacy != hash) removed = store_->remove_optout(legacy) || removed;
      if (!removed) {
        return error(404, "not found", "this number is not on the opt-out list");
      }
      log_info("sms", "opt-out list: entry removed by " + in.actor);
      return InboundResponse{200, {{"removed", hash}}};
    }
    return error(405, "method not allowed", "use GET, POST or DELETE");
  }

  // Decides from the delivery's SMS record whether this attempt sends, and starts the send
  // (rec.reference is then the send's reference; `note` tells why it is a second send).
  // Returns the outcome instead when it must not send: the gateway took it already (no second
  // SMS), its earlier send's result is unknown and the wait for its report is not over, or the
  // store fails.
  std::optional<Outcome> start_send(sms::SmsRecord& rec, Millis now, std::string& note) {
    for (int tries = 0; tries < 3; ++tries) {
      std::string from;  // the state the record must still be in ("" = no record yet)
      if (auto prev = store_->by_delivery(rec.delivery_id)) {
        if (sms::state_rank(prev->state) >= 1 && prev->state != "failed") {
          return Outcome::delivered(prev->gateway_ref.empty() ? prev->reference : prev->gateway_ref,
                                    "already accepted by the gateway at " +
                                        format_rfc3339(prev->created_at) + " (" + prev->state +
                                        "): not sent again");
        }
        if (prev->state == "submitting") {
          // Found at restart: relais stopped after sending, before saving the answer.
          store_->mark_unknown(prev->delivery_id, prev->reference,
                               "relais s'est arrêté avant d'enregistrer la réponse de la "
                               "passerelle");
          continue;  // read it again: a report may have settled it meanwhile
        }
        if (prev->state == "unknown") {
          if (now < prev->updated_at + unknown_wait_) {
            return waiting_for_report(*prev, now, prev->detail);
          }
          note = " (no delivery report within " + human_duration(unknown_wait_) +
                 " of an unknown result: sent again)";
        } else if (prev->state == "failed" && prev->dlr_status != 0) {
          note = " (the previous send was reported not delivered: sent again)";
        }
        from = prev->state;
        rec.reference = prev->reference;
      }
      switch (store_->begin_attempt(rec, from)) {
        case sms::SmsStore::Begin::Started:
          return std::nullopt;
        case sms::SmsStore::Begin::Changed:
          continue;  // a report moved the record between the read and the write
        case sms::SmsStore::Begin::Failed:
          break;
      }
      break;
    }
    return Outcome::retry("store", 0, "cannot write the SMS record: will try again");
  }

  // The record's send went out but its result is unknown: wait (not an attempt) for a delivery
  // report until updated_at + unknown_outcome_wait, looking again every unknown_outcome_check.
  Outcome waiting_for_report(const sms::SmsRecord& r, Millis now, const std::string& cause) {
    Millis until = r.updated_at + unknown_wait_;
    Outcome o = Outcome::defer(
        std::min(until, now + unknown_check_),
        "résultat de l'envoi inconnu" + (cause.empty() ? std::string() : " (" + cause + ")") +
            " : la passerelle a peut-être reçu le SMS ; en attente de son accusé de réception "
            "jusqu'à " +
            window_->format_local(until) + ", puis renvoi s'il n'arrive pas");
    o.error_class = kUnknownOutcome;
    return o;
  }

  Outcome not_sent(const std::string& why, std::string reason) {
    metrics_.counter("relais_sms_not_sent_total", {{"destination", name_}, {"reason", why}}).inc();
    return Outcome::skip(std::move(reason));
  }

  std::string name_;
  const Clock& clock_;
  Metrics& metrics_;
  std::unique_ptr<sms::SmsDriver> driver_;
  std::unique_ptr<sms::SendingWindow> window_;
  bool window_on_ = true;
  std::string sender_, region_, inbound_token_;
  size_t max_segments_ = 3;
  double price_ = 5;
  Millis reminder_offset_ = 24 * 3600 * 1000LL;
  Millis unknown_wait_ = 5 * 60 * 1000LL, unknown_check_ = 15 * 1000LL;
  CurlTransfer transfer_;
  int64_t max_retry_after_ms_;
  std::shared_ptr<RateLimiter> limiter_;
  std::shared_ptr<sms::SmsStore> store_;
  std::vector<CURL*> handles_;
};

}  // namespace

void register_sms_connector(ConnectorRegistry& registry) {
  ConnectorKind k;
  k.name = "sms";
  k.description =
      "SMS through Kannel, OVH or an HTTP provider: mobile numbers only, sending window, "
      "reminders, opt-out, delivery reports";
  k.spec = &sms_spec();
  k.check = [](const ConfigView& c, const std::string& file, std::vector<ConfigError>& errors) {
    sms::check_sms_driver(c, file, errors);
    check_tls_client(c.object("tls"), file, errors);
    try {
      sms::SendingWindow w(window_config(c));
    } catch (const std::exception& e) {
      errors.push_back(error_at(c.node(), file, c.path(), e.what()));
    }
  };
  k.create = [](const ConnectorContext& ctx) -> std::unique_ptr<Connector> {
    return std::make_unique<SmsConnector>(ctx);
  };
  registry.add(std::move(k));
}

}  // namespace relais

// The console's endpoints: session (login, logout), users, API tokens, audit trail, overview,
// the support desk (deliveries by business object, detail, bulk retry) and destinations.

#include <Poco/Net/HTTPCookie.h>

#include <algorithm>
#include <sstream>

#include "api/api_context.h"
#include "api/desk_text.h"
#include "api/http_util.h"
#include "api/node_reports.h"
#include "core/crypto.h"
#include "core/log.h"

namespace relais::api {
namespace {

using json = nlohmann::json;

const std::vector<std::string> kPeopleRoles = {"admin", "support", "auditor"};
constexpr size_t kBulkRetryMax = 1000;

bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  return std::all_of(n.begin(), n.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '.' || c == '-' || c == '_' || c == '@';
  });
}

void set_session_cookie(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp,
                        const std::string& value, int max_age) {
  std::string cookie = std::string(kSessionCookie) + "=" + value +
                       "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" + std::to_string(max_age);
  if (req.secure() || lower(req.get("X-Forwarded-Proto", "")) == "https") cookie += "; Secure";
  resp.add("Set-Cookie", cookie);
}

json user_json(const UserRecord& u) {
  return {{"name", u.name},
          {"role", u.role},
          {"created_at", format_rfc3339(u.created_at)},
          {"created_by", u.created_by},
          {"disabled", u.disabled}};
}

json token_json(const ApiTokenRecord& t) {
  json j = {{"name", t.name},
            {"role", t.role},
            {"sources", t.sources},
            {"created_at", format_rfc3339(t.created_at)},
            {"created_by", t.created_by},
            {"revoked", t.revoked_at != 0},
            {"origin", "console"}};
  if (t.revoked_at) j["revoked_at"] = format_rfc3339(t.revoked_at);
  return j;
}

json audit_json(const AuditEntry& e) {
  return {{"id", std::to_string(e.id)}, {"at", format_rfc3339(e.at)},
          {"actor", e.actor},           {"role", e.role},
          {"action", e.action},         {"object", e.object},
          {"detail", e.detail},         {"address", e.address}};
}

std::string csv_field(const std::string& s) {
  // Quote every field; neutralise formulas for spreadsheet programs.
  std::string v = s;
  if (!v.empty() && (v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@')) v = "'" + v;
  std::string out = "\"";
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

bool require_console(RequestContext& rc) {
  if (rc.shared.console != nullptr) return true;
  send_error(rc.resp, 503, "unavailable", "the console store is not open");
  return false;
}

bool parse_time(const std::string& key, const std::string& v, Millis& out,
                Poco::Net::HTTPServerResponse& resp) {
  if (parse_rfc3339(v, out)) return true;
  send_error(resp, 400, "bad filter", key + " must be a date (2026-11-23) or an RFC 3339 time");
  return false;
}

bool parse_int(const std::string& key, const std::string& v, int64_t& out,
               Poco::Net::HTTPServerResponse& resp) {
  try {
    size_t used = 0;
    out = std::stoll(v, &used);
    if (used == v.size()) return true;
  } catch (const std::exception&) {
  }
  send_error(resp, 400, "bad parameter", key + " must be a number");
  return false;
}

// Reads the desk filter from query parameters or a JSON object (bulk retry).
bool desk_filter_from(const std::map<std::string, std::string>& kv, DeskFilter& f,
                      Poco::Net::HTTPServerResponse& resp, bool paging) {
  for (const auto& [k, v] : kv) {
    if (v.empty()) continue;
    if (k == "state") {
      if (v != "retrying" && v != "dead" && v != "failed") {
        send_error(resp, 400, "bad filter", "state is failed (retrying), retrying or dead");
        return false;
      }
      f.states = {v == "failed" ? "retrying" : v};
    } else if (k == "destination") {
      f.destination = v;
    } else if (k == "route") {
      f.route = v;
    } else if (k == "class" || k == "error_class") {
      f.error_class = v;
    } else if (k == "q" || k == "text") {
      f.text = correlation_from_label(v);
    } else if (k == "from" || k == "to") {
      if (!parse_time(k, v, k == "from" ? f.from : f.to, resp)) return false;
    } else if (paging && k == "cursor") {
      if (!parse_int(k, v, f.before_id, resp)) return false;
    } else if (paging && k == "limit") {
      int64_t n = 0;
      if (!parse_int(k, v, n, resp)) return false;
      f.limit = static_cast<int>(std::clamp<int64_t>(n, 1, 500));
    } else {
      send_error(resp, 400, "bad filter",
                 "unknown parameter '" + k + "' (state, destination, route, class, q, from, to" +
                     (paging ? ", cursor, limit)" : ")"));
      return false;
    }
  }
  return true;
}

json desk_item_json(const DeskItem& d) {
  Explanation e = explain(d.last_class, d.last_code, d.last_text + " " + d.last_excerpt);
  return {{"delivery_id", std::to_string(d.delivery_id)},
          {"message_id", d.message_id},
          {"object", business_label(d.correlation)},
          {"correlation_key", d.correlation},
          {"type", d.type},
          {"source", d.source},
          {"destination", d.destination},
          {"route", d.route},
          {"state", d.state},
          {"attempts", d.attempts},
          {"class", d.last_class},
          {"code", d.last_code},
          {"text", d.last_text},
          {"explanation", e.title},
          {"action", e.action},
          {"updated_at", format_rfc3339(d.updated_at)},
          {"received_at", format_rfc3339(d.received_at)}};
}

json yaml_to_json(const YAML::Node& n, bool hide) {
  if (n.IsMap()) {
    json out = json::object();
    for (const auto& kv : n) {
      std::string key = kv.first.as<std::string>();
      std::string k = lower(key);
      bool secret =
          k.find("password") != std::string::npos || k.find("secret") != std::string::npos ||
          k.find("token") != std::string::npos || k.find("key") != std::string::npos ||
          k.find("authorization") != std::string::npos || k.find("credential") != std::string::npos;
      out[key] = yaml_to_json(kv.second, hide || secret);
    }
    return out;
  }
  if (n.IsSequence()) {
    json out = json::array();
    for (const auto& e : n) out.push_back(yaml_to_json(e, hide));
    return out;
  }
  // A value that is not secret by its key may still carry one in a URL (token=…, user:pass@).
  if (n.IsScalar()) return hide ? json("••• (secret masqué)") : json(redact_url(n.Scalar()));
  return nullptr;
}

void overview(RequestContext& rc) {
  Hub& hub = rc.shared.hub;
  Millis now = hub.clock().now_ms();
  // "Today" starts at local midnight (the server's time zone).
  time_t secs = static_cast<time_t>(now / 1000);
  struct tm local {};
  localtime_r(&secs, &local);
  local.tm_hour = local.tm_min = local.tm_sec = 0;
  Millis midnight = static_cast<Millis>(mktime(&local)) * 1000;
  std::map<std::string, DestinationFigures> figures;
  for (auto& f : rc.shared.console->figures(midnight, now)) figures[f.destination] = f;
  json out = {{"at", format_rfc3339(now)}};
  // On a cluster, every node's queues (each holds its partitions' only).
  std::map<std::string, DestinationStats> stats = dispatch_figures(rc.shared, out);
  json items = json::array();
  for (const auto& [name, dest] : rc.shared.config.destinations) {
    const DestinationFigures& f = figures[name];
    const DestinationStats& s = stats[name];
    // Circuit: "open" when the latest outcome of the destination is a failure.
    bool failing = f.last_failure > f.last_success;
    json j = {
        {"destination", name},
        {"connector", dest.connector},
        {"delivered_today", f.delivered},
        {"failed_today", f.failed},
        {"dead_today", f.dead},
        {"queue_depth", s.queued},
        {"in_flight", s.in_flight},
        {"held_keys", s.held_keys},
        {"throttled_until", s.throttled_until ? json(format_rfc3339(s.throttled_until)) : json()},
        {"throttled_accounts", s.throttled_scopes},
        {"oldest_pending_age_s", s.oldest_received ? (now - s.oldest_received) / 1000 : 0},
        {"circuit", failing ? "open" : "closed"},
        {"last_success", f.last_success ? json(format_rfc3339(f.last_success)) : json()},
        {"last_failure", f.last_failure ? json(format_rfc3339(f.last_failure)) : json()},
        {"delivered_per_hour", f.hourly}};
    items.push_back(std::move(j));
  }
  out["destinations"] = std::move(items);
  send_json(rc.resp, 200, out);
}

json attempt_json(const Attempt& a, PayloadMasker& view) {
  json j = {{"at", format_rfc3339(a.at)},
            {"duration_ms", a.duration_ms},
            {"outcome", a.outcome},
            {"class", a.error_class},
            {"code", a.code},
            {"text", view.text(a.text)}};
  // A deferral (a reminder's time, the sending window) is not a failure: its own text says it.
  if (!a.outcome.empty() && a.outcome != "delivered" && a.outcome != "skip" &&
      a.outcome != "defer") {
    Explanation e = explain(a.error_class, a.code, a.text + " " + a.excerpt);
    j["explanation"] = e.title;
  }
  if (!a.excerpt.empty()) j["response_excerpt"] = view.excerpt(a.excerpt);
  return j;
}

void delivery_detail(RequestContext& rc) {
  int64_t id = 0;
  const std::string& text = rc.params["id"];
  try {
    size_t used = 0;
    id = std::stoll(text, &used);
    if (used != text.size()) id = 0;
  } catch (const std::exception&) {
    id = 0;
  }
  auto d0 = id > 0 ? rc.shared.hub.store().delivery(id) : std::nullopt;
  if (!d0) return send_error(rc.resp, 404, "not found", "no delivery " + text);
  auto rec = rc.shared.hub.store().message(d0->message_id, true);
  if (!rec) return send_error(rc.resp, 404, "not found", "no message for delivery " + text);
  const Delivery* d = nullptr;
  for (const auto& x : rec->deliveries) {
    if (x.id == id) d = &x;
  }
  if (d == nullptr) return send_error(rc.resp, 404, "not found", "no delivery " + text);
  const Message& m = *rec->message;
  const size_t max_depth = static_cast<size_t>(rc.shared.config.max_depth);
  PayloadMasker view(rc, m.source, stored_view(m.body, max_depth));
  json out = {
      {"delivery_id", std::to_string(d->id)},
      {"message_id", m.id},
      {"object", business_label(m.correlation)},
      {"correlation_key", m.correlation},
      {"type", m.type},
      {"source", m.source},
      {"received_at", format_rfc3339(m.received_at)},
      {"destination", d->destination},
      {"route", d->route},
      {"state", rc.shared.hub.dispatcher().in_flight(d->id) ? "in_flight" : to_string(d->state)},
      {"attempts_count", d->attempts},
      {"updated_at", format_rfc3339(d->updated_at)}};
  if (!d->mapping.empty()) {
    out["mapping"] = d->mapping;
    out["mapping_version"] = d->mapping_version;
  }
  if (!d->flags.empty()) out["flags"] = d->flags;
  if (!d->external_ref.empty()) out["external_ref"] = d->external_ref;
  if (!d->last_outcome.empty() && d->last_outcome != "delivered") {
    // The peer's own words (e.g. EWS's ErrorNonExistentMailbox) are in the last excerpt.
    std::string said = d->history.empty() ? "" : " " + d->history.back().excerpt;
    Explanation e = explain(d->last_class, d->last_code, d->last_text + said);
    out["error"] = {{"class", d->last_class},
                    {"code", d->last_code},
                    {"text", view.text(d->last_text)},
                    {"explanation", e.title},
                    {"action", e.action}};
  }
  json attempts = json::array();
  for (const auto& a : d->history) attempts.push_back(attempt_json(a, view));
  out["attempts"] = attempts;
  out["payload_before"] = view.body();
  if (d->payload) {
    out["payload_after"] =
        view.derived(stored_view(*d->payload, max_depth), d->mapping, d->mapping_version);
  } else {
    out["payload_after"] = nullptr;
  }
  // An erased or purged message: its payloads are the tombstone, shown as such.
  if (json t = erased_view(m.body); !t.is_null()) out["erased"] = t;
  if (!m.unreadable.empty()) out["unreadable"] = m.unreadable;  // encrypted under a missing key
  out["masked"] = view.masked;
  if (view.personal) rc.audit("payload.view", "delivery:" + text, "payload with personal data");
  send_json(rc.resp, 200, out);
}

void bulk_retry(RequestContext& rc) {
  json body;
  if (!read_json_object(rc.req, rc.resp, rc.shared.config.max_body, body)) return;
  std::map<std::string, std::string> kv;
  if (body.contains("filter")) {
    if (!body["filter"].is_object()) {
      return send_error(rc.resp, 400, "bad request", "filter is an object of strings");
    }
    for (auto it = body["filter"].begin(); it != body["filter"].end(); ++it) {
      if (!it.value().is_string()) {
        return send_error(rc.resp, 400, "bad filter", it.key() + " must be a string");
      }
      kv[it.key()] = it.value().get<std::string>();
    }
  }
  DeskFilter f;
  if (!desk_filter_from(kv, f, rc.resp, false)) return;
  int64_t count = rc.shared.console->desk_count(f);
  if (!body.contains("confirm")) {
    return send_json(rc.resp, 200,
                     {{"count", count},
                      {"max", kBulkRetryMax},
                      {"confirm_with", {{"filter", kv}, {"confirm", count}}}});
  }
  if (!body["confirm"].is_number_integer() || body["confirm"].get<int64_t>() != count) {
    return send_error(rc.resp, 409, "count changed",
                      "the filter now matches " + std::to_string(count) +
                          " deliveries: ask for the count again, then confirm it",
                      {{"count", count}});
  }
  auto ids = rc.shared.console->desk_ids(f, kBulkRetryMax);
  int64_t retried = 0, refused = 0;
  for (int64_t id : ids) {
    Status s = rc.shared.hub.dispatcher().retry(id);
    s.ok ? ++retried : ++refused;
  }
  std::string filter_text = json(kv).dump();
  rc.audit("delivery.bulk_retry", "deliveries",
           std::to_string(retried) + " relancée(s), " + std::to_string(refused) +
               " refusée(s); filtre " + filter_text);
  send_json(rc.resp, 200, {{"count", count}, {"retried", retried}, {"refused", refused}});
}

// POST /api/v1/privacy/erase (docs/security.md, "Erasure"). Without force, refused while
// deliveries of the key are active; with force, those are discarded first through the
// dispatcher (so none is sent afterwards), then the payloads are erased. Audited with the key and
// the counts only.
void erase_person(RequestContext& rc) {
  json body;
  if (!read_json_object(rc.req, rc.resp, rc.shared.config.max_body, body)) return;
  const json correlation = body.value("correlation", json());
  const json reason = body.value("reason", json());
  const json force = body.value("force", json(false));
  if (!correlation.is_string() || correlation.get<std::string>().empty()) {
    return send_error(rc.resp, 400, "no correlation key",
                      "send {\"correlation\": \"individu:58123\", \"reason\": \"…\"}");
  }
  if (!reason.is_string() || reason.get<std::string>().empty()) {
    return send_error(rc.resp, 400, "no reason", "say why the payloads are erased (\"reason\")");
  }
  if (!force.is_boolean()) return send_error(rc.resp, 400, "bad force", "force is true or false");
  ErasureRequest r;
  r.correlation = correlation.get<std::string>();
  r.reason = reason.get<std::string>();
  r.by = rc.who.name;
  r.at = rc.shared.hub.clock().now_ms();
  ErasureResult res;
  Status s = rc.shared.hub.store().erase(r, res);
  int64_t discarded = 0;
  if (!s.ok && s.http_status == 409 && force.get<bool>()) {
    int64_t busy = 0;
    for (int64_t id : res.active) {
      Status d = rc.shared.hub.dispatcher().discard(id, "effacement des données: " + r.reason);
      d.ok ? ++discarded : ++busy;
    }
    if (busy > 0) {
      rc.audit("privacy.erase", r.correlation,
               "refusé: " + std::to_string(busy) + " envoi(s) en cours; " +
                   std::to_string(discarded) + " abandonné(s)");
      return send_error(rc.resp, 409, "deliveries in flight",
                        std::to_string(busy) +
                            " delivery(ies) of this key are being attempted right now: try again "
                            "in a moment",
                        {{"active", busy}, {"discarded", discarded}});
    }
    r.force = true;
    s = rc.shared.hub.store().erase(r, res);
  }
  if (!s.ok) {
    if (s.http_status == 409) {
      rc.audit("privacy.erase", r.correlation,
               "refusé: " + std::to_string(res.active.size()) + " envoi(s) actif(s)");
      return send_error(rc.resp, 409, s.error, s.detail,
                        {{"active", static_cast<int64_t>(res.active.size())}});
    }
    return send_error(rc.resp, s.http_status, s.error, s.detail);
  }
  rc.audit("privacy.erase", r.correlation,
           std::to_string(res.messages) + " message(s), " + std::to_string(res.deliveries) +
               " envoi(s), " + std::to_string(res.attempts) + " tentative(s) effacés; " +
               std::to_string(discarded) + " envoi(s) abandonné(s)");
  send_json(rc.resp, 200,
            {{"correlation", r.correlation},
             {"messages", res.messages},
             {"deliveries", res.deliveries},
             {"attempts", res.attempts},
             {"discarded", discarded},
             {"wal_truncated", res.checkpointed},
             {"tombstone", json::parse(erasure_tombstone(r))}});
}

json rekey_json(const RekeyProgress& p) {
  return {{"active", p.active},         {"to_do", p.to_do},         {"done", p.done},
          {"unreadable", p.unreadable}, {"remaining", p.remaining}, {"running", p.running},
          {"finished", p.finished},     {"error", p.error}};
}

// POST /api/v1/store/rekey (docs/operations.md, "Rotating the encryption key"): starts the
// re-encryption in the background (or answers the run already going); GET reads its progress.
void start_rekey(RequestContext& rc) {
  RekeyRequest r;
  if (rc.req.getContentLength() > 0) {
    json body;
    if (!read_json_object(rc.req, rc.resp, rc.shared.config.max_body, body)) return;
    const json batch = body.value("batch", json(r.batch));
    if (!batch.is_number_integer() || batch.get<int64_t>() < 1 || batch.get<int64_t>() > 100000) {
      return send_error(rc.resp, 400, "bad batch", "batch is a number of rows, 1 to 100000");
    }
    r.batch = batch.get<int64_t>();
  }
  if (!rc.shared.hub.store_cipher()) {
    return send_error(rc.resp, 409, "encryption not configured",
                      "configure store.encryption (an active key) and restart relais first");
  }
  bool started = rc.shared.rekey.start(r);
  if (started) {
    rc.audit("store.rekey", "key:" + rc.shared.hub.store_cipher()->active(),
             "ré-chiffrement lancé (lots de " + std::to_string(r.batch) + ")");
  }
  send_json(rc.resp, 202, rekey_json(rc.shared.rekey.progress()));
}

// POST /api/v1/retention/run (docs/security.md, "Retention"): the purge now, as the schedule runs
// it (audited by the job as retention.run, naming who asked); a dry run changes nothing and
// answers what would go (audited here as retention.dry_run).
void run_retention(RequestContext& rc) {
  json body = json::object();
  if (rc.req.getContentLength() > 0 &&
      !read_json_object(rc.req, rc.resp, rc.shared.config.max_body, body)) {
    return;
  }
  const json dry = body.value("dry_run", json(false));
  if (!dry.is_boolean()) return send_error(rc.resp, 400, "bad dry_run", "dry_run is true or false");
  if (rc.shared.retention == nullptr) {
    return send_error(rc.resp, 503, "no retention job", "the purge job is not running");
  }
  RetentionResult r;
  Status s = rc.shared.retention->run(dry.get<bool>(), rc.who.name, r);
  if (dry.get<bool>()) rc.audit("retention.dry_run", "store", retention_summary(r));
  if (!s.ok) return send_error(rc.resp, s.http_status, s.error, s.detail);
  send_json(rc.resp, 200, retention_json(r, dry.get<bool>()));
}

void create_user(RequestContext& rc) {
  json body;
  if (!read_json_object(rc.req, rc.resp, rc.shared.config.max_body, body)) return;
  std::string name = body.value("name", ""), role = body.value("role", ""),
              password = body.value("password", "");
  if (!valid_name(name)) {
    return send_error(rc.resp, 400, "bad name",
                      "a user name is 1 to 64 letters, digits, '.', '-', '_' or '@'");
  }
  if (std::find(kPeopleRoles.begin(), kPeopleRoles.end(), role) == kPeopleRoles.end()) {
    return send_error(rc.resp, 400, "bad role", "role is admin, support or auditor");
  }
  if (password.size() < 12) {
    return send_error(rc.resp, 400, "weak password", "a password has at least 12 characters");
  }
  UserRecord u{name, role, hash_password(password), 0, rc.who.name, false};
  Status s = rc.shared.console->add_user(u);
  if (!s.ok) return send_error(rc.resp, s.http_status, s.error, s.detail);
  rc.audit("user.create", "user:" + name, "role " + role);
  send_json(rc.resp, 201, user_json(*rc.shared.console->user(name)));
}

void update_user(RequestContext& rc) {
  json body;
  if (!read_json_object(rc.req, rc.resp, rc.shared.config.max_body, body)) return;
  const std::string& name = rc.params["name"];
  std::optional<std::string> role, hash;
  std::optional<bool> disabled;
  std::string what;
  if (body.contains("role")) {
    role = body.value("role", "");
    if (std::find(kPeopleRoles.begin(), kPeopleRoles.end(), *role) == kPeopleRoles.end()) {
      return send_error(rc.resp, 400, "bad role", "role is admin, support or auditor");
    }
    what += "role " + *role + "; ";
  }
  if (body.contains("password")) {
    std::string pw = body.value("password", "");
    if (pw.size() < 12) {
      return send_error(rc.resp, 400, "weak password", "a password has at least 12 characters");
    }
    hash = hash_password(pw);
    what += "password changed; ";
  }
  if (body.contains("disabled")) {
    if (!body["disabled"].is_boolean()) {
      return send_error(rc.resp, 400, "bad request", "disabled is true or false");
    }
    disabled = body["disabled"].get<bool>();
    what += *disabled ? "disabled; " : "enabled; ";
  }
  if (what.empty()) {
    return send_error(rc.resp, 400, "bad request",
                      "send {\"role\"}, {\"password\"} and/or {\"disabled\"}");
  }
  Status s = rc.shared.console->update_user(name, role, hash, disabled);
  if (!s.ok) return send_error(rc.resp, s.http_status, s.error, s.detail);
  rc.audit("user.update", "user:" + name, what);
  // The user's sessions end on every node. When they cannot (the shared sessions unreachable,
  // so no session is accepted meanwhile), the change is stored and the caller is told to send
  // it again: a disabled user's session must not come back with the sessions.
  Status ended = rc.shared.sessions.remove_user(name);
  if (!ended.ok) {
    rc.resp.set("Retry-After", "5");
    return send_error(rc.resp, 503, ended.error,
                      "the change is stored but the user's sessions could not be ended (" +
                          ended.detail + "); send it again");
  }
  send_json(rc.resp, 200, user_json(*rc.shared.console->user(name)));
}

void create_token(RequestContext& rc) {
  json body;
  if (!read_json_object(rc.req, rc.resp, rc.shared.config.max_body, body)) return;
  std::string name = body.value("name", ""), role = body.value("role", "");
  if (!valid_name(name)) {
    return send_error(rc.resp, 400, "bad name",
                      "a token name is 1 to 64 letters, digits, '.', '-', '_' or '@'");
  }
  const auto& roles = all_roles();
  if (std::find(roles.begin(), roles.end(), role) == roles.end()) {
    return send_error(rc.resp, 400, "bad role", "role is system, admin, support or auditor");
  }
  for (const auto& t : rc.shared.config.tokens) {
    if (t.name == name) {
      return send_error(rc.resp, 409, "conflict",
                        "a token named '" + name + "' is in the configuration");
    }
  }
  std::vector<std::string> sources;
  if (body.contains("sources")) {
    if (!body["sources"].is_array()) {
      return send_error(rc.resp, 400, "bad request", "sources is a list of source names");
    }
    for (const auto& s : body["sources"]) {
      if (!s.is_string() || !rc.shared.hub.has_source(s.get<std::string>())) {
        return send_error(rc.resp, 400, "unknown source", "sources must name configured sources");
      }
      sources.push_back(s.get<std::string>());
    }
  }
  std::string value = "rls_" + random_hex(24);
  ApiTokenRecord t{name, role, sources, sha256_hex(value), 0, rc.who.name, 0};
  Status s = rc.shared.console->add_token(t);
  if (!s.ok) return send_error(rc.resp, s.http_status, s.error, s.detail);
  rc.audit("token.create", "token:" + name, "role " + role);
  rc.shared.state.changes->publish(ChangeBus::kTokens);  // the other nodes re-read their tokens
  json out = {{"name", name}, {"role", role}, {"sources", sources}, {"token", value}};
  out["note"] = "the token is shown once; relais keeps only its SHA-256";
  send_json(rc.resp, 201, out);
}

void list_audit(RequestContext& rc, bool csv) {
  AuditFilter f;
  for (const auto& [k, v] : rc.uri.getQueryParameters()) {
    if (v.empty()) continue;
    if (k == "actor") {
      f.actor = v;
    } else if (k == "action") {
      f.action = v;
    } else if (k == "object") {
      f.object = v;
    } else if (k == "from" || k == "to") {
      if (!parse_time(k, v, k == "from" ? f.from : f.to, rc.resp)) return;
    } else if (k == "cursor") {
      if (!parse_int(k, v, f.before_id, rc.resp)) return;
    } else if (k == "limit") {
      int64_t n = 0;
      if (!parse_int(k, v, n, rc.resp)) return;
      f.limit = static_cast<int>(std::clamp<int64_t>(n, 1, csv ? 100000 : 500));
    } else {
      return send_error(
          rc.resp, 400, "bad filter",
          "unknown parameter '" + k + "' (actor, action, object, from, to, cursor, limit)");
    }
  }
  if (csv) {
    if (f.limit == 100) f.limit = 100000;
    std::ostringstream out;
    out << "id,at,actor,role,action,object,detail,address\r\n";
    for (const auto& e : rc.shared.console->audit_entries(f)) {
      out << e.id << "," << csv_field(format_rfc3339(e.at)) << "," << csv_field(e.actor) << ","
          << csv_field(e.role) << "," << csv_field(e.action) << "," << csv_field(e.object) << ","
          << csv_field(e.detail) << "," << csv_field(e.address) << "\r\n";
    }
    rc.audit("audit.export", "audit", "CSV");
    std::string text = out.str();
    rc.resp.setStatus(Poco::Net::HTTPResponse::HTTP_OK);
    rc.resp.setContentType("text/csv; charset=utf-8");
    rc.resp.set("Content-Disposition", "attachment; filename=\"relais-audit.csv\"");
    rc.resp.setContentLength(static_cast<std::streamsize>(text.size()));
    rc.resp.send() << text;
    return;
  }
  auto entries = rc.shared.console->audit_entries(f);
  json items = json::array();
  for (const auto& e : entries) items.push_back(audit_json(e));
  json out = {{"items", items}};
  out["next_cursor"] = static_cast<int>(entries.size()) == f.limit && !entries.empty()
                           ? json(std::to_string(entries.back().id))
                           : json(nullptr);
  send_json(rc.resp, 200, out);
}

void destinations(RequestContext& rc) {
  json items = json::array();
  for (const auto& [name, d] : rc.shared.config.destinations) {
    items.push_back({{"name", name},
                     {"connector", d.connector},
                     {"concurrency", d.concurrency},
                     {"on_dead", d.hold_on_dead ? "hold" : "release"},
                     {"retry",
                      {{"initial_ms", d.retry.initial_ms},
                       {"max_ms", d.retry.max_ms},
                       {"max_attempts", d.retry.max_attempts}}},
                     {"settings", yaml_to_json(d.settings.node(), false)}});
  }
  send_json(rc.resp, 200, {{"items", items}});
}

void probe(RequestContext& rc) {
  const std::string& name = rc.params["name"];
  Connector* c = rc.shared.hub.connector(name);
  if (c == nullptr) return send_error(rc.resp, 404, "not found", "no destination '" + name + "'");
  std::string ignored;
  read_body(rc.req, rc.shared.config.max_body, ignored, &rc.resp);
  Millis t0 = rc.shared.hub.clock().now_ms();
  Status s = c->probe();
  Millis took = rc.shared.hub.clock().now_ms() - t0;
  rc.audit("destination.probe", "destination:" + name, s.ok ? "ok" : s.error);
  json out = {{"destination", name}, {"ok", s.ok}, {"duration_ms", took}};
  if (!s.ok) {
    out["error"] = s.error;
    out["detail"] = s.detail;
  }
  send_json(rc.resp, 200, out);
}

}  // namespace

void RequestContext::audit(const std::string& action, const std::string& object,
                           const std::string& detail) const {
  if (shared.console == nullptr) return;
  shared.console->audit(AuditEntry{0, 0, who.name, who.role, action, object, detail, address});
}

namespace {

// The declared paths of a source, or of a mapping version; a declaration that does not parse
// masks the whole document (a safe default, never a clear view).
PersonalPaths declared(const std::vector<std::string>& texts) {
  PersonalPaths out;
  std::string err;
  if (!PersonalPaths::parse(texts, out, err)) PersonalPaths::parse({"$"}, out, err);
  return out;
}

}  // namespace

PayloadMasker::PayloadMasker(const RequestContext& rc, const std::string& source, const json& body)
    : rc_(rc), clear_(rc.who.role == "admin") {
  auto s = rc.shared.config.sources.find(source);
  if (s != rc.shared.config.sources.end()) source_paths_ = s->second.personal;
  body_ = mask(body, source_paths_);
}

json PayloadMasker::mask(const json& value, const PersonalPaths& paths) {
  if (value.is_string() && !clear_) {
    // Not JSON (e.g. XML after mapping): nothing can be shown field by field.
    masked = true;
    return "••• (contenu masqué : format non structuré ; visible par un administrateur)";
  }
  MaskFindings f;
  json out = mask_payload(value, paths, f, values_.empty() ? nullptr : &values_);
  values_.insert(values_.end(), f.values.begin(), f.values.end());
  if (clear_) {
    if (f.found) personal = true;  // a clear view of personal data: the caller audits it
    return value;
  }
  if (f.found) masked = true;
  return out;
}

json PayloadMasker::derived(const json& value, const std::string& mapping, int64_t version,
                            const PersonalPaths* extra) {
  PersonalPaths paths = source_paths_;  // a mapping may copy the body as it is
  if (!mapping.empty() && rc_.shared.mappings != nullptr) {
    std::vector<mappings::Diagnostic> diags;
    auto compiled = rc_.shared.mappings->compiled_version(mapping, version, nullptr, diags);
    // A version that cannot be read or compiled any more: its declarations are unknown, so the
    // whole payload counts as declared personal.
    paths = paths.merged(
        declared(compiled ? compiled->personal_paths() : std::vector<std::string>{"$"}));
  }
  if (extra != nullptr) paths = paths.merged(*extra);
  return mask(value, paths);
}

std::string PayloadMasker::text(const std::string& t) const {
  if (clear_) return t;
  return scrub_text(t, values_);
}

std::string PayloadMasker::excerpt(const std::string& e) {
  if (clear_ || e.empty()) return e;
  masked = true;
  return "••• (réponse du partenaire masquée ; visible par un administrateur)";
}

void handle_login(ApiShared& shared, Poco::Net::HTTPServerRequest& req,
                  Poco::Net::HTTPServerResponse& resp, const std::string& address) {
  json body;
  if (!read_json_object(req, resp, 64 * 1024, body)) return;
  std::string user = body.value("user", ""), password = body.value("password", "");
  if (user.empty() || password.empty()) {
    return send_error(resp, 400, "bad request", "send {\"user\": \"…\", \"password\": \"…\"}");
  }
  if (shared.console == nullptr) {
    return send_error(resp, 503, "unavailable", "the console store is not open");
  }
  Millis wait = 0;
  Status counted = shared.throttle.blocked_for(user, address, wait);
  if (!counted.ok) {  // fail closed: no attempt that could not be counted (docs/security.md)
    resp.set("Retry-After", "5");
    return send_error(resp, 503, counted.error, counted.detail);
  }
  if (wait > 0) {
    resp.set("Retry-After", std::to_string((wait + 999) / 1000));
    shared.console->audit(
        AuditEntry{0, 0, user, "", "login.throttled", "user:" + user, "", address});
    return send_error(resp, 429, "too many attempts",
                      "trop d'échecs de connexion : réessayer dans " +
                          std::to_string((wait + 59999) / 60000) + " minute(s)");
  }
  auto u = shared.console->user(user);
  // Unknown users cost the same hash as known ones (no timing oracle on names).
  static const std::string dummy = hash_password("relais-dummy-password");
  bool ok = verify_password(password, u ? u->password : dummy) && u && !u->disabled;
  if (!ok) {
    Status st = shared.throttle.failed(user, address);
    if (!st.ok) log_warn("api", "a failed login could not be counted: " + st.detail);
    shared.console->audit(AuditEntry{0, 0, user, "", "login.failed", "user:" + user, "", address});
    return send_error(resp, 401, "unauthorized", "identifiant ou mot de passe incorrect");
  }
  Status st = shared.throttle.succeeded(user);
  if (!st.ok) log_warn("api", "a successful login could not reset its count: " + st.detail);
  std::string csrf, sid;
  Status created = shared.sessions.create(u->name, u->role, sid, csrf);
  if (!created.ok) {
    resp.set("Retry-After", "5");
    return send_error(resp, 503, created.error, created.detail);
  }
  set_session_cookie(req, resp, sid, 10 * 3600);
  shared.console->audit(
      AuditEntry{0, 0, u->name, u->role, "login", "user:" + u->name, "", address});
  send_json(resp, 200, {{"user", u->name}, {"role", u->role}, {"csrf", csrf}});
}

bool handle_console_endpoint(Ep id, RequestContext& rc) {
  switch (id) {
    case Ep::SessionGet: {
      json out = {{"user", rc.who.name},
                  {"role", rc.who.role},
                  {"via", rc.who.session ? "session" : "token"}};
      if (rc.who.session) out["csrf"] = rc.who.csrf;
      send_json(rc.resp, 200, out);
      return true;
    }
    case Ep::SessionLogout:
      if (rc.who.session) {
        Status st = rc.shared.sessions.remove(rc.who.session_id);
        if (!st.ok) {  // still alive on the other nodes: say so rather than pretend
          rc.resp.set("Retry-After", "5");
          send_error(rc.resp, 503, st.error, st.detail);
          return true;
        }
        set_session_cookie(rc.req, rc.resp, "", 0);
        rc.audit("logout", "user:" + rc.who.name);
      }
      send_json(rc.resp, 200, {{"logged_out", rc.who.session}});
      return true;
    default:
      break;
  }
  if (!require_console(rc)) return true;
  switch (id) {
    case Ep::Overview:
      overview(rc);
      return true;
    case Ep::AlertsStatus:
      send_json(rc.resp, 200, alerts_status(rc.shared));
      return true;
    case Ep::DeliveriesList: {
      DeskFilter f;
      std::map<std::string, std::string> kv;
      for (const auto& [k, v] : rc.uri.getQueryParameters()) kv[k] = v;
      if (!desk_filter_from(kv, f, rc.resp, true)) return true;
      auto items = rc.shared.console->desk(f);
      json list = json::array();
      for (const auto& d : items) {
        json item = desk_item_json(d);
        // An error text may quote the message (a value refused by the partner): cleaned of the
        // body's personal values for every role but admin.
        if (rc.who.role != "admin" && !d.last_text.empty()) {
          auto rec = rc.shared.hub.store().message(d.message_id, false);
          if (rec) {
            PayloadMasker view(
                rc, rec->message->source,
                stored_view(rec->message->body, static_cast<size_t>(rc.shared.config.max_depth)));
            item["text"] = view.text(d.last_text);
          }
        }
        list.push_back(std::move(item));
      }
      json out = {{"items", list}};
      out["next_cursor"] = static_cast<int>(items.size()) == f.limit && !items.empty()
                               ? json(std::to_string(items.back().delivery_id))
                               : json(nullptr);
      send_json(rc.resp, 200, out);
      return true;
    }
    case Ep::DeliveryGet:
      delivery_detail(rc);
      return true;
    case Ep::DeliveriesBulkRetry:
      bulk_retry(rc);
      return true;
    case Ep::UsersList: {
      json items = json::array();
      for (const auto& u : rc.shared.console->users()) items.push_back(user_json(u));
      send_json(rc.resp, 200, {{"items", items}});
      return true;
    }
    case Ep::UserCreate:
      create_user(rc);
      return true;
    case Ep::UserUpdate:
      update_user(rc);
      return true;
    case Ep::TokensList: {
      json items = json::array();
      for (const auto& t : rc.shared.config.tokens) {
        items.push_back({{"name", t.name},
                         {"role", t.role},
                         {"sources", t.sources},
                         {"revoked", false},
                         {"origin", "configuration"}});
      }
      for (const auto& t : rc.shared.console->tokens()) items.push_back(token_json(t));
      send_json(rc.resp, 200, {{"items", items}});
      return true;
    }
    case Ep::TokenCreate:
      create_token(rc);
      return true;
    case Ep::TokenRevoke: {
      const std::string& name = rc.params["name"];
      Status s = rc.shared.console->revoke_token(name, rc.shared.hub.clock().now_ms());
      if (!s.ok) {
        send_error(rc.resp, s.http_status, s.error, s.detail);
        return true;
      }
      rc.audit("token.revoke", "token:" + name);
      rc.shared.state.changes->publish(ChangeBus::kTokens);  // refused on every node within 2 s
      send_json(rc.resp, 200, {{"name", name}, {"revoked", true}});
      return true;
    }
    case Ep::AuditList:
      list_audit(rc, false);
      return true;
    case Ep::AuditCsv:
      list_audit(rc, true);
      return true;
    case Ep::DestinationsList:
      destinations(rc);
      return true;
    case Ep::DestinationProbe:
      probe(rc);
      return true;
    case Ep::PrivacyErase:
      erase_person(rc);
      return true;
    case Ep::StoreRekeyStart:
      start_rekey(rc);
      return true;
    case Ep::StoreRekeyStatus:
      send_json(rc.resp, 200, rekey_json(rc.shared.rekey.progress()));
      return true;
    case Ep::RetentionRun:
      run_retention(rc);
      return true;
    default:
      return false;
  }
}

}  // namespace relais::api

// The polling sources' state and refused records, and the appariements (core/pairing_store.h):
// the support desk's "Appariements à traiter" — list, detail, choice, undo — each change audited.

#include <set>
#include <string>

#include "api/api_context.h"
#include "api/desk_text.h"
#include "api/http_util.h"
#include "api/node_reports.h"

namespace relais::api {
namespace {

using nlohmann::json;

// Roles that pair persons see the candidates' identity (names, birth date, commune): they must
// compare them. Others (auditor) see them masked. Every clear view is audited.
bool sees_identity(const RequestContext& rc) {
  return rc.who.role == "admin" || rc.who.role == "support";
}

json time_or_null(Millis t) {
  return t ? json(format_rfc3339(t)) : json();
}

json pairing_json(const Pairing& p, bool clear) {
  json cands = json::array();
  for (const auto& c : p.candidates) {
    bool found = false;
    cands.push_back({{"id", c.external_id},
                     {"score", c.score},
                     {"summary", clear ? c.summary : mask_personal(c.summary, found)}});
  }
  json waiting = json::array();
  for (const auto& w : p.waiters)
    waiting.push_back({{"destination", w.destination}, {"key", w.key}});
  return {{"id", p.id},
          {"partner", p.partner},
          {"person", p.person},
          {"state", pairing_state_name(p.state)},
          {"external_id", p.external_id.empty() ? json() : json(p.external_id)},
          {"candidates", cands},
          {"waiting", waiting},
          {"how", p.how},
          {"by", p.by},
          {"reason", p.reason},
          {"created_at", time_or_null(p.created_at)},
          {"updated_at", time_or_null(p.updated_at)}};
}

bool id_param(RequestContext& rc, int64_t& id) {
  const std::string& text = rc.params["id"];
  try {
    size_t used = 0;
    id = std::stoll(text, &used);
    if (used == text.size() && id > 0) return true;
  } catch (const std::exception&) {
  }
  send_error(rc.resp, 404, "not found", "no appariement " + text);
  return false;
}

std::optional<Pairing> find_pairing(RequestContext& rc) {
  int64_t id = 0;
  if (!id_param(rc, id)) return std::nullopt;
  Status st;
  auto p = rc.shared.hub.pairings().by_id(id, st);
  if (!st.ok) {
    send_error(rc.resp, st.http_status, st.error, st.detail);
    return std::nullopt;
  }
  if (!p) send_error(rc.resp, 404, "not found", "no appariement " + rc.params["id"]);
  return p;
}

void list_pairings(RequestContext& rc) {
  PairingFilter f;
  for (const auto& [k, v] : rc.uri.getQueryParameters()) {
    if (k == "partner") {
      f.partner = v;
    } else if (k == "state") {
      if (v == "en_attente") {
        f.state = PairingState::Waiting;
      } else if (v == "apparie") {
        f.state = PairingState::Paired;
      } else if (v == "defait") {
        f.state = PairingState::Undone;
      } else if (!v.empty()) {
        return send_error(rc.resp, 400, "bad filter", "state is en_attente, apparie or defait");
      }
    } else if (k == "before") {
      try {
        f.before_id = std::stoll(v);
      } catch (const std::exception&) {
        return send_error(rc.resp, 400, "bad cursor", "before is a number");
      }
    } else if (k == "limit") {
      try {
        f.limit = std::stoi(v);
      } catch (const std::exception&) {
        return send_error(rc.resp, 400, "bad limit", "limit is a number");
      }
    }
  }
  Status st;
  auto items = rc.shared.hub.pairings().list(f, st);
  if (!st.ok) return send_error(rc.resp, st.http_status, st.error, st.detail);
  bool clear = sees_identity(rc);
  json list = json::array();
  for (const auto& p : items) list.push_back(pairing_json(p, clear));
  json out = {{"items", list},
              {"waiting", rc.shared.hub.pairings().count(PairingState::Waiting, st)}};
  out["next_cursor"] = static_cast<int>(items.size()) == f.limit && !items.empty()
                           ? json(std::to_string(items.back().id))
                           : json(nullptr);
  if (clear && !items.empty()) {
    rc.audit("pairing.view", "pairings", std::to_string(items.size()) + " appariement(s) listé(s)");
  }
  send_json(rc.resp, 200, out);
}

void choose(RequestContext& rc) {
  auto p = find_pairing(rc);
  if (!p) return;
  json body;
  if (!read_json_object(rc.req, rc.resp, rc.shared.config.max_body, body)) return;
  const json ext = body.value("external_id", json());
  if (!ext.is_string() || ext.get<std::string>().empty()) {
    return send_error(rc.resp, 400, "no external id",
                      "send {\"external_id\": \"…\"}: the partner's record chosen for the person");
  }
  std::vector<PairingWaiter> woken;
  Status st = rc.shared.hub.pairings().pair(p->partner, p->person, ext.get<std::string>(),
                                            "console", rc.who.name, woken);
  if (!st.ok) return send_error(rc.resp, st.http_status, st.error, st.detail);
  // The partner's connector wakes them in the order it needs (Genesis: the person before its
  // requests); otherwise each is woken here.
  std::set<std::string> destinations;
  for (const auto& w : woken) destinations.insert(w.destination);
  bool ordered = false;
  for (const auto& d : destinations) {
    Connector* c = rc.shared.hub.connector(d);
    if (c != nullptr && c->wake_paired(p->person, woken)) {
      ordered = true;
      break;
    }
  }
  if (!ordered) {
    for (const auto& w : woken) rc.shared.hub.wake(w.destination, w.key);
  }
  rc.audit("pairing.choice", p->person,
           p->partner + " : fiche " + ext.get<std::string>() + " choisie; " +
               std::to_string(woken.size()) + " envoi(s) repris");
  Status rs;
  auto after = rc.shared.hub.pairings().by_id(p->id, rs);
  json out = after ? pairing_json(*after, sees_identity(rc)) : json::object();
  out["woken"] = woken.size();
  send_json(rc.resp, 200, out);
}

void undo(RequestContext& rc) {
  auto p = find_pairing(rc);
  if (!p) return;
  json body;
  if (!read_json_object(rc.req, rc.resp, rc.shared.config.max_body, body)) return;
  const json reason = body.value("reason", json());
  if (!reason.is_string() || reason.get<std::string>().empty()) {
    return send_error(rc.resp, 400, "no reason", "say why the appariement is undone (\"reason\")");
  }
  std::string was = p->external_id;
  Status st =
      rc.shared.hub.pairings().undo(p->partner, p->person, rc.who.name, reason.get<std::string>());
  if (!st.ok) return send_error(rc.resp, st.http_status, st.error, st.detail);
  // The audit keeps the id that was undone (the pairing itself forgets it).
  rc.audit("pairing.undo", p->person,
           p->partner + " : fiche " + was + " défaite; motif : " + reason.get<std::string>());
  Status rs;
  auto after = rc.shared.hub.pairings().by_id(p->id, rs);
  send_json(rc.resp, 200, after ? pairing_json(*after, sees_identity(rc)) : json::object());
}

void list_sources(RequestContext& rc) {
  // On a cluster the leader polls: every node shows its states (api/node_reports.h).
  std::map<std::string, json> polling = polling_states(rc.shared);
  json items = json::array();
  for (const auto& [name, sc] : rc.shared.config.sources) {
    json j = {{"source", name}, {"polled", sc.poll.has_value()}};
    auto it = polling.find(name);
    if (it != polling.end()) j.update(it->second);
    items.push_back(std::move(j));
  }
  send_json(rc.resp, 200, {{"items", items}});
}

void source_rejects(RequestContext& rc) {
  const std::string& source = rc.params["source"];
  if (rc.shared.config.sources.count(source) == 0) {
    return send_error(rc.resp, 404, "unknown source", "no source named '" + source + "'");
  }
  int64_t before = 0;
  int limit = 50;
  for (const auto& [k, v] : rc.uri.getQueryParameters()) {
    try {
      if (k == "before") before = std::stoll(v);
      if (k == "limit") limit = std::stoi(v);
    } catch (const std::exception&) {
      return send_error(rc.resp, 400, "bad filter", k + " is a number");
    }
  }
  auto items = rc.shared.hub.store().rejects(source, before, limit);
  json list = json::array();
  for (const auto& r : items) {
    list.push_back({{"id", r.id},
                    {"position", r.reject.position},
                    {"status", r.reject.status},
                    {"error", r.reject.error},
                    {"detail", r.reject.detail},
                    {"at", format_rfc3339(r.at)}});
  }
  send_json(rc.resp, 200,
            {{"items", list},
             {"next_cursor", static_cast<int>(items.size()) == limit && !items.empty()
                                 ? json(std::to_string(items.back().id))
                                 : json(nullptr)}});
}

}  // namespace

bool handle_pairing_endpoint(Ep id, RequestContext& rc) {
  switch (id) {
    case Ep::SourcesList:
      list_sources(rc);
      return true;
    case Ep::SourceRejects:
      source_rejects(rc);
      return true;
    case Ep::PairingsList:
      list_pairings(rc);
      return true;
    case Ep::PairingGet: {
      auto p = find_pairing(rc);
      if (!p) return true;
      bool clear = sees_identity(rc);
      if (clear && !p->candidates.empty()) {
        rc.audit("pairing.view", p->person, p->partner + " : candidats consultés");
      }
      send_json(rc.resp, 200, pairing_json(*p, clear));
      return true;
    }
    case Ep::PairingChoice:
      choose(rc);
      return true;
    case Ep::PairingUndo:
      undo(rc);
      return true;
    default:
      return false;
  }
}

}  // namespace relais::api

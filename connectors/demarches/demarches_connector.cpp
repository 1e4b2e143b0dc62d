// The démarches-simplifiées connector (decisions, webhook) and its catch-up poller: see
// demarches.h and docs/connectors/demarches-simplifiees.md.

#include <curl/curl.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>

#include "connectors/calendar/calendar_http.h"
#include "connectors/demarches/demarches.h"
#include "connectors/http/curl_capture.h"
#include "connectors/http/http_connector.h"
#include "core/json_reader.h"
#include "core/log.h"
#include "core/xref_store.h"

namespace relais::demarches {

namespace {

using calendar::HttpAnswer;
using calendar::Send;
using F = FieldType;

// The keys of the GraphQL API shared by the connector and the poller.
std::vector<FieldSpec> api_fields() {
  return join_fields({
      {
          {"url", F::String, "", true,
           "the GraphQL endpoint (https://www.demarches-simplifiees.fr/api/v2/graphql)"},
          {"token", F::Secret, "", true,
           "the API token (Authorization: Bearer), e.g. @file:/etc/relais/ds-token"},
      },
      curl_transfer_fields("total time allowed for one GraphQL request"),
  });
}

const ConfigSpec& webhook_spec() {
  static const ConfigSpec s{
      "webhook",
      {
          {"source", F::String, "", true,
           "the source whose routes, mappings and idempotency the fetched dossier takes (the "
           "catch-up poller's source, so that both never make two messages of one change)"},
          {"procedures", F::StringList, "", true,
           "the procedures (démarche numbers) whose webhooks are taken; others are answered 403"},
      }};
  return s;
}

const ConfigSpec& connector_spec() {
  static const ConfigSpec s{
      "demarches-simplifiees",
      join_fields({
          api_fields(),
          {
              {"instructeur_id", F::String, "", false,
               "the instructeur's GraphQL id the decisions are made as (required to send "
               "decisions)"},
              {"disable_notification", F::Bool, "false", false,
               "ask démarches-simplifiées not to e-mail the usager about a decision"},
              {"webhook",
               F::Object,
               "",
               false,
               "the inbound webhook: POST /api/v1/connectors/<destination>/inbound/webhook",
               {},
               &webhook_spec()},
          },
      })};
  return s;
}

const ConfigSpec& poller_spec() {
  static const ConfigSpec s{
      "demarches-simplifiees",
      join_fields({
          api_fields(),
          {
              {"procedures", F::StringList, "", true,
               "the procedures (démarche numbers) whose dossiers are caught up"},
              {"page_size", F::Int, "100", false, "dossiers per GraphQL page", {}, nullptr, 1, 100},
              {"since", F::String, "", false,
               "the first date read when there is no checkpoint yet (ISO 8601; \"\" = every "
               "dossier)"},
          },
      })};
  return s;
}

struct Api {
  std::string url;
  std::string token;
  CurlTransfer transfer;
};

Api api_from(const ConfigView& c, const std::string& where) {
  return Api{c.str("url"), c.str("token"), curl_transfer_from(c, where)};
}

std::vector<int64_t> procedures_from(const ConfigView& c, const std::string& key,
                                     const std::string& where) {
  std::vector<int64_t> out;
  for (const auto& p : c.strings(key)) {
    int64_t n = 0;
    if (!parse_number(p, n)) {
      throw std::invalid_argument(where + ": " + key + ": '" + p + "' is not a démarche number");
    }
    out.push_back(n);
  }
  return out;
}

void check_api(const ConfigView& c, const std::string& file, std::vector<ConfigError>& errors) {
  check_tls_client(c.object("tls"), file, errors);
  const std::string url = c.str("url");
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
    errors.push_back(
        error_at(c.node(), file, c.path() + ".url", "the URL must start with http(s)://"));
  }
}

// One GraphQL request. Never throws.
HttpAnswer graphql(CURL* h, const Api& api, const std::string& operation, const std::string& query,
                   const nlohmann::json& variables, Send send) {
  nlohmann::json body = {{"operationName", operation}, {"query", query}, {"variables", variables}};
  calendar::HttpAuth auth;
  auth.mode = calendar::HttpAuth::Mode::Bearer;
  auth.bearer = api.token;
  return calendar::http_exchange(h, "POST", api.url,
                                 {"Content-Type: application/json", "Accept: application/json"},
                                 body.dump(), api.transfer, auth, send);
}

// The outcome of an answer that is not a GraphQL answer to read (a transport failure, an HTTP
// status other than 200), or nullopt when the body is to be read.
std::optional<Outcome> http_failure(const HttpAnswer& a, const std::string& what, Millis now,
                                    int64_t max_retry_after_ms) {
  if (a.rc != CURLE_OK) return calendar::network_failure(a, what);
  if (a.status == 200) return std::nullopt;
  if (a.status == 401 || a.status == 403) {
    return Outcome::retry("auth", static_cast<int>(a.status),
                          "démarches-simplifiées refuse le jeton de l'API (HTTP " +
                              std::to_string(a.status) +
                              ") : un administrateur doit le renouveler dans la configuration");
  }
  if (a.status == 429 || a.status == 503) {
    return retry_or_throttle(a.status, a.header("retry-after"), now, max_retry_after_ms,
                             "HTTP " + std::to_string(a.status) + " de démarches-simplifiées");
  }
  return Outcome::retry(
      "http", static_cast<int>(a.status),
      "démarches-simplifiées répond HTTP " + std::to_string(a.status) + " (" + what + ")");
}

Outcome failure_outcome(const Failure& f) {
  return f.action == Failure::Action::Reject ? Outcome::reject(f.error_class, f.code, f.text)
                                             : Outcome::retry(f.error_class, f.code, f.text);
}

Outcome broken_answer(const std::string& why, const std::string& what) {
  return Outcome::retry("broken", 502,
                        "réponse illisible de démarches-simplifiées (" + what + ") : " + why);
}

// An Outcome that is not a delivery, as a Status for the poller and the webhook.
Status as_status(const Outcome& o) {
  if (o.kind == Outcome::Kind::Reject && o.error_class == "not_found") {
    return Status::failure(404, "dossier introuvable", o.text);
  }
  return Status::failure(o.kind == Outcome::Kind::Reject ? 502 : 503,
                         "démarches-simplifiées indisponible", o.text);
}

// A curl handle for one call from an API thread (the webhook).
struct OwnedHandle {
  CURL* h = curl_easy_init();
  ~OwnedHandle() { curl_easy_cleanup(h); }
};

// Fetches dossier `number` with every field (getDossier). `out` is filled on success.
std::optional<Outcome> fetch_dossier(CURL* h, const Api& api, int64_t number, Millis now,
                                     int64_t max_retry_after_ms, DossierAnswer& out) {
  HttpAnswer a =
      graphql(h, api, "getDossier", dossier_query(), {{"number", number}}, Send::Idempotent);
  if (auto f = http_failure(a, "lecture du dossier", now, max_retry_after_ms)) return f;
  out = read_dossier_answer(a.body);
  if (!out.parsed) return broken_answer(out.broken, "lecture du dossier");
  if (out.errors.present) return failure_outcome(classify_errors(out.errors));
  if (!out.found) {
    return Outcome::reject("not_found", 404, "démarches-simplifiées ne trouve pas ce dossier");
  }
  return std::nullopt;
}

// The cross-reference of a decision (per dossier, the correlation key): version
// "intended:<message id>" before the mutation is sent, "applied:<message id>" once it is.
constexpr const char* kIntended = "intended:";
constexpr const char* kApplied = "applied:";

// Responsibility: sends instruction decisions (one mutation each, exactly once, in order per
// dossier) and takes the webhook (fetch, then commit through the hub as the configured
// source's message). Thread-safety: deliver() per worker slot (one curl handle per slot);
// inbound() from API threads with a handle of its own; everything else is read-only after
// construction. Ownership: owns its handles; the cross-references and the hub's services are
// the hub's and outlive it.
class DemarchesConnector final : public Connector {
 public:
  explicit DemarchesConnector(const ConnectorContext& ctx)
      : name_(ctx.name),
        clock_(ctx.clock),
        xrefs_(ctx.xrefs),
        hub_(ctx.hub),
        max_retry_after_ms_(ctx.max_retry_after_ms),
        handles_(ctx.concurrency) {
    const ConfigView& c = ctx.config;
    const std::string where = "connector " + name_;
    api_ = api_from(c, where);
    instructeur_ = c.str("instructeur_id");
    disable_notification_ = c.boolean("disable_notification");
    if (c.has("webhook")) {
      ConfigView w = c.object("webhook");
      source_ = w.str("source");
      for (int64_t p : procedures_from(w, "procedures", where + ": webhook")) procedures_.insert(p);
    }
  }

  // With webhook procedures: asks the API for each one (the token is valid and allowed on it);
  // else only the connection.
  Status probe() override {
    if (procedures_.empty()) return probe_connection(api_.url, api_.transfer);
    OwnedHandle h;
    for (int64_t p : procedures_) {
      HttpAnswer a =
          graphql(h.h, api_, "getDemarche", demarche_query(), {{"demarche", p}}, Send::Idempotent);
      if (auto f = http_failure(a, "démarche " + std::to_string(p), clock_->now_ms(), 0)) {
        return as_status(*f);
      }
      std::string why;
      if (!read_demarche_answer(a.body, why)) {
        return Status::failure(502, "démarche " + std::to_string(p), why);
      }
    }
    return Status::success();
  }

  Outcome deliver(const DeliveryRequest& r) override {
    const nlohmann::json& m = r.mapped ? *r.mapped : *r.body;
    const Decision* d = m.is_object() && m.contains("decision") && m["decision"].is_string()
                            ? find_decision(m["decision"].get<std::string>())
                            : nullptr;
    if (d == nullptr) {
      return Outcome::reject("mapping", 422,
                             "la décision doit être passer_en_instruction, accepter, refuser ou "
                             "classer_sans_suite (champ decision)");
    }
    int64_t number = 0;
    if (const auto& n = m.value("dossier", nlohmann::json()); n.is_number_integer()) {
      number = n.get<int64_t>();
    } else if (n.is_string()) {
      parse_number(n.get<std::string>(), number);
    }
    if (number <= 0) {
      return Outcome::reject("mapping", 422, "le numéro du dossier manque (champ dossier)");
    }
    std::string motivation = m.contains("motivation") && m["motivation"].is_string()
                                 ? m["motivation"].get<std::string>()
                                 : std::string();
    if (d->motivation_required && motivation.empty()) {
      return Outcome::reject(
          "mapping", 422, "une motivation est obligatoire pour " + d->name + " (champ motivation)");
    }
    if (instructeur_.empty()) {
      return Outcome::reject("config", 500,
                             "instructeur_id manque dans la configuration de la destination");
    }
    if (xrefs_ == nullptr) {
      return Outcome::retry("internal", 500, "pas de références croisées (store fermé)");
    }
    const std::string key = r.message->correlation.empty() ? "dossier:" + std::to_string(number)
                                                           : r.message->correlation;
    const std::string mine = r.message->id;
    auto ref = xrefs_->get(name_, key);
    if (ref && ref->version == kApplied + mine) {
      return Outcome::delivered(ref->external_id, "décision déjà appliquée");
    }
    CURL* h = handles_.at(r.slot);
    const Millis now = clock_->now_ms();
    // The dossier's id and state: the mutation needs the id; after a lost answer the state says
    // whether the decision was applied.
    HttpAnswer sa =
        graphql(h, api_, "getDossierEtat", state_query(), {{"number", number}}, Send::Idempotent);
    if (auto f = http_failure(sa, "état du dossier", now, max_retry_after_ms_)) return *f;
    DossierAnswer st = read_dossier_answer(sa.body);
    if (!st.parsed) return broken_answer(st.broken, "état du dossier");
    if (st.errors.present) return failure_outcome(classify_errors(st.errors));
    if (!st.found) {
      return Outcome::reject("not_found", 404, "démarches-simplifiées ne trouve pas ce dossier");
    }
    if (ref && ref->version == kIntended + mine && st.dossier.state != d->from) {
      // Sent before and the answer lost: the dossier left the state the decision needs, so
      // the decision was applied (and maybe followed by another one made on the site).
      put(key, st.dossier.id, kApplied + mine, mine);
      return Outcome::delivered(st.dossier.id, "décision appliquée (réponse perdue, état relu : " +
                                                   st.dossier.state + ")");
    }
    if (st.dossier.state != d->from) {
      return Outcome::reject("state", 409,
                             "le dossier est « " + st.dossier.state +
                                 " » sur démarches-simplifiées : la décision « " + d->name +
                                 " » demande un dossier « " + d->from + " »");
    }
    put(key, st.dossier.id, kIntended + mine, mine);
    nlohmann::json input = {{"dossierId", st.dossier.id}, {"instructeurId", instructeur_}};
    if (!motivation.empty()) input["motivation"] = motivation;
    if (disable_notification_) input["disableNotification"] = true;
    HttpAnswer a =
        graphql(h, api_, d->mutation, mutation_document(*d), {{"input", input}}, Send::Once);
    if (auto f = http_failure(a, d->mutation, now, max_retry_after_ms_)) return *f;
    MutationAnswer ma = read_mutation_answer(a.body, d->mutation);
    if (!ma.parsed) {
      // Something was answered but not what a mutation answers: it may have been applied; the
      // next attempt reads the state first.
      Outcome o = broken_answer(ma.broken, d->mutation);
      o.error_class = "unknown_outcome";
      return o;
    }
    if (ma.errors.present) return failure_outcome(classify_errors(ma.errors));
    if (ma.refusals > 0) {
      return Outcome::reject("state", 409,
                             "démarches-simplifiées refuse la décision « " + d->name +
                                 " » (état du dossier ou droits de l'instructeur)");
    }
    put(key, st.dossier.id, kApplied + mine, mine);
    return Outcome::delivered(st.dossier.id, "décision " + d->name + " appliquée");
  }

  std::optional<InboundResponse> inbound(const InboundRequest& r) override {
    if (r.path != "inbound/webhook") return std::nullopt;
    InboundResponse out;
    auto answer = [&](int status, const std::string& error, const std::string& detail) {
      out.status = status;
      out.body = {{"error", error}, {"detail", detail}};
      return out;
    };
    if (source_.empty()) {
      return answer(404, "webhook non configuré", "cette destination ne prend pas de webhook");
    }
    if (r.method != "POST") return answer(405, "méthode", "le webhook est un POST");
    auto field = [&](const char* k) {
      auto it = r.query.find(k);
      return it == r.query.end() ? std::string() : it->second;
    };
    int64_t procedure = 0, dossier = 0;
    if (!parse_number(field("procedure_id"), procedure) ||
        !parse_number(field("dossier_id"), dossier)) {
      return answer(400, "webhook incomplet", "procedure_id et dossier_id sont attendus");
    }
    if (procedures_.count(procedure) == 0) {
      return answer(
          403, "démarche non autorisée",
          "la démarche " + std::to_string(procedure) + " n'est pas dans webhook.procedures");
    }
    // The webhook is only a trigger: everything comes from the API.
    OwnedHandle h;
    DossierAnswer da;
    if (auto f = fetch_dossier(h.h, api_, dossier, clock_->now_ms(), max_retry_after_ms_, da)) {
      Status s = as_status(*f);
      return answer(s.http_status, s.error, s.detail);
    }
    if (da.dossier.demarche != procedure) {
      return answer(403, "démarche non autorisée",
                    "le dossier n'appartient pas à la démarche annoncée par le webhook");
    }
    if (hub_ == nullptr) return answer(503, "non disponible", "pas de hub");
    std::string id;
    bool duplicate = false;
    Status s =
        hub_->submit(source_, da.dossier.body.dump(), da.dossier.idempotency(), id, duplicate);
    if (!s.ok && s.http_status == 409) {
      // Same dossier and modification date, other content: the body a change gave is already
      // taken (a field outside the date, e.g. an annotation privée, changed since).
      log_warn("demarches", name_ + ": dossier " + std::to_string(dossier) +
                                " already taken for this modification date with another content");
      out.body = {{"status", "déjà reçu"}};
      return out;
    }
    if (!s.ok) return answer(s.http_status >= 500 ? 503 : s.http_status, s.error, s.detail);
    out.body = {{"id", id}, {"status", duplicate ? "déjà reçu" : "reçu"}};
    return out;
  }

 private:
  void put(const std::string& key, const std::string& external_id, const std::string& version,
           const std::string& message_id) {
    CrossReference ref;
    ref.destination = name_;
    ref.key = key;
    ref.external_id = external_id;
    ref.version = version;
    ref.message_id = message_id;
    xrefs_->put(ref);
  }

  std::string name_;
  const Clock* clock_;
  XrefStore* xrefs_;
  HubServices* hub_;
  int64_t max_retry_after_ms_;
  calendar::CurlHandles handles_;
  Api api_;
  std::string instructeur_;
  bool disable_notification_ = false;
  std::string source_;
  std::set<int64_t> procedures_;
};

// The poller's position per procedure: the date the query starts from (updatedSince, which
// includes it) and the cursor inside that query's pages; the latest modification date taken and
// the dossiers taken at exactly that date (skipped when read again).
struct Position {
  std::string since;
  std::string after;
  std::string latest;
  std::vector<std::string> taken;  // idempotency keys at `latest`
};

std::map<int64_t, Position> read_checkpoint(const std::string& text) {
  std::map<int64_t, Position> out;
  nlohmann::json doc = read_stored_json(text);
  if (!doc.is_object()) return out;
  for (const auto& [k, v] : doc.items()) {
    int64_t procedure = 0;
    if (!v.is_object() || !parse_number(k, procedure)) continue;
    Position p;
    p.since = v.value("since", "");
    p.after = v.value("after", "");
    p.latest = v.value("latest", "");
    if (v.contains("taken") && v["taken"].is_array()) {
      for (const auto& t : v["taken"])
        if (t.is_string()) p.taken.push_back(t.get<std::string>());
    }
    out[procedure] = std::move(p);
  }
  return out;
}

std::string write_checkpoint(const std::map<int64_t, Position>& ps) {
  nlohmann::json doc = nlohmann::json::object();
  for (const auto& [k, p] : ps) {
    doc[std::to_string(k)] = {
        {"since", p.since}, {"after", p.after}, {"latest", p.latest}, {"taken", p.taken}};
  }
  return doc.dump();
}

// Whether modification date `a` is later than `b` (instants compared when both read as
// RFC 3339, else the texts).
bool later(const std::string& a, const std::string& b) {
  Millis ta = 0, tb = 0;
  if (parse_rfc3339(a, ta) && parse_rfc3339(b, tb)) return ta > tb;
  return a > b;
}

// Responsibility: the catch-up — reads, per configured procedure, the pages of dossiers updated
// since the last date taken, each dossier a record whose idempotency key is its number and
// modification date (the webhook's key too). Thread-safety: poll/committed from the hub's one
// thread for this source. Ownership: owns its curl handle.
class DemarchesPoller final : public Poller {
 public:
  DemarchesPoller(const PollerContext& ctx) : name_(ctx.name), clock_(ctx.clock) {
    const std::string where = "source " + name_ + ": poll";
    api_ = api_from(ctx.config, where);
    procedures_ = procedures_from(ctx.config, "procedures", where);
    page_size_ = ctx.config.integer("page_size");
    first_since_ = ctx.config.str("since");
  }
  ~DemarchesPoller() override { curl_easy_cleanup(h_); }

  Status poll(const std::string& checkpoint, PollBatch& out) override {
    auto positions = read_checkpoint(checkpoint);
    for (int64_t procedure : procedures_) {
      Position pos = positions.count(procedure) ? positions[procedure]
                                                : Position{first_since_, "", first_since_, {}};
      // Pages of dossiers taken already (the hub writes no checkpoint for an empty batch) are
      // passed over in this call, up to kMaxEmptyPages; the first page with something new is
      // the batch.
      for (int page_no = 0; page_no < kMaxEmptyPages; ++page_no) {
        PageAnswer page;
        if (Status s = read_page(procedure, pos, page); !s.ok) return s;
        const size_t before = out.records.size();
        for (const auto& d : page.dossiers) take(d, pos, out);
        if (page.has_next) {
          pos.after = page.end_cursor;
        } else {
          pos.since = pos.latest;
          pos.after.clear();
        }
        if (out.records.size() == before && page.has_next) continue;
        if (out.records.size() == before) break;  // nothing new for this procedure
        positions[procedure] = pos;
        out.checkpoint = write_checkpoint(positions);
        out.more = page.has_next;
        return Status::success();
      }
    }
    return Status::success();
  }

  Status committed(const PollBatch&, bool, const std::vector<PolledOutcome>&) override {
    return Status::success();
  }

 private:
  std::string name_;
  const Clock* clock_;
  Api api_;
  std::vector<int64_t> procedures_;
  int64_t page_size_ = 100;
  std::string first_since_;
  CURL* h_ = curl_easy_init();

  static constexpr int kMaxEmptyPages = 20;

  // One page of `procedure`'s dossiers from `pos`.
  Status read_page(int64_t procedure, const Position& pos, PageAnswer& page) {
    nlohmann::json vars = {{"demarche", procedure}, {"first", page_size_}};
    vars["since"] = pos.since.empty() ? nlohmann::json() : nlohmann::json(pos.since);
    vars["after"] = pos.after.empty() ? nlohmann::json() : nlohmann::json(pos.after);
    HttpAnswer a =
        graphql(h_, api_, "getDemarcheDossiers", dossiers_query(), vars, Send::Idempotent);
    if (auto f = http_failure(a, "dossiers de la démarche", clock_->now_ms(), 0)) {
      return as_status(*f);
    }
    page = read_page_answer(a.body);
    if (!page.parsed) {
      return Status::failure(502, "réponse illisible", "démarches-simplifiées : " + page.broken);
    }
    if (page.errors.present) return as_status(failure_outcome(classify_errors(page.errors)));
    return Status::success();
  }

  // Adds `d` to the batch unless taken already (updatedSince includes the latest date), and
  // moves the latest date taken.
  static void take(const Dossier& d, Position& pos, PollBatch& out) {
    const std::string key = d.idempotency();
    if (std::find(pos.taken.begin(), pos.taken.end(), key) != pos.taken.end()) return;
    PolledRecord rec;
    rec.body = d.body.dump();
    rec.idempotency_key = key;
    rec.position = "dossier " + std::to_string(d.number);
    out.records.push_back(std::move(rec));
    if (pos.latest.empty() || later(d.updated, pos.latest)) {
      pos.latest = d.updated;
      pos.taken.clear();
    }
    if (d.updated == pos.latest) pos.taken.push_back(key);
  }
};

}  // namespace
}  // namespace relais::demarches

namespace relais {

void register_demarches_connector(ConnectorRegistry& registry) {
  ConnectorKind k;
  k.name = demarches::kKind;
  k.description =
      "démarches-simplifiées (GraphQL API v2): instruction decisions sent back exactly once, in "
      "order per dossier; the webhook fetches the dossier and commits it as a source's message";
  k.spec = &demarches::connector_spec();
  k.check = [](const ConfigView& c, const std::string& file, std::vector<ConfigError>& errors) {
    demarches::check_api(c, file, errors);
    if (c.has("webhook")) {
      try {
        demarches::procedures_from(c.object("webhook"), "procedures", "webhook");
      } catch (const std::invalid_argument& e) {
        errors.push_back(error_at(c.node(), file, c.path() + ".webhook.procedures", e.what()));
      }
    }
  };
  k.create = [](const ConnectorContext& ctx) -> std::unique_ptr<Connector> {
    return std::make_unique<demarches::DemarchesConnector>(ctx);
  };
  registry.add(std::move(k));
}

void register_demarches_poller(PollerRegistry& registry) {
  PollerKind k;
  k.name = demarches::kKind;
  k.description =
      "démarches-simplifiées: the dossiers of configured procedures changed since the last one "
      "taken (catch-up of missed webhooks), one message per dossier and modification date";
  k.spec = &demarches::poller_spec();
  k.check = [](const ConfigView& c, const std::string& file, std::vector<ConfigError>& errors) {
    demarches::check_api(c, file, errors);
    try {
      demarches::procedures_from(c, "procedures", "poll");
    } catch (const std::invalid_argument& e) {
      errors.push_back(error_at(c.node(), file, c.path() + ".procedures", e.what()));
    }
  };
  k.create = [](const PollerContext& ctx) -> std::unique_ptr<Poller> {
    static const SystemClock system_clock;
    PollerContext c = ctx;
    if (c.clock == nullptr) c.clock = &system_clock;
    return std::make_unique<demarches::DemarchesPoller>(c);
  };
  registry.add(std::move(k));
}

}  // namespace relais

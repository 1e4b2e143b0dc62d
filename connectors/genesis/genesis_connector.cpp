// The `genesis` connector: operations described in configuration (see genesis.h and
// docs/connectors/genesis.md), over SOAP (WS-Security) or REST, with the Genesis id kept as a
// cross-reference after a create, error codes classified by configuration and the connector's
// side of appariement (search, auto-pairing, candidates sent back to CMS76, deliveries deferred
// until a person's choice, the choice message itself).

#include <algorithm>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>

#include "connectors/calendar/calendar_http.h"
#include "connectors/genesis/genesis.h"
#include "connectors/http/http_connector.h"
#include "core/files.h"
#include "core/glob.h"
#include "core/json_template.h"
#include "core/xref_store.h"

namespace relais::genesis {
namespace {

using F = FieldType;
using calendar::HttpAnswer;
using calendar::HttpAuth;
using calendar::Send;

// The marker of a create whose answer was lost: the next attempt searches first.
const char* const kUnknown = "?";

const ConfigSpec& operation_spec() {
  static const ConfigSpec s{
      "genesis operation",
      {
          {"method",
           F::String,
           "POST",
           false,
           "rest: the HTTP method (soap: always POST)",
           {"GET", "POST", "PUT", "PATCH", "DELETE"}},
          {"path", F::String, "", false,
           "appended to url; {$.…} placeholders over the operation's context ($.payload the "
           "mapping's output, $.pairing.id the person's Genesis id, $.ref.id the key's Genesis "
           "id, $.message.key, $.choice.id), URL-encoded"},
          {"soap_action", F::String, "", false, "soap: the SOAPAction header"},
          {"element", F::String, "", false,
           "soap: the qualified name of the Body's element (e.g. gen:mettreAJourPersonne); its "
           "prefix must be in namespaces"},
          {"body", F::String, "auto", false,
           "auto: the input as JSON (rest) or as the element's children (soap); payload: the "
           "mapping's output as is (soap: XML put inside Body); none: no body; anything else: a "
           "template with {$.…} placeholders (escaped for XML or JSON)"},
          {"input", F::String, "$.payload", false,
           "body auto: the part of the context sent ($.criteria for a search)"},
          {"set", F::StringMap, "", false,
           "body auto: fields set in the input before it is sent: JSON path → template (e.g. "
           "$.individuGenesis: \"{$.pairing.id}\")"},
          {"namespaces", F::StringMap, "", false,
           "soap: prefix → URI, for the element and the XPaths (added to the top-level ones)"},
          {"extract", F::StringMap, "", false,
           "what to read from the answer: id, error_code, error_text (XPath for soap, JSON "
           "path for rest)"},
          {"candidates", F::String, "", false,
           "search: the list of candidates in the answer (XPath node set or JSON path to an "
           "array)"},
          {"candidate", F::StringMap, "", false,
           "search: per candidate, relative paths: id and score (0..1 or a percentage) "
           "required, the others are shown to the person who chooses"},
          {"success_status", F::StringList, "", false,
           "HTTP statuses that mean success (e.g. [200, 201] or [2xx]; default 2xx)"},
          {"success_path", F::String, "", false,
           "an element / field whose presence means success (absent: the outcome is unclear)"},
          {"creates", F::Bool, "false", false,
           "the operation creates a Genesis record: its id (extract.id) is kept for the "
           "message's correlation key; sent at most once (a lost answer: unknown_outcome, and "
           "the next attempt runs `find` first)"},
          {"find", F::String, "", false,
           "creates: the operation that finds a record an earlier attempt created (its "
           "extract.id, absent when none)"},
          {"if_known", F::String, "", false,
           "the operation used instead when the key already has a Genesis id (create → update)"},
          {"person", F::Bool, "false", false,
           "the operation needs the person's Genesis id ($.pairing.id): appariement first"},
          {"unknown_ref",
           F::String,
           "reject",
           false,
           "when the operation uses $.ref.id and the key has no Genesis id yet (its create was "
           "never delivered, e.g. skipped): reject (dead, explained) or skip",
           {"reject", "skip"}},
          {"idempotent", F::Bool, "", false,
           "sending it twice is harmless (default: false for creates, else from the method; "
           "soap: true unless creates)"},
      }};
  return s;
}

const ConfigSpec& error_spec() {
  static const ConfigSpec s{
      "genesis error",
      {
          {"action",
           F::String,
           "reject",
           false,
           "retry (transient) or reject (the delivery goes dead with the explanation)",
           {"retry", "reject"}},
          {"explication", F::String, "", false,
           "the explanation in French shown on the delivery (support desk)"},
      }};
  return s;
}

const ConfigSpec& appariement_spec() {
  static const ConfigSpec s{
      "appariement",
      {
          {"partner", F::String, "", false,
           "the partner's name in the pairings (default: the destination's name)"},
          {"person", F::String, "", true,
           "template over the message body giving the local person's key, e.g. "
           "individu:{$.individu.id} or individu:{$.demande.individu_id} (several: the first "
           "that renders)"},
          {"search", F::String, "", false, "the search operation (candidates with scores)"},
          {"search_types", F::StringList, "", false,
           "message types that may search (the others wait for the pairing); default "
           "[individu.*]"},
          {"criteria", F::StringMap, "", false,
           "the search's criteria: name → JSON path over the context (missing values left "
           "out); the search's input is $.criteria"},
          {"auto_pair", F::Bool, "false", false,
           "pair without a person when exactly one candidate scores at least auto_score"},
          {"auto_score",
           F::Float,
           "0.95",
           false,
           "the score of an automatic pairing",
           {},
           nullptr,
           0,
           1},
          {"callback", F::String, "", false,
           "destination that receives the candidates (message type candidates_type)"},
          {"candidates_type", F::String, "appariement.candidats", false,
           "type of the message posted to callback"},
          {"recheck", F::Duration, "15m", false,
           "a delivery waiting for a pairing looks again after this (it is woken at once "
           "when the pairing is made)"},
          {"choice_type", F::String, "appariement.choisi", false,
           "type of the message carrying a person's choice"},
          {"choice_person", F::String, "$.appariement.personne", false,
           "JSON path of the person's key in the choice message"},
          {"choice_id", F::String, "$.appariement.genesis_id", false,
           "JSON path of the chosen Genesis id in the choice message"},
          {"verify", F::String, "", false,
           "operation that checks a chosen id that was not among the candidates ($.choice.id); "
           "without it such a choice is refused"},
          {"create", F::String, "", false,
           "operation that creates the person in Genesis when the search finds nobody "
           "(with create_when_none)"},
          {"create_when_none", F::Bool, "false", false,
           "create the person when the search finds no candidate at all (never when there "
           "are candidates)"},
      }};
  return s;
}

const ConfigSpec& genesis_spec() {
  static const ConfigSpec s{
      "genesis",
      join_fields({
          {
              {"driver",
               F::String,
               "",
               true,
               "soap (SOAP 1.1, WS-Security) or rest (JSON)",
               {"soap", "rest"}},
              {"url", F::String, "", true, "the base endpoint (operations' paths are appended)"},
          },
          curl_transfer_fields("total time allowed for one request"),
          {
              {"wss",
               F::Object,
               "",
               false,
               "soap: WS-Security UsernameToken (OASIS 2004)",
               {},
               &soap::wss_spec()},
              {"bearer_token", F::Secret, "", false, "rest: token sent as Authorization: Bearer"},
              {"basic_user", F::String, "", false, "HTTP basic authentication: user"},
              {"basic_password", F::Secret, "", false, "HTTP basic authentication: password"},
              {"namespaces", F::StringMap, "", false,
               "soap: prefix → URI shared by every operation (elements and XPaths)"},
              {"operations",
               F::ObjectMap,
               "",
               true,
               "name → operation (docs/connectors/genesis.md)",
               {},
               &operation_spec()},
              {"types", F::StringMap, "", true,
               "message type glob → operation name, first match wins (e.g. individu.*: "
               "personne_maj)"},
              {"errors",
               F::ObjectMap,
               "",
               false,
               "Genesis error code (or glob) → action and explanation",
               {},
               &error_spec()},
              {"default_error",
               F::Object,
               "",
               false,
               "for an error code not in errors (default: reject)",
               {},
               &error_spec()},
              {"appariement",
               F::Object,
               "",
               false,
               "pairing of persons with their Genesis record (docs/connectors/genesis.md)",
               {},
               &appariement_spec()},
          },
      })};
  return s;
}

std::string json_escape(const std::string& v) {
  std::string q = nlohmann::json(v).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return q.substr(1, q.size() - 2);
}

bool status_matches(const std::vector<std::string>& accepted, long status) {
  if (accepted.empty()) return status >= 200 && status < 300;
  std::string s = std::to_string(status);
  for (const auto& a : accepted) {
    if (a == s || (a.size() == 3 && a.substr(1) == "xx" && a[0] == s[0])) return true;
  }
  return false;
}

struct Operation {
  std::string name;
  std::string method = "POST";
  JsonTemplate path;
  std::string soap_action;
  std::string element;
  std::string element_prefix;
  std::string element_ns;
  std::string body_mode = "auto";  // auto | payload | none | template
  JsonTemplate body;
  JsonPath input;
  std::vector<std::pair<JsonPath, JsonTemplate>> set;
  AnswerSpec answer;
  std::vector<std::string> success_status;
  bool creates = false;
  std::string find;
  std::string if_known;
  bool person = false;
  bool needs_ref = false;  // a template reads $.ref (the key's Genesis id)
  bool skip_unknown_ref = false;
  bool idempotent = true;
};

struct ErrorRule {
  std::string pattern;
  bool retry = false;
  std::string explication;
};

// The result of one operation's request.
struct Call {
  bool ok = false;
  Outcome failure;  // !ok
  long status = 0;
  Answer answer;
  std::string raw;  // the answer's body (bounded)
};

ErrorRule error_rule(const std::string& pattern, const ConfigView& v) {
  return ErrorRule{pattern, v.str("action") == "retry", v.str("explication")};
}

// The configured appariement. Plain value.
struct Appariement {
  bool on = false;
  std::string partner;
  std::vector<JsonTemplate> person;
  std::string search;
  std::vector<std::string> search_types;
  std::vector<std::pair<std::string, JsonPath>> criteria;
  bool auto_pair = false;
  double auto_score = 0.95;
  std::string callback;
  std::string candidates_type;
  int64_t recheck_ms = 15 * 60 * 1000;
  std::string choice_type;
  JsonPath choice_person;
  JsonPath choice_id;
  std::string verify;
  std::string create;
  bool create_when_none = false;
};

std::vector<std::string> split_alternatives(const std::string& text) {
  // "a | b" → {a, b}: several person templates, the first that renders wins.
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t bar = text.find(" | ", start);
    if (bar == std::string::npos) bar = text.size();
    std::string part = text.substr(start, bar - start);
    if (!part.empty()) out.push_back(part);
    start = bar + 3;
  }
  return out;
}

Operation read_operation(const std::string& name, const ConfigView& c, bool soap,
                         const std::map<std::string, std::string>& shared_ns) {
  Operation op;
  op.name = name;
  std::string err;
  auto fail = [&](const std::string& key, const std::string& why) {
    throw std::runtime_error(c.path() + "." + key + ": " + why);
  };
  op.method = soap ? "POST" : c.str("method");
  if (!JsonTemplate::parse(c.str("path"), op.path, err)) fail("path", err);
  op.soap_action = c.str("soap_action");
  op.element = c.str("element");
  op.answer.namespaces = shared_ns;
  for (const auto& [p, uri] : c.string_map("namespaces")) op.answer.namespaces[p] = uri;
  if (auto colon = op.element.find(':'); colon != std::string::npos) {
    op.element_prefix = op.element.substr(0, colon);
    auto ns = op.answer.namespaces.find(op.element_prefix);
    if (ns != op.answer.namespaces.end()) op.element_ns = ns->second;
  }
  std::string body = c.str("body");
  if (body == "auto" || body == "payload" || body == "none") {
    op.body_mode = body;
  } else {
    op.body_mode = "template";
    if (!JsonTemplate::parse(body, op.body, err)) fail("body", err);
  }
  if (!JsonPath::parse(c.str("input"), op.input, err)) fail("input", err);
  for (const auto& [target, tpl] : c.string_map("set")) {
    JsonPath p;
    JsonTemplate t;
    if (!JsonPath::parse(target, p, err)) fail("set." + target, err);
    if (!JsonTemplate::parse(tpl, t, err)) fail("set." + target, err);
    op.set.emplace_back(std::move(p), std::move(t));
  }
  for (const auto& [k, v] : c.string_map("extract")) op.answer.extract[k] = v;
  op.answer.candidates = c.str("candidates");
  for (const auto& [k, v] : c.string_map("candidate")) op.answer.candidate[k] = v;
  op.answer.success_path = c.str("success_path");
  op.success_status = c.strings("success_status");
  op.creates = c.boolean("creates");
  op.find = c.str("find");
  op.if_known = c.str("if_known");
  op.person = c.boolean("person");
  op.skip_unknown_ref = c.str("unknown_ref") == "skip";
  std::string texts = c.str("path") + c.str("body");
  for (const auto& [target, tpl] : c.string_map("set")) texts += tpl;
  op.needs_ref = texts.find("{$.ref.") != std::string::npos;
  if (c.has("idempotent")) {
    op.idempotent = c.boolean("idempotent");
  } else {
    op.idempotent = !op.creates && (soap || idempotent_method(op.method));
  }
  return op;
}

// One configured Genesis destination. Thread-safe for distinct slots: each slot owns one curl
// handle; the held wake-ups and the candidates still to post are guarded by mu_. The stores
// and the hub's services are the hub's (they outlive the connector); owns its handles.
class GenesisConnector final : public Connector {
 public:
  explicit GenesisConnector(const ConnectorContext& ctx)
      : name_(ctx.name),
        clock_(ctx.clock),
        xrefs_(ctx.xrefs),
        pairings_(ctx.pairings),
        hub_(ctx.hub),
        max_retry_after_ms_(ctx.max_retry_after_ms),
        handles_(ctx.concurrency) {
    const ConfigView& c = ctx.config;
    const std::string where = "connector " + name_;
    soap_ = c.str("driver") == "soap";
    url_ = c.str("url");
    transfer_ = curl_transfer_from(c, where);
    if (c.has("wss")) {
      wss_ = true;
      token_ = soap::wsse_token_from(c.object("wss"), where);
    }
    if (!c.str("bearer_token").empty()) {
      auth_.mode = HttpAuth::Mode::Bearer;
      auth_.bearer = c.str("bearer_token");
    } else if (!c.str("basic_user").empty()) {
      auth_.mode = HttpAuth::Mode::Basic;
      auth_.user = c.str("basic_user");
      auth_.password = c.str("basic_password");
    }
    std::map<std::string, std::string> shared_ns;
    for (const auto& [p, uri] : c.string_map("namespaces")) shared_ns[p] = uri;
    for (const auto& [n, v] : c.object_map("operations")) {
      ops_[n] = read_operation(n, v, soap_, shared_ns);
    }
    types_ = c.string_map("types");
    for (const auto& [pattern, v] : c.object_map("errors"))
      errors_.push_back(error_rule(pattern, v));
    default_error_ = error_rule("*", c.object("default_error"));
    if (c.has("appariement")) read_appariement(c.object("appariement"));
  }

  Status probe() override { return probe_connection(url_, transfer_); }

  // Wakes the person's own deliveries now and holds the others until one of those has gone
  // (all at once when the person has none waiting). `except_key`: this delivery's own key,
  // which is running and needs no wake-up.
  // A pairing made outside the connector (the console's choice): the person before its
  // requests, as for a choice message.
  bool wake_paired(const std::string& person, const std::vector<PairingWaiter>& woken) override {
    wake_in_order(person, woken);
    return true;
  }

  void wake_in_order(const std::string& person, const std::vector<PairingWaiter>& woken,
                     const std::string& except_key = {}) {
    std::vector<PairingWaiter> first, later;
    for (const auto& w : woken) {
      if (w.destination == name_ && w.key == except_key) continue;
      (w.key == person ? first : later).push_back(w);
    }
    bool self_is_person = !except_key.empty() && except_key == person;
    if (first.empty() && !self_is_person) {
      wake(later);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto& h = held_[person];
      h.insert(h.end(), later.begin(), later.end());
    }
    wake(first);
  }

  Outcome deliver(const DeliveryRequest& req) override {
    if (req.message == nullptr || req.body == nullptr) {
      return Outcome::reject("config", 0, "no message to deliver");
    }
    if (app_.on && req.message->type == app_.choice_type) return choose(req);
    const Operation* op = nullptr;
    for (const auto& [pattern, name] : types_) {
      if (glob_match(pattern, req.message->type)) {
        op = &ops_.at(name);
        break;
      }
    }
    if (op == nullptr) {
      return Outcome::reject(
          "config", 0,
          "no Genesis operation for message type '" + req.message->type + "': add it to types");
    }
    nlohmann::json ctx = context(req);
    const std::string& key = req.message->correlation;
    std::string person;
    if (op->person) {
      if (!app_.on || pairings_ == nullptr) {
        return Outcome::reject("config", 0,
                               "operation " + op->name +
                                   " needs the person's Genesis id: configure appariement (and "
                                   "the hub's pairing store)");
      }
      if (!person_key(*req.body, person)) {
        return Outcome::reject("mapping", 0,
                               "no person key in the message (appariement.person gives none)");
      }
      Status st;
      std::optional<Pairing> p = pairings_->get(app_.partner, person, st);
      if (!st.ok) return Outcome::retry("store", st.http_status, "pairings: " + st.detail);
      if (p && p->state == PairingState::Paired) {
        ctx["pairing"] = {{"id", p->external_id}, {"how", p->how}};
      } else {
        std::optional<Outcome> waiting = pair_person(req, *op, person, p, ctx);
        if (waiting) return finish(person, key, *waiting);
      }
    }
    return finish(person, key, run(req, *op, ctx));
  }

 private:
  void read_appariement(const ConfigView& a) {
    app_.on = true;
    app_.partner = a.str("partner").empty() ? name_ : a.str("partner");
    std::string err;
    for (const auto& alt : split_alternatives(a.str("person"))) {
      JsonTemplate t;
      if (!JsonTemplate::parse(alt, t, err)) throw std::runtime_error(a.path() + ".person: " + err);
      app_.person.push_back(std::move(t));
    }
    app_.search = a.str("search");
    app_.search_types = a.strings("search_types");
    if (app_.search_types.empty()) app_.search_types = {"individu.*"};
    for (const auto& [name, path] : a.string_map("criteria")) {
      JsonPath p;
      if (!JsonPath::parse(path, p, err)) {
        throw std::runtime_error(a.path() + ".criteria." + name + ": " + err);
      }
      app_.criteria.emplace_back(name, std::move(p));
    }
    app_.auto_pair = a.boolean("auto_pair");
    app_.auto_score = a.number("auto_score");
    app_.callback = a.str("callback");
    app_.candidates_type = a.str("candidates_type");
    app_.recheck_ms = a.duration_ms("recheck");
    app_.choice_type = a.str("choice_type");
    if (!JsonPath::parse(a.str("choice_person"), app_.choice_person, err) ||
        !JsonPath::parse(a.str("choice_id"), app_.choice_id, err)) {
      throw std::runtime_error(a.path() + ": choice path: " + err);
    }
    app_.verify = a.str("verify");
    app_.create = a.str("create");
    app_.create_when_none = a.boolean("create_when_none");
  }

  nlohmann::json context(const DeliveryRequest& req) const {
    nlohmann::json ctx = nlohmann::json::object();
    ctx["payload"] = req.mapped != nullptr ? *req.mapped : *req.body;
    ctx["body"] = *req.body;
    ctx["message"] = {{"id", req.message->id},
                      {"type", req.message->type},
                      {"key", req.message->correlation},
                      {"source", req.message->source}};
    return ctx;
  }

  bool person_key(const nlohmann::json& body, std::string& out) const {
    for (const auto& t : app_.person) {
      std::string err;
      if (t.render(body, out, err) && !out.empty()) return true;
    }
    return false;
  }

  Millis now() const { return clock_ != nullptr ? clock_->now_ms() : 0; }

  // ---- one request -----------------------------------------------------------------------

  Call exec(const Operation& op, const nlohmann::json& ctx, const DeliveryRequest& req) {
    Call call;
    CURL* h = handles_.at(req.slot);
    std::string path, err;
    if (!op.path.render(ctx, path, err, [h](const std::string& v) { return url_escape(h, v); })) {
      call.failure =
          Outcome::reject("config", 0, "Genesis " + op.name + ": cannot build the path: " + err);
      return call;
    }
    std::string body;
    if (!build_body(op, ctx, req, body, err)) {
      call.failure =
          Outcome::reject("mapping", 0, "Genesis " + op.name + ": cannot build the body: " + err);
      return call;
    }
    std::vector<std::string> headers;
    if (soap_) {
      std::string header;
      if (wss_) {
        std::string nonce = soap::wsse_nonce();
        if (nonce.empty()) {
          call.failure = Outcome::retry("internal", 0, "no random bytes for the WS-Security nonce");
          return call;
        }
        header = wsse_header(token_, nonce, format_rfc3339(now()));
      }
      body = soap_envelope(header, body);
      headers = {"Content-Type: text/xml; charset=utf-8", "Accept: text/xml",
                 "SOAPAction: \"" + op.soap_action + "\""};
    } else {
      headers = {"Accept: application/json"};
      if (!body.empty()) headers.emplace_back("Content-Type: application/json");
    }
    headers.push_back("X-Relais-Message-Id: " + req.message->id);
    // A WS-Security request carries a nonce the peer refuses to see twice: never re-sent as is.
    Send send = !op.idempotent ? Send::Once : wss_ ? Send::Fresh : Send::Idempotent;
    HttpAnswer a =
        calendar::http_exchange(h, op.method, url_ + path, headers, body, transfer_, auth_, send);
    if (a.rc != CURLE_OK) {
      call.failure = calendar::network_failure(a, "Genesis");
      return call;
    }
    call.status = a.status;
    call.raw = calendar::excerpt(a.body);
    call.answer = soap_ ? read_soap_answer(a.body, op.answer) : read_json_answer(a.body, op.answer);
    std::optional<Outcome> failed = classify(op, a, call.answer);
    if (failed) {
      call.failure = *failed;
      call.failure.excerpt = call.raw;
      return call;
    }
    call.ok = true;
    return call;
  }

  bool build_body(const Operation& op, const nlohmann::json& ctx, const DeliveryRequest& req,
                  std::string& out, std::string& err) const {
    if (op.body_mode == "none" || !method_sends_body(op.method)) return true;
    if (op.body_mode == "payload") {
      out = req.payload != nullptr ? *req.payload : req.message->body;
      return true;
    }
    if (op.body_mode == "template") {
      return op.body.render(ctx, out, err, soap_ ? soap::xml_escape : json_escape);
    }
    const nlohmann::json* in = op.input.find(ctx);
    nlohmann::json input = in != nullptr ? *in : nlohmann::json::object();
    for (const auto& [target, tpl] : op.set) {
      std::string v;
      if (!tpl.render(ctx, v, err)) return false;
      if (!target.set(input, v)) {
        err = "cannot set " + target.text();
        return false;
      }
    }
    out = soap_ ? json_to_xml(op.element, op.element_prefix, op.element_ns, input) : input.dump();
    return true;
  }

  // nullopt: the answer means success.
  std::optional<Outcome> classify(const Operation& op, const HttpAnswer& h, const Answer& a) {
    const long status = h.status;
    const std::string what = "Genesis " + op.name;
    if (status == 401 || status == 403 ||
        (a.fault && (a.fault_code == "FailedAuthentication" || a.fault_code == "InvalidSecurity" ||
                     a.fault_code == "InvalidSecurityToken"))) {
      return Outcome::reject(
          "config", static_cast<int>(status),
          "Genesis a refusé l'authentification (" + what + ", HTTP " + std::to_string(status) +
              ") : vérifier le compte et le mot de passe (WS-Security), le jeton ou le "
              "certificat client");
    }
    if (a.fault && a.fault_code == "MessageExpired") {
      return Outcome::retry("clock", static_cast<int>(status),
                            what +
                                ": the WS-Security timestamp was refused as stale (check the "
                                "clocks of relais and Genesis)");
    }
    std::string code = a.value("error_code");
    if (!code.empty()) return business(code, status);
    if (status == 429 || status == 503 || (status >= 500 && !a.fault)) {
      return retry_or_throttle(status, h.header("retry-after"), now(), max_retry_after_ms_,
                               "HTTP " + std::to_string(status) + " from " + what);
    }
    if (a.fault) {
      bool server = a.fault_code == "Server" || a.fault_code == "Receiver";
      std::string text = what + " answered a SOAP Fault (" + a.fault_code + ")";
      if (server)
        return Outcome::retry("genesis", static_cast<int>(status), text + ": will try again");
      return Outcome::reject("genesis", static_cast<int>(status),
                             text + ": the request was refused");
    }
    if (!status_matches(op.success_status, status)) {
      if (classify_http_status(status) == Outcome::Kind::Retry) {
        return retry_or_throttle(status, h.header("retry-after"), now(), max_retry_after_ms_,
                                 "HTTP " + std::to_string(status) + " from " + what);
      }
      return Outcome::reject(
          "http", static_cast<int>(status),
          "HTTP " + std::to_string(status) + " from " + what + ": the request was refused");
    }
    if (!a.parsed) {
      // A broken answer is not an empty one: the outcome is unclear.
      return Outcome::retry(op.creates ? "unknown_outcome" : "genesis", static_cast<int>(status),
                            what + ": unreadable answer (" + a.broken + ")");
    }
    if (!op.answer.success_path.empty() && !a.success_present) {
      return Outcome::retry(op.creates ? "unknown_outcome" : "genesis", static_cast<int>(status),
                            what + ": the answer does not say that it succeeded");
    }
    return std::nullopt;
  }

  Outcome business(const std::string& code, long status) const {
    const ErrorRule* rule = nullptr;
    for (const auto& r : errors_) {
      if (r.pattern == code) rule = &r;
    }
    for (size_t i = 0; rule == nullptr && i < errors_.size(); ++i) {
      if (glob_match(errors_[i].pattern, code)) rule = &errors_[i];
    }
    if (rule == nullptr) rule = &default_error_;
    std::string text = "Genesis : " +
                       (rule->explication.empty() ? std::string("demande refusée par Genesis")
                                                  : rule->explication) +
                       " (code " + code + ")";
    if (rule->retry) return Outcome::retry("genesis", static_cast<int>(status), text);
    return Outcome::reject("genesis", static_cast<int>(status), text);
  }

  // ---- cross-references ------------------------------------------------------------------

  std::optional<CrossReference> xref(const std::string& key, Outcome& failed) {
    if (xrefs_ == nullptr || key.empty()) return std::nullopt;
    try {
      return xrefs_->get(name_, key);
    } catch (const std::exception& e) {
      failed =
          Outcome::retry("store", 0, std::string("cannot read the cross-reference: ") + e.what());
      return std::nullopt;
    }
  }

  bool put_xref(const std::string& key, const std::string& id, const DeliveryRequest& req,
                Outcome& failed) {
    if (xrefs_ == nullptr || key.empty()) return true;
    CrossReference x;
    x.destination = name_;
    x.key = key;
    x.external_id = id;
    x.message_id = req.message->id;
    try {
      xrefs_->put(x);
      return true;
    } catch (const std::exception& e) {
      failed = Outcome::retry(
          "store", 0,
          std::string("Genesis record written but the cross-reference could not be: ") + e.what());
      return false;
    }
  }

  // The operation for the key: its update when the key's Genesis id is known, a search first
  // when an earlier create's answer was lost.
  Outcome run(const DeliveryRequest& req, const Operation& chosen, nlohmann::json& ctx) {
    const std::string& key = req.message->correlation;
    const Operation* op = &chosen;
    Outcome failed;
    failed.kind = Outcome::Kind::Delivered;
    std::optional<CrossReference> x = xref(key, failed);
    if (failed.kind != Outcome::Kind::Delivered) return failed;
    if (x && x->external_id == kUnknown) {
      // A create went out without an answer: find what it may have created before creating.
      x.reset();
      if (!op->find.empty()) {
        Call f = exec(ops_.at(op->find), ctx, req);
        if (!f.ok) return f.failure;
        std::string found = f.answer.value("id");
        if (!found.empty()) {
          if (!put_xref(key, found, req, failed)) return failed;
          x = CrossReference{name_, key, found, "", 0, req.message->id};
          if (op->creates) {
            return Outcome::delivered(found, "Genesis " + op->name +
                                                 ": already created by an earlier attempt (found "
                                                 "by " +
                                                 op->find + "), not created again");
          }
        }
      }
    }
    if (x) {
      ctx["ref"] = {{"id", x->external_id}};
      if (!op->if_known.empty()) op = &ops_.at(op->if_known);
    }
    if (op->needs_ref && !x) {
      std::string why = "aucun dossier Genesis connu pour " + key +
                        " (sa création n'a pas été transmise à Genesis)";
      if (op->skip_unknown_ref) return Outcome::skip(why + " : rien à mettre à jour");
      return Outcome::reject("genesis", 0, "Genesis " + op->name + " : " + why);
    }
    if (op->person && !ctx.contains("pairing")) {
      return Outcome::reject("config", 0, "operation " + op->name + " needs appariement");
    }
    Call c = exec(*op, ctx, req);
    if (!c.ok) {
      if (op->creates && c.failure.error_class == "unknown_outcome") {
        Outcome ignored;
        put_xref(key, kUnknown, req, ignored);  // without it the next attempt may duplicate
      }
      return c.failure;
    }
    if (op->creates) {
      std::string id = c.answer.value("id");
      if (id.empty()) {
        Outcome ignored;
        put_xref(key, kUnknown, req, ignored);
        Outcome o = Outcome::retry("unknown_outcome", static_cast<int>(c.status),
                                   "Genesis " + op->name +
                                       ": accepted but gave no id; the next attempt searches "
                                       "before creating");
        o.excerpt = c.raw;
        return o;
      }
      if (!put_xref(key, id, req, failed)) return failed;
      Outcome o = Outcome::delivered(id, "Genesis " + op->name + ": created");
      o.code = static_cast<int>(c.status);
      o.excerpt = c.raw;
      return o;
    }
    std::string ref = c.answer.value("id");
    if (ref.empty() && ctx.contains("ref")) ref = ctx["ref"]["id"].get<std::string>();
    if (ref.empty() && ctx.contains("pairing")) ref = ctx["pairing"]["id"].get<std::string>();
    Outcome o = Outcome::delivered(ref, "Genesis " + op->name + ": done");
    o.code = static_cast<int>(c.status);
    o.excerpt = c.raw;
    return o;
  }

  // ---- appariement -----------------------------------------------------------------------

  void wake(const std::vector<PairingWaiter>& waiters) {
    if (hub_ == nullptr) return;
    for (const auto& w : waiters) hub_->wake(w.destination, w.key);
  }

  // The person's own delivery ended: the deliveries held behind it go now (the partner sees
  // the person before its requests).
  Outcome finish(const std::string& person, const std::string& key, Outcome o) {
    if (person.empty() || key != person || o.kind == Outcome::Kind::Defer ||
        o.kind == Outcome::Kind::Retry || o.kind == Outcome::Kind::Throttle) {
      return o;
    }
    std::vector<PairingWaiter> held;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = held_.find(person);
      if (it != held_.end()) {
        held = std::move(it->second);
        held_.erase(it);
      }
    }
    wake(held);
    return o;
  }

  Outcome waiting() const {
    return Outcome::defer(now() + app_.recheck_ms, "en attente d'appariement Genesis");
  }

  // nullopt: paired now (ctx.pairing set), go on; else the outcome (defer, failure, or a
  // delivery done by creating the person).
  std::optional<Outcome> pair_person(const DeliveryRequest& req, const Operation& op,
                                     const std::string& person, const std::optional<Pairing>& p,
                                     nlohmann::json& ctx) {
    const PairingWaiter me{name_, req.message->correlation};
    bool searchable =
        !app_.search.empty() &&
        std::any_of(app_.search_types.begin(), app_.search_types.end(),
                    [&](const std::string& g) { return glob_match(g, req.message->type); });
    bool already = p && std::find(p->waiters.begin(), p->waiters.end(), me) != p->waiters.end();
    if (!searchable || already) {
      Status st = pairings_->wait(app_.partner, person, me);
      if (!st.ok && st.http_status == 409) {
        // Paired in the meantime.
        Status g;
        std::optional<Pairing> now_paired = pairings_->get(app_.partner, person, g);
        if (g.ok && now_paired && now_paired->state == PairingState::Paired) {
          ctx["pairing"] = {{"id", now_paired->external_id}, {"how", now_paired->how}};
          return std::nullopt;
        }
      }
      if (!st.ok) return Outcome::retry("store", st.http_status, "pairings: " + st.detail);
      if (already && p) {
        if (std::optional<Outcome> o = post_pending(person, *p)) return o;
      }
      return waiting();
    }
    // Search Genesis for the person.
    nlohmann::json criteria = nlohmann::json::object();
    for (const auto& [name, path] : app_.criteria) {
      const nlohmann::json* v = path.find(ctx);
      if (v != nullptr && !v->is_null()) criteria[name] = *v;
    }
    ctx["criteria"] = criteria;
    Call s = exec(ops_.at(app_.search), ctx, req);
    if (!s.ok) return s.failure;
    if (!s.answer.candidates_valid) {
      Outcome o =
          Outcome::retry("genesis", static_cast<int>(s.status),
                         "Genesis " + app_.search + ": the answer holds no list of candidates");
      o.excerpt = s.raw;
      return o;
    }
    const auto& cands = s.answer.candidates;
    size_t strong = static_cast<size_t>(
        std::count_if(cands.begin(), cands.end(),
                      [&](const PairingCandidate& c) { return c.score >= app_.auto_score; }));
    if (app_.auto_pair && strong == 1) {
      auto best = std::find_if(cands.begin(), cands.end(), [&](const PairingCandidate& c) {
        return c.score >= app_.auto_score;
      });
      std::vector<PairingWaiter> woken;
      Status st = pairings_->pair(app_.partner, person, best->external_id, "auto", "auto", woken);
      if (!st.ok) return Outcome::retry("store", st.http_status, "pairings: " + st.detail);
      wake_in_order(person, woken, me.key);
      ctx["pairing"] = {{"id", best->external_id}, {"how", "auto"}};
      return std::nullopt;
    }
    if (cands.empty() && app_.create_when_none && !app_.create.empty()) {
      return create_person(req, person, ctx);
    }
    Pairing out;
    Status st = pairings_->propose(app_.partner, person, cands, me, out);
    if (!st.ok && st.http_status == 409) return Outcome::retry("store", 409, "paired meanwhile");
    if (!st.ok) return Outcome::retry("store", st.http_status, "pairings: " + st.detail);
    if (std::optional<Outcome> o = post_candidates(person, out)) return o;
    return waiting();
  }

  // Creates the person (nobody found): the new id is the pairing, and the delivery is done.
  std::optional<Outcome> create_person(const DeliveryRequest& req, const std::string& person,
                                       nlohmann::json& ctx) {
    const Operation& create = ops_.at(app_.create);
    Outcome o = run(req, create, ctx);
    if (o.kind != Outcome::Kind::Delivered) return o;
    std::vector<PairingWaiter> woken;
    Status st = pairings_->pair(app_.partner, person, o.external_ref, "auto", "auto", woken);
    if (!st.ok) return Outcome::retry("store", st.http_status, "pairings: " + st.detail);
    wake_in_order(person, woken, req.message->correlation);
    o.text = "Genesis " + create.name + ": nobody found by the search, person created and paired";
    return o;
  }

  // Posts the candidates to the callback destination; a failure is a retry and the post is
  // tried again at the next attempt (remembered in memory).
  std::optional<Outcome> post_candidates(const std::string& person, const Pairing& p) {
    if (app_.callback.empty() || hub_ == nullptr) return std::nullopt;
    nlohmann::json body = {{"event", app_.candidates_type}, {"personne", person},
                           {"partenaire", app_.partner},    {"appariement", p.id},
                           {"destination", name_},          {"candidats", nlohmann::json::array()}};
    for (const auto& c : p.candidates) {
      nlohmann::json item = c.summary.is_object() ? c.summary : nlohmann::json::object();
      item["genesis_id"] = c.external_id;
      item["score"] = c.score;
      body["candidats"].push_back(std::move(item));
    }
    std::string id;
    Status st = hub_->post(app_.callback, app_.candidates_type, person, body.dump(), id);
    std::lock_guard<std::mutex> lock(mu_);
    if (!st.ok) {
      unposted_.insert(person);
      return Outcome::retry("hub", st.http_status,
                            "candidats Genesis non transmis à " + app_.callback + " : " + st.error);
    }
    unposted_.erase(person);
    return std::nullopt;
  }

  std::optional<Outcome> post_pending(const std::string& person, const Pairing& p) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (unposted_.count(person) == 0) return std::nullopt;
    }
    return post_candidates(person, p);
  }

  // A person's choice: pair, then wake what waited (the person's own deliveries first).
  Outcome choose(const DeliveryRequest& req) {
    if (pairings_ == nullptr) {
      return Outcome::reject("config", 0, "no pairing store: appariement is not available");
    }
    std::string person, id;
    const nlohmann::json* pv = app_.choice_person.find(*req.body);
    const nlohmann::json* iv = app_.choice_id.find(*req.body);
    if (pv == nullptr || !scalar_text(*pv, person) || person.empty()) {
      return Outcome::reject(
          "mapping", 0, "choix d'appariement sans personne (" + app_.choice_person.text() + ")");
    }
    if (iv == nullptr || !scalar_text(*iv, id) || id.empty()) {
      return Outcome::reject(
          "mapping", 0,
          "choix d'appariement sans identifiant Genesis (" + app_.choice_id.text() + ")");
    }
    Status st;
    std::optional<Pairing> p = pairings_->get(app_.partner, person, st);
    if (!st.ok) return Outcome::retry("store", st.http_status, "pairings: " + st.detail);
    bool proposed =
        p && std::any_of(p->candidates.begin(), p->candidates.end(),
                         [&](const PairingCandidate& c) { return c.external_id == id; });
    if (!proposed && !(p && p->state == PairingState::Paired && p->external_id == id)) {
      if (app_.verify.empty()) {
        return Outcome::reject("genesis", 0,
                               "appariement refusé : l'identifiant Genesis choisi ne fait pas "
                               "partie des candidats proposés");
      }
      nlohmann::json ctx = context(req);
      ctx["choice"] = {{"id", id}, {"person", person}};
      Call v = exec(ops_.at(app_.verify), ctx, req);
      if (!v.ok) {
        if (v.failure.kind != Outcome::Kind::Reject) return v.failure;
        Outcome o = Outcome::reject("genesis", v.failure.code,
                                    "appariement refusé : identifiant Genesis inconnu de Genesis "
                                    "(" +
                                        v.failure.text + ")");
        o.excerpt = v.failure.excerpt;
        return o;
      }
    }
    std::vector<PairingWaiter> woken;
    st = pairings_->pair(app_.partner, person, id, "message", req.message->source, woken);
    if (!st.ok && st.http_status == 409) {
      return Outcome::reject("genesis", 409,
                             "appariement refusé : la personne est déjà appariée à un autre "
                             "dossier Genesis (défaire l'appariement d'abord, dans la console)");
    }
    if (!st.ok) return Outcome::retry("store", st.http_status, "pairings: " + st.detail);
    wake_in_order(person, woken);
    return Outcome::delivered(id, "apparié à Genesis (choix reçu de " + req.message->source + ", " +
                                      std::to_string(woken.size()) + " envoi(s) repris)");
  }

  std::string name_;
  const Clock* clock_;
  XrefStore* xrefs_;
  PairingStore* pairings_;
  HubServices* hub_;
  int64_t max_retry_after_ms_;
  calendar::CurlHandles handles_;
  bool soap_ = false;
  std::string url_;
  CurlTransfer transfer_;
  bool wss_ = false;
  WsseToken token_;
  HttpAuth auth_;
  std::map<std::string, Operation> ops_;
  std::vector<std::pair<std::string, std::string>> types_;
  std::vector<ErrorRule> errors_;
  ErrorRule default_error_;
  Appariement app_;
  std::mutex mu_;
  std::map<std::string, std::vector<PairingWaiter>> held_;  // person → woken after its own
  std::set<std::string> unposted_;                          // persons whose candidates wait
};

}  // namespace

namespace {

void check(const ConfigView& c, const std::string& file, std::vector<ConfigError>& errors) {
  check_tls_client(c.object("tls"), file, errors);
  auto err = [&](const std::string& key, const std::string& msg) {
    errors.push_back(error_at(c.node(), file, c.path() + "." + key, msg));
  };
  const bool soap = c.str("driver") == "soap";
  std::string url = c.str("url");
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
    err("url", "the URL must start with http(s)://");
  }
  if (c.has("wss")) {
    ConfigView w = c.object("wss");
    if (!soap) err("wss", "WS-Security is for the soap driver");
    if (std::string p = soap::wss_problem(w); !p.empty()) err("wss", p);
  }
  if (c.has("bearer_token") && c.has("basic_user")) {
    err("bearer_token", "choose bearer_token or basic_user/basic_password, not both");
  }
  std::map<std::string, std::string> shared_ns;
  for (const auto& [p, uri] : c.string_map("namespaces")) shared_ns[p] = uri;
  std::set<std::string> names;
  for (const auto& [n, v] : c.object_map("operations")) names.insert(n);
  auto known = [&](const std::string& key, const std::string& op) {
    if (!op.empty() && names.count(op) == 0) err(key, "no operation named '" + op + "'");
  };
  for (const auto& [n, v] : c.object_map("operations")) {
    const std::string at = "operations." + n;
    try {
      Operation op = read_operation(n, v, soap, shared_ns);
      if (soap && op.soap_action.empty()) err(at + ".soap_action", "required with driver soap");
      if (soap && op.body_mode == "auto") {
        if (op.element.empty()) err(at + ".element", "required with driver soap and body auto");
        if (!op.element_prefix.empty() && op.element_ns.empty()) {
          err(at + ".element", "the prefix '" + op.element_prefix + "' is not in namespaces");
        }
      }
      std::vector<std::string> paths;
      for (const auto& [k, p] : op.answer.extract) paths.push_back(p);
      for (const auto& [k, p] : op.answer.candidate) paths.push_back(p);
      if (!op.answer.candidates.empty()) paths.push_back(op.answer.candidates);
      if (!op.answer.success_path.empty()) paths.push_back(op.answer.success_path);
      for (const auto& p : paths) {
        std::string why = soap ? check_xpath(p) : check_json_path(p);
        if (!why.empty()) err(at, "'" + p + "': " + why);
      }
      if (!op.answer.candidates.empty() &&
          (op.answer.candidate.count("id") == 0 || op.answer.candidate.count("score") == 0)) {
        err(at + ".candidate", "a search's candidate needs id and score");
      }
      if (op.creates && op.answer.extract.count("id") == 0) {
        err(at + ".extract", "an operation that creates needs extract.id");
      }
      known(at + ".find", op.find);
      known(at + ".if_known", op.if_known);
    } catch (const std::exception& e) {
      errors.push_back(error_at(v.node(), file, c.path() + "." + at, e.what()));
    }
  }
  for (const auto& [type, op] : c.string_map("types")) known("types." + type, op);
  if (c.has("appariement")) {
    ConfigView a = c.object("appariement");
    known("appariement.search", a.str("search"));
    known("appariement.verify", a.str("verify"));
    known("appariement.create", a.str("create"));
    if (a.boolean("create_when_none") && a.str("create").empty()) {
      err("appariement.create", "required with create_when_none");
    }
    std::string why;
    for (const auto& alt : split_alternatives(a.str("person"))) {
      JsonTemplate t;
      if (!JsonTemplate::parse(alt, t, why)) err("appariement.person", why);
    }
    for (const char* key : {"choice_person", "choice_id"}) {
      if (std::string w = check_json_path(a.str(key)); !w.empty()) {
        err(std::string("appariement.") + key, w);
      }
    }
    for (const auto& [name, path] : a.string_map("criteria")) {
      if (std::string w = check_json_path(path); !w.empty()) {
        err("appariement.criteria." + name, w);
      }
    }
  }
}

}  // namespace
}  // namespace relais::genesis

namespace relais {

void register_genesis_connector(ConnectorRegistry& registry) {
  ConnectorKind k;
  k.name = "genesis";
  k.description =
      "Genesis (Worldline): SOAP (WS-Security) or REST operations described in configuration, "
      "Genesis ids as cross-references, error codes explained in French, appariement of persons";
  k.spec = &genesis::genesis_spec();
  k.check = genesis::check;
  k.create = [](const ConnectorContext& ctx) -> std::unique_ptr<Connector> {
    return std::make_unique<genesis::GenesisConnector>(ctx);
  };
  registry.add(std::move(k));
}

}  // namespace relais

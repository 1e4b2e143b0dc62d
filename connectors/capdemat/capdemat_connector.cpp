// The `capdemat` destination and the `capdemat` polling source (capdemat.h,
// docs/connectors/capdemat.md):
// - deliver(): a CMS76 demande's state → POST {url}/service/request/{id}/state under the
//   workflow's legal transitions for an external service, guarded by the cross-references
//   (intended before sending, applied after; after a lost answer the request's state is read
//   before trying again), so a transition is never applied twice; a pairing message records a
//   HomeFolderMapping / IndividualMapping in the hub's pairings (partner "capdemat") and, with
//   pairing.mapping, sends it to Capdémat's HomeFolderMappingService at most once (SOAP,
//   WS-Security; the cross-reference "mapping:<person>" guards it); a code list message is PUT
//   as a local referential;
// - on_table_published(): a table named in `referentials` becomes a code list message posted to
//   this destination (durable, retried like any delivery);
// - inbound("inbound/request"): Capdémat's push of a request (HTTP Basic), validated against its
//   type's schema, read into a message of the configured source and committed (Hub::submit)
//   before the 2xx;
// - the poller: GetRequests / AckRequests over SOAP with a WS-Security UsernameToken, a request
//   acknowledged only once committed, Erroneous=true when it could not be read (it comes back).

#include <algorithm>
#include <memory>
#include <stdexcept>

#include "connectors/calendar/calendar_http.h"
#include "connectors/capdemat/capdemat.h"
#include "connectors/http/http_connector.h"
#include "connectors/soap/wsse.h"
#include "core/crypto.h"
#include "core/files.h"
#include "core/glob.h"
#include "core/json_template.h"
#include "core/log.h"
#include "core/tls_client.h"
#include "core/xref_store.h"

namespace relais::capdemat {
namespace {

using F = FieldType;
using calendar::HttpAnswer;
using calendar::HttpAuth;
using calendar::Send;

// The cross-reference's version while a transition was sent and its answer is not known.
const char* const kPending = "pending:";
const char* const kPartner = "capdemat";

const ConfigSpec& schemas_spec() {
  static const ConfigSpec s{
      "capdemat schemas",
      {
          {"folder", F::String, "", true,
           "the folder of Capdémat's schemas (request/, common/, external/ …)"},
          {"rewrites", F::StringMap, "", false,
           "XML catalogue: remote schema location prefix → folder under `folder` (e.g. "
           "\"http://people.zenexity.fr/~bor/capdemat/latest/\": \".\"); nothing is ever "
           "loaded from the network"},
          {"types", F::StringMap, "", true,
           "root element → schema file under `folder` (e.g. HomeFolderModificationRequest: "
           "request/HomeFolderModificationRequest.xsd; GetRequestsResponse: "
           "external/GetRequests.xsd for the pull)"},
      }};
  return s;
}

// How a request becomes a message: shared by the push (destination) and the pull (source).
std::vector<FieldSpec> reader_fields() {
  return {
      {"schemas", F::Object, "", true, "validation of the requests", {}, &schemas_spec()},
      {"namespaces", F::StringMap, "", false,
       "prefix → URI for the XPaths (cvq: and capdemat: are predeclared)"},
      {"fields", F::StringMap, "", true,
       "the message's body: JSON path ← XPath from the request element, as text (e.g. "
       "$.demande.capdemat_id: cvq:Id; a literal 'demande.capdemat' gives a constant)"},
      {"required", F::StringList, "", false, "fields that must not be empty"},
      {"id", F::String, "string(cvq:Id)", false, "XPath of the request's Capdémat id"},
  };
}

const ConfigSpec& inbound_spec() {
  static const ConfigSpec s{
      "capdemat inbound",
      join_fields({
          {
              {"user", F::String, "", true, "HTTP Basic user Capdémat sends"},
              {"password", F::Secret, "", true, "HTTP Basic password Capdémat sends"},
              {"source", F::String, "", true,
               "the relais source whose routes take the requests (messages as if it had "
               "sent them)"},
          },
          reader_fields(),
      })};
  return s;
}

// Capdémat's HomeFolderMappingService (external/HomeFolderMappingService.xsd and its WSDL).
const ConfigSpec& mapping_service_spec() {
  static const ConfigSpec s{
      "capdemat mapping service",
      {
          {"url", F::String, "", true, "the SOAP endpoint of Capdémat's HomeFolderMappingService"},
          {"wss", F::Object, "", true, "WS-Security UsernameToken", {}, &soap::wss_spec()},
          {"local_authority", F::String, "", true,
           "LocalAuthority of the request: the authority's name at Capdémat"},
          {"action", F::String, "http://www.capwebct.fr/capdemat/homeFolderMapping", false,
           "SOAPAction of homeFolderMapping (the WSDL's)"},
      }};
  return s;
}

const ConfigSpec& pairing_spec() {
  static const ConfigSpec s{
      "capdemat pairing",
      {
          {"types", F::StringList, "", false,
           "message types that carry a mapping (default [capdemat.appariement])"},
          {"person", F::String, "$.appariement.personne", false,
           "JSON path of the CMS76 key (individu:… or foyer:…)"},
          {"capdemat_id", F::String, "$.appariement.capdemat_id", false,
           "JSON path of the Capdémat id (individual or home folder)"},
          {"home_folder_prefix", F::String, "foyer:", false,
           "CMS76 keys that start with it are home folders; the others are individuals"},
          {"home_folder", F::String, "$.appariement.foyer", false,
           "JSON path of an individual's home folder (its CMS76 key, e.g. foyer:12): Capdémat's "
           "mapping service takes an individual's mapping with its home folder's"},
          {"mapping",
           F::Object,
           "",
           false,
           "send each pairing to Capdémat's HomeFolderMappingService (once; ExternalId = the "
           "CMS76 key without its prefix); absent: pairings are kept in relais only",
           {},
           &mapping_service_spec()},
      }};
  return s;
}

// A lookup table sent to Capdémat as a local referential when it is published.
const ConfigSpec& referential_spec() {
  static const ConfigSpec s{
      "capdemat referential",
      {
          {"name", F::String, "", false, "the referential's name at Capdémat (\"\" = the table's)"},
          {"label", F::String, "", false, "its label (\"\" = its name)"},
          {"entry_label", F::String, "key", false,
           "what labels an entry: key (the key itself), value (a table of values: its value) or "
           "the name of a column of a table of records"},
      }};
  return s;
}

const ConfigSpec& connector_spec() {
  static const ConfigSpec s{
      "capdemat",
      join_fields({
          {
              {"url", F::String, "", true,
               "Capdémat's base URL (the state of a request: {url}/service/request/{id}/state)"},
          },
          curl_transfer_fields("total time allowed for one request"),
          {
              {"basic_user", F::String, "", false, "HTTP Basic user for Capdémat's REST calls"},
              {"basic_password", F::Secret, "", false, "its password"},
              {"workflow", F::String, "", true,
               "Capdémat's request workflow (requestWorkflow.xml), read at start-up"},
              {"id_path", F::String, "$.demande.capdemat_id", false,
               "JSON path of the request's Capdémat id in the message"},
              {"state_path", F::String, "$.demande.statut", false,
               "JSON path of the CMS76 state in the message"},
              {"states", F::StringMap, "", true,
               "CMS76 state → Capdémat state (e.g. en_instruction: Extinprogress)"},
              {"inbound",
               F::Object,
               "",
               false,
               "requests pushed by Capdémat to /api/v1/connectors/{destination}/inbound/request",
               {},
               &inbound_spec()},
              {"pairing",
               F::Object,
               "",
               false,
               "HomeFolderMapping / IndividualMapping messages kept as pairings (and sent to "
               "Capdémat's mapping service with `mapping`)",
               {},
               &pairing_spec()},
              {"referential_types", F::StringList, "", false,
               "message types that carry a code list (default [capdemat.referentiel]); the "
               "first is the type of the messages posted when a table of `referentials` is "
               "published"},
              {"referentials",
               F::ObjectMap,
               "",
               false,
               "lookup tables pushed to Capdémat as local referentials whenever an admin "
               "publishes them: table name → how (a durable message for this destination)",
               {},
               &referential_spec()},
          },
      })};
  return s;
}

const ConfigSpec& poller_spec() {
  static const ConfigSpec s{
      "capdemat poll",
      join_fields({
          {
              {"url", F::String, "", true, "Capdémat's SOAP endpoint of the external service"},
              {"wss", F::Object, "", true, "WS-Security UsernameToken", {}, &soap::wss_spec()},
              {"request_type", F::String, "", false,
               "GetRequests: only this request type label (\"\" = every type authorised)"},
              {"state", F::String, "Validated", false, "GetRequests: the requests' state"},
              {"get_action", F::String, "GetRequests", false, "SOAPAction of GetRequests"},
              {"ack_action", F::String, "AckRequests", false, "SOAPAction of AckRequests"},
          },
          curl_transfer_fields("total time allowed for one request"),
          reader_fields(),
      })};
  return s;
}

std::string resolve(const std::string& base, const std::string& path) {
  if (path.empty() || path[0] == '/' || base.empty()) return path;
  return base + "/" + path;
}

// A request reader: schemas + extraction, from a block declared with reader_fields().
struct Reader {
  std::unique_ptr<SchemaSet> schemas;
  Extraction extraction;

  Reader(const ConfigView& c, const std::string& base, const std::string& where) {
    ConfigView s = c.object("schemas");
    std::map<std::string, std::string> rewrites, types;
    for (const auto& [k, v] : s.string_map("rewrites")) rewrites[k] = v;
    for (const auto& [k, v] : s.string_map("types")) types[k] = v;
    try {
      schemas = std::make_unique<SchemaSet>(resolve(base, s.str("folder")), rewrites, types);
    } catch (const std::exception& e) {
      throw std::runtime_error(where + ": schemas: " + e.what());
    }
    extraction = extraction_of(c);
    if (std::string err = check_extraction(extraction); !err.empty()) {
      throw std::runtime_error(where + ": " + err);
    }
  }

  static Extraction extraction_of(const ConfigView& c) {
    Extraction e;
    for (const auto& [k, v] : c.string_map("namespaces")) e.namespaces[k] = v;
    e.fields = c.string_map("fields");
    e.required = c.strings("required");
    e.id_xpath = c.str("id");
    return e;
  }

  // Validates and reads one request; false with a French reason (no value of the request).
  bool read(const std::string& xml, nlohmann::json& body, std::string& id,
            std::string& error) const {
    Validation v = schemas->validate(xml);
    if (!v.ok) {
      error = v.error;
      return false;
    }
    return extract_request(xml, extraction, body, id, error);
  }
};

void check_reader(const ConfigView& c, const std::string& file, std::vector<ConfigError>& errors) {
  if (std::string err = check_extraction(Reader::extraction_of(c)); !err.empty()) {
    errors.push_back(error_at(c.node(), file, c.path(), err));
  }
}

// The block's `url` starts with http(s)://.
void check_url(const ConfigView& c, const std::string& file, std::vector<ConfigError>& errors) {
  std::string url = c.str("url");
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
    errors.push_back(
        error_at(c.node(), file, c.path() + ".url", "the URL must start with http(s)://"));
  }
}

// What the destination and the poller both check: the tls block and the URL's scheme.
void check_transport(const ConfigView& c, const std::string& file,
                     std::vector<ConfigError>& errors) {
  check_tls_client(c.object("tls"), file, errors);
  check_url(c, file, errors);
}

// One SOAP call with a fresh WS-Security UsernameToken (a new nonce: libcurl never re-sends the
// same bytes). `send`: Send::Fresh for a call that may be made again (a failure after sending is
// a plain retry), Send::Once for one that must not be (a failure after sending is
// "unknown_outcome"). False when no nonce could be drawn (nothing sent).
bool soap_call(CURL* h, const std::string& url, const soap::WsseToken& token,
               const CurlTransfer& transfer, Millis now, const std::string& action,
               const std::string& body_xml, Send send, HttpAnswer& a) {
  std::string nonce = soap::wsse_nonce();
  if (nonce.empty()) return false;
  std::string env =
      soap::soap_envelope(soap::wsse_header(token, nonce, format_rfc3339(now)), body_xml);
  a = calendar::http_exchange(h, "POST", url,
                              {"Content-Type: text/xml; charset=utf-8", "Accept: text/xml",
                               "SOAPAction: \"" + action + "\""},
                              env, transfer, HttpAuth{}, send);
  return true;
}

// The idempotency key of a request: its id and the digest of its XML (a request sent again
// unchanged is a duplicate; a new event of the same request is a new message).
std::string request_key(const std::string& id, const std::string& xml) {
  return "capdemat:" + id + ":" + sha256_hex(xml).substr(0, 32);
}

// ---- the destination ----

// One configured Capdémat destination. deliver() runs on up to `concurrency` slots, each with
// its own curl handle; everything else is immutable after construction (thread-safe). The
// stores and the hub's services are the hub's (they outlive the connector).
class CapdematConnector final : public Connector {
 public:
  explicit CapdematConnector(const ConnectorContext& ctx)
      : name_(ctx.name),
        clock_(ctx.clock),
        xrefs_(ctx.xrefs),
        pairings_(ctx.pairings),
        hub_(ctx.hub),
        max_retry_after_ms_(ctx.max_retry_after_ms),
        handles_(ctx.concurrency) {
    const ConfigView& c = ctx.config;
    const std::string where = "connector " + name_;
    url_ = c.str("url");
    while (!url_.empty() && url_.back() == '/') url_.pop_back();
    transfer_ = curl_transfer_from(c, where);
    if (!c.str("basic_user").empty()) {
      auth_.mode = HttpAuth::Mode::Basic;
      auth_.user = c.str("basic_user");
      auth_.password = c.str("basic_password");
    }
    std::string xml, err;
    if (!read_text_file(c.str("workflow"), xml)) {
      throw std::runtime_error(where + ": workflow: cannot read " + c.str("workflow"));
    }
    if (!Workflow::parse(xml, workflow_, err)) {
      throw std::runtime_error(where + ": workflow " + c.str("workflow") + ": " + err);
    }
    if (!JsonPath::parse(c.str("id_path"), id_path_, err) ||
        !JsonPath::parse(c.str("state_path"), state_path_, err)) {
      throw std::runtime_error(where + ": id_path / state_path: " + err);
    }
    for (const auto& [cms, cap] : c.string_map("states")) {
      if (!workflow_.has_state(cap)) {
        throw std::runtime_error(where + ": states." + cms + ": " + cap +
                                 " is not a state of the workflow");
      }
      states_[cms] = cap;
    }
    if (c.has("inbound")) {
      ConfigView in = c.object("inbound");
      inbound_user_ = in.str("user");
      inbound_password_ = in.str("password");
      inbound_source_ = in.str("source");
      reader_ = std::make_unique<Reader>(in, "", where + ": inbound");
    }
    referential_types_ = c.strings("referential_types");
    if (referential_types_.empty()) referential_types_ = {"capdemat.referentiel"};
    for (const auto& [table, r] : c.object_map("referentials")) {
      referentials_[table] = {r.str("name").empty() ? table : r.str("name"), r.str("label"),
                              r.str("entry_label")};
    }
    ConfigView p = c.object("pairing");
    home_prefix_ = p.str("home_folder_prefix");
    if (p.has("mapping")) {
      ConfigView m = p.object("mapping");
      mapping_url_ = m.str("url");
      mapping_token_ = soap::wsse_token_from(m.object("wss"), where + ": pairing.mapping");
      local_authority_ = m.str("local_authority");
      mapping_action_ = m.str("action");
    }
    pairing_types_ = p.strings("types");
    if (pairing_types_.empty()) pairing_types_ = {"capdemat.appariement"};
    if (!JsonPath::parse(p.str("person"), pair_person_, err) ||
        !JsonPath::parse(p.str("capdemat_id"), pair_id_, err) ||
        !JsonPath::parse(p.str("home_folder"), pair_home_, err)) {
      throw std::runtime_error(where + ": pairing: " + err);
    }
  }

  Status probe() override { return probe_connection(url_, transfer_); }

  Outcome deliver(const DeliveryRequest& req) override {
    if (req.message == nullptr || req.mapped == nullptr) {
      return Outcome::reject("config", 0, "no message to deliver");
    }
    for (const auto& t : pairing_types_) {
      if (glob_match(t, req.message->type)) return pair(req);
    }
    for (const auto& t : referential_types_) {
      if (glob_match(t, req.message->type)) return push_referential(req);
    }
    return push_state(req);
  }

  std::optional<InboundResponse> inbound(const InboundRequest& in) override {
    if (in.path != "inbound/request" || !reader_) return std::nullopt;
    InboundResponse out;
    auto fail = [&](int status, const std::string& error, const std::string& detail) {
      out.status = status;
      out.body = {{"error", error}, {"detail", detail}};
      return out;
    };
    if (in.method != "POST") return fail(405, "method not allowed", "POST the request's XML");
    if (!basic_ok(in.authorization)) {
      return fail(401, "unauthorized", "HTTP Basic credentials missing or wrong");
    }
    nlohmann::json body;
    std::string id, error;
    Validation v = reader_->schemas->validate(in.body);
    if (!v.ok) {
      out = fail(422, "invalid request", v.error);
      out.body["line"] = v.line;
      out.body["column"] = v.column;
      if (!v.path.empty()) out.body["element"] = v.path;
      return out;
    }
    if (!extract_request(in.body, reader_->extraction, body, id, error)) {
      return fail(422, "unreadable request", error);
    }
    if (hub_ == nullptr) return fail(503, "not stored", "no hub");
    std::string msg_id;
    bool duplicate = false;
    Status s =
        hub_->submit(inbound_source_, body.dump(), request_key(id, in.body), msg_id, duplicate);
    if (!s.ok) return fail(s.http_status, s.error, s.detail);
    out.status = duplicate ? 200 : 202;
    out.body = {{"id", msg_id}, {"request", id}};
    return out;
  }

 private:
  bool basic_ok(const std::string& header) const {
    const std::string prefix = "Basic ";
    if (header.size() <= prefix.size() || header.compare(0, prefix.size(), prefix) != 0) {
      return false;
    }
    std::string decoded;
    if (!base64_decode(header.substr(prefix.size()), decoded)) return false;
    // Both compared in full, in constant time, so that a wrong user takes as long as a
    // wrong password.
    bool ok = constant_time_equals(decoded, inbound_user_ + ":" + inbound_password_);
    return ok && !inbound_user_.empty();
  }

  Millis now() const { return clock_ ? clock_->now_ms() : SystemClock().now_ms(); }

  Outcome pair(const DeliveryRequest& req) {
    const nlohmann::json* person = pair_person_.find(*req.mapped);
    const nlohmann::json* id = pair_id_.find(*req.mapped);
    std::string p, x;
    if (person == nullptr || id == nullptr || !scalar_text(*person, p) || !scalar_text(*id, x) ||
        p.empty() || x.empty()) {
      return Outcome::reject("mapping", 0,
                             "appariement Capdémat : la personne ou l'identifiant Capdémat manque");
    }
    if (pairings_ == nullptr) return Outcome::retry("internal", 0, "no pairing store");
    std::vector<PairingWaiter> woken;
    Status s = pairings_->pair(kPartner, p, x, "message", req.message->source, woken);
    if (!s.ok && s.http_status == 409) {
      return Outcome::reject("pairing", 409,
                             "appariement Capdémat : cette personne est déjà appariée à un autre "
                             "identifiant (défaire l'appariement d'abord)");
    }
    if (!s.ok) return Outcome::retry("store", s.http_status, s.detail);
    // Pairing again to the same id wakes nothing: a retry of this delivery is harmless.
    for (const auto& w : woken) {
      if (hub_ != nullptr) hub_->wake(w.destination, w.key);
    }
    if (mapping_url_.empty()) return Outcome::delivered(x, "apparié");
    return send_mapping(req, p, x);
  }

  // The CMS76 id Capdémat keeps (ExternalId): the key without its prefix (foyer:12 → 12).
  static std::string external_id_of(const std::string& key) {
    auto colon = key.find(':');
    return colon == std::string::npos ? key : key.substr(colon + 1);
  }

  // The pairing of `person` (a CMS76 key) with Capdémat's `capdemat_id` sent to Capdémat's
  // HomeFolderMappingService, once: the cross-reference (destination, "mapping:<person>") holds
  // the Capdémat id and "pending:<message>" while it is sent, "sent:<message>" after a 2xx.
  // The operation is one-way (nothing to read back): after a lost answer or a crash the marker
  // stays, and no attempt of any message sends that pairing again (at most once: Capdémat's
  // endpoint sets the ids, so a lost request is the only loss, said on the desk). A pairing to
  // another id (after an undo) is sent. An individual goes with its home folder's mapping (the
  // schema requires it): it waits until the home folder is paired.
  Outcome send_mapping(const DeliveryRequest& req, const std::string& person,
                       const std::string& capdemat_id) {
    IdMapping home;
    std::vector<IdMapping> individuals;
    if (!home_prefix_.empty() && person.rfind(home_prefix_, 0) == 0) {
      home = {capdemat_id, external_id_of(person)};
    } else {
      const nlohmann::json* hv = pair_home_.find(*req.mapped);
      std::string folder;
      if (hv == nullptr || !scalar_text(*hv, folder) || folder.empty()) {
        return Outcome::reject("mapping", 0,
                               "appariement Capdémat d'un individu sans son foyer (" +
                                   pair_home_.text() + ") : Capdémat le demande");
      }
      Status st;
      std::optional<Pairing> fp = pairings_->get(kPartner, folder, st);
      if (!st.ok) return Outcome::retry("store", st.http_status, st.detail);
      if (!fp || fp->state != PairingState::Paired) {
        Status w = pairings_->wait(kPartner, folder, {name_, req.message->correlation});
        if (!w.ok && w.http_status != 409) return Outcome::retry("store", w.http_status, w.detail);
        if (w.ok) {
          return Outcome::defer(now() + 3600000,
                                "en attente de l'appariement Capdémat du foyer " + folder);
        }
        fp = pairings_->get(kPartner, folder, st);  // paired meanwhile (409)
        if (!st.ok || !fp) return Outcome::retry("store", st.http_status, st.detail);
      }
      home = {fp->external_id, external_id_of(folder)};
      individuals.push_back({capdemat_id, external_id_of(person)});
    }
    if (xrefs_ == nullptr) return Outcome::retry("internal", 0, "no cross-reference store");
    const std::string key = "mapping:" + person;
    const std::string mine = req.message->id;
    try {
      std::optional<CrossReference> before = xrefs_->get(name_, key);
      if (before && before->external_id == capdemat_id) {
        if (before->version.rfind("sent:", 0) == 0) {
          return Outcome::delivered(capdemat_id, "apparié ; déjà transmis à Capdémat");
        }
        if (before->version.rfind(kPending, 0) == 0) {
          return Outcome::delivered(
              capdemat_id,
              "apparié ; transmis à Capdémat, réponse perdue : non renvoyé (l'opération ne "
              "répond rien à relire ; vérifier dans Capdémat)");
        }
      }
      put_xref(key, capdemat_id, kPending + mine, mine);
      HttpAnswer a;
      if (!soap_call(handles_.at(req.slot), mapping_url_, mapping_token_, transfer_, now(),
                     mapping_action_, home_folder_mapping_body(local_authority_, home, individuals),
                     Send::Once, a)) {
        restore(key, before);
        return Outcome::retry("internal", 0, "no random bytes for the nonce");
      }
      if (a.rc != CURLE_OK) {
        // Not sent: nothing at Capdémat, the marker goes. Sent without an answer: it stays.
        if (a.failure != CurlFailure::UnknownOutcome) restore(key, before);
        return calendar::network_failure(a, "Capdémat (HomeFolderMappingService)");
      }
      if (a.status >= 200 && a.status < 300) {
        put_xref(key, capdemat_id, "sent:" + mine, mine);
        return Outcome::delivered(capdemat_id, "apparié et transmis à Capdémat");
      }
      restore(key, before);  // an answer that is not a success: not applied
      GetRequestsAnswer fault = read_get_requests(a.body);
      if (fault.parsed && fault.fault) {
        return Outcome::reject("capdemat", static_cast<int>(a.status),
                               "Capdémat refuse l'appariement (faute SOAP " + fault.fault_code +
                                   ") : foyer inconnu de Capdémat, ou compte WS-Security refusé");
      }
      return answer_failure(a, "HomeFolderMappingService");
    } catch (const std::exception& e) {
      return Outcome::retry("store", 0, std::string("cross-reference store: ") + e.what());
    }
  }

  // Puts back the cross-reference as it was before an attempt that sent nothing.
  void restore(const std::string& key, const std::optional<CrossReference>& before) {
    if (before) {
      xrefs_->put(*before);
    } else {
      xrefs_->remove(name_, key);
    }
  }

 public:
  // A table named in `referentials` was published: its rows become a code list posted to this
  // destination as a durable message (the first referential type), so that the PUT is retried
  // like any delivery. Rows sorted by key; the entry's label per `entry_label`.
  void on_table_published(const PublishedTable& table) override {
    auto it = referentials_.find(table.name);
    if (it == referentials_.end() || hub_ == nullptr) return;
    const RefTable& r = it->second;
    nlohmann::json entries = nlohmann::json::array();
    for (const auto& [key, value] : table.rows) {
      std::string label = key;
      if (r.entry_label == "value") {
        scalar_text(value, label);
      } else if (r.entry_label != "key" && value.is_object() && value.contains(r.entry_label)) {
        scalar_text(value[r.entry_label], label);
      }
      entries.push_back({{"key", key}, {"label", label}});
    }
    nlohmann::json body = {
        {"referentiel",
         {{"name", r.name}, {"label", r.label.empty() ? r.name : r.label}, {"entries", entries}}},
        {"table", {{"name", table.name}, {"version", table.version}}}};
    std::string id;
    Status s =
        hub_->post(name_, referential_types_.front(), "referentiel:" + r.name, body.dump(), id);
    if (!s.ok) {
      log_error("capdemat", "the referential " + r.name + " (table " + table.name + " v" +
                                std::to_string(table.version) +
                                ") could not be queued for Capdémat: " + s.detail);
    }
  }

 private:
  // A code list → PUT {url}/service/referential/{name} as a LocalReferential document. PUT
  // replaces the whole list: sending it twice is harmless.
  Outcome push_referential(const DeliveryRequest& req) {
    const nlohmann::json& m = *req.mapped;
    const nlohmann::json* r = m.contains("referentiel") ? &m["referentiel"] : nullptr;
    // value() on a const object: a missing key is not an access past the end (a message can
    // lack anything).
    if (r == nullptr || !r->is_object() || !r->value("name", nlohmann::json()).is_string() ||
        !r->value("entries", nlohmann::json()).is_array()) {
      return Outcome::reject("mapping", 0,
                             "référentiel Capdémat : $.referentiel.name et .entries attendus");
    }
    std::vector<ReferentialEntry> entries;
    for (const auto& e : (*r)["entries"]) {
      ReferentialEntry x;
      if (!e.is_object() || !e.contains("key") || !scalar_text(e["key"], x.key) || x.key.empty()) {
        return Outcome::reject("mapping", 0, "référentiel Capdémat : une entrée sans clé");
      }
      if (e.contains("label")) scalar_text(e["label"], x.label);
      entries.push_back(std::move(x));
    }
    const std::string name = nmtoken((*r)["name"].get<std::string>());
    std::string label =
        r->contains("label") && (*r)["label"].is_string() ? (*r)["label"].get<std::string>() : name;
    std::string xml = local_referential_xml(name, label, entries);
    if (xml.empty()) return Outcome::reject("mapping", 0, "référentiel Capdémat sans nom");
    CURL* h = handles_.at(req.slot);
    HttpAnswer a = calendar::http_exchange(
        h, "PUT", url_ + "/service/referential/" + url_escape(h, name),
        {"Content-Type: application/xml; charset=utf-8", "X-Relais-Message-Id: " + req.message->id},
        xml, transfer_, auth_, Send::Idempotent);
    if (a.rc != CURLE_OK) return calendar::network_failure(a.rc, "Capdémat (referential)");
    if (a.status >= 200 && a.status < 300) {
      return Outcome::delivered(name, std::to_string(entries.size()) + " entrées");
    }
    return answer_failure(a, "referential");
  }

  // The state of request `id` at Capdémat (GET); "" with `failure` set when it cannot be read.
  std::string read_state(CURL* h, const std::string& id, Outcome& failure) {
    HttpAnswer a = calendar::http_exchange(h, "GET", state_url(h, id), {"Accept: application/json"},
                                           "", transfer_, auth_, Send::Idempotent);
    if (a.rc != CURLE_OK) {
      failure = calendar::network_failure(a, "Capdémat (state of a request)");
      return {};
    }
    if (a.status == 404) {
      failure = Outcome::reject("capdemat", 404, "Capdémat ne connaît pas la demande " + id);
      return {};
    }
    if (a.status < 200 || a.status >= 300) {
      failure = answer_failure(a, "state of a request");
      return {};
    }
    std::string s = read_state_answer(a.body);
    if (s.empty())
      failure = Outcome::retry("capdemat", static_cast<int>(a.status),
                               "Capdémat's state answer cannot be read");
    return s;
  }

  Outcome answer_failure(const HttpAnswer& a, const std::string& what) {
    std::string text = "HTTP " + std::to_string(a.status) + " from Capdémat (" + what + ")";
    Outcome o =
        classify_http_status(a.status) == Outcome::Kind::Retry
            ? retry_or_throttle(a.status, a.header("retry-after"), now(), max_retry_after_ms_, text)
            : Outcome::reject("capdemat", static_cast<int>(a.status), text);
    o.excerpt = calendar::excerpt(a.body);
    return o;
  }

  std::string state_url(CURL* h, const std::string& id) const {
    return url_ + "/service/request/" + url_escape(h, id) + "/state";
  }

  void put_xref(const std::string& key, const std::string& state, const std::string& version,
                const std::string& message_id) {
    CrossReference r;
    r.destination = name_;
    r.key = key;
    r.external_id = state;
    r.version = version;
    r.message_id = message_id;
    xrefs_->put(r);
  }

  Outcome push_state(const DeliveryRequest& req) {
    const nlohmann::json* idv = id_path_.find(*req.mapped);
    const nlohmann::json* stv = state_path_.find(*req.mapped);
    std::string id, cms_state;
    if (idv == nullptr || !scalar_text(*idv, id) || id.empty()) {
      return Outcome::reject("mapping", 0, "la demande n'a pas d'identifiant Capdémat");
    }
    if (stv == nullptr || !scalar_text(*stv, cms_state)) {
      return Outcome::reject("mapping", 0, "la demande " + id + " n'a pas d'état CMS76");
    }
    auto st = states_.find(cms_state);
    if (st == states_.end()) {
      return Outcome::reject("mapping", 0,
                             "l'état CMS76 « " + cms_state +
                                 " » n'a pas d'équivalent Capdémat (connecteur, clé states)");
    }
    const std::string& to = st->second;
    if (xrefs_ == nullptr) return Outcome::retry("internal", 0, "no cross-reference store");
    CURL* h = handles_.at(req.slot);
    const std::string key = "demande:" + id;
    try {
      std::optional<CrossReference> ref = xrefs_->get(name_, key);
      std::string from;
      Outcome failure;
      if (!ref || ref->version.rfind(kPending, 0) == 0) {
        // Unknown, or a transition sent whose answer was lost (or relais died meanwhile):
        // Capdémat says where the request is before anything is sent again.
        from = read_state(h, id, failure);
        if (from.empty()) return failure;
        put_xref(key, from, "", req.message->id);
      } else {
        from = ref->external_id;
      }
      if (from == to) return Outcome::delivered(id, "déjà dans l'état " + to);
      if (!workflow_.external_may(from, to)) {
        return Outcome::reject("workflow", 0, workflow_.refusal(from, to));
      }
      // Intended before it is sent: a lost answer or a crash leaves this marker.
      put_xref(key, from, kPending + to, req.message->id);
      nlohmann::json body = {{"from", from}, {"to", to}};
      HttpAnswer a =
          calendar::http_exchange(h, "POST", state_url(h, id),
                                  {"Content-Type: application/json", "Accept: application/json",
                                   "X-Relais-Message-Id: " + req.message->id},
                                  body.dump(), transfer_, auth_, Send::Once);
      if (a.rc != CURLE_OK) return calendar::network_failure(a, "Capdémat (state change)");
      if (a.status >= 200 && a.status < 300) {
        put_xref(key, to, "", req.message->id);
        return Outcome::delivered(id, from + " → " + to);
      }
      if (a.status == 409) {
        // Capdémat refused: the request is not where relais thought. Read it again; the next
        // attempt decides from the state Capdémat gives.
        std::string now_state = read_state(h, id, failure);
        if (now_state.empty()) return failure;
        put_xref(key, now_state, "", req.message->id);
        if (now_state == to) return Outcome::delivered(id, "déjà dans l'état " + to);
        if (!workflow_.external_may(now_state, to)) {
          return Outcome::reject("workflow", 409, workflow_.refusal(now_state, to));
        }
        return Outcome::retry("capdemat", 409,
                              "Capdémat: the request changed state meanwhile; tried again");
      }
      // Any other answer: nothing was applied; the marker is cleared.
      put_xref(key, from, "", req.message->id);
      return answer_failure(a, "state change");
    } catch (const std::exception& e) {
      return Outcome::retry("store", 0, std::string("cross-reference store: ") + e.what());
    }
  }

  std::string name_;
  const Clock* clock_;
  XrefStore* xrefs_;
  PairingStore* pairings_;
  HubServices* hub_;
  Millis max_retry_after_ms_;
  calendar::CurlHandles handles_;
  std::string url_;
  CurlTransfer transfer_;
  HttpAuth auth_;
  Workflow workflow_;
  JsonPath id_path_, state_path_, pair_person_, pair_id_;  // pair_home_ below
  std::map<std::string, std::string> states_;
  std::string inbound_user_, inbound_password_, inbound_source_;
  std::unique_ptr<Reader> reader_;
  std::vector<std::string> pairing_types_;
  std::vector<std::string> referential_types_;
  struct RefTable {
    std::string name, label, entry_label;
  };
  std::map<std::string, RefTable> referentials_;  // by table name
  JsonPath pair_home_;
  std::string home_prefix_;
  std::string mapping_url_, local_authority_, mapping_action_;  // "" url: not sent
  soap::WsseToken mapping_token_;
};

// ---- the poller ----

// What a batch remembers until committed(): the request ids in the batch's order, and which
// were unreadable (acknowledged Erroneous=true whatever the hub says).
struct BatchContext {
  std::vector<std::string> ids;
};

// One configured Capdémat polling source. poll() and committed() run on the hub's thread for
// this source; probe() may run concurrently (its own curl handle). Owns its handles.
class CapdematPoller final : public Poller {
 public:
  CapdematPoller(const PollerContext& ctx)
      : name_(ctx.name), clock_(ctx.clock), metrics_(ctx.metrics), handles_(1) {
    const ConfigView& c = ctx.config;
    const std::string where = "source " + name_;
    url_ = c.str("url");
    token_ = soap::wsse_token_from(c.object("wss"), where);
    request_type_ = c.str("request_type");
    state_ = c.str("state");
    get_action_ = c.str("get_action");
    ack_action_ = c.str("ack_action");
    transfer_ = curl_transfer_from(c, where);
    reader_ = std::make_unique<Reader>(c, ctx.base_dir, where);
    validate_response_ = reader_->schemas->knows("GetRequestsResponse");
  }

  Status probe() override { return probe_connection(url_, transfer_); }

  Status poll(const std::string& checkpoint, PollBatch& out) override {
    (void)checkpoint;
    HttpAnswer a;
    if (Status s = call(get_action_, get_requests_body(request_type_, state_), a); !s.ok) return s;
    GetRequestsAnswer g = read_get_requests(a.body);
    if (!g.parsed) {
      return Status::failure(502, "Capdémat GetRequests", "the answer cannot be read: " + g.broken);
    }
    if (g.fault) {
      return Status::failure(502, "Capdémat GetRequests",
                             "SOAP fault " + g.fault_code + " (WS-Security or service)");
    }
    if (!g.error.empty()) {
      return Status::failure(502, "Capdémat GetRequests", "Capdémat answered an Error");
    }
    std::string invalid;
    if (validate_response_) {
      Validation v = reader_->schemas->validate(g.response_xml);
      if (!v.ok) invalid = v.error;
    }
    auto ctx = std::make_shared<BatchContext>();
    for (const auto& r : g.requests) {
      PolledRecord rec;
      rec.position = "demande Capdémat " + r.id;
      nlohmann::json body;
      std::string id, error;
      if (!invalid.empty()) {
        rec.unreadable = "réponse GetRequests " + invalid;
      } else if (!extract_request(r.xml, reader_->extraction, body, id, error)) {
        rec.unreadable = error;
      } else {
        rec.body = body.dump();
        rec.idempotency_key = request_key(id, r.xml);
      }
      ctx->ids.push_back(r.id);
      out.records.push_back(std::move(rec));
    }
    if (!ctx->ids.empty()) out.checkpoint = ctx->ids.back();
    out.context = ctx;
    return Status::success();
  }

  Status committed(const PollBatch& batch, bool stored,
                   const std::vector<PolledOutcome>& outcomes) override {
    // Not committed: nothing is acknowledged, Capdémat gives the requests again.
    if (!stored || !batch.context) return Status::success();
    auto ctx = std::static_pointer_cast<BatchContext>(batch.context);
    std::vector<std::pair<std::string, bool>> acks;
    for (size_t i = 0; i < ctx->ids.size(); ++i) {
      if (ctx->ids[i].empty()) continue;
      bool taken = i < outcomes.size() && (outcomes[i].status == 202 || outcomes[i].status == 200);
      bool unreadable = i < batch.records.size() && !batch.records[i].unreadable.empty();
      acks.emplace_back(ctx->ids[i], unreadable || !taken);
    }
    if (acks.empty()) return Status::success();
    HttpAnswer a;
    if (Status s = call(ack_action_, ack_requests_body(acks), a); !s.ok) return s;
    AckAnswer ack = read_ack_requests(a.body);
    if (!ack.parsed || ack.fault || !ack.accomplished) {
      return Status::failure(502, "Capdémat AckRequests",
                             ack.parsed ? "not accomplished" : "the answer cannot be read");
    }
    return Status::success();
  }

 private:
  Status call(const std::string& action, const std::string& body_xml, HttpAnswer& a) {
    Millis now = clock_ ? clock_->now_ms() : SystemClock().now_ms();
    if (!soap_call(handles_.at(0), url_, token_, transfer_, now, action, body_xml, Send::Fresh,
                   a)) {
      return Status::failure(500, "internal", "no random bytes for the nonce");
    }
    if (a.rc != CURLE_OK) {
      return Status::failure(503, "Capdémat " + action,
                             std::string("not reachable: ") + curl_easy_strerror(a.rc));
    }
    if (a.status >= 300 && a.status != 500) {  // SOAP faults come with 500
      return Status::failure(502, "Capdémat " + action, "HTTP " + std::to_string(a.status));
    }
    return Status::success();
  }

  std::string name_;
  const Clock* clock_;
  Metrics* metrics_;
  calendar::CurlHandles handles_;
  std::string url_, request_type_, state_, get_action_, ack_action_;
  soap::WsseToken token_;
  CurlTransfer transfer_;
  std::unique_ptr<Reader> reader_;
  bool validate_response_ = false;
};

}  // namespace
}  // namespace relais::capdemat

namespace relais {

void register_capdemat_connector(ConnectorRegistry& registry) {
  ConnectorKind k;
  k.name = "capdemat";
  k.description =
      "Capdémat (citizen portal): request states pushed under the workflow (exactly once, "
      "illegal transitions refused), requests received by push (HTTP Basic, XSD-validated), "
      "HomeFolder/Individual mappings as pairings";
  k.spec = &capdemat::connector_spec();
  k.check = [](const ConfigView& c, const std::string& file, std::vector<ConfigError>& errors) {
    capdemat::check_transport(c, file, errors);
    if (c.has("inbound")) capdemat::check_reader(c.object("inbound"), file, errors);
    ConfigView p = c.object("pairing");
    if (p.has("mapping")) {
      ConfigView m = p.object("mapping");
      capdemat::check_url(m, file, errors);
      ConfigView wss = m.object("wss");
      if (std::string problem = soap::wss_problem(wss); !problem.empty()) {
        errors.push_back(error_at(wss.node(), file, wss.path(), problem));
      }
    }
  };
  k.create = [](const ConnectorContext& ctx) -> std::unique_ptr<Connector> {
    return std::make_unique<capdemat::CapdematConnector>(ctx);
  };
  registry.add(std::move(k));
}

void register_capdemat_poller(PollerRegistry& registry) {
  PollerKind k;
  k.name = "capdemat";
  k.description =
      "Capdémat GetRequests / AckRequests over SOAP (WS-Security): requests acknowledged once "
      "committed, Erroneous=true when they cannot be read";
  k.spec = &capdemat::poller_spec();
  k.check = [](const ConfigView& c, const std::string& file, std::vector<ConfigError>& errors) {
    capdemat::check_transport(c, file, errors);
    capdemat::check_reader(c, file, errors);
    if (std::string p = soap::wss_problem(c.object("wss")); !p.empty()) {
      errors.push_back(error_at(c.node(), file, c.path() + ".wss", p));
    }
  };
  k.create = [](const PollerContext& ctx) -> std::unique_ptr<Poller> {
    return std::make_unique<capdemat::CapdematPoller>(ctx);
  };
  registry.add(std::move(k));
}

}  // namespace relais

#pragma once
// Capdémat (the citizen portal's external-service interface): the `capdemat` destination
// (request states pushed to Capdémat under its workflow, requests pushed by Capdémat received on
// the destination's inbound endpoint) and the `capdemat` polling-source kind (GetRequests /
// AckRequests over SOAP with a WS-Security UsernameToken). See docs/connectors/capdemat.md.
//
// This header holds the pure pieces the connector, the poller, their tests, the simulator and
// the fuzz target share: the request workflow, the schema set (XSD validation through a local
// XML catalogue, never the network), the extraction of a request's fields by XPath, the SOAP
// bodies and the readers of Capdémat's answers. The readers never throw and tell a broken answer
// from an empty one.
//
// Personal data: a request's XML holds the citizen's identity. Schema errors are reported by
// position, element path and libxml2 code, never with libxml2's text (which quotes values).

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/connector.h"
#include "core/poller.h"

namespace relais {

// Registers the "capdemat" connector kind (destination).
void register_capdemat_connector(ConnectorRegistry& registry);
// Registers the "capdemat" polling-source kind.
void register_capdemat_poller(PollerRegistry& registry);

namespace capdemat {

inline constexpr const char* kCapdematNs = "http://www.capwebct.fr/capdemat";
inline constexpr const char* kCommonNs = "http://www.cg95.fr/cvq/schema/common";

// The request state machine of Capdémat (workflow/requestWorkflow.xml): states and transitions,
// each transition with its contexts ("" = any context). Immutable after load: thread-safe.
class Workflow {
 public:
  // Reads the workflow document; false with `error` when it is not one.
  static bool parse(const std::string& xml, Workflow& out, std::string& error);
  bool has_state(const std::string& state) const { return states_.count(state) > 0; }
  // Whether an external service may move a request from `from` to `to`: a transition without
  // context, or with the externalServiceContext.
  bool external_may(const std::string& from, const std::string& to) const;
  // The states an external service may reach from `from`.
  std::vector<std::string> external_next(const std::string& from) const;
  // Why an external service may not go from `from` to `to`, in French for the desk.
  std::string refusal(const std::string& from, const std::string& to) const;

 private:
  std::map<std::string, std::vector<std::string>> states_;  // state → properties
  // (from, to) → contexts (empty: no context required)
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> transitions_;
};

// The result of a validation. Plain value.
struct Validation {
  bool ok = false;
  std::string root;  // the root element's local name (when the document is well-formed)
  int line = 0;      // where the first error is (0 = unknown)
  int column = 0;
  std::string path;   // the element of the first error (e.g. /hfmr:…/cvq:Requester/cvq:Email)
  int code = 0;       // libxml2's error code
  std::string error;  // a sentence without values (French)
};

// The schemas of the request types, compiled once at start-up from a schema folder, with the
// imports of remote locations rewritten to local files by an XML catalogue built from
// `rewrites` (URI prefix → folder relative to the schema folder); nothing is ever loaded from
// the network (XML_PARSE_NONET and an entity loader that refuses every non-local URI).
// Thread-safe after construction (one validation context per call); owns the compiled schemas.
class SchemaSet {
 public:
  // `types`: root element local name → schema file relative to `folder`. Throws
  // std::runtime_error (start-up) naming the file that does not compile.
  SchemaSet(const std::string& folder, const std::map<std::string, std::string>& rewrites,
            const std::map<std::string, std::string>& types);
  ~SchemaSet();
  SchemaSet(const SchemaSet&) = delete;
  SchemaSet& operator=(const SchemaSet&) = delete;
  // Validates `xml` against the schema of its root element. A root without configured schema,
  // a document that is not well-formed or one with a DTD is refused. Never throws.
  Validation validate(const std::string& xml) const;
  bool knows(const std::string& root) const { return schemas_.count(root) > 0; }

 private:
  struct Compiled;
  std::map<std::string, std::shared_ptr<Compiled>> schemas_;
};

// What to read from a request: namespaces for the XPaths and the message's fields, each a JSON
// path of the message body ← an XPath evaluated from the request element (string() of it; a
// literal like 'demande.capdemat' gives a constant). `required`: fields that must not be empty.
struct Extraction {
  std::map<std::string, std::string> namespaces;            // prefix → URI
  std::vector<std::pair<std::string, std::string>> fields;  // JSON path → XPath
  std::vector<std::string> required;
  std::string id_xpath = "string(cvq:Id)";  // the request's Capdémat id
};
// Checks an extraction at start-up: "" or the reason (a path or XPath that does not compile).
std::string check_extraction(const Extraction& e);

// Builds the message body of one request element. False with `error` (no value of the request)
// when a required field is empty or the request is not XML. `request_id` gets the id.
bool extract_request(const std::string& xml, const Extraction& e, nlohmann::json& body,
                     std::string& request_id, std::string& error);

// One request of a GetRequests answer: its id and the Request element as a document of its own
// (namespaces declared on it).
struct PulledRequest {
  std::string id;
  std::string xml;
};
struct GetRequestsAnswer {
  bool parsed = false;  // a SOAP envelope with a GetRequestsResponse or a Fault
  bool fault = false;
  std::string fault_code;  // local name
  std::string error;       // the answer's Error element (Capdémat's words)
  std::vector<PulledRequest> requests;
  std::string response_xml;  // the GetRequestsResponse element as a document (for validation)
  std::string broken;        // why the answer could not be read
};
GetRequestsAnswer read_get_requests(const std::string& body);
// An AckRequests answer: parsed, then Accomplished.
struct AckAnswer {
  bool parsed = false;
  bool fault = false;
  bool accomplished = false;
  std::string broken;
};
AckAnswer read_ack_requests(const std::string& body);
// A state answer (REST, JSON {"state": "…"} or XML <State>…</State>): the request's state as
// Capdémat sees it; "" when the body says none.
std::string read_state_answer(const std::string& body);

// One code list as Capdémat's local referential takes it (referential/ReferentialData.xsd,
// samples/local_referential_sgr.xml): a LocalReferential with one `data` element named `name`
// (an NMTOKEN), its label and its entries (key → label, in order). Keys and the name are made
// NMTOKENs (characters outside letters, digits, . - _ : become '-'); "" when `name` is empty.
struct ReferentialEntry {
  std::string key;
  std::string label;
};
std::string local_referential_xml(const std::string& name, const std::string& label,
                                  const std::vector<ReferentialEntry>& entries);
std::string nmtoken(const std::string& text);

// One id pair of a HomeFolderMapping / IndividualMapping (external/HomeFolderMappingService.xsd):
// Capdémat's id (ExternalCapDematId, the schema's spelling) and the external system's
// (ExternalId, CMS76's).
struct IdMapping {
  std::string capdemat_id;
  std::string external_id;
};
// The homeFolderMappingRequest (the service's one-way operation homeFolderMapping): the local
// authority, the home folder's mapping (required by the schema), then the individuals', in order.
std::string home_folder_mapping_body(const std::string& local_authority, const IdMapping& home,
                                     const std::vector<IdMapping>& individuals);

// The SOAP bodies (children of soap:Body).
std::string get_requests_body(const std::string& request_type_label, const std::string& state);
std::string ack_requests_body(const std::vector<std::pair<std::string, bool>>& acks);

}  // namespace capdemat
}  // namespace relais

#pragma once
// Genesis (Worldline): the `genesis` connector kind, described in configuration because the
// Département's contract is not public and differs from one contract to another. One behaviour
// (operations chosen by message type, the Genesis id kept as a cross-reference after a create,
// error codes classified by configuration, appariement of persons), two drivers: `soap` (SOAP 1.1
// envelopes, WS-Security UsernameToken, answers read by XPath with the configured namespaces)
// and `rest` (JSON, bearer or basic auth, answers read by JSON paths). See
// docs/connectors/genesis.md; the default profile is the `genesis` destination of
// config/cms76.yaml.
//
// This header holds the pure pieces that the connector, its tests and its fuzz target share: the
// answer readers (never throw; a broken answer is told from an empty one) and the WS-Security
// header. Stateless and thread-safe.
//
// Personal data: Genesis's answers (names, birth dates of candidates) go only into a pairing's
// candidates (encrypted at rest by the pairing store) and into the bounded excerpt of the
// attempt history (encrypted at rest); failure texts carry the configured French explanation
// and the error code, never Genesis's own text.

#include <map>
#include <string>
#include <vector>

#include "connectors/soap/wsse.h"
#include "core/connector.h"
#include "core/pairing_store.h"

namespace relais {

// Registers the "genesis" connector kind.
void register_genesis_connector(ConnectorRegistry& registry);

namespace genesis {

// The SOAP envelope and the WS-Security header are shared with other SOAP partners
// (connectors/soap/wsse.h).
using soap::kBase64Binary;
using soap::kPasswordDigest;
using soap::kPasswordText;
using soap::kSoapNs;
using soap::kWsseNs;
using soap::kWsuNs;
using soap::soap_envelope;
using soap::wsse_digest;
using soap::wsse_header;
using soap::WsseToken;

// What to read from an answer: paths by name (XPath over the answer with the configured
// prefixes for SOAP, JSON paths for REST). Plain value.
struct AnswerSpec {
  std::map<std::string, std::string> namespaces;  // prefix → URI (SOAP)
  std::map<std::string, std::string> extract;     // id, error_code, error_text, … → path
  std::string success_path;  // present in the answer = success ("" = not checked)
  std::string candidates;    // the list of candidates of a search ("" = none)
  // Per candidate, relative to one candidate: id and score required, the rest is the summary.
  std::map<std::string, std::string> candidate;
};

// What one answer says. Plain value.
struct Answer {
  bool parsed = false;     // the body is XML (SOAP) / JSON (REST); false: a broken answer
  bool fault = false;      // SOAP: the Body holds a Fault
  std::string fault_code;  // its faultcode's local name (Client, Server, wsse:… local part)
  std::string fault_text;  // its faultstring (Genesis's words: excerpt only)
  std::map<std::string, std::string> values;  // extract name → text; a missing path is absent
  bool success_present = false;               // success_path matched
  // The candidates of a search; candidates_valid: the list was found (possibly empty), so
  // "no candidate" is told from "not a search answer".
  bool candidates_valid = false;
  std::vector<PairingCandidate> candidates;
  std::string broken;  // why the answer could not be read (no value of the answer)

  std::string value(const std::string& name) const {
    auto it = values.find(name);
    return it == values.end() ? std::string() : it->second;
  }
};

// Reads a SOAP answer (any bytes). Element names are rewritten to the configured prefix of
// their namespace (whatever prefix the server used) so that the configured XPaths match; an
// element in a namespace without configured prefix keeps its local name. Never throws: a path
// that does not compile reads as absent.
Answer read_soap_answer(const std::string& body, const AnswerSpec& spec);
// Reads a JSON answer (any bytes; the JSON reader's depth guard applies). An empty body reads
// as parsed with no value (a 204). Never throws.
Answer read_json_answer(const std::string& body, const AnswerSpec& spec);

// Checks that `path` compiles as an XPath (with `namespaces`) / a JSON path; "" when it does,
// else the reason. Configuration time.
std::string check_xpath(const std::string& path);
std::string check_json_path(const std::string& path);

// `value` as XML elements under `element` (a qualified name), in namespace `ns` of `prefix`
// (declared on the element when not empty): objects become child elements, arrays repeat the
// element, scalars become text; null members are left out. The element names come from the
// JSON keys (the mapping's field names).
std::string json_to_xml(const std::string& element, const std::string& prefix,
                        const std::string& ns, const nlohmann::json& value);

}  // namespace genesis
}  // namespace relais

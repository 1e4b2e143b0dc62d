// The pure pieces of the Capdémat connector (capdemat.h): workflow, schema set with its local
// XML catalogue, extraction by XPath, SOAP bodies and answer readers. libxml2 is used where
// namespaces and XSD matter (validation, XPath with registered prefixes); its error texts are
// never passed on (they quote the document's values).

#include <libxml/catalog.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlschemas.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <set>
#include <stdexcept>

#include "connectors/capdemat/capdemat.h"
#include "connectors/soap/wsse.h"
#include "core/json_reader.h"
#include "core/json_template.h"

namespace relais::capdemat {
namespace {

using soap::xml_escape;

// libxml2 reports through per-thread handlers; every entry point silences them (errors are
// read from the contexts, never printed).
void silent_structured(void*, xmlErrorPtr) {}
void silent_generic(void*, const char*, ...) {}
void silence() {
  xmlSetStructuredErrorFunc(nullptr, silent_structured);
  xmlSetGenericErrorFunc(nullptr, silent_generic);
}

void init_once() {
  static std::once_flag once;
  std::call_once(once, [] { xmlInitParser(); });
  silence();
}

const xmlChar* X(const char* s) {
  return reinterpret_cast<const xmlChar*>(s);
}
std::string S(const xmlChar* s) {
  return s == nullptr ? std::string() : reinterpret_cast<const char*>(s);
}

struct DocFree {
  void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
};
using Doc = std::unique_ptr<xmlDoc, DocFree>;

// Instance documents: no network, no DTD loading, no entity substitution; a DTD is refused.
constexpr int kParseOptions = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING;

Doc parse(const std::string& xml, int& line, int& column, int& code) {
  init_once();
  line = column = code = 0;
  if (xml.size() > static_cast<size_t>(INT32_MAX)) return nullptr;
  xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
  if (ctxt == nullptr) return nullptr;
  xmlDoc* d = xmlCtxtReadMemory(ctxt, xml.data(), static_cast<int>(xml.size()), "request.xml",
                                nullptr, kParseOptions);
  if (d == nullptr || !ctxt->wellFormed) {
    xmlErrorPtr e = xmlCtxtGetLastError(ctxt);
    if (e != nullptr) {
      line = e->line;
      column = e->int2;
      code = e->code;
    }
    if (d != nullptr) xmlFreeDoc(d);
    d = nullptr;
  }
  xmlFreeParserCtxt(ctxt);
  return Doc(d);
}

std::string node_path(xmlNodePtr n) {
  if (n == nullptr) return {};
  xmlChar* p = xmlGetNodePath(n);
  std::string out = S(p);
  xmlFree(p);
  return out;
}

bool is(xmlNodePtr n, const char* ns, const char* local) {
  return n != nullptr && n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, X(local)) &&
         (ns == nullptr || (n->ns != nullptr && xmlStrEqual(n->ns->href, X(ns))));
}

xmlNodePtr child(xmlNodePtr parent, const char* ns, const char* local) {
  for (xmlNodePtr c = parent ? parent->children : nullptr; c != nullptr; c = c->next) {
    if (is(c, ns, local)) return c;
  }
  return nullptr;
}

std::string text_of(xmlNodePtr n) {
  xmlChar* t = xmlNodeGetContent(n);
  std::string out = S(t);
  xmlFree(t);
  return out;
}

// The element as a document of its own, its namespaces declared on it.
std::string element_document(xmlNodePtr n) {
  Doc d(xmlNewDoc(X("1.0")));
  xmlNodePtr copy = xmlDocCopyNode(n, d.get(), 1);
  if (copy == nullptr) return {};
  xmlDocSetRootElement(d.get(), copy);
  xmlReconciliateNs(d.get(), copy);
  xmlChar* mem = nullptr;
  int size = 0;
  xmlDocDumpMemoryEnc(d.get(), &mem, &size, "UTF-8");
  std::string out(reinterpret_cast<const char*>(mem), static_cast<size_t>(size));
  xmlFree(mem);
  return out;
}

// The SOAP Body's first element, or null (with `broken`).
xmlNodePtr soap_body_child(xmlDoc* d, std::string& broken) {
  xmlNodePtr env = xmlDocGetRootElement(d);
  if (!is(env, nullptr, "Envelope")) {
    broken = "not a SOAP envelope";
    return nullptr;
  }
  xmlNodePtr body =
      child(env, env->ns ? reinterpret_cast<const char*>(env->ns->href) : nullptr, "Body");
  if (body == nullptr) {
    broken = "no SOAP Body";
    return nullptr;
  }
  for (xmlNodePtr c = body->children; c != nullptr; c = c->next) {
    if (c->type == XML_ELEMENT_NODE) return c;
  }
  broken = "an empty SOAP Body";
  return nullptr;
}

// The catalogue of the schema set being compiled and the loader that reads through it. Schemas
// are compiled at start-up only, one set at a time (guarded by kCompile).
std::mutex kCompile;
xmlCatalogPtr g_catalogue = nullptr;
std::string g_refused;

xmlParserInputPtr local_loader(const char* url, const char* id, xmlParserCtxtPtr ctxt) {
  (void)id;
  if (url == nullptr) return nullptr;
  std::string target = url;
  if (g_catalogue != nullptr) {
    xmlChar* r = xmlACatalogResolveURI(g_catalogue, X(url));
    if (r != nullptr) {
      target = S(r);
      xmlFree(r);
    }
  }
  if (target.rfind("file://", 0) == 0) target = target.substr(7);
  if (target.find("://") != std::string::npos) {
    if (g_refused.empty()) g_refused = url;
    return nullptr;  // never the network
  }
  return xmlNewInputFromFile(ctxt, target.c_str());
}

}  // namespace

// ---- workflow ----

bool Workflow::parse(const std::string& xml, Workflow& out, std::string& error) {
  int line = 0, column = 0, code = 0;
  Doc d = capdemat::parse(xml, line, column, code);
  xmlNodePtr root = d ? xmlDocGetRootElement(d.get()) : nullptr;
  if (!is(root, nullptr, "workflow")) {
    error = d ? "the root element is not <workflow>"
              : "not well-formed XML (line " + std::to_string(line) + ")";
    return false;
  }
  Workflow w;
  for (xmlNodePtr n = root->children; n != nullptr; n = n->next) {
    if (is(n, nullptr, "state")) {
      xmlChar* nm = xmlGetProp(n, X("name"));
      std::string name = S(nm);
      xmlFree(nm);
      if (name.empty()) {
        error = "a <state> without name";
        return false;
      }
      auto& props = w.states_[name];
      if (xmlNodePtr ps = child(n, nullptr, "properties")) {
        for (xmlNodePtr p = ps->children; p != nullptr; p = p->next) {
          if (is(p, nullptr, "property")) props.push_back(text_of(p));
        }
      }
    }
  }
  for (xmlNodePtr n = root->children; n != nullptr; n = n->next) {
    if (!is(n, nullptr, "transition")) continue;
    xmlChar* f = xmlGetProp(n, X("from"));
    xmlChar* t = xmlGetProp(n, X("to"));
    std::string from = S(f), to = S(t);
    xmlFree(f);
    xmlFree(t);
    if (!w.has_state(from) || !w.has_state(to)) {
      error = "a transition between unknown states (" + from + " → " + to + ")";
      return false;
    }
    auto& ctx = w.transitions_[{from, to}];
    for (xmlNodePtr c = n->children; c != nullptr; c = c->next) {
      if (is(c, nullptr, "context")) ctx.push_back(text_of(c));
    }
  }
  if (w.transitions_.empty()) {
    error = "no transition";
    return false;
  }
  out = std::move(w);
  return true;
}

bool Workflow::external_may(const std::string& from, const std::string& to) const {
  auto it = transitions_.find({from, to});
  if (it == transitions_.end()) return false;
  if (it->second.empty()) return true;
  for (const auto& c : it->second) {
    if (c == "externalServiceContext") return true;
  }
  return false;
}

std::vector<std::string> Workflow::external_next(const std::string& from) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : transitions_) {
    if (k.first == from && external_may(k.first, k.second)) out.push_back(k.second);
  }
  return out;
}

std::string Workflow::refusal(const std::string& from, const std::string& to) const {
  if (!has_state(to)) return "l'état « " + to + " » n'existe pas dans le circuit de Capdémat";
  if (!has_state(from))
    return "l'état actuel « " + from + " » n'existe pas dans le circuit de Capdémat";
  std::string out = "Capdémat n'autorise pas un service externe à faire passer une demande de « " +
                    from + " » à « " + to + " »";
  if (transitions_.count({from, to}) > 0) out += " (transition réservée à l'administration)";
  auto next = external_next(from);
  if (next.empty()) {
    out += " ; depuis « " + from + " », aucun changement d'état n'est permis à un service externe";
  } else {
    out += " ; depuis « " + from + " », seuls sont permis : ";
    for (size_t i = 0; i < next.size(); ++i) out += (i ? ", " : "") + next[i];
  }
  return out;
}

// ---- schemas ----

struct SchemaSet::Compiled {
  xmlSchemaPtr schema = nullptr;
  ~Compiled() {
    if (schema != nullptr) xmlSchemaFree(schema);
  }
};

SchemaSet::SchemaSet(const std::string& folder, const std::map<std::string, std::string>& rewrites,
                     const std::map<std::string, std::string>& types) {
  init_once();
  std::error_code ec;
  std::filesystem::path base = std::filesystem::absolute(folder, ec);
  if (ec || !std::filesystem::is_directory(base)) {
    throw std::runtime_error("the schema folder " + folder + " does not exist");
  }
  std::lock_guard<std::mutex> lock(kCompile);
  // The catalogue is an OASIS XML catalogue file written for the compilation (libxml2 reads a
  // catalogue from a file) and removed after it.
  std::string catalogue =
      "<?xml version=\"1.0\"?>\n<catalog "
      "xmlns=\"urn:oasis:names:tc:entity:xmlns:xml:catalog\">\n";
  for (const auto& [prefix, local] : rewrites) {
    std::string to = (base / local).lexically_normal().string();
    if (!to.empty() && to.back() != '/') to += '/';
    catalogue += "  <rewriteURI uriStartString=\"" + xml_escape(prefix) + "\" rewritePrefix=\"" +
                 xml_escape(to) + "\"/>\n  <rewriteSystem systemIdStartString=\"" +
                 xml_escape(prefix) + "\" rewritePrefix=\"" + xml_escape(to) + "\"/>\n";
  }
  catalogue += "</catalog>\n";
  std::string cat_path =
      (std::filesystem::temp_directory_path() / "relais-catalog-XXXXXX").string();
  int fd = ::mkstemp(cat_path.data());
  if (fd < 0) throw std::runtime_error("cannot write the XML catalogue in the temporary folder");
  bool written =
      ::write(fd, catalogue.data(), catalogue.size()) == static_cast<ssize_t>(catalogue.size());
  ::close(fd);
  xmlCatalogPtr cat = written ? xmlLoadACatalog(cat_path.c_str()) : nullptr;
  if (cat == nullptr) {
    ::unlink(cat_path.c_str());
    throw std::runtime_error("the XML catalogue cannot be built");
  }
  xmlExternalEntityLoader previous = xmlGetExternalEntityLoader();
  g_catalogue = cat;
  xmlSetExternalEntityLoader(local_loader);
  std::string failure;
  for (const auto& [root, file] : types) {
    g_refused.clear();
    std::string path = (base / file).lexically_normal().string();
    xmlSchemaParserCtxtPtr pc = xmlSchemaNewParserCtxt(path.c_str());
    xmlSchemaSetParserStructuredErrors(pc, silent_structured, nullptr);
    xmlSchemaPtr s = pc ? xmlSchemaParse(pc) : nullptr;
    if (pc) xmlSchemaFreeParserCtxt(pc);
    if (s == nullptr) {
      failure =
          "the schema " + file + " of " + root + " does not compile" +
          (g_refused.empty() ? std::string()
                             : " (" + g_refused + " is not in the local catalogue: add a rewrite)");
      break;
    }
    auto c = std::make_shared<Compiled>();
    c->schema = s;
    schemas_[root] = c;
  }
  xmlSetExternalEntityLoader(previous);
  g_catalogue = nullptr;
  xmlFreeCatalog(cat);
  ::unlink(cat_path.c_str());
  if (!failure.empty()) throw std::runtime_error(failure);
}

SchemaSet::~SchemaSet() = default;

Validation SchemaSet::validate(const std::string& xml) const {
  Validation v;
  Doc d = parse(xml, v.line, v.column, v.code);
  if (!d) {
    v.error = "XML mal formé (ligne " + std::to_string(v.line) + ", colonne " +
              std::to_string(v.column) + ")";
    return v;
  }
  if (d->intSubset != nullptr) {
    v.error = "une déclaration de type de document (DTD) n'est pas acceptée";
    return v;
  }
  xmlNodePtr root = xmlDocGetRootElement(d.get());
  v.root = root ? S(root->name) : std::string();
  auto it = schemas_.find(v.root);
  if (it == schemas_.end()) {
    v.error = "aucun schéma configuré pour l'élément racine « " + v.root + " »";
    return v;
  }
  xmlSchemaValidCtxtPtr vc = xmlSchemaNewValidCtxt(it->second->schema);
  if (vc == nullptr) {
    v.error = "validation impossible (mémoire)";
    return v;
  }
  struct First {
    Validation* v;
    bool set = false;
  } first{&v};
  xmlSchemaSetValidStructuredErrors(
      vc,
      [](void* user, xmlErrorPtr e) {
        auto* f = static_cast<First*>(user);
        if (f->set || e == nullptr) return;
        f->set = true;
        f->v->line = e->line;
        f->v->column = e->int2;
        f->v->code = e->code;
        f->v->path = node_path(static_cast<xmlNodePtr>(e->node));
      },
      &first);
  int rc = xmlSchemaValidateDoc(vc, d.get());
  xmlSchemaFreeValidCtxt(vc);
  if (rc == 0) {
    v.ok = true;
    return v;
  }
  v.error = "non conforme au schéma de " + v.root + " (ligne " + std::to_string(v.line) +
            (v.path.empty() ? std::string() : ", élément " + v.path) + ", code libxml2 " +
            std::to_string(v.code) + ")";
  return v;
}

// ---- extraction ----

namespace {

struct XPathCtx {
  xmlXPathContextPtr ctx = nullptr;
  explicit XPathCtx(xmlDoc* d, const std::map<std::string, std::string>& ns) {
    ctx = xmlXPathNewContext(d);
    if (ctx == nullptr) return;
    xmlXPathRegisterNs(ctx, X("cvq"), X(kCommonNs));
    xmlXPathRegisterNs(ctx, X("capdemat"), X(kCapdematNs));
    for (const auto& [p, uri] : ns) xmlXPathRegisterNs(ctx, X(p.c_str()), X(uri.c_str()));
  }
  ~XPathCtx() {
    if (ctx != nullptr) xmlXPathFreeContext(ctx);
  }
  // string(expr) from `node`; false when the expression does not evaluate.
  bool string(xmlNodePtr node, const std::string& expr, std::string& out) {
    if (ctx == nullptr) return false;
    ctx->node = node;
    xmlXPathObjectPtr r = xmlXPathEvalExpression(X(expr.c_str()), ctx);
    if (r == nullptr) return false;
    xmlChar* s = xmlXPathCastToString(r);
    out = S(s);
    xmlFree(s);
    xmlXPathFreeObject(r);
    return true;
  }
};

}  // namespace

std::string check_extraction(const Extraction& e) {
  init_once();
  Doc d(xmlNewDoc(X("1.0")));
  xmlNodePtr root = xmlNewDocNode(d.get(), nullptr, X("r"), nullptr);
  xmlDocSetRootElement(d.get(), root);
  XPathCtx x(d.get(), e.namespaces);
  std::string ignored;
  for (const auto& [path, xpath] : e.fields) {
    JsonPath p;
    std::string err;
    if (!JsonPath::parse(path, p, err)) return "fields." + path + ": " + err;
    if (!x.string(root, xpath, ignored)) return "fields." + path + ": not an XPath: " + xpath;
  }
  if (!x.string(root, e.id_xpath, ignored)) return "id: not an XPath: " + e.id_xpath;
  std::set<std::string> known;
  for (const auto& f : e.fields) known.insert(f.first);
  for (const auto& r : e.required) {
    if (known.count(r) == 0) return "required: " + r + " is not one of the fields";
  }
  return {};
}

bool extract_request(const std::string& xml, const Extraction& e, nlohmann::json& body,
                     std::string& request_id, std::string& error) {
  int line = 0, column = 0, code = 0;
  Doc d = parse(xml, line, column, code);
  if (!d) {
    error = "XML mal formé (ligne " + std::to_string(line) + ")";
    return false;
  }
  xmlNodePtr root = xmlDocGetRootElement(d.get());
  XPathCtx x(d.get(), e.namespaces);
  if (!x.string(root, e.id_xpath, request_id) || request_id.empty()) {
    error = "la demande n'a pas d'identifiant Capdémat";
    return false;
  }
  body = nlohmann::json::object();
  std::set<std::string> required(e.required.begin(), e.required.end());
  for (const auto& [path, xpath] : e.fields) {
    std::string v;
    if (!x.string(root, xpath, v)) {
      error = "le champ " + path + " ne peut pas être lu";
      return false;
    }
    if (v.empty() && required.count(path) > 0) {
      error = "le champ obligatoire " + path + " est vide dans la demande " + request_id;
      return false;
    }
    if (v.empty()) continue;
    JsonPath p;
    std::string err;
    if (!JsonPath::parse(path, p, err) || !p.set(body, v)) {
      error = "le champ " + path + " ne peut pas être écrit";
      return false;
    }
  }
  return true;
}

// ---- SOAP ----

namespace {

// Parses a SOAP answer and finds the Body's element; null with `broken` when it cannot be read.
// A Fault sets `parsed` and `fault`.
template <typename A>
xmlNodePtr open_answer(const std::string& body, Doc& d, A& a) {
  int line = 0, column = 0, code = 0;
  d = parse(body, line, column, code);
  if (!d) {
    a.broken = "not XML (line " + std::to_string(line) + ")";
    return nullptr;
  }
  xmlNodePtr c = soap_body_child(d.get(), a.broken);
  if (c != nullptr && is(c, nullptr, "Fault")) a.parsed = a.fault = true;
  return c;
}

}  // namespace

GetRequestsAnswer read_get_requests(const std::string& body) {
  GetRequestsAnswer a;
  Doc d;
  xmlNodePtr c = open_answer(body, d, a);
  if (c == nullptr) return a;
  if (a.fault) {
    std::string fc = text_of(child(c, nullptr, "faultcode"));
    a.fault_code = fc.substr(fc.find(':') == std::string::npos ? 0 : fc.find(':') + 1);
    return a;
  }
  if (!is(c, kCapdematNs, "GetRequestsResponse")) {
    a.broken = "not a GetRequestsResponse";
    return a;
  }
  a.parsed = true;
  a.response_xml = element_document(c);
  for (xmlNodePtr n = c->children; n != nullptr; n = n->next) {
    if (is(n, kCapdematNs, "Error")) a.error = text_of(n);
    if (!is(n, kCapdematNs, "Request")) continue;
    PulledRequest r;
    r.id = text_of(child(n, kCommonNs, "Id"));
    r.xml = element_document(n);
    a.requests.push_back(std::move(r));
  }
  return a;
}

AckAnswer read_ack_requests(const std::string& body) {
  AckAnswer a;
  Doc d;
  xmlNodePtr c = open_answer(body, d, a);
  if (c == nullptr || a.fault) return a;
  xmlNodePtr acc = child(c, kCapdematNs, "Accomplished");
  if (!is(c, kCapdematNs, "AckRequestsResponse") || acc == nullptr) {
    a.broken = "not an AckRequestsResponse";
    return a;
  }
  a.parsed = true;
  std::string t = text_of(acc);
  a.accomplished = t == "true" || t == "1";
  return a;
}

std::string read_state_answer(const std::string& body) {
  nlohmann::json j;
  JsonReadError err;
  if (read_json(body, j, err) && j.is_object() && j.contains("state") && j["state"].is_string()) {
    return j["state"].get<std::string>();
  }
  int line = 0, column = 0, code = 0;
  Doc d = parse(body, line, column, code);
  xmlNodePtr root = d ? xmlDocGetRootElement(d.get()) : nullptr;
  if (is(root, nullptr, "State")) return text_of(root);
  return {};
}

std::string nmtoken(const std::string& text) {
  std::string out;
  for (char ch : text) {
    unsigned char c = static_cast<unsigned char>(ch);
    // Non-ASCII bytes (accents) are kept: XML name characters include them.
    out.push_back(std::isalnum(c) || c >= 0x80 || ch == '.' || ch == '-' || ch == '_' || ch == ':'
                      ? ch
                      : '-');
  }
  return out;
}

std::string local_referential_xml(const std::string& name, const std::string& label,
                                  const std::vector<ReferentialEntry>& entries) {
  if (name.empty()) return {};
  std::string out =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocalReferential "
      "xmlns=\"http://www.cg95.fr/cvq/schema/referential\">\n  <data name=\"" +
      xml_escape(nmtoken(name)) +
      "\" allowMultipleChoices=\"false\" manager=\"Relais\">\n    <label>" +
      xml_escape(label.empty() ? name : label) + "</label>\n    <entries>\n";
  for (const auto& e : entries) {
    out += "      <entry key=\"" + xml_escape(nmtoken(e.key)) + "\">\n        <label>" +
           xml_escape(e.label.empty() ? e.key : e.label) + "</label>\n      </entry>\n";
  }
  out += "    </entries>\n  </data>\n</LocalReferential>\n";
  return out;
}

std::string home_folder_mapping_body(const std::string& local_authority, const IdMapping& home,
                                     const std::vector<IdMapping>& individuals) {
  auto ids = [](const IdMapping& m) {
    return "<capdemat:ExternalCapDematId>" + xml_escape(m.capdemat_id) +
           "</capdemat:ExternalCapDematId><capdemat:ExternalId>" + xml_escape(m.external_id) +
           "</capdemat:ExternalId>";
  };
  std::string out = "<capdemat:homeFolderMappingRequest xmlns:capdemat=\"";
  out += kCapdematNs;
  out += "\"><capdemat:LocalAuthority>" + xml_escape(local_authority) +
         "</capdemat:LocalAuthority><capdemat:HomeFolderMapping>" + ids(home) +
         "</capdemat:HomeFolderMapping>";
  for (const auto& i : individuals) {
    out += "<capdemat:IndividualMapping>" + ids(i) + "</capdemat:IndividualMapping>";
  }
  return out + "</capdemat:homeFolderMappingRequest>";
}

std::string get_requests_body(const std::string& request_type_label, const std::string& state) {
  std::string out = "<capdemat:GetRequestsRequest xmlns:capdemat=\"";
  out += kCapdematNs;
  out += "\">";
  if (!request_type_label.empty()) {
    out += "<capdemat:RequestTypeLabel>" + xml_escape(request_type_label) +
           "</capdemat:RequestTypeLabel>";
  }
  out += "<capdemat:State>" + xml_escape(state) + "</capdemat:State></capdemat:GetRequestsRequest>";
  return out;
}

std::string ack_requests_body(const std::vector<std::pair<std::string, bool>>& acks) {
  std::string out = "<capdemat:AckRequestsRequest xmlns:capdemat=\"";
  out += kCapdematNs;
  out += "\">";
  for (const auto& [id, erroneous] : acks) {
    out += "<capdemat:AckElements><capdemat:RequestId>" + xml_escape(id) +
           "</capdemat:RequestId><capdemat:Erroneous>" + (erroneous ? "true" : "false") +
           "</capdemat:Erroneous></capdemat:AckElements>";
  }
  out += "</capdemat:AckRequestsRequest>";
  return out;
}

}  // namespace relais::capdemat

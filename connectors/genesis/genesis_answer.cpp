// The pure pieces of the genesis connector (see genesis.h): answer readers, the WS-Security
// header, the SOAP envelope and JSON → XML. Nothing here throws out of a function.

#include <openssl/evp.h>

#include <cstdlib>
#include <ctime>
#include <memory>
#include <pugixml.hpp>
#include <sstream>

#include "connectors/genesis/genesis.h"
#include "core/crypto.h"
#include "core/json_reader.h"
#include "core/json_template.h"

namespace relais::genesis {
namespace {

constexpr size_t kMaxCandidates = 50;

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string local_part(const std::string& qname) {
  auto colon = qname.rfind(':');
  return colon == std::string::npos ? qname : qname.substr(colon + 1);
}

// A score as 0..1: a number or numeric text; a percentage (1 < s <= 100) is divided by 100.
bool read_score(const std::string& text, double& out) {
  if (text.empty()) return false;
  char* end = nullptr;
  double s = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0' || !(s >= 0) || s > 100) return false;
  out = s > 1 ? s / 100 : s;
  return true;
}

// Rewrites every element name to "<configured prefix>:<local>" (or "<local>" when its namespace
// has no configured prefix), resolving the prefixes the server declared. Iterative: a deep
// document does not grow the stack.
void normalise_names(pugi::xml_document& doc, const std::map<std::string, std::string>& by_uri) {
  using Scope = std::map<std::string, std::string>;  // the document's prefix → URI in scope
  struct Item {
    pugi::xml_node node;
    std::shared_ptr<const Scope> scope;
  };
  std::vector<Item> stack;
  auto root_scope = std::make_shared<const Scope>();
  for (pugi::xml_node c = doc.first_child(); c; c = c.next_sibling()) {
    if (c.type() == pugi::node_element) stack.push_back({c, root_scope});
  }
  while (!stack.empty()) {
    Item it = stack.back();
    stack.pop_back();
    std::shared_ptr<const Scope> scope = it.scope;
    bool declares = false;
    for (pugi::xml_attribute a = it.node.first_attribute(); a; a = a.next_attribute()) {
      std::string n = a.name();
      declares = declares || n == "xmlns" || n.rfind("xmlns:", 0) == 0;
    }
    if (declares) {
      auto mine = std::make_shared<Scope>(*scope);
      for (pugi::xml_attribute a = it.node.first_attribute(); a; a = a.next_attribute()) {
        std::string n = a.name();
        if (n == "xmlns") (*mine)[""] = a.value();
        if (n.rfind("xmlns:", 0) == 0) (*mine)[n.substr(6)] = a.value();
      }
      scope = mine;
    }
    std::string name = it.node.name();
    auto colon = name.find(':');
    std::string prefix = colon == std::string::npos ? "" : name.substr(0, colon);
    std::string local = colon == std::string::npos ? name : name.substr(colon + 1);
    auto uri = scope->find(prefix);
    std::string renamed = local;
    if (uri != scope->end()) {
      auto p = by_uri.find(uri->second);
      if (p != by_uri.end() && !p->second.empty()) renamed = p->second + ":" + local;
    }
    if (renamed != name) it.node.set_name(renamed.c_str());
    for (pugi::xml_node c = it.node.first_child(); c; c = c.next_sibling()) {
      if (c.type() == pugi::node_element) stack.push_back({c, scope});
    }
  }
}

// The text of the first node `path` selects from `context`; false when it selects nothing or
// does not compile.
bool xpath_text(const pugi::xml_node& context, const std::string& path, std::string& out) {
  try {
    pugi::xpath_query q(path.c_str());
    if (q.return_type() != pugi::xpath_type_node_set) {
      out = trim(q.evaluate_string(context));
      return !out.empty();
    }
    pugi::xpath_node_set set = q.evaluate_node_set(context);
    if (set.empty()) return false;
    pugi::xpath_node first = set.first();
    if (first.attribute()) {
      out = trim(first.attribute().value());
    } else {
      pugi::xpath_query text("string(.)");
      out = trim(text.evaluate_string(first));
    }
    return true;
  } catch (...) {
    return false;
  }
}

pugi::xpath_node_set xpath_nodes(const pugi::xml_node& context, const std::string& path, bool& ok) {
  ok = false;
  try {
    pugi::xpath_query q(path.c_str());
    if (q.return_type() != pugi::xpath_type_node_set) return {};
    ok = true;
    return q.evaluate_node_set(context);
  } catch (...) {
    return {};
  }
}

// A candidate from its fields (id and score required); false when it has none.
bool make_candidate(const std::map<std::string, std::string>& fields, PairingCandidate& c) {
  auto id = fields.find("id");
  auto score = fields.find("score");
  if (id == fields.end() || id->second.empty() || score == fields.end() ||
      !read_score(score->second, c.score)) {
    return false;
  }
  c.external_id = id->second;
  c.summary = nlohmann::json::object();
  for (const auto& [k, v] : fields) {
    if (k != "id" && k != "score") c.summary[k] = v;
  }
  return true;
}

// Reads the fields of one candidate with `read(path, text)` and adds it when it has an id and a
// score (at most kMaxCandidates).
template <typename Read>
void add_candidate(Answer& a, const std::map<std::string, std::string>& paths, Read read) {
  if (a.candidates.size() >= kMaxCandidates) return;
  std::map<std::string, std::string> fields;
  for (const auto& [name, path] : paths) {
    std::string v;
    if (read(path, v)) fields[name] = v;
  }
  PairingCandidate c;
  if (make_candidate(fields, c)) a.candidates.push_back(std::move(c));
}

// Runs a reader; whatever escapes it (a library that throws, memory) is a broken answer.
template <typename Reader>
Answer guarded(Reader read) {
  try {
    return read();
  } catch (...) {
    Answer a;
    a.broken = "unreadable answer";
    return a;
  }
}

bool json_text(const nlohmann::json& doc, const std::string& path, std::string& out) {
  JsonPath p;
  std::string err;
  if (!JsonPath::parse(path, p, err)) return false;
  const nlohmann::json* v = p.find(doc);
  if (v == nullptr || v->is_null()) return false;
  if (!scalar_text(*v, out)) out = v->dump();
  return true;
}

}  // namespace

Answer read_soap_answer(const std::string& body, const AnswerSpec& spec) {
  return guarded([&] {
    Answer a;
    pugi::xml_document doc;
    pugi::xml_parse_result r =
        doc.load_buffer(body.data(), body.size(), pugi::parse_default, pugi::encoding_utf8);
    if (!r) {
      a.broken = "not XML";
      return a;
    }
    std::map<std::string, std::string> by_uri{{kSoapNs, "soap"}, {kWsseNs, "wsse"}};
    for (const auto& [prefix, uri] : spec.namespaces) by_uri[uri] = prefix;
    by_uri[kSoapNs] = "soap";
    normalise_names(doc, by_uri);
    pugi::xml_node env = doc.child("soap:Envelope");
    pugi::xml_node soap_body = env.child("soap:Body");
    if (!env || !soap_body) {
      a.broken = "not a SOAP 1.1 envelope";
      return a;
    }
    a.parsed = true;
    if (pugi::xml_node fault = soap_body.child("soap:Fault")) {
      a.fault = true;
      a.fault_code = local_part(trim(fault.child_value("faultcode")));
      a.fault_text = trim(fault.child_value("faultstring"));
    }
    for (const auto& [name, path] : spec.extract) {
      std::string v;
      if (xpath_text(doc, path, v)) a.values[name] = v;
    }
    if (!spec.success_path.empty()) {
      std::string ignored;
      bool ok = false;
      a.success_present = !xpath_nodes(doc, spec.success_path, ok).empty() && ok;
    }
    if (!spec.candidates.empty()) {
      bool ok = false;
      pugi::xpath_node_set set = xpath_nodes(doc, spec.candidates, ok);
      a.candidates_valid = ok && !a.fault;
      for (const pugi::xpath_node& n : set) {
        add_candidate(a, spec.candidate, [&](const std::string& path, std::string& v) {
          return xpath_text(n.node(), path, v);
        });
      }
    }
    return a;
  });
}

Answer read_json_answer(const std::string& body, const AnswerSpec& spec) {
  return guarded([&] {
    Answer a;
    nlohmann::json doc;
    if (trim(body).empty()) {
      a.parsed = true;  // 204 and friends: nothing to read
      return a;
    }
    JsonReadError err;
    if (!read_json(body, doc, err)) {
      a.broken = "not JSON (" + err.detail + ")";
      return a;
    }
    a.parsed = true;
    for (const auto& [name, path] : spec.extract) {
      std::string v;
      if (json_text(doc, path, v)) a.values[name] = v;
    }
    if (!spec.success_path.empty()) {
      JsonPath p;
      std::string e;
      a.success_present = JsonPath::parse(spec.success_path, p, e) && p.find(doc) != nullptr;
    }
    if (!spec.candidates.empty()) {
      JsonPath p;
      std::string e;
      const nlohmann::json* list = JsonPath::parse(spec.candidates, p, e) ? p.find(doc) : nullptr;
      a.candidates_valid = list != nullptr && list->is_array();
      if (a.candidates_valid) {
        for (const auto& item : *list) {
          if (!item.is_object()) continue;
          add_candidate(a, spec.candidate, [&](const std::string& path, std::string& v) {
            return json_text(item, path, v);
          });
        }
      }
    }
    return a;
  });
}

std::string check_xpath(const std::string& path) {
  try {
    pugi::xpath_query q(path.c_str());
    (void)q;
    return {};
  } catch (const pugi::xpath_exception& e) {
    return std::string("not an XPath: ") + e.what();
  } catch (...) {
    return "not an XPath";
  }
}

std::string check_json_path(const std::string& path) {
  JsonPath p;
  std::string err;
  return JsonPath::parse(path, p, err) ? std::string() : err;
}

namespace {

// A JSON key as an XML name: characters outside [A-Za-z0-9_.-] become '_', and a name that
// does not start with a letter or '_' gets one.
std::string xml_name(const std::string& key) {
  std::string out;
  for (char ch : key) {
    unsigned char c = static_cast<unsigned char>(ch);
    out.push_back(std::isalnum(c) || c == '_' || c == '-' || c == '.' ? ch : '_');
  }
  if (out.empty() || !(std::isalpha(static_cast<unsigned char>(out[0])) || out[0] == '_')) {
    out.insert(out.begin(), '_');
  }
  return out;
}

void fill(pugi::xml_node node, const std::string& prefix, const nlohmann::json& v) {
  if (v.is_object()) {
    for (const auto& [k, child] : v.items()) {
      if (child.is_null()) continue;
      std::string name = prefix.empty() ? xml_name(k) : prefix + ":" + xml_name(k);
      if (child.is_array()) {
        for (const auto& item : child) {
          if (!item.is_null()) fill(node.append_child(name.c_str()), prefix, item);
        }
      } else {
        fill(node.append_child(name.c_str()), prefix, child);
      }
    }
    return;
  }
  std::string text;
  if (scalar_text(v, text)) node.text().set(text.c_str());
}

}  // namespace

std::string json_to_xml(const std::string& element, const std::string& prefix,
                        const std::string& ns, const nlohmann::json& value) {
  pugi::xml_document doc;
  auto root = doc.append_child(element.c_str());
  if (!ns.empty()) {
    root.append_attribute(prefix.empty() ? "xmlns" : ("xmlns:" + prefix).c_str()) = ns.c_str();
  }
  fill(root, prefix, value);
  std::ostringstream s;
  doc.save(s, "", pugi::format_raw | pugi::format_no_declaration, pugi::encoding_utf8);
  return s.str();
}

}  // namespace relais::genesis

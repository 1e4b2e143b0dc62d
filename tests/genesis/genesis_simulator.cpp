// The Genesis simulator (see genesis_simulator.h).

#include "tests/genesis/genesis_simulator.h"

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <iomanip>
#include <pugixml.hpp>
#include <sstream>
#include <thread>

#include "core/clock.h"
#include "core/crypto.h"
#include "tests/support/sim_text.h"

namespace relais::testing {
namespace {

constexpr const char* kSoap = "http://schemas.xmlsoap.org/soap/envelope/";
constexpr const char* kWsse =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
constexpr const char* kWsu =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
constexpr const char* kDigestType =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    "#PasswordDigest";
constexpr const char* kTextType =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    "#PasswordText";

std::string local_name(const std::string& n) {
  auto c = n.find(':');
  return c == std::string::npos ? n : n.substr(c + 1);
}

// The namespace URI of element `e` (its prefix resolved on it or its ancestors).
std::string ns_of(pugi::xml_node e) {
  std::string n = e.name();
  auto c = n.find(':');
  std::string attr = c == std::string::npos ? "xmlns" : "xmlns:" + n.substr(0, c);
  for (pugi::xml_node x = e; x && x.type() == pugi::node_element; x = x.parent()) {
    if (pugi::xml_attribute a = x.attribute(attr.c_str())) return a.value();
  }
  return "";
}

pugi::xml_node child_local(pugi::xml_node n, const std::string& local) {
  for (pugi::xml_node c = n.first_child(); c; c = c.next_sibling()) {
    if (c.type() == pugi::node_element && local_name(c.name()) == local) return c;
  }
  return {};
}

// An element's children as JSON (objects for elements with element children, else text).
nlohmann::json to_json(pugi::xml_node e) {
  nlohmann::json out = nlohmann::json::object();
  for (pugi::xml_node c = e.first_child(); c; c = c.next_sibling()) {
    if (c.type() != pugi::node_element) continue;
    bool nested = false;
    for (pugi::xml_node g = c.first_child(); g; g = g.next_sibling()) {
      nested = nested || g.type() == pugi::node_element;
    }
    out[local_name(c.name())] = nested ? to_json(c) : nlohmann::json(c.child_value());
  }
  return out;
}

std::string text_of(const nlohmann::json& in, const char* key) {
  auto it = in.find(key);
  if (it == in.end()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number()) return it->dump();
  return {};
}

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string sha1_base64(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha1(), nullptr);
  return base64_encode(std::string_view(reinterpret_cast<const char*>(md), len));
}

void add_fields(pugi::xml_node parent, const std::string& prefix, const nlohmann::json& v) {
  for (const auto& [k, item] : v.items()) {
    if (item.is_array()) {
      std::string name = prefix + ":" + (k == "candidats" ? std::string("candidat") : k);
      for (const auto& x : item) add_fields(parent.append_child(name.c_str()), prefix, x);
    } else if (item.is_object()) {
      add_fields(parent.append_child((prefix + ":" + k).c_str()), prefix, item);
    } else {
      std::string t = item.is_string() ? item.get<std::string>() : item.dump();
      parent.append_child((prefix + ":" + k).c_str()).text().set(t.c_str());
    }
  }
}

std::string xml_text(const pugi::xml_document& doc) {
  std::ostringstream s;
  doc.save(s, "", pugi::format_raw, pugi::encoding_utf8);
  return s.str();
}

}  // namespace

GenesisSimulator::GenesisSimulator(Protocol p)
    : protocol_(p),
      now_([] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
      }),
      sink_(0, true, 16) {
  sink_.set_responder([this](const tools::SinkRequest& r) { return serve(r); });
}

GenesisSimulator::~GenesisSimulator() {
  sink_.set_responder(nullptr);
}

std::string GenesisSimulator::url() const {
  return "http://127.0.0.1:" + std::to_string(sink_.port()) +
         (protocol_ == Protocol::Soap ? "/genesis/ws" : "/genesis/api/v1");
}

void GenesisSimulator::set_account(std::string user, std::string password, bool digest) {
  std::lock_guard<std::mutex> lock(mu_);
  user_ = std::move(user);
  password_ = std::move(password);
  digest_ = digest;
}

void GenesisSimulator::set_token(std::string token) {
  std::lock_guard<std::mutex> lock(mu_);
  token_ = std::move(token);
}

void GenesisSimulator::set_clock(std::function<int64_t()> now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  now_ = std::move(now_ms);
}

void GenesisSimulator::inject(Fault f, const std::string& operation, int n, int slow_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  for (int i = 0; i < n; ++i) faults_.push_back({f, operation, slow_ms});
}

void GenesisSimulator::set_retry_after(std::string v) {
  std::lock_guard<std::mutex> lock(mu_);
  retry_after_ = std::move(v);
}

std::string GenesisSimulator::add_person(SimPerson p) {
  std::lock_guard<std::mutex> lock(mu_);
  if (p.id.empty()) p.id = "GP-" + std::to_string(next_person_++);
  persons_[p.id] = p;
  return p.id;
}

void GenesisSimulator::close_process(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  processes_[id].statut = "clos";
}

std::vector<SimPerson> GenesisSimulator::persons() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<SimPerson> out;
  for (const auto& [id, p] : persons_) out.push_back(p);
  return out;
}

std::vector<SimProcess> GenesisSimulator::processes() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<SimProcess> out;
  for (const auto& [id, p] : processes_) out.push_back(p);
  return out;
}

std::optional<SimPerson> GenesisSimulator::person(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = persons_.find(id);
  if (it == persons_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> GenesisSimulator::applied() const {
  std::lock_guard<std::mutex> lock(mu_);
  return applied_;
}

std::vector<std::string> GenesisSimulator::received() const {
  std::lock_guard<std::mutex> lock(mu_);
  return received_;
}

std::vector<std::string> GenesisSimulator::violations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return violations_;
}

size_t GenesisSimulator::nonces_seen() const {
  std::lock_guard<std::mutex> lock(mu_);
  return nonces_.size();
}

bool GenesisSimulator::take_fault(const std::string& op, Fault& f, int& slow_ms) {
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if (it->op.empty() || it->op == op) {
      f = it->fault;
      slow_ms = it->slow_ms;
      faults_.erase(it);
      return true;
    }
  }
  return false;
}

GenesisSimulator::Reply GenesisSimulator::violation(const std::string& why, Reply r) {
  violations_.push_back(why);
  return r;
}

tools::SinkResponse GenesisSimulator::serve(const tools::SinkRequest& r) {
  std::unique_lock<std::mutex> lock(mu_);
  std::string op;
  json in;
  Reply reply = protocol_ == Protocol::Soap ? soap(r, op, in) : rest(r, op, in);
  received_.push_back(op.empty() ? "?" : op);
  if (reply.status == 0) {  // a well-formed request: fault injection, then the operation
    Fault f{};
    int slow_ms = 0;
    bool faulty = take_fault(op, f, slow_ms);
    if (faulty && f == Fault::Slow) {
      lock.unlock();
      std::this_thread::sleep_for(std::chrono::milliseconds(slow_ms));
      lock.lock();
      faulty = false;
    }
    tools::SinkResponse out;
    if (faulty && f == Fault::Reset) {
      out.reset = true;
      return out;
    }
    if (faulty && f == Fault::Http500) {
      reply = Reply{500, "text/html", "<html><body>Internal Server Error</body></html>", {}, false};
    } else if (faulty && f == Fault::Http503) {
      reply = Reply{503,
                    "text/html",
                    "<html><body>Service Unavailable</body></html>",
                    {{"Retry-After", retry_after_}},
                    false};
    } else if (faulty && (f == Fault::TechnicalError || f == Fault::UnknownCode)) {
      Result res;
      res.ok = false;
      res.http = f == Fault::TechnicalError ? 503 : 422;
      res.code = f == Fault::TechnicalError ? "TECH-INDISPONIBLE" : "XYZ-42";
      res.message = f == Fault::TechnicalError ? "service momentanément indisponible"
                                               : "règle de gestion non respectée";
      reply = protocol_ == Protocol::Soap ? soap_answer(op, res) : rest_answer(op, res);
    } else if (faulty && f == Fault::SoapServerFault) {
      reply = protocol_ == Protocol::Soap
                  ? soap_fault("soap:Server", "Erreur technique Genesis", "")
                  : Reply{500, "application/json", R"({"message":"erreur technique"})", {}, false};
    } else {
      Result res = apply(op, in);
      if (faulty && f == Fault::LostAfterApply) {
        out.reset = true;
        return out;
      }
      reply = protocol_ == Protocol::Soap ? soap_answer(op, res) : rest_answer(op, res);
    }
  }
  tools::SinkResponse out;
  out.status = reply.status;
  out.body = reply.body;
  out.headers = reply.headers;
  out.headers["Content-Type"] = reply.content_type;
  out.reset = reply.reset;
  return out;
}

GenesisSimulator::Reply GenesisSimulator::soap_fault(const std::string& code,
                                                     const std::string& text,
                                                     const std::string& detail_code, int status) {
  pugi::xml_document doc;
  auto env = doc.append_child("S:Envelope");
  env.append_attribute("xmlns:S") = kSoap;
  auto fault = env.append_child("S:Body").append_child("S:Fault");
  if (code.rfind("wsse:", 0) == 0) fault.append_attribute("xmlns:wsse") = kWsse;
  if (code.rfind("soap:", 0) == 0) fault.append_attribute("xmlns:soap") = kSoap;
  fault.append_child("faultcode").text().set(code.c_str());
  fault.append_child("faultstring").text().set(text.c_str());
  if (!detail_code.empty()) {
    auto err = fault.append_child("detail").append_child("ns2:erreur");
    err.append_attribute("xmlns:ns2") = kGenesisNs;
    err.append_child("ns2:code").text().set(detail_code.c_str());
    err.append_child("ns2:message").text().set(text.c_str());
  }
  return Reply{status, "text/xml; charset=utf-8", xml_text(doc), {}, false};
}

GenesisSimulator::Reply GenesisSimulator::soap(const tools::SinkRequest& r, std::string& op,
                                               json& in) {
  auto refuse = [&](const std::string& why, const std::string& code) {
    return violation(why, soap_fault(code, why, ""));
  };
  auto header = [&](const char* name) {
    auto it = r.headers.find(name);
    return it == r.headers.end() ? std::string() : it->second;
  };
  if (r.method != "POST")
    return violation("SOAP over " + r.method, Reply{405, "text/plain", "", {}, false});
  if (header("content-type").rfind("text/xml", 0) != 0) {
    return violation("content type " + header("content-type"),
                     Reply{415, "text/plain", "text/xml expected", {}, false});
  }
  pugi::xml_document doc;
  if (!doc.load_buffer(r.body.data(), r.body.size())) return refuse("not XML", "soap:Client");
  pugi::xml_node env = doc.document_element();
  if (local_name(env.name()) != "Envelope" || ns_of(env) != kSoap) {
    return refuse("not a SOAP 1.1 envelope", "soap:VersionMismatch");
  }
  pugi::xml_node body = child_local(env, "Body");
  pugi::xml_node element;
  for (pugi::xml_node c = body.first_child(); c; c = c.next_sibling()) {
    if (c.type() == pugi::node_element) {
      element = c;
      break;
    }
  }
  if (!element || ns_of(element) != kGenesisNs) {
    return refuse("the Body's element is not in the Genesis namespace", "soap:Client");
  }
  op = local_name(element.name());
  if (header("soapaction") != "\"urn:genesis:" + op + "\"") {
    return refuse("SOAPAction " + header("soapaction") + " for " + op, "soap:Client");
  }
  // WS-Security UsernameToken.
  pugi::xml_node sec = child_local(child_local(env, "Header"), "Security");
  if (!sec || ns_of(sec) != kWsse) return refuse("no wsse:Security header", "wsse:InvalidSecurity");
  pugi::xml_node tok = child_local(sec, "UsernameToken");
  pugi::xml_node pw = child_local(tok, "Password");
  pugi::xml_node nonce = child_local(tok, "Nonce");
  pugi::xml_node created = child_local(tok, "Created");
  if (!created || ns_of(created) != kWsu || !nonce) {
    return refuse("UsernameToken without Nonce and wsu:Created", "wsse:InvalidSecurity");
  }
  std::string type = pw.attribute("Type").value();
  std::string raw_nonce;
  if (!base64_decode(nonce.child_value(), raw_nonce) || raw_nonce.size() < 16) {
    return refuse("bad nonce", "wsse:InvalidSecurity");
  }
  bool good = child_local(tok, "Username").child_value() == user_;
  if (digest_) {
    good = good && type == kDigestType &&
           pw.child_value() == sha1_base64(raw_nonce + created.child_value() + password_);
  } else {
    good = good && type == kTextType && pw.child_value() == password_;
  }
  if (!good) return refuse("authentication failed", "wsse:FailedAuthentication");
  int64_t at = 0;
  std::string when = created.child_value();
  if (when.empty() || when.back() != 'Z' || !parse_rfc3339(when, at) ||
      std::llabs(at - now_()) > 5 * 60 * 1000) {
    return refuse("Created outside five minutes", "wsse:MessageExpired");
  }
  if (!nonces_.insert(nonce.child_value()).second) {
    return refuse("nonce used twice", "wsse:FailedAuthentication");
  }
  in = to_json(element);
  return Reply{0, "", "", {}, false};
}

GenesisSimulator::Reply GenesisSimulator::rest(const tools::SinkRequest& r, std::string& op,
                                               json& in) {
  auto header = [&](const char* name) {
    auto it = r.headers.find(name);
    return it == r.headers.end() ? std::string() : it->second;
  };
  auto error = [](int status, const std::string& code, const std::string& msg) {
    return Reply{status,
                 "application/json",
                 json{{"erreur", {{"code", code}, {"message", msg}}}}.dump(),
                 {},
                 false};
  };
  if (header("authorization") != "Bearer " + token_) {
    return violation("bad bearer token", error(401, "AUTH", "jeton invalide"));
  }
  const std::string base = "/genesis/api/v1";
  std::string path = r.path;
  if (path.rfind(base, 0) != 0) return violation("path " + path, error(404, "ROUTE", "inconnu"));
  path = path.substr(base.size());
  auto query = query_params(path);
  path = path.substr(0, path.find('?'));
  bool has_body = r.method == "POST" || r.method == "PUT";
  if (has_body) {
    if (header("content-type").rfind("application/json", 0) != 0) {
      return violation("content type " + header("content-type"),
                       error(415, "FORMAT", "application/json attendu"));
    }
    in = json::parse(r.body, nullptr, false);
    if (!in.is_object()) return violation("body not a JSON object", error(400, "FORMAT", "JSON"));
  } else {
    in = json::object();
  }
  std::vector<std::string> seg;
  for (size_t s = 1; s <= path.size();) {
    size_t e = path.find('/', s);
    if (e == std::string::npos) e = path.size();
    seg.push_back(url_decode(path.substr(s, e - s)));
    s = e + 1;
  }
  auto is = [&](const char* m, size_t n) { return r.method == m && seg.size() == n; };
  if (is("POST", 2) && seg[0] == "personnes" && seg[1] == "recherche") {
    op = "rechercherPersonne";
  } else if (is("POST", 1) && seg[0] == "personnes") {
    op = "creerPersonne";
  } else if (is("GET", 1) && seg[0] == "personnes") {
    op = "trouverPersonne";
    in["idExterne"] = query.count("idExterne") ? query["idExterne"].front() : "";
  } else if (is("GET", 2) && seg[0] == "personnes") {
    op = "lirePersonne";
    in["identifiant"] = seg[1];
  } else if (is("PUT", 2) && seg[0] == "personnes") {
    op = "mettreAJourPersonne";
    in["identifiant"] = seg[1];
  } else if (is("POST", 1) && seg[0] == "processus") {
    op = "creerProcessus";
  } else if (is("GET", 1) && seg[0] == "processus") {
    op = "trouverProcessus";
    in["idExterne"] = query.count("idExterne") ? query["idExterne"].front() : "";
  } else if (is("PUT", 3) && seg[0] == "processus" && seg[2] == "statut") {
    op = "changerStatutProcessus";
    in["identifiant"] = seg[1];
  } else {
    return violation(r.method + " " + path, error(404, "ROUTE", "opération inconnue"));
  }
  return Reply{0, "", "", {}, false};
}

nlohmann::json GenesisSimulator::search(const json& in) const {
  std::string nom = upper(text_of(in, "nomNaissance"));
  std::string usage = upper(text_of(in, "nomUsage"));
  std::string prenoms = upper(text_of(in, "prenoms"));
  std::vector<std::pair<double, const SimPerson*>> found;
  for (const auto& [id, p] : persons_) {
    double s = 0;
    if (!nom.empty() && (upper(p.nom_naissance) == nom || upper(p.nom_usage) == nom))
      s += 0.35;
    else if (!usage.empty() && (upper(p.nom_usage) == usage || upper(p.nom_naissance) == usage))
      s += 0.3;
    std::string first = upper(p.prenoms.substr(0, p.prenoms.find(' ')));
    if (!prenoms.empty() && (upper(p.prenoms) == prenoms || first == prenoms)) s += 0.25;
    if (text_of(in, "dateNaissance") == p.date_naissance) s += 0.3;
    if (text_of(in, "sexe") == p.sexe) s += 0.05;
    if (upper(text_of(in, "commune")) == upper(p.commune)) s += 0.05;
    if (s >= 0.5) found.emplace_back(s, &p);
  }
  std::stable_sort(found.begin(), found.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  json list = json::array();
  for (const auto& [s, p] : found) {
    char score[16];
    std::snprintf(score, sizeof score, "%.2f", s);
    list.push_back({{"identifiant", p->id},
                    {"score", std::stod(score)},
                    {"nomNaissance", p->nom_naissance},
                    {"nomUsage", p->nom_usage},
                    {"prenoms", p->prenoms},
                    {"dateNaissance", p->date_naissance},
                    {"sexe", p->sexe},
                    {"commune", p->commune}});
  }
  return list;
}

GenesisSimulator::Result GenesisSimulator::apply(const std::string& op, const json& in) {
  Result res;
  auto fail = [&](int http, const std::string& code, const std::string& message) {
    res.ok = false;
    res.http = http;
    res.code = code;
    res.message = message;
    return res;
  };
  if (op == "rechercherPersonne") {
    res.fields["candidats"] = search(in);
    return res;
  }
  if (op == "creerPersonne") {
    std::string ext = text_of(in, "idExterne");
    if (ext.empty() || text_of(in, "nomUsage").empty() || text_of(in, "dateNaissance").empty()) {
      return fail(400, "PERS-INCOMPLETE", "fiche personne incomplète");
    }
    for (const auto& [id, p] : persons_) {
      if (p.id_externe == ext) return fail(409, "PERS-DOUBLON", "personne déjà créée : " + id);
    }
    SimPerson p;
    p.id = "GP-" + std::to_string(next_person_++);
    p.id_externe = ext;
    p.nom_naissance = text_of(in, "nomNaissance");
    p.nom_usage = text_of(in, "nomUsage");
    p.prenoms = text_of(in, "prenom");
    p.date_naissance = text_of(in, "dateNaissance");
    p.sexe = text_of(in, "sexe");
    persons_[p.id] = p;
    applied_.push_back("creerPersonne " + p.id);
    res.http = 201;
    res.fields["identifiant"] = p.id;
    return res;
  }
  if (op == "trouverPersonne" || op == "trouverProcessus") {
    std::string ext = text_of(in, "idExterne");
    json list = json::array();
    if (op == "trouverPersonne") {
      for (const auto& [id, p] : persons_) {
        if (!ext.empty() && p.id_externe == ext) list.push_back({{"identifiant", id}});
      }
    } else {
      for (const auto& [id, p] : processes_) {
        if (!ext.empty() && p.id_externe == ext) list.push_back({{"identifiant", id}});
      }
    }
    res.fields["resultats"] = list;
    return res;
  }
  if (op == "lirePersonne" || op == "mettreAJourPersonne") {
    std::string id = text_of(in, "identifiant");
    auto it = persons_.find(id);
    if (it == persons_.end()) return fail(404, "PERS-INCONNUE", "personne inconnue : " + id);
    if (op == "lirePersonne") {
      res.fields["personne"] = {{"identifiant", id}, {"nomUsage", it->second.nom_usage}};
      return res;
    }
    if (!text_of(in, "idExterne").empty()) it->second.id_externe = text_of(in, "idExterne");
    ++it->second.updates;
    applied_.push_back("mettreAJourPersonne " + id);
    res.fields["identifiant"] = id;
    return res;
  }
  if (op == "creerProcessus") {
    std::string ext = text_of(in, "idExterne");
    std::string person = text_of(in, "individuGenesis");
    if (persons_.count(person) == 0) {
      return fail(422, "PERS-INCONNUE", "personne inconnue : " + person);
    }
    for (const auto& [id, p] : processes_) {
      if (p.id_externe == ext) return fail(409, "PROC-DOUBLON", "processus déjà créé : " + id);
    }
    SimProcess p;
    p.id = "PR-" + std::to_string(next_process_++);
    p.id_externe = ext;
    p.personne = person;
    processes_[p.id] = p;
    applied_.push_back("creerProcessus " + p.id);
    res.http = 201;
    res.fields["identifiant"] = p.id;
    return res;
  }
  if (op == "changerStatutProcessus") {
    std::string id = text_of(in, "identifiant");
    auto it = processes_.find(id);
    if (it == processes_.end()) return fail(404, "PROC-INCONNU", "processus inconnu : " + id);
    if (it->second.statut == "clos") return fail(409, "PROC-CLOS", "processus déjà clos");
    it->second.statut = text_of(in, "statut").empty() ? "en_cours" : text_of(in, "statut");
    applied_.push_back("changerStatutProcessus " + id + " " + it->second.statut);
    res.fields["identifiant"] = id;
    res.fields["statut"] = it->second.statut;
    return res;
  }
  return fail(400, "OPERATION", "opération inconnue");
}

GenesisSimulator::Reply GenesisSimulator::soap_answer(const std::string& op, const Result& res) {
  if (!res.ok) return soap_fault("soap:Client", res.message, res.code, 500);
  pugi::xml_document doc;
  auto env = doc.append_child("S:Envelope");
  env.append_attribute("xmlns:S") = kSoap;
  // Another prefix than the profile's: the connector must resolve namespaces, not prefixes.
  auto answer = env.append_child("S:Body").append_child(("ns2:" + op + "Reponse").c_str());
  answer.append_attribute("xmlns:ns2") = kGenesisNs;
  json fields = res.fields;
  if (fields.contains("resultats")) {  // SOAP: the id found, or nothing
    json list = fields["resultats"];
    fields.erase("resultats");
    if (!list.empty()) fields["identifiant"] = list[0]["identifiant"];
  }
  add_fields(answer, "ns2", fields);
  return Reply{200, "text/xml; charset=utf-8", xml_text(doc), {}, false};
}

GenesisSimulator::Reply GenesisSimulator::rest_answer(const std::string& op, const Result& res) {
  (void)op;
  if (!res.ok) {
    return Reply{res.http,
                 "application/json",
                 json{{"erreur", {{"code", res.code}, {"message", res.message}}}}.dump(),
                 {},
                 false};
  }
  return Reply{res.http, "application/json", res.fields.dump(), {}, false};
}

}  // namespace relais::testing

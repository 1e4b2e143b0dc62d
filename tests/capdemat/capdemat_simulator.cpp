#include "tests/capdemat/capdemat_simulator.h"

#include <curl/curl.h>
#include <openssl/evp.h>

#include <chrono>
#include <ctime>
#include <iomanip>
#include <pugixml.hpp>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "core/crypto.h"

namespace relais::testing {
namespace {

constexpr const char* kCapNs = "http://www.capwebct.fr/capdemat";
constexpr const char* kCvqNs = "http://www.cg95.fr/cvq/schema/common";

std::string local(const char* name) {
  std::string n = name;
  auto p = n.find(':');
  return p == std::string::npos ? n : n.substr(p + 1);
}

pugi::xml_node child_local(pugi::xml_node n, const char* name) {
  for (pugi::xml_node c : n.children()) {
    if (c.type() == pugi::node_element && local(c.name()) == name) return c;
  }
  return {};
}

std::string sha1_b64(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha1(), nullptr);
  return base64_encode(std::string_view(reinterpret_cast<const char*>(md), len));
}

std::string envelope(const std::string& body) {
  return "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope "
         "xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>" +
         body + "</soap:Body></soap:Envelope>";
}

// Created within five minutes of now.
bool fresh(const std::string& created) {
  std::tm tm{};
  std::istringstream in(created);
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  if (in.fail()) return false;
  time_t t = timegm(&tm);
  return std::llabs(static_cast<long long>(t - std::time(nullptr))) <= 300;
}

}  // namespace

CapdematSimulator::CapdematSimulator(const std::string& workflow_file) {
  pugi::xml_document doc;
  if (!doc.load_file(workflow_file.c_str())) {
    throw std::runtime_error("cannot read the workflow " + workflow_file);
  }
  for (pugi::xml_node t : doc.child("workflow").children("transition")) {
    auto& ctx = transitions_[{t.attribute("from").value(), t.attribute("to").value()}];
    for (pugi::xml_node c : t.children("context")) ctx.push_back(c.text().get());
  }
  // The fixtures' folder: the workflow's folder's parent.
  std::string folder = workflow_file.substr(0, workflow_file.find_last_of('/'));
  folder = folder.substr(0, folder.find_last_of('/'));
  schemas_ = std::make_unique<capdemat::SchemaSet>(
      folder, std::map<std::string, std::string>{},
      std::map<std::string, std::string>{
          {"homeFolderMappingRequest", "external/HomeFolderMappingService.xsd"},
          {"LocalReferential", "referential/ReferentialData.xsd"}});
  start();
}

CapdematSimulator::~CapdematSimulator() = default;

void CapdematSimulator::start() {
  sink_ = std::make_unique<tools::HttpSink>(port_, true, 8);
  port_ = sink_->port();
  sink_->set_responder([this](const tools::SinkRequest& r) { return handle(r); });
}

void CapdematSimulator::restart() {
  std::unique_ptr<tools::HttpSink> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    old = std::move(sink_);
  }
  old.reset();  // waits for the handlers in flight
  std::lock_guard<std::mutex> lock(mu_);
  start();
}

std::string CapdematSimulator::url() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}
std::string CapdematSimulator::soap_url() const {
  return url() + "/soap";
}

void CapdematSimulator::set_account(std::string user, std::string password, bool digest) {
  std::lock_guard<std::mutex> lock(mu_);
  user_ = std::move(user);
  password_ = std::move(password);
  digest_ = digest;
}

void CapdematSimulator::add_request(const std::string& id, const std::string& state,
                                    const std::string& inner) {
  std::lock_guard<std::mutex> lock(mu_);
  requests_[id] = Request{state, inner, false};
}

std::string CapdematSimulator::state(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = requests_.find(id);
  return it == requests_.end() ? std::string() : it->second.state;
}

std::vector<std::string> CapdematSimulator::applied() const {
  std::lock_guard<std::mutex> lock(mu_);
  return applied_;
}
std::vector<std::string> CapdematSimulator::violations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return violations_;
}
std::map<std::string, std::vector<bool>> CapdematSimulator::acks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return acks_;
}
std::map<std::string, std::string> CapdematSimulator::referentials() const {
  std::lock_guard<std::mutex> lock(mu_);
  return referentials_;
}
int CapdematSimulator::get_requests_calls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return get_calls_;
}
int CapdematSimulator::lost_answers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lost_;
}
void CapdematSimulator::add_home_folder(const std::string& capdemat_id,
                                        const std::vector<std::string>& individuals) {
  std::lock_guard<std::mutex> lock(mu_);
  home_folders_[capdemat_id] = {individuals.begin(), individuals.end()};
}
std::map<std::string, std::string> CapdematSimulator::home_folder_mappings() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hf_mappings_;
}
std::map<std::string, std::string> CapdematSimulator::individual_mappings() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ind_mappings_;
}
int CapdematSimulator::mapping_requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return mapping_requests_;
}
void CapdematSimulator::lose_next_mapping_answers(int n) {
  std::lock_guard<std::mutex> lock(mu_);
  lose_mappings_ = n;
}

void CapdematSimulator::lose_next_state_answers(int n) {
  std::lock_guard<std::mutex> lock(mu_);
  lose_ = n;
}

bool CapdematSimulator::external_may(const std::string& from, const std::string& to) const {
  auto it = transitions_.find({from, to});
  if (it == transitions_.end()) return false;
  if (it->second.empty()) return true;
  for (const auto& c : it->second) {
    if (c == "externalServiceContext") return true;
  }
  return false;
}

tools::SinkResponse CapdematSimulator::handle(const tools::SinkRequest& r) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string prefix = "/service/request/";
  if (r.path == "/soap" && r.method == "POST") return soap(r);
  const std::string referential = "/service/referential/";
  if (r.path.rfind(referential, 0) == 0 && r.method == "PUT") {
    if (!schemas_->validate(r.body).ok) {
      violations_.push_back("invalid LocalReferential");
      return {400, {}, "{}"};
    }
    referentials_[r.path.substr(referential.size())] = r.body;
    return {204, {}, ""};
  }
  if (r.path.rfind(prefix, 0) == 0) {
    std::string rest = r.path.substr(prefix.size());
    auto slash = rest.find('/');
    if (slash != std::string::npos && rest.substr(slash) == "/state") {
      return state_call(r, rest.substr(0, slash));
    }
  }
  return {404, {}, "{\"error\":\"not found\"}"};
}

tools::SinkResponse CapdematSimulator::state_call(const tools::SinkRequest& r,
                                                  const std::string& id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return {404, {}, "{\"error\":\"unknown request\"}"};
  Request& req = it->second;
  if (r.method == "GET") return {200, {}, nlohmann::json{{"state", req.state}}.dump()};
  if (r.method != "POST") return {405, {}, "{}"};
  nlohmann::json b = nlohmann::json::parse(r.body, nullptr, false);
  if (!b.is_object() || !b["from"].is_string() || !b["to"].is_string()) {
    return {400, {}, "{\"error\":\"from and to expected\"}"};
  }
  std::string from = b["from"], to = b["to"];
  if (from != req.state) {
    // The transition is not applied again: the request is no longer where the sender thinks.
    if (req.state == to) violations_.push_back("applied twice: " + id + " " + from + ">" + to);
    return {409, {}, nlohmann::json{{"error", "state changed"}, {"state", req.state}}.dump()};
  }
  if (!external_may(from, to)) {
    violations_.push_back("illegal transition sent: " + id + " " + from + ">" + to);
    return {409, {}, nlohmann::json{{"error", "illegal transition"}, {"state", req.state}}.dump()};
  }
  req.state = to;
  applied_.push_back(id + ":" + from + ">" + to);
  tools::SinkResponse out{200, {}, nlohmann::json{{"state", to}}.dump()};
  if (lose_ > 0) {
    --lose_;
    ++lost_;
    out.reset = true;
  }
  return out;
}

tools::SinkResponse CapdematSimulator::fault(const std::string& code, const std::string& text) {
  tools::SinkResponse out;
  out.status = 500;
  out.headers["Content-Type"] = "text/xml; charset=utf-8";
  out.body = envelope("<soap:Fault><faultcode>" + code + "</faultcode><faultstring>" + text +
                      "</faultstring></soap:Fault>");
  return out;
}

tools::SinkResponse CapdematSimulator::soap(const tools::SinkRequest& r) {
  pugi::xml_document doc;
  if (!doc.load_string(r.body.c_str())) return fault("soap:Client", "not XML");
  pugi::xml_node env = doc.first_child();
  pugi::xml_node header = child_local(env, "Header");
  pugi::xml_node tok = child_local(child_local(header, "Security"), "UsernameToken");
  std::string user = child_local(tok, "Username").text().get();
  pugi::xml_node pw = child_local(tok, "Password");
  std::string nonce_b64 = child_local(tok, "Nonce").text().get();
  std::string created = child_local(tok, "Created").text().get();
  std::string nonce;
  bool ok = !tok.empty() && user == user_ && base64_decode(nonce_b64, nonce) && fresh(created);
  if (ok) {
    std::string type = pw.attribute("Type").value();
    bool is_digest = type.find("#PasswordDigest") != std::string::npos;
    ok = is_digest == digest_ &&
         pw.text().get() == (digest_ ? sha1_b64(nonce + created + password_) : password_);
  }
  if (ok && !nonces_.insert(nonce_b64).second) ok = false;  // a replay
  if (!ok) {
    violations_.push_back("refused WS-Security");
    return fault("wsse:FailedAuthentication", "The security token could not be authenticated");
  }
  pugi::xml_node body = child_local(env, "Body");
  pugi::xml_node op = body.first_child();
  if (!op) {
    return fault("soap:Client", "empty Body");
  }
  tools::SinkResponse out;
  out.headers["Content-Type"] = "text/xml; charset=utf-8";
  if (local(op.name()) == "GetRequestsRequest") {
    ++get_calls_;
    std::string state = child_local(op, "State").text().as_string("Validated");
    std::string xml = std::string("<capdemat:GetRequestsResponse xmlns:capdemat=\"") + kCapNs +
                      "\" xmlns:cvq=\"" + kCvqNs +
                      "\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">";
    for (const auto& [id, req] : requests_) {
      if (req.acked || req.state != state) continue;
      xml += "<capdemat:Request>" + req.inner + "</capdemat:Request>";
    }
    xml += "</capdemat:GetRequestsResponse>";
    out.body = envelope(xml);
    return out;
  }
  if (local(op.name()) == "AckRequestsRequest") {
    for (pugi::xml_node e : op.children()) {
      if (local(e.name()) != "AckElements") continue;
      std::string id = child_local(e, "RequestId").text().get();
      bool erroneous = std::string(child_local(e, "Erroneous").text().get()) == "true";
      acks_[id].push_back(erroneous);
      auto it = requests_.find(id);
      if (it != requests_.end() && !erroneous) it->second.acked = true;
    }
    out.body = envelope(std::string("<capdemat:AckRequestsResponse xmlns:capdemat=\"") + kCapNs +
                        "\"><capdemat:Accomplished>true</capdemat:Accomplished>"
                        "</capdemat:AckRequestsResponse>");
    return out;
  }
  if (local(op.name()) == "homeFolderMappingRequest") {
    // The operation element as a document of its own, with the namespaces declared above it.
    pugi::xml_document alone;
    pugi::xml_node copy = alone.append_copy(op);
    for (pugi::xml_node n = op.parent(); n; n = n.parent()) {
      for (pugi::xml_attribute a : n.attributes()) {
        std::string name = a.name();
        if (name.rfind("xmlns", 0) == 0 && !copy.attribute(a.name())) {
          copy.append_attribute(a.name()) = a.value();
        }
      }
    }
    std::ostringstream text;
    alone.save(text, "", pugi::format_raw);
    return home_folder_mapping(text.str());
  }
  return fault("soap:Client", "unknown operation");
}

tools::SinkResponse CapdematSimulator::home_folder_mapping(const std::string& op_xml) {
  capdemat::Validation v = schemas_->validate(op_xml);
  if (!v.ok) {
    violations_.push_back("invalid homeFolderMappingRequest: " + v.error);
    return fault("soap:Client", "homeFolderMappingRequest not valid");
  }
  pugi::xml_document doc;
  doc.load_string(op_xml.c_str());
  pugi::xml_node op = doc.first_child();
  pugi::xml_node hf = child_local(op, "HomeFolderMapping");
  const std::string hf_id = child_local(hf, "ExternalCapDematId").text().get();
  auto folder = home_folders_.find(hf_id);
  if (folder == home_folders_.end()) {  // Capdémat's endpoint fails on an unknown home folder
    return fault("soap:Server", "no home folder mapping for this ExternalCapDematId");
  }
  if (!mapping_requests_seen_.insert(op_xml).second) {
    violations_.push_back("mapping sent twice: home folder " + hf_id);
  }
  hf_mappings_[hf_id] = child_local(hf, "ExternalId").text().get();
  for (pugi::xml_node i : op.children()) {
    if (local(i.name()) != "IndividualMapping") continue;
    const std::string id = child_local(i, "ExternalCapDematId").text().get();
    if (folder->second.count(id) == 0) {
      violations_.push_back("individual " + id + " is not in home folder " + hf_id);
      continue;
    }
    ind_mappings_[id] = child_local(i, "ExternalId").text().get();
  }
  ++mapping_requests_;
  tools::SinkResponse out{202, {}, ""};
  if (lose_mappings_ > 0) {
    --lose_mappings_;
    out.reset = true;
  }
  return out;
}

long CapdematSimulator::push_request(const std::string& url, const std::string& xml,
                                     const std::string& user, const std::string& password,
                                     std::string& answer) {
  CURL* h = curl_easy_init();
  if (h == nullptr) return 0;
  struct curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/xml");
  std::string auth = user + ":" + password;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, xml.c_str());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(xml.size()));
  curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
  curl_easy_setopt(h, CURLOPT_USERPWD, auth.c_str());
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
  curl_easy_setopt(
      h, CURLOPT_WRITEFUNCTION, +[](char* p, size_t s, size_t n, void* u) -> size_t {
        static_cast<std::string*>(u)->append(p, s * n);
        return s * n;
      });
  answer.clear();
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &answer);
  long status = 0;
  if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(h);
  return status;
}

}  // namespace relais::testing

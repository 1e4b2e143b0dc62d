#include "tests/demarches/ds_simulator.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <set>
#include <tuple>

#include "core/crypto.h"
#include "tests/support/relais_process.h"

namespace relais::testing {

namespace {

using json = nlohmann::json;

// Every name the schema subset knows: operations, fields, arguments, types, keywords.
const std::set<std::string>& schema_names() {
  static const std::set<std::string> names{
      // keywords and types
      "query", "mutation", "fragment", "on", "Int", "String", "ID", "Boolean", "ISO8601DateTime",
      "Order", "ASC", "DESC", "Dossier", "Champ", "PersonnePhysique", "PersonneMorale",
      "PieceJustificativeChamp", "DossierPasserEnInstructionInput", "DossierAccepterInput",
      "DossierRefuserInput", "DossierClasserSansSuiteInput", "ChampFields", "DossierFields",
      // operations
      "getDossier", "getDossierEtat", "getDemarcheDossiers", "getDemarche",
      "dossierPasserEnInstruction", "dossierAccepter", "dossierRefuser", "dossierClasserSansSuite",
      // arguments
      "number", "updatedSince", "first", "after", "order", "input",
      // fields
      "dossier", "demarche", "dossiers", "pageInfo", "hasNextPage", "endCursor", "nodes", "id",
      "state", "dateDepot", "dateDerniereModification", "datePassageEnInstruction",
      "dateTraitement", "motivation", "usager", "email", "demandeur", "__typename", "civilite",
      "nom", "prenom", "dateDeNaissance", "siret", "champs", "annotations", "label", "stringValue",
      "files", "filename", "contentType", "byteSize", "checksum", "errors", "message"};
  return names;
}

// The first name of `query` the schema does not know ("" when none). Variables ($name) are
// the operation's own.
std::string unknown_name(const std::string& query) {
  for (size_t i = 0; i < query.size();) {
    unsigned char c = static_cast<unsigned char>(query[i]);
    if (c == '$') {
      ++i;
      while (i < query.size() &&
             (std::isalnum(static_cast<unsigned char>(query[i])) || query[i] == '_'))
        ++i;
    } else if (std::isalpha(c) || c == '_') {
      size_t j = i;
      while (j < query.size() &&
             (std::isalnum(static_cast<unsigned char>(query[j])) || query[j] == '_'))
        ++j;
      std::string name = query.substr(i, j - i);
      if (schema_names().count(name) == 0) return name;
      i = j;
    } else {
      ++i;
    }
  }
  return {};
}

tools::SinkResponse json_answer(const nlohmann::json& j, int status = 200) {
  tools::SinkResponse r;
  r.status = status;
  r.headers["Content-Type"] = "application/json";
  r.body = j.dump();
  return r;
}

nlohmann::json graphql_error(const std::string& message, const std::string& code = "") {
  nlohmann::json e = {{"message", message}};
  if (!code.empty()) e["extensions"] = {{"code", code}};
  return {{"data", nullptr}, {"errors", nlohmann::json::array({e})}};
}

struct Transition {
  const char* from;
  const char* to;
  bool motivation;
};
const std::map<std::string, Transition>& transitions() {
  static const std::map<std::string, Transition> t{
      {"dossierPasserEnInstruction", {"en_construction", "en_instruction", false}},
      {"dossierAccepter", {"en_instruction", "accepte", false}},
      {"dossierRefuser", {"en_instruction", "refuse", true}},
      {"dossierClasserSansSuite", {"en_instruction", "sans_suite", true}},
  };
  return t;
}

}  // namespace

DsSimulator::DsSimulator(std::string token, std::string instructeur_id)
    : token_(std::move(token)), instructeur_(std::move(instructeur_id)) {
  sink_.set_responder([this](const tools::SinkRequest& r) { return handle(r); });
}

DsSimulator::~DsSimulator() = default;

std::string DsSimulator::url() const {
  return "http://127.0.0.1:" + std::to_string(sink_.port()) + "/api/v2/graphql";
}

std::string DsSimulator::tick() {
  ++clock_s_;
  int64_t s = 10 * 3600 + clock_s_;
  char buf[64];
  std::snprintf(buf, sizeof buf, "2026-12-07T%02lld:%02lld:%02lld+01:00",
                static_cast<long long>(s / 3600), static_cast<long long>(s / 60 % 60),
                static_cast<long long>(s % 60));
  return buf;
}

int64_t DsSimulator::submit(int64_t demarche, const std::map<std::string, std::string>& champs) {
  std::lock_guard<std::mutex> lock(mu_);
  DsDossier d;
  d.number = next_number_++;
  d.demarche = demarche;
  d.updated = tick();
  for (const auto& [label, value] : champs)
    d.champs.push_back({{"label", label}, {"value", value}});
  dossiers_[d.number] = d;
  return d.number;
}

void DsSimulator::edit(int64_t number, const std::string& label, const std::string& value) {
  std::lock_guard<std::mutex> lock(mu_);
  DsDossier& d = dossiers_.at(number);
  for (auto& c : d.champs) {
    if (c["label"] == label) c["value"] = value;
  }
  d.updated = tick();
}

DsDossier DsSimulator::dossier(int64_t number) const {
  std::lock_guard<std::mutex> lock(mu_);
  return dossiers_.at(number);
}

long DsSimulator::send_webhook(const std::string& url, int64_t number) const {
  return send_webhook(url, dossier(number).demarche, number);
}

long DsSimulator::send_webhook(const std::string& url, int64_t procedure, int64_t number) const {
  DsDossier d = dossier(number);
  HttpClient client;
  std::string form = "procedure_id=" + std::to_string(procedure) +
                     "&dossier_id=" + std::to_string(number) + "&state=" + d.state +
                     "&updated_at=" + d.updated.substr(0, 19);
  return client.post(url, form, "application/x-www-form-urlencoded").status;
}

void DsSimulator::allow_procedure(int64_t demarche) {
  std::lock_guard<std::mutex> lock(mu_);
  allowed_.insert(demarche);
}

void DsSimulator::inject(const std::string& operation, Fault fault, int n) {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.push_back({operation, fault, n});
}

std::vector<std::string> DsSimulator::violations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return violations_;
}

int DsSimulator::calls(const std::string& operation) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = calls_.find(operation);
  return it == calls_.end() ? 0 : it->second;
}

nlohmann::json DsSimulator::dossier_json(const DsDossier& d) const {
  auto champs = nlohmann::json::array();
  int i = 0;
  for (const auto& c : d.champs) {
    std::string label = c["label"];
    nlohmann::json champ = {{"id", "Q2hhbXAt" + std::to_string(++i)},
                            {"label", label},
                            {"__typename", "TextChamp"},
                            {"stringValue", c["value"]}};
    if (label.rfind("Justificatif", 0) == 0) {
      champ["__typename"] = "PieceJustificativeChamp";
      champ["files"] = {{{"filename", c["value"]},
                         {"contentType", "application/pdf"},
                         {"byteSize", "48213"},
                         {"checksum", "q2v3ZmFrZWNoZWNrc3Vt"},
                         {"url", "https://example.invalid/signed?x=" + std::to_string(clock_s_)}}};
    }
    champs.push_back(champ);
  }
  auto opt = [](const std::string& s) { return s.empty() ? nlohmann::json() : nlohmann::json(s); };
  return {{"id", base64_encode("Dossier-" + std::to_string(d.number))},
          {"number", d.number},
          {"state", d.state},
          {"dateDepot", "2026-12-07T10:00:00+01:00"},
          {"dateDerniereModification", d.updated},
          {"datePassageEnInstruction", nullptr},
          {"dateTraitement", nullptr},
          {"motivation", opt(d.motivation)},
          {"demarche", {{"number", d.demarche}}},
          {"usager", {{"email", "usager@example.invalid"}}},
          {"demandeur",
           {{"__typename", "PersonnePhysique"},
            {"civilite", "Mme"},
            {"nom", "Martin"},
            {"prenom", "Claire"},
            {"dateDeNaissance", "1984-03-02"}}},
          {"champs", champs},
          {"annotations",
           {{{"id", "Q2hhbXAtYW5u"},
             {"label", "Référence CMS76"},
             {"__typename", "TextChamp"},
             {"stringValue", nullptr}}}}};
}

tools::SinkResponse DsSimulator::handle(const tools::SinkRequest& r) {
  if (r.method != "POST" || r.path != "/api/v2/graphql") {
    std::lock_guard<std::mutex> lock(mu_);
    violations_.push_back("unexpected " + r.method + " " + r.path);
    return json_answer({{"error", "not found"}}, 404);
  }
  auto auth = r.headers.find("authorization");
  if (auth == r.headers.end() || auth->second != "Bearer " + token_) {
    std::lock_guard<std::mutex> lock(mu_);
    violations_.push_back("bad token");
    return json_answer(
        graphql_error("Without a token, only persisted queries are allowed", "unauthorized"), 401);
  }
  nlohmann::json req = nlohmann::json::parse(r.body, nullptr, false);
  if (!req.is_object() || !req.contains("query") || !req["query"].is_string() ||
      !req.contains("operationName") || !req["operationName"].is_string()) {
    std::lock_guard<std::mutex> lock(mu_);
    violations_.push_back("not a GraphQL request");
    return json_answer(graphql_error("No query string was present"), 400);
  }
  const std::string op = req["operationName"];
  const std::string query = req["query"];
  if (std::string bad = unknown_name(query); !bad.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    violations_.push_back("unknown field " + bad);
    return json_answer(
        graphql_error("Field '" + bad + "' doesn't exist on type 'Query'", "undefinedField"));
  }
  if (query.find(op) == std::string::npos) {
    std::lock_guard<std::mutex> lock(mu_);
    violations_.push_back("operation " + op + " not in the query");
    return json_answer(graphql_error("Operation name not found"));
  }
  nlohmann::json vars = req.value("variables", nlohmann::json::object());
  std::optional<Fault> fault;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_[op];
    for (auto& f : faults_) {
      if (f.left > 0 && (f.operation == op || f.operation == "*")) {
        --f.left;
        fault = f.fault;
        break;
      }
    }
  }
  if (fault == Fault::Http503) {
    tools::SinkResponse s = json_answer({{"error", "maintenance"}}, 503);
    s.headers["Retry-After"] = "1";
    return s;
  }
  if (fault == Fault::Timeout) return json_answer(graphql_error("Timeout", "timeout"));
  tools::SinkResponse answer = run(op, vars);
  if (fault == Fault::LostAfterApply) {
    tools::SinkResponse lost;
    lost.reset = true;
    return lost;
  }
  return answer;
}

tools::SinkResponse DsSimulator::run(const std::string& op, const nlohmann::json& vars) {
  std::lock_guard<std::mutex> lock(mu_);
  auto violation = [&](const std::string& what) {
    violations_.push_back(op + ": " + what);
    return json_answer(graphql_error(what, "invalid_argument"));
  };
  if (op == "getDossier" || op == "getDossierEtat") {
    if (!vars.contains("number") || !vars["number"].is_number_integer() || vars.size() != 1) {
      return violation("Variable $number of type Int! was not provided");
    }
    auto it = dossiers_.find(vars["number"].get<int64_t>());
    if (it == dossiers_.end()) {
      return json_answer(graphql_error("Dossier not found", "not_found"));
    }
    return json_answer({{"data", {{"dossier", dossier_json(it->second)}}}});
  }
  if (op == "getDemarche") {
    if (!vars.contains("demarche") || !vars["demarche"].is_number_integer() || vars.size() != 1) {
      return violation("Variable $demarche of type Int! was not provided");
    }
    const int64_t n = vars["demarche"];
    if (allowed_.count(n) == 0) {
      return json_answer(graphql_error("Demarche not found", "not_found"));
    }
    return json_answer({{"data", {{"demarche", {{"number", n}}}}}});
  }
  if (op == "getDemarcheDossiers") {
    if (!vars.contains("demarche") || !vars["demarche"].is_number_integer()) {
      return violation("Variable $demarche of type Int! was not provided");
    }
    for (const auto& [k, v] : vars.items()) {
      if (k != "demarche" && k != "since" && k != "first" && k != "after") {
        return violation("unknown variable " + k);
      }
    }
    const int64_t demarche = vars["demarche"];
    const std::string since = vars.value("since", nlohmann::json()).is_string()
                                  ? vars["since"].get<std::string>()
                                  : std::string();
    const std::string after = vars.value("after", nlohmann::json()).is_string()
                                  ? vars["after"].get<std::string>()
                                  : std::string();
    const int64_t first = vars.value("first", nlohmann::json()).is_number_integer()
                              ? vars["first"].get<int64_t>()
                              : 100;
    std::vector<const DsDossier*> list;
    for (const auto& [n, d] : dossiers_) {
      if (d.demarche == demarche && d.updated >= since) list.push_back(&d);
    }
    std::sort(list.begin(), list.end(), [](const DsDossier* a, const DsDossier* b) {
      return std::tie(a->updated, a->number) < std::tie(b->updated, b->number);
    });
    size_t start = 0;
    if (!after.empty()) {
      // cursor "<updated>|<number>": the dossiers after that one in this order
      size_t bar = after.find('|');
      if (bar == std::string::npos) return violation("invalid cursor");
      std::string u = after.substr(0, bar);
      int64_t n = std::stoll(after.substr(bar + 1));
      while (start < list.size() &&
             std::tie(list[start]->updated, list[start]->number) <= std::tie(u, n))
        ++start;
    }
    auto nodes = nlohmann::json::array();
    size_t end = std::min(list.size(), start + static_cast<size_t>(first));
    for (size_t i = start; i < end; ++i) nodes.push_back(dossier_json(*list[i]));
    std::string cursor =
        end > start ? list[end - 1]->updated + "|" + std::to_string(list[end - 1]->number) : "";
    return json_answer(
        {{"data",
          {{"demarche",
            {{"number", demarche},
             {"dossiers",
              {{"pageInfo", {{"hasNextPage", end < list.size()}, {"endCursor", cursor}}},
               {"nodes", nodes}}}}}}}});
  }
  auto t = transitions().find(op);
  if (t == transitions().end()) return violation("unknown operation");
  if (!vars.contains("input") || !vars["input"].is_object()) {
    return violation("Variable $input was not provided");
  }
  const auto& input = vars["input"];
  for (const auto& [k, v] : input.items()) {
    if (k != "dossierId" && k != "instructeurId" && k != "motivation" &&
        k != "disableNotification") {
      return violation("unknown input field " + k);
    }
  }
  auto refused = [&](const std::string& why) {
    json payload = {{"dossier", nullptr}, {"errors", json::array({json{{"message", why}}})}};
    json data = json::object();
    data[op] = payload;
    return json_answer({{"data", data}});
  };
  DsDossier* d = nullptr;
  for (auto& [n, x] : dossiers_) {
    if (input.value("dossierId", "") == base64_encode("Dossier-" + std::to_string(n))) d = &x;
  }
  if (d == nullptr) return json_answer(graphql_error("Dossier not found", "not_found"));
  if (input.value("instructeurId", "") != instructeur_) {
    return refused("L'instructeur n'a pas les droits d'accès à ce dossier");
  }
  if (t->second.motivation && input.value("motivation", "").empty()) {
    violations_.push_back(op + ": no motivation");
    return refused("La motivation est obligatoire");
  }
  if (d->state != t->second.from) {
    violations_.push_back(op + ": dossier " + std::to_string(d->number) + " is " + d->state);
    return refused("Le dossier est déjà " + d->state);
  }
  d->state = t->second.to;
  d->motivation = input.value("motivation", "");
  d->updated = tick();
  d->applied.push_back(op);
  json payload = {{"dossier",
                   {{"id", base64_encode("Dossier-" + std::to_string(d->number))},
                    {"number", d->number},
                    {"state", d->state}}},
                  {"errors", nullptr}};
  json data = json::object();
  data[op] = payload;
  return json_answer({{"data", data}});
}

}  // namespace relais::testing

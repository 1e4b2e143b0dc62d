// The pure pieces of the démarches-simplifiées connector: GraphQL documents, answer readers,
// error classification, the shaping of a dossier into a message (see demarches.h).

#include <array>
#include <cctype>
#include <map>
#include <utility>

#include "connectors/demarches/demarches.h"
#include "core/json_reader.h"

namespace relais::demarches {

namespace {

// The fields of a dossier every read asks for: the webhook's fetch and the catch-up read the
// same ones, so that both give the same message body.
constexpr const char* kFragments = R"(
fragment ChampFields on Champ {
  id
  label
  __typename
  stringValue
  ... on PieceJustificativeChamp { files { filename contentType byteSize checksum } }
}
fragment DossierFields on Dossier {
  id
  number
  state
  dateDepot
  dateDerniereModification
  datePassageEnInstruction
  dateTraitement
  motivation
  demarche { number }
  usager { email }
  demandeur {
    __typename
    ... on PersonnePhysique { civilite nom prenom dateDeNaissance }
    ... on PersonneMorale { siret }
  }
  champs { ...ChampFields }
  annotations { ...ChampFields }
}
)";

const std::array<Decision, 4> kDecisions{{
    {"passer_en_instruction", "dossierPasserEnInstruction", "en_construction", "en_instruction",
     false},
    {"accepter", "dossierAccepter", "en_instruction", "accepte", false},
    {"refuser", "dossierRefuser", "en_instruction", "refuse", true},
    {"classer_sans_suite", "dossierClasserSansSuite", "en_instruction", "sans_suite", true},
}};

std::string text_of(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
  if (v.is_number()) return v.dump();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  return {};
}

// A member of an object, or null.
const nlohmann::json& member(const nlohmann::json& o, const char* key) {
  static const nlohmann::json null_value;
  if (!o.is_object()) return null_value;
  auto it = o.find(key);
  return it == o.end() ? null_value : *it;
}

bool to_int(const nlohmann::json& v, int64_t& out) {
  if (v.is_number_integer()) {
    out = v.get<int64_t>();
    return true;
  }
  if (v.is_string()) return parse_number(v.get_ref<const std::string&>(), out);
  return false;
}

// Reads the JSON of an answer and its top-level errors; false (with `broken`) when it is not a
// GraphQL answer.
bool read_envelope(const std::string& body, nlohmann::json& doc, ErrorList& errors,
                   std::string& broken) {
  JsonReadError e;
  if (!read_json(body, doc, e)) {
    broken = "la réponse n'est pas du JSON (" + e.detail + ")";
    return false;
  }
  if (!doc.is_object() || (!doc.contains("data") && !doc.contains("errors"))) {
    broken = "la réponse n'a ni data ni errors";
    return false;
  }
  const auto& errs = member(doc, "errors");
  if (!errs.is_null()) {
    if (!errs.is_array()) {
      broken = "errors n'est pas une liste";
      return false;
    }
    errors.present = !errs.empty();
    for (const auto& err : errs) {
      errors.codes.push_back(text_of(member(member(err, "extensions"), "code")));
    }
  }
  return true;
}

// champs / annotations: an object keyed by champ_key(label) (a second champ with the same key
// gets _2, _3…); attachments are appended to `files`.
nlohmann::json read_champs(const nlohmann::json& list, nlohmann::json& files) {
  nlohmann::json out = nlohmann::json::object();
  if (!list.is_array()) return out;
  for (const auto& c : list) {
    if (!c.is_object()) continue;
    std::string base = champ_key(text_of(member(c, "label")));
    if (base.empty()) base = "champ";
    std::string key = base;
    for (int n = 2; out.contains(key); ++n) key = base + "_" + std::to_string(n);
    const auto& v = member(c, "stringValue");
    out[key] = v.is_string() ? v : nlohmann::json();
    const auto& fs = member(c, "files");
    if (!fs.is_array()) continue;
    for (const auto& f : fs) {
      if (!f.is_object()) continue;
      files.push_back({{"champ", key},
                       {"nom", text_of(member(f, "filename"))},
                       {"type", text_of(member(f, "contentType"))},
                       {"taille", text_of(member(f, "byteSize"))},
                       {"empreinte", text_of(member(f, "checksum"))}});
    }
  }
  return out;
}

nlohmann::json optional_text(const nlohmann::json& v) {
  return v.is_string() ? v : nlohmann::json();
}

}  // namespace

std::string dossier_query() {
  return std::string(
             "query getDossier($number: Int!) {\n  dossier(number: $number) { "
             "...DossierFields }\n}\n") +
         kFragments;
}

std::string dossiers_query() {
  return std::string(
             "query getDemarcheDossiers($demarche: Int!, $since: ISO8601DateTime, $first: Int, "
             "$after: String) {\n  demarche(number: $demarche) {\n    number\n    "
             "dossiers(updatedSince: $since, first: $first, after: $after, order: ASC) {\n      "
             "pageInfo { hasNextPage endCursor }\n      nodes { ...DossierFields }\n    }\n  "
             "}\n}\n") +
         kFragments;
}

std::string state_query() {
  return "query getDossierEtat($number: Int!) {\n  dossier(number: $number) {\n    id\n    "
         "number\n    state\n    dateDerniereModification\n    demarche { number }\n  }\n}\n";
}

std::string demarche_query() {
  return "query getDemarche($demarche: Int!) {\n  demarche(number: $demarche) { number }\n}\n";
}

bool read_demarche_answer(const std::string& body, std::string& why) {
  nlohmann::json doc;
  ErrorList errors;
  if (!read_envelope(body, doc, errors, why)) return false;
  if (errors.present) {
    why = classify_errors(errors).text;
    return false;
  }
  int64_t n = 0;
  if (!to_int(member(member(member(doc, "data"), "demarche"), "number"), n)) {
    why = "la réponse ne nomme pas la démarche";
    return false;
  }
  return true;
}

const Decision* find_decision(const std::string& name) {
  for (const auto& d : kDecisions) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

std::string mutation_document(const Decision& d) {
  std::string input = d.mutation.substr(0, 1);
  input[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(input[0])));
  input += d.mutation.substr(1) + "Input";
  return "mutation " + d.mutation + "($input: " + input + "!) {\n  " + d.mutation +
         "(input: $input) {\n    dossier { id number state }\n    errors { message }\n  }\n}\n";
}

Failure classify_errors(const ErrorList& errors) {
  Failure f;
  const std::string code = errors.codes.empty() ? std::string() : errors.codes.front();
  if (code == "not_found") {
    f.action = Failure::Action::Reject;
    f.error_class = "not_found";
    f.code = 404;
    f.text =
        "démarches-simplifiées ne trouve pas ce dossier (supprimé, ou hors des démarches que "
        "le jeton peut lire)";
  } else if (code == "unauthorized" || code == "forbidden") {
    f.error_class = "auth";
    f.code = 401;
    f.text =
        "démarches-simplifiées refuse le jeton de l'API (expiré, révoqué, ou sans accès à "
        "cette démarche) : un administrateur doit le renouveler dans la configuration";
  } else if (code == "timeout" || code == "internal_server_error" || code == "server_error" ||
             code == "too_many_requests" || code == "rate_limited") {
    f.error_class = "graphql";
    f.code = 503;
    f.text = "démarches-simplifiées est momentanément indisponible (code " + code +
             ") : nouvel essai plus tard";
  } else {
    f.action = Failure::Action::Reject;
    f.error_class = "graphql";
    f.code = 422;
    f.text = "démarches-simplifiées refuse la requête GraphQL" +
             (code.empty() ? std::string() : " (code " + code + ")") +
             " : le schéma de l'API a peut-être changé, un développeur doit vérifier le "
             "connecteur";
  }
  return f;
}

bool parse_number(const std::string& text, int64_t& out) {
  if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos)
    return false;
  out = std::stoll(text);
  return out > 0;
}

std::string Dossier::idempotency() const {
  return "dossier:" + std::to_string(number) + ":" + updated;
}

std::string champ_key(const std::string& label) {
  // Two-byte UTF-8 sequences of the French accented letters → their base letter.
  static const std::map<std::string, char> folds{
      {"à", 'a'}, {"â", 'a'}, {"ä", 'a'}, {"ç", 'c'}, {"é", 'e'}, {"è", 'e'}, {"ê", 'e'},
      {"ë", 'e'}, {"î", 'i'}, {"ï", 'i'}, {"ô", 'o'}, {"ö", 'o'}, {"ù", 'u'}, {"û", 'u'},
      {"ü", 'u'}, {"ÿ", 'y'}, {"À", 'a'}, {"Â", 'a'}, {"Ç", 'c'}, {"É", 'e'}, {"È", 'e'},
      {"Ê", 'e'}, {"Î", 'i'}, {"Ô", 'o'}, {"Ù", 'u'}, {"Û", 'u'}};
  std::string out;
  bool sep = false;
  auto put = [&](char c) {
    if (sep && !out.empty()) out += '_';
    sep = false;
    out += c;
  };
  for (size_t i = 0; i < label.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(label[i]);
    if (std::isalnum(c) && c < 0x80) {
      put(static_cast<char>(std::tolower(c)));
    } else if (c >= 0xC0 && i + 1 < label.size()) {
      auto it = folds.find(label.substr(i, 2));
      if (it != folds.end()) {
        put(it->second);
        ++i;
      } else {
        sep = true;
        while (i + 1 < label.size() && (static_cast<unsigned char>(label[i + 1]) & 0xC0) == 0x80)
          ++i;
      }
    } else {
      sep = true;
    }
  }
  return out;
}

bool dossier_message(const nlohmann::json& node, Dossier& out, std::string& why) {
  if (!node.is_object()) {
    why = "le dossier n'est pas un objet";
    return false;
  }
  if (!to_int(member(node, "number"), out.number) || out.number <= 0) {
    why = "le dossier n'a pas de numéro";
    return false;
  }
  out.id = text_of(member(node, "id"));
  out.state = text_of(member(node, "state"));
  out.updated = text_of(member(node, "dateDerniereModification"));
  if (out.id.empty() || out.state.empty() || out.updated.empty()) {
    why = "le dossier n'a pas d'id, d'état ou de date de dernière modification";
    return false;
  }
  to_int(member(member(node, "demarche"), "number"), out.demarche);
  nlohmann::json files = nlohmann::json::array();
  nlohmann::json d = {
      {"numero", out.number},
      {"id", out.id},
      {"etat", out.state},
      {"date_depot", optional_text(member(node, "dateDepot"))},
      {"date_derniere_modification", out.updated},
      {"date_passage_en_instruction", optional_text(member(node, "datePassageEnInstruction"))},
      {"date_traitement", optional_text(member(node, "dateTraitement"))},
      {"motivation", optional_text(member(node, "motivation"))},
      {"usager", {{"email", optional_text(member(member(node, "usager"), "email"))}}},
  };
  const auto& dem = member(node, "demandeur");
  nlohmann::json demandeur = nlohmann::json::object();
  if (dem.is_object()) {
    demandeur["type"] = text_of(member(dem, "__typename"));
    const std::pair<const char*, const char*> fields[] = {{"civilite", "civilite"},
                                                          {"nom", "nom"},
                                                          {"prenom", "prenom"},
                                                          {"dateDeNaissance", "date_naissance"},
                                                          {"siret", "siret"}};
    for (const auto& [from, to] : fields) {
      if (member(dem, from).is_string()) demandeur[to] = member(dem, from);
    }
  }
  d["demandeur"] = demandeur;
  d["champs"] = read_champs(member(node, "champs"), files);
  d["annotations"] = read_champs(member(node, "annotations"), files);
  d["pieces_jointes"] = files;
  out.body = {{"evenement", "dossier." + out.state}, {"demarche", out.demarche}, {"dossier", d}};
  return true;
}

DossierAnswer read_dossier_answer(const std::string& body) {
  DossierAnswer a;
  nlohmann::json doc;
  if (!read_envelope(body, doc, a.errors, a.broken)) return a;
  a.parsed = true;
  const auto& node = member(member(doc, "data"), "dossier");
  if (!node.is_object()) return a;
  std::string why;
  if (!dossier_message(node, a.dossier, why)) {
    a.parsed = false;
    a.broken = why;
    return a;
  }
  a.found = true;
  return a;
}

PageAnswer read_page_answer(const std::string& body) {
  PageAnswer a;
  nlohmann::json doc;
  if (!read_envelope(body, doc, a.errors, a.broken)) return a;
  if (a.errors.present) {
    a.parsed = true;
    return a;
  }
  const auto& demarche = member(member(doc, "data"), "demarche");
  const auto& conn = member(demarche, "dossiers");
  const auto& nodes = member(conn, "nodes");
  if (!nodes.is_array()) {
    a.broken = "la réponse n'a pas de liste de dossiers";
    return a;
  }
  int64_t number = 0;
  to_int(member(demarche, "number"), number);
  for (const auto& n : nodes) {
    Dossier d;
    std::string why;
    if (!dossier_message(n, d, why)) {
      a.broken = why;
      return a;
    }
    if (d.demarche == 0) {
      d.demarche = number;
      d.body["demarche"] = number;
    }
    a.dossiers.push_back(std::move(d));
  }
  const auto& info = member(conn, "pageInfo");
  a.has_next = member(info, "hasNextPage").is_boolean() && member(info, "hasNextPage").get<bool>();
  a.end_cursor = text_of(member(info, "endCursor"));
  if (a.has_next && a.end_cursor.empty()) {
    a.broken = "une page suivante est annoncée sans curseur";
    return a;
  }
  a.parsed = true;
  return a;
}

MutationAnswer read_mutation_answer(const std::string& body, const std::string& mutation) {
  MutationAnswer a;
  nlohmann::json doc;
  if (!read_envelope(body, doc, a.errors, a.broken)) return a;
  a.parsed = true;
  const auto& payload = member(member(doc, "data"), mutation.c_str());
  const auto& errs = member(payload, "errors");
  if (errs.is_array()) a.refusals = errs.size();
  const auto& dossier = member(payload, "dossier");
  if (dossier.is_object() && a.refusals == 0) {
    a.applied = true;
    a.state = text_of(member(dossier, "state"));
  }
  if (!a.errors.present && !a.applied && a.refusals == 0) {
    a.parsed = false;
    a.broken = "la réponse ne dit ni le dossier ni une erreur";
  }
  return a;
}

}  // namespace relais::demarches

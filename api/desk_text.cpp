#include "api/desk_text.h"

#include <algorithm>
#include <vector>

namespace relais::api {
namespace {

struct Label {
  const char* prefix;  // correlation prefix before ':'
  const char* label;
};
const std::vector<Label>& labels() {
  static const std::vector<Label> l = {
      {"rdv", "RDV"},   {"demande", "Demande"}, {"individu", "Individu"},   {"foyer", "Foyer"},
      {"aide", "Aide"}, {"sms", "SMS"},         {"evenement", "Événement"},
  };
  return l;
}

std::string lower_ascii(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

struct Rule {
  const char* error_class;  // "" = any
  int code_min, code_max;   // 0, 0 = any
  const char* contains;     // lower-case substring of the text ("" = any)
  const char* title;
  const char* action;
};

// First match wins: specific rules before general ones.
const std::vector<Rule>& rules() {
  static const std::vector<Rule> r = {
      {"throttled", 0, 0, "",
       "Ralenti par le partenaire : il a demandé d'espacer les envois. Ce n'est pas un échec.",
       "Rien à faire : l'envoi reprend seul à l'heure demandée par le partenaire."},
      {"unknown_outcome", 0, 0, "",
       "Le partenaire a peut-être reçu le message : la connexion a été coupée avant sa réponse. "
       "Relais vérifie avant de renvoyer (accusé de réception, recherche), pour ne pas envoyer "
       "deux fois.",
       "Rien à faire : Relais renvoie seul si le partenaire n'a rien reçu. Ne pas relancer à la "
       "main, sauf si l'attente dure plus d'une heure."},
      {"", 0, 0, "en attente d'appariement",
       "En attente d'appariement : la personne n'est pas encore rattachée à sa fiche chez le "
       "partenaire (Genesis). Ce n'est pas un échec.",
       "Choisir la fiche de la personne (CMS76, bouton APPARIEMENT GENESIS, ou la console, "
       "Appariements à traiter) : l'envoi reprend seul."},
      {"", 0, 0, "appariement refusé",
       "Le choix d'appariement a été refusé (identifiant inconnu, ou personne déjà appariée à "
       "une autre fiche).",
       "Vérifier l'identifiant choisi dans CMS76 ; défaire d'abord l'appariement existant dans "
       "la console s'il est faux, puis renvoyer le choix."},
      {"genesis", 0, 0, "",
       "Genesis a refusé ou n'a pas pu traiter la demande ; l'explication suit.",
       "Lire l'explication : corriger dans CMS76 (ou l'appariement), puis relancer. Un incident "
       "technique Genesis est réessayé seul."},
      {"", 0, 0, "errornonexistentmailbox",
       "Boîte aux lettres inconnue : l'agenda du professionnel n'existe pas.",
       "Vérifier l'adresse e-mail du professionnel dans CMS76, puis relancer."},
      {"mailbox", 0, 0, "", "Boîte aux lettres inconnue : l'agenda du professionnel n'existe pas.",
       "Vérifier l'adresse e-mail du professionnel dans CMS76, puis relancer."},
      {"mapping", 0, 0, "",
       "La transformation (mapping) n'a pas pu produire le message pour la destination.",
       "Signaler à un administrateur : corriger le mapping, le tester sur ce message, le "
       "publier, puis relancer."},
      {"enrichment", 0, 0, "", "L'enrichissement (par exemple l'adresse BAN) n'a pas abouti.",
       "Vérifier l'adresse dans CMS76 ; si elle est juste, relancer plus tard."},
      {"config", 0, 0, "", "La destination est mal configurée.",
       "Signaler à un administrateur (configuration du connecteur), puis relancer."},
      {"store", 0, 0, "", "Le message d'origine est introuvable dans la base de Relais.",
       "Signaler à l'équipe technique ; écarter la livraison avec un motif si elle est perdue."},
      {"timeout", 0, 0, "", "Le système destinataire n'a pas répondu à temps.",
       "Relance automatique en cours ; si l'échec persiste, vérifier l'état du système "
       "destinataire."},
      {"network", 0, 0, "", "Le système destinataire est injoignable (réseau).",
       "Relance automatique en cours ; si l'échec persiste, prévenir l'équipe technique."},
      {"http", 401, 401, "", "Le système destinataire refuse l'identification de Relais.",
       "Signaler à un administrateur : le mot de passe ou le jeton du connecteur a expiré."},
      {"http", 403, 403, "", "Le système destinataire refuse l'accès à Relais.",
       "Signaler à un administrateur : droits du compte technique à vérifier."},
      {"http", 404, 404, "",
       "L'objet n'existe pas chez le destinataire (identifiant inconnu ou supprimé).",
       "Vérifier dans CMS76 que l'objet (RDV, demande, individu) existe et est apparié, puis "
       "relancer ou écarter."},
      {"http", 409, 409, "", "Conflit : l'objet a été modifié entre-temps chez le destinataire.",
       "Vérifier l'objet chez le destinataire, puis relancer."},
      {"http", 429, 429, "", "Le système destinataire limite le débit (trop de requêtes).",
       "Rien à faire : Relais relance automatiquement en respectant le délai demandé."},
      {"http", 400, 499, "",
       "Le système destinataire refuse les données (donnée manquante ou invalide).",
       "Lire le détail de l'erreur, corriger la donnée dans CMS76 (ou faire corriger le "
       "mapping), puis relancer."},
      {"http", 500, 599, "", "Le système destinataire est en erreur.",
       "Relance automatique en cours ; si l'échec persiste, prévenir l'équipe du système "
       "destinataire."},
      {"", 0, 0, "", "Échec de livraison.",
       "Lire le détail technique ; relancer, ou écarter avec un motif."},
  };
  return r;
}

bool matches(const Rule& r, const std::string& cls, int code, const std::string& text_lower) {
  if (r.error_class[0] != '\0' && cls != r.error_class) return false;
  if ((r.code_min != 0 || r.code_max != 0) && (code < r.code_min || code > r.code_max)) {
    return false;
  }
  if (r.contains[0] != '\0' && text_lower.find(r.contains) == std::string::npos) return false;
  return true;
}

// Substrings of lower-case keys that name personal data (French and English field names).
const std::vector<std::string>& personal_parts() {
  static const std::vector<std::string> p = {
      "nom",       "prenom",     "name",    "naissance", "birth",
      "telephone", "phone",      "mobile",  "email",     "mail",
      "courriel",  "adresse",    "address", "voie",      "street",
      "civilite",  "sexe",       "gender",  "motif",     "nir",
      "lieu_dit",  "complement", "commune", "localite",  "situation_familiale",
      "iban",      "ins_",
  };
  return p;
}

}  // namespace

std::string business_label(const std::string& correlation) {
  auto colon = correlation.find(':');
  if (colon == std::string::npos) return correlation;
  std::string prefix = lower_ascii(correlation.substr(0, colon));
  for (const auto& l : labels()) {
    if (prefix == l.prefix) return std::string(l.label) + " " + correlation.substr(colon + 1);
  }
  return correlation;
}

std::string correlation_from_label(const std::string& text) {
  auto space = text.find(' ');
  if (space == std::string::npos) return text;
  std::string head = lower_ascii(text.substr(0, space));
  for (const auto& l : labels()) {
    if (head == lower_ascii(l.label)) return std::string(l.prefix) + ":" + text.substr(space + 1);
  }
  return text;
}

Explanation explain(const std::string& error_class, int code, const std::string& text) {
  std::string t = lower_ascii(text);
  for (const auto& r : rules()) {
    if (matches(r, error_class, code, t)) return {r.title, r.action};
  }
  return {"Échec de livraison.", "Relancer, ou écarter avec un motif."};
}

nlohmann::json explanation_table() {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : rules()) {
    nlohmann::json j = {{"class", r.error_class}, {"title", r.title}, {"action", r.action}};
    if (r.code_min || r.code_max) j["codes"] = {r.code_min, r.code_max};
    if (r.contains[0] != '\0') j["contains"] = r.contains;
    out.push_back(std::move(j));
  }
  return out;
}

bool is_personal_key(const std::string& key) {
  std::string k = lower_ascii(key);
  for (const auto& p : personal_parts()) {
    if (k.find(p) != std::string::npos) return true;
  }
  return false;
}

namespace {

// Keys naming a person; plurals too. Accents folded (é, è, ê → e) before comparing.
const std::vector<std::string>& person_words() {
  static const std::vector<std::string> w = {
      "individu",    "personne", "beneficiaire", "usager", "citoyen", "demandeur",
      "patient",     "enfant",   "mere",         "pere",   "parent",  "representant_legal",
      "allocataire", "conjoint", "requerant",
  };
  return w;
}

std::string fold_accents(std::string s) {
  static const std::pair<const char*, char> folds[] = {
      {"\xc3\xa9", 'e'}, {"\xc3\xa8", 'e'}, {"\xc3\xaa", 'e'}, {"\xc3\xa0", 'a'},
      {"\xc3\xa7", 'c'}, {"\xc3\xb4", 'o'}, {"\xc3\xae", 'i'}, {"\xc3\xbb", 'u'}};
  for (const auto& [from, to] : folds) {
    for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + 1)) {
      s.replace(p, 2, 1, to);
    }
  }
  return s;
}

constexpr size_t kMinTaint = 4;  // shorter values ("M", "75") would mask everything
const char* const kMasked = "\u2022\u2022\u2022";

bool tainted(const nlohmann::json& v, const std::vector<std::string>& taint) {
  std::string text = v.is_string() ? v.get<std::string>() : v.is_number() ? v.dump() : "";
  if (text.size() < kMinTaint) return false;
  for (const auto& t : taint) {
    if (text.find(t) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

bool is_person_key(const std::string& key) {
  std::string k = fold_accents(lower_ascii(key));
  for (const auto& w : person_words()) {
    if (k == w || k == w + "s") return true;
  }
  return false;
}

nlohmann::json mask_payload(const nlohmann::json& value, const PersonalPaths& declared,
                            MaskFindings& findings, const std::vector<std::string>* taint) {
  struct Step {
    const nlohmann::json* from;
    nlohmann::json* to;
    PersonalPaths::Cursor at;  // declared paths; `personal`: every value but null/bool masked
  };
  nlohmann::json out;
  std::vector<Step> todo{{&value, &out, declared.start()}};
  while (!todo.empty()) {
    Step s = std::move(todo.back());
    todo.pop_back();
    const nlohmann::json& v = *s.from;
    if (v.is_object()) {
      *s.to = nlohmann::json::object();
      auto& obj = s.to->get_ref<nlohmann::json::object_t&>();  // std::map: stable addresses
      for (auto it = v.begin(); it != v.end(); ++it) {
        PersonalPaths::Cursor next = declared.advance(s.at, it.key());
        if (!next.personal && (is_personal_key(it.key()) || is_person_key(it.key()))) {
          next.personal = true;
          next.live.clear();
        }
        todo.push_back({&it.value(), &obj[it.key()], std::move(next)});
      }
    } else if (v.is_array()) {
      *s.to = nlohmann::json::array();
      auto& arr = s.to->get_ref<nlohmann::json::array_t&>();
      arr.resize(v.size());  // sized once: the addresses handed out stay valid
      for (size_t i = 0; i < v.size(); ++i) {
        todo.push_back({&v[i], &arr[i], declared.advance(s.at, i)});
      }
    } else if (v.is_null() || v.is_boolean()) {
      *s.to = v;
    } else if (s.at.personal || (taint != nullptr && tainted(v, *taint))) {
      findings.found = true;
      std::string text = v.is_string() ? v.get<std::string>() : v.dump();
      if (text.size() >= kMinTaint) findings.values.push_back(std::move(text));
      *s.to = kMasked;
    } else {
      *s.to = v;
    }
  }
  return out;
}

nlohmann::json mask_personal(const nlohmann::json& value, bool& found) {
  static const PersonalPaths none;
  MaskFindings f;
  nlohmann::json out = mask_payload(value, none, f);
  if (f.found) found = true;
  return out;
}

std::string scrub_text(const std::string& text, const std::vector<std::string>& values) {
  std::string out = text;
  for (const auto& v : values) {
    if (v.size() < kMinTaint) continue;
    for (size_t p = out.find(v); p != std::string::npos; p = out.find(v, p)) {
      out.replace(p, v.size(), kMasked);
      p += std::char_traits<char>::length(kMasked);
    }
  }
  return out;
}

}  // namespace relais::api

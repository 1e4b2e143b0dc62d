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
      {"unknown_outcome", 0, 0, "",
       "Envoyé sans réponse : le système destinataire a peut-être bien pris la demande en "
       "compte.",
       "Rien à faire en général : quand le destinataire le permet, Relais vérifie avant de "
       "renvoyer (un agenda est d'abord consulté) ; si un doublon apparaît chez le "
       "destinataire, le signaler."},
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
      "nom",
      "prenom",
      "name",
      "naissance",
      "birth",
      "telephone",
      "phone",
      "mobile",
      "email",
      "mail",
      "courriel",
      "adresse",
      "address",
      "voie",
      "street",
      "civilite",
      "sexe",
      "gender",
      "motif",
      "nir",
      "lieu_dit",
      "complement",
      "situation_familiale",
      "iban",
      "ins_",
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

// Iterative (an explicit stack instead of recursion): a stored document of any depth is masked
// without exhausting the thread's stack.
nlohmann::json mask_personal(const nlohmann::json& value, bool& found) {
  struct Step {
    const nlohmann::json* from;
    nlohmann::json* to;
    bool mask;  // under a personal key: every value but null and booleans becomes "•••"
  };
  nlohmann::json out;
  std::vector<Step> todo{{&value, &out, false}};
  while (!todo.empty()) {
    Step s = todo.back();
    todo.pop_back();
    const nlohmann::json& v = *s.from;
    if (v.is_object()) {
      *s.to = nlohmann::json::object();
      auto& obj = s.to->get_ref<nlohmann::json::object_t&>();  // std::map: stable addresses
      for (auto it = v.begin(); it != v.end(); ++it) {
        bool personal = !s.mask && is_personal_key(it.key()) && !it.value().is_null() &&
                        !it.value().is_boolean();
        if (personal) found = true;
        todo.push_back({&it.value(), &obj[it.key()], s.mask || personal});
      }
    } else if (v.is_array()) {
      *s.to = nlohmann::json::array();
      auto& arr = s.to->get_ref<nlohmann::json::array_t&>();
      arr.resize(v.size());  // sized once: the addresses handed out stay valid
      for (size_t i = 0; i < v.size(); ++i) todo.push_back({&v[i], &arr[i], s.mask});
    } else if (s.mask && !v.is_null() && !v.is_boolean()) {
      *s.to = "•••";
    } else {
      *s.to = v;
    }
  }
  return out;
}

}  // namespace relais::api

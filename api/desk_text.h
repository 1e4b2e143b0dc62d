#pragma once
// What the support desk shows people instead of technical values: business labels of
// correlation keys ("rdv:91877" → "RDV 91877"), errors explained in plain French with a
// suggested action, and payloads with personal fields masked. Tables as data; stateless,
// thread-safe.

#include <string>

#include <nlohmann/json.hpp>

namespace relais::api {

// "rdv:91877" → "RDV 91877"; unknown prefixes are shown as they are.
std::string business_label(const std::string& correlation);
// "RDV 91877" → "rdv:91877" (for searching); other text is returned unchanged.
std::string correlation_from_label(const std::string& text);

struct Explanation {
  std::string title;   // what happened, in French
  std::string action;  // what a person should do
};
// The first rule of the table matching (class, code, text).
Explanation explain(const std::string& error_class, int code, const std::string& text);
// The table itself (for the API and the docs): [{class, code, contains, title, action}].
nlohmann::json explanation_table();

// True when a JSON key names personal data (nom, prénom, téléphone, adresse, e-mail, …).
bool is_personal_key(const std::string& key);
// A copy with every value under a personal key replaced by "•••"; `found` is set when any was.
nlohmann::json mask_personal(const nlohmann::json& value, bool& found);

}  // namespace relais::api

#pragma once
// What the support desk shows people instead of technical values: business labels of
// correlation keys ("rdv:91877" → "RDV 91877"), errors explained in plain French with a
// suggested action, and payloads with personal fields masked. Tables as data; stateless,
// thread-safe.

#include <string>

#include <nlohmann/json.hpp>

#include "core/personal_paths.h"

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
// True when a JSON key names a person (individu, personne, bénéficiaire, usager, citoyen,
// demandeur, …): everything under it is personal, whatever the names of its fields.
bool is_person_key(const std::string& key);

// What masking found in a document: whether anything was personal, and the personal values
// themselves (texts of 4 characters or more) so that a text derived from the document (a mapped
// payload, an error text) can be cleaned of them too.
struct MaskFindings {
  bool found = false;
  std::vector<std::string> values;
};
// A copy with every personal value replaced by "•••". Personal: a declared path (or under one),
// a key naming personal data (is_personal_key), everything under a person (is_person_key), and
// — when `taint` is given — any text containing, or number equal to, one of those values.
// Iterative: a document of any depth is masked without recursion.
nlohmann::json mask_payload(const nlohmann::json& value, const PersonalPaths& declared,
                            MaskFindings& findings,
                            const std::vector<std::string>* taint = nullptr);
// mask_payload without declared paths nor taint; `found` is set when anything was masked.
nlohmann::json mask_personal(const nlohmann::json& value, bool& found);
// `text` with every occurrence of a personal value replaced by "•••".
std::string scrub_text(const std::string& text, const std::vector<std::string>& values);

}  // namespace relais::api

#include "store/stored_values.h"

#include "core/log.h"

namespace relais {

std::string headers_json(const std::map<std::string, std::string>& h) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : h) j[k] = v;
  return j.dump();
}

std::map<std::string, std::string> headers_from(const std::string& text) {
  std::map<std::string, std::string> out;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.value().is_string()) out[it.key()] = it.value().get<std::string>();
    }
  }
  return out;
}

std::vector<std::string> flags_from(const std::string& text) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_array()) {
    for (const auto& f : j) {
      if (f.is_string()) out.push_back(f.get<std::string>());
    }
  }
  return out;
}

void seal_update(const AtRestCipher* cipher, DeliveryUpdate& u) {
  if (cipher == nullptr) return;
  if (u.payload && !cipher->seal(payload_aad(u.id), *u.payload, *u.payload)) {
    log_error("store",
              "cannot encrypt the payload of delivery " + std::to_string(u.id) + ": not kept");
    u.payload.reset();
  }
  if (u.attempt &&
      !cipher->seal(excerpt_aad(u.id, u.attempt->at), u.attempt->excerpt, u.attempt->excerpt)) {
    log_error("store",
              "cannot encrypt an excerpt of delivery " + std::to_string(u.id) + ": not kept");
    u.attempt->excerpt.clear();
  }
}

std::string open_stored(const AtRestCipher* cipher, const std::string& aad, std::string stored,
                        bool json, std::string* error) {
  if (!AtRestCipher::is_sealed(stored)) return stored;  // plain: no copy
  std::string plain;
  Status st = AtRestCipher::open_with(cipher, aad, stored, plain);
  if (st.ok) return plain;
  if (error != nullptr) *error = st.detail;
  return json ? unreadable_placeholder_json(st) : unreadable_placeholder_text(st);
}

}  // namespace relais

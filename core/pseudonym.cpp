#include "core/pseudonym.h"

#include <cstdlib>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "core/crypto.h"
#include "core/files.h"

namespace relais {
namespace {

std::mutex& key_mutex() {
  static std::mutex mu;
  return mu;
}
std::shared_ptr<const std::string>& key_slot() {
  static std::shared_ptr<const std::string> key;
  return key;
}
std::shared_ptr<const std::string> current_key() {
  std::lock_guard<std::mutex> lock(key_mutex());
  return key_slot();
}

}  // namespace

void set_pseudonym_key(const std::string& key) {
  if (!key.empty() && key.size() < 32) {
    throw std::invalid_argument("the pseudonym key must be at least 32 bytes long");
  }
  std::lock_guard<std::mutex> lock(key_mutex());
  key_slot() = key.empty() ? nullptr : std::make_shared<const std::string>(key);
}

bool has_pseudonym_key() {
  return current_key() != nullptr;
}

std::string load_pseudonym_key(const std::string& key_file) {
  std::string key;
  if (!key_file.empty()) {
    if (!read_text_file(key_file, key)) {
      throw std::runtime_error("privacy.pseudonym_key_file: cannot read " + key_file);
    }
  } else if (const char* env = std::getenv("RELAIS_PSEUDONYM_KEY")) {
    key = env;
  }
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
  return key;
}

std::string pseudonym_hex(const std::string& value) {
  auto key = current_key();
  return key ? hmac_sha256_hex(*key, value) : sha256_hex(value);
}

std::string legacy_pseudonym_hex(const std::string& value) {
  return sha256_hex(value);
}

}  // namespace relais

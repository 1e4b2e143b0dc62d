#include "core/at_rest.h"

#include <openssl/crypto.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "core/crypto.h"
#include "core/files.h"

namespace relais {
namespace {

constexpr std::string_view kMagic = "enc1:";

bool valid_key_id(const std::string& id) {
  if (id.empty() || id.size() > 32) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// 64 hexadecimal characters or the base64 of 32 bytes (a trailing newline is dropped) → 32
// bytes; `raw_ok`: exactly 32 bytes are taken as they are (a file). False otherwise.
bool decode_key(std::string text, bool raw_ok, std::array<unsigned char, 32>& out) {
  bool ok = false;
  if (raw_ok && text.size() == 32) {
    std::copy(text.begin(), text.end(), out.begin());
    ok = true;
  } else {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    if (text.size() == 64) {
      ok = true;
      for (size_t i = 0; i < 32 && ok; ++i) {
        int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);
        ok = hi >= 0 && lo >= 0;
        out[i] = static_cast<unsigned char>(ok ? hi * 16 + lo : 0);
      }
    } else if (text.size() == 44) {
      std::string raw;
      ok = base64_decode(text, raw) && raw.size() == 32;
      if (ok) std::copy(raw.begin(), raw.end(), out.begin());
      OPENSSL_cleanse(raw.data(), raw.size());
    }
  }
  OPENSSL_cleanse(text.data(), text.size());
  return ok;
}

std::string mode_text(unsigned mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode & 07777);
  return buf;
}

AtRestCipher::Key load_key(const AtRestKeySource& src) {
  AtRestCipher::Key key;
  key.id = src.id;
  const std::string where = "store.encryption key '" + src.id + "'";
  if (src.file.empty() == src.env.empty()) {
    throw std::runtime_error(where + ": give exactly one of file or env");
  }
  std::string text;
  bool raw_ok = false;
  if (!src.file.empty()) {
    struct stat st {};
    if (::stat(src.file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      throw std::runtime_error(where + ": cannot read the key file " + src.file);
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
      throw std::runtime_error(where + ": permissions " + mode_text(st.st_mode) + " for '" +
                               src.file +
                               "' are too open: a key file must be accessible by its owner only "
                               "(chmod 600 or 400). Refused.");
    }
    if (!read_text_file(src.file, text)) {
      throw std::runtime_error(where + ": cannot read the key file " + src.file);
    }
    raw_ok = true;
  } else {
    const char* v = std::getenv(src.env.c_str());
    if (v == nullptr || *v == '\0') {
      throw std::runtime_error(where + ": the environment variable " + src.env + " is not set");
    }
    text = v;
  }
  if (!decode_key(std::move(text), raw_ok, key.bytes)) {
    throw std::runtime_error(
        where + ": " + (raw_ok ? "the file " + src.file : "the variable " + src.env) +
        " must hold a 32-byte key: " + (raw_ok ? "32 raw bytes, " : "") +
        "64 hexadecimal characters or 44 characters of base64 (openssl rand -hex 32)");
  }
  return key;
}

Status undecryptable(const std::string& why) {
  return Status::failure(500, "payload cannot be decrypted", "payload cannot be decrypted: " + why);
}

}  // namespace

std::string body_aad(std::string_view message_id) {
  return "messages.body/" + std::string(message_id);
}
std::string payload_aad(int64_t delivery_id) {
  return "deliveries.payload/" + std::to_string(delivery_id);
}
std::string excerpt_aad(int64_t delivery_id, int64_t at) {
  return "attempts.excerpt/" + std::to_string(delivery_id) + "/" + std::to_string(at);
}

AtRestCipher::AtRestCipher(std::vector<Key> keys, std::string active)
    : keys_(std::move(keys)), active_(std::move(active)) {
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (!valid_key_id(keys_[i].id)) {
      throw std::invalid_argument("store.encryption: key id '" + keys_[i].id +
                                  "' is not valid (letters, digits, '-', '_', '.'; 32 at most)");
    }
    for (size_t j = 0; j < i; ++j) {
      if (keys_[j].id == keys_[i].id) {
        throw std::invalid_argument("store.encryption: key id '" + keys_[i].id +
                                    "' is given twice");
      }
    }
  }
  active_key_ = find(active_);
  if (active_key_ == nullptr) {
    throw std::invalid_argument("store.encryption.active: '" + active_ +
                                "' is not one of store.encryption.keys");
  }
  prefix_ = std::string(kMagic) + active_ + ":";
}

AtRestCipher::Key::~Key() {
  OPENSSL_cleanse(bytes.data(), bytes.size());
}

AtRestCipher::~AtRestCipher() = default;  // every Key wipes itself

std::vector<std::string> AtRestCipher::key_ids() const {
  std::vector<std::string> out;
  for (const auto& k : keys_) out.push_back(k.id);
  return out;
}

const AtRestCipher::Key* AtRestCipher::find(std::string_view id) const {
  for (const auto& k : keys_) {
    if (k.id == id) return &k;
  }
  return nullptr;
}

bool AtRestCipher::is_sealed(std::string_view stored) {
  return stored.substr(0, kMagic.size()) == kMagic;
}

bool AtRestCipher::seal(std::string_view aad, std::string_view plain, std::string& stored) const {
  if (plain.empty()) {
    stored.clear();
    return true;
  }
  std::string sealed;
  if (!aes256gcm_seal(active_key_->bytes.data(), aad, plain, sealed)) return false;
  stored = prefix_;
  stored += base64_encode(sealed);
  return true;
}

Status AtRestCipher::open(std::string_view aad, std::string_view stored, std::string& plain) const {
  return open_with(this, aad, stored, plain);
}

Status AtRestCipher::open_with(const AtRestCipher* cipher, std::string_view aad,
                               std::string_view stored, std::string& plain) {
  if (!is_sealed(stored)) {
    plain.assign(stored);
    return Status::success();
  }
  plain.clear();
  std::string_view rest = stored.substr(kMagic.size());
  size_t colon = rest.find(':');
  if (colon == std::string_view::npos) return undecryptable("malformed value");
  std::string id(rest.substr(0, colon));
  const Key* key = cipher ? cipher->find(id) : nullptr;
  if (key == nullptr) {
    return undecryptable("key " + (valid_key_id(id) ? id : std::string("?")) +
                         " unknown (not in store.encryption.keys)");
  }
  std::string sealed;
  if (!base64_decode(rest.substr(colon + 1), sealed)) return undecryptable("malformed value");
  if (!aes256gcm_open(key->bytes.data(), aad, sealed, plain)) {
    return undecryptable("tag mismatch with key " + id +
                         " (the value was changed, or belongs to another record)");
  }
  return Status::success();
}

std::shared_ptr<const AtRestCipher> load_at_rest_cipher(const AtRestSettings& settings) {
  if (!settings.enabled()) return nullptr;
  std::vector<AtRestCipher::Key> keys;
  for (const auto& src : settings.keys) keys.push_back(load_key(src));
  try {
    return std::make_shared<const AtRestCipher>(std::move(keys), settings.active);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(e.what());
  }
}

std::string unreadable_placeholder_json(const Status& why) {
  return nlohmann::json{{"illisible", true},
                        {"raison", "contenu chiffré illisible : " + why.detail}}
      .dump();
}

std::string unreadable_placeholder_text(const Status& why) {
  return "[contenu chiffré illisible : " + why.detail + "]";
}

}  // namespace relais

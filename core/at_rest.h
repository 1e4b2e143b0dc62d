#pragma once
// Encryption at rest of the personal columns of the store (docs/security.md, "Encryption at
// rest"): messages.body, deliveries.payload and attempts.excerpt. A stored value is either the
// plain text (a legacy row, or encryption off) or
//
//   enc1:<key id>:<base64(nonce 12 | AES-256-GCM ciphertext | tag 16)>
//
// with the record's identity as associated data (`messages.body/<message id>`, …), so that a
// ciphertext copied to another row does not open. The key id is in each value: several keys
// may be configured at once, the active one encrypts, the others only decrypt (rotation:
// `relais store rekey`).
//
// AtRestCipher: immutable after construction, thread-safe, shared (shared_ptr) by the store, the
// console store and the commands. Owns its key material and wipes it (OPENSSL_cleanse) when
// destroyed; never prints it.

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace relais {

// Where one key comes from (configuration `store.encryption.keys[]`). Exactly one of file, env.
struct AtRestKeySource {
  std::string id;    // letters, digits, '-', '_', '.'; at most 32 characters
  std::string file;  // 32 raw bytes, or 64 hexadecimal characters, or base64 of 32 bytes
  std::string env;   // an environment variable holding 64 hexadecimal characters or base64
};

// The configuration `store.encryption`: no active key = no encryption (the default).
struct AtRestSettings {
  std::string active;
  std::vector<AtRestKeySource> keys;
  bool enabled() const { return !active.empty(); }
};

// The associated data of each encrypted column (the record's identity).
std::string body_aad(std::string_view message_id);
std::string payload_aad(int64_t delivery_id);
// An attempt is identified by its delivery and its time: the value cannot move to another
// delivery (another person's) nor to another attempt of the same delivery at another time.
std::string excerpt_aad(int64_t delivery_id, int64_t at);

class AtRestCipher {
 public:
  // Wiped when destroyed (every copy).
  struct Key {
    std::string id;
    std::array<unsigned char, 32> bytes{};
    Key() = default;
    Key(const Key&) = default;
    Key(Key&&) = default;
    Key& operator=(const Key&) = default;
    Key& operator=(Key&&) = default;
    ~Key();
  };
  // Throws std::invalid_argument when `active` is not among the keys or an id is invalid or
  // repeated.
  AtRestCipher(std::vector<Key> keys, std::string active);
  ~AtRestCipher();
  AtRestCipher(const AtRestCipher&) = delete;
  AtRestCipher& operator=(const AtRestCipher&) = delete;

  const std::string& active() const { return active_; }
  // "enc1:<active>:" — the prefix of every value on the active key.
  const std::string& active_prefix() const { return prefix_; }
  std::vector<std::string> key_ids() const;

  // The stored form of `plain` under the active key. "" stays "" (nothing to hide; an empty
  // column stays recognisable as empty). False only if OpenSSL fails. `stored` may be the
  // string `plain` views.
  bool seal(std::string_view aad, std::string_view plain, std::string& stored) const;
  // The plain text of a stored value: a value that is not "enc1:…" is returned as it is
  // (legacy plain rows). Errors (never with the plain text or the key): "payload cannot be
  // decrypted: key <id> unknown", "…: tag mismatch (…)", "…: malformed value".
  Status open(std::string_view aad, std::string_view stored, std::string& plain) const;

  // Whether a stored value is encrypted (starts with "enc1:").
  static bool is_sealed(std::string_view stored);
  // Opening without a cipher: plain values as they are, an encrypted one is an error.
  static Status open_with(const AtRestCipher* cipher, std::string_view aad, std::string_view stored,
                          std::string& plain);

 private:
  const Key* find(std::string_view id) const;
  std::vector<Key> keys_;
  std::string active_;
  std::string prefix_;
  const Key* active_key_ = nullptr;
};

// Loads the keys (start-up; throws std::runtime_error with a readable reason: unreadable file,
// a file group- or world-accessible — refused like ssh does —, a value of the wrong length or
// form, an unset variable). Never puts key material in an error text. nullptr when the settings
// are not enabled.
std::shared_ptr<const AtRestCipher> load_at_rest_cipher(const AtRestSettings& settings);

// What a reader shows in place of a value that does not decrypt (the console): a French
// sentence, as a JSON document for a body or a payload.
std::string unreadable_placeholder_json(const Status& why);
std::string unreadable_placeholder_text(const Status& why);

}  // namespace relais

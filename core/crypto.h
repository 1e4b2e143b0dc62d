#pragma once
// Hashing, random, password and authenticated-encryption helpers over OpenSSL. Stateless,
// thread-safe (the AES-GCM context is one per thread, reused).

#include <string>
#include <string_view>

namespace relais {

std::string sha256_hex(const std::string& data);

// SHA-256 of data given in pieces (a file read chunk by chunk). Not thread-safe; owns its
// OpenSSL context. hex() ends it: update() after hex() is a programming error.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view data);
  std::string hex();  // lower-case, 64 characters

 private:
  void* ctx_;  // EVP_MD_CTX*
};
// HMAC-SHA256 of `data` under `key`, in lower-case hex (64 characters); "" if OpenSSL fails
// (allocation), which matches no signature.
std::string hmac_sha256_hex(const std::string& key, const std::string& data);
// Compares two strings in time that depends only on their lengths.
bool constant_time_equals(const std::string& a, const std::string& b);
// `bytes` bytes from OpenSSL's CSPRNG, in hex (2 × bytes characters). Throws if it fails.
std::string random_hex(size_t bytes);
// Bytes in lower-case hex (2 × len characters).
std::string to_hex(const unsigned char* data, size_t len);
// A SHA-256 fingerprint as people write it ("AB:CD:…", any case, colons or not) in the
// canonical form: lower-case hex without colons; "" when it is not 64 hexadecimal digits.
std::string normalize_fingerprint(const std::string& text);

// The minimum (and default) PBKDF2-SHA256 work factor for passwords (OWASP 2023).
constexpr int kPasswordIterations = 600000;
// "pbkdf2-sha256$ITERATIONS$SALT_HEX$HASH_HEX" (16-byte random salt, 32-byte hash).
std::string hash_password(const std::string& password, int iterations = kPasswordIterations);
// True when `password` matches an encoded hash made by hash_password (constant-time compare).
bool verify_password(const std::string& password, const std::string& encoded);

// Standard base64 (RFC 4648, with padding). decode: false on any character outside the alphabet,
// bad padding, or a length that is not a multiple of 4.
std::string base64_encode(std::string_view data);
bool base64_decode(std::string_view text, std::string& out);

// AES-256-GCM (OpenSSL EVP). `key` is 32 bytes. seal: a random 96-bit nonce per call; returns
// nonce (12) | ciphertext | tag (16), i.e. 28 bytes more than `plain`; `aad` is authenticated, not
// stored. False only when OpenSSL fails (the random generator, an allocation). open: false when
// the tag does not match (wrong key, changed bytes, other associated data) or `sealed` is too
// short; `plain` is then empty.
constexpr size_t kAesGcmOverhead = 12 + 16;
bool aes256gcm_seal(const unsigned char* key, std::string_view aad, std::string_view plain,
                    std::string& sealed);
bool aes256gcm_open(const unsigned char* key, std::string_view aad, std::string_view sealed,
                    std::string& plain);

}  // namespace relais

#pragma once
// Hashing, random and password helpers over OpenSSL. Stateless, thread-safe.

#include <string>

namespace relais {

std::string sha256_hex(const std::string& data);
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

}  // namespace relais

#pragma once
// Keyed pseudonyms: every pseudonym Relais computes from a personal value (the mappings'
// pseudonym() pairing key, the SMS opt-out list, the BAN cache's keys) is
// HMAC-SHA256(key, value) under one process-wide secret, so that nobody without the key can
// test a guess (a name and a birth date, a phone number) against a stored pseudonym.
// The key comes from `privacy.pseudonym_key_file` or the environment variable
// RELAIS_PSEUDONYM_KEY; without one, pseudonyms stay plain SHA-256 (the former behaviour,
// warned about at start-up) so that existing deployments keep working. See docs/security.md.
//
// Thread-safety: set_pseudonym_key() is called at start-up; pseudonym_hex() may run on any
// thread at any time (the key is read under a mutex, copied as a shared pointer).

#include <string>

namespace relais {

// Installs the key ("" = none: plain SHA-256). Throws std::invalid_argument if shorter than
// 32 bytes.
void set_pseudonym_key(const std::string& key);
bool has_pseudonym_key();
// Reads the key: the file when `key_file` is not empty (trailing newline dropped), else
// RELAIS_PSEUDONYM_KEY, else none. Throws std::runtime_error when the file cannot be read.
// Returns the key ("" = none).
std::string load_pseudonym_key(const std::string& key_file);

// HMAC-SHA256(key, value) in hex when a key is installed, else SHA-256(value) in hex.
std::string pseudonym_hex(const std::string& value);
// SHA-256(value) in hex: what pseudonym_hex gave before keys (kept to find legacy entries).
std::string legacy_pseudonym_hex(const std::string& value);

}  // namespace relais

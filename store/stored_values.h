#pragma once
// What every store engine (store/sqlite/, store/postgresql/) does the same way with the values it
// keeps: headers and quality flags as JSON text, and the encryption at rest of bodies, mapped
// payloads and excerpts (core/at_rest.h) — sealed on the callers' threads, opened by the readers.
// Free functions without state; thread-safe.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/at_rest.h"
#include "core/store.h"

namespace relais {

// Rows a tombstone replaced for one message (erasure and retention).
struct TombstoneCounts {
  int64_t messages = 0, deliveries = 0, attempts = 0;
};

// Headers as stored: a JSON object of strings; read back leniently (anything else: none).
std::string headers_json(const std::map<std::string, std::string>& headers);
std::map<std::string, std::string> headers_from(const std::string& text);
// A delivery's quality flags as stored ("" or a JSON array of strings).
std::vector<std::string> flags_from(const std::string& text);

// Encrypts an update's payload and excerpt in place (null cipher: nothing). Only if OpenSSL
// itself fails: the outcome is kept, the text that could not be encrypted is not (never written
// in clear), and the failure is logged.
void seal_update(const AtRestCipher* cipher, DeliveryUpdate& u);
// The plain text of a stored value; a value that does not decrypt becomes the console's
// placeholder (JSON for a body or payload, text else) and the reason goes to `error` when asked.
std::string open_stored(const AtRestCipher* cipher, const std::string& aad, std::string stored,
                        bool json, std::string* error = nullptr);

}  // namespace relais

#pragma once
// What every store engine (store/sqlite/, store/postgresql/) does the same way with the values it
// keeps: headers and quality flags as JSON text, and the encryption at rest of bodies, mapped
// payloads and excerpts (core/at_rest.h) — sealed on the callers' threads, opened by the readers.
// Free functions without state; thread-safe.

#include <cstdint>
#include <functional>
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

// A delivery read back with its message (a backlog's page, Store::load_active_page): its own
// columns as given, the key, source, reception and sequence from the message.
QueuedDelivery queued_with_message(MessagePtr m, int64_t id, const std::string& destination,
                                   std::string mapping, int attempts, Millis next_attempt_at,
                                   Millis not_before, std::string route);

// Encrypts an update's payload and excerpt in place (null cipher: nothing). Only if OpenSSL
// itself fails: the outcome is kept, the text that could not be encrypted is not (never written
// in clear), and the failure is logged.
void seal_update(const AtRestCipher* cipher, DeliveryUpdate& u);
// The plain text of a stored value; a value that does not decrypt becomes the console's
// placeholder (JSON for a body or payload, text else) and the reason goes to `error` when asked.
std::string open_stored(const AtRestCipher* cipher, const std::string& aad, std::string stored,
                        bool json, std::string* error = nullptr);

// The course of a rekey (Store::rekey), the same on every engine; the engine gives its steps.
// Each callback may throw std::exception (a storage error: 503).
struct RekeySteps {
  // Values of the three columns not on the active key.
  std::function<int64_t()> remaining;
  // The highest primary key of table t (0 messages, 1 deliveries, 2 attempts) when it starts:
  // rows written later are on the active key already.
  std::function<int64_t(int t)> last_key;
  // Re-encrypts table t's keys in (from, to] as one job of the writer: its counts and status in
  // `progress` terms; false when the store is closing (nothing done).
  struct Batch {
    Status status;
    int64_t done = 0, unreadable = 0;
  };
  std::function<bool(int t, int64_t from, int64_t to, Batch& out)> batch;
  // After the last range: the engine's cleanup of old bytes (WAL checkpoint, VACUUM).
  std::function<void()> after;
};
// 409 without a cipher, 503 read-only or on a storage error; `on_batch` after each range
// (false: stop there, progress.finished stays false) and once more at the end.
Status run_rekey(const AtRestCipher* cipher, bool read_only, const RekeyRequest& request,
                 RekeyProgress& progress, const std::function<bool(const RekeyProgress&)>& on_batch,
                 const RekeySteps& steps);

}  // namespace relais

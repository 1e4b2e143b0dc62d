#pragma once
// Cross-references between Relais and the systems its connectors write to: for a destination
// and a correlation key, the id the remote system gave the object Relais created there, and the
// version it last saw (EWS ItemId + ChangeKey, Graph event id + change key, ...). A create
// records one; updates and deletes look it up; reconciliation lists them by period.

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/store_access.h"

namespace relais {

struct CrossReference {
  std::string destination;  // the configured destination name
  std::string key;          // the message's correlation key
  std::string external_id;  // the remote object's id (never empty)
  std::string version;      // the remote object's version (may be empty when it has none)
  Millis updated_at = 0;    // when Relais last wrote this reference (set by the store)
  std::string message_id;   // the message whose delivery last wrote it

  bool operator==(const CrossReference&) const = default;
};

// Responsibility: keeps one cross-reference per (destination, key), durably.
// Thread-safety: every method may be called from any thread at the same time; implementations
// serialise internally. Several instances (for example relais and `relais calendar reconcile`)
// may work on the same store file at once.
// Ownership: the caller owns the store; it owns its database connection. Returned records are
// copies.
// Errors: database failures are thrown (Poco::Exception or std::exception); a caller that
// delivers should turn them into a retry.
class XrefStore {
 public:
  virtual ~XrefStore() = default;

  // The reference for `key` at `destination`, or nullopt when there is none.
  virtual std::optional<CrossReference> get(const std::string& destination,
                                            const std::string& key) = 0;
  // Inserts or replaces the reference for (ref.destination, ref.key). `updated_at` is taken from
  // the store's clock; the value in `ref` is ignored. Throws std::invalid_argument when
  // destination, key or external_id is empty.
  virtual void put(const CrossReference& ref) = 0;
  // Removes the reference; false when there was none.
  virtual bool remove(const std::string& destination, const std::string& key) = 0;
  // The references of `destination` with from <= updated_at < to, oldest first (ties by key), at
  // most `limit` of them.
  virtual std::vector<CrossReference> list(const std::string& destination, Millis from, Millis to,
                                           size_t limit) = 0;
  // How many references `destination` has.
  virtual size_t count(const std::string& destination) = 0;
};

}  // namespace relais

// The SMS records (one per delivery sent to a gateway: segments, cost estimate, gateway
// reference, delivery-report state) and the opt-out list, in the hub's SQLite store (tables
// of migration 5 in core/sqlite_store.cpp).
//
// Thread-safety: every method is safe to call from any thread (one connection per store,
// serialised by a mutex; each call is one statement, its own transaction). Ownership: owns
// its connection; shared (shared_ptr) by the SMS destinations of one process.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"

namespace Poco::Data {
class Session;
}

namespace relais::sms {

// The states of an SMS record, in the order they may move (a late report never moves a record
// back): submitting (the request is being made; after a crash or a timeout the result is
// unknown) | retry (the gateway answered that it did not take it) → accepted (gateway took it)
// / queued (gateway queued it for later) → smsc (the operator's SMSC took it) → delivered (to
// the phone) | failed (refused by the gateway, or reported not delivered).
struct SmsRecord {
  int64_t delivery_id = 0;
  std::string destination;
  std::string driver;
  std::string reference;    // our id for delivery reports ("d<delivery id>")
  std::string gateway_ref;  // the gateway's id, when it gives one
  std::string number_hash;  // optout_hash() of the recipient
  std::string encoding;     // GSM-7 | UCS-2
  int segments = 0;
  double cost_cents = 0;
  std::string state;
  int dlr_status = 0;  // the last delivery-report code (Kannel/OVH bit values)
  std::string detail;
  Millis created_at = 0;
  Millis updated_at = 0;
};

struct OptOut {
  std::string number_hash;
  Millis created_at = 0;
  std::string source;   // where the request came from ("mo:sms" …, "admin:alice")
  std::string keyword;  // the word that asked for it (STOP, ARRET …)
};

int state_rank(const std::string& state);

class SmsStore {
 public:
  // Opens the store file (which relais has migrated). Throws at start-up when it cannot.
  SmsStore(const std::string& path, const Clock& clock);
  ~SmsStore();

  // Creates or replaces the record of a delivery (a new attempt starts it again).
  bool put(const SmsRecord& r);
  std::optional<SmsRecord> by_delivery(int64_t delivery_id);
  // A delivery report: moves the record (found by our reference, else by the gateway's)
  // forward to `state`. Returns the record after the change, nullopt when unknown.
  std::optional<SmsRecord> report(const std::string& reference, const std::string& gateway_ref,
                                  const std::string& state, int dlr_status,
                                  const std::string& detail);

  bool add_optout(const OptOut& o);  // false when it was already there (kept as it was)
  // Throws std::runtime_error when the list cannot be read (the caller must not send).
  std::optional<OptOut> optout(const std::string& number_hash);
  std::vector<OptOut> optouts(int limit, const std::string& after_hash);
  bool remove_optout(const std::string& number_hash);

  // One store per file for the whole process (the SMS destinations share it).
  static std::shared_ptr<SmsStore> shared(const std::string& path, const Clock& clock);

 private:
  bool add_optout_locked(const OptOut& o);
  std::optional<OptOut> optout_locked(const std::string& number_hash);
  const Clock& clock_;
  std::mutex mu_;
  std::unique_ptr<Poco::Data::Session> s_;
};

}  // namespace relais::sms

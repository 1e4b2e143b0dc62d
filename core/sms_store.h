// The SMS connector's own records (one per delivery sent to a gateway: segments, cost estimate,
// gateway reference, delivery-report state) and the opt-out list: the interface, kept by the
// hub's store whatever its engine (store/sqlite/sqlite_sms.cpp; reached through
// StoreBackend::sms(), core/store_backend.h).
//
// Every change is one targeted, guarded write following the state order below, so the
// connector's own writes and the gateway's delivery reports can come in any order: a record
// never moves back, and created_at never changes.
//
// Thread-safety: every method of an implementation is safe to call from any thread (each write
// is one guarded statement, its own transaction). Ownership: the backend owns one store per
// process; the SMS destinations and the API share it (shared_ptr).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"

namespace relais::sms {

// The states of an SMS record, in the order they may move (a late report never moves a record
// back):
//   rank 0: submitting (the request is being made) | unknown (the request went out but its
//           answer never came — connection cut, timeout, crash: the gateway may have taken it)
//           | retry (the gateway answered that it did not take it, or could not be reached)
//   rank 1: queued (the gateway queued it for later)   rank 2: accepted (the gateway took it)
//   rank 3: smsc (the operator's SMSC took it)
//   rank 4: delivered (to the phone) | failed (refused by the gateway, or reported not delivered)
// A delivery report moves a record to a rank at least its own, never out of rank 4; the
// gateway's answer moves it out of submitting, else only to a higher rank. A new send starts
// (submitting) only from no record, retry, failed or unknown — decided by the connector.
// Each send has its reference: "d<delivery id>" for the first, "d<delivery id>.<n>" for the
// n-th; a report names the send it is about (see report()).
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
// Every state with its rank (the table state_rank() reads), for an engine that compares ranks
// in its own statements.
const std::map<std::string, int>& state_ranks();

class SmsStore {
 public:
  virtual ~SmsStore() = default;

  enum class Begin {
    Started,  // the record says submitting, with r.reference for this send
    Changed,  // the record was not in `from_state` any more (a report moved it): read it again
    Failed,   // the store cannot be written
  };
  // Starts a send: creates the record (from_state "": state submitting, created now) or moves
  // it from `from_state` (retry: same reference; failed or unknown: the next send's reference,
  // the gateway's id cleared) to submitting. Sets r.reference to the send's reference.
  virtual Begin begin_attempt(SmsRecord& r, const std::string& from_state) = 0;
  // The gateway's answer to the send `reference` (still the record's current send): state
  // accepted | queued | retry | failed, and the gateway's id when it gave one. False when the
  // send is no longer current or the store failed.
  virtual bool answer(int64_t delivery_id, const std::string& reference, const std::string& state,
                      const std::string& gateway_ref, const std::string& detail) = 0;
  // The send `reference` went out but its answer never came: submitting → unknown (the time of
  // this change, updated_at, starts the wait for a delivery report). False when the record was
  // not submitting with that reference (a report settled it first) or the store failed.
  virtual bool mark_unknown(int64_t delivery_id, const std::string& reference,
                            const std::string& detail) = 0;
  virtual std::optional<SmsRecord> by_delivery(int64_t delivery_id) = 0;
  // A delivery report: moves the record (found by the delivery id in our reference, else by
  // the gateway's id) forward to `state`. A report about an earlier send than the current one
  // counts only when it says delivered (the phone got that SMS). Returns the record after the
  // change, nullopt when unknown.
  virtual std::optional<SmsRecord> report(const std::string& reference,
                                          const std::string& gateway_ref, const std::string& state,
                                          int dlr_status, const std::string& detail) = 0;

  virtual bool add_optout(const OptOut& o) = 0;  // false when it was already there (kept)
  // Throws std::runtime_error when the list cannot be read (the caller must not send).
  virtual std::optional<OptOut> optout(const std::string& number_hash) = 0;
  // The entry of a number, by its keyed hash or its legacy (unkeyed SHA-256) hash; a legacy
  // entry found is rewritten under the keyed hash in the same step (the migration of the list,
  // docs/security.md). Throws like optout().
  virtual std::optional<OptOut> find_optout(const std::string& keyed_hash,
                                            const std::string& legacy_hash) = 0;
  virtual std::vector<OptOut> optouts(int limit, const std::string& after_hash) = 0;
  virtual bool remove_optout(const std::string& number_hash) = 0;

  // Test seam: `f(op, delivery_id)` runs at the start of begin_attempt / answer / mark_unknown
  // (op is the method's name), before the store's lock is taken, on the writing thread: a test
  // injects a delivery report before, during or after the connector saves its own state.
  void set_before_write_for_test(std::function<void(const std::string&, int64_t)> f);

 protected:
  // Implementations call it first in begin_attempt, answer and mark_unknown.
  void before_write(const char* op, int64_t delivery_id);

 private:
  std::mutex hook_mu_;
  std::function<void(const std::string&, int64_t)> before_write_;
};

// The reference of a send: "d42" (n = 1), "d42.2" …
std::string send_reference(int64_t delivery_id, int n);
// Reads a send reference; false when it is not one.
bool parse_send_reference(const std::string& reference, int64_t& delivery_id, int& n);

}  // namespace relais::sms

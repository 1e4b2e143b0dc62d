#pragma once
// Appariement: the pairing of a local person (a CMS76 individu, key "individu:58123") with its
// record at a partner (Genesis, later Capdémat). A connector that needs the partner's id of a
// person looks the pairing up; when there is none it searches the partner, pairs at once when
// the configuration allows it (one candidate above the score), or opens a pairing that waits
// for a person's choice (through a message from CMS76 or the console's "Appariements à
// traiter"), and defers its delivery until then. When the choice is made, every delivery that
// waited for it is woken (Hub: Dispatcher::wake). A pairing undone (audited) makes the next
// messages of the person wait again.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/at_rest.h"
#include "core/clock.h"
#include "core/status.h"

namespace relais {

// A record of the partner that may be the person.
struct PairingCandidate {
  std::string external_id;  // the partner's id
  double score = 0;         // 0..1, how well it matches (the connector's measure)
  // What a person needs to choose (names, birth date, commune…): personal data, encrypted at
  // rest with the store's key, masked by the API for roles that do not see personal data.
  nlohmann::json summary = nlohmann::json::object();
};

enum class PairingState {
  Waiting,  // candidates (possibly none) proposed, waiting for a person's choice
  Paired,   // external_id is the partner's record of the person
  Undone,   // was paired, then undone: waits for a new pairing
};
const char* pairing_state_name(PairingState s);  // "en_attente", "apparie", "defait"

// A delivery deferred until the person is paired: woken when the pairing is made.
struct PairingWaiter {
  std::string destination;
  std::string key;  // its correlation key
  bool operator==(const PairingWaiter&) const = default;
};

struct Pairing {
  int64_t id = 0;
  std::string partner;  // the partner's name as configured (e.g. the genesis profile name)
  std::string person;   // the local person's key, e.g. individu:58123
  PairingState state = PairingState::Waiting;
  std::string external_id;  // Paired: the partner's id
  std::vector<PairingCandidate> candidates;
  std::vector<PairingWaiter> waiters;  // Waiting / Undone: deliveries to wake when paired
  std::string how;                     // Paired: "auto", "message", "console"
  std::string by;                      // who paired or undid it (user, token, "auto")
  std::string reason;                  // why it was undone / a note on the choice
  Millis created_at = 0;
  Millis updated_at = 0;
};

struct PairingFilter {
  std::string partner;  // "" = every partner
  std::optional<PairingState> state;
  int64_t before_id = 0;  // cursor: only pairings with a smaller id (0 = newest first)
  int limit = 50;
};

// Responsibility: keeps one pairing per (partner, person), durably, with its candidates and the
// deliveries waiting for it.
// Thread-safety: every method may be called from any thread at the same time (connector worker
// slots, API threads); writes are serialised by the implementation, each one transaction.
// Ownership: the hub owns it and hands a pointer to connectors (ConnectorContext::pairings) and
// to the API; it owns its database connection. Returned records are copies.
// Errors: storage failures are Status failures (503), never exceptions, on every method but the
// opening function.
class PairingStore {
 public:
  virtual ~PairingStore() = default;

  // The pairing of `person` at `partner`, or nullopt when there has never been one.
  virtual std::optional<Pairing> get(const std::string& partner, const std::string& person,
                                     Status& status) = 0;
  // The pairing by id (for the API), or nullopt.
  virtual std::optional<Pairing> by_id(int64_t id, Status& status) = 0;
  // Opens the pairing in Waiting with these candidates (replacing the candidates of a pairing
  // already waiting or undone; 409 when the person is already Paired) and adds `waiter` (when
  // its destination is not empty) to the deliveries to wake. Returns the pairing.
  virtual Status propose(const std::string& partner, const std::string& person,
                         const std::vector<PairingCandidate>& candidates,
                         const PairingWaiter& waiter, Pairing& out) = 0;
  // Adds a delivery to wake to a pairing that is not Paired (creating it in Waiting with no
  // candidates if there is none). 409 when it is Paired (the caller can go on).
  virtual Status wait(const std::string& partner, const std::string& person,
                      const PairingWaiter& waiter) = 0;
  // Pairs the person with `external_id` (any id: the choice may be a record the search did not
  // propose). `how`: auto | message | console. Returns in `woken` the deliveries that waited
  // (the list is cleared). 409 when it is already paired to another id (undo first); pairing
  // again to the same id is a success with nothing to wake.
  virtual Status pair(const std::string& partner, const std::string& person,
                      const std::string& external_id, const std::string& how, const std::string& by,
                      std::vector<PairingWaiter>& woken) = 0;
  // Undoes a pairing (state Undone, external id kept in the history of the audit, not here);
  // 404 when there is none, 409 when it is not Paired.
  virtual Status undo(const std::string& partner, const std::string& person, const std::string& by,
                      const std::string& reason) = 0;
  // Pairings, newest first.
  virtual std::vector<Pairing> list(const PairingFilter& filter, Status& status) = 0;
  // How many pairings are in `state` (every partner): the dashboard's count.
  virtual int64_t count(PairingState state, Status& status) = 0;
};

}  // namespace relais

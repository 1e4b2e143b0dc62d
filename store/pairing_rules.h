#pragma once
// The rules of core/pairing_store.h, the same on every engine: when a pairing may be proposed,
// waited for, paired or undone, which deliveries are woken, how the candidates are sealed at rest
// (AES-GCM, AAD "pairing:<partner>:<person>") and the waiters kept as JSON, and how a storage
// failure becomes a 503. An engine (store/sqlite/sqlite_pairings.cpp,
// store/postgresql/pg_pairings.cpp) gives only its rows and its transactions.
//
// Thread-safety: as PairingStore; the engine serialises in reading() and changing(). Ownership:
// the engine's connection is its own; the cipher is shared.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/pairing_store.h"

namespace relais {

// A pairing as stored: its columns, the candidates (JSON, sealed when there is a cipher) and the
// waiters (JSON) as text.
struct PairingRow {
  Pairing pairing;  // every field but candidates and waiters
  std::string state;
  std::string candidates;
  std::string waiters;
};

// PairingState from its stored name (pairing_state_name); unknown names read as Waiting.
PairingState pairing_state_from(const std::string& name);

class PairingRules : public PairingStore {
 public:
  explicit PairingRules(std::shared_ptr<const AtRestCipher> cipher) : cipher_(std::move(cipher)) {}

  std::optional<Pairing> get(const std::string& partner, const std::string& person,
                             Status& status) final;
  std::optional<Pairing> by_id(int64_t id, Status& status) final;
  Status propose(const std::string& partner, const std::string& person,
                 const std::vector<PairingCandidate>& candidates, const PairingWaiter& waiter,
                 Pairing& out) final;
  Status wait(const std::string& partner, const std::string& person,
              const PairingWaiter& waiter) final;
  Status pair(const std::string& partner, const std::string& person, const std::string& external_id,
              const std::string& how, const std::string& by,
              std::vector<PairingWaiter>& woken) final;
  Status undo(const std::string& partner, const std::string& person, const std::string& by,
              const std::string& reason) final;
  std::vector<Pairing> list(const PairingFilter& filter, Status& status) final;
  int64_t count(PairingState state, Status& status) final;

 protected:
  // The engine's steps. Each may throw std::exception on a storage failure.
  // Runs reads (one connection, serialised as the engine needs).
  virtual void reading(const std::function<void()>& fn) = 0;
  // Runs `fn` in one transaction that no other writer of (partner, person) — on any node —
  // interleaves with; commits when it returns success, rolls back else.
  virtual Status changing(const std::string& partner, const std::string& person,
                          const std::function<Status()>& fn) = 0;
  // Inside reading() or changing():
  virtual std::optional<PairingRow> find(const std::string& partner, const std::string& person) = 0;
  virtual std::optional<PairingRow> find_id(int64_t id) = 0;
  // Inserts (exists false) or updates the row of (row.pairing.partner, row.pairing.person), with
  // updated_at (and created_at on insert) the engine clock's now.
  virtual void write(const PairingRow& row, bool exists) = 0;
  // Newest first, only the filters given; `limit` already clamped to 1..500 and `before` set.
  virtual std::vector<PairingRow> select(const PairingFilter& filter) = 0;
  virtual int64_t count_rows(const std::string& state) = 0;

 private:
  std::optional<Pairing> load(const std::string& partner, const std::string& person);
  Status change(const std::string& partner, const std::string& person,
                const std::function<Status()>& fn);
  template <class T>
  T guarded(Status& status, const std::function<T()>& fn);
  void store(const Pairing& p, bool exists);
  Pairing opened(PairingRow row) const;

  std::shared_ptr<const AtRestCipher> cipher_;
};

}  // namespace relais

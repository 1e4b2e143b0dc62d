// PairingStore on the SQLite store file (table created by migration 12 of sqlite_store.cpp).

#include <Poco/Data/RecordSet.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>

#include <algorithm>
#include <limits>
#include <mutex>

#include "core/log.h"
#include "core/pairing_store.h"
#include "store/sqlite/sqlite_backend.h"
#include "store/sqlite/sqlite_session.h"

using namespace Poco::Data::Keywords;
using Poco::Data::RecordSet;
using Poco::Data::Session;
using Poco::Data::Statement;

namespace relais {

const char* pairing_state_name(PairingState s) {
  switch (s) {
    case PairingState::Waiting:
      return "en_attente";
    case PairingState::Paired:
      return "apparie";
    case PairingState::Undone:
      return "defait";
  }
  return "en_attente";
}

namespace {

PairingState state_from(const std::string& s) {
  if (s == "apparie") return PairingState::Paired;
  if (s == "defait") return PairingState::Undone;
  return PairingState::Waiting;
}

constexpr const char* kColumns =
    "id, partner, person, state, external_id, candidates, waiters, how, actor, reason, created_at, "
    "updated_at";

nlohmann::json waiters_json(const std::vector<PairingWaiter>& ws) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& w : ws) a.push_back({{"destination", w.destination}, {"key", w.key}});
  return a;
}

// One connection, serialised by a mutex; each change is one IMMEDIATE transaction (read, then
// write), so two workers pairing the same person at once never lose a waiter.
class SqlitePairingStore final : public PairingStore {
 public:
  SqlitePairingStore(const std::string& path, const Clock& clock,
                     std::shared_ptr<const AtRestCipher> cipher)
      : clock_(clock),
        cipher_(std::move(cipher)),
        s_(open_store_session(path, "pairings", "pairings", StoreAccess::ReadWrite)) {}

  std::optional<Pairing> get(const std::string& partner, const std::string& person,
                             Status& status) override {
    return guarded(status, [&]() { return find(partner, person); });
  }

  std::optional<Pairing> by_id(int64_t id, Status& status) override {
    return guarded(status, [&]() -> std::optional<Pairing> {
      Statement st(*s_);
      st << "SELECT " << kColumns << " FROM pairings WHERE id = ?", use(id), now;
      RecordSet rs(st);
      if (rs.rowCount() == 0) return std::nullopt;
      return row(rs, 0);
    });
  }

  Status propose(const std::string& partner, const std::string& person,
                 const std::vector<PairingCandidate>& candidates, const PairingWaiter& waiter,
                 Pairing& out) override {
    return change([&]() -> Status {
      auto p = find(partner, person);
      if (p && p->state == PairingState::Paired) {
        return Status::failure(409, "déjà apparié", "la personne est déjà appariée");
      }
      Pairing n = p ? *p : Pairing{};
      n.partner = partner;
      n.person = person;
      n.state = PairingState::Waiting;
      n.candidates = candidates;
      add_waiter(n, waiter);
      write(n, p.has_value());
      out = *find(partner, person);
      return Status::success();
    });
  }

  Status wait(const std::string& partner, const std::string& person,
              const PairingWaiter& waiter) override {
    return change([&]() -> Status {
      auto p = find(partner, person);
      if (p && p->state == PairingState::Paired) {
        return Status::failure(409, "déjà apparié", "la personne est déjà appariée");
      }
      Pairing n = p ? *p : Pairing{};
      n.partner = partner;
      n.person = person;
      if (!p) n.state = PairingState::Waiting;
      add_waiter(n, waiter);
      write(n, p.has_value());
      return Status::success();
    });
  }

  Status pair(const std::string& partner, const std::string& person, const std::string& external_id,
              const std::string& how, const std::string& by,
              std::vector<PairingWaiter>& woken) override {
    woken.clear();
    if (external_id.empty()) {
      return Status::failure(400, "identifiant manquant", "l'identifiant du partenaire est vide");
    }
    return change([&]() -> Status {
      auto p = find(partner, person);
      if (p && p->state == PairingState::Paired) {
        if (p->external_id == external_id) return Status::success();
        return Status::failure(409, "déjà apparié",
                               "la personne est appariée à une autre fiche : défaire "
                               "l'appariement d'abord");
      }
      Pairing n = p ? *p : Pairing{};
      n.partner = partner;
      n.person = person;
      n.state = PairingState::Paired;
      n.external_id = external_id;
      n.how = how;
      n.by = by;
      n.reason.clear();
      woken = n.waiters;
      n.waiters.clear();
      write(n, p.has_value());
      return Status::success();
    });
  }

  Status undo(const std::string& partner, const std::string& person, const std::string& by,
              const std::string& reason) override {
    return change([&]() -> Status {
      auto p = find(partner, person);
      if (!p) return Status::failure(404, "introuvable", "aucun appariement pour cette personne");
      if (p->state != PairingState::Paired) {
        return Status::failure(409, "non apparié", "la personne n'est pas appariée");
      }
      Pairing n = *p;
      n.state = PairingState::Undone;
      n.external_id.clear();
      n.candidates.clear();
      n.by = by;
      n.reason = reason;
      write(n, true);
      return Status::success();
    });
  }

  std::vector<Pairing> list(const PairingFilter& f, Status& status) override {
    auto r = guarded(status, [&]() -> std::optional<std::vector<Pairing>> {
      Statement st(*s_);
      std::string partner = f.partner;
      std::string state = f.state ? pairing_state_name(*f.state) : "";
      int64_t before = f.before_id > 0 ? f.before_id : std::numeric_limits<int64_t>::max();
      int64_t limit = std::clamp(f.limit, 1, 500);
      // Only the filters given are in the statement: `(? = '' OR state = ?)` would make SQLite
      // walk every pairing backwards (the dashboard asks for the waiting ones every 30 s); with
      // `state = ?` it seeks pairings_state(state, id).
      st << "SELECT " << kColumns << " FROM pairings WHERE id < ?", use(before);
      if (!state.empty()) st << " AND state = ?", use(state);
      if (!partner.empty()) st << " AND partner = ?", use(partner);
      st << " ORDER BY id DESC LIMIT ?", use(limit), now;
      RecordSet rs(st);
      std::vector<Pairing> out;
      for (size_t i = 0; i < rs.rowCount(); ++i) out.push_back(row(rs, i));
      return out;
    });
    return r ? *r : std::vector<Pairing>{};
  }

  int64_t count(PairingState state, Status& status) override {
    auto r = guarded(status, [&]() -> std::optional<int64_t> {
      std::string st = pairing_state_name(state);
      int64_t n = 0;
      *s_ << "SELECT COUNT(*) FROM pairings WHERE state = ?", use(st), into(n), now;
      return n;
    });
    return r ? *r : 0;
  }

 private:
  // Runs a read under the mutex; a storage failure becomes a 503 status.
  template <class Fn>
  auto guarded(Status& status, Fn fn) -> decltype(fn()) {
    std::lock_guard<std::mutex> lock(mu_);
    status = Status::success();
    try {
      return fn();
    } catch (const std::exception& e) {
      log_error("pairings", std::string("read failed: ") + e.what());
      status = Status::failure(503, "stockage indisponible",
                               "les appariements ne peuvent pas "
                               "être lus pour le moment");
      return {};
    }
  }

  // Runs a change in one IMMEDIATE transaction under the mutex.
  Status change(const std::function<Status()>& fn) {
    std::lock_guard<std::mutex> lock(mu_);
    try {
      *s_ << "BEGIN IMMEDIATE", now;
      Status st = fn();
      *s_ << (st.ok ? "COMMIT" : "ROLLBACK"), now;
      return st;
    } catch (const std::exception& e) {
      try {
        *s_ << "ROLLBACK", now;
      } catch (...) {
      }
      log_error("pairings", std::string("write failed: ") + e.what());
      return Status::failure(503, "stockage indisponible",
                             "l'appariement n'a pas pu être enregistré : réessayer");
    }
  }

  static void add_waiter(Pairing& p, const PairingWaiter& w) {
    if (w.destination.empty()) return;
    if (std::find(p.waiters.begin(), p.waiters.end(), w) == p.waiters.end()) {
      p.waiters.push_back(w);
    }
  }

  std::string aad(const std::string& partner, const std::string& person) const {
    return "pairing:" + partner + ":" + person;
  }

  std::optional<Pairing> find(const std::string& partner, const std::string& person) {
    Statement st(*s_);
    std::string a = partner, b = person;
    st << "SELECT " << kColumns << " FROM pairings WHERE partner = ? AND person = ?", use(a),
        use(b), now;
    RecordSet rs(st);
    if (rs.rowCount() == 0) return std::nullopt;
    return row(rs, 0);
  }

  void write(Pairing& p, bool exists) {
    nlohmann::json cands = nlohmann::json::array();
    for (const auto& c : p.candidates) {
      cands.push_back({{"id", c.external_id}, {"score", c.score}, {"summary", c.summary}});
    }
    std::string stored = cands.dump();
    if (cipher_) {
      std::string sealed;
      if (!cipher_->seal(aad(p.partner, p.person), stored, sealed)) {
        throw std::runtime_error("cannot encrypt the candidates (OpenSSL)");
      }
      stored = std::move(sealed);
    }
    std::string state = pairing_state_name(p.state), waiters = waiters_json(p.waiters).dump();
    int64_t at = clock_.now_ms();
    if (exists) {
      *s_ << "UPDATE pairings SET state = ?, external_id = ?, candidates = ?, waiters = ?, "
             "how = ?, actor = ?, reason = ?, updated_at = ? WHERE partner = ? AND person = ?",
          use(state), use(p.external_id), use(stored), use(waiters), use(p.how), use(p.by),
          use(p.reason), use(at), use(p.partner), use(p.person), now;
    } else {
      *s_ << "INSERT INTO pairings(partner, person, state, external_id, candidates, waiters, "
             "how, actor, reason, created_at, updated_at) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
          use(p.partner), use(p.person), use(state), use(p.external_id), use(stored), use(waiters),
          use(p.how), use(p.by), use(p.reason), use(at), use(at), now;
    }
  }

  Pairing row(RecordSet& rs, size_t i) const {
    Pairing p;
    p.id = rs.value(0, i).convert<int64_t>();
    p.partner = rs.value(1, i).convert<std::string>();
    p.person = rs.value(2, i).convert<std::string>();
    p.state = state_from(rs.value(3, i).convert<std::string>());
    p.external_id = rs.value(4, i).convert<std::string>();
    std::string cands = rs.value(5, i).convert<std::string>();
    if (AtRestCipher::is_sealed(cands)) {
      std::string plain;
      Status st = AtRestCipher::open_with(cipher_.get(), aad(p.partner, p.person), cands, plain);
      cands = st.ok ? plain : "[]";
      if (!st.ok)
        log_error("pairings", "candidates of pairing " + std::to_string(p.id) +
                                  " cannot be decrypted: " + st.error);
    }
    auto cj = nlohmann::json::parse(cands, nullptr, false);
    if (cj.is_array()) {
      for (const auto& c : cj) {
        PairingCandidate pc;
        pc.external_id = c.value("id", "");
        pc.score = c.value("score", 0.0);
        if (c.contains("summary")) pc.summary = c["summary"];
        p.candidates.push_back(std::move(pc));
      }
    }
    auto wj = nlohmann::json::parse(rs.value(6, i).convert<std::string>(), nullptr, false);
    if (wj.is_array()) {
      for (const auto& w : wj) {
        p.waiters.push_back(PairingWaiter{w.value("destination", ""), w.value("key", "")});
      }
    }
    p.how = rs.value(7, i).convert<std::string>();
    p.by = rs.value(8, i).convert<std::string>();
    p.reason = rs.value(9, i).convert<std::string>();
    p.created_at = rs.value(10, i).convert<int64_t>();
    p.updated_at = rs.value(11, i).convert<int64_t>();
    return p;
  }

  const Clock& clock_;
  std::shared_ptr<const AtRestCipher> cipher_;
  std::mutex mu_;
  std::unique_ptr<Session> s_;
};

}  // namespace

std::unique_ptr<PairingStore> open_sqlite_pairing_store(
    const std::string& path, const Clock& clock, std::shared_ptr<const AtRestCipher> cipher) {
  return std::make_unique<SqlitePairingStore>(path, clock, std::move(cipher));
}

}  // namespace relais

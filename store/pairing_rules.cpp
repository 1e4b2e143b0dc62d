// PairingRules (store/pairing_rules.h): the pairing store's rules over an engine's rows.

#include "store/pairing_rules.h"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "core/log.h"

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

PairingState pairing_state_from(const std::string& s) {
  if (s == "apparie") return PairingState::Paired;
  if (s == "defait") return PairingState::Undone;
  return PairingState::Waiting;
}

namespace {

std::string aad(const std::string& partner, const std::string& person) {
  return "pairing:" + partner + ":" + person;
}

Status already_paired() {
  return Status::failure(409, "déjà apparié", "la personne est déjà appariée");
}

// The pairing a change writes: the stored one, or a new one of (partner, person).
Pairing starting_from(const std::optional<Pairing>& p, const std::string& partner,
                      const std::string& person) {
  Pairing n = p ? *p : Pairing{};
  n.partner = partner;
  n.person = person;
  return n;
}

void add_waiter(Pairing& p, const PairingWaiter& w) {
  if (w.destination.empty()) return;
  if (std::find(p.waiters.begin(), p.waiters.end(), w) == p.waiters.end()) {
    p.waiters.push_back(w);
  }
}

}  // namespace

template <class T>
T PairingRules::guarded(Status& status, const std::function<T()>& fn) {
  status = Status::success();
  T out{};
  try {
    reading([&]() { out = fn(); });
  } catch (const std::exception& e) {
    log_error("pairings", std::string("read failed: ") + e.what());
    status = Status::failure(503, "stockage indisponible",
                             "les appariements ne peuvent pas être lus pour le moment");
    return T{};
  }
  return out;
}

Status PairingRules::change(const std::string& partner, const std::string& person,
                            const std::function<Status()>& fn) {
  try {
    return changing(partner, person, fn);
  } catch (const std::exception& e) {
    log_error("pairings", std::string("write failed: ") + e.what());
    return Status::failure(503, "stockage indisponible",
                           "l'appariement n'a pas pu être enregistré : réessayer");
  }
}

std::optional<Pairing> PairingRules::load(const std::string& partner, const std::string& person) {
  auto row = find(partner, person);
  if (!row) return std::nullopt;
  return opened(std::move(*row));
}

std::optional<Pairing> PairingRules::get(const std::string& partner, const std::string& person,
                                         Status& status) {
  return guarded<std::optional<Pairing>>(status, [&]() { return load(partner, person); });
}

std::optional<Pairing> PairingRules::by_id(int64_t id, Status& status) {
  return guarded<std::optional<Pairing>>(status, [&]() -> std::optional<Pairing> {
    auto row = find_id(id);
    if (!row) return std::nullopt;
    return opened(std::move(*row));
  });
}

Status PairingRules::propose(const std::string& partner, const std::string& person,
                             const std::vector<PairingCandidate>& candidates,
                             const PairingWaiter& waiter, Pairing& out) {
  return change(partner, person, [&]() -> Status {
    auto p = load(partner, person);
    if (p && p->state == PairingState::Paired) return already_paired();
    Pairing n = starting_from(p, partner, person);
    n.state = PairingState::Waiting;
    n.candidates = candidates;
    add_waiter(n, waiter);
    store(n, p.has_value());
    out = *load(partner, person);
    return Status::success();
  });
}

Status PairingRules::wait(const std::string& partner, const std::string& person,
                          const PairingWaiter& waiter) {
  return change(partner, person, [&]() -> Status {
    auto p = load(partner, person);
    if (p && p->state == PairingState::Paired) return already_paired();
    Pairing n = starting_from(p, partner, person);
    if (!p) n.state = PairingState::Waiting;
    add_waiter(n, waiter);
    store(n, p.has_value());
    return Status::success();
  });
}

Status PairingRules::pair(const std::string& partner, const std::string& person,
                          const std::string& external_id, const std::string& how,
                          const std::string& by, std::vector<PairingWaiter>& woken) {
  woken.clear();
  if (external_id.empty()) {
    return Status::failure(400, "identifiant manquant", "l'identifiant du partenaire est vide");
  }
  Status done = change(partner, person, [&]() -> Status {
    auto p = load(partner, person);
    if (p && p->state == PairingState::Paired) {
      if (p->external_id == external_id) return Status::success();
      return Status::failure(409, "déjà apparié",
                             "la personne est appariée à une autre fiche : défaire "
                             "l'appariement d'abord");
    }
    Pairing n = starting_from(p, partner, person);
    n.state = PairingState::Paired;
    n.external_id = external_id;
    n.how = how;
    n.by = by;
    n.reason.clear();
    std::vector<PairingWaiter> waited = n.waiters;
    n.waiters.clear();
    store(n, p.has_value());
    woken = std::move(waited);
    return Status::success();
  });
  if (!done.ok) woken.clear();  // not committed: nobody was woken
  return done;
}

Status PairingRules::undo(const std::string& partner, const std::string& person,
                          const std::string& by, const std::string& reason) {
  return change(partner, person, [&]() -> Status {
    auto p = load(partner, person);
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
    store(n, true);
    return Status::success();
  });
}

std::vector<Pairing> PairingRules::list(const PairingFilter& f, Status& status) {
  return guarded<std::vector<Pairing>>(status, [&]() {
    PairingFilter g = f;
    if (g.before_id <= 0) g.before_id = std::numeric_limits<int64_t>::max();
    g.limit = std::clamp(f.limit, 1, 500);
    std::vector<Pairing> out;
    for (auto& row : select(g)) out.push_back(opened(std::move(row)));
    return out;
  });
}

int64_t PairingRules::count(PairingState state, Status& status) {
  return guarded<int64_t>(status, [&]() { return count_rows(pairing_state_name(state)); });
}

void PairingRules::store(const Pairing& p, bool exists) {
  nlohmann::json cands = nlohmann::json::array();
  for (const auto& c : p.candidates) {
    cands.push_back({{"id", c.external_id}, {"score", c.score}, {"summary", c.summary}});
  }
  PairingRow row;
  row.pairing = p;
  row.state = pairing_state_name(p.state);
  row.candidates = cands.dump();
  if (cipher_) {
    std::string sealed;
    if (!cipher_->seal(aad(p.partner, p.person), row.candidates, sealed)) {
      throw std::runtime_error("cannot encrypt the candidates (OpenSSL)");
    }
    row.candidates = std::move(sealed);
  }
  nlohmann::json ws = nlohmann::json::array();
  for (const auto& w : p.waiters) ws.push_back({{"destination", w.destination}, {"key", w.key}});
  row.waiters = ws.dump();
  write(row, exists);
}

Pairing PairingRules::opened(PairingRow row) const {
  Pairing p = std::move(row.pairing);
  p.state = pairing_state_from(row.state);
  p.candidates.clear();
  p.waiters.clear();
  std::string cands = std::move(row.candidates);
  if (AtRestCipher::is_sealed(cands)) {
    std::string plain;
    Status st = AtRestCipher::open_with(cipher_.get(), aad(p.partner, p.person), cands, plain);
    cands = st.ok ? plain : "[]";
    if (!st.ok) {
      log_error("pairings", "candidates of pairing " + std::to_string(p.id) +
                                " cannot be decrypted: " + st.error);
    }
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
  auto wj = nlohmann::json::parse(row.waiters, nullptr, false);
  if (wj.is_array()) {
    for (const auto& w : wj) {
      p.waiters.push_back(PairingWaiter{w.value("destination", ""), w.value("key", "")});
    }
  }
  return p;
}

}  // namespace relais

// PairingStore on the SQLite store file (table created by migration 12 of sqlite_store.cpp); the
// rules are store/pairing_rules.h's.

#include <Poco/Data/RecordSet.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>

#include <mutex>

#include "store/pairing_rules.h"
#include "store/sqlite/sqlite_backend.h"
#include "store/sqlite/sqlite_session.h"

using namespace Poco::Data::Keywords;
using Poco::Data::RecordSet;
using Poco::Data::Session;
using Poco::Data::Statement;

namespace relais {
namespace {

constexpr const char* kColumns =
    "id, partner, person, state, external_id, candidates, waiters, how, actor, reason, created_at, "
    "updated_at";

// One connection, serialised by a mutex; each change is one IMMEDIATE transaction (read, then
// write), so two workers pairing the same person at once never lose a waiter.
class SqlitePairingStore final : public PairingRules {
 public:
  SqlitePairingStore(const std::string& path, const Clock& clock,
                     std::shared_ptr<const AtRestCipher> cipher)
      : PairingRules(std::move(cipher)),
        clock_(clock),
        s_(open_store_session(path, "pairings", "pairings", StoreAccess::ReadWrite)) {}

 protected:
  void reading(const std::function<void()>& fn) override {
    std::lock_guard<std::mutex> lock(mu_);
    fn();
  }

  Status changing(const std::string&, const std::string&,
                  const std::function<Status()>& fn) override {
    std::lock_guard<std::mutex> lock(mu_);
    try {
      *s_ << "BEGIN IMMEDIATE", now;
      Status st = fn();
      *s_ << (st.ok ? "COMMIT" : "ROLLBACK"), now;
      return st;
    } catch (...) {
      try {
        *s_ << "ROLLBACK", now;
      } catch (...) {
      }
      throw;
    }
  }

  std::optional<PairingRow> find(const std::string& partner, const std::string& person) override {
    Statement st(*s_);
    std::string a = partner, b = person;
    st << "SELECT " << kColumns << " FROM pairings WHERE partner = ? AND person = ?", use(a),
        use(b), now;
    return first(st);
  }

  std::optional<PairingRow> find_id(int64_t id) override {
    Statement st(*s_);
    st << "SELECT " << kColumns << " FROM pairings WHERE id = ?", use(id), now;
    return first(st);
  }

  void write(const PairingRow& row, bool exists) override {
    const Pairing& p = row.pairing;
    std::string state = row.state, stored = row.candidates, waiters = row.waiters;
    std::string partner = p.partner, person = p.person, ext = p.external_id, how = p.how, by = p.by,
                reason = p.reason;
    int64_t at = clock_.now_ms();
    if (exists) {
      *s_ << "UPDATE pairings SET state = ?, external_id = ?, candidates = ?, waiters = ?, "
             "how = ?, actor = ?, reason = ?, updated_at = ? WHERE partner = ? AND person = ?",
          use(state), use(ext), use(stored), use(waiters), use(how), use(by), use(reason), use(at),
          use(partner), use(person), now;
    } else {
      *s_ << "INSERT INTO pairings(partner, person, state, external_id, candidates, waiters, "
             "how, actor, reason, created_at, updated_at) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
          use(partner), use(person), use(state), use(ext), use(stored), use(waiters), use(how),
          use(by), use(reason), use(at), use(at), now;
    }
  }

  std::vector<PairingRow> select(const PairingFilter& f) override {
    Statement st(*s_);
    std::string partner = f.partner;
    std::string state = f.state ? pairing_state_name(*f.state) : "";
    int64_t before = f.before_id;
    int64_t limit = f.limit;
    // Only the filters given are in the statement: `(? = '' OR state = ?)` would make SQLite
    // walk every pairing backwards (the dashboard asks for the waiting ones every 30 s); with
    // `state = ?` it seeks pairings_state(state, id).
    st << "SELECT " << kColumns << " FROM pairings WHERE id < ?", use(before);
    if (!state.empty()) st << " AND state = ?", use(state);
    if (!partner.empty()) st << " AND partner = ?", use(partner);
    st << " ORDER BY id DESC LIMIT ?", use(limit), now;
    RecordSet rs(st);
    std::vector<PairingRow> out;
    for (size_t i = 0; i < rs.rowCount(); ++i) out.push_back(row(rs, i));
    return out;
  }

  int64_t count_rows(const std::string& state) override {
    std::string st = state;
    int64_t n = 0;
    *s_ << "SELECT COUNT(*) FROM pairings WHERE state = ?", use(st), into(n), now;
    return n;
  }

 private:
  static std::optional<PairingRow> first(Statement& st) {
    RecordSet rs(st);
    if (rs.rowCount() == 0) return std::nullopt;
    return row(rs, 0);
  }

  static PairingRow row(RecordSet& rs, size_t i) {
    PairingRow r;
    r.pairing.id = rs.value(0, i).convert<int64_t>();
    r.pairing.partner = rs.value(1, i).convert<std::string>();
    r.pairing.person = rs.value(2, i).convert<std::string>();
    r.state = rs.value(3, i).convert<std::string>();
    r.pairing.external_id = rs.value(4, i).convert<std::string>();
    r.candidates = rs.value(5, i).convert<std::string>();
    r.waiters = rs.value(6, i).convert<std::string>();
    r.pairing.how = rs.value(7, i).convert<std::string>();
    r.pairing.by = rs.value(8, i).convert<std::string>();
    r.pairing.reason = rs.value(9, i).convert<std::string>();
    r.pairing.created_at = rs.value(10, i).convert<int64_t>();
    r.pairing.updated_at = rs.value(11, i).convert<int64_t>();
    return r;
  }

  const Clock& clock_;
  std::mutex mu_;
  std::unique_ptr<Session> s_;
};

}  // namespace

std::unique_ptr<PairingStore> open_sqlite_pairing_store(
    const std::string& path, const Clock& clock, std::shared_ptr<const AtRestCipher> cipher) {
  return std::make_unique<SqlitePairingStore>(path, clock, std::move(cipher));
}

}  // namespace relais

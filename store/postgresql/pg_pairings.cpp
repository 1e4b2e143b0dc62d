// PairingStore on PostgreSQL (table of migration 102, store/postgresql/pg_tables.cpp); the rules
// are store/pairing_rules.h's. One PgSession (pairings are few and slow: a person's choice). A
// change is one transaction that first takes an advisory lock on (partner, person): two nodes
// pairing the same person at once take turns, so neither loses a waiter nor trips on the other's
// insert.

#include "store/pairing_rules.h"
#include "store/postgresql/pg_session.h"
#include "store/postgresql/pg_stores.h"

namespace relais {
namespace {

#define PAIRING_COLUMNS                                                                \
  "id, partner, person, state, external_id, candidates, waiters, how, actor, reason, " \
  "created_at, updated_at"

// The advisory locks of the changes: one per (partner, person).
constexpr int kPairingLocks = 102;
constexpr const char* kFind =
    "SELECT " PAIRING_COLUMNS " FROM pairings WHERE partner = $1 AND person = $2";
constexpr const char* kFindId = "SELECT " PAIRING_COLUMNS " FROM pairings WHERE id = $1";
constexpr const char* kUpdate =
    "UPDATE pairings SET state = $1, external_id = $2, candidates = $3, waiters = $4, how = $5, "
    "actor = $6, reason = $7, updated_at = $8 WHERE partner = $9 AND person = $10";
constexpr const char* kInsert =
    "INSERT INTO pairings(state, external_id, candidates, waiters, how, actor, reason, "
    "updated_at, partner, person, created_at) VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $8)";
constexpr const char* kCount = "SELECT COUNT(*) FROM pairings WHERE state = $1";

class PgPairingStore final : public PairingRules {
 public:
  PgPairingStore(const std::string& uri, const std::string& password, const Clock& clock,
                 std::shared_ptr<const AtRestCipher> cipher)
      : PairingRules(std::move(cipher)), clock_(clock), s_(uri, password, "PostgreSQL pairings") {}

 protected:
  void reading(const std::function<void()>& fn) override { s_.locked(fn); }

  Status changing(const std::string& partner, const std::string& person,
                  const std::function<Status()>& fn) override {
    return s_.locked([&]() {
      Status st;
      s_.transaction(kPairingLocks, partner + "\n" + person, [&]() {
        st = fn();
        return st.ok;
      });
      return st;
    });
  }

  std::optional<PairingRow> find(const std::string& partner, const std::string& person) override {
    return first(s_.query(kFind, pg::Params().ref(partner).ref(person)));
  }

  std::optional<PairingRow> find_id(int64_t id) override {
    return first(s_.query(kFindId, pg::Params().num(id)));
  }

  void write(const PairingRow& row, bool exists) override {
    const Pairing& p = row.pairing;
    pg::Params params;
    params.ref(row.state)
        .ref(p.external_id)
        .ref(row.candidates)
        .ref(row.waiters)
        .ref(p.how)
        .ref(p.by)
        .ref(p.reason)
        .num(clock_.now_ms())
        .ref(p.partner)
        .ref(p.person);
    s_.query(exists ? kUpdate : kInsert, params);
  }

  std::vector<PairingRow> select(const PairingFilter& f) override {
    // Only the filters given are in the statement, so that it seeks pairings_state(state, id).
    std::string sql = "SELECT " PAIRING_COLUMNS " FROM pairings WHERE id < $1";
    pg::Params params;
    params.num(f.before_id);
    int n = 1;
    if (f.state) {
      sql += " AND state = $" + std::to_string(++n);
      params.text(pairing_state_name(*f.state));
    }
    if (!f.partner.empty()) {
      sql += " AND partner = $" + std::to_string(++n);
      params.ref(f.partner);
    }
    sql += " ORDER BY id DESC LIMIT $" + std::to_string(++n);
    params.num(f.limit);
    pg::Result r = s_.query_text(sql, params);
    std::vector<PairingRow> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(row(r, i));
    return out;
  }

  int64_t count_rows(const std::string& state) override {
    return s_.query(kCount, pg::Params().ref(state)).int64(0, 0);
  }

 private:
  static std::optional<PairingRow> first(const pg::Result& r) {
    if (r.rows() == 0) return std::nullopt;
    return row(r, 0);
  }

  static PairingRow row(const pg::Result& r, int i) {
    PairingRow x;
    x.pairing.id = r.int64(i, 0);
    x.pairing.partner = r.text(i, 1);
    x.pairing.person = r.text(i, 2);
    x.state = r.text(i, 3);
    x.pairing.external_id = r.text(i, 4);
    x.candidates = r.text(i, 5);
    x.waiters = r.text(i, 6);
    x.pairing.how = r.text(i, 7);
    x.pairing.by = r.text(i, 8);
    x.pairing.reason = r.text(i, 9);
    x.pairing.created_at = r.int64(i, 10);
    x.pairing.updated_at = r.int64(i, 11);
    return x;
  }

  const Clock& clock_;
  PgSession s_;
};

}  // namespace

std::vector<PgHotStatement> postgresql_pairing_hot_statements() {
  return {{"find pairing", kFind, "'genesis', 'individu:1'"},
          {"update pairing", kUpdate,
           "'apparie', 'G1', '[]', '[]', 'auto', 'auto', '', 1, 'genesis', 'individu:1'"},
          {"count pairings", kCount, "'en_attente'"}};
}

std::unique_ptr<PairingStore> open_postgresql_pairing_store(
    const std::string& uri, const std::string& password, const Clock& clock,
    std::shared_ptr<const AtRestCipher> cipher) {
  return std::make_unique<PgPairingStore>(uri, password, clock, std::move(cipher));
}

}  // namespace relais

// XrefStore on PostgreSQL (table of migration 101, store/postgresql/pg_tables.cpp). Each call is
// one statement on a pooled connection (its own transaction): several threads and several nodes
// read and write at once, and see whole references only. Storage failures are thrown, as the
// interface says (a delivering connector turns them into a retry).

#include <limits>
#include <stdexcept>

#include "store/postgresql/pg_stores.h"

namespace relais {
namespace {

constexpr const char* kGet =
    "SELECT destination, key, external_id, version, updated_at, message_id FROM xrefs "
    "WHERE destination = $1 AND key = $2";
constexpr const char* kPut =
    "INSERT INTO xrefs(destination, key, external_id, version, message_id, updated_at) "
    "VALUES($1, $2, $3, $4, $5, $6) ON CONFLICT(destination, key) DO UPDATE SET "
    "external_id = excluded.external_id, version = excluded.version, "
    "message_id = excluded.message_id, updated_at = excluded.updated_at";
constexpr const char* kRemove = "DELETE FROM xrefs WHERE destination = $1 AND key = $2";
constexpr const char* kList =
    "SELECT destination, key, external_id, version, updated_at, message_id FROM xrefs "
    "WHERE destination = $1 AND updated_at >= $2 AND updated_at < $3 "
    "ORDER BY updated_at, key LIMIT $4";
constexpr const char* kCount = "SELECT COUNT(*) FROM xrefs WHERE destination = $1";

class PgXrefStore final : public XrefStore {
 public:
  PgXrefStore(const std::string& uri, const Clock& clock, StoreAccess access)
      : clock_(clock), access_(access), pool_(uri, 5, 4) {
    auto c = pool_.get();
    check_other_store_schema(*c, "PostgreSQL cross-references " + pg::masked_uri(uri));
  }

  std::optional<CrossReference> get(const std::string& destination,
                                    const std::string& key) override {
    pg::Result r = run(kGet, pg::Params().ref(destination).ref(key));
    if (r.rows() == 0) return std::nullopt;
    return row(r, 0);
  }

  void put(const CrossReference& ref) override {
    if (ref.destination.empty() || ref.key.empty() || ref.external_id.empty()) {
      throw std::invalid_argument(
          "cross-reference needs a destination, a key and an external id (destination '" +
          ref.destination + "', key '" + ref.key + "', external id '" + ref.external_id + "')");
    }
    writable();
    run(kPut, pg::Params()
                  .ref(ref.destination)
                  .ref(ref.key)
                  .ref(ref.external_id)
                  .ref(ref.version)
                  .ref(ref.message_id)
                  .num(clock_.now_ms()));
  }

  bool remove(const std::string& destination, const std::string& key) override {
    writable();
    return run(kRemove, pg::Params().ref(destination).ref(key)).affected() > 0;
  }

  std::vector<CrossReference> list(const std::string& destination, Millis from, Millis to,
                                   size_t limit) override {
    std::vector<CrossReference> out;
    if (limit == 0 || from >= to) return out;
    int64_t lim = limit > static_cast<size_t>(std::numeric_limits<int64_t>::max())
                      ? std::numeric_limits<int64_t>::max()
                      : static_cast<int64_t>(limit);
    pg::Result r = run(kList, pg::Params().ref(destination).num(from).num(to).num(lim));
    out.reserve(static_cast<size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) out.push_back(row(r, i));
    return out;
  }

  size_t count(const std::string& destination) override {
    return static_cast<size_t>(run(kCount, pg::Params().ref(destination)).int64(0, 0));
  }

 private:
  void writable() const {
    if (access_ == StoreAccess::ReadOnly) {
      throw std::runtime_error("the cross-references are open read-only");
    }
  }

  pg::Result run(const char* sql, const pg::Params& params) {
    auto c = pool_.get();
    pg::Result r;
    Status s = c->run(sql, params, r);
    if (!s.ok) throw std::runtime_error("PostgreSQL cross-references: " + s.detail);
    return r;
  }

  static CrossReference row(const pg::Result& r, int i) {
    CrossReference x;
    x.destination = r.text(i, 0);
    x.key = r.text(i, 1);
    x.external_id = r.text(i, 2);
    x.version = r.text(i, 3);
    x.updated_at = r.int64(i, 4);
    x.message_id = r.text(i, 5);
    return x;
  }

  const Clock& clock_;
  StoreAccess access_;
  pg::Pool pool_;
};

}  // namespace

std::vector<PgHotStatement> postgresql_xref_hot_statements() {
  return {{"get cross-reference", kGet, "'cal', 'k1'"},
          {"put cross-reference", kPut, "'cal', 'k1', 'E1', 'v1', '01M', 1"},
          {"remove cross-reference", kRemove, "'cal', 'k1'"},
          {"list cross-references", kList, "'cal', 0, 10, 100"}};
}

std::unique_ptr<XrefStore> open_postgresql_xref_store(const std::string& uri, const Clock& clock,
                                                      StoreAccess access) {
  return std::make_unique<PgXrefStore>(uri, clock, access);
}

}  // namespace relais

// XrefStore on the PostgreSQL store (table of migration 2 of pg_store.cpp): pooled connections,
// each call one statement (its own transaction), so nodes and readers see whole records only.

#include <limits>
#include <stdexcept>

#include "store/postgresql/pg_backend.h"
#include "store/postgresql/pg_connection.h"

namespace relais {
namespace {

using pg::Params;
using pg::Result;

// The statements on the delivery path: primary-key lookups (the query-plan test EXPLAINs them).
constexpr const char* kGetXref =
    "SELECT destination, key, external_id, version, updated_at, message_id FROM xrefs "
    "WHERE destination = $1 AND key = $2";
constexpr const char* kPutXref =
    "INSERT INTO xrefs(destination, key, external_id, version, message_id, updated_at) "
    "VALUES($1, $2, $3, $4, $5, $6) ON CONFLICT(destination, key) DO UPDATE SET "
    "external_id = excluded.external_id, version = excluded.version, "
    "message_id = excluded.message_id, updated_at = excluded.updated_at";
constexpr const char* kRemoveXref = "DELETE FROM xrefs WHERE destination = $1 AND key = $2";
constexpr const char* kListXrefs =
    "SELECT destination, key, external_id, version, updated_at, message_id FROM xrefs "
    "WHERE destination = $1 AND updated_at >= $2 AND updated_at < $3 ORDER BY updated_at, key "
    "LIMIT $4";
constexpr const char* kCountXrefs = "SELECT COUNT(*) FROM xrefs WHERE destination = $1";

// Thread-safe: each call takes a connection of the pool. Owns its connections.
class PgXrefStore final : public XrefStore {
 public:
  PgXrefStore(const std::string& uri, const Clock& clock, StoreAccess access,
              const std::string& password)
      : pool_(uri, 5, 4, password), clock_(clock), access_(access) {
    Result r;
    Status s = pool_.run("SELECT COUNT(*) FROM xrefs WHERE false", Params(), r);
    if (!s.ok) {
      throw std::runtime_error("cross-references of PostgreSQL store " + pg::masked_uri(uri) +
                               ": " + s.detail + " (open the store once to migrate it)");
    }
  }

  std::optional<CrossReference> get(const std::string& destination,
                                    const std::string& key) override {
    Result r = must(kGetXref, Params().ref(destination).ref(key));
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
    must(kPutXref, Params()
                       .ref(ref.destination)
                       .ref(ref.key)
                       .ref(ref.external_id)
                       .ref(ref.version)
                       .ref(ref.message_id)
                       .num(clock_.now_ms()));
  }

  bool remove(const std::string& destination, const std::string& key) override {
    writable();
    return must(kRemoveXref, Params().ref(destination).ref(key)).affected() > 0;
  }

  std::vector<CrossReference> list(const std::string& destination, Millis from, Millis to,
                                   size_t limit) override {
    std::vector<CrossReference> out;
    if (limit == 0 || from >= to) return out;
    int64_t lim = limit > static_cast<size_t>(std::numeric_limits<int64_t>::max())
                      ? std::numeric_limits<int64_t>::max()
                      : static_cast<int64_t>(limit);
    Result r = must(kListXrefs, Params().ref(destination).num(from).num(to).num(lim));
    for (int i = 0; i < r.rows(); ++i) out.push_back(row(r, i));
    return out;
  }

  size_t count(const std::string& destination) override {
    return static_cast<size_t>(must(kCountXrefs, Params().ref(destination)).int64(0, 0));
  }

 private:
  Result must(const char* sql, const Params& params) {
    Result r;
    Status s = pool_.run(sql, params, r);
    if (!s.ok) throw std::runtime_error("cross-references: " + s.detail);
    return r;
  }
  void writable() const {
    if (access_ == StoreAccess::ReadOnly) {
      throw std::runtime_error("cross-references opened read-only");
    }
  }
  static CrossReference row(const Result& r, int i) {
    CrossReference x;
    x.destination = r.text(i, 0);
    x.key = r.text(i, 1);
    x.external_id = r.text(i, 2);
    x.version = r.text(i, 3);
    x.updated_at = r.int64(i, 4);
    x.message_id = r.text(i, 5);
    return x;
  }

  pg::Pool pool_;
  const Clock& clock_;
  StoreAccess access_;
};

}  // namespace

std::vector<PgHotStatement> postgresql_xref_hot_statements() {
  return {{"get cross-reference", kGetXref, "'cal', 'rdv:1'"},
          {"put cross-reference", kPutXref, "'cal', 'rdv:1', 'x', 'v', 'm', 1"},
          {"remove cross-reference", kRemoveXref, "'cal', 'rdv:1'"},
          {"list cross-references", kListXrefs, "'cal', 0, 1, 100"}};
}

std::unique_ptr<XrefStore> open_postgresql_xref_store(const std::string& uri, const Clock& clock,
                                                      StoreAccess access,
                                                      const std::string& password) {
  return std::make_unique<PgXrefStore>(uri, clock, access, password);
}

}  // namespace relais

// XrefStore on the SQLite store file (table created by migration 4 of sqlite_store.cpp).

#include <Poco/Data/RecordSet.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>

#include <cstdint>
#include <limits>
#include <mutex>
#include <stdexcept>

#include "core/store.h"
#include "core/xref_store.h"
#include "store/sqlite/sqlite_backend.h"
#include "store/sqlite/sqlite_session.h"

using namespace Poco::Data::Keywords;
using Poco::Data::RecordSet;
using Poco::Data::Session;
using Poco::Data::Statement;

namespace relais {
namespace {

// The statements on the delivery path (a connector reads, writes or removes the reference of
// the key it delivers): primary-key lookups, checked by the query-plan test.
constexpr const char* kGetXref =
    "SELECT destination, key, external_id, version, updated_at, message_id FROM xrefs "
    "WHERE destination = ? AND key = ?";
constexpr const char* kPutXref =
    "INSERT INTO xrefs(destination, key, external_id, version, message_id, updated_at) "
    "VALUES(?,?,?,?,?,?) ON CONFLICT(destination, key) DO UPDATE SET "
    "external_id = excluded.external_id, version = excluded.version, "
    "message_id = excluded.message_id, updated_at = excluded.updated_at";
constexpr const char* kRemoveXref = "DELETE FROM xrefs WHERE destination = ? AND key = ?";
constexpr const char* kColumns = "destination, key, external_id, version, updated_at, message_id";

// One connection, serialised by a mutex; each call is one statement (its own implicit
// transaction), so readers and writers in other processes see whole records only.
class SqliteXrefStore final : public XrefStore {
 public:
  SqliteXrefStore(const std::string& path, const Clock& clock, StoreAccess access)
      : clock_(clock), s_(open_store_session(path, "xrefs", "xrefs", access)) {}

  std::optional<CrossReference> get(const std::string& destination,
                                    const std::string& key) override {
    std::lock_guard<std::mutex> lock(mu_);
    Statement st(*s_);
    std::string d = destination, k = key;
    st << kGetXref, use(d), use(k), now;
    RecordSet rs(st);
    if (rs.rowCount() == 0) return std::nullopt;
    return row(rs, 0);
  }

  void put(const CrossReference& ref) override {
    if (ref.destination.empty() || ref.key.empty() || ref.external_id.empty()) {
      throw std::invalid_argument(
          "cross-reference needs a destination, a key and an external id (destination '" +
          ref.destination + "', key '" + ref.key + "', external id '" + ref.external_id + "')");
    }
    std::lock_guard<std::mutex> lock(mu_);
    std::string d = ref.destination, k = ref.key, id = ref.external_id, v = ref.version,
                m = ref.message_id;
    int64_t at = clock_.now_ms();
    *s_ << kPutXref, use(d), use(k), use(id), use(v), use(m), use(at), now;
  }

  bool remove(const std::string& destination, const std::string& key) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::string d = destination, k = key;
    Statement st(*s_);
    st << kRemoveXref, use(d), use(k);
    st.execute();
    int changed = 0;
    *s_ << "SELECT changes()", into(changed), now;
    return changed > 0;
  }

  std::vector<CrossReference> list(const std::string& destination, Millis from, Millis to,
                                   size_t limit) override {
    std::vector<CrossReference> out;
    if (limit == 0 || from >= to) return out;
    std::lock_guard<std::mutex> lock(mu_);
    Statement st(*s_);
    std::string d = destination;
    int64_t f = from, t = to;
    int64_t lim = limit > static_cast<size_t>(std::numeric_limits<int64_t>::max())
                      ? std::numeric_limits<int64_t>::max()
                      : static_cast<int64_t>(limit);
    st << "SELECT " << kColumns
       << " FROM xrefs WHERE destination = ? AND updated_at >= ? AND updated_at < ? "
          "ORDER BY updated_at, key LIMIT ?",
        use(d), use(f), use(t), use(lim), now;
    RecordSet rs(st);
    out.reserve(rs.rowCount());
    for (size_t i = 0; i < rs.rowCount(); ++i) out.push_back(row(rs, i));
    return out;
  }

  size_t count(const std::string& destination) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::string d = destination;
    int64_t n = 0;
    *s_ << "SELECT COUNT(*) FROM xrefs WHERE destination = ?", use(d), into(n), now;
    return static_cast<size_t>(n);
  }

 private:
  static CrossReference row(RecordSet& rs, size_t i) {
    CrossReference r;
    r.destination = rs.value(0, i).convert<std::string>();
    r.key = rs.value(1, i).convert<std::string>();
    r.external_id = rs.value(2, i).convert<std::string>();
    r.version = rs.value(3, i).convert<std::string>();
    r.updated_at = rs.value(4, i).convert<int64_t>();
    r.message_id = rs.value(5, i).convert<std::string>();
    return r;
  }

  const Clock& clock_;
  std::mutex mu_;
  std::unique_ptr<Session> s_;
};

}  // namespace

std::vector<HotStatement> sqlite_xref_hot_statements() {
  return {{"get cross-reference", kGetXref},
          {"put cross-reference", kPutXref},
          {"remove cross-reference", kRemoveXref}};
}

std::unique_ptr<XrefStore> open_sqlite_xref_store(const std::string& path, const Clock& clock,
                                                  StoreAccess access) {
  return std::make_unique<SqliteXrefStore>(path, clock, access);
}

}  // namespace relais

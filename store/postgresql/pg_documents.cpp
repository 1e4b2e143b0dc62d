// DocumentStore on PostgreSQL (tables of migration 103, store/postgresql/pg_tables.cpp), the
// same contract as store/sqlite/sqlite_documents.cpp. One PgSession; every change takes the one
// advisory lock of the documents, so that versions are numbered max+1 without a gap or a
// duplicate across nodes, and the activations' ids (the generation the watchers poll) are
// committed in the order they are drawn: a watcher that saw generation n never misses an
// activation numbered below n. Storage failures are thrown (the callers are the API and the
// mapping repository, which answer 503).

#include <stdexcept>

#include "core/document_store.h"
#include "store/postgresql/pg_session.h"
#include "store/postgresql/pg_stores.h"

namespace relais {
namespace {

constexpr int kDocumentLocks = 103;

#define DOCUMENT_COLUMNS "d.kind, d.name, d.version, d.format, d.author, d.comment, d.created_at"

constexpr const char* kMaxVersion =
    "SELECT COALESCE(MAX(version), 0) FROM documents WHERE kind = $1 AND name = $2";
constexpr const char* kInsert =
    "INSERT INTO documents(kind, name, version, format, content, author, comment, created_at) "
    "VALUES($1, $2, $3, $4, $5, $6, $7, $8)";
constexpr const char* kExists =
    "SELECT COUNT(*) FROM documents WHERE kind = $1 AND name = $2 AND version = $3";
constexpr const char* kSetActive =
    "INSERT INTO document_active(kind, name, version) VALUES($1, $2, $3) "
    "ON CONFLICT(kind, name) DO UPDATE SET version = excluded.version";
constexpr const char* kRecordActivation =
    "INSERT INTO document_activations(kind, name, version, actor, comment, at) "
    "VALUES($1, $2, $3, $4, $5, $6)";
constexpr const char* kGet =
    "SELECT " DOCUMENT_COLUMNS
    ", (a.version IS NOT NULL), d.content FROM documents d "
    "LEFT JOIN document_active a ON a.kind = d.kind AND a.name = d.name AND "
    "a.version = d.version WHERE d.kind = $1 AND d.name = $2 AND d.version = $3";
constexpr const char* kGetActive =
    "SELECT " DOCUMENT_COLUMNS
    ", true, d.content FROM documents d JOIN document_active a "
    "ON a.kind = d.kind AND a.name = d.name AND a.version = d.version "
    "WHERE d.kind = $1 AND d.name = $2";
constexpr const char* kVersions =
    "SELECT " DOCUMENT_COLUMNS
    ", (a.version IS NOT NULL) FROM documents d "
    "LEFT JOIN document_active a ON a.kind = d.kind AND a.name = d.name AND "
    "a.version = d.version WHERE d.kind = $1 AND d.name = $2 ORDER BY d.version DESC";
constexpr const char* kActive =
    "SELECT " DOCUMENT_COLUMNS
    ", true, d.content FROM documents d JOIN document_active a "
    "ON a.kind = d.kind AND a.name = d.name AND a.version = d.version WHERE d.kind = $1 "
    "ORDER BY d.name";
constexpr const char* kActivations =
    "SELECT kind, name, version, actor, comment, at FROM document_activations "
    "WHERE kind = $1 AND name = $2 ORDER BY id DESC";
constexpr const char* kGeneration = "SELECT COALESCE(MAX(id), 0) FROM document_activations";

class PgDocumentStore final : public DocumentStore {
 public:
  PgDocumentStore(const std::string& uri, const std::string& password, const Clock& clock,
                  StoreAccess access)
      : clock_(clock), access_(access), s_(uri, password, "PostgreSQL documents") {}

  int64_t add(const DocumentVersion& d, bool activate) override {
    writable();
    return s_.locked([&]() {
      int64_t version = 0;
      s_.transaction(kDocumentLocks, "", [&]() {
        version = s_.query(kMaxVersion, pg::Params().ref(d.kind).ref(d.name)).int64(0, 0) + 1;
        s_.query(kInsert, pg::Params()
                              .ref(d.kind)
                              .ref(d.name)
                              .num(version)
                              .ref(d.format)
                              .ref(d.content)
                              .ref(d.author)
                              .ref(d.comment)
                              .num(clock_.now_ms()));
        if (activate) activate_locked(d.kind, d.name, version, d.author, d.comment);
        return true;
      });
      return version;
    });
  }

  Status activate(const std::string& kind, const std::string& name, int64_t version,
                  const std::string& by, const std::string& comment) override {
    writable();
    return s_.locked([&]() {
      Status st;
      s_.transaction(kDocumentLocks, "", [&]() {
        if (s_.query(kExists, pg::Params().ref(kind).ref(name).num(version)).int64(0, 0) == 0) {
          st = Status::failure(404, "not found",
                               kind + " '" + name + "' has no version " + std::to_string(version));
          return false;
        }
        activate_locked(kind, name, version, by, comment);
        return true;
      });
      return st;
    });
  }

  std::optional<DocumentVersion> get(const std::string& kind, const std::string& name,
                                     int64_t version) override {
    return s_.locked([&]() -> std::optional<DocumentVersion> {
      pg::Result r = version == 0 ? s_.query(kGetActive, pg::Params().ref(kind).ref(name))
                                  : s_.query(kGet, pg::Params().ref(kind).ref(name).num(version));
      if (r.rows() == 0) return std::nullopt;
      return row(r, 0, true);
    });
  }

  std::vector<DocumentVersion> versions(const std::string& kind, const std::string& name) override {
    return rows(kVersions, pg::Params().ref(kind).ref(name), false);
  }

  std::vector<DocumentVersion> active(const std::string& kind) override {
    return rows(kActive, pg::Params().ref(kind), true);
  }

  std::vector<Activation> activations(const std::string& kind, const std::string& name) override {
    return s_.locked([&]() {
      pg::Result r = s_.query(kActivations, pg::Params().ref(kind).ref(name));
      std::vector<Activation> out;
      for (int i = 0; i < r.rows(); ++i) {
        out.push_back(Activation{r.text(i, 0), r.text(i, 1), r.int64(i, 2), r.text(i, 3),
                                 r.text(i, 4), r.int64(i, 5)});
      }
      return out;
    });
  }

  int64_t generation() override {
    return s_.locked([&]() { return s_.query(kGeneration).int64(0, 0); });
  }

 private:
  void writable() const {
    if (access_ == StoreAccess::ReadOnly) {
      throw std::runtime_error("the documents are open read-only");
    }
  }

  void activate_locked(const std::string& kind, const std::string& name, int64_t version,
                       const std::string& by, const std::string& comment) {
    s_.query(kSetActive, pg::Params().ref(kind).ref(name).num(version));
    s_.query(
        kRecordActivation,
        pg::Params().ref(kind).ref(name).num(version).ref(by).ref(comment).num(clock_.now_ms()));
  }

  std::vector<DocumentVersion> rows(const char* sql, const pg::Params& params, bool content) {
    return s_.locked([&]() {
      pg::Result r = s_.query(sql, params);
      std::vector<DocumentVersion> out;
      for (int i = 0; i < r.rows(); ++i) out.push_back(row(r, i, content));
      return out;
    });
  }

  static DocumentVersion row(const pg::Result& r, int i, bool with_content) {
    DocumentVersion d;
    d.kind = r.text(i, 0);
    d.name = r.text(i, 1);
    d.version = r.int64(i, 2);
    d.format = r.text(i, 3);
    d.author = r.text(i, 4);
    d.comment = r.text(i, 5);
    d.created_at = r.int64(i, 6);
    d.active = r.text(i, 7) == "t";
    if (with_content) d.content = r.text(i, 8);
    return d;
  }

  const Clock& clock_;
  StoreAccess access_;
  PgSession s_;
};

}  // namespace

std::unique_ptr<DocumentStore> open_postgresql_document_store(const std::string& uri,
                                                              const std::string& password,
                                                              const Clock& clock,
                                                              StoreAccess access) {
  return std::make_unique<PgDocumentStore>(uri, password, clock, access);
}

}  // namespace relais

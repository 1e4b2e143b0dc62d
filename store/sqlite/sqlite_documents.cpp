// DocumentStore on the SQLite store file (tables created by migration 2 of sqlite_store.cpp).

#include <Poco/Data/RecordSet.h>
#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>

#include <mutex>

#include "core/document_store.h"
#include "store/sqlite/sqlite_backend.h"
#include "store/sqlite/sqlite_session.h"

using namespace Poco::Data::Keywords;
using Poco::Data::RecordSet;
using Poco::Data::Session;
using Poco::Data::Statement;

namespace relais {
namespace {

class SqliteDocumentStore final : public DocumentStore {
 public:
  SqliteDocumentStore(const std::string& path, const Clock& clock, StoreAccess access)
      : clock_(clock), s_(open_store_session(path, "documents", "document", access)) {}

  int64_t add(const DocumentVersion& d, bool activate) override {
    std::lock_guard<std::mutex> lock(mu_);
    Session& s = *s_;
    s << "BEGIN IMMEDIATE", now;
    try {
      Poco::Nullable<int64_t> max;
      std::string kind = d.kind, name = d.name;
      s << "SELECT MAX(version) FROM documents WHERE kind = ? AND name = ?", use(kind), use(name),
          into(max), now;
      int64_t version = max.isNull() ? 1 : max.value() + 1;
      std::string format = d.format, content = d.content, author = d.author, comment = d.comment;
      int64_t at = clock_.now_ms();
      s << "INSERT INTO documents(kind, name, version, format, content, author, comment, "
           "created_at) VALUES(?,?,?,?,?,?,?,?)",
          use(kind), use(name), use(version), use(format), use(content), use(author), use(comment),
          use(at), now;
      if (activate) activate_locked(kind, name, version, author, comment);
      s << "COMMIT", now;
      return version;
    } catch (...) {
      s << "ROLLBACK", now;
      throw;
    }
  }

  Status activate(const std::string& kind, const std::string& name, int64_t version,
                  const std::string& by, const std::string& comment) override {
    std::lock_guard<std::mutex> lock(mu_);
    Session& s = *s_;
    s << "BEGIN IMMEDIATE", now;
    try {
      int n = 0;
      std::string k = kind, nm = name;
      int64_t v = version;
      s << "SELECT COUNT(*) FROM documents WHERE kind = ? AND name = ? AND version = ?", use(k),
          use(nm), use(v), into(n), now;
      if (n == 0) {
        s << "ROLLBACK", now;
        return Status::failure(404, "not found",
                               kind + " '" + name + "' has no version " + std::to_string(version));
      }
      activate_locked(kind, name, version, by, comment);
      s << "COMMIT", now;
      return Status::success();
    } catch (...) {
      s << "ROLLBACK", now;
      throw;
    }
  }

  std::optional<DocumentVersion> get(const std::string& kind, const std::string& name,
                                     int64_t version) override {
    std::lock_guard<std::mutex> lock(mu_);
    Statement st(*s_);
    std::string k = kind, n = name;
    int64_t v = version;
    st << "SELECT d.kind, d.name, d.version, d.format, d.content, d.author, d.comment, "
          "d.created_at, (a.version IS NOT NULL) FROM documents d LEFT JOIN document_active a "
          "ON a.kind = d.kind AND a.name = d.name AND a.version = d.version "
          "WHERE d.kind = ? AND d.name = ? AND (d.version = ? OR (? = 0 AND a.version IS NOT "
          "NULL))",
        use(k), use(n), use(v), use(v), now;
    RecordSet rs(st);
    if (rs.rowCount() == 0) return std::nullopt;
    return row(rs, 0, true);
  }

  std::vector<DocumentVersion> versions(const std::string& kind, const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    Statement st(*s_);
    std::string k = kind, n = name;
    st << "SELECT d.kind, d.name, d.version, d.format, '', d.author, d.comment, d.created_at, "
          "(a.version IS NOT NULL) FROM documents d LEFT JOIN document_active a ON a.kind = "
          "d.kind AND a.name = d.name AND a.version = d.version WHERE d.kind = ? AND d.name = ? "
          "ORDER BY d.version DESC",
        use(k), use(n), now;
    RecordSet rs(st);
    std::vector<DocumentVersion> out;
    for (size_t i = 0; i < rs.rowCount(); ++i) out.push_back(row(rs, i, false));
    return out;
  }

  std::vector<DocumentVersion> active(const std::string& kind) override {
    std::lock_guard<std::mutex> lock(mu_);
    Statement st(*s_);
    std::string k = kind;
    st << "SELECT d.kind, d.name, d.version, d.format, d.content, d.author, d.comment, "
          "d.created_at, 1 FROM documents d JOIN document_active a ON a.kind = d.kind AND "
          "a.name = d.name AND a.version = d.version WHERE d.kind = ? ORDER BY d.name",
        use(k), now;
    RecordSet rs(st);
    std::vector<DocumentVersion> out;
    for (size_t i = 0; i < rs.rowCount(); ++i) out.push_back(row(rs, i, true));
    return out;
  }

  std::vector<Activation> activations(const std::string& kind, const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    Statement st(*s_);
    std::string k = kind, n = name;
    st << "SELECT kind, name, version, by, comment, at FROM document_activations WHERE kind = ? "
          "AND name = ? ORDER BY id DESC",
        use(k), use(n), now;
    RecordSet rs(st);
    std::vector<Activation> out;
    for (size_t i = 0; i < rs.rowCount(); ++i) {
      out.push_back(
          Activation{rs.value(0, i).convert<std::string>(), rs.value(1, i).convert<std::string>(),
                     rs.value(2, i).convert<int64_t>(), rs.value(3, i).convert<std::string>(),
                     rs.value(4, i).convert<std::string>(), rs.value(5, i).convert<int64_t>()});
    }
    return out;
  }

  int64_t generation() override {
    std::lock_guard<std::mutex> lock(mu_);
    Poco::Nullable<int64_t> max;
    *s_ << "SELECT MAX(id) FROM document_activations", into(max), now;
    return max.isNull() ? 0 : max.value();
  }

 private:
  void activate_locked(const std::string& kind, const std::string& name, int64_t version,
                       const std::string& by, const std::string& comment) {
    std::string k = kind, n = name, b = by, c = comment;
    int64_t v = version, at = clock_.now_ms();
    *s_ << "INSERT INTO document_active(kind, name, version) VALUES(?,?,?) ON CONFLICT(kind, "
           "name) DO UPDATE SET version = excluded.version",
        use(k), use(n), use(v), now;
    *s_ << "INSERT INTO document_activations(kind, name, version, by, comment, at) "
           "VALUES(?,?,?,?,?,?)",
        use(k), use(n), use(v), use(b), use(c), use(at), now;
  }

  static DocumentVersion row(RecordSet& rs, size_t i, bool with_content) {
    DocumentVersion d;
    d.kind = rs.value(0, i).convert<std::string>();
    d.name = rs.value(1, i).convert<std::string>();
    d.version = rs.value(2, i).convert<int64_t>();
    d.format = rs.value(3, i).convert<std::string>();
    if (with_content) d.content = rs.value(4, i).convert<std::string>();
    d.author = rs.value(5, i).convert<std::string>();
    d.comment = rs.value(6, i).convert<std::string>();
    d.created_at = rs.value(7, i).convert<int64_t>();
    d.active = rs.value(8, i).convert<int>() != 0;
    return d;
  }

  const Clock& clock_;
  std::mutex mu_;
  std::unique_ptr<Session> s_;
};

}  // namespace

std::unique_ptr<DocumentStore> open_sqlite_document_store(const std::string& path,
                                                          const Clock& clock, StoreAccess access) {
  return std::make_unique<SqliteDocumentStore>(path, clock, access);
}

}  // namespace relais

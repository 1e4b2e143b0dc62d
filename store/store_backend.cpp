// open_store_backend (core/store_backend.h): the engines by kind.

#include "core/store_backend.h"

#include <filesystem>
#include <mutex>
#include <stdexcept>

#include "store/postgresql/pg_stores.h"
#include "store/sqlite/sqlite_backend.h"

namespace relais {
namespace {

// The embedded engine: every store in one SQLite file. Thread-safe as StoreBackend says (the
// SMS store is made once under a mutex).
class SqliteBackend : public StoreBackend {
 public:
  explicit SqliteBackend(StoreLocation where) : where_(std::move(where)) {
    if (where_.path.empty()) throw std::runtime_error("store.path: the SQLite file is not given");
    if (where_.state_dir.empty()) {
      std::filesystem::path folder = std::filesystem::path(where_.path).parent_path();
      if (folder.empty()) folder = std::filesystem::current_path();
      where_.state_dir = folder.string();
    }
  }
  std::string kind() const override { return "sqlite"; }
  std::string describe() const override { return where_.path; }
  std::string state_dir() const override { return where_.state_dir; }

  std::unique_ptr<Store> open_messages(StoreOptions options) override {
    options.path = where_.path;
    return open_sqlite_store(options);
  }
  std::unique_ptr<XrefStore> open_xrefs(const Clock& clock, StoreAccess access) override {
    return open_sqlite_xref_store(where_.path, clock, access);
  }
  std::unique_ptr<DocumentStore> open_documents(const Clock& clock, StoreAccess access) override {
    return open_sqlite_document_store(where_.path, clock, access);
  }
  std::unique_ptr<PairingStore> open_pairings(const Clock& clock,
                                              std::shared_ptr<const AtRestCipher> cipher) override {
    return open_sqlite_pairing_store(where_.path, clock, std::move(cipher));
  }
  std::unique_ptr<ConsoleStore> open_console(const Clock& clock, StoreAccess access,
                                             std::shared_ptr<const AtRestCipher> cipher) override {
    return open_sqlite_console_store(where_.path, clock, access, std::move(cipher));
  }
  std::shared_ptr<sms::SmsStore> sms(const Clock& clock) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!sms_) sms_ = sms::open_sqlite_sms_store(where_.path, clock);
    return sms_;
  }
  bool compacts_offline() const override { return true; }
  Status compact(int busy_timeout_ms, CompactReport& out) override {
    return compact_sqlite_store(where_.path, busy_timeout_ms, out);
  }

 private:
  StoreLocation where_;
  std::mutex mu_;
  std::shared_ptr<sms::SmsStore> sms_;
};

}  // namespace

std::unique_ptr<StoreBackend> open_store_backend(const StoreLocation& where) {
  if (where.kind == "sqlite" || where.kind.empty()) return std::make_unique<SqliteBackend>(where);
  if (where.kind == "postgresql") return open_postgresql_backend(where);
  throw std::runtime_error("store.kind '" + where.kind + "' is not built into this relais");
}

}  // namespace relais

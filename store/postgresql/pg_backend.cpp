// PgBackend: the StoreBackend (core/store_backend.h) of `store: {kind: postgresql, uri,
// password_env, state_dir}` — every store on one PostgreSQL database that several nodes share.
// The password is read from the environment variable `password_env` at start-up and given to
// libpq apart from the URI (StoreOptions::password); it is never logged nor put in an error
// (describe() is host:port/database, the stores' errors mask it).
//
// Thread-safety and ownership as StoreBackend: the SMS store is made once under a mutex.

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <stdexcept>

#include "core/store_backend.h"
#include "store/postgresql/pg_backend.h"
#include "store/postgresql/pg_connection.h"
#include "store/postgresql/pg_stores.h"

namespace relais {
namespace {

class PgBackend : public StoreBackend {
 public:
  explicit PgBackend(StoreLocation where) : where_(std::move(where)) {
    if (where_.uri.empty()) throw std::runtime_error("store.uri: required for kind postgresql");
    if (where_.state_dir.empty()) {
      throw std::runtime_error(
          "store.state_dir: required for kind postgresql (the node's own "
          "files, not shared with other nodes)");
    }
    pg::UriTarget target;
    try {
      target = pg::parse_uri(where_.uri);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("store.uri: ") + e.what());
    }
    if (target.has_password) {
      throw std::runtime_error(
          "store.uri: it holds a password; give it through "
          "store.password_env instead");
    }
    describe_ = target.describe;
    if (!where_.password_env.empty()) {
      const char* pw = std::getenv(where_.password_env.c_str());
      if (pw == nullptr || *pw == '\0') {
        throw std::runtime_error("store.password_env: the environment variable " +
                                 where_.password_env + " is not set");
      }
      password_ = pw;
    }
    std::filesystem::create_directories(where_.state_dir);
  }

  std::string kind() const override { return "postgresql"; }
  std::string describe() const override { return describe_; }
  std::string state_dir() const override { return where_.state_dir; }

  // ReadWrite: refused (throws) while a `relais store migrate` into this database has not
  // finished (store/store_migration.h): the deliveries not copied yet would be lost to relais,
  // and the ids it would draw are the copy's.
  std::unique_ptr<Store> open_messages(StoreOptions options) override {
    options.uri = where_.uri;
    options.password = password_;
    auto store = open_postgresql_store(options);
    if (!options.read_only) {
      std::string unfinished;  // the source of a migration not finished
      Status s = migration_unfinished(unfinished);
      if (!s.ok || !unfinished.empty()) {
        store->close();
        throw std::runtime_error(
            !s.ok ? "cannot read " + describe_ + ": " + s.detail
                  : "the migration of " + unfinished + " into " + describe_ +
                        " has not finished: run `relais store migrate` again until it prints "
                        "\"migrated and verified\" (docs/operations.md)");
      }
    }
    return store;
  }
  std::unique_ptr<XrefStore> open_xrefs(const Clock& clock, StoreAccess access) override {
    return open_postgresql_xref_store(where_.uri, clock, access, password_);
  }
  std::unique_ptr<DocumentStore> open_documents(const Clock& clock, StoreAccess access) override {
    return open_postgresql_document_store(where_.uri, password_, clock, access);
  }
  std::unique_ptr<PairingStore> open_pairings(const Clock& clock,
                                              std::shared_ptr<const AtRestCipher> cipher) override {
    return open_postgresql_pairing_store(where_.uri, password_, clock, std::move(cipher));
  }
  std::unique_ptr<ConsoleStore> open_console(const Clock& clock, StoreAccess access,
                                             std::shared_ptr<const AtRestCipher> cipher) override {
    return open_postgresql_console_store(where_.uri, password_, clock, access, std::move(cipher));
  }
  std::shared_ptr<sms::SmsStore> sms(const Clock& clock) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!sms_) sms_ = sms::open_postgresql_sms_store(where_.uri, password_, clock);
    return sms_;
  }
  // A session advisory lock on a connection of its own, kept for the backend's life (the
  // server releases it when the process dies, kill -9 included). If that connection is lost
  // (the server restarted), the lock goes with it: docs/operations.md says so.
  bool hold_dispatch(std::string& why) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (holder_) return true;
    std::unique_ptr<pg::Connection> c;
    Status s = pg::Connection::open(where_.uri, 10, c, password_);
    pg::Result r;
    if (s.ok) s = c->run_text("SELECT pg_try_advisory_lock(hashtext('relais.dispatch'))", {}, r);
    if (!s.ok) {
      why = "cannot take the dispatch lock on " + describe_ + ": " + s.detail;
      return false;
    }
    if (r.rows() != 1 || r.text(0, 0) != "t") {
      why = "another relais dispatches the deliveries of " + describe_ +
            " (it holds the dispatch lock): one node at a time until the shared queues of "
            "several nodes exist (docs/operations.md, \"A PostgreSQL store\")";
      return false;
    }
    holder_ = std::move(c);
    return true;
  }

 private:
  // The source path of a `relais store migrate` into this database that has not finished ("" when
  // none ever ran, or it finished).
  Status migration_unfinished(std::string& source) {
    std::unique_ptr<pg::Connection> c;
    pg::Result r;
    Status s = pg::Connection::open(where_.uri, 10, c, password_);
    if (s.ok) s = c->run_text("SELECT to_regclass('store_migration') IS NOT NULL", {}, r);
    if (!s.ok || r.text(0, 0) != "t") return s;
    s = c->run_text("SELECT source_path FROM store_migration WHERE finished_at = 0", {}, r);
    if (s.ok && r.rows() > 0) source = r.text(0, 0);
    return s;
  }

  StoreLocation where_;
  std::string describe_;
  std::string password_;  // from store.password_env (may be empty): passed apart, never shown
  std::mutex mu_;
  std::shared_ptr<sms::SmsStore> sms_;
  std::unique_ptr<pg::Connection> holder_;  // holds the dispatch lock (hold_dispatch)
};

}  // namespace

std::unique_ptr<StoreBackend> open_postgresql_backend(const StoreLocation& where) {
  return std::make_unique<PgBackend>(where);
}

}  // namespace relais

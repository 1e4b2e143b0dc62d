#pragma once
// PgSession: the one connection of a PostgreSQL store whose calls are short and few (pairings,
// documents, the console's records, the SMS records): serialised by a mutex, opened again when
// the server was lost (never in the middle of a transaction), statements prepared by their SQL,
// failures thrown as std::runtime_error with the store's name (no value of a row, no password:
// pg_connection.h). A transaction takes a transaction-level advisory lock first, so that the
// nodes sharing the database take turns on what it guards.
//
// Thread-safety: every method may be called from any thread; one call runs at a time. Owns its
// connection.

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "store/postgresql/pg_connection.h"

namespace relais {

class PgSession {
 public:
  // Connects and checks that the schema has every table of this build (throws at start-up).
  // `password` as StoreOptions::password (may be empty).
  PgSession(std::string uri, std::string password, std::string what);

  // Runs `fn` alone (the session's statements inside it).
  template <class F>
  auto locked(F fn) -> decltype(fn()) {
    std::lock_guard<std::mutex> lock(mu_);
    return fn();
  }
  // Runs BEGIN, pg_advisory_xact_lock(space, hashtext(key)), `fn`, then COMMIT when it returns
  // true and ROLLBACK when it returns false or throws. Call inside locked().
  void transaction(int space, const std::string& key, const std::function<bool()>& fn);

  // Inside locked(): a constant statement (prepared by its address), or one built at run time.
  pg::Result query(const char* sql, const pg::Params& params = {});
  pg::Result query_text(const std::string& sql, const pg::Params& params = {});
  // Throws (with the store's name) when `s` failed.
  void must(const Status& s) const;
  const std::string& what() const { return what_; }

 private:
  pg::Connection& connection();

  std::string uri_;
  std::string password_;
  std::string what_;
  std::mutex mu_;
  std::unique_ptr<pg::Connection> c_;
  bool in_transaction_ = false;
};

}  // namespace relais

#pragma once
// The store engines the conformance suite (store_conformance_test.cpp) runs every case on: the
// embedded SQLite store in a temporary folder, and the PostgreSQL store on a throwaway
// PostgreSQL 15 server (tests/support/pg_server.h) — one server per test binary, started by the
// first test that needs it and stopped when the binary ends, and a fresh database per backend
// object (so per test). Not thread-safe: one per test, driven by its thread.

#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/store.h"
#include "core/store_backend.h"
#include "core/xref_store.h"

namespace relais::testing {

class StoreBackend {
 public:
  virtual ~StoreBackend() = default;
  // "sqlite" or "postgresql"
  virtual std::string name() const = 0;
  // Opens the store of this backend (o.path or o.uri filled in); throws like the engine does.
  virtual std::unique_ptr<Store> open(StoreOptions o) = 0;
  // The cross-references of the store opened by open() (core/xref_store.h).
  virtual std::unique_ptr<XrefStore> open_xrefs(const Clock& clock) = 0;
  // The first column of the first row of `sql` as an integer (-1 when there is no row), read on
  // the backend's own connection (another than the store's).
  virtual int64_t scalar(const std::string& sql) = 0;
  // The first column of every row of `sql`, as text ("" for NULL).
  virtual std::vector<std::string> column(const std::string& sql) = 0;
  // Runs statements on the backend's own connection; a failure fails the test.
  virtual void exec(const std::string& sql) = 0;
  // The `store:` section of this backend's database (PostgreSQL: the password in the
  // environment variable RELAIS_TEST_PG_PASSWORD, set by this call), for open_store_backend.
  virtual relais::StoreLocation location() = 0;

  // "sqlite" or "postgresql"; throws std::invalid_argument for another name.
  static std::unique_ptr<StoreBackend> make(const std::string& name);
};

// The PostgreSQL test server of this binary: started at the first call of any of these, stopped
// and started again on demand (same port, same data) to test a server that goes away.
void stop_pg_server();
void start_pg_server();
// The password of the test user (an error text must never show it).
std::string pg_password();
// A fresh database on the shared server, owned by its test user: its libpq connection string.
std::string fresh_pg_database();

}  // namespace relais::testing

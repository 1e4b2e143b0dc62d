#pragma once
// The stores of the PostgreSQL backend other than the messages' (issue 15, part 3): the
// pairings, the documents, the console's records and the SMS records (the cross-references are
// pg_xrefs.cpp's, declared in pg_backend.h) on the
// database the messages' store migrates, and their tables.
//
// Their migrations are numbered from 101 and appended by pg_store.cpp's list after the messages'
// own (1…100), so that one relais_schema line and one advisory lock cover every table while the
// two lists live in different files.
//
// Each open function connects to `uri` (a libpq connection string or URI) with `password` (may
// be empty: as StoreOptions::password, apart from the URI) and throws std::runtime_error (password
// masked) when it cannot, or when the schema is older than this build. The returned stores are
// thread-safe as their interfaces say; the caller owns them; `clock` must outlive them.

#include <memory>
#include <string>
#include <vector>

#include "core/at_rest.h"
#include "core/clock.h"
#include "core/console_store.h"
#include "core/document_store.h"
#include "core/pairing_store.h"
#include "core/sms_store.h"
#include "core/store_access.h"
#include "core/store_backend.h"
#include "store/postgresql/pg_backend.h"
#include "store/postgresql/pg_connection.h"

namespace relais {

// The StoreBackend of kind "postgresql" (pg_backend.cpp): uri, password_env, state_dir of
// `where`. Throws std::runtime_error at start-up errors (no uri, no state_dir, a password in the
// uri, the password's variable unset).
std::unique_ptr<StoreBackend> open_postgresql_backend(const StoreLocation& where);

// The migrations of the tables below (versions 101 and up), in order.
const std::vector<pg::Migration>& postgresql_other_store_migrations();

std::unique_ptr<ConsoleStore> open_postgresql_console_store(
    const std::string& uri, const std::string& password, const Clock& clock, StoreAccess access,
    std::shared_ptr<const AtRestCipher> cipher);
std::unique_ptr<DocumentStore> open_postgresql_document_store(const std::string& uri,
                                                              const std::string& password,
                                                              const Clock& clock,
                                                              StoreAccess access);
std::unique_ptr<PairingStore> open_postgresql_pairing_store(
    const std::string& uri, const std::string& password, const Clock& clock,
    std::shared_ptr<const AtRestCipher> cipher);

namespace sms {
std::shared_ptr<SmsStore> open_postgresql_sms_store(const std::string& uri,
                                                    const std::string& password,
                                                    const Clock& clock);
}  // namespace sms

// The statements of these stores on the delivery path (a connector reads or writes its
// pairing or SMS record), with sample arguments, for the query-plan test
// (EXPLAIN: no Seq Scan on their tables), as postgresql_hot_statements() for the messages'.
std::vector<PgHotStatement> postgresql_other_hot_statements();
std::vector<PgHotStatement> postgresql_pairing_hot_statements();
std::vector<PgHotStatement> postgresql_sms_hot_statements();

// Throws std::runtime_error when relais_schema on `c` is older than this build (every store
// checks it at opening; the messages' store migrates).
void check_other_store_schema(pg::Connection& c, const std::string& what);

}  // namespace relais

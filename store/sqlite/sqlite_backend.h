#pragma once
// The embedded SQLite backend of the store interfaces (core/store.h, core/xref_store.h,
// core/document_store.h, core/pairing_store.h, core/console_store.h): how to open each of them
// on one store file. `open_sqlite_store` creates and migrates the schema of every table (the
// migrations are in sqlite_store.cpp); the others open their tables in a file it has migrated.
// The rest of the hub knows only the interfaces; `store/` is where the engines live.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/at_rest.h"
#include "core/clock.h"
#include "core/console_store.h"
#include "core/document_store.h"
#include "core/pairing_store.h"
#include "core/sms_store.h"
#include "core/store.h"
#include "core/store_access.h"
#include "core/store_backend.h"
#include "core/xref_store.h"

namespace relais {

// The SQL of every statement on the accept and delivery paths, with sample bound values, for
// the query-plan test (no SCAN of messages, deliveries or attempts).
struct HotStatement {
  std::string name;
  std::string sql;
};
std::vector<HotStatement> sqlite_hot_statements();
// Those of the cross-reference store (store/sqlite/sqlite_xrefs.cpp), included in the list above.
std::vector<HotStatement> sqlite_xref_hot_statements();

// Opens (creating and migrating as needed) the embedded SQLite store. Throws on start-up errors.
std::unique_ptr<Store> open_sqlite_store(const StoreOptions& options);

// The schema version this build writes.
int sqlite_schema_version();
// StoreBackend::compact of the SQLite file at `path` (no server may hold it): VACUUM with
// auto_vacuum=INCREMENTAL, then the WAL truncated.
Status compact_sqlite_store(const std::string& path, int busy_timeout_ms, CompactReport& out);
// Every migration this build knows: (version, description), in order.
std::vector<std::pair<int, std::string>> sqlite_schema_migrations();

// Opens the cross-references of the SQLite store at `path` (the table comes from migration 4 of
// sqlite_store.cpp, so the store must have been opened once by open_sqlite_store). `clock` must
// outlive the returned store. Throws std::runtime_error when the file does not exist or has no
// xrefs table, and Poco exceptions on other start-up errors. ReadOnly: see core/store_access.h.
std::unique_ptr<XrefStore> open_sqlite_xref_store(const std::string& path, const Clock& clock,
                                                  StoreAccess access = StoreAccess::ReadWrite);

// Opens the document tables of the SQLite store at `path` (the store must have been opened once
// by open_sqlite_store, which creates and migrates the schema). Throws on start-up errors.
// ReadOnly (core/store_access.h): the schema is checked, never migrated; add/activate throw.
std::unique_ptr<DocumentStore> open_sqlite_document_store(
    const std::string& path, const Clock& clock, StoreAccess access = StoreAccess::ReadWrite);

// Opens the pairings of the SQLite store at `path` (table of migration 12 of sqlite_store.cpp:
// the store must have been opened once by open_sqlite_store). Candidates' summaries are
// encrypted with `cipher` when it is not null. Throws at start-up.
std::unique_ptr<PairingStore> open_sqlite_pairing_store(const std::string& path, const Clock& clock,
                                                        std::shared_ptr<const AtRestCipher> cipher);

// Opens the console's tables in an existing, migrated store file. Throws at start-up.
// ReadOnly (core/store_access.h): for the commands that only read; writes fail. `cipher`
// decrypts the partners' excerpts the desk reads (core/at_rest.h; null: no encryption).
std::unique_ptr<ConsoleStore> open_sqlite_console_store(
    const std::string& path, const Clock& clock, StoreAccess access = StoreAccess::ReadWrite,
    std::shared_ptr<const AtRestCipher> cipher = nullptr);

// The statements of the dashboard's figures (for the query-plan test: each must seek an index).
std::vector<HotStatement> sqlite_console_figures_statements();

namespace sms {
// The SMS records and opt-out list (tables of migration 5). Throws at start-up when the file
// cannot be opened.
std::shared_ptr<SmsStore> open_sqlite_sms_store(const std::string& path, const Clock& clock);
}  // namespace sms

}  // namespace relais

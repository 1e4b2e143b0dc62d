#pragma once
// The PostgreSQL backend of the store interfaces (issue 15): the store of messages, deliveries
// and attempts (core/store.h) on a PostgreSQL database that several relais nodes may share. The
// schema is created and migrated by `open_postgresql_store` (relais_schema, one transaction per
// migration under an advisory lock). The rest of the hub knows only the interfaces.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/store.h"
#include "core/store_access.h"
#include "core/xref_store.h"

namespace relais {

// Opens (creating and migrating the schema as needed) the store on the PostgreSQL database of
// `options.uri` (a libpq connection string or postgresql:// URI; the password in it, or in
// `options.password`, or libpq's ~/.pgpass / PGPASSWORD). Uses from StoreOptions: uri, password,
// max_batch, read_pool, busy_timeout_ms (lock_timeout of the writer's transactions),
// idempotency_retention_ms, purge_every_ms, read_only and cipher; `path` and synchronous_full
// are SQLite's (the durability of a commit is the server's synchronous_commit, warned about at
// start-up when off). Throws std::runtime_error on start-up errors (server unreachable, schema
// newer than this build), with the URI's password masked.
std::unique_ptr<Store> open_postgresql_store(const StoreOptions& options);

// Opens the cross-references (core/xref_store.h) of the PostgreSQL store at `uri` (the table
// comes from migration 2 of pg_store.cpp: the store must have been opened once by
// open_postgresql_store). `clock` must outlive the returned store. Throws std::runtime_error
// when the server cannot be reached or the table is missing. ReadOnly: put and remove throw.
// `password` as StoreOptions::password.
std::unique_ptr<XrefStore> open_postgresql_xref_store(const std::string& uri, const Clock& clock,
                                                      StoreAccess access = StoreAccess::ReadWrite,
                                                      const std::string& password = "");

// The schema version this build writes, and every migration it knows: (version, description).
int postgresql_schema_version();
std::vector<std::pair<int, std::string>> postgresql_schema_migrations();

// The statements of the accept and delivery paths with sample values for their parameters, for
// the query-plan test (EXPLAIN: no Seq Scan on messages, deliveries, attempts or
// idempotency_keys): PREPARE name AS sql, then EXPLAIN EXECUTE name(args).
struct PgHotStatement {
  std::string name;
  std::string sql;   // with $1, $2 … as the store runs it
  std::string args;  // sample values of the parameters, as SQL literals: "'cms', 42"
};
std::vector<PgHotStatement> postgresql_hot_statements();
// Those of the cross-references (store/postgresql/pg_xrefs.cpp), included in the list above.
std::vector<PgHotStatement> postgresql_xref_hot_statements();

}  // namespace relais

// The tables of the PostgreSQL backend's other stores (store/postgresql/pg_stores.h): their
// migrations, numbered from 101 and run after the messages' own (pg_store.cpp appends them).

#include <stdexcept>

#include "store/postgresql/pg_stores.h"

namespace relais {

const std::vector<pg::Migration>& postgresql_other_store_migrations() {
  static const std::vector<pg::Migration> list = {
      {101,
       "cross-references to external systems (core/xref_store.h)",
       {
           "CREATE TABLE xrefs (destination text NOT NULL, key text NOT NULL, "
           "external_id text NOT NULL, version text NOT NULL, message_id text NOT NULL, "
           "updated_at bigint NOT NULL, PRIMARY KEY(destination, key))",
           "CREATE INDEX xrefs_updated ON xrefs(destination, updated_at, key)",
       }},
      {102,
       "appariement: persons paired with their record at a partner (core/pairing_store.h)",
       {
           // candidates: JSON, encrypted like the bodies when store.encryption is on (names,
           // birth dates); waiters: JSON list of the deliveries to wake when paired.
           "CREATE TABLE pairings (id bigserial PRIMARY KEY, partner text NOT NULL, "
           "person text NOT NULL, state text NOT NULL, external_id text NOT NULL DEFAULT '', "
           "candidates text NOT NULL DEFAULT '[]', waiters text NOT NULL DEFAULT '[]', "
           "how text NOT NULL DEFAULT '', actor text NOT NULL DEFAULT '', reason text NOT NULL "
           "DEFAULT '', created_at bigint NOT NULL, updated_at bigint NOT NULL, "
           "UNIQUE(partner, person))",
           "CREATE INDEX pairings_state ON pairings(state, id)",
       }},
  };
  return list;
}

void check_other_store_schema(pg::Connection& c, const std::string& what) {
  pg::check_schema(c, postgresql_other_store_migrations().back().version, what);
}

}  // namespace relais

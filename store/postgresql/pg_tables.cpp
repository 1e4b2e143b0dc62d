// The tables of the PostgreSQL backend's other stores (store/postgresql/pg_stores.h): their
// migrations, numbered from 101 and run after the messages' own (the cross-references' table is
// pg_store.cpp's migration 2) (pg_store.cpp appends them).

#include <stdexcept>

#include "store/postgresql/pg_stores.h"

namespace relais {

const std::vector<pg::Migration>& postgresql_other_store_migrations() {
  static const std::vector<pg::Migration> list = {
      {101,
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
      {102,
       "versioned documents: mappings and lookup tables (core/document_store.h)",
       {
           "CREATE TABLE documents (id bigserial PRIMARY KEY, kind text NOT NULL, "
           "name text NOT NULL, version bigint NOT NULL, format text NOT NULL, "
           "content text NOT NULL, author text NOT NULL, comment text NOT NULL, "
           "created_at bigint NOT NULL, UNIQUE(kind, name, version))",
           "CREATE TABLE document_active (kind text NOT NULL, name text NOT NULL, "
           "version bigint NOT NULL, PRIMARY KEY(kind, name))",
           // Its ids are the generation the watchers poll: written under one advisory lock, so
           // that they are committed in the order they are drawn.
           "CREATE TABLE document_activations (id bigserial PRIMARY KEY, kind text NOT NULL, "
           "name text NOT NULL, version bigint NOT NULL, actor text NOT NULL, "
           "comment text NOT NULL, at bigint NOT NULL)",
           "CREATE INDEX document_activations_document ON document_activations(kind, name, id)",
       }},
      {103,
       "console: users, API tokens, append-only audit trail (core/console_store.h)",
       {
           "CREATE TABLE users (name text PRIMARY KEY, role text NOT NULL, "
           "password text NOT NULL, created_at bigint NOT NULL, created_by text NOT NULL, "
           "disabled boolean NOT NULL DEFAULT false)",
           "CREATE TABLE api_tokens (name text PRIMARY KEY, role text NOT NULL, "
           "sources text NOT NULL, sha256 text NOT NULL UNIQUE, created_at bigint NOT NULL, "
           "created_by text NOT NULL, revoked_at bigint NOT NULL DEFAULT 0)",
           "CREATE TABLE audit (id bigserial PRIMARY KEY, at bigint NOT NULL, "
           "actor text NOT NULL, role text NOT NULL, action text NOT NULL, "
           "object text NOT NULL, detail text NOT NULL, address text NOT NULL)",
           "CREATE INDEX audit_at ON audit(at)",
           // Append-only, enforced by the database for every role, the owner's included: a row
           // is never updated nor deleted, the table never truncated.
           "CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
           "RAISE EXCEPTION 'the audit trail is append-only' USING ERRCODE = "
           "'insufficient_privilege'; END $$",
           "CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit FOR EACH ROW "
           "EXECUTE FUNCTION audit_append_only()",
           "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT "
           "EXECUTE FUNCTION audit_append_only()",
       }},
      {104,
       "SMS records and the SMS opt-out list (core/sms_store.h)",
       {
           "CREATE TABLE sms_records (delivery_id bigint PRIMARY KEY, "
           "destination text NOT NULL, driver text NOT NULL, reference text NOT NULL, "
           "gateway_ref text NOT NULL DEFAULT '', number_hash text NOT NULL, "
           "encoding text NOT NULL, segments integer NOT NULL, cost_cents double precision NOT "
           "NULL, state text NOT NULL, dlr_status integer NOT NULL DEFAULT 0, "
           "detail text NOT NULL DEFAULT '', created_at bigint NOT NULL, "
           "updated_at bigint NOT NULL)",
           "CREATE INDEX sms_records_reference ON sms_records(reference)",
           "CREATE INDEX sms_records_gateway_ref ON sms_records(gateway_ref, delivery_id) "
           "WHERE gateway_ref <> ''",
           "CREATE TABLE sms_optouts (number_hash text PRIMARY KEY, created_at bigint NOT NULL, "
           "source text NOT NULL, keyword text NOT NULL)",
       }},
  };
  return list;
}

std::vector<PgHotStatement> postgresql_other_hot_statements() {
  std::vector<PgHotStatement> out = postgresql_pairing_hot_statements();
  for (auto& st : postgresql_sms_hot_statements()) out.push_back(std::move(st));
  return out;
}

void check_other_store_schema(pg::Connection& c, const std::string& what) {
  pg::check_schema(c, postgresql_other_store_migrations().back().version, what);
}

}  // namespace relais

#pragma once
// Moving an installation from the embedded SQLite store to PostgreSQL (`relais store migrate`,
// issue 15; docs/operations.md, "Moving an installation to PostgreSQL").
//
// StoreMigration copies every table of every store (the list: kMigratedTables in
// store_migration.cpp, checked at each run against both engines' schemas, so that a table or a
// column added by a later migration without being listed stops the command instead of being left
// behind) from a SQLite store file to a PostgreSQL database whose schema it creates through the
// normal migrations (open_postgresql_store). Rows are copied in primary-key order, in batches:
// one transaction per batch (COPY FROM STDIN) that also moves the table's line in
// `store_migration_progress`, so a run killed at any instant resumes where the last committed
// batch left it and copies nothing twice. Values are copied as stored: encrypted values stay
// encrypted (no key is needed, nothing is decrypted); ids and seqs stay identical; at the end every
// sequence is set past the copied maximum. The audit trail's append-only triggers refuse UPDATE,
// DELETE and TRUNCATE, not INSERT: the copy inserts, nothing is disabled.
//
// The target is refused when it holds data that did not come from this migration (a table with
// rows and no `store_migration` line, or the line of another source store), when a relais
// dispatches on it (its advisory lock, PgBackend::hold_dispatch), or when another migration runs
// on it. The command takes both locks for its run, so no relais starts on the target meanwhile.
//
// verify() reads every table on both sides in key order (PostgreSQL text keys in the "C"
// collation: SQLite's byte order), turns each row into one canonical text (same code for both
// engines: integers in decimal, booleans 0/1, reals in their shortest exact form, NULL apart from
// ''), and compares per table the row counts, the SHA-256 of the rows and the first key where
// they differ.
//
// Not thread-safe: one thread drives it. Owns its two connections. Throws std::runtime_error
// with a readable reason (never a password, never a row's value other than a key).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace relais {

struct MigrationSettings {
  std::string sqlite_path;  // the source: a store of this build's schema, no relais on it
  std::string pg_uri;       // the target: libpq URI or connection string, without password
  std::string pg_password;  // given apart from the URI ("" = libpq's own ways); never shown
  int64_t batch = 5000;     // rows per transaction
  // Test hook: this process kills itself (SIGKILL) right after this many committed batches
  // (0: never), to test a resumption after a kill at a known point.
  int64_t kill_after_batches = 0;
};

// What the progress bar shows, after each batch (copy) or chunk (verify).
struct MigrationProgress {
  std::string phase;  // "copy" or "verify"
  std::string table;
  int64_t done = 0;       // rows of the table done (copy: in earlier runs too)
  int64_t total = 0;      // rows of the table in the source
  int64_t done_now = 0;   // rows of the table done by this run
  double seconds = 0;     // since this run started on the table
  bool finished = false;  // the table is finished
};
using MigrationProgressFn = std::function<void(const MigrationProgress&)>;

// One table's verification.
struct TableCheck {
  std::string table;
  int64_t source_rows = 0;
  int64_t target_rows = 0;
  std::string source_sha256;
  std::string target_sha256;
  // "" when both sides are equal; else the first key (in key order) whose row differs or is
  // missing on one side, as "column=value, …", and what is wrong with it.
  std::string first_difference;
  bool ok() const { return first_difference.empty(); }
};

class StoreMigration {
 public:
  // Connects to both stores and checks them: the source's schema is this build's, both
  // engines' tables and columns are the listed ones (the target's schema is created first by
  // the normal migrations, unless `verify_only`), the target is not in use by a relais or
  // another migration (locks held until destruction). Throws std::runtime_error.
  StoreMigration(MigrationSettings settings, MigrationProgressFn progress, bool verify_only);
  ~StoreMigration();
  StoreMigration(const StoreMigration&) = delete;
  StoreMigration& operator=(const StoreMigration&) = delete;

  // Copies what earlier runs did not, then sets the sequences. Refuses (throws) a target that
  // holds data from elsewhere. Returns the number of rows copied by this run.
  int64_t copy();
  // Compares every table; records the migration as finished when all are equal.
  std::vector<TableCheck> verify();
  // The names of the tables copied, in copy order.
  static std::vector<std::string> tables();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace relais

#pragma once
// Where the hub keeps what it must not lose, seen from the rest of the code: one StoreBackend
// opens every store interface (messages, cross-references, pairings, documents, the console's
// records, the SMS connector's records) on one engine chosen by configuration (`store.kind`).
// No component other than store/ knows which engine it runs on; connectors reach their own
// state through ConnectorContext::stores, never through a file path.
//
// The engines live in store/ (store/sqlite/ the embedded default; store/postgresql/ for several
// nodes); `open_store_backend` (store/store_backend.cpp) picks one.
//
// Thread-safety: the open_* methods are called at start-up (or by a command) from one thread;
// sms() may be called from any thread. Ownership: the caller owns what open_* returns, which
// holds what it needs (it may outlive the backend); the backend shares the one SMS store.

#include <memory>
#include <string>

#include "core/at_rest.h"
#include "core/clock.h"
#include "core/console_store.h"
#include "core/document_store.h"
#include "core/pairing_store.h"
#include "core/sms_store.h"
#include "core/store.h"
#include "core/store_access.h"
#include "core/xref_store.h"

namespace relais {

// The `store:` section's choice of engine and where it is.
struct StoreLocation {
  std::string kind = "sqlite";  // sqlite | postgresql
  std::string path;             // sqlite: the file (absolute)
  std::string uri;              // postgresql: the libpq connection URI (no password in it)
  std::string password_env;     // postgresql: the environment variable holding the password
  // The node's own files that are not shared with other nodes (e.g. a file destination's batch
  // journal). Default: the SQLite file's folder; for PostgreSQL, required.
  std::string state_dir;
};

// What `relais store compact` did (StoreBackend::compact).
struct CompactReport {
  int64_t bytes_before = -1, bytes_after = -1;  // the store's size on disk; -1: unknown
  std::string done;                             // what was done, one line for the operator
};

class StoreBackend {
 public:
  virtual ~StoreBackend() = default;

  // "sqlite" or "postgresql".
  virtual std::string kind() const = 0;
  // Where it is, for logs and messages: the file, or host/port/database (never a password).
  virtual std::string describe() const = 0;
  // The folder for the node's own files (StoreLocation::state_dir).
  virtual std::string state_dir() const = 0;

  // Opens the messages, deliveries and attempts; ReadWrite creates and migrates every table
  // of every store (call it first). `options` carries the engine-neutral settings; the backend
  // fills in where. Throws at start-up errors.
  virtual std::unique_ptr<Store> open_messages(StoreOptions options) = 0;
  // The others open their tables in a store open_messages has migrated. Throw at start-up.
  virtual std::unique_ptr<XrefStore> open_xrefs(const Clock& clock, StoreAccess access) = 0;
  virtual std::unique_ptr<DocumentStore> open_documents(const Clock& clock, StoreAccess access) = 0;
  virtual std::unique_ptr<PairingStore> open_pairings(
      const Clock& clock, std::shared_ptr<const AtRestCipher> cipher) = 0;
  virtual std::unique_ptr<ConsoleStore> open_console(
      const Clock& clock, StoreAccess access, std::shared_ptr<const AtRestCipher> cipher) = 0;
  // Makes this process the one that dispatches the store's deliveries, until the backend is
  // destroyed: two processes dispatching the same deliveries would send them twice and out of
  // order (the queues several nodes share are not built yet: issue 15). False, with why, when
  // another process holds it. SQLite: true (the store lock file, core/store_lock.h, already
  // keeps a second server out).
  virtual bool hold_dispatch(std::string& why) {
    (void)why;
    return true;
  }
  // `relais store compact`. SQLite: rewrites the file without its free pages (VACUUM) and turns
  // on incremental vacuum — offline only (compacts_offline() true: the caller holds the store
  // lock, no server runs); 503 when the file cannot be opened or rewritten (then unchanged).
  // PostgreSQL: VACUUM (ANALYZE) of the store's tables, online (nodes keep accepting): the space
  // of deleted and rewritten rows made reusable, the planner's statistics renewed; the files keep
  // their size (giving it back to the system is VACUUM FULL, which locks every table: a
  // database administrator's decision, docs/operations.md). `busy_timeout_ms`: SQLite's wait
  // for the file's lock.
  virtual bool compacts_offline() const = 0;
  virtual Status compact(int busy_timeout_ms, CompactReport& out) = 0;
  // The SMS records and opt-outs: one per backend, shared by every SMS destination and the
  // API (opened on first use). Throws at the first use when it cannot be opened.
  virtual std::shared_ptr<sms::SmsStore> sms(const Clock& clock) = 0;
};

// Opens the engine `where.kind` names. Throws std::runtime_error when the kind is unknown or
// not built in.
std::unique_ptr<StoreBackend> open_store_backend(const StoreLocation& where);

}  // namespace relais

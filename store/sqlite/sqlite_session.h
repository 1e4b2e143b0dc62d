#pragma once
// Opens a connection to an existing, migrated store file (for the side stores that share it:
// cross-references, the console's records, the documents; and for the read-only commands).
// Throws at start-up with a readable message when the file, the table or the schema is wrong.

#include <Poco/Data/Session.h>

#include <memory>
#include <string>

#include "core/store_access.h"

namespace relais {

// A session on `path` with a 10 s busy timeout; `table` must exist (created by the migration
// that `what` names, e.g. "xrefs"). ReadOnly: opened with `mode=ro` after the schema check.
std::unique_ptr<Poco::Data::Session> open_store_session(
    const std::string& path, const std::string& table, const std::string& what,
    StoreAccess access = StoreAccess::ReadWrite);

// The SQLite connection string for `path`: the path itself, or a `file:` URI with `mode=ro`.
std::string store_connection_string(const std::string& path, StoreAccess access);

// Read-only opening: throws unless the store's applied migrations are exactly the ones this
// build knows (older → "migrate it with relais serve", newer → "use a newer relais"), so a
// read-only command never reads a schema it does not understand and never migrates.
void check_store_schema(Poco::Data::Session& session, const std::string& path);

}  // namespace relais

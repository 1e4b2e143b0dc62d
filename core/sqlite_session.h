#pragma once
// Opens a second connection to an existing, migrated store file (for the side stores that
// share it: cross-references, the console's records). Throws at start-up with a readable
// message when the file or the table is missing.

#include <Poco/Data/Session.h>

#include <memory>
#include <string>

namespace relais {

// A session on `path` with a 10 s busy timeout; `table` must exist (created by the migration
// that `what` names, e.g. "xrefs").
std::unique_ptr<Poco::Data::Session> open_store_session(const std::string& path,
                                                        const std::string& table,
                                                        const std::string& what);

}  // namespace relais

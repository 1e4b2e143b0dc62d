#include "store/sqlite/sqlite_session.h"

#include <Poco/Data/SQLite/Connector.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include "core/store.h"
#include "store/sqlite/sqlite_backend.h"

using namespace Poco::Data::Keywords;

namespace relais {

std::string store_connection_string(const std::string& path, StoreAccess access) {
  if (access == StoreAccess::ReadWrite) return path;
  // A URI: characters that mean something in one are percent-encoded.
  std::string uri = "file:";
  static const char* hex = "0123456789ABCDEF";
  for (unsigned char c : path) {
    if (c == '?' || c == '#' || c == '%' || c < 0x20 || c >= 0x7f) {
      uri += '%';
      uri += hex[c >> 4];
      uri += hex[c & 15];
    } else {
      uri += static_cast<char>(c);
    }
  }
  return uri + "?mode=ro";
}

void check_store_schema(Poco::Data::Session& s, const std::string& path) {
  int tables = 0;
  s << "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
      into(tables), now;
  if (tables == 0) {
    throw std::runtime_error("store " + path +
                             " has no schema yet: start relais serve on it once (a read-only "
                             "command never creates or migrates a store)");
  }
  std::vector<int> applied;
  s << "SELECT version FROM schema_migrations ORDER BY version", into(applied), now;
  const auto known = sqlite_schema_migrations();
  std::string missing, unknown;
  for (const auto& [version, description] : known) {
    if (std::find(applied.begin(), applied.end(), version) == applied.end()) {
      missing += (missing.empty() ? "" : ", ") + std::to_string(version) + " (" + description + ")";
    }
  }
  for (int v : applied) {
    bool found =
        std::any_of(known.begin(), known.end(), [v](const auto& m) { return m.first == v; });
    if (!found) unknown += (unknown.empty() ? "" : ", ") + std::to_string(v);
  }
  if (!unknown.empty()) {
    throw std::runtime_error("store " + path + " has schema migration(s) " + unknown +
                             " that this relais (schema " +
                             std::to_string(sqlite_schema_version()) +
                             ") does not know: it was written by a newer relais; use that version");
  }
  if (!missing.empty()) {
    throw std::runtime_error("store " + path + " has an older schema (missing migration " +
                             missing +
                             "); a read-only command never migrates: start this relais serve on "
                             "it once (it migrates at start-up), or use the relais that wrote it");
  }
}

std::unique_ptr<Poco::Data::Session> open_store_session(const std::string& path,
                                                        const std::string& table,
                                                        const std::string& what,
                                                        StoreAccess access) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw std::runtime_error("store " + path + " does not exist: open it with relais first");
  }
  Poco::Data::SQLite::Connector::registerConnector();
  auto s = std::make_unique<Poco::Data::Session>("SQLite", store_connection_string(path, access));
  *s << "PRAGMA busy_timeout=10000", now;
  if (access == StoreAccess::ReadOnly) check_store_schema(*s, path);
  int n = 0;
  std::string t = table;
  *s << "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?", use(t), into(n),
      now;
  if (n == 0) throw std::runtime_error("store " + path + " has no " + what + " table: migrate it");
  return s;
}

}  // namespace relais

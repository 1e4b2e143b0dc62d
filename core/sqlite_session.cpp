#include "core/sqlite_session.h"

#include <Poco/Data/SQLite/Connector.h>

#include <filesystem>
#include <stdexcept>

using namespace Poco::Data::Keywords;

namespace relais {

std::unique_ptr<Poco::Data::Session> open_store_session(const std::string& path,
                                                        const std::string& table,
                                                        const std::string& what) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw std::runtime_error("store " + path + " does not exist: open it with relais first");
  }
  Poco::Data::SQLite::Connector::registerConnector();
  auto s = std::make_unique<Poco::Data::Session>("SQLite", path);
  *s << "PRAGMA busy_timeout=10000", now;
  int n = 0;
  std::string t = table;
  *s << "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?", use(t), into(n),
      now;
  if (n == 0) throw std::runtime_error("store " + path + " has no " + what + " table: migrate it");
  return s;
}

}  // namespace relais

#include "core/connector.h"

#include <stdexcept>

namespace relais {

void ConnectorRegistry::add(ConnectorKind kind) {
  std::string name = kind.name;
  if (!kinds_.emplace(name, std::move(kind)).second) {
    throw std::logic_error("connector kind registered twice: " + name);
  }
}

const ConnectorKind* ConnectorRegistry::find(const std::string& name) const {
  auto it = kinds_.find(name);
  return it == kinds_.end() ? nullptr : &it->second;
}

std::vector<std::string> ConnectorRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& [n, k] : kinds_) out.push_back(n);
  return out;
}

}  // namespace relais

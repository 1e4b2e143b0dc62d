#include "core/cluster.h"

namespace relais {

int key_partition(const std::string& key, int64_t delivery_id, int partitions) {
  if (partitions <= 1) return 0;
  if (key.empty()) return static_cast<int>(static_cast<uint64_t>(delivery_id) % partitions);
  uint64_t h = 1469598103934665603ULL;  // FNV-1a, 64 bits
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return static_cast<int>(h % static_cast<uint64_t>(partitions));
}

}  // namespace relais

#pragma once
// The verdict of the crash tests (tests/integration/crash_test.cpp, tests/cluster/): message n
// belongs to key n % keys and a key's messages were sent in increasing n, each once the previous
// one was acknowledged. From what the partner received, in order, it tells: the acknowledged
// messages never delivered, the deliveries beyond the first (duplicates), the arrivals of an
// older message after a newer one of its key (a partner's state going backwards) and the keys
// whose last arrival is not their last message. Plain functions over values; header-only.

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace relais::testing {

struct DeliveryVerdict {
  int acknowledged = 0;
  int delivered = 0;                   // acknowledged and received at least once
  int duplicates = 0;                  // receptions beyond the first, of acknowledged messages
  int twice = 0;                       // acknowledged messages received more than once
  std::vector<int> lost;               // acknowledged, never received
  std::vector<std::string> backwards;  // the first 10
  int wrong_last = 0;
  std::string wrong_example;  // the first key not ending on its last message
};

inline DeliveryVerdict judge_deliveries(const std::vector<int>& arrivals,
                                        const std::function<bool(int)>& acknowledged, int messages,
                                        int keys) {
  DeliveryVerdict v;
  std::map<int, int> times;
  for (int n : arrivals) ++times[n];
  for (int n = 0; n < messages; ++n) {
    if (!acknowledged(n)) continue;
    ++v.acknowledged;
    auto it = times.find(n);
    if (it == times.end()) {
      v.lost.push_back(n);
      continue;
    }
    ++v.delivered;
    v.duplicates += it->second - 1;
    if (it->second > 1) ++v.twice;
  }
  std::map<int, int> newest, last_seen;
  for (int n : arrivals) {
    int k = n % keys;
    auto it = newest.find(k);
    if (it != newest.end() && n < it->second && v.backwards.size() < 10) {
      v.backwards.push_back("key-" + std::to_string(k) + ": " + std::to_string(n) +
                            " delivered after " + std::to_string(it->second));
    }
    if (it == newest.end() || n > it->second) newest[k] = n;
    last_seen[k] = n;
  }
  for (int k = 0; k < keys; ++k) {
    int last_n = -1;
    for (int n = k; n < messages; n += keys) last_n = n;
    if (last_seen.count(k) == 0 || last_seen[k] != last_n) {
      if (v.wrong_last++ == 0) {
        v.wrong_example = "key-" + std::to_string(k) + " ends on " +
                          (last_seen.count(k) ? std::to_string(last_seen[k]) : "nothing") +
                          " instead of " + std::to_string(last_n);
      }
    }
  }
  return v;
}

}  // namespace relais::testing

// The crash test: 20,000 messages posted by several clients while relais is killed with
// SIGKILL at random moments (at least 8 times) and restarted on the same store, with the
// source's idempotency key on (the shipped configuration's shape). Every message acknowledged
// to a client must reach the destination at least once, and per correlation key the partner
// must never see an older message after a newer one: the last state it sees for each key is
// the key's last message (a re-delivery after a kill repeats only the latest one). The
// destination keeps at most 100 deliveries in memory: the backlog beyond is read back from the
// store page by page, across the kills too.
//
// Acknowledged = the client got 202, or 200 "duplicate" when it resent a message (same
// idempotency key, from the body) whose first 202 was lost to a kill: both mean "it is stored".

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/crash_harness.h"
#include "tests/support/delivery_verdict.h"
#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

constexpr int kMessages = 20000;
constexpr int kKeys = 1000;
constexpr int kClients = 8;
constexpr int kKillsWhileSending = 8;

std::string config_yaml(int sink_port) {
  return "sources:\n"
         "  app:\n"
         "    type: $.type\n"
         "    correlation: \"{$.key}\"\n"
         "    idempotency: $.id\n"
         "connectors:\n"
         "  sink:\n"
         "    connector: http\n"
         "    url: http://127.0.0.1:" +
         std::to_string(sink_port) +
         "/in\n"
         "    concurrency: 8\n"
         // The smallest bound: bursts and every restart go through the store's pages
         // (routing/dispatcher.h), killed mid-page too.
         "    queue_in_memory: 100\n"
         "    timeout: 5s\n"
         "    retry:\n"
         "      initial: 100ms\n"
         "      max: 1s\n"
         "      max_attempts: 1000\n"
         "routes:\n"
         "  - name: all\n"
         "    source: app\n"
         "    to:\n"
         "      - destination: sink\n";
}

// Message n belongs to key n % kKeys; a key's messages are posted in increasing n by one client.
int key_of(int n) {
  return n % kKeys;
}

TEST(CrashTest, KillNineLosesNothingAcknowledgedAndKeepsOrderPerKey) {
  auto t_start = SteadyClock::now();
  ArrivalLog sink;

  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.body_yaml = config_yaml(sink.port());
  o.log_level = "warn";
  RelaisProcess relais(o);
  relais.start();

  unsigned seed = std::random_device{}();
  std::cout << "crash test: seed " << seed << std::endl;
  std::mt19937 rng(seed);

  // --- clients ---------------------------------------------------------------------------------
  PostingClients clients(kMessages, kKeys, kClients, relais.token(), "crash",
                         [&](int) { return relais.port(); });

  // --- killer: SIGKILL at random moments while the clients send --------------------------------
  std::vector<int> thresholds;
  std::uniform_int_distribution<int> at(200, kMessages - 200);
  for (int i = 0; i < kKillsWhileSending; ++i) thresholds.push_back(at(rng));
  std::sort(thresholds.begin(), thresholds.end());
  std::uniform_int_distribution<int> jitter_us(0, 20000);
  int kills = 0;
  std::vector<long> restart_ms;
  auto kill_and_restart = [&] {
    std::this_thread::sleep_for(std::chrono::microseconds(jitter_us(rng)));  // a random instant
    relais.kill9();
    ++kills;
    auto t0 = SteadyClock::now();
    relais.restart();
    restart_ms.push_back(static_cast<long>(
        std::chrono::duration_cast<milliseconds>(SteadyClock::now() - t0).count()));
  };
  auto send_deadline = SteadyClock::now() + std::chrono::seconds(300);
  size_t next = 0;
  while (clients.acknowledged() < kMessages && SteadyClock::now() < send_deadline) {
    if (next < thresholds.size() && clients.acknowledged() >= thresholds[next]) {
      kill_and_restart();
      ++next;
    } else {
      std::this_thread::sleep_for(milliseconds(1));
    }
  }
  clients.finish();
  auto t_sent = SteadyClock::now();
  ASSERT_EQ(clients.acknowledged(), kMessages)
      << "the clients could not get every message accepted";
  // One more kill while the queue drains.
  if (size_t got = sink.arrivals().size(); got < static_cast<size_t>(kMessages)) {
    std::cout << "crash test: kill while draining (" << got << " deliveries so far)" << std::endl;
  }
  kill_and_restart();

  // --- drain -----------------------------------------------------------------------------------
  bool drained = wait_until([&] { return sink.distinct() == static_cast<size_t>(kMessages); },
                            std::chrono::seconds(180), milliseconds(50));
  expect_queues_empty(relais.base_url(), relais.token(), std::chrono::seconds(10));
  auto t_end = SteadyClock::now();

  // --- verdict ---------------------------------------------------------------------------------
  std::vector<int> arrivals = sink.arrivals();
  DeliveryVerdict v = judge_deliveries(
      arrivals, [&](int n) { return clients.status(n) != 0; }, kMessages, kKeys);
  int dup_acks = clients.duplicate_acks();
  // Order of first deliveries per key.
  std::map<int, int> last_first;  // key → last n first-delivered
  std::set<int> seen;
  std::vector<std::string> disorder;
  for (int n : arrivals) {
    if (!seen.insert(n).second) continue;
    auto it = last_first.find(key_of(n));
    if (it != last_first.end() && n < it->second && disorder.size() < 10) {
      disorder.push_back("key-" + std::to_string(key_of(n)) + ": " + std::to_string(n) +
                         " first delivered after " + std::to_string(it->second));
    }
    if (it == last_first.end() || n > it->second) last_first[key_of(n)] = n;
  }
  auto secs = [](auto a, auto b) {
    return std::chrono::duration_cast<milliseconds>(b - a).count() / 1000.0;
  };
  std::cout << "crash test: " << v.acknowledged << " acknowledged, " << v.delivered
            << " delivered, " << v.twice << " delivered more than once, " << kills << " kills"
            << std::endl;
  std::cout << "crash test: " << dup_acks << " acknowledged by a 200 duplicate answer after a "
            << "lost 202, " << clients.transport_errors() << " connection errors and "
            << clients.other_statuses() << " other answers retried by the clients, "
            << arrivals.size() << " sink requests, " << disorder.size()
            << " per-key order violations, " << v.backwards.size() << " states gone backwards, "
            << v.wrong_last << " keys not ending on their last message" << std::endl;
  std::string restarts;
  for (long ms : restart_ms) restarts += std::to_string(ms) + " ";
  std::cout << "crash test: sending " << secs(t_start, t_sent) << " s, total "
            << secs(t_start, t_end) << " s, restarts (ms): " << restarts << std::endl;

  EXPECT_GE(kills, kKillsWhileSending);
  EXPECT_TRUE(drained) << "the sink did not receive every message in time";
  EXPECT_EQ(v.acknowledged, kMessages);
  EXPECT_TRUE(v.lost.empty()) << v.lost.size()
                              << " acknowledged message(s) never delivered, e.g. n="
                              << (v.lost.empty() ? -1 : v.lost.front());
  EXPECT_EQ(v.delivered, v.acknowledged);
  for (const auto& d : disorder) ADD_FAILURE() << "order per key broken: " << d;
  for (const auto& b : v.backwards) ADD_FAILURE() << "a partner's state went backwards: " << b;
  EXPECT_EQ(v.wrong_last, 0) << "the last state seen is not the last message, e.g. "
                             << v.wrong_example;
  EXPECT_EQ(relais.stop(std::chrono::seconds(20)), 0);
}

}  // namespace
}  // namespace relais::testing

// The crash test: 20,000 messages posted by several clients while relais is killed with
// SIGKILL at random moments (at least 8 times) and restarted on the same store, with the
// source's idempotency key on (the shipped configuration's shape). Every message acknowledged
// to a client must reach the destination at least once, and per correlation key the partner
// must never see an older message after a newer one: the last state it sees for each key is
// the key's last message (a re-delivery after a kill repeats only the latest one).
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
  struct SinkState {
    std::mutex mu;
    std::vector<int> arrivals;  // message numbers, in arrival order
  };
  auto sink_state = std::make_shared<SinkState>();
  relais::tools::HttpSink sink(0, /*keep_bodies=*/false, 32);
  sink.set_responder([sink_state](const relais::tools::SinkRequest& req) {
    json j = json::parse(req.body, nullptr, false);
    relais::tools::SinkResponse out;
    if (!j.is_object() || !j.contains("n")) {
      out.status = 400;
      return out;
    }
    std::lock_guard<std::mutex> lock(sink_state->mu);
    sink_state->arrivals.push_back(j["n"].get<int>());
    return out;
  });

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
  std::vector<std::atomic<int>> acked_status(kMessages);  // 0 = not acknowledged, 202 or 200
  for (auto& a : acked_status) a = 0;
  std::atomic<int> acked{0};
  std::atomic<int> transport_errors{0}, other_statuses{0};
  std::atomic<bool> give_up{false};
  std::vector<std::thread> clients;
  const std::string token = relais.token();
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      HttpClient http("", token);
      http.set_timeout_ms(10000);
      for (int n = 0; n < kMessages && !give_up; ++n) {
        if (key_of(n) % kClients != c) continue;
        json body = {{"type", "crash.test"},
                     {"id", "crash-" + std::to_string(n)},
                     {"key", "key-" + std::to_string(key_of(n))},
                     {"n", n},
                     {"seq", n / kKeys}};
        std::string text = body.dump();
        while (!give_up) {
          int port = relais.port();
          HttpResponse r;
          if (port != 0) {
            r = http.post_json(
                "http://127.0.0.1:" + std::to_string(port) + "/api/v1/sources/app/messages", text);
          }
          if (r.status == 202 || (r.status == 200 && r.json().value("duplicate", false))) {
            acked_status[static_cast<size_t>(n)] = static_cast<int>(r.status);
            ++acked;
            break;
          }
          if (r.status == 0) {
            ++transport_errors;
          } else {
            ++other_statuses;  // e.g. 503 while the store is not ready: send again
          }
          std::this_thread::sleep_for(milliseconds(10));  // client back-off before resending
        }
      }
    });
  }

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
  while (acked.load() < kMessages && SteadyClock::now() < send_deadline) {
    if (next < thresholds.size() && acked.load() >= thresholds[next]) {
      kill_and_restart();
      ++next;
    } else {
      std::this_thread::sleep_for(milliseconds(1));
    }
  }
  give_up = true;
  for (auto& t : clients) t.join();
  auto t_sent = SteadyClock::now();
  ASSERT_EQ(acked.load(), kMessages) << "the clients could not get every message accepted";
  // One more kill while the queue drains.
  {
    std::lock_guard<std::mutex> lock(sink_state->mu);
    if (sink_state->arrivals.size() < static_cast<size_t>(kMessages)) {
      std::cout << "crash test: kill while draining (" << sink_state->arrivals.size()
                << " deliveries so far)" << std::endl;
    }
  }
  kill_and_restart();

  // --- drain -----------------------------------------------------------------------------------
  auto delivered_set = [&] {
    std::lock_guard<std::mutex> lock(sink_state->mu);
    return std::set<int>(sink_state->arrivals.begin(), sink_state->arrivals.end());
  };
  bool drained =
      wait_until([&] { return delivered_set().size() == static_cast<size_t>(kMessages); },
                 std::chrono::seconds(180), milliseconds(50));
  HttpClient api(relais.base_url(), relais.token());
  for (const char* state : {"pending", "retrying", "dead"}) {
    bool empty = wait_until(
        [&] {
          HttpResponse r = api.get(std::string("/api/v1/messages?limit=5&state=") + state);
          return r.status == 200 && r.json()["items"].empty();
        },
        std::chrono::seconds(10), milliseconds(50));
    EXPECT_TRUE(empty) << "deliveries left in state " << state << ": "
                       << api.get(std::string("/api/v1/messages?limit=5&state=") + state).body;
  }
  auto t_end = SteadyClock::now();

  // --- verdict ---------------------------------------------------------------------------------
  std::vector<int> arrivals;
  {
    std::lock_guard<std::mutex> lock(sink_state->mu);
    arrivals = sink_state->arrivals;
  }
  DeliveryVerdict v = judge_deliveries(
      arrivals, [&](int n) { return acked_status[static_cast<size_t>(n)] != 0; }, kMessages, kKeys);
  int dup_acks = 0;
  for (const auto& a : acked_status) dup_acks += a == 200 ? 1 : 0;
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
            << "lost 202, " << transport_errors.load() << " connection errors and "
            << other_statuses.load() << " other answers retried by the clients, " << arrivals.size()
            << " sink requests, " << disorder.size() << " per-key order violations, "
            << v.backwards.size() << " states gone backwards, " << v.wrong_last
            << " keys not ending on their last message" << std::endl;
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

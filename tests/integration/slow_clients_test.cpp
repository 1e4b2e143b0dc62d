// Slow clients against the real binary (issue 10): 1,000 connections that send a header line
// every 2 s hold no server thread, so /healthz and an inbound message are answered within 1 s
// while they are open; the header deadline (3 s here) closes them with 408, and the server
// counts them (relais_http_timeouts_total{phase="header"}).

#include <sys/resource.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/raw_http.h"
#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

constexpr int kSlowClients = 1000;

TEST(SlowClients, DoNotDelayHealthzNorMessagesAndAreClosedByTheHeaderDeadline) {
  // This process holds the 1,000 client ends: its soft descriptor limit may be 1,024. relais
  // raises its own (core/files.h raise_descriptor_limit), which this test checks too when run
  // under `ulimit -Sn 1024`.
  rlimit l{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &l), 0);
  if (l.rlim_cur != RLIM_INFINITY && l.rlim_cur < 4096 && l.rlim_max > l.rlim_cur) {
    l.rlim_cur = std::min<rlim_t>(l.rlim_max, 4096);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &l), 0);
  }
  tools::HttpSink sink;
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.server_extra_yaml = "  header_timeout: 3s\n";
  o.body_yaml =
      "sources:\n"
      "  app:\n"
      "    type: $.type\n"
      "    correlation: \"{$.key}\"\n"
      "connectors:\n"
      "  sink:\n"
      "    connector: http\n"
      "    url: http://127.0.0.1:" +
      std::to_string(sink.port()) +
      "/in\n"
      "    method: POST\n"
      "routes:\n"
      "  - name: app-to-sink\n"
      "    source: app\n"
      "    to:\n"
      "      - destination: sink\n";
  RelaisProcess relais(o);
  relais.start();
  HttpClient api = relais.client();
  api.set_timeout_ms(5000);

  // 1,000 connections, each with the start of a head.
  std::vector<RawConnection> slow;
  slow.reserve(kSlowClients);
  for (int i = 0; i < kSlowClients; ++i) {
    slow.emplace_back(relais.port());
    ASSERT_TRUE(slow.back().ok()) << "connection " << i;
    ASSERT_TRUE(slow.back().send("GET /api/v1/messages HTTP/1.1\r\n"));
  }
  const auto opened = SteadyClock::now();

  // The slow clients' driver: a header line every 2 s to each connection still open, at most
  // 4 rounds (8 s), then it stops by itself. It owns the connections until it returns.
  std::vector<double> closed_after_s(kSlowClients, -1);
  std::thread driver([&] {
    for (int round = 1; round <= 4; ++round) {
      std::this_thread::sleep_until(opened + milliseconds(2000 * round));
      int open = 0;
      for (int i = 0; i < kSlowClients; ++i) {
        if (closed_after_s[i] >= 0) continue;
        if (slow[i].peer_closed_now() ||
            !slow[i].send("X-Slow-" + std::to_string(round) + ": still typing\r\n")) {
          closed_after_s[i] = std::chrono::duration<double>(SteadyClock::now() - opened).count();
          continue;
        }
        ++open;
      }
      if (open == 0) return;
    }
  });

  // While they are open: the server holds them all...
  EXPECT_TRUE(wait_until(
      [&] {
        return metric_value(api.get("/metrics").body, "relais_http_open_connections") >=
               kSlowClients;
      },
      milliseconds(2000)));
  // ...and answers /healthz and a message within 1 s each.
  auto t0 = SteadyClock::now();
  HttpResponse health = api.get("/healthz");
  auto health_ms = std::chrono::duration_cast<milliseconds>(SteadyClock::now() - t0).count();
  EXPECT_EQ(health.status, 200) << health.error;
  EXPECT_LT(health_ms, 1000);

  HttpClient system(relais.base_url(), relais.system_token());
  system.set_timeout_ms(5000);
  t0 = SteadyClock::now();
  HttpResponse posted =
      system.post_json("/api/v1/sources/app/messages", R"({"type":"rdv.planned","key":"k-1"})");
  auto post_ms = std::chrono::duration_cast<milliseconds>(SteadyClock::now() - t0).count();
  EXPECT_EQ(posted.status, 202) << posted.body << posted.error;
  EXPECT_LT(post_ms, 1000);
  // Both were measured while the slow clients were still open (before their deadline).
  EXPECT_LT(SteadyClock::now() - opened, milliseconds(3000));

  driver.join();

  // The header deadline (3 s from the first byte, not from the last) closed every one of them
  // with a 408, between the round at 2 s and the one at 4 s (6 s on a loaded machine).
  int closed = 0, answered_408 = 0;
  double latest = 0;
  for (int i = 0; i < kSlowClients; ++i) {
    if (closed_after_s[i] < 0) continue;
    ++closed;
    latest = std::max(latest, closed_after_s[i]);
    if (slow[i].pending().rfind("HTTP/1.1 408", 0) == 0) ++answered_408;
  }
  EXPECT_EQ(closed, kSlowClients);
  EXPECT_EQ(answered_408, kSlowClients);
  EXPECT_LE(latest, 6.5);
  slow.clear();

  std::string metrics = api.get("/metrics").body;
  EXPECT_GE(metric_value(metrics, "relais_http_timeouts_total{phase=\"header\"}"), kSlowClients)
      << metrics;
  EXPECT_EQ(sink.wait_for(1, 10000), 1u);
  EXPECT_EQ(relais.stop(), 0);
}

}  // namespace
}  // namespace relais::testing

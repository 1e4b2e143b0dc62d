// Request limits of the real binary (docs/security.md, "Limits"): a token over its rate gets
// 429 with Retry-After and a JSON error naming the limit, while another token is unaffected;
// the refusals are counted per token name (never its value); too many header lines get 431.

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "tests/support/relais_process.h"

namespace relais::testing {
namespace {

TEST(RateLimit, AHammeringTokenGets429WhileAnotherIsUnaffected) {
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  // 2 requests per second, 5 at once, for every token (the admin one reads the metrics and
  // keeps its own budget).
  o.server_extra_yaml = "  rate_limit: {per_token: 2, burst: 5}\n";
  o.body_yaml = "sources:\n  app:\n    type: $.event\n";
  RelaisProcess relais(o);
  relais.start();

  HttpClient system(relais.base_url(), relais.system_token());
  int accepted = 0;
  HttpResponse refused;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 50 && refused.status == 0; ++i) {
    HttpResponse r = system.post_json("/api/v1/sources/app/messages",
                                      "{\"event\":\"e\",\"n\":" + std::to_string(i) + "}");
    if (r.status == 202) {
      ++accepted;
    } else {
      refused = r;
    }
  }
  const double elapsed_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(refused.status, 429) << refused.body;
  // The burst, plus at most what the rate (2/s) refilled while the loop ran (a slow machine
  // refills more; the bound follows the time the loop took).
  EXPECT_GE(accepted, 5);
  EXPECT_LE(accepted, 5 + static_cast<int>(elapsed_s * 2) + 1) << elapsed_s << " s";
  ASSERT_TRUE(refused.headers.count("retry-after"));
  EXPECT_GE(std::stoi(refused.headers["retry-after"]), 1);
  auto err = refused.json();
  EXPECT_EQ(err.value("error", ""), "rate limited");
  EXPECT_EQ(err.value("limit", ""), "server.rate_limit");
  EXPECT_EQ(err.value("token", ""), "test-system");
  EXPECT_EQ(err.value("per_second", 0.0), 2.0);
  EXPECT_EQ(err.value("burst", 0), 5);

  // The other token keeps its whole budget.
  HttpClient admin = relais.client();
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = admin.get("/api/v1/messages?source=app");
    EXPECT_EQ(r.status, 200) << r.body;
  }
  std::string metrics = admin.get("/metrics").body;
  EXPECT_GE(metric_value(metrics, "relais_http_rate_limited_total{token=\"test-system\"}"), 1);
  EXPECT_EQ(metrics.find("relais_http_rate_limited_total{token=\"test-admin\"}"),
            std::string::npos);
  EXPECT_EQ(metrics.find(relais.system_token()), std::string::npos);

  // After Retry-After the hammering token is served again.
  std::this_thread::sleep_for(std::chrono::seconds(std::stoi(refused.headers["retry-after"])));
  HttpResponse again = system.post_json("/api/v1/sources/app/messages", "{\"event\":\"e\"}");
  EXPECT_EQ(again.status, 202) << again.body;
}

TEST(RateLimit, NoLimitWithoutConfiguration) {
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.body_yaml = "sources:\n  app:\n    type: $.event\n";
  RelaisProcess relais(o);
  relais.start();
  // No server.rate_limit: no limit.
  HttpClient admin = relais.client();
  for (int i = 0; i < 200; ++i) ASSERT_EQ(admin.get("/readyz").status, 200) << i;
}

TEST(HeaderLimits, TooManyHeaderLinesAre431) {
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.server_extra_yaml = "  max_header_count: 20\n";
  o.body_yaml = "sources:\n  app:\n    type: $.event\n";
  RelaisProcess relais(o);
  relais.start();
  HttpClient::Headers few, many;
  for (int i = 0; i < 10; ++i) few.push_back("X-H" + std::to_string(i) + ": v");
  for (int i = 0; i < 30; ++i) many.push_back("X-H" + std::to_string(i) + ": v");
  HttpClient admin = relais.client();
  EXPECT_EQ(admin.get("/readyz", few).status, 200);
  EXPECT_EQ(admin.get("/readyz", many).status, 431);
}

}  // namespace
}  // namespace relais::testing

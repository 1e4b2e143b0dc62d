// Two real relais processes sharing one real redis-server (with persistence), as two nodes
// behind one address without sticky sessions: a console session made on one is used and ended
// on the other, failed logins spread over both are counted together, the rate limit is one
// bucket; a restart of relais logs nobody out; with Redis stopped the console answers 503 (and
// lets nobody in), then recovers by itself when Redis is back — relais is not restarted.
// (Each node has its own SQLite store here: what they share through the database is the
// PostgreSQL store's business; the in-process test shows the mapping notification.)

#include <gtest/gtest.h>

#include "tests/support/redis_server.h"
#include "tests/support/relais_process.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

class TwoNodesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(redis_.start(), "");
    for (auto* node : {&a_, &b_}) {
      RelaisOptions o;
      o.binary = RELAIS_BINARY;
      o.body_yaml =
          "sources:\n  app:\n    type: $.event\n"
          "redis:\n  uri: " +
          redis_.uri() + "\n  prefix: \"it:\"\n  timeout: 500ms\n";
      // One request per second per caller on average, three at once.
      o.server_extra_yaml = "  rate_limit:\n    per_token: 1\n    burst: 3\n";
      *node = std::make_unique<RelaisProcess>(o);
      (*node)->start();
      // The same console user on both nodes (each has its own store here).
      auto r = (*node)->client().post_json(
          "/api/v1/users",
          json{{"name", "agnes"}, {"role", "support"}, {"password", kPassword}}.dump());
      ASSERT_EQ(r.status, 201) << r.body;
    }
  }

  // Logs in on `node`; returns the "Cookie: …" header line and sets csrf.
  static std::string login(RelaisProcess& node, const std::string& password, std::string& csrf,
                           HttpResponse* out = nullptr) {
    HttpClient c(node.base_url());
    auto r = c.post_json("/api/v1/session", json{{"user", "agnes"}, {"password", password}}.dump());
    if (out) *out = r;
    if (r.status != 200) return "";
    csrf = r.json().value("csrf", "");
    std::string set = r.header("Set-Cookie");
    return "Cookie: " + set.substr(0, set.find(';'));
  }
  static long session_status(RelaisProcess& node, const std::string& cookie) {
    HttpClient c(node.base_url());
    return c.get("/api/v1/session", {cookie}).status;
  }

  static constexpr const char* kPassword = "a long enough password";
  RedisServer redis_{/*persistent=*/true};
  std::unique_ptr<RelaisProcess> a_, b_;
};

TEST_F(TwoNodesTest, ASessionMadeOnOneNodeWorksOnTheOtherAndSurvivesARestart) {
  std::string csrf;
  std::string cookie = login(*a_, kPassword, csrf);
  ASSERT_FALSE(cookie.empty());
  HttpClient on_b(b_->base_url());
  auto who = on_b.get("/api/v1/session", {cookie});
  ASSERT_EQ(who.status, 200) << who.body;
  EXPECT_EQ(who.json()["user"], "agnes");
  EXPECT_EQ(who.json()["csrf"], csrf);

  // A restart of relais logs nobody out.
  ASSERT_EQ(a_->stop(), 0);
  a_->restart();
  EXPECT_EQ(session_status(*a_, cookie), 200);

  // Logged out on B (with the session's CSRF token) → refused on A.
  auto out = on_b.request("DELETE", "/api/v1/session", "", "", {cookie, "X-CSRF-Token: " + csrf});
  ASSERT_EQ(out.status, 200) << out.body;
  EXPECT_EQ(session_status(*a_, cookie), 401);
  EXPECT_EQ(session_status(*b_, cookie), 401);
}

TEST_F(TwoNodesTest, FailedLoginsOnBothNodesAreCountedTogether) {
  std::string csrf;
  HttpResponse r;
  for (int i = 0; i < 5; ++i) {
    login(i % 2 == 0 ? *a_ : *b_, "wrong password " + std::to_string(i), csrf, &r);
    EXPECT_EQ(r.status, 401) << "attempt " << i;
  }
  for (auto* node : {a_.get(), b_.get()}) {
    login(*node, kPassword, csrf, &r);  // even the right password, on either node
    EXPECT_EQ(r.status, 429) << r.body;
    EXPECT_FALSE(r.header("Retry-After").empty());
  }
}

TEST_F(TwoNodesTest, TheRateLimitIsSharedByTheNodes) {
  // Burst 3 for the system token (unused so far) over both nodes: the fourth request, on
  // either, waits.
  HttpClient on_a(a_->base_url(), RelaisOptions{}.system_token);
  HttpClient on_b(b_->base_url(), RelaisOptions{}.system_token);
  int ok = 0, limited = 0;
  for (int i = 0; i < 6; ++i) {
    auto r = (i % 2 ? on_b : on_a).get("/api/v1/session");
    ok += r.status == 200;
    limited += r.status == 429;
  }
  // Six requests within well under a second: three from the burst, at most one refilled.
  EXPECT_GE(limited, 2);
  EXPECT_LE(ok, 4);
  EXPECT_GE(ok, 3);
}

TEST_F(TwoNodesTest, WithRedisDownTheConsoleAnswers503ThenRecoversByItself) {
  std::string csrf;
  std::string cookie = login(*a_, kPassword, csrf);
  ASSERT_FALSE(cookie.empty());
  redis_.stop();
  HttpClient on_b(b_->base_url());
  auto r = on_b.get("/api/v1/session", {cookie});
  EXPECT_EQ(r.status, 503) << r.body;  // never let in unchecked, never sent to log in either
  EXPECT_FALSE(r.header("Retry-After").empty());
  HttpResponse lr;
  login(*a_, kPassword, csrf, &lr);
  EXPECT_EQ(lr.status, 503) << lr.body;  // a login that cannot be counted is refused
  // Tokens do not need Redis: the API still serves them (the node's own rate bucket).
  EXPECT_EQ(b_->client().get("/api/v1/session").status, 200);

  ASSERT_EQ(redis_.start(), "");
  // Persisted: the session is back on both nodes, without restarting relais.
  // (Each node's connection comes back at its next try: the back-off is at most 5 s.)
  for (auto* node : {a_.get(), b_.get()}) {
    EXPECT_TRUE(wait_until([&] { return session_status(*node, cookie) == 200; }, 10s, 100ms));
  }
}

}  // namespace
}  // namespace relais::testing

// No silent re-send of a non-idempotent request (connectors/http/curl_capture.h): libcurl alone
// re-sends a POST when a reused keep-alive connection dies after the partner saved it; with
// set_request it does not, and the failure reads as "sent, outcome unknown". Then the generic
// HTTP destination over the same fault, and the partner's "slow down" (429, 503 + Retry-After)
// as a throttle.

#include <gtest/gtest.h>

#include <string>

#include "connectors/http/curl_capture.h"
#include "connectors/http/http_connector.h"
#include "connectors/registry.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "routing/hub_config.h"
#include "tests/support/saves_then_resets.h"

namespace relais {
namespace {

using testing::SavedRequest;
using testing::SavesThenResets;

// The partner: saves every request and answers 200 (keep-alive).
SavesThenResets::Backend saving_partner() {
  return [](const SavedRequest& r) { return SavesThenResets::answer(200, "saved " + r.body); };
}

bool is_post(const SavedRequest& r) {
  return r.method == "POST";
}

// One curl handle that keeps its connection between requests, as every connector's slot does.
class Handle {
 public:
  Handle() : h_(curl_easy_init()) {}
  ~Handle() { curl_easy_cleanup(h_); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  // One request through prepare_curl + set_request.
  CURLcode send(const std::string& url, const std::string& method, const std::string& body,
                bool idempotent, CurlCapture& cap) {
    prepare_curl(h_, url, CurlTransfer{5000, 2000, true, ""}, cap);
    set_request(h_, cap, method, body, idempotent);
    return curl_easy_perform(h_);
  }
  long status() {
    long s = 0;
    curl_easy_getinfo(h_, CURLINFO_RESPONSE_CODE, &s);
    return s;
  }
  CURL* get() { return h_; }

 private:
  CURL* h_;
};

// The control: libcurl left alone (CURLOPT_POSTFIELDS) re-sends the POST on a fresh connection
// after the reused one died, and reports success: the partner saved it twice. This is the
// behaviour the rest of the file guards against, and the proof the server sees a re-send.
TEST(CurlResend, LibcurlAloneResendsAPostOnAReusedConnection) {
  SavesThenResets server(saving_partner());
  Handle h;
  CurlCapture first(1024);
  ASSERT_EQ(h.send(server.base() + "/warm", "GET", "", true, first), CURLE_OK);
  server.arm(is_post);
  CurlCapture cap(1024);
  prepare_curl(h.get(), server.base() + "/items", CurlTransfer{}, cap);
  std::string body = R"({"rdv":1})";
  curl_easy_setopt(h.get(), CURLOPT_POSTFIELDS, body.c_str());
  EXPECT_EQ(curl_easy_perform(h.get()), CURLE_OK);
  EXPECT_TRUE(server.fired());
  EXPECT_EQ(server.count(is_post), 2u) << "libcurl no longer re-sends: update the docs";
  EXPECT_EQ(server.connections(), 2);
}

TEST(CurlResend, GuardedPostIsNotResentAndItsOutcomeIsUnknown) {
  SavesThenResets server(saving_partner());
  Handle h;
  CurlCapture first(1024);
  ASSERT_EQ(h.send(server.base() + "/items", "POST", "first", false, first), CURLE_OK);
  EXPECT_EQ(h.status(), 200);
  EXPECT_EQ(first.body, "saved first");  // the guarded body goes out whole
  server.arm(is_post);
  CurlCapture cap(1024);
  CURLcode rc = h.send(server.base() + "/items", "POST", R"({"rdv":2})", false, cap);
  // libcurl 7.88: the reset reads as CURLE_RECV_ERROR (56), then its retry asks to rewind the
  // body, is refused (cap.rewind_refused) and the transfer fails instead of re-sending.
  EXPECT_TRUE(rc == CURLE_RECV_ERROR || rc == CURLE_SEND_FAIL_REWIND) << curl_easy_strerror(rc);
  EXPECT_TRUE(cap.rewind_refused);
  ASSERT_TRUE(server.fired());
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u) << "re-sent on a new connection";
  EXPECT_EQ(reqs[1].on_connection, 2);  // the fault hit a reused connection
  EXPECT_EQ(reqs[1].body, R"({"rdv":2})");
  EXPECT_TRUE(cap.request_started);
  EXPECT_EQ(classify_curl_failure(rc, cap, false), CurlFailure::UnknownOutcome);
  Outcome o = curl_failure_outcome(rc, cap, false, "la destination");
  EXPECT_EQ(o.kind, Outcome::Kind::Retry);
  EXPECT_EQ(o.error_class, "unknown_outcome");
  EXPECT_NE(o.text.find("peut-être"), std::string::npos) << o.text;
  // The handle is usable afterwards: the next request goes on a new connection.
  CurlCapture after(1024);
  EXPECT_EQ(h.send(server.base() + "/items", "POST", "third", false, after), CURLE_OK);
  EXPECT_EQ(server.count(is_post), 3u);
}

// The same POST marked idempotent keeps libcurl's re-send (harmless for it).
TEST(CurlResend, IdempotentRequestKeepsLibcurlsRetry) {
  SavesThenResets server(saving_partner());
  Handle h;
  CurlCapture first(1024);
  ASSERT_EQ(h.send(server.base() + "/items/1", "PUT", "v1", true, first), CURLE_OK);
  server.arm();
  CurlCapture cap(1024);
  EXPECT_EQ(h.send(server.base() + "/items/1", "PUT", "v2", true, cap), CURLE_OK);
  EXPECT_EQ(h.status(), 200);
  EXPECT_EQ(server.requests().size(), 3u);
}

// A bodiless non-idempotent request (Kannel's GET sendsms) goes on a connection of its own: the
// partner sees one connection per request, and a lost answer is an unknown outcome.
TEST(CurlResend, BodilessNonIdempotentRequestUsesAFreshConnection) {
  SavesThenResets server(saving_partner());
  Handle h;
  for (int i = 0; i < 3; ++i) {
    CurlCapture cap(1024);
    ASSERT_EQ(h.send(server.base() + "/send?n=" + std::to_string(i), "GET", "", false, cap),
              CURLE_OK);
  }
  EXPECT_EQ(server.connections(), 3);
  server.arm_any([](const SavedRequest&) { return true; });
  CurlCapture cap(1024);
  CURLcode rc = h.send(server.base() + "/send?n=3", "GET", "", false, cap);
  EXPECT_NE(rc, CURLE_OK);
  EXPECT_EQ(server.requests().size(), 4u);
  EXPECT_EQ(curl_failure_outcome(rc, cap, false, "x").error_class, "unknown_outcome");
}

// An authentication handshake rewinds the body after an answer (401): that rewind still works.
TEST(CurlResend, GuardedBodyIsSentAgainAfterA401) {
  SavesThenResets server([](const SavedRequest& r) {
    if (r.header("authorization").empty()) {
      return SavesThenResets::answer(401, "who?", "WWW-Authenticate: Basic realm=\"ews\"\r\n");
    }
    return SavesThenResets::answer(200, "saved " + r.body);
  });
  Handle h;
  CurlCapture cap(1024);
  prepare_curl(h.get(), server.base() + "/items", CurlTransfer{}, cap);
  set_request(h.get(), cap, "POST", "the body", false);
  curl_easy_setopt(h.get(), CURLOPT_HTTPAUTH, CURLAUTH_ANY);  // first without credentials
  curl_easy_setopt(h.get(), CURLOPT_USERNAME, "svc");
  curl_easy_setopt(h.get(), CURLOPT_PASSWORD, "pw");
  ASSERT_EQ(curl_easy_perform(h.get()), CURLE_OK);
  EXPECT_EQ(h.status(), 200);
  EXPECT_EQ(cap.body, "saved the body");
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].body, "the body");  // the whole body went out, then the 401 came back
  EXPECT_EQ(reqs[1].body, "the body");
}

TEST(CurlResend, RefusedConnectionIsNotSent) {
  int port;
  {
    SavesThenResets gone(saving_partner());
    port = gone.port();
  }
  Handle h;
  CurlCapture cap(1024);
  CURLcode rc = h.send("http://127.0.0.1:" + std::to_string(port) + "/x", "POST", "b", false, cap);
  EXPECT_EQ(rc, CURLE_COULDNT_CONNECT);
  EXPECT_FALSE(cap.request_started);
  EXPECT_EQ(classify_curl_failure(rc, cap, false), CurlFailure::NotSent);
  Outcome o = curl_failure_outcome(rc, cap, false, "the destination");
  EXPECT_EQ(o.error_class, "network");
  EXPECT_NE(o.text.find("cannot reach the destination"), std::string::npos) << o.text;
}

TEST(CurlResend, IdempotentMethods) {
  for (const char* m : {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}) {
    EXPECT_TRUE(idempotent_method(m)) << m;
  }
  for (const char* m : {"POST", "PATCH"}) EXPECT_FALSE(idempotent_method(m)) << m;
}

TEST(RetryOrThrottle, TooManyRequestsAndBusyWithADelayPauseTheDestination) {
  const int64_t now = 1'700'000'000'000;
  Outcome a = retry_or_throttle(429, "7", now, 60000, "HTTP 429");
  EXPECT_EQ(a.kind, Outcome::Kind::Throttle);
  EXPECT_EQ(a.throttle_scope, "");
  EXPECT_EQ(a.code, 429);
  EXPECT_EQ(a.retry_after_ms, 7000);
  Outcome b = retry_or_throttle(429, "", now, 60000, "HTTP 429");
  EXPECT_EQ(b.kind, Outcome::Kind::Throttle);
  EXPECT_FALSE(b.retry_after_ms.has_value());  // the destination's throttle_pause
  Outcome c = retry_or_throttle(503, "3600", now, 60000, "HTTP 503", "boite@x");
  EXPECT_EQ(c.kind, Outcome::Kind::Throttle);
  EXPECT_EQ(c.throttle_scope, "boite@x");
  EXPECT_EQ(c.retry_after_ms, 60000);  // capped
  Outcome d = retry_or_throttle(503, "", now, 60000, "HTTP 503");
  EXPECT_EQ(d.kind, Outcome::Kind::Retry);
  EXPECT_FALSE(d.retry_after_ms.has_value());
  Outcome e = retry_or_throttle(500, "5", now, 60000, "HTTP 500");
  EXPECT_EQ(e.kind, Outcome::Kind::Retry);
  EXPECT_EQ(e.error_class, "http");
  EXPECT_EQ(e.retry_after_ms, 5000);
}

// ---- the generic HTTP destination ----------------------------------------------------------

class HttpDestinationResendTest : public ::testing::Test {
 protected:
  std::unique_ptr<Connector> make(const std::string& keys) {
    static const ConnectorRegistry reg = [] {
      ConnectorRegistry r;
      register_builtin_connectors(r);
      return r;
    }();
    HubConfig cfg;
    std::vector<ConfigError> errors;
    bool ok = load_hub_config_text(
        "store: {path: a.db}\nsources: {s: {type: $.event}}\n"
        "connectors:\n  d:\n    connector: http\n" +
            keys,
        "test.yaml", "/tmp", reg, cfg, errors);
    EXPECT_TRUE(ok) << (errors.empty() ? "" : errors[0].to_string());
    if (!ok) return nullptr;
    const DestinationConfig& dc = cfg.destinations.at("d");
    ConnectorContext ctx;
    ctx.name = dc.name;
    ctx.config = dc.settings;
    ctx.concurrency = 1;
    ctx.metrics = &metrics_;
    ctx.clock = &clock_;
    ctx.max_retry_after_ms = 120000;
    return reg.find("http")->create(ctx);
  }
  Outcome deliver(Connector& c, const std::string& text) {
    body_ = nlohmann::json{{"event", "rdv.planned"}, {"n", text}};
    payload_ = body_.dump();
    message_.id = "01HF0000000000000000000000";
    DeliveryRequest req;
    req.delivery_id = 7;
    req.message = &message_;
    req.body = &body_;
    req.mapped = &body_;
    req.payload = &payload_;
    req.content_type = "application/json";
    req.attempt = 1;
    return c.deliver(req);
  }

  Metrics metrics_;
  SystemClock clock_;
  Message message_;
  nlohmann::json body_;
  std::string payload_;
};

TEST_F(HttpDestinationResendTest, PostOnAReusedConnectionThatDiesIsAnUnknownOutcome) {
  SavesThenResets server(saving_partner());
  auto c = make("    url: " + server.base() + "/rdv\n");
  ASSERT_TRUE(c);
  ASSERT_EQ(deliver(*c, "one").kind, Outcome::Kind::Delivered);
  server.arm(is_post);
  Outcome o = deliver(*c, "two");
  EXPECT_EQ(o.kind, Outcome::Kind::Retry);
  EXPECT_EQ(o.error_class, "unknown_outcome");
  ASSERT_TRUE(server.fired());
  EXPECT_EQ(server.count(
                [](const SavedRequest& r) { return r.body.find("\"two\"") != std::string::npos; }),
            1u);
  EXPECT_EQ(server.requests().size(), 2u);
}

TEST_F(HttpDestinationResendTest, IdempotentKeyLetsLibcurlRetry) {
  SavesThenResets server(saving_partner());
  auto c = make("    url: " + server.base() + "/rdv\n    idempotent: true\n");
  ASSERT_TRUE(c);
  ASSERT_EQ(deliver(*c, "one").kind, Outcome::Kind::Delivered);
  server.arm(is_post);
  EXPECT_EQ(deliver(*c, "two").kind, Outcome::Kind::Delivered);
  EXPECT_EQ(server.requests().size(), 3u);  // the partner said the same twice is harmless
}

TEST_F(HttpDestinationResendTest, PutDefaultsToIdempotent) {
  SavesThenResets server(saving_partner());
  auto c = make("    url: " + server.base() + "/rdv\n    method: PUT\n");
  ASSERT_TRUE(c);
  ASSERT_EQ(deliver(*c, "one").kind, Outcome::Kind::Delivered);
  server.arm();
  EXPECT_EQ(deliver(*c, "two").kind, Outcome::Kind::Delivered);
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST_F(HttpDestinationResendTest, TooManyRequestsPausesTheDestination) {
  SavesThenResets server([](const SavedRequest&) {
    return SavesThenResets::answer(429, "slow down", "Retry-After: 86400\r\n");
  });
  auto c = make("    url: " + server.base() + "/rdv\n");
  ASSERT_TRUE(c);
  Outcome o = deliver(*c, "one");
  EXPECT_EQ(o.kind, Outcome::Kind::Throttle);
  EXPECT_EQ(o.throttle_scope, "");
  EXPECT_EQ(o.code, 429);
  EXPECT_EQ(o.retry_after_ms, 120000);  // ConnectorContext::max_retry_after_ms
  EXPECT_EQ(o.excerpt, "slow down");
}

}  // namespace
}  // namespace relais

// The generic HTTP connector: Retry-After parsing, status classification, and real requests
// against an in-process HttpSink (URL template, method, headers, auth, outcomes, failures).

#include <Poco/Net/ServerSocket.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <thread>

#include "connectors/http/http_connector.h"
#include "connectors/registry.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/metrics.h"
#include "routing/hub_config.h"
#include "tests/core/test_support.h"
#include "tests/support/saves_then_resets.h"
#include "tools/sink/http_sink.h"

namespace relais {
namespace {

using relais::tools::HttpSink;
using relais::tools::SinkRequest;
using relais::tools::SinkResponse;
using testing::SavedRequest;
using testing::SavesThenResets;

constexpr Millis kT0 = 1'700'000'000'000;  // a whole second

std::string http_date(Millis ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

TEST(RetryAfter, DelaySeconds) {
  EXPECT_EQ(parse_retry_after_ms("7", kT0), 7000);
  EXPECT_EQ(parse_retry_after_ms("0", kT0), 0);
  EXPECT_EQ(parse_retry_after_ms("120", kT0), 120000);
  EXPECT_EQ(parse_retry_after_ms("999999999", kT0), 999999999000LL);
  // Microsoft Graph sends fractions of a second: the one reader takes them (milliseconds).
  EXPECT_EQ(parse_retry_after_ms("7.5", kT0), 7500);
  EXPECT_EQ(parse_retry_after_ms("2.128", kT0), 2128);
  EXPECT_EQ(parse_retry_after_ms("0.0004", kT0), 0);
}

TEST(RetryAfter, HttpDate) {
  EXPECT_EQ(parse_retry_after_ms(http_date(kT0 + 30000), kT0), 30000);
  EXPECT_EQ(parse_retry_after_ms(http_date(kT0 + 3600000), kT0), 3600000);
  EXPECT_EQ(parse_retry_after_ms(http_date(kT0 + 30000), kT0 + 500), 29500);
  // In the past (or now): retry at once, never a negative delay.
  EXPECT_EQ(parse_retry_after_ms(http_date(kT0 - 60000), kT0), 0);
  EXPECT_EQ(parse_retry_after_ms(http_date(kT0), kT0), 0);
  EXPECT_EQ(parse_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", kT0), 0);
}

TEST(RetryAfter, GarbageIsNotUnderstood) {
  EXPECT_EQ(parse_retry_after_ms("", kT0), -1);
  EXPECT_EQ(parse_retry_after_ms("soon", kT0), -1);
  EXPECT_EQ(parse_retry_after_ms("-5", kT0), -1);
  EXPECT_EQ(parse_retry_after_ms("7.", kT0), -1);
  EXPECT_EQ(parse_retry_after_ms(".5", kT0), -1);
  EXPECT_EQ(parse_retry_after_ms("1.2.3", kT0), -1);
  EXPECT_EQ(parse_retry_after_ms("1e3", kT0), -1);
  EXPECT_EQ(parse_retry_after_ms("99999999999999999999", kT0), -1);  // no overflow
}

TEST(HttpStatus, Classification) {
  using K = Outcome::Kind;
  for (long s : {200L, 201L, 202L, 204L, 299L})
    EXPECT_EQ(classify_http_status(s), K::Delivered) << s;
  for (long s : {408L, 425L, 429L, 500L, 502L, 503L, 504L, 599L}) {
    EXPECT_EQ(classify_http_status(s), K::Retry) << s;
  }
  for (long s : {100L, 199L, 300L, 301L, 302L, 304L, 400L, 401L, 403L, 404L, 405L, 409L, 410L, 413L,
                 415L, 422L, 499L}) {
    EXPECT_EQ(classify_http_status(s), K::Reject) << s;
  }
}

const ConnectorRegistry& registry() {
  static const ConnectorRegistry r = [] {
    ConnectorRegistry reg;
    register_builtin_connectors(reg);
    return reg;
  }();
  return r;
}

// A port on 127.0.0.1 that nothing listens on (bound, then closed).
int closed_port() {
  Poco::Net::ServerSocket s(Poco::Net::SocketAddress("127.0.0.1", 0));
  int port = s.address().port();
  s.close();
  return port;
}

class HttpConnectorTest : public ::testing::Test {
 protected:
  // Builds the "sink" destination from YAML (the keys below "connectors: sink:").
  std::unique_ptr<Connector> make(const std::string& keys) {
    std::string text =
        "store: {path: a.db}\n"
        "sources: {s: {type: $.event}}\n"
        "connectors:\n"
        "  sink:\n"
        "    connector: http\n" +
        keys;
    HubConfig cfg;
    std::vector<ConfigError> errors;
    bool ok = load_hub_config_text(text, "test.yaml", "/tmp", registry(), cfg, errors);
    EXPECT_TRUE(ok) << (errors.empty() ? "" : errors[0].to_string());
    if (!ok) return nullptr;
    const DestinationConfig& dc = cfg.destinations.at("sink");
    ConnectorContext ctx;
    ctx.name = dc.name;
    ctx.config = dc.settings;
    ctx.concurrency = dc.concurrency;
    ctx.metrics = &metrics_;
    ctx.clock = &clock_;
    const ConnectorKind* kind = registry().find(dc.connector);
    EXPECT_NE(kind, nullptr);
    return kind->create(ctx);
  }

  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(sink_.port()) + path;
  }

  Outcome deliver(Connector& c, const std::string& body_text = R"({"event":"rdv.planned",
      "name":"Le Havre/é&x","id":91877})",
                  const std::string& content_type = "application/json") {
    body_ = nlohmann::json::parse(body_text);
    payload_ = body_.dump();
    message_.id = "01HF0000000000000000000000";
    message_.body = body_text;
    DeliveryRequest req;
    req.delivery_id = 42;
    req.message = &message_;
    req.body = &body_;
    req.mapped = &body_;
    req.payload = &payload_;
    req.content_type = content_type;
    req.attempt = 1;
    req.slot = 0;
    return c.deliver(req);
  }

  SinkRequest only_request() {
    auto reqs = sink_.requests();
    EXPECT_EQ(reqs.size(), 1u);
    return reqs.empty() ? SinkRequest{} : reqs[0];
  }

  HttpSink sink_;
  Metrics metrics_;
  SystemClock clock_;
  Message message_;
  nlohmann::json body_;
  std::string payload_;
};

TEST_F(HttpConnectorTest, DeliversWithUrlMethodHeadersAndBearer) {
  sink_.set_responder([](const SinkRequest&) {
    SinkResponse r;
    r.status = 201;
    r.headers["Location"] = "/items/77";
    r.body = "{\"created\":77}";
    return r;
  });
  auto c = make("    url: " + url("/items/{$.name}/{$.id}?src=cms") +
                "\n"
                "    method: PUT\n"
                "    headers: {X-Custom: abc, X-Other: 'v w'}\n"
                "    bearer_token: token-0123456789abcdef\n");
  ASSERT_TRUE(c);
  Outcome o = deliver(*c);
  EXPECT_EQ(o.kind, Outcome::Kind::Delivered) << o.text;
  EXPECT_EQ(o.external_ref, "/items/77");
  EXPECT_EQ(o.text, "HTTP 201");
  EXPECT_EQ(o.excerpt, "{\"created\":77}");
  SinkRequest r = only_request();
  EXPECT_EQ(r.method, "PUT");
  // Placeholders are URL-encoded; the literal text (query included) is kept as is.
  EXPECT_EQ(r.path, "/items/Le%20Havre%2F%C3%A9%26x/91877?src=cms");
  EXPECT_EQ(r.headers["x-relais-message-id"], "01HF0000000000000000000000");
  EXPECT_EQ(r.headers["x-relais-delivery-id"], "42");
  EXPECT_EQ(r.headers["content-type"], "application/json");
  EXPECT_EQ(r.headers["authorization"], "Bearer token-0123456789abcdef");
  EXPECT_EQ(r.headers["x-custom"], "abc");
  EXPECT_EQ(r.headers["x-other"], "v w");
  EXPECT_EQ(r.body, payload_);
}

TEST_F(HttpConnectorTest, PostWithBasicAuthAndContentType) {
  auto c = make("    url: " + url("/in") +
                "\n"
                "    basic_user: relais\n"
                "    basic_password: s3cret\n");
  ASSERT_TRUE(c);
  Outcome o = deliver(*c, R"({"event":"x"})", "application/vnd.cms+json");
  EXPECT_EQ(o.kind, Outcome::Kind::Delivered) << o.text;
  EXPECT_EQ(o.external_ref, "");  // no Location
  SinkRequest r = only_request();
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/in");
  EXPECT_EQ(r.headers["authorization"], "Basic cmVsYWlzOnMzY3JldA==");  // relais:s3cret
  EXPECT_EQ(r.headers["content-type"], "application/vnd.cms+json");
  EXPECT_EQ(r.headers.count("expect"), 0u);
  EXPECT_EQ(r.body, R"({"event":"x"})");
}

TEST_F(HttpConnectorTest, ConfiguredContentTypeReplacesThePayloadsOwn) {
  auto c = make("    url: " + url("/in") +
                "\n"
                "    headers: {content-type: 'application/soap+xml; charset=utf-8'}\n");
  ASSERT_TRUE(c);
  Outcome o = deliver(*c, R"({"soap":true})", "application/json");
  EXPECT_EQ(o.kind, Outcome::Kind::Delivered) << o.text;
  SinkRequest r = only_request();
  EXPECT_EQ(r.headers["content-type"], "application/soap+xml; charset=utf-8");
}

TEST_F(HttpConnectorTest, GetSendsNoBody) {
  auto c = make("    url: " + url("/lookup/{$.event}") + "\n    method: GET\n");
  ASSERT_TRUE(c);
  Outcome o = deliver(*c, R"({"event":"a b"})");
  EXPECT_EQ(o.kind, Outcome::Kind::Delivered) << o.text;
  SinkRequest r = only_request();
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.path, "/lookup/a%20b");
  EXPECT_TRUE(r.body.empty());
}

// A signature covers the bytes that go out: for a GET, none.
TEST_F(HttpConnectorTest, ASignedGetSignsTheEmptyBodyItSends) {
  auto c = make("    url: " + url("/lookup/{$.event}") +
                "\n    method: GET\n    sign:\n      secret: a-secret-of-32-characters-000000\n");
  ASSERT_TRUE(c);
  Outcome o = deliver(*c, R"({"event":"a"})");
  EXPECT_EQ(o.kind, Outcome::Kind::Delivered) << o.text;
  SinkRequest r = only_request();
  EXPECT_TRUE(r.body.empty());
  const std::string ts = r.headers["x-timestamp"];
  ASSERT_FALSE(ts.empty());
  EXPECT_EQ(r.headers["x-signature"],
            "sha256=" + hmac_sha256_hex("a-secret-of-32-characters-000000", ts + "."));
}

TEST_F(HttpConnectorTest, CustomReferenceHeaderAndBoundedExcerpt) {
  sink_.set_responder([](const SinkRequest&) {
    SinkResponse r;
    r.status = 200;
    r.headers["X-Ref"] = "  partner-123  ";
    r.body = std::string(5000, 'z');
    return r;
  });
  auto c = make("    url: " + url("/x") + "\n    reference_header: X-Ref\n    max_excerpt: 10\n");
  ASSERT_TRUE(c);
  Outcome o = deliver(*c);
  EXPECT_EQ(o.kind, Outcome::Kind::Delivered);
  EXPECT_EQ(o.external_ref, "partner-123");
  EXPECT_EQ(o.excerpt, std::string(10, 'z'));
}

// 503 with a Retry-After, and 429, are the partner's "slow down": a throttle of the destination
// (not an attempt), for the time asked, bounded by ConnectorContext::max_retry_after_ms.
TEST_F(HttpConnectorTest, PartnerSlowDownPausesTheDestinationForABoundedTime) {
  struct Case {
    int status;
    const char* retry_after;
    int64_t pause_ms;
  };
  for (Case k : {Case{503, "7", 7000}, Case{429, "86400", 15 * 60 * 1000}}) {
    sink_.clear();
    sink_.set_responder([k](const SinkRequest&) {
      SinkResponse r;
      r.status = k.status;
      r.headers["Retry-After"] = k.retry_after;
      r.body = "{\"error\":\"maintenance\"}";
      return r;
    });
    auto c = make("    url: " + url("/x") + "\n");
    ASSERT_TRUE(c);
    Outcome o = deliver(*c);
    EXPECT_EQ(o.kind, Outcome::Kind::Throttle);
    EXPECT_EQ(o.error_class, "throttled");
    EXPECT_EQ(o.throttle_scope, "");
    EXPECT_EQ(o.code, k.status);
    EXPECT_EQ(o.retry_after_ms, k.pause_ms);
    EXPECT_NE(o.text.find(std::to_string(k.status)), std::string::npos) << o.text;
    EXPECT_EQ(o.excerpt, "{\"error\":\"maintenance\"}");
    EXPECT_EQ(sink_.total(), 1u);
    EXPECT_EQ(sink_.count(), 0u);
  }
}

TEST_F(HttpConnectorTest, ServerErrorWithoutRetryAfterIsARetryWithoutDelay) {
  sink_.set_responder([](const SinkRequest&) {
    SinkResponse r;
    r.status = 500;
    r.headers["Retry-After"] = "whenever";
    return r;
  });
  auto c = make("    url: " + url("/x") + "\n");
  ASSERT_TRUE(c);
  Outcome o = deliver(*c);
  EXPECT_EQ(o.kind, Outcome::Kind::Retry);
  EXPECT_EQ(o.code, 500);
  EXPECT_FALSE(o.retry_after_ms.has_value());  // not understood: the back-off decides
}

TEST_F(HttpConnectorTest, NotFoundIsAReject) {
  sink_.set_responder([](const SinkRequest&) {
    SinkResponse r;
    r.status = 404;
    r.body = "{\"error\":\"no such rdv\"}";
    return r;
  });
  auto c = make("    url: " + url("/x") + "\n");
  ASSERT_TRUE(c);
  Outcome o = deliver(*c);
  EXPECT_EQ(o.kind, Outcome::Kind::Reject);
  EXPECT_EQ(o.error_class, "http");
  EXPECT_EQ(o.code, 404);
  EXPECT_NE(o.text.find("404"), std::string::npos);
  EXPECT_EQ(o.excerpt, "{\"error\":\"no such rdv\"}");
}

TEST_F(HttpConnectorTest, ConnectionRefusedIsANetworkRetry) {
  auto c = make("    url: http://127.0.0.1:" + std::to_string(closed_port()) + "/x\n");
  ASSERT_TRUE(c);
  Outcome o = deliver(*c);
  EXPECT_EQ(o.kind, Outcome::Kind::Retry);
  EXPECT_EQ(o.error_class, "network");
  EXPECT_NE(o.code, 0);
  EXPECT_NE(o.text.find("cannot reach"), std::string::npos) << o.text;
}

// A POST that times out after it was sent may have been taken: an unknown outcome. The same
// request declared idempotent is a plain timeout.
TEST_F(HttpConnectorTest, SlowDestinationIsATimeoutRetry) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  sink_.set_responder([&](const SinkRequest&) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return release; });
    return SinkResponse{};
  });
  auto c = make("    url: " + url("/slow") + "\n    timeout: 200ms\n");
  auto idem = make("    url: " + url("/slow") + "\n    timeout: 200ms\n    idempotent: true\n");
  ASSERT_TRUE(c && idem);
  Outcome unsure = deliver(*c);
  auto start = std::chrono::steady_clock::now();
  Outcome o = deliver(*idem);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - start)
                  .count();
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  // The responder uses this test's locals: wait until it has returned, then forget it.
  EXPECT_TRUE(relais::testing::wait_until([&] { return sink_.total() >= 2; }));
  sink_.set_responder(nullptr);
  EXPECT_EQ(unsure.kind, Outcome::Kind::Retry);
  EXPECT_EQ(unsure.error_class, "unknown_outcome");
  EXPECT_EQ(o.kind, Outcome::Kind::Retry);
  EXPECT_EQ(o.error_class, "timeout");
  EXPECT_GE(took, 150);
  EXPECT_LT(took, 3000);
}

// ---- no silent re-send (connectors/http/curl_capture.h), throttling ---------------------------

// The partner: saves every request and answers 200 (keep-alive).
SavesThenResets::Backend saving_partner() {
  return [](const SavedRequest& r) { return SavesThenResets::answer(200, "saved " + r.body); };
}

TEST_F(HttpConnectorTest, PostOnAReusedConnectionThatDiesIsAnUnknownOutcome) {
  SavesThenResets server(saving_partner());
  auto c = make("    url: " + server.base() + "/rdv\n");
  ASSERT_TRUE(c);
  ASSERT_EQ(deliver(*c, R"({"event":"rdv.planned","n":"one"})").kind, Outcome::Kind::Delivered);
  server.arm([](const SavedRequest& r) { return r.method == "POST"; });
  Outcome o = deliver(*c, R"({"event":"rdv.planned","n":"two"})");
  EXPECT_EQ(o.kind, Outcome::Kind::Retry);
  EXPECT_EQ(o.error_class, "unknown_outcome");
  ASSERT_TRUE(server.fired());
  EXPECT_EQ(server.count(
                [](const SavedRequest& r) { return r.body.find("\"two\"") != std::string::npos; }),
            1u);
  EXPECT_EQ(server.requests().size(), 2u);
}

// `idempotent: true` (a POST the partner deduplicates), or a PUT by default: libcurl may re-send.
TEST_F(HttpConnectorTest, IdempotentRequestsKeepLibcurlsRetry) {
  for (const std::string keys : {"    idempotent: true\n", "    method: PUT\n"}) {
    SavesThenResets server(saving_partner());
    auto c = make("    url: " + server.base() + "/rdv\n" + keys);
    ASSERT_TRUE(c);
    ASSERT_EQ(deliver(*c).kind, Outcome::Kind::Delivered);
    server.arm();
    EXPECT_EQ(deliver(*c).kind, Outcome::Kind::Delivered) << keys;
    EXPECT_EQ(server.requests().size(), 3u) << keys;
  }
}

TEST_F(HttpConnectorTest, MissingUrlValueIsAConfigReject) {
  auto c = make("    url: " + url("/rdv/{$.rdv.id}") + "\n");
  ASSERT_TRUE(c);
  Outcome o = deliver(*c, R"({"event":"x"})");
  EXPECT_EQ(o.kind, Outcome::Kind::Reject);
  EXPECT_EQ(o.error_class, "config");
  EXPECT_NE(o.text.find("$.rdv.id"), std::string::npos) << o.text;
  EXPECT_EQ(sink_.total(), 0u);
}

TEST_F(HttpConnectorTest, SeveralSlotsDeliverConcurrently) {
  auto c = make("    url: " + url("/n/{$.n}") + "\n    concurrency: 3\n");
  ASSERT_TRUE(c);
  std::vector<std::thread> threads;
  std::atomic<int> delivered{0};
  for (int slot = 0; slot < 3; ++slot) {
    threads.emplace_back([&, slot] {
      Message m;
      m.id = "01HF000000000000000000000" + std::to_string(slot);
      for (int i = 0; i < 10; ++i) {
        nlohmann::json b = {{"n", slot * 100 + i}};
        std::string p = b.dump();
        DeliveryRequest req;
        req.delivery_id = slot * 100 + i;
        req.message = &m;
        req.body = &b;
        req.mapped = &b;
        req.payload = &p;
        req.slot = slot;
        if (c->deliver(req).kind == Outcome::Kind::Delivered) delivered.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(delivered.load(), 30);
  EXPECT_EQ(sink_.count(), 30u);
}

TEST_F(HttpConnectorTest, TestingTheConnectionConnectsAndSendsNothing) {
  auto c = make("    url: " + url("/items/{$.id}") + "\n");
  ASSERT_TRUE(c);
  Status s = c->probe();
  EXPECT_TRUE(s.ok) << s.error << ": " << s.detail;
  EXPECT_TRUE(sink_.requests().empty());
  // Nobody listens: the failure names the host and port, never the query (credentials).
  auto gone = make("    url: http://127.0.0.1:9/items/{$.id}?password=secret\n");
  ASSERT_TRUE(gone);
  s = gone->probe();
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.error, "connexion impossible");
  EXPECT_NE(s.detail.find("127.0.0.1:9"), std::string::npos) << s.detail;
  EXPECT_EQ(s.detail.find("secret"), std::string::npos) << s.detail;
  // A host taken from the message cannot be tested: said so, never a false "OK".
  auto variable = make("    url: \"http://{$.host}/x\"\n");
  ASSERT_TRUE(variable);
  s = variable->probe();
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.error, "test non disponible");
}

}  // namespace
}  // namespace relais

// Trust at the doors of the real binary (docs/security.md): signed webhooks in (every failure
// answered 401 and nothing stored) and out (the sink checks the signature with its own HMAC).

#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdlib>
#include <ctime>
#include <map>

#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;

const std::string kSecret = "inbound-secret-0123456789abcdef";
const std::string kOutSecret = "outbound-secret-fedcba9876543210";

// An HMAC-SHA256 of the test's own (not relais's helper): the check is independent.
std::string hmac_hex(const std::string& key, const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

std::string now_s(int64_t offset = 0) {
  return std::to_string(static_cast<int64_t>(std::time(nullptr)) + offset);
}

class SignedWebhookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A strict partner: a request without a valid signature (or older than 5 min) is refused.
    sink_.set_responder([](const tools::SinkRequest& r) {
      tools::SinkResponse out;
      auto ts = r.headers.find("x-relais-timestamp");
      auto sig = r.headers.find("x-relais-signature");
      bool ok = ts != r.headers.end() && sig != r.headers.end() &&
                sig->second == "sha256=" + hmac_hex(kOutSecret, ts->second + "." + r.body) &&
                std::llabs(std::stoll(ts->second) - std::time(nullptr)) <= 300;
      if (!ok) {
        out.status = 401;
        out.body = "{\"error\":\"bad signature\"}";
      }
      return out;
    });
    std::string secret_file = dir_.write("inbound.secret", kSecret);
    std::string out_file = dir_.write("outbound.secret", kOutSecret);
    RelaisOptions o;
    o.binary = RELAIS_BINARY;
    o.body_yaml =
        "sources:\n  partner:\n    type: $.event\n    signature:\n"
        "      secret: \"@file:" +
        secret_file +
        "\"\n"
        "      tolerance: 5m\n"
        "  open:\n    type: $.event\n"
        "connectors:\n  out:\n    connector: http\n    url: http://127.0.0.1:" +
        std::to_string(sink_.port()) +
        "/in\n    retry: {initial: 50ms, max: 100ms, max_attempts: 2}\n"
        "    sign:\n      header: X-Relais-Signature\n"
        "      timestamp_header: X-Relais-Timestamp\n"
        "      secret: \"@file:" +
        out_file +
        "\"\n"
        "routes:\n  - name: r\n    source: partner\n    to:\n"
        "      - destination: out\n";
    relais_ = std::make_unique<RelaisProcess>(o);
    relais_->start();
  }

  HttpResponse post(const std::string& body, const HttpClient::Headers& headers,
                    const std::string& source = "partner") {
    HttpClient c(relais_->base_url(), relais_->system_token());
    return c.post_json("/api/v1/sources/" + source + "/messages", body, headers);
  }
  static HttpClient::Headers signed_headers(const std::string& body, const std::string& ts,
                                            const std::string& secret = kSecret) {
    return {"X-Timestamp: " + ts, "X-Signature: sha256=" + hmac_hex(secret, ts + "." + body)};
  }
  size_t stored(const std::string& source = "partner") {
    auto r = relais_->client().get("/api/v1/messages?source=" + source);
    return r.json().value("items", json::array()).size();
  }
  void expect_refused(const HttpResponse& r, const std::string& reason) {
    EXPECT_EQ(r.status, 401) << r.body;
    EXPECT_EQ(r.json().value("error", ""), "invalid signature") << r.body;
    EXPECT_EQ(r.json().value("signature", ""), reason) << r.body;
    EXPECT_FALSE(r.json().value("detail", "").empty());
    EXPECT_EQ(r.body.find(kSecret), std::string::npos);
  }

  TempDir dir_;
  tools::HttpSink sink_{0, true, 4};
  std::unique_ptr<RelaisProcess> relais_;
};

TEST_F(SignedWebhookTest, AGoodSignatureIsAcceptedAndTheDeliveryIsSignedForThePartner) {
  std::string body = R"({"event":"rdv.planned","id":1})";
  auto r = post(body, signed_headers(body, now_s()));
  ASSERT_EQ(r.status, 202) << r.body;
  // The sink answers 401 unless the signature it recomputes matches: a 2xx means signed.
  ASSERT_EQ(sink_.wait_for(1, 10000), 1u);
  auto reqs = sink_.requests();
  EXPECT_EQ(reqs[0].body, body);
  EXPECT_TRUE(wait_until(
      [&] {
        auto m = relais_->client().get("/api/v1/messages/" + r.json().value("id", ""));
        return m.json()["deliveries"][0].value("state", "") == "delivered";
      },
      std::chrono::seconds(10)));
  EXPECT_EQ(stored(), 1u);
  // No pseudonym key configured here: relais says so at start-up (docs/security.md).
  EXPECT_NE((relais_->stdout_text() + relais_->stderr_text()).find("no pseudonym key"),
            std::string::npos);
}

TEST_F(SignedWebhookTest, BadMissingAndStaleSignaturesAreRefusedAndNothingIsStored) {
  std::string body = R"({"event":"rdv.planned","id":2})";
  std::string ts = now_s();
  // Signed with another secret; a body changed after signing; a timestamp changed.
  expect_refused(post(body, signed_headers(body, ts, "not-the-shared-secret-at-all")),
                 "bad_signature");
  expect_refused(post(body + " ", signed_headers(body, ts)), "bad_signature");
  auto sig = signed_headers(body, ts);
  expect_refused(post(body, {"X-Timestamp: " + now_s(-1), sig[1]}), "bad_signature");
  // Missing parts.
  expect_refused(post(body, {}), "missing_signature");
  expect_refused(post(body, {sig[1]}), "missing_timestamp");
  expect_refused(post(body, {"X-Timestamp: tomorrow", sig[1]}), "bad_timestamp");
  // Correctly signed but ten minutes old (a replay), or from the future.
  expect_refused(post(body, signed_headers(body, now_s(-600))), "stale_timestamp");
  expect_refused(post(body, signed_headers(body, now_s(600))), "stale_timestamp");
  // The batch door checks the same way.
  HttpClient c(relais_->base_url(), relais_->system_token());
  auto b = c.post_ndjson("/api/v1/sources/partner/messages:batch", body + "\n", {});
  EXPECT_EQ(b.status, 401) << b.body;
  EXPECT_EQ(stored(), 0u);
  // A source without signature still takes unsigned messages.
  EXPECT_EQ(post(body, {}, "open").status, 202);
  auto metrics = relais_->client().get("/metrics");
  EXPECT_GE(
      metric_value(metrics.body,
                   "relais_signature_refused_total{source=\"partner\",reason=\"bad_signature\"}"),
      3);
}

TEST_F(SignedWebhookTest, ACapturedRequestReplayedWithItsOldTimestampIsRefused) {
  // A request signed 6 minutes ago (as an eavesdropper would have captured it, headers and
  // all) is sent again now.
  std::string body = R"({"event":"rdv.planned","id":3})";
  auto captured = signed_headers(body, now_s(-360));
  expect_refused(post(body, captured), "stale_timestamp");
  EXPECT_EQ(stored(), 0u);
  EXPECT_EQ(sink_.total(), 0u);
}

// --- behind a reverse proxy (server.trusted_proxies) ---

class ProxyTest : public ::testing::Test {
 protected:
  void start(const std::string& trusted) {
    RelaisOptions o;
    o.binary = RELAIS_BINARY;
    o.server_extra_yaml = "  trusted_proxies: " + trusted + "\n";
    o.body_yaml = "sources:\n  app:\n    type: $.event\n";
    relais_ = std::make_unique<RelaisProcess>(o);
    relais_->start();
    for (const char* user : {"alice", "bob"}) {
      auto r = relais_->client().post_json(
          "/api/v1/users",
          json{{"name", user}, {"role", "support"}, {"password", "correct horse battery"}}.dump());
      ASSERT_EQ(r.status, 201) << r.body;
    }
  }
  HttpResponse login(const std::string& user, const std::string& password,
                     const std::string& forwarded_for) {
    HttpClient c(relais_->base_url());
    return c.post_json("/api/v1/session", json{{"user", user}, {"password", password}}.dump(),
                       {"X-Forwarded-For: " + forwarded_for});
  }
  // The addresses of the audit entries with `action`.
  std::vector<std::string> audited(const std::string& action) {
    std::vector<std::string> out;
    auto r = relais_->client().get("/api/v1/audit?action=" + action);
    for (const auto& e : r.json().value("items", json::array()))
      out.push_back(e.value("address", ""));
    return out;
  }
  std::unique_ptr<RelaisProcess> relais_;
};

TEST_F(ProxyTest, ThrottlingAndAuditSeeTheRealClientBehindATrustedProxy) {
  start("[127.0.0.1, 10.0.0.0/8]");
  // 20 failed logins (20 user names: the per-address limit) from one client through the proxy;
  // a spoofed hop on the left is ignored: the proxy appends the address it saw.
  for (int i = 0; i < 20; ++i) {
    auto r = login("nobody" + std::to_string(i), "wrong password",
                   "198.51.100." + std::to_string(i) + ", 203.0.113.7");
    EXPECT_EQ(r.status, 401) << r.body;
  }
  // That client is now throttled, even with a right password.
  EXPECT_EQ(login("bob", "correct horse battery", "203.0.113.7").status, 429);
  // Another client behind the same proxy logs in.
  auto ok = login("bob", "correct horse battery", "192.0.2.44");
  EXPECT_EQ(ok.status, 200) << ok.body;
  auto failed = audited("login.failed");
  EXPECT_EQ(failed.size(), 20u);
  for (const auto& a : failed) EXPECT_EQ(a, "203.0.113.7");
  EXPECT_EQ(audited("login"), std::vector<std::string>{"192.0.2.44"});
}

TEST_F(ProxyTest, AnUntrustedSendersForwardedForIsIgnored) {
  start("[10.0.0.0/8]");  // the test client (127.0.0.1) is not a trusted proxy
  for (int i = 0; i < 20; ++i) {
    auto r =
        login("nobody" + std::to_string(i), "wrong password", "203.0.113." + std::to_string(i));
    EXPECT_EQ(r.status, 401) << r.body;
  }
  auto failed = audited("login.failed");
  EXPECT_EQ(failed.size(), 20u);
  for (const auto& a : failed) EXPECT_EQ(a, "127.0.0.1");
  // Rotating X-Forwarded-For does not escape the throttle of the real address.
  auto r = login("bob", "correct horse battery", "192.0.2.44");
  EXPECT_EQ(r.status, 429) << r.body;
}

// --- scopes: free/busy per token, secrets in connector URLs ---

class ScopesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RelaisOptions o;
    o.binary = RELAIS_BINARY;
    // The first lines continue the harness's auth.tokens list: the portal's system token.
    o.body_yaml =
        "    - name: portail\n      token: " + kPortal +
        "\n      role: system\n"
        "      free_busy_mailboxes: [\"*@cms76.example\", agenda-*@dept76.example]\n"
        "sources:\n  app:\n    type: $.event\n"
        "connectors:\n"
        "  agenda:\n    connector: calendar\n    driver: ews\n"
        "    url: http://127.0.0.1:" +
        std::to_string(free_port()) +
        "/EWS/Exchange.asmx\n    auth: basic\n    user: svc-relais\n"
        "    password: not-shown-anywhere\n    timeout: 2s\n"
        "  partner:\n    connector: http\n"
        "    url: https://svc:hunter2-in-url@partner.example/in?x=1&access_token=tk-in-url"
        "&apiKey=key-in-url\n";
    relais_ = std::make_unique<RelaisProcess>(o);
    relais_->start();
  }
  HttpResponse free_busy(const std::string& token, const std::string& mailbox) {
    HttpClient c(relais_->base_url(), token);
    return c.get("/api/v1/destinations/agenda/free-busy?mailbox=" + mailbox +
                 "&from=2026-12-01&to=2026-12-02");
  }
  json audit(const std::string& action) {
    return relais_->client()
        .get("/api/v1/audit?action=" + action)
        .json()
        .value("items", json::array());
  }
  const std::string kPortal = "portal-system-token-0123456789";
  std::unique_ptr<RelaisProcess> relais_;
};

TEST_F(ScopesTest, FreeBusyIsLimitedToTheTokensMailboxesAndAudited) {
  // Allowed mailboxes: the calendar is unreachable here, so 502/503 — but not refused.
  auto ok1 = free_busy(kPortal, "m.durand@cms76.example");
  EXPECT_TRUE(ok1.status == 502 || ok1.status == 503) << ok1.status << " " << ok1.body;
  auto ok2 = free_busy(kPortal, "Agenda-Rouen@DEPT76.example");
  EXPECT_TRUE(ok2.status == 502 || ok2.status == 503) << ok2.status << " " << ok2.body;
  // Another mailbox, or a system token without a list: 403.
  auto no1 = free_busy(kPortal, "someone@elsewhere.example");
  EXPECT_EQ(no1.status, 403) << no1.body;
  EXPECT_EQ(free_busy(kPortal, "m.durand@cms76.example.evil.example").status, 403);
  EXPECT_EQ(free_busy(relais_->system_token(), "m.durand@cms76.example").status, 403);
  // The mailbox twice (an allowed one checked, another read): refused before anything.
  auto twice = free_busy(kPortal, "m.durand@cms76.example&mailbox=someone@elsewhere.example");
  EXPECT_EQ(twice.status, 400) << twice.body;
  // Admins read any mailbox.
  auto admin = free_busy(relais_->token(), "someone@elsewhere.example");
  EXPECT_NE(admin.status, 403) << admin.body;
  // Who read which mailbox, refused or not.
  json reads = audit("freebusy.read"), refused = audit("freebusy.refused");
  ASSERT_EQ(reads.size(), 3u) << reads;
  ASSERT_EQ(refused.size(), 3u) << refused;
  bool seen = false;
  for (const auto& e : reads) {
    if (e.value("actor", "") == "portail" &&
        e.value("object", "") == "destination:agenda mailbox:m.durand@cms76.example") {
      seen = true;
    }
  }
  EXPECT_TRUE(seen) << reads;
  std::map<std::string, int> by_actor;
  for (const auto& e : refused) ++by_actor[e.value("actor", "")];
  EXPECT_EQ(by_actor["portail"], 2);
  EXPECT_EQ(by_actor["test-system"], 1);
}

TEST_F(ScopesTest, SecretsInConnectorUrlsAreMaskedInTheDestinationsView) {
  auto r = relais_->client().get("/api/v1/destinations");
  ASSERT_EQ(r.status, 200) << r.body;
  for (const char* secret : {"hunter2-in-url", "tk-in-url", "key-in-url", "not-shown-anywhere"}) {
    EXPECT_EQ(r.body.find(secret), std::string::npos) << secret << " in " << r.body;
  }
  std::string url;
  json list = r.json();
  for (const auto& d : list["items"]) {
    if (d["name"] == "partner") url = d["settings"].value("url", "");
  }
  EXPECT_EQ(url, "https://svc:•••@partner.example/in?x=1&access_token=•••&apiKey=•••") << r.body;
}

}  // namespace
}  // namespace relais::testing

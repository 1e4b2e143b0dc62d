// No silent re-send of a non-idempotent request (connectors/http/curl_capture.h): libcurl alone
// re-sends a POST when a reused keep-alive connection dies after the partner saved it; with
// set_request it does not, and the failure reads as "sent, outcome unknown"; the partner's
// "slow down" (429, 503 + Retry-After) as a throttle. The generic HTTP destination over the same
// fault: http_connector_test.cpp.

#include <gtest/gtest.h>

#include <sys/socket.h>

#include <string>

#include "apps/api_client.h"
#include "connectors/http/curl_capture.h"
#include "connectors/http/http_connector.h"
#include "tests/support/raw_http.h"
#include "tests/support/saves_then_resets.h"
#include "tools/sink/http_sink.h"

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

// The sub-commands' client of relais: a POST is not re-sent by libcurl and says that it may
// have been applied; a request the caller declares idempotent (a batch with idempotency keys)
// keeps libcurl's re-send.
TEST(CurlResend, ApiClientNeverResendsANonIdempotentRequestSilently) {
  SavesThenResets relais(saving_partner());
  ApiClient api(relais.base(), "token");
  ASSERT_EQ(api.get("/api/v1/health").status, 200);
  relais.arm(is_post);
  ApiAnswer a = api.send("POST", "/api/v1/deliveries/7/retry", "{}", "application/json");
  ASSERT_TRUE(relais.fired());
  EXPECT_EQ(a.status, 0);
  EXPECT_TRUE(a.maybe_applied);
  EXPECT_NE(a.describe().find("may have been applied"), std::string::npos) << a.describe();
  EXPECT_EQ(relais.count(is_post), 1u);

  ASSERT_EQ(api.get("/api/v1/health").status, 200);  // a new keep-alive connection
  relais.arm(is_post);
  ApiAnswer b =
      api.send("POST", "/api/v1/sources/s/messages:batch", "{}\n", "application/x-ndjson", true);
  EXPECT_EQ(b.status, 200);
  EXPECT_EQ(relais.count(is_post), 3u);
}

// The test sink never counts a request whose body was cut short.
TEST(CurlResend, SinkIgnoresARequestWhoseBodyWasCut) {
  tools::HttpSink sink;
  {
    testing::RawConnection cut(sink.port());
    ASSERT_TRUE(cut.send("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789"));
    ::shutdown(cut.fd(), SHUT_WR);
    ASSERT_TRUE(cut.closed_by_peer());  // the sink gave up on it, without an answer
  }
  testing::RawConnection whole(sink.port());
  ASSERT_TRUE(whole.send("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok"));
  EXPECT_EQ(whole.read_response().status, 200);
  EXPECT_EQ(sink.total(), 1u);
  ASSERT_EQ(sink.requests().size(), 1u);
  EXPECT_EQ(sink.requests()[0].body, "ok");
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

}  // namespace
}  // namespace relais

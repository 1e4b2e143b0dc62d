// Tests of the event-driven HTTP server (api/http_server.h) in process, over loopback sockets
// with a small handler: framing, keep-alive, pipelining, 100-continue, deadlines, limits,
// slow clients and shutdown.

#include <gtest/gtest.h>

#include <Poco/StreamCopier.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/http_server.h"
#include "tests/support/raw_http.h"

namespace relais::api {
namespace {

using relais::testing::RawConnection;
using relais::testing::RawResponse;
using SteadyClock = std::chrono::steady_clock;

std::string lower(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// The threads that finish deferred answers (the store's completion thread in relais), joined
// by the test's TearDown after the server stopped.
std::mutex finishers_mu;
std::vector<std::thread> finishers;

// Finishes `later` with "METHOD TARGET BODY" from another thread after `delay_ms`.
void finish_later(std::shared_ptr<DeferredAnswer> later, std::string text, int delay_ms) {
  std::lock_guard<std::mutex> lock(finishers_mu);
  finishers.emplace_back([later = std::move(later), text = std::move(text), delay_ms] {
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    later->finish([&](Poco::Net::HTTPServerResponse& resp) {
      resp.setContentType("text/plain");
      resp.send() << text;
    });
  });
}

// Answers "METHOD TARGET BODY"; /sleep waits 300 ms first; /close asks to close. Deferred
// answers: /defer (finished by another thread 50 ms later), /defer-slow (500 ms later),
// /defer-now (finished before the handler returns), /defer-drop (never finished: 500),
// /defer-throw (deferred, then the handler throws: 500).
void echo(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp) {
  std::string body;
  Poco::StreamCopier::copyToString(req.stream(), body);
  const std::string text = req.getMethod() + " " + req.getURI() + " " + body;
  if (req.getURI().rfind("/defer", 0) == 0) {
    auto later = defer_answer(req);
    if (later == nullptr) {  // over the bound of deferred answers: answered here
      resp.send() << "not deferred: " << text;
      return;
    }
    EXPECT_EQ(defer_answer(req), later);  // one per request
    if (req.getURI() == "/defer") return finish_later(later, text, 50);
    if (req.getURI() == "/defer-slow") return finish_later(later, text, 500);
    if (req.getURI() == "/defer-throw") throw std::runtime_error("boom after deferring");
    if (req.getURI() == "/defer-now") {
      later->finish([&](Poco::Net::HTTPServerResponse& r) { r.send() << text; });
      later->finish([&](Poco::Net::HTTPServerResponse& r) { r.send() << "twice"; });  // ignored
    }
    return;
  }
  if (req.getURI() == "/sleep") std::this_thread::sleep_for(std::chrono::milliseconds(300));
  if (req.getURI() == "/close") resp.setKeepAlive(false);
  if (req.getURI() == "/throw") throw std::runtime_error("boom");
  resp.setContentType("text/plain");
  resp.send() << req.getMethod() << " " << req.getURI() << " " << body;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void start(HttpServerOptions o = {}) {
    o.threads = o.threads == 16 ? 4 : o.threads;
    server_ = std::make_unique<HttpServer>(o, echo);
    port_ = server_->start();
  }
  // A server of `threads` handler threads, and `n` connections that each sent `request`.
  std::vector<RawConnection> start_with_clients(int threads, int n, const std::string& request) {
    HttpServerOptions o;
    o.threads = threads;
    start(o);
    std::vector<RawConnection> conns;
    for (int i = 0; i < n; ++i) {
      conns.emplace_back(port_);
      EXPECT_TRUE(conns.back().send(request));
    }
    return conns;
  }
  void TearDown() override {
    if (server_) server_->stop();
    std::lock_guard<std::mutex> lock(finishers_mu);
    for (auto& t : finishers) t.join();
    finishers.clear();
  }
  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
};

TEST_F(HttpServerTest, AnswersWithLengthDateAndServer) {
  start();
  RawConnection c(port_);
  ASSERT_TRUE(c.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  RawResponse r = c.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.version, "HTTP/1.1");
  EXPECT_EQ(r.body, "GET /hello ");
  EXPECT_EQ(r.header("content-length"), std::to_string(r.body.size()));
  EXPECT_EQ(r.header("server"), "relais");
  EXPECT_FALSE(r.header("date").empty());
  EXPECT_EQ(lower(r.header("connection")), "keep-alive");
  // Same connection, next request.
  ASSERT_TRUE(c.send("POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"));
  r = c.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "POST /p abc");
}

TEST_F(HttpServerTest, HeadGetsHeadersOnly) {
  start();
  RawConnection c(port_);
  ASSERT_TRUE(c.send("HEAD /h HTTP/1.1\r\n\r\n"));
  EXPECT_FALSE(c.closed_by_peer(300));  // collects what arrives
  const std::string& raw = c.pending();
  EXPECT_EQ(raw.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << raw;
  EXPECT_NE(raw.find("Content-Length: 8\r\n"), std::string::npos) << raw;  // of "HEAD /h "
  EXPECT_EQ(raw.find("\r\n\r\n"), raw.size() - 4) << raw;                  // no body
  c.clear_pending();
  ASSERT_TRUE(c.send("GET /g HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(c.read_response().body, "GET /g ");
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  start();
  RawConnection c(port_);
  ASSERT_TRUE(
      c.send("POST /1 HTTP/1.1\r\nContent-Length: 1\r\n\r\naGET /sleep HTTP/1.1\r\n\r\nGET /3 "
             "HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(c.read_response().body, "POST /1 a");
  EXPECT_EQ(c.read_response().body, "GET /sleep ");
  EXPECT_EQ(c.read_response().body, "GET /3 ");
}

TEST_F(HttpServerTest, HeaderAndBodySplitAcrossWrites) {
  start();
  RawConnection c(port_);
  const std::string req = "PUT /split HTTP/1.1\r\nContent-Length: 6\r\n\r\nabcdef";
  for (char ch : req) {
    ASSERT_TRUE(c.send(std::string(1, ch)));
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(c.read_response().body, "PUT /split abcdef");
}

TEST_F(HttpServerTest, ExpectContinueIsAnsweredBeforeTheBody) {
  start();
  RawConnection c(port_);
  ASSERT_TRUE(c.send("POST /c HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"));
  RawResponse r = c.read_response(2000);
  EXPECT_EQ(r.status, 100);
  ASSERT_TRUE(c.send("body"));
  r = c.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "POST /c body");
}

TEST_F(HttpServerTest, ChunkedRequestBody) {
  start();
  RawConnection c(port_);
  ASSERT_TRUE(c.send("POST /ch HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"));
  ASSERT_TRUE(c.send("2\r\nde\r\n0\r\n\r\n"));
  EXPECT_EQ(c.read_response().body, "POST /ch abcde");
}

TEST_F(HttpServerTest, ConnectionCloseAndHttp10CloseAfterTheAnswer) {
  start();
  {
    RawConnection c(port_);
    ASSERT_TRUE(c.send("GET /a HTTP/1.1\r\nConnection: close\r\n\r\n"));
    RawResponse r = c.read_response();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(lower(r.header("connection")), "close");
    EXPECT_TRUE(c.closed_by_peer(2000));
  }
  {
    RawConnection c(port_);
    ASSERT_TRUE(c.send("GET /b HTTP/1.0\r\n\r\n"));
    RawResponse r = c.read_response();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.version, "HTTP/1.0");
    EXPECT_TRUE(c.closed_by_peer(2000));
  }
  {
    RawConnection c(port_);  // HTTP/1.0 keep-alive
    ASSERT_TRUE(c.send("GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    RawResponse r = c.read_response();
    EXPECT_EQ(lower(r.header("connection")), "keep-alive");
    ASSERT_TRUE(c.send("GET /d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    EXPECT_EQ(c.read_response().body, "GET /d ");
  }
  {
    RawConnection c(port_);  // the handler asks to close
    ASSERT_TRUE(c.send("GET /close HTTP/1.1\r\n\r\n"));
    EXPECT_EQ(lower(c.read_response().header("connection")), "close");
    EXPECT_TRUE(c.closed_by_peer(2000));
  }
}

TEST_F(HttpServerTest, OversizedHeaderIs431) {
  HttpServerOptions o;
  o.max_header_bytes = 2048;
  start(o);
  RawConnection c(port_);
  ASSERT_TRUE(c.send("GET / HTTP/1.1\r\nX-Big: " + std::string(4000, 'b') + "\r\n\r\n"));
  RawResponse r = c.read_response();
  EXPECT_EQ(r.status, 431);
  EXPECT_NE(r.body.find("\"error\""), std::string::npos);
  EXPECT_TRUE(c.closed_by_peer(3000));
  EXPECT_EQ(server_->stats().bad_requests, 1u);
}

TEST_F(HttpServerTest, DeclaredBodyOverTheLimitIsNotReadAndCloses) {
  HttpServerOptions o;
  o.body_limit = [](const HttpRequestHead&) { return int64_t{10}; };
  start(o);
  RawConnection c(port_);
  ASSERT_TRUE(c.send("POST /big HTTP/1.1\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n"));
  RawResponse r = c.read_response();
  EXPECT_EQ(r.status, 200);         // the handler decides (the API answers 413)
  EXPECT_EQ(r.body, "POST /big ");  // without the body
  EXPECT_EQ(lower(r.header("connection")), "close");
  EXPECT_TRUE(c.closed_by_peer(3000));
}

TEST_F(HttpServerTest, HeaderDeadlineIsPerConnectionNotPerRead) {
  HttpServerOptions o;
  o.header_timeout_ms = 500;
  start(o);
  RawConnection c(port_);
  auto t0 = SteadyClock::now();
  ASSERT_TRUE(c.send("GET / HTTP/1.1\r\n"));
  // A byte every 100 ms would satisfy a per-read timeout forever; the deadline still falls.
  RawResponse r;
  for (int i = 0; i < 30; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (c.peer_closed_now() || !c.send("X")) break;
  }
  auto elapsed = SteadyClock::now() - t0;
  EXPECT_LT(elapsed, std::chrono::milliseconds(1500));
  EXPECT_NE(c.pending().find("408"), std::string::npos) << c.pending();
  EXPECT_EQ(server_->stats().header_timeouts, 1u);
}

TEST_F(HttpServerTest, BodyDeadline) {
  HttpServerOptions o;
  o.body_timeout_ms = 400;
  start(o);
  RawConnection c(port_);
  ASSERT_TRUE(c.send("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nsome"));
  RawResponse r = c.read_response(3000);
  EXPECT_EQ(r.status, 408);
  EXPECT_TRUE(c.closed_by_peer(3000));
  EXPECT_EQ(server_->stats().body_timeouts, 1u);
}

TEST_F(HttpServerTest, IdleKeepAliveConnectionIsClosedSilently) {
  HttpServerOptions o;
  o.idle_timeout_ms = 300;
  start(o);
  RawConnection c(port_);
  ASSERT_TRUE(c.send("GET / HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(c.read_response().status, 200);
  EXPECT_TRUE(c.closed_by_peer(3000));
  EXPECT_TRUE(c.pending().empty()) << c.pending();
  EXPECT_EQ(server_->stats().header_timeouts, 0u);
}

TEST_F(HttpServerTest, MaxConnectionsRefusesWith503) {
  HttpServerOptions o;
  o.max_connections = 2;
  start(o);
  RawConnection a(port_), b(port_);
  ASSERT_TRUE(a.send("GET /a HTTP/1.1\r\n\r\n"));
  ASSERT_EQ(a.read_response().status, 200);
  ASSERT_TRUE(b.send("GET /b HTTP/1.1\r\n\r\n"));
  ASSERT_EQ(b.read_response().status, 200);
  RawConnection c(port_);
  RawResponse r = c.read_response(3000);
  EXPECT_EQ(r.status, 503);
  EXPECT_TRUE(c.closed_by_peer(3000));
  EXPECT_EQ(server_->stats().refused, 1u);
}

TEST_F(HttpServerTest, HandlerExceptionIs500) {
  start();
  RawConnection c(port_);
  ASSERT_TRUE(c.send("GET /throw HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(c.read_response().status, 500);
}

TEST_F(HttpServerTest, SlowClientsHoldNoThread) {
  std::vector<RawConnection> slow =
      start_with_clients(2, 200, "POST /slow HTTP/1.1\r\nContent-Length: 10\r\n\r\nab");
  RawConnection c(port_);
  auto t0 = SteadyClock::now();
  ASSERT_TRUE(c.send("GET /fast HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(c.read_response(1000).status, 200);
  EXPECT_LT(SteadyClock::now() - t0, std::chrono::milliseconds(1000));
  EXPECT_GE(server_->stats().open, 201);
}

// The deadline sweep and the handler threads race on the same connections (short deadlines,
// requests arriving around them, several threads): every answer is whole and right, a cut
// request gets 408 or a close, and every connection is accounted for at the end.
TEST_F(HttpServerTest, SweepAndHandlerThreadsShareConnectionsSafely) {
  HttpServerOptions o;
  o.threads = 3;
  o.idle_timeout_ms = 15;
  o.header_timeout_ms = 25;
  o.body_timeout_ms = 25;
  start(o);
  std::atomic<int> answered{0}, cut{0}, wrong{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 6; ++t) {
    clients.emplace_back([&, t] {
      const auto end = SteadyClock::now() + std::chrono::milliseconds(1500);
      for (int i = 0; SteadyClock::now() < end; ++i) {
        RawConnection c(port_);
        for (int k = 0; k < 4 && c.ok(); ++k) {
          const std::string target = "/t" + std::to_string(t) + "-" + std::to_string(i);
          // Around the deadlines: 0..30 ms between requests and between the two halves.
          std::this_thread::sleep_for(std::chrono::milliseconds((i * 7 + k * 11 + t) % 31));
          if (!c.send("POST " + target + " HTTP/1.1\r\nContent-Length: 2\r\n")) break;
          std::this_thread::sleep_for(std::chrono::milliseconds((i * 5 + k * 3 + t) % 31));
          if (!c.send("\r\nab")) break;
          RawResponse r = c.read_response(2000);
          if (r.status == 200) {
            if (r.body != "POST " + target + " ab") ++wrong;
            ++answered;
          } else if (r.status == 408 || r.status == 0) {
            ++cut;
            break;
          } else {
            ++wrong;
            break;
          }
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(answered.load(), 0);
  EXPECT_GT(cut.load(), 0);
  // Every connection the clients closed is closed by the server too (within a sweep or two).
  auto until = SteadyClock::now() + std::chrono::seconds(3);
  while (server_->stats().open != 0 && SteadyClock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(server_->stats().open, 0);
  RawConnection c(port_);
  ASSERT_TRUE(c.send("GET /after HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(c.read_response().status, 200);
}

TEST_F(HttpServerTest, StopFinishesTheRequestInProgress) {
  start();
  RawConnection c(port_);
  ASSERT_TRUE(c.send("GET /sleep HTTP/1.1\r\n\r\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  RawConnection idle(port_);
  std::thread stopper([&] { server_->stop(); });
  RawResponse r = c.read_response(3000);
  stopper.join();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "GET /sleep ");
  EXPECT_EQ(lower(r.header("connection")), "close");
  EXPECT_TRUE(idle.closed_by_peer(1000));
  RawConnection after(port_);
  EXPECT_FALSE(after.ok());  // no longer listening
}

// A deferred answer is written by the thread that finishes it; the connection then serves its
// next request (keep-alive) as usual.
TEST_F(HttpServerTest, DeferredAnswerIsWrittenByTheFinishingThread) {
  start();
  RawConnection c(port_);
  ASSERT_TRUE(c.send("POST /defer HTTP/1.1\r\nContent-Length: 2\r\n\r\nab"));
  RawResponse r = c.read_response(3000);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "POST /defer ab");
  EXPECT_EQ(r.header("content-length"), "14");
  EXPECT_EQ(lower(r.header("connection")), "keep-alive");
  EXPECT_EQ(r.header("server"), "relais");
  ASSERT_TRUE(c.send("GET /next HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(c.read_response().body, "GET /next ");
  ASSERT_TRUE(c.send("GET /defer-now HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(c.read_response().body, "GET /defer-now ");
  ASSERT_TRUE(c.send("GET /defer HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(c.read_response(3000).body, "GET /defer ");
}

// Pipelined requests behind a deferred one wait for its answer and are answered in order (by
// a handler thread, not the finishing one).
TEST_F(HttpServerTest, PipelinedRequestsWaitForADeferredAnswer) {
  start();
  RawConnection c(port_);
  ASSERT_TRUE(
      c.send("GET /defer HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /defer HTTP/1.1\r\n\r\nGET "
             "/defer-now HTTP/1.1\r\n\r\nGET /5 HTTP/1.1\r\nConnection: close\r\n\r\n"));
  EXPECT_EQ(c.read_response(3000).body, "GET /defer ");
  EXPECT_EQ(c.read_response(3000).body, "GET /2 ");
  EXPECT_EQ(c.read_response(3000).body, "GET /defer ");
  EXPECT_EQ(c.read_response(3000).body, "GET /defer-now ");
  RawResponse last = c.read_response(3000);
  EXPECT_EQ(last.body, "GET /5 ");
  EXPECT_EQ(lower(last.header("connection")), "close");
  EXPECT_TRUE(c.closed_by_peer(3000));
}

// A deferred answer nobody finishes, or whose handler failed after deferring, is a 500: the
// connection never waits for ever.
TEST_F(HttpServerTest, DeferredAnswerNeverFinishedIs500) {
  start();
  RawConnection c(port_);
  ASSERT_TRUE(c.send("GET /defer-drop HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(c.read_response(3000).status, 500);
  RawConnection d(port_);
  ASSERT_TRUE(d.send("GET /defer-throw HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(d.read_response(3000).status, 500);
}

// stop() waits for the deferred answers still to come, and they close their connection.
TEST_F(HttpServerTest, StopWaitsForDeferredAnswers) {
  start();
  RawConnection c(port_);
  ASSERT_TRUE(c.send("GET /defer-slow HTTP/1.1\r\n\r\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the handler has returned
  auto t0 = SteadyClock::now();
  server_->stop();
  EXPECT_GE(SteadyClock::now() - t0, std::chrono::milliseconds(200));
  RawResponse r = c.read_response(3000);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "GET /defer-slow ");
  EXPECT_EQ(lower(r.header("connection")), "close");
}

// The deferred answers in flight are bounded (16 per handler thread): beyond, the handler
// answers on its thread.
TEST_F(HttpServerTest, DeferredAnswersAreBounded) {
  std::vector<RawConnection> conns = start_with_clients(1, 20, "GET /defer-slow HTTP/1.1\r\n\r\n");
  int deferred = 0, direct = 0;
  for (auto& c : conns) {
    RawResponse r = c.read_response(5000);
    EXPECT_EQ(r.status, 200);
    if (r.body == "GET /defer-slow ") ++deferred;
    if (r.body == "not deferred: GET /defer-slow ") ++direct;
  }
  EXPECT_EQ(deferred, 16);
  EXPECT_EQ(direct, 4);
  // Once answered (and let go by their finishing threads), the budget is back.
  bool again = false;
  for (auto until = SteadyClock::now() + std::chrono::seconds(3);
       !again && SteadyClock::now() < until;) {
    RawConnection after(port_);
    ASSERT_TRUE(after.send("GET /defer HTTP/1.1\r\n\r\n"));
    again = after.read_response(3000).body == "GET /defer ";
  }
  EXPECT_TRUE(again);
}

// A large deferred answer to a client that does not read: the finishing thread does not wait
// for the socket; a handler thread writes the rest once the client reads.
TEST_F(HttpServerTest, DeferredAnswerLargerThanTheSocketTakes) {
  server_ = std::make_unique<HttpServer>(
      HttpServerOptions{}, [](Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse&) {
        auto later = defer_answer(req);
        ASSERT_NE(later, nullptr);
        std::lock_guard<std::mutex> lock(finishers_mu);
        finishers.emplace_back([later] {
          auto t0 = SteadyClock::now();
          later->finish([](Poco::Net::HTTPServerResponse& resp) {
            resp.send() << std::string(8 * 1024 * 1024, 'x');
          });
          EXPECT_LT(SteadyClock::now() - t0, std::chrono::milliseconds(1000));
        });
      });
  port_ = server_->start();
  RawConnection c(port_);
  ASSERT_TRUE(c.send("GET /big HTTP/1.1\r\n\r\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // not reading meanwhile
  RawResponse r = c.read_response(10000);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), 8u * 1024 * 1024);
  ASSERT_TRUE(c.send("GET /again HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(c.read_response(10000).body.size(), 8u * 1024 * 1024);
}

}  // namespace
}  // namespace relais::api

// End-to-end tests of the relais binary: each test starts `relais serve` on a fresh temporary
// directory (its own store, port 0) with an in-process HttpSink as the only destination, posts
// messages through the public API and checks what the sink receives and what the API reports.

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;
using relais::tools::HttpSink;
using relais::tools::SinkRequest;
using relais::tools::SinkResponse;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

constexpr milliseconds kSettle{15000};  // bound of every "eventually" in these tests

std::string fixture(const std::string& name) {
  std::string text = read_file(std::string(RELAIS_SHARED_DIR) + "/fixtures/cms76/" + name);
  if (text.empty()) throw std::runtime_error("missing fixture " + name);
  return text;
}

struct DestOptions {
  int concurrency = 4;
  std::string on_dead = "hold";
  std::string initial = "100ms";
  std::string max = "500ms";
  int max_attempts = 10;
};

// Two sources: cms76 (the real event shape, idempotency on $.id) and app (type and key given
// directly by the test), both routed to one HTTP destination "sink".
std::string hub_yaml(int sink_port, const DestOptions& d) {
  std::ostringstream y;
  y << "sources:\n"
       "  cms76:\n"
       "    type: $.event\n"
       "    correlation:\n"
       "      - \"rdv:{$.rdv.id}\"\n"
       "      - \"demande:{$.demande.numero}\"\n"
       "      - \"individu:{$.individu.id}\"\n"
       "    idempotency: $.id\n"
       "  app:\n"
       "    type: $.type\n"
       "    correlation: \"{$.key}\"\n"
       "connectors:\n"
       "  sink:\n"
       "    connector: http\n"
       "    url: http://127.0.0.1:"
    << sink_port
    << "/in\n"
       "    method: POST\n"
       "    concurrency: "
    << d.concurrency << "\n    timeout: 10s\n    on_dead: " << d.on_dead
    << "\n    retry:\n      initial: " << d.initial << "\n      max: " << d.max
    << "\n      max_attempts: " << d.max_attempts
    << "\n"
       "routes:\n"
       "  - name: cms76-to-sink\n"
       "    source: cms76\n"
       "    to:\n"
       "      - destination: sink\n"
       "  - name: app-to-sink\n"
       "    source: app\n"
       "    to:\n"
       "      - destination: sink\n";
  return y.str();
}

std::string app_body(const std::string& type, const std::string& key, const json& extra = {}) {
  json j = {{"type", type}, {"key", key}};
  if (extra.is_object()) {
    for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  }
  return j.dump();
}

// Every error answer of the API: JSON with non-empty "error" and "detail" strings.
void expect_error(const HttpResponse& r, long status) {
  EXPECT_EQ(r.status, status) << r.body << r.error;
  EXPECT_NE(r.header("content-type").find("application/json"), std::string::npos)
      << "content type: " << r.header("content-type");
  json j = r.json();
  ASSERT_TRUE(j.is_object()) << r.body;
  ASSERT_TRUE(j.contains("error") && j["error"].is_string()) << r.body;
  ASSERT_TRUE(j.contains("detail") && j["detail"].is_string()) << r.body;
  EXPECT_FALSE(j["error"].get<std::string>().empty());
  EXPECT_FALSE(j["detail"].get<std::string>().empty());
}

class PipelineTest : public ::testing::Test {
 protected:
  void start_relais(const DestOptions& d = {}, const std::string& server_extra = "") {
    RelaisOptions o;
    o.binary = RELAIS_BINARY;
    o.body_yaml = hub_yaml(sink_.port(), d);
    o.server_extra_yaml = server_extra;
    relais_ = std::make_unique<RelaisProcess>(o);
    relais_->start();
    api_ = relais_->client();
  }

  void TearDown() override {
    if (HasFailure() && relais_) {
      std::cout << "---- relais stdout (run " << relais_->runs() << ")\n"
                << relais_->stdout_text() << "---- relais stderr\n"
                << relais_->stderr_text().substr(0, 20000) << "----\n";
    }
    relais_.reset();  // kills relais before the sink and the test's state go away
    sink_.set_responder(nullptr);
  }

  HttpResponse post_app(const std::string& body, const HttpClient::Headers& headers = {}) {
    return api_.post_json("/api/v1/sources/app/messages", body, headers);
  }

  // Posts and returns the id of the accepted message (fails the test otherwise).
  std::string accept_app(const std::string& body) {
    HttpResponse r = post_app(body);
    EXPECT_EQ(r.status, 202) << r.body << r.error;
    json j = r.json();
    return j.is_object() && j.contains("id") ? j["id"].get<std::string>() : "";
  }

  json message(const std::string& id) {
    HttpResponse r = api_.get("/api/v1/messages/" + id);
    EXPECT_EQ(r.status, 200) << r.body << r.error;
    return r.json();
  }

  static std::string first_state(const json& m) {
    if (!m.is_object() || !m.contains("deliveries") || m["deliveries"].empty()) return "";
    return m["deliveries"][0]["state"].get<std::string>();
  }

  // Polls the message until its (only) delivery is in `state`; returns the last view.
  json wait_state(const std::string& id, const std::string& state, milliseconds timeout = kSettle) {
    json m;
    bool ok = wait_until(
        [&] {
          m = message(id);
          return first_state(m) == state;
        },
        timeout, milliseconds(25));
    EXPECT_TRUE(ok) << "message " << id << " never reached state " << state
                    << "; last view: " << m.dump(2);
    return m;
  }

  static std::string delivery_id(const json& m) {
    return m["deliveries"][0]["id"].get<std::string>();
  }

  // The message ids the sink accepted (2xx), in arrival order.
  std::vector<std::string> delivered_ids() {
    std::vector<std::string> out;
    for (const auto& r : sink_.requests()) {
      auto it = r.headers.find("x-relais-message-id");
      out.push_back(it == r.headers.end() ? "" : it->second);
    }
    return out;
  }

  std::string metrics() {
    HttpResponse r = api_.get("/metrics");
    EXPECT_EQ(r.status, 200) << r.body;
    return r.body;
  }

  HttpSink sink_;  // declared first: outlives relais
  std::unique_ptr<RelaisProcess> relais_;
  HttpClient api_;
};

// ---------------------------------------------------------------------------------------------
// Delivery

TEST_F(PipelineTest, DeliversFixtureUnchangedWithMessageIdHeader) {
  start_relais();
  const std::string body = fixture("rdv-planned.json");
  HttpResponse r = api_.post_json("/api/v1/sources/cms76/messages", body);
  ASSERT_EQ(r.status, 202) << r.body << r.error;
  const std::string id = r.json()["id"].get<std::string>();
  ASSERT_FALSE(id.empty());

  ASSERT_EQ(sink_.wait_for(1, 10000), 1u);
  auto reqs = sink_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].path, "/in");
  EXPECT_EQ(reqs[0].body, body) << "the body must pass through byte for byte";
  EXPECT_EQ(reqs[0].headers["x-relais-message-id"], id);
  EXPECT_NE(reqs[0].headers["content-type"].find("application/json"), std::string::npos);

  json m = wait_state(id, "delivered");
  EXPECT_EQ(m["id"], id);
  EXPECT_EQ(m["source"], "cms76");
  EXPECT_EQ(m["type"], "rdv.planned");
  EXPECT_EQ(m["correlation_key"], "rdv:91877");
  EXPECT_EQ(m["idempotency_key"], "evt-2019-05-15-0003");
  ASSERT_EQ(m["deliveries"].size(), 1u);
  const json& d = m["deliveries"][0];
  EXPECT_EQ(d["destination"], "sink");
  EXPECT_EQ(d["route"], "cms76-to-sink");
  EXPECT_EQ(d["attempt_count"], 1);
  EXPECT_EQ(reqs[0].headers["x-relais-delivery-id"], d["id"].get<std::string>());
  ASSERT_EQ(d["attempts"].size(), 1u) << d.dump(2);
  EXPECT_EQ(d["attempts"][0]["outcome"], "delivered");
  EXPECT_EQ(sink_.total(), 1u);
}

// A success is explained as precisely as a failure: the attempt keeps the partner's status.
TEST_F(PipelineTest, AttemptHistoryKeepsTheStatusOfSuccesses) {
  sink_.set_responder([](const SinkRequest&) {
    SinkResponse out;
    out.status = 201;
    out.headers["Location"] = "/rdv/42";
    return out;
  });
  start_relais();
  std::string id = accept_app(app_body("order.created", "o-1"));
  json m = wait_state(id, "delivered");
  const json& d = m["deliveries"][0];
  EXPECT_EQ(d["external_ref"], "/rdv/42") << d.dump(2);
  ASSERT_EQ(d["attempts"].size(), 1u) << d.dump(2);
  EXPECT_EQ(d["attempts"][0]["outcome"], "delivered");
  EXPECT_EQ(d["attempts"][0]["code"], 201) << d.dump(2);
}

TEST_F(PipelineTest, RetriesTransientFailuresThenDelivers) {
  auto calls = std::make_shared<std::atomic<int>>(0);
  sink_.set_responder([calls](const SinkRequest&) {
    SinkResponse out;
    out.status = ++*calls <= 2 ? 503 : 200;
    return out;
  });
  start_relais();
  std::string id = accept_app(app_body("order.created", "o-1"));
  json m = wait_state(id, "delivered");
  const json& d = m["deliveries"][0];
  EXPECT_EQ(d["attempt_count"], 3);
  ASSERT_EQ(d["attempts"].size(), 3u) << d.dump(2);
  EXPECT_EQ(d["attempts"][0]["outcome"], "retry");
  EXPECT_EQ(d["attempts"][0]["code"], 503);
  EXPECT_EQ(d["attempts"][1]["outcome"], "retry");
  EXPECT_EQ(d["attempts"][1]["code"], 503);
  EXPECT_EQ(d["attempts"][2]["outcome"], "delivered");
  EXPECT_EQ(sink_.total(), 3u);
  EXPECT_EQ(sink_.count(), 1u);
}

TEST_F(PipelineTest, HonoursRetryAfter) {
  struct State {
    std::mutex mu;
    std::vector<SteadyClock::time_point> arrivals;
  };
  auto st = std::make_shared<State>();
  sink_.set_responder([st](const SinkRequest&) {
    std::lock_guard<std::mutex> lock(st->mu);
    st->arrivals.push_back(SteadyClock::now());
    SinkResponse out;
    if (st->arrivals.size() == 1) {
      out.status = 429;
      out.headers["Retry-After"] = "2";
    }
    return out;
  });
  start_relais();  // retry.initial 100ms: without Retry-After the 2nd attempt comes at once
  std::string id = accept_app(app_body("order.created", "o-1"));
  json m = wait_state(id, "delivered");
  std::lock_guard<std::mutex> lock(st->mu);
  ASSERT_EQ(st->arrivals.size(), 2u);
  auto gap = std::chrono::duration_cast<milliseconds>(st->arrivals[1] - st->arrivals[0]).count();
  // 1 ms of slack for the millisecond rounding of relais' wall clock.
  EXPECT_GE(gap, 1999) << "the second attempt came " << gap << " ms after the 429";
  EXPECT_LT(gap, 6000);
  const json& d = m["deliveries"][0];
  ASSERT_EQ(d["attempts"].size(), 2u);
  EXPECT_EQ(d["attempts"][0]["code"], 429);
  // The partner's "slow down" pauses the destination; it is not a failed attempt.
  EXPECT_EQ(d["attempts"][0]["outcome"], "throttled");
  EXPECT_EQ(d["attempts"][1]["outcome"], "delivered");
}

TEST_F(PipelineTest, RejectGoesDeadThenPersonRetriesAndDiscards) {
  auto status = std::make_shared<std::atomic<int>>(400);
  sink_.set_responder([status](const SinkRequest&) {
    SinkResponse out;
    out.status = status->load();
    out.body = out.status == 400 ? "{\"error\":\"bad rdv\"}" : "{\"ok\":true}";
    return out;
  });
  start_relais();
  std::string id = accept_app(app_body("order.created", "a"));
  json m = wait_state(id, "dead");
  json d = m["deliveries"][0];
  ASSERT_TRUE(d.contains("last_outcome")) << d.dump(2);
  EXPECT_EQ(d["last_outcome"]["code"], 400);
  EXPECT_EQ(d["last_outcome"]["outcome"], "reject");
  ASSERT_EQ(d["attempts"].size(), 1u) << "a 4xx is permanent: no retry";
  EXPECT_EQ(d["attempts"][0]["response_excerpt"], "{\"error\":\"bad rdv\"}");
  EXPECT_EQ(sink_.count(), 0u);
  const std::string did = delivery_id(m);

  // A person retries once the destination is fixed.
  status->store(200);
  HttpResponse r = api_.post_json("/api/v1/deliveries/" + did + "/retry", "");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["action"], "retry");
  m = wait_state(id, "delivered");
  EXPECT_EQ(sink_.count(), 1u);
  EXPECT_EQ(m["deliveries"][0]["attempts"].back()["outcome"], "delivered");
  // A delivered delivery cannot be discarded.
  r = api_.post_json("/api/v1/deliveries/" + did + "/discard", R"({"reason":"too late"})");
  expect_error(r, 409);

  // Another dead one is discarded: the reason is required.
  status->store(400);
  std::string id2 = accept_app(app_body("order.created", "b"));
  json m2 = wait_state(id2, "dead");
  const std::string did2 = delivery_id(m2);
  r = api_.post_json("/api/v1/deliveries/" + did2 + "/discard", "");
  expect_error(r, 400);
  r = api_.post_json("/api/v1/deliveries/" + did2 + "/discard", "{}");
  expect_error(r, 400);
  r = api_.post_json("/api/v1/deliveries/" + did2 + "/discard", R"({"reason":""})");
  expect_error(r, 400);
  EXPECT_EQ(first_state(message(id2)), "dead") << "a refused discard changes nothing";
  r = api_.post_json("/api/v1/deliveries/" + did2 + "/discard",
                     R"({"reason":"duplicate of ticket 1234"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["state"], "discarded");
  m2 = message(id2);
  EXPECT_EQ(first_state(m2), "discarded");
  EXPECT_NE(m2["deliveries"][0].dump().find("duplicate of ticket 1234"), std::string::npos)
      << "the reason is kept: " << m2.dump(2);
  // Unknown deliveries.
  expect_error(api_.post_json("/api/v1/deliveries/999999/retry", ""), 404);
  expect_error(api_.post_json("/api/v1/deliveries/999999/discard", R"({"reason":"x"})"), 404);
}

TEST_F(PipelineTest, PoisonMessageDoesNotBlockOtherKeys) {
  sink_.set_responder([](const SinkRequest& req) {
    SinkResponse out;
    if (req.body.find("\"poison\"") != std::string::npos) out.status = 500;
    return out;
  });
  // One worker only and a long back-off: the poison key must not hold the worker.
  DestOptions d;
  d.concurrency = 1;
  d.initial = "30s";
  d.max = "60s";
  start_relais(d);
  std::string poison = accept_app(app_body("order.created", "p", {{"kind", "poison"}}));
  ASSERT_TRUE(wait_until([&] { return sink_.total() >= 1; }, kSettle));
  std::string behind = accept_app(app_body("order.updated", "p"));
  auto started = SteadyClock::now();
  std::vector<std::string> good;
  for (int i = 0; i < 5; ++i)
    good.push_back(accept_app(app_body("order.created", "g" + std::to_string(i))));
  ASSERT_EQ(sink_.wait_for(5, 10000), 5u);
  auto took = std::chrono::duration_cast<milliseconds>(SteadyClock::now() - started).count();
  EXPECT_LT(took, 5000) << "other keys must be delivered promptly";
  auto ids = delivered_ids();
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()),
            std::set<std::string>(good.begin(), good.end()));
  json pm = message(poison);
  EXPECT_EQ(first_state(pm), "retrying");
  EXPECT_EQ(pm["deliveries"][0]["attempt_count"], 1);
  EXPECT_TRUE(pm["deliveries"][0].contains("next_attempt_at")) << pm.dump(2);
  // The later message of the poison key waits behind it (order per key).
  EXPECT_EQ(first_state(message(behind)), "pending");
}

TEST_F(PipelineTest, KeepsOrderPerKeyWithConcurrency8) {
  constexpr int kKeys = 50, kPerKey = 20, kThreads = 5;
  struct State {
    std::mutex mu;
    std::map<std::string, std::vector<int>> seqs;
    std::mt19937 rng{42};
  };
  auto st = std::make_shared<State>();
  sink_.set_responder([st](const SinkRequest& req) {
    json j = json::parse(req.body, nullptr, false);
    int pause = 0;
    {
      std::lock_guard<std::mutex> lock(st->mu);
      if (j.is_object()) st->seqs[j["key"].get<std::string>()].push_back(j["seq"].get<int>());
      pause = static_cast<int>(st->rng() % 3);
    }
    std::this_thread::sleep_for(milliseconds(pause));  // shake the interleaving
    return SinkResponse{};
  });
  DestOptions d;
  d.concurrency = 8;
  start_relais(d);
  std::atomic<int> refused{0};
  std::vector<std::thread> clients;
  const std::string base = relais_->base_url();
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      HttpClient c(base, relais_->token());
      for (int seq = 0; seq < kPerKey; ++seq) {
        for (int k = t; k < kKeys; k += kThreads) {
          HttpResponse r =
              c.post_json("/api/v1/sources/app/messages",
                          app_body("order.step", "key-" + std::to_string(k), {{"seq", seq}}));
          if (r.status != 202) ++refused;
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  ASSERT_EQ(refused.load(), 0);
  ASSERT_EQ(sink_.wait_for(kKeys * kPerKey, 60000), static_cast<size_t>(kKeys * kPerKey));
  std::lock_guard<std::mutex> lock(st->mu);
  ASSERT_EQ(st->seqs.size(), static_cast<size_t>(kKeys));
  std::vector<int> expected(kPerKey);
  for (int i = 0; i < kPerKey; ++i) expected[static_cast<size_t>(i)] = i;
  for (const auto& [key, seqs] : st->seqs) {
    EXPECT_EQ(seqs, expected) << "key " << key << " was delivered out of order or incompletely";
  }
  EXPECT_EQ(sink_.total(), static_cast<size_t>(kKeys * kPerKey)) << "no duplicates expected";
}

// The hold policy: a dead delivery holds the later messages of its key until a person acts.
class HoldPolicyTest : public PipelineTest {
 protected:
  // The sink refuses bodies with "reject": true (after waiting for `gate` when set) and records
  // the keys and seqs of what it accepts.
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    bool gate_open = true;
    bool rejected_entered = false;
    std::vector<std::string> accepted;  // "key/seq"
  };

  void SetUp() override {
    st_ = std::make_shared<State>();
    auto st = st_;
    sink_.set_responder([st](const SinkRequest& req) {
      json j = json::parse(req.body, nullptr, false);
      SinkResponse out;
      std::unique_lock<std::mutex> lock(st->mu);
      if (j.value("reject", false)) {
        st->rejected_entered = true;
        st->cv.notify_all();
        st->cv.wait_for(lock, std::chrono::seconds(20), [&] { return st->gate_open; });
        out.status = 400;
      } else {
        st->accepted.push_back(j.value("key", "") + "/" + std::to_string(j.value("seq", 0)));
      }
      return out;
    });
    DestOptions d;
    d.concurrency = 1;  // with one worker, a key that is not held would be served first
    start_relais(d);
  }

  void TearDown() override {
    {
      std::lock_guard<std::mutex> lock(st_->mu);
      st_->gate_open = true;  // never leave a sink thread waiting
    }
    st_->cv.notify_all();
    PipelineTest::TearDown();
  }

  std::vector<std::string> accepted() {
    std::lock_guard<std::mutex> lock(st_->mu);
    return st_->accepted;
  }

  std::shared_ptr<State> st_;
};

TEST_F(HoldPolicyTest, HoldsLaterMessagesQueuedBehindTheDeadOne) {
  {
    std::lock_guard<std::mutex> lock(st_->mu);
    st_->gate_open = false;
  }
  std::string k1 = accept_app(app_body("rdv.created", "K", {{"seq", 1}, {"reject", true}}));
  {
    std::unique_lock<std::mutex> lock(st_->mu);
    ASSERT_TRUE(
        st_->cv.wait_for(lock, std::chrono::seconds(10), [&] { return st_->rejected_entered; }));
  }
  std::string k2 = accept_app(app_body("rdv.moved", "K", {{"seq", 2}}));
  std::string k3 = accept_app(app_body("rdv.cancelled", "K", {{"seq", 3}}));
  // K2 and K3 are queued behind the in-flight K1 (queue depth counts all three).
  ASSERT_TRUE(wait_until(
      [&] { return metric_value(metrics(), "relais_queue_depth{destination=\"sink\"}") == 3; },
      kSettle));
  {
    std::lock_guard<std::mutex> lock(st_->mu);
    st_->gate_open = true;
  }
  st_->cv.notify_all();
  wait_state(k1, "dead");
  std::string l1 = accept_app(app_body("rdv.created", "L", {{"seq", 1}}));
  wait_state(l1, "delivered");
  EXPECT_EQ(accepted(), std::vector<std::string>{"L/1"}) << "K's later messages must be held";
  EXPECT_EQ(first_state(message(k2)), "pending");
  EXPECT_EQ(first_state(message(k3)), "pending");
  EXPECT_EQ(metric_value(metrics(), "relais_held_keys{destination=\"sink\"}"), 1);

  json m1 = message(k1);
  HttpResponse r = api_.post_json("/api/v1/deliveries/" + delivery_id(m1) + "/discard",
                                  R"({"reason":"created by mistake"})");
  ASSERT_EQ(r.status, 200) << r.body;
  wait_state(k3, "delivered");
  EXPECT_EQ(first_state(message(k2)), "delivered");
  EXPECT_EQ(accepted(), (std::vector<std::string>{"L/1", "K/2", "K/3"}));
}

TEST_F(HoldPolicyTest, HoldsMessagesThatArriveAfterTheKeyWentDead) {
  std::string k1 = accept_app(app_body("rdv.created", "K", {{"seq", 1}, {"reject", true}}));
  json m1 = wait_state(k1, "dead");
  // The usual case: the correction or the next event comes later.
  std::string k2 = accept_app(app_body("rdv.moved", "K", {{"seq", 2}}));
  std::string k3 = accept_app(app_body("rdv.cancelled", "K", {{"seq", 3}}));
  std::string l1 = accept_app(app_body("rdv.created", "L", {{"seq", 1}}));
  wait_state(l1, "delivered");
  EXPECT_EQ(accepted(), std::vector<std::string>{"L/1"})
      << "K is held behind its dead first message: K/2 and K/3 must wait";
  EXPECT_EQ(first_state(message(k2)), "pending");
  EXPECT_EQ(first_state(message(k3)), "pending");

  HttpResponse r = api_.post_json("/api/v1/deliveries/" + delivery_id(m1) + "/discard",
                                  R"({"reason":"created by mistake"})");
  ASSERT_EQ(r.status, 200) << r.body;
  wait_state(k3, "delivered");
  auto got = accepted();
  ASSERT_EQ(got.size(), 3u);
  std::vector<std::string> k_order;
  for (const auto& a : got) {
    if (a[0] == 'K') k_order.push_back(a);
  }
  EXPECT_EQ(k_order, (std::vector<std::string>{"K/2", "K/3"}));
}

// ---------------------------------------------------------------------------------------------
// Idempotency

TEST_F(PipelineTest, IdempotencyKeyHeaderMakesResubmissionHarmless) {
  DestOptions d;
  d.concurrency = 1;
  start_relais(d);
  const std::string body = app_body("order.created", "o-1", {{"n", 1}});
  HttpResponse a = post_app(body, {"Idempotency-Key: order-1-created"});
  ASSERT_EQ(a.status, 202) << a.body;
  const std::string id = a.json()["id"].get<std::string>();
  HttpResponse b = post_app(body, {"Idempotency-Key: order-1-created"});
  ASSERT_EQ(b.status, 200) << b.body;
  EXPECT_EQ(b.json()["id"], id);
  EXPECT_EQ(b.json()["duplicate"], true);
  // A later message of the same key is delivered after anything the duplicate could have queued.
  std::string next = accept_app(app_body("order.updated", "o-1", {{"n", 2}}));
  wait_state(next, "delivered");
  EXPECT_EQ(delivered_ids(), (std::vector<std::string>{id, next}));
  EXPECT_EQ(sink_.total(), 2u);
  EXPECT_EQ(metric_value(metrics(), "relais_duplicates_total{source=\"app\"}"), 1);
}

TEST_F(PipelineTest, ConfiguredIdempotencyPathMakesResubmissionHarmless) {
  DestOptions d;
  d.concurrency = 1;
  start_relais(d);
  const std::string planned = fixture("rdv-planned.json");
  HttpResponse a = api_.post_json("/api/v1/sources/cms76/messages", planned);
  ASSERT_EQ(a.status, 202) << a.body;
  const std::string id = a.json()["id"].get<std::string>();
  HttpResponse b = api_.post_json("/api/v1/sources/cms76/messages", planned);
  ASSERT_EQ(b.status, 200) << b.body;
  EXPECT_EQ(b.json()["id"], id);
  EXPECT_EQ(b.json()["duplicate"], true);
  HttpResponse c = api_.post_json("/api/v1/sources/cms76/messages", fixture("rdv-moved.json"));
  ASSERT_EQ(c.status, 202) << c.body;
  const std::string moved = c.json()["id"].get<std::string>();
  wait_state(moved, "delivered");
  EXPECT_EQ(delivered_ids(), (std::vector<std::string>{id, moved}));
  EXPECT_EQ(sink_.total(), 2u);
}

// The same key with another body is a mistake at the sender: 409 with the first message's id,
// nothing stored, nothing delivered — never a silent 200.
TEST_F(PipelineTest, SameIdempotencyKeyWithAnotherBodyIs409) {
  DestOptions d;
  d.concurrency = 1;
  start_relais(d);
  const std::string planned = fixture("rdv-planned.json");
  HttpResponse a = api_.post_json("/api/v1/sources/cms76/messages", planned);
  ASSERT_EQ(a.status, 202) << a.body;
  const std::string id = a.json()["id"].get<std::string>();
  json other = json::parse(planned);
  other["rdv"]["heure"] = "11:00";  // same event id, another content
  HttpResponse b = api_.post_json("/api/v1/sources/cms76/messages", other.dump());
  ASSERT_EQ(b.status, 409) << b.body;
  EXPECT_EQ(b.json()["first_id"], id);
  EXPECT_EQ(b.json()["error"], "idempotency key reused");
  // The Idempotency-Key header follows the same rule.
  HttpResponse h1 = post_app(app_body("order.created", "a", {{"n", 1}}), {"Idempotency-Key: k-1"});
  ASSERT_EQ(h1.status, 202) << h1.body;
  HttpResponse h2 = post_app(app_body("order.created", "a", {{"n", 2}}), {"Idempotency-Key: k-1"});
  EXPECT_EQ(h2.status, 409) << h2.body;
  ASSERT_EQ(sink_.wait_for(2, 10000), 2u);
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(sink_.total(), 2u);
}

// The batch endpoint honours idempotency per line: a line sent again (in the same batch or a
// later one) is a duplicate with the first id; the same key with another body is a 409 line.
TEST_F(PipelineTest, NdjsonBatchHonoursIdempotency) {
  start_relais();
  json e1 = json::parse(fixture("rdv-planned.json"));
  json e2 = e1;
  e2["id"] = "evt-batch-2";
  e2["rdv"]["id"] = 4242;
  json e1_changed = e1;
  e1_changed["rdv"]["heure"] = "16:00";
  std::string batch = e1.dump() + "\n" + e2.dump() + "\n" + e1.dump() + "\n";
  HttpResponse r = api_.post_ndjson("/api/v1/sources/cms76/messages:batch", batch);
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.json();
  EXPECT_EQ(j["accepted"], 2);
  EXPECT_EQ(j["duplicates"], 1);
  EXPECT_EQ(j["results"][2]["status"], 200);
  EXPECT_EQ(j["results"][2]["id"], j["results"][0]["id"]);
  HttpResponse again = api_.post_ndjson("/api/v1/sources/cms76/messages:batch",
                                        e2.dump() + "\n" + e1_changed.dump() + "\n");
  ASSERT_EQ(again.status, 200) << again.body;
  json k = again.json();
  EXPECT_EQ(k["accepted"], 0);
  EXPECT_EQ(k["duplicates"], 1);
  EXPECT_EQ(k["results"][0]["id"], j["results"][1]["id"]);
  EXPECT_EQ(k["results"][1]["status"], 409);
  EXPECT_EQ(k["results"][1]["first_id"], j["results"][0]["id"]);
  ASSERT_EQ(sink_.wait_for(2, 10000), 2u);
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(sink_.total(), 2u);
}

// ---------------------------------------------------------------------------------------------
// Bad input: every error has a status, a JSON body with "error" and "detail".

class BadInputTest : public PipelineTest {
 protected:
  void SetUp() override { start_relais({}, "  max_body: 64KiB\n"); }
};

TEST_F(BadInputTest, MalformedJsonGivesOffsetLineAndColumn) {
  // The 'x' is at byte offset 38, line 3, column 10.
  const std::string bad = "{\n  \"type\": \"order.created\",\n  \"key\": x\n}";
  ASSERT_EQ(bad[38], 'x');
  HttpResponse r = post_app(bad);
  expect_error(r, 400);
  json j = r.json();
  EXPECT_EQ(j["error"], "malformed JSON");
  EXPECT_EQ(j["offset"], 38) << r.body;
  EXPECT_EQ(j["line"], 3) << r.body;
  EXPECT_EQ(j["column"], 10) << r.body;
  // On the first line too.
  r = post_app("[1, 2,]");
  expect_error(r, 400);
  EXPECT_EQ(r.json()["line"], 1);
  EXPECT_EQ(r.json()["offset"], 6) << r.body;
  EXPECT_EQ(r.json()["column"], 7) << r.body;
  EXPECT_EQ(sink_.total(), 0u);
}

TEST_F(BadInputTest, BodyOverMaxBodyIs413) {
  std::string big = app_body("order.created", "o", {{"pad", std::string(100 * 1024, 'x')}});
  expect_error(post_app(big), 413);
  // Just under the limit is fine.
  std::string ok = app_body("order.created", "o", {{"pad", std::string(60 * 1024, 'x')}});
  HttpResponse r = post_app(ok);
  EXPECT_EQ(r.status, 202) << r.body << r.error;
}

TEST_F(BadInputTest, UnknownSourceIs404) {
  HttpResponse r = api_.post_json("/api/v1/sources/nope/messages", app_body("a", "b"));
  expect_error(r, 404);
  EXPECT_NE(r.json()["detail"].get<std::string>().find("nope"), std::string::npos);
}

TEST_F(BadInputTest, WrongContentTypeIs415) {
  // Fresh connections: see KeepAliveConnectionSurvivesEarlyErrors for reuse after an error.
  HttpClient c1(relais_->base_url(), relais_->token());
  expect_error(c1.post("/api/v1/sources/app/messages", app_body("a", "b"), "text/plain"), 415);
  HttpClient c2(relais_->base_url(), relais_->token());
  expect_error(
      c2.post("/api/v1/sources/app/messages:batch", app_body("a", "b"), "application/json"), 415);
}

// An error answered before the body is read must not leave the body on a keep-alive
// connection, where it would be taken for the start of the next request.
TEST_F(BadInputTest, KeepAliveConnectionSurvivesEarlyErrors) {
  const std::string body = app_body("order.created", "o-1");
  struct Case {
    std::string name, path, content_type, token;
    long status;
  };
  const std::vector<Case> cases = {
      {"wrong content type", "/api/v1/sources/app/messages", "text/plain", relais_->token(), 415},
      {"unknown source", "/api/v1/sources/nope/messages", "application/json", relais_->token(),
       404},
      {"wrong token", "/api/v1/sources/app/messages", "application/json",
       "not-the-right-token-0123456789", 401},
  };
  for (const auto& c : cases) {
    HttpClient client(relais_->base_url(), c.token);
    HttpResponse r = client.post(c.path, body, c.content_type);
    EXPECT_EQ(r.status, c.status) << c.name << ": " << r.body;
    client.set_token(relais_->token());
    r = client.post_json("/api/v1/sources/app/messages", body);  // same connection
    EXPECT_EQ(r.status, 202) << "after " << c.name
                             << ", the next request on the connection got: " << r.status << " "
                             << r.body << r.error;
  }
}

TEST_F(BadInputTest, MissingOrWrongTokenIs401) {
  HttpClient anonymous(relais_->base_url());
  HttpResponse r = anonymous.post_json("/api/v1/sources/app/messages", app_body("a", "b"));
  expect_error(r, 401);
  EXPECT_NE(r.header("www-authenticate").find("Bearer"), std::string::npos);
  HttpClient wrong(relais_->base_url(), "not-the-right-token-0123456789");
  expect_error(wrong.post_json("/api/v1/sources/app/messages", app_body("a", "b")), 401);
  expect_error(wrong.get("/api/v1/messages"), 401);
  EXPECT_EQ(sink_.total(), 0u);
}

TEST_F(BadInputTest, MissingTypeIs422) {
  HttpResponse r = post_app(R"({"key":"k","kind":"no type here"})");
  expect_error(r, 422);
  r = post_app(R"({"type":"order.created"})");  // no correlation key either
  expect_error(r, 422);
}

TEST_F(BadInputTest, GetOnPostEndpointIs405) {
  HttpResponse r = api_.get("/api/v1/sources/app/messages");
  expect_error(r, 405);
  EXPECT_EQ(r.header("allow"), "POST");
}

TEST_F(BadInputTest, UnknownMessageIdIs404) {
  expect_error(api_.get("/api/v1/messages/01JZZZZZZZZZZZZZZZZZZZZZZZ"), 404);
  expect_error(api_.get("/api/v1/nothing-here"), 404);
}

// ---------------------------------------------------------------------------------------------
// Batches and listing

TEST_F(PipelineTest, NdjsonBatchReportsEachLine) {
  start_relais();
  std::string batch = app_body("order.created", "a", {{"n", 1}}) + "\n" +
                      "{\"type\": \"order.created\", \"key\": }\n" +
                      app_body("order.created", "c", {{"n", 3}}) + "\n" + "{\"key\": \"d\"}\n";
  HttpResponse r = api_.post_ndjson("/api/v1/sources/app/messages:batch", batch);
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.json();
  EXPECT_EQ(j["accepted"], 2);
  EXPECT_EQ(j["failed"], 2);
  EXPECT_EQ(j["duplicates"], 0);
  ASSERT_EQ(j["results"].size(), 4u) << r.body;
  const json& res = j["results"];
  EXPECT_EQ(res[0]["line"], 1);
  EXPECT_EQ(res[0]["status"], 202);
  EXPECT_EQ(res[1]["line"], 2);
  EXPECT_EQ(res[1]["status"], 400);
  EXPECT_EQ(res[1]["error"], "malformed JSON");
  EXPECT_TRUE(res[1].contains("detail"));
  EXPECT_FALSE(res[1].contains("id"));
  EXPECT_EQ(res[2]["line"], 3);
  EXPECT_EQ(res[2]["status"], 202);
  EXPECT_EQ(res[3]["line"], 4);
  EXPECT_EQ(res[3]["status"], 422);
  ASSERT_EQ(sink_.wait_for(2, 10000), 2u);
  auto ids = delivered_ids();
  EXPECT_EQ(
      std::set<std::string>(ids.begin(), ids.end()),
      (std::set<std::string>{res[0]["id"].get<std::string>(), res[2]["id"].get<std::string>()}));
}

TEST_F(PipelineTest, ListsMessagesWithFiltersAndCursorPaging) {
  sink_.set_responder([](const SinkRequest& req) {
    SinkResponse out;
    if (req.body.find("\"b.y\"") != std::string::npos) out.status = 400;
    return out;
  });
  DestOptions d;
  d.on_dead = "release";  // keys are shared by a.x and b.y messages: do not hold them
  start_relais(d);
  std::vector<std::string> all;  // in posting order
  for (int i = 0; i < 7; ++i) {
    bool a = i % 2 == 0;  // 4 × a.x, 3 × b.y
    all.push_back(accept_app(app_body(a ? "a.x" : "b.y", "key-" + std::to_string(i % 3))));
  }
  ASSERT_TRUE(wait_until(
      [&] {
        HttpResponse d = api_.get("/api/v1/messages?state=delivered");
        HttpResponse x = api_.get("/api/v1/messages?state=dead");
        return d.json()["items"].size() == 4 && x.json()["items"].size() == 3;
      },
      kSettle));
  auto ids_of = [](const json& page) {
    std::vector<std::string> out;
    for (const auto& it : page["items"]) out.push_back(it["id"].get<std::string>());
    return out;
  };
  // Type and correlation filters.
  HttpResponse r = api_.get("/api/v1/messages?type=a.x");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(ids_of(r.json()), (std::vector<std::string>{all[6], all[4], all[2], all[0]}))
      << "newest first";
  r = api_.get("/api/v1/messages?correlation=key-1");
  EXPECT_EQ(ids_of(r.json()), (std::vector<std::string>{all[4], all[1]}));
  r = api_.get("/api/v1/messages?state=dead&type=b.y");
  EXPECT_EQ(ids_of(r.json()), (std::vector<std::string>{all[5], all[3], all[1]}));
  r = api_.get("/api/v1/messages?state=dead&type=a.x");
  EXPECT_TRUE(r.json()["items"].empty());
  r = api_.get("/api/v1/messages?source=app&destination=sink");
  EXPECT_EQ(r.json()["items"].size(), 7u);
  r = api_.get("/api/v1/messages?source=cms76");
  EXPECT_TRUE(r.json()["items"].empty());
  r = api_.get("/api/v1/messages?from=2000-01-01&to=2000-01-02");
  EXPECT_TRUE(r.json()["items"].empty()) << r.body;
  // Paging: 3 + 3 + 1, every message once, newest first.
  std::vector<std::string> paged;
  std::string cursor;
  int pages = 0;
  do {
    r = api_.get("/api/v1/messages?limit=3" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(r.status, 200) << r.body;
    json page = r.json();
    auto ids = ids_of(page);
    EXPECT_LE(ids.size(), 3u);
    paged.insert(paged.end(), ids.begin(), ids.end());
    cursor = page["next_cursor"].is_null() ? "" : page["next_cursor"].get<std::string>();
    ++pages;
  } while (!cursor.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  std::vector<std::string> newest_first(all.rbegin(), all.rend());
  EXPECT_EQ(paged, newest_first);
  // Bad filters.
  expect_error(api_.get("/api/v1/messages?state=bogus"), 400);
  expect_error(api_.get("/api/v1/messages?color=red"), 400);
  expect_error(api_.get("/api/v1/messages?cursor=abc"), 400);
  expect_error(api_.get("/api/v1/messages?from=yesterday"), 400);
}

// ---------------------------------------------------------------------------------------------
// Operations

TEST_F(PipelineTest, HealthReadinessAndMetrics) {
  start_relais();
  HttpClient anonymous(relais_->base_url());
  HttpResponse r = anonymous.get("/healthz");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["status"], "ok");
  r = api_.get("/readyz");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["status"], "ready");

  std::string id = accept_app(app_body("order.created", "o-1"));
  wait_state(id, "delivered");
  std::string text = metrics();
  EXPECT_EQ(metric_value(text, "relais_received_total{source=\"app\"}"), 1) << text;
  EXPECT_EQ(metric_value(text, "relais_delivered_total{source=\"app\",destination=\"sink\"}"), 1)
      << text;
  EXPECT_EQ(metric_value(text, "relais_queue_depth{destination=\"sink\"}"), 0) << text;
  EXPECT_EQ(metric_value(
                text, "relais_delivery_latency_seconds_bucket{destination=\"sink\",le=\"+Inf\"}"),
            1)
      << text;
  EXPECT_NE(text.find("# TYPE relais_delivery_latency_seconds histogram"), std::string::npos);
}

class CliTest : public ::testing::Test {};

TEST_F(CliTest, CheckConfigPrintsEveryErrorWithPositionAndExits1) {
  TempDir dir;
  std::string bad = dir.write("bad.yaml",
                              "server:\n"
                              "  port: 0\n"
                              "  colour: blue\n"
                              "store:\n"
                              "  path: relais.db\n"
                              "sources:\n"
                              "  app:\n"
                              "    type: $.type\n"
                              "connectors:\n"
                              "  sink:\n"
                              "    connector: http\n"
                              "    url: http://127.0.0.1:9/in\n"
                              "    concurrency: many\n"
                              "routes:\n"
                              "  - name: r\n"
                              "    source: app\n"
                              "    to:\n"
                              "      - destination: nowhere\n");
  CommandResult r = run_command({RELAIS_BINARY, "check-config", bad});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find(bad + ":3:3: server.colour: unknown key"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(bad + ":13:18: connectors.sink.concurrency:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(bad + ":18:22: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("nowhere"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("3 error(s)"), std::string::npos) << r.out;
  // Every error line is FILE:LINE:COLUMN: KEY: MESSAGE.
  std::istringstream lines(r.out);
  std::string line;
  int located_lines = 0;
  while (std::getline(lines, line)) {
    if (line.rfind(bad + ":", 0) != 0) continue;
    ++located_lines;
    std::istringstream rest(line.substr(bad.size() + 1));
    int l = 0, c = 0;
    char colon1 = 0, colon2 = 0;
    rest >> l >> colon1 >> c >> colon2;
    std::string tail;
    std::getline(rest, tail);
    EXPECT_TRUE(rest.eof() || rest.good()) << line;
    EXPECT_GT(l, 0) << line;
    EXPECT_GT(c, 0) << line;
    EXPECT_EQ(colon1, ':') << line;
    EXPECT_EQ(colon2, ':') << line;
    auto key_end = tail.find(": ", 1);
    EXPECT_TRUE(tail.size() > 1 && tail[0] == ' ' && key_end != std::string::npos &&
                key_end + 2 < tail.size())
        << "expected ' KEY: MESSAGE' after the position: " << line;
  }
  EXPECT_EQ(located_lines, 3) << r.out;
}

TEST_F(CliTest, CheckConfigAcceptsAValidFile) {
  TempDir dir;
  std::string good = dir.write(
      "good.yaml", "server:\n  port: 0\nstore:\n  path: relais.db\n" + hub_yaml(9, DestOptions{}));
  CommandResult r = run_command({RELAIS_BINARY, "check-config", good});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("valid"), std::string::npos) << r.out;
  // A missing file is an error, not a crash.
  r = run_command({RELAIS_BINARY, "check-config", dir.path() + "/missing.yaml"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
}

TEST_F(CliTest, VersionAndHelpExitZero) {
  CommandResult r = run_command({RELAIS_BINARY, "version"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("relais ", 0), 0u) << r.out;
  EXPECT_TRUE(r.out.size() > 7 && std::isdigit(static_cast<unsigned char>(r.out[7]))) << r.out;
  r = run_command({RELAIS_BINARY, "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("serve"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("check-config"), std::string::npos) << r.out;
  r = run_command({RELAIS_BINARY, "serve", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("--config"), std::string::npos) << r.out;
  r = run_command({RELAIS_BINARY, "frobnicate"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("unknown command"), std::string::npos) << r.err;
}

TEST_F(PipelineTest, GracefulShutdownLosesNothing) {
  struct State {
    std::atomic<int> entered{0};
    std::atomic<bool> slow{true};
  };
  auto st = std::make_shared<State>();
  sink_.set_responder([st](const SinkRequest&) {
    ++st->entered;
    if (st->slow) std::this_thread::sleep_for(std::chrono::seconds(1));  // a slow partner
    return SinkResponse{};
  });
  DestOptions d;
  d.concurrency = 2;
  start_relais(d);
  std::set<std::string> accepted;
  for (int i = 0; i < 6; ++i)
    accepted.insert(accept_app(app_body("order.created", "k" + std::to_string(i))));
  ASSERT_EQ(accepted.size(), 6u);
  ASSERT_TRUE(wait_until([&] { return st->entered.load() >= 1; }, kSettle));
  auto t0 = SteadyClock::now();
  int code = relais_->stop(std::chrono::seconds(20));
  auto took = std::chrono::duration_cast<milliseconds>(SteadyClock::now() - t0).count();
  EXPECT_EQ(code, 0) << relais_->stdout_text() << relais_->stderr_text();
  EXPECT_LT(took, 5000) << "in-flight attempts take 1 s; shutdown must not wait for more";
  EXPECT_NE(relais_->stdout_text().find("stopped cleanly"), std::string::npos);
  size_t before_restart = sink_.count();
  EXPECT_LT(before_restart, 6u) << "the test needs deliveries left for after the restart";

  st->slow = false;
  relais_->restart();
  api_ = relais_->client();
  ASSERT_TRUE(wait_until(
      [&] {
        auto ids = delivered_ids();
        std::set<std::string> got(ids.begin(), ids.end());
        return std::includes(got.begin(), got.end(), accepted.begin(), accepted.end());
      },
      kSettle))
      << "every accepted message must be delivered after the restart";
  for (const auto& id : accepted) wait_state(id, "delivered");
  auto ids = delivered_ids();
  EXPECT_LE(ids.size(), 6u + 2u) << "only the (at most 2) in-flight ones may come twice";
}

}  // namespace
}  // namespace relais::testing

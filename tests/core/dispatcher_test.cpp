// Dispatcher over a real SqliteStore with a scripted ProcessFn (no HTTP): FIFO per correlation
// key under concurrency, isolation of a poison delivery, back-off and Retry-After, dead letters
// with the hold / release policies, not-before times, the people's actions and statistics.

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/clock.h"
#include "core/ids.h"
#include "core/metrics.h"
#include "core/store.h"
#include "routing/dispatcher.h"
#include "store/sqlite/sqlite_backend.h"
#include "tests/core/test_support.h"

namespace relais {
namespace {

using relais::testing::make_incoming;
using relais::testing::TempDir;
using relais::testing::to_dest;
using relais::testing::wait_until;

constexpr Millis kT0 = 1'700'000'000'000;

// What the scripted ProcessFn saw for one attempt.
struct Call {
  int64_t id = 0;
  std::string label;  // the message's type: tests use it as a readable name
  std::string key;
  int attempts_before = 0;  // failed attempts so far (QueuedDelivery::attempts)
  Millis at = 0;            // the clock when the attempt started
  int slot = 0;
  bool had_message = false;  // the body came with the queued delivery (not read back)
};

DestinationSettings dest(const std::string& name, int concurrency, Millis initial, Millis max,
                         int max_attempts, bool hold = true, Millis max_age = 0) {
  DestinationSettings s;
  s.name = name;
  s.concurrency = concurrency;
  s.retry.initial_ms = initial;
  s.retry.max_ms = max;
  s.retry.factor = 2.0;
  s.retry.max_attempts = max_attempts;
  s.retry.max_age_ms = max_age;
  s.hold_on_dead = hold;
  return s;
}

// Holds the attempts that wait on it until opened (at most 20 s: a failing test still ends).
class Gate {
 public:
  void wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(20), [&] { return open_; });
  }
  void open() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// A store file, a dispatcher on it wired like the Hub wires them (commit listener → enqueue),
// and a recording ProcessFn that runs the test's script.
class DispatcherTest : public ::testing::Test {
 protected:
  using Script = std::function<Outcome(const Call&)>;

  void TearDown() override { shutdown(); }

  void init(const Clock& clock, const std::vector<DestinationSettings>& dests) {
    clock_ = &clock;
    ids_ = std::make_unique<IdGenerator>(clock);
    dests_ = dests;
    open_store();
    make_dispatcher();
  }

  void open_store() {
    StoreOptions o;
    o.path = dir_.file("dispatch.db");
    o.synchronous_full = false;
    store_ = open_sqlite_store(o);
  }

  void make_dispatcher() {
    metrics_ = std::make_unique<Metrics>();
    dispatcher_ = std::make_unique<Dispatcher>(
        *store_, *metrics_, *clock_,
        [this](const QueuedDelivery& q, int slot) { return process(q, slot); });
    for (const auto& d : dests_) dispatcher_->add_destination(d);
    store_->set_commit_listener(
        [this](std::vector<QueuedDelivery>&& fresh) { dispatcher_->enqueue(std::move(fresh)); });
  }

  // Stops the dispatcher and closes the store (the writer thread, and so the listener, is
  // finished before the dispatcher goes away).
  void shutdown() {
    if (dispatcher_) dispatcher_->stop(0);
    if (store_) {
      store_->set_commit_listener(nullptr);
      store_->close();
    }
    dispatcher_.reset();
    metrics_.reset();
    store_.reset();
  }

  // Restarts like the Hub does: reopen the store, hold the dead heads, and let the dispatcher
  // read the active ones back (page by page, once started).
  void restart() {
    shutdown();
    open_store();
    make_dispatcher();
    for (const auto& h : store_->load_dead_heads()) dispatcher_->hold(h);
    dispatcher_->recover();
  }

  // Every attempt is delivered; those of `label` once `gate` opens.
  void deliver_all_but(const std::string& label, Gate& gate) {
    set_script([label, &gate](const Call& c) {
      if (c.label == label) gate.wait();
      return Outcome::delivered();
    });
  }

  void set_script(Script s) {
    std::lock_guard<std::mutex> lock(mu_);
    script_ = std::move(s);
  }

  AttemptResult process(const QueuedDelivery& q, int slot) {
    MessagePtr m = q.message ? q.message : store_->message_by_seq(q.message_seq);
    Call c{q.id, m ? m->type : "?",   q.key, q.attempts, clock_->now_ms(),
           slot, q.message != nullptr};
    Script script;
    {
      std::lock_guard<std::mutex> lock(mu_);
      calls_.push_back(c);
      script = script_;
    }
    cv_.notify_all();
    AttemptResult r;
    r.outcome = script ? script(c) : Outcome::delivered("ref-" + c.label, "HTTP 200");
    return r;
  }

  // Accepts one message (type = label) with one delivery; returns the delivery id.
  int64_t send(const std::string& label, const std::string& key, Millis not_before = 0,
               const std::string& destination = "d") {
    std::vector<Incoming> batch;
    batch.push_back(make_incoming(*ids_, "cms", label, key, "", clock_->now_ms(),
                                  {to_dest(destination, not_before)}));
    std::string id = batch[0].message->id;
    auto r = store_->accept(std::move(batch));
    EXPECT_EQ(r.at(0).kind, AcceptResult::Kind::Created);
    auto rec = store_->message(id, false);
    EXPECT_TRUE(rec && rec->deliveries.size() == 1);
    return rec ? rec->deliveries.at(0).id : 0;
  }

  // Accepts several (label, key) messages in one commit; returns their delivery ids.
  std::vector<int64_t> send_batch(const std::vector<std::pair<std::string, std::string>>& msgs) {
    std::vector<Incoming> batch;
    std::vector<std::string> ids;
    for (const auto& [label, key] : msgs) {
      batch.push_back(
          make_incoming(*ids_, "cms", label, key, "", clock_->now_ms(), {to_dest("d")}));
      ids.push_back(batch.back().message->id);
    }
    auto r = store_->accept(std::move(batch));
    std::vector<int64_t> out;
    for (size_t i = 0; i < r.size(); ++i) {
      EXPECT_EQ(r[i].kind, AcceptResult::Kind::Created);
      out.push_back(store_->message(ids[i], false)->deliveries.at(0).id);
    }
    return out;
  }

  // Sends `rounds` batches of one message per key ("k<key>-<round>" on "key<key>").
  void send_rounds(int keys, int rounds) {
    for (int i = 0; i < rounds; ++i) {
      std::vector<std::pair<std::string, std::string>> round;
      for (int k = 0; k < keys; ++k) {
        round.emplace_back("k" + std::to_string(k) + "-" + std::to_string(i),
                           "key" + std::to_string(k));
      }
      send_batch(round);
    }
  }
  // Each key's attempts, the repeated attempts of one delivery collapsed, are its rounds in
  // order. Returns how many attempts were repeats (retries).
  int expect_rounds_in_order(int keys, int rounds) {
    int repeats = 0;
    for (int k = 0; k < keys; ++k) {
      auto seen = labels_of_key("key" + std::to_string(k));
      std::vector<std::string> runs;
      for (const auto& l : seen) {
        if (runs.empty() || runs.back() != l) runs.push_back(l);
      }
      std::vector<std::string> expected;
      for (int i = 0; i < rounds; ++i) {
        expected.push_back("k" + std::to_string(k) + "-" + std::to_string(i));
      }
      EXPECT_EQ(runs, expected) << "key" << k;
      repeats += static_cast<int>(seen.size() - runs.size());
    }
    return repeats;
  }

  std::vector<Call> calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  int count(const std::string& label) {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const auto& c : calls_) n += c.label == label ? 1 : 0;
    return n;
  }
  std::vector<std::string> labels_of_key(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& c : calls_) {
      if (c.key == key) out.push_back(c.label);
    }
    return out;
  }
  // Waits until `label` has been attempted at least n times.
  bool wait_called(const std::string& label, int n = 1, int timeout_ms = 10000) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
      int k = 0;
      for (const auto& c : calls_) k += c.label == label ? 1 : 0;
      return k >= n;
    });
  }
  std::optional<Delivery> committed(int64_t id) {
    store_->flush();
    return store_->delivery(id);
  }
  bool wait_state(int64_t id, DeliveryState st, int timeout_ms = 10000) {
    return wait_until(
        [&] {
          auto d = committed(id);
          return d && d->state == st;
        },
        timeout_ms);
  }
  DestinationStats stats(const std::string& name = "d") {
    for (auto& s : dispatcher_->stats()) {
      if (s.name == name) return s;
    }
    ADD_FAILURE() << "no stats for " << name;
    return {};
  }

  // Stops the dispatcher when a test body ends, before the locals its script captured go away.
  struct StopAtExit {
    DispatcherTest* test;
    ~StopAtExit() { test->shutdown(); }
  };

  TempDir dir_;
  ManualClock manual_{kT0};
  const Clock* clock_ = nullptr;
  std::vector<DestinationSettings> dests_;
  std::unique_ptr<IdGenerator> ids_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<Dispatcher> dispatcher_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Call> calls_;
  Script script_;
};

// Deterministic scrambling of a label, for "random" work times and failures.
uint64_t mix(const std::string& s) {
  return std::hash<std::string>{}(s)*0x9E3779B97F4A7C15ULL;
}

// Keeps in `most` the largest value it was given.
void note_max(std::atomic<size_t>& most, size_t now) {
  size_t prev = most.load();
  while (now > prev && !most.compare_exchange_weak(prev, now)) {
  }
}

TEST_F(DispatcherTest, FifoPerCorrelationKeyWithConcurrency4) {
  init(SystemClock::instance(), {dest("d", 4, 1, 2, 100)});
  constexpr int kKeys = 16;
  constexpr int kPerKey = 30;
  std::mutex live_mu;
  std::map<std::string, int> live;  // deliveries of each key in flight now
  std::atomic<int> parallel{0}, max_parallel{0}, overlap_same_key{0}, delivered{0};
  std::map<std::string, int> attempts_seen;
  StopAtExit stop_at_exit{this};
  set_script([&](const Call& c) {
    int now_parallel = ++parallel;
    int prev = max_parallel.load();
    while (now_parallel > prev && !max_parallel.compare_exchange_weak(prev, now_parallel)) {
    }
    bool first_attempt;
    {
      std::lock_guard<std::mutex> lock(live_mu);
      if (++live[c.key] > 1) overlap_same_key.fetch_add(1);
      first_attempt = attempts_seen[c.label]++ == 0;
    }
    uint64_t h = mix(c.label);
    std::this_thread::sleep_for(std::chrono::microseconds(h % 400));  // simulated work
    {
      std::lock_guard<std::mutex> lock(live_mu);
      --live[c.key];
    }
    --parallel;
    // One delivery in five fails once: it must still come before its key's later ones.
    if (first_attempt && h % 5 == 0) return Outcome::retry("http", 503, "HTTP 503");
    delivered.fetch_add(1);
    return Outcome::delivered();
  });
  dispatcher_->start();
  send_rounds(kKeys, kPerKey);
  ASSERT_TRUE(wait_until([&] { return delivered.load() == kKeys * kPerKey; }, 30000))
      << delivered.load();

  EXPECT_EQ(overlap_same_key.load(), 0) << "two deliveries of one key were in flight at once";
  EXPECT_GE(max_parallel.load(), 2) << "the 4 workers never overlapped";
  EXPECT_LE(max_parallel.load(), 4);
  int retried = expect_rounds_in_order(kKeys, kPerKey);
  EXPECT_GT(retried, 0) << "the script should have made some deliveries retry";
  std::set<int> slots;
  for (const auto& c : calls()) slots.insert(c.slot);
  EXPECT_EQ(*slots.begin(), 0);
  EXPECT_LE(*slots.rbegin(), 3);
}

TEST_F(DispatcherTest, LongBacklogKeepsNoBodiesBeyondTheCap) {
  auto settings = dest("d", 1, 10, 20, 3);
  settings.max_cached_messages = 3;
  init(SystemClock::instance(), {settings});
  StopAtExit stop_at_exit{this};
  // Queued before the workers start: a backlog of 6.
  send_batch({{"m1", "k"}, {"m2", "k"}, {"m3", "k"}, {"m4", "k"}, {"m5", "k"}, {"m6", "k"}});
  EXPECT_EQ(stats().queued, 6u);
  dispatcher_->start();
  ASSERT_TRUE(wait_called("m6"));
  auto seen = calls();
  ASSERT_EQ(seen.size(), 6u);
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].label, "m" + std::to_string(i + 1));  // every body was read back
    EXPECT_EQ(seen[i].had_message, i < 3) << seen[i].label;
  }
}

TEST_F(DispatcherTest, PoisonDeliveryDoesNotBlockOtherKeys) {
  // One worker only: the poison one must still not starve key B.
  init(SystemClock::instance(), {dest("d", 1, 5, 5, 0, true, 3600000)});
  set_script([](const Call& c) {
    if (c.key == "A") return Outcome::retry("http", 500, "HTTP 500");
    return Outcome::delivered();
  });
  dispatcher_->start();
  int64_t a1 = send("a1", "A");
  send("a2", "A");
  for (int i = 1; i <= 5; ++i) send("b" + std::to_string(i), "B");
  ASSERT_TRUE(wait_called("b5"));
  ASSERT_TRUE(wait_called("a1", 3));
  EXPECT_EQ(labels_of_key("B"), (std::vector<std::string>{"b1", "b2", "b3", "b4", "b5"}));
  EXPECT_EQ(count("a2"), 0) << "a2 must wait behind a1 (same key)";
  auto d = committed(a1);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->state, DeliveryState::Retrying);
  EXPECT_GE(d->attempts, 2);
  EXPECT_EQ(d->last_code, 500);
}

TEST_F(DispatcherTest, BackoffIsRespected) {
  const RetryPolicy policy = dest("d", 1, 50, 200, 4).retry;
  init(SystemClock::instance(), {dest("d", 1, 50, 200, 4)});
  std::mutex m;
  std::vector<std::pair<Millis, Millis>> seen;  // (attempt start, scheduled next_attempt_at)
  StopAtExit stop_at_exit{this};
  set_script([&](const Call& c) {
    Millis scheduled = 0;
    if (c.attempts_before > 0) {
      // The previous attempt's outcome is committed before this one is read.
      auto d = committed(c.id);
      scheduled = d ? d->next_attempt_at : -1;
    }
    std::lock_guard<std::mutex> lock(m);
    seen.emplace_back(c.at, scheduled);
    return Outcome::retry("http", 503, "HTTP 503");
  });
  dispatcher_->start();
  int64_t id = send("a", "A");
  ASSERT_TRUE(wait_state(id, DeliveryState::Dead));
  std::lock_guard<std::mutex> lock(m);
  ASSERT_EQ(seen.size(), 4u);
  for (size_t i = 1; i < seen.size(); ++i) {
    Millis prev_start = seen[i - 1].first;
    Millis scheduled = seen[i].second;
    Millis started = seen[i].first;
    EXPECT_GE(started, scheduled) << "attempt " << i + 1 << " ran before its time";
    EXPECT_GE(scheduled, prev_start) << "attempt " << i + 1;
    // Full jitter: at most the ceiling after the previous attempt (plus its short duration).
    EXPECT_LE(scheduled, prev_start + policy.ceiling(static_cast<int>(i)) + 50)
        << "attempt " << i + 1;
  }
}

TEST_F(DispatcherTest, RetryAfterIsHonoured) {
  ManualClock& clock = manual_;  // outlives the dispatcher's workers
  init(clock, {dest("d", 1, 1, 1, 5)});
  set_script([](const Call& c) {
    if (c.label == "a" && c.attempts_before == 0) {
      return Outcome::retry("http", 503, "HTTP 503", 7000);
    }
    return Outcome::delivered();
  });
  dispatcher_->start();
  int64_t a = send("a", "A");
  ASSERT_TRUE(wait_until([&] {
    auto d = committed(a);
    return d && d->state == DeliveryState::Retrying;
  }));
  EXPECT_EQ(committed(a)->next_attempt_at, kT0 + 7000);

  clock.set(kT0 + 6999);
  send("s1", "S");  // a sentinel: once it ran, the worker had its chance to run "a" too
  ASSERT_TRUE(wait_called("s1"));
  EXPECT_EQ(count("a"), 1) << "attempted again before Retry-After";

  clock.set(kT0 + 7000);
  ASSERT_TRUE(wait_called("a", 2));
  for (const auto& c : calls()) {
    if (c.label == "a" && c.attempts_before == 1) {
      EXPECT_GE(c.at, kT0 + 7000);
    }
  }
  EXPECT_TRUE(wait_state(a, DeliveryState::Delivered));
}

TEST_F(DispatcherTest, MaxAttemptsThenDead) {
  init(SystemClock::instance(), {dest("d", 2, 1, 1, 3)});
  set_script(
      [](const Call&) { return Outcome::retry("http", 503, "HTTP 503 from the destination"); });
  dispatcher_->start();
  int64_t id = send("a", "A");
  ASSERT_TRUE(wait_state(id, DeliveryState::Dead));
  auto rec = store_->message(committed(id)->message_id, true);
  ASSERT_TRUE(rec);
  const Delivery& d = rec->deliveries.at(0);
  EXPECT_EQ(d.attempts, 3);
  EXPECT_EQ(d.last_outcome, "retry");
  EXPECT_EQ(d.last_class, "http");
  EXPECT_EQ(d.last_code, 503);
  EXPECT_EQ(d.last_text, "gave up after 3 attempt(s): HTTP 503 from the destination");
  ASSERT_EQ(d.history.size(), 3u);
  EXPECT_EQ(d.history[0].text, "HTTP 503 from the destination");
  EXPECT_EQ(d.history[2].text, d.last_text);
  EXPECT_EQ(count("a"), 3);
  std::string text = metrics_->render();
  EXPECT_NE(text.find("relais_dead_total{source=\"cms\",destination=\"d\"} 1"), std::string::npos)
      << text;
  EXPECT_NE(text.find("relais_retried_total{source=\"cms\",destination=\"d\"} 2"),
            std::string::npos)
      << text;
}

TEST_F(DispatcherTest, RejectGoesDeadAtOnce) {
  init(SystemClock::instance(), {dest("d", 1, 1, 1, 10)});
  set_script([](const Call&) {
    return Outcome::reject("http", 404, "HTTP 404 from the destination: refused");
  });
  dispatcher_->start();
  int64_t id = send("a", "A");
  ASSERT_TRUE(wait_state(id, DeliveryState::Dead));
  auto d = committed(id);
  EXPECT_EQ(d->attempts, 1);
  EXPECT_EQ(d->last_outcome, "reject");
  EXPECT_EQ(d->last_code, 404);
  EXPECT_EQ(d->last_text, "HTTP 404 from the destination: refused");
  EXPECT_EQ(count("a"), 1);
}

// Key A's head is rejected; a2 and a3 wait; b1 (another key) goes on.
TEST_F(DispatcherTest, HoldPolicyWaitsThenDiscardReleases) {
  init(SystemClock::instance(), {dest("d", 1, 1, 1, 5, true)});
  set_script([](const Call& c) {
    if (c.label == "a1") return Outcome::reject("http", 422, "HTTP 422");
    return Outcome::delivered();
  });
  auto a = send_batch({{"a1", "A"}, {"a2", "A"}, {"a3", "A"}});
  dispatcher_->start();
  send("b1", "B");
  ASSERT_TRUE(wait_called("b1"));
  ASSERT_TRUE(wait_state(a[0], DeliveryState::Dead));
  ASSERT_TRUE(wait_until([&] { return stats().held_keys == 1 && stats().in_flight == 0; }));
  // With one worker, a2 (a lower id than b1) would have run before b1 were it not held.
  EXPECT_EQ(count("a2"), 0);
  EXPECT_EQ(count("a3"), 0);
  DestinationStats s = stats();
  EXPECT_EQ(s.queued, 2u);
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(committed(a[1])->state, DeliveryState::Pending);

  Status st = dispatcher_->discard(a[0], "bad data at the source");
  ASSERT_TRUE(st.ok) << st.detail;
  ASSERT_TRUE(wait_called("a3"));
  EXPECT_EQ(labels_of_key("A"), (std::vector<std::string>{"a1", "a2", "a3"}));
  auto d = committed(a[0]);
  EXPECT_EQ(d->state, DeliveryState::Discarded);
  EXPECT_EQ(d->last_text, "discarded: bad data at the source");
  EXPECT_TRUE(wait_state(a[2], DeliveryState::Delivered));
  EXPECT_TRUE(wait_until([&] { return stats().queued == 0; }));  // removed after the record
  EXPECT_EQ(stats().held_keys, 0u);
}

TEST_F(DispatcherTest, HoldPolicyRetryOfTheDeadOneRunsItFirst) {
  init(SystemClock::instance(), {dest("d", 1, 1, 1, 5, true)});
  std::atomic<int> a1_runs{0};
  StopAtExit stop_at_exit{this};
  set_script([&](const Call& c) {
    if (c.label == "a1" && a1_runs.fetch_add(1) == 0) {
      return Outcome::reject("http", 422, "HTTP 422");
    }
    return Outcome::delivered();
  });
  auto a = send_batch({{"a1", "A"}, {"a2", "A"}, {"a3", "A"}});
  dispatcher_->start();
  send("b1", "B");
  ASSERT_TRUE(wait_called("b1"));
  ASSERT_TRUE(wait_state(a[0], DeliveryState::Dead));
  ASSERT_TRUE(wait_until([&] { return stats().held_keys == 1; }));
  EXPECT_EQ(count("a2"), 0);

  // A person retries a later, held delivery: it stays behind the dead head.
  Status st = dispatcher_->retry(a[1]);
  EXPECT_TRUE(st.ok) << st.detail;
  send("b2", "B");
  ASSERT_TRUE(wait_called("b2"));
  EXPECT_EQ(count("a2"), 0);

  st = dispatcher_->retry(a[0]);
  ASSERT_TRUE(st.ok) << st.detail;
  ASSERT_TRUE(wait_called("a3"));
  EXPECT_EQ(labels_of_key("A"), (std::vector<std::string>{"a1", "a1", "a2", "a3"}));
  ASSERT_TRUE(wait_state(a[2], DeliveryState::Delivered));
  auto rec = store_->message(committed(a[0])->message_id, true);
  const Delivery& d = rec->deliveries.at(0);
  EXPECT_EQ(d.state, DeliveryState::Delivered);
  EXPECT_EQ(d.attempts, 1);  // the person's retry starts a fresh count
  ASSERT_EQ(d.history.size(), 2u);
  EXPECT_EQ(d.history[0].outcome, "reject");
  EXPECT_EQ(d.history[1].outcome, "delivered");
  EXPECT_EQ(stats().held_keys, 0u);
}

TEST_F(DispatcherTest, ReleasePolicyLetsLaterOnesProceed) {
  init(SystemClock::instance(), {dest("d", 1, 1, 1, 5, false)});
  set_script([](const Call& c) {
    if (c.label == "a1") return Outcome::reject("http", 422, "HTTP 422");
    return Outcome::delivered();
  });
  auto a = send_batch({{"a1", "A"}, {"a2", "A"}, {"a3", "A"}});
  dispatcher_->start();
  ASSERT_TRUE(wait_called("a3"));
  EXPECT_EQ(labels_of_key("A"), (std::vector<std::string>{"a1", "a2", "a3"}));
  EXPECT_TRUE(wait_state(a[0], DeliveryState::Dead));
  EXPECT_TRUE(wait_state(a[2], DeliveryState::Delivered));
  EXPECT_EQ(stats().held_keys, 0u);
}

TEST_F(DispatcherTest, HoldSurvivesARestart) {
  init(SystemClock::instance(), {dest("d", 1, 1, 1, 5, true)});
  set_script([](const Call& c) {
    if (c.label == "a1") return Outcome::reject("http", 422, "HTTP 422");
    return Outcome::delivered();
  });
  auto a = send_batch({{"a1", "A"}, {"a2", "A"}});
  dispatcher_->start();
  ASSERT_TRUE(wait_state(a[0], DeliveryState::Dead));
  ASSERT_TRUE(wait_until([&] { return stats().held_keys == 1; }));

  restart();
  EXPECT_EQ(stats().held_keys, 1u);
  EXPECT_EQ(stats().queued, 1u);
  dispatcher_->start();
  send("b1", "B");
  ASSERT_TRUE(wait_called("b1"));
  EXPECT_EQ(count("a2"), 0) << "the hold must survive a restart";
  ASSERT_TRUE(dispatcher_->discard(a[0], "x").ok);
  ASSERT_TRUE(wait_called("a2"));
  EXPECT_TRUE(wait_state(a[1], DeliveryState::Delivered));
}

TEST_F(DispatcherTest, HoldPolicyAlsoHoldsLaterArrivalsAcrossARestart) {
  init(SystemClock::instance(), {dest("d", 1, 1, 1, 5, true)});
  set_script([](const Call& c) {
    if (c.label == "a1") return Outcome::reject("http", 422, "HTTP 422");
    return Outcome::delivered();
  });
  dispatcher_->start();
  int64_t a1 = send("a1", "A");  // nothing queued behind it when it dies
  ASSERT_TRUE(wait_state(a1, DeliveryState::Dead));
  ASSERT_TRUE(wait_until([&] { return stats().held_keys == 1; }));
  send("a2", "A");  // arrives after the death: must wait too
  send("b1", "B");
  ASSERT_TRUE(wait_called("b1"));
  EXPECT_EQ(count("a2"), 0);

  restart();  // the hold is rebuilt from the store
  EXPECT_EQ(stats().held_keys, 1u);
  dispatcher_->start();
  send("a3", "A");
  send("b2", "B");
  ASSERT_TRUE(wait_called("b2"));
  EXPECT_EQ(count("a2") + count("a3"), 0);

  ASSERT_TRUE(dispatcher_->discard(a1, "fixed by hand").ok);
  ASSERT_TRUE(wait_called("a3"));
  EXPECT_EQ(labels_of_key("A"), (std::vector<std::string>{"a1", "a2", "a3"}));
  EXPECT_TRUE(wait_until([&] { return stats().held_keys == 0 && stats().queued == 0; }));
}

TEST_F(DispatcherTest, NotBeforeIsRespected) {
  ManualClock& clock = manual_;  // outlives the dispatcher's workers
  init(clock, {dest("d", 1, 1, 1, 5)});
  dispatcher_->start();
  int64_t a = send("a", "A", kT0 + 5000);
  send("s1", "S");
  ASSERT_TRUE(wait_called("s1"));
  EXPECT_EQ(count("a"), 0);
  // s1's attempt has begun; it leaves the queue when its outcome is settled, just after.
  EXPECT_TRUE(wait_until([&] { return stats().queued == 1u; }));
  clock.set(kT0 + 4999);
  send("s2", "S");
  ASSERT_TRUE(wait_called("s2"));
  EXPECT_EQ(count("a"), 0);
  clock.set(kT0 + 5000);
  ASSERT_TRUE(wait_called("a"));
  for (const auto& c : calls()) {
    if (c.label == "a") {
      EXPECT_GE(c.at, kT0 + 5000);
    }
  }
  EXPECT_TRUE(wait_state(a, DeliveryState::Delivered));
}

TEST_F(DispatcherTest, NotBeforeOfTheHeadDelaysItsKey) {
  ManualClock& clock = manual_;  // outlives the dispatcher's workers
  init(clock, {dest("d", 2, 1, 1, 5)});
  dispatcher_->start();
  send("a1", "A", kT0 + 5000);
  send("a2", "A");  // due now, but behind a1 in its key
  send("s1", "S");
  ASSERT_TRUE(wait_called("s1"));
  EXPECT_EQ(count("a2"), 0);
  clock.set(kT0 + 5000);
  ASSERT_TRUE(wait_called("a2"));
  EXPECT_EQ(labels_of_key("A"), (std::vector<std::string>{"a1", "a2"}));
}

TEST_F(DispatcherTest, SkipGivesSkipped) {
  init(SystemClock::instance(), {dest("d", 1, 1, 1, 5)});
  set_script([](const Call& c) {
    if (c.label == "a1") return Outcome::skip("no consent");
    return Outcome::delivered();
  });
  auto a = send_batch({{"a1", "A"}, {"a2", "A"}});
  dispatcher_->start();
  ASSERT_TRUE(wait_state(a[0], DeliveryState::Skipped));
  auto d = committed(a[0]);
  EXPECT_EQ(d->last_outcome, "skip");
  EXPECT_EQ(d->last_text, "no consent");
  EXPECT_EQ(d->attempts, 1);
  // A skip is not a failure: the key goes on.
  EXPECT_TRUE(wait_state(a[1], DeliveryState::Delivered));
  EXPECT_EQ(stats().held_keys, 0u);
}

TEST_F(DispatcherTest, DeferWaitsWithoutConsumingAnAttemptAndSurvivesARestart) {
  ManualClock& clock = manual_;  // outlives the dispatcher's workers
  init(clock, {dest("d", 1, 1, 1, 2)});
  // The connector defers until kT0 + 60 s, then delivers.
  set_script([&clock](const Call&) {
    if (clock.now_ms() < kT0 + 60000) return Outcome::defer(kT0 + 60000, "programmé");
    return Outcome::delivered("sent");
  });
  dispatcher_->start();
  int64_t a = send("a", "A");
  ASSERT_TRUE(wait_called("a"));
  ASSERT_TRUE(wait_until([&] {
    auto d = committed(a);
    return d && d->last_outcome == "defer";
  }));
  auto d = committed(a);
  EXPECT_EQ(d->state, DeliveryState::Pending);
  EXPECT_EQ(d->attempts, 0);  // a deferral is not an attempt
  EXPECT_EQ(d->next_attempt_at, kT0 + 60000);
  EXPECT_EQ(d->last_text, "programmé");
  // The key waits for it: a later message of the same key is not attempted before.
  send("a2", "A");
  clock.set(kT0 + 30000);
  send("s", "S");
  ASSERT_TRUE(wait_called("s"));
  EXPECT_EQ(count("a"), 1);
  EXPECT_EQ(count("a2"), 0);
  // After a restart the due time comes from the store.
  restart();
  dispatcher_->start();
  ASSERT_TRUE(wait_called("s", 1));
  EXPECT_EQ(count("a"), 1);
  clock.set(kT0 + 60000);
  ASSERT_TRUE(wait_state(a, DeliveryState::Delivered));
  d = committed(a);
  EXPECT_EQ(d->attempts, 1);
  // Then the key goes on (wait for it: a2 is attempted after a's outcome is committed).
  ASSERT_TRUE(wait_called("a2"));
  EXPECT_EQ(labels_of_key("A"), (std::vector<std::string>{"a", "a", "a2"}));
}

// wake_delivery makes a deferred delivery due now, with or without a correlation key (the file
// destination wakes a batch's deliveries once their file is in place).
TEST_F(DispatcherTest, WakeDeliveryMakesADeferredDeliveryDueWithOrWithoutKey) {
  ManualClock& clock = manual_;  // outlives the dispatcher's workers
  init(clock, {dest("d", 2, 1, 1, 2)});
  std::atomic<bool> ready{false};
  set_script([&](const Call&) {
    if (!ready.load()) return Outcome::defer(kT0 + 3600000, "lot ouvert");
    return Outcome::delivered("f.csv");
  });
  dispatcher_->start();
  int64_t keyed = send("a", "A");
  int64_t loose = send("b", "");
  ASSERT_TRUE(wait_until([&] {
    auto a = committed(keyed), b = committed(loose);
    return a && b && a->last_outcome == "defer" && b->last_outcome == "defer";
  }));
  ready = true;
  dispatcher_->wake_delivery("d", loose, "");
  ASSERT_TRUE(wait_state(loose, DeliveryState::Delivered));
  EXPECT_EQ(committed(keyed)->state, DeliveryState::Pending);  // not woken: still waits
  dispatcher_->wake_delivery("d", keyed, "A");
  ASSERT_TRUE(wait_state(keyed, DeliveryState::Delivered));
  EXPECT_LT(clock.now_ms(), kT0 + 3600000);  // before the deferral's time
}

// A partner's "slow down" without a scope pauses the whole destination, every slot, for the time
// asked; it is not an attempt, so the delivery keeps its attempt count and back-off step.
TEST_F(DispatcherTest, ThrottlePausesTheWholeDestinationWithoutCountingAnAttempt) {
  ManualClock& clock = manual_;  // outlives the dispatcher's workers
  init(clock, {dest("d", 4, 1, 1, 2), dest("e", 1, 1, 1, 2)});
  std::atomic<bool> throttled_once{false};
  set_script([&](const Call& c) {
    if (c.label == "a" && !throttled_once.exchange(true)) {
      return Outcome::throttle("", 503, "ErrorServerBusy", 10000);
    }
    return Outcome::delivered();
  });
  dispatcher_->start();
  int64_t a = send("a", "A");
  ASSERT_TRUE(wait_until([&] {
    auto d = committed(a);
    return d && d->last_outcome == "throttled";
  }));
  auto d = committed(a);
  EXPECT_EQ(d->state, DeliveryState::Pending);
  EXPECT_EQ(d->attempts, 0) << "a throttle is not an attempt";
  EXPECT_EQ(d->next_attempt_at, kT0 + 10000);
  EXPECT_NE(d->last_text.find("ralenti par le partenaire pour 10 s"), std::string::npos)
      << d->last_text;
  EXPECT_EQ(stats().throttled_until, kT0 + 10000);
  // Other keys of the paused destination wait too, on every slot; another destination does not.
  int64_t b = send("b", "B");
  int64_t c = send("c", "C");
  clock.set(kT0 + 9999);
  send("s", "S", 0, "e");
  ASSERT_TRUE(wait_called("s"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // > the workers' longest sleep
  EXPECT_EQ(count("b"), 0);
  EXPECT_EQ(count("c"), 0);
  EXPECT_EQ(count("a"), 1);
  clock.set(kT0 + 10000);
  ASSERT_TRUE(wait_state(a, DeliveryState::Delivered));
  ASSERT_TRUE(wait_state(b, DeliveryState::Delivered));
  ASSERT_TRUE(wait_state(c, DeliveryState::Delivered));
  EXPECT_EQ(committed(a)->attempts, 1);
  EXPECT_EQ(stats().throttled_until, 0);
  std::string text = metrics_->render();
  EXPECT_NE(text.find("relais_throttled_total{source=\"cms\",destination=\"d\"} 1"),
            std::string::npos)
      << text;
}

// Sustained throttling never turns a delivery dead nor grows its back-off: max_attempts is 2,
// the partner throttles ten times, then the delivery goes through on its first real attempt.
TEST_F(DispatcherTest, ThrottlingIsNeverCountedInMaxAttempts) {
  init(SystemClock::instance(), {dest("d", 2, 60000, 60000, 2)});
  std::atomic<int> throttles{0};
  set_script([&](const Call& c) {
    if (c.label == "a" && throttles.fetch_add(1) < 10) {
      return Outcome::throttle("", 429, "HTTP 429", 5);
    }
    return Outcome::delivered();
  });
  dispatcher_->start();
  int64_t a = send("a", "A");
  ASSERT_TRUE(wait_state(a, DeliveryState::Delivered));
  auto d = committed(a);
  EXPECT_EQ(d->attempts, 1);
  EXPECT_EQ(count("a"), 11);
}

// A partner's delay is bounded by retry.max_retry_after, for a throttle and for a retry; a
// throttle without a delay pauses retry.throttle_pause.
TEST_F(DispatcherTest, PartnerDelaysAreBoundedByMaxRetryAfter) {
  ManualClock& clock = manual_;
  std::vector<DestinationSettings> ds;
  for (const char* name : {"t", "r", "n"}) {
    DestinationSettings s = dest(name, 1, 1, 1, 5);
    s.retry.max_retry_after_ms = 60000;
    s.retry.throttle_default_ms = 2000;
    ds.push_back(s);
  }
  init(clock, ds);
  set_script([](const Call& c) {
    if (c.label == "t") return Outcome::throttle("", 503, "busy", 36'000'000);
    if (c.label == "r") return Outcome::retry("http", 503, "HTTP 503", 36'000'000);
    return Outcome::throttle("", 503, "busy", std::nullopt);
  });
  dispatcher_->start();
  int64_t t = send("t", "T", 0, "t");
  int64_t r = send("r", "R", 0, "r");
  int64_t n = send("n", "N", 0, "n");
  ASSERT_TRUE(wait_until([&] { return committed(t)->last_outcome == "throttled"; }));
  ASSERT_TRUE(wait_until([&] { return committed(r)->state == DeliveryState::Retrying; }));
  ASSERT_TRUE(wait_until([&] { return committed(n)->last_outcome == "throttled"; }));
  EXPECT_EQ(committed(t)->next_attempt_at, kT0 + 60000);
  EXPECT_EQ(committed(r)->next_attempt_at, kT0 + 60000);
  EXPECT_EQ(committed(n)->next_attempt_at, kT0 + 2000);
}

// A throttle scoped to one account (a mailbox) leaves the destination running: the connector
// gates that account itself; the dashboard counts the accounts paused.
TEST_F(DispatcherTest, ScopedThrottleDoesNotPauseTheDestination) {
  ManualClock& clock = manual_;
  init(clock, {dest("d", 1, 1, 1, 5)});
  set_script([](const Call& c) {
    if (c.label == "a") return Outcome::throttle("agent1@cd76.fr", 503, "busy", 30000);
    return Outcome::delivered();
  });
  dispatcher_->start();
  int64_t a = send("a", "A");
  ASSERT_TRUE(wait_until([&] { return committed(a)->last_outcome == "throttled"; }));
  int64_t b = send("b", "B");
  ASSERT_TRUE(wait_state(b, DeliveryState::Delivered));
  EXPECT_EQ(stats().throttled_until, 0);
  EXPECT_EQ(stats().throttled_scopes, 1u);
  clock.set(kT0 + 30000);
  EXPECT_EQ(stats().throttled_scopes, 0u);
}

TEST_F(DispatcherTest, ReplacePendingSkipsTheOlderWaitingDeliveryOfItsKey) {
  ManualClock& clock = manual_;  // outlives the dispatcher's workers
  auto settings = dest("d", 2, 1, 1, 5);
  settings.replace_pending = true;
  init(clock, {settings});
  // Every delivery is a reminder due at kT0 + 60 s.
  set_script([&clock](const Call&) {
    if (clock.now_ms() < kT0 + 60000) return Outcome::defer(kT0 + 60000, "rappel programmé");
    return Outcome::delivered("sent");
  });
  dispatcher_->start();
  int64_t planned = send("planned", "rdv:1");
  ASSERT_TRUE(wait_until([&] {
    auto d = committed(planned);
    return d && d->last_outcome == "defer";
  }));
  int64_t other = send("other", "rdv:2");
  int64_t moved = send("moved", "rdv:1");
  ASSERT_TRUE(wait_state(planned, DeliveryState::Skipped));
  auto d = committed(planned);
  EXPECT_EQ(d->last_class, "replaced");
  EXPECT_NE(d->last_text.find("moved"), std::string::npos) << d->last_text;
  ASSERT_TRUE(wait_called("moved"));
  clock.set(kT0 + 60000);
  ASSERT_TRUE(wait_state(moved, DeliveryState::Delivered));
  ASSERT_TRUE(wait_state(other, DeliveryState::Delivered));
  EXPECT_EQ(count("planned"), 1);  // its deferral only: never sent
  EXPECT_EQ(count("moved"), 2);
  EXPECT_EQ(stats().queued, 0u);
}

TEST_F(DispatcherTest, ReplacePendingAppliesToOneInFlightWhenItIsDeferred) {
  ManualClock& clock = manual_;  // outlives the dispatcher's workers
  auto settings = dest("d", 1, 1, 1, 5);
  settings.replace_pending = true;
  init(clock, {settings});
  Gate gate;
  set_script([&](const Call& c) {
    if (c.label == "planned") {  // in flight while "moved" arrives
      gate.wait();
    }
    return Outcome::defer(kT0 + 60000, "rappel programmé");
  });
  dispatcher_->start();
  int64_t planned = send("planned", "rdv:1");
  ASSERT_TRUE(wait_called("planned"));
  int64_t moved = send("moved", "rdv:1");
  gate.open();
  ASSERT_TRUE(wait_state(planned, DeliveryState::Skipped));
  ASSERT_TRUE(wait_called("moved"));
  EXPECT_TRUE(wait_until([&] {
    auto d = committed(moved);
    return d && d->last_outcome == "defer" && d->state == DeliveryState::Pending;
  }));
  StopAtExit stop{this};
}

TEST_F(DispatcherTest, DeliveredRecordsTheExternalRef) {
  init(SystemClock::instance(), {dest("d", 1, 1, 1, 5)});
  dispatcher_->start();
  int64_t id = send("a", "A");
  ASSERT_TRUE(wait_state(id, DeliveryState::Delivered));
  auto d = committed(id);
  EXPECT_EQ(d->external_ref, "ref-a");
  EXPECT_EQ(d->last_outcome, "delivered");
  EXPECT_EQ(d->attempts, 1);
  std::string text = metrics_->render();
  EXPECT_NE(text.find("relais_delivered_total{source=\"cms\",destination=\"d\"} 1"),
            std::string::npos)
      << text;
}

TEST_F(DispatcherTest, RetryOfADeliveredOneAttemptsItAgain) {
  init(SystemClock::instance(), {dest("d", 1, 1, 1, 5)});
  dispatcher_->start();
  int64_t id = send("a", "A");
  ASSERT_TRUE(wait_state(id, DeliveryState::Delivered));
  Status s = dispatcher_->retry(id);
  ASSERT_TRUE(s.ok) << s.detail;
  ASSERT_TRUE(wait_called("a", 2));
  ASSERT_TRUE(wait_until([&] {
    auto rec = store_->message(committed(id)->message_id, true);
    return rec && rec->deliveries.at(0).history.size() == 2;
  }));
  auto d = committed(id);
  EXPECT_EQ(d->state, DeliveryState::Delivered);
  EXPECT_EQ(d->attempts, 1);

  EXPECT_EQ(dispatcher_->retry(987654).http_status, 404);
}

TEST_F(DispatcherTest, RetryOfAWaitingOneRunsItNow) {
  ManualClock& clock = manual_;  // outlives the dispatcher's workers
  init(clock, {dest("d", 1, 1, 1, 5)});
  dispatcher_->start();
  int64_t id = send("a", "A", kT0 + 3600000);
  Status s = dispatcher_->retry(id);
  ASSERT_TRUE(s.ok) << s.detail;
  ASSERT_TRUE(wait_called("a"));
  EXPECT_TRUE(wait_state(id, DeliveryState::Delivered));
  EXPECT_EQ(clock.now_ms(), kT0);  // without moving the clock
}

TEST_F(DispatcherTest, RetryOfARetryingOneRunsItNow) {
  ManualClock& clock = manual_;  // outlives the dispatcher's workers
  init(clock, {dest("d", 1, 1, 1, 5)});
  set_script([](const Call& c) {
    if (c.attempts_before == 0) return Outcome::retry("http", 429, "HTTP 429", 600000);
    return Outcome::delivered();
  });
  dispatcher_->start();
  int64_t id = send("a", "A");
  ASSERT_TRUE(wait_state(id, DeliveryState::Retrying));
  EXPECT_EQ(committed(id)->next_attempt_at, kT0 + 600000);
  Status s = dispatcher_->retry(id);
  ASSERT_TRUE(s.ok) << s.detail;
  ASSERT_TRUE(wait_called("a", 2));
  EXPECT_TRUE(wait_state(id, DeliveryState::Delivered));
  EXPECT_EQ(committed(id)->attempts, 2);  // an active delivery keeps its count
  EXPECT_EQ(clock.now_ms(), kT0);
}

TEST_F(DispatcherTest, DiscardOfAPendingOneIsNeverAttempted) {
  ManualClock& clock = manual_;  // outlives the dispatcher's workers
  init(clock, {dest("d", 1, 1, 1, 5)});
  dispatcher_->start();
  int64_t id = send("a", "A", kT0 + 5000);
  Status s = dispatcher_->discard(id, "sent by mistake");
  ASSERT_TRUE(s.ok) << s.detail;
  auto d = committed(id);
  EXPECT_EQ(d->state, DeliveryState::Discarded);
  EXPECT_EQ(d->last_text, "discarded: sent by mistake");
  EXPECT_EQ(stats().queued, 0u);

  clock.set(kT0 + 10000);
  send("s1", "S");
  ASSERT_TRUE(wait_called("s1"));
  EXPECT_EQ(count("a"), 0);
  EXPECT_EQ(committed(id)->state, DeliveryState::Discarded);

  // Discarding again, or a delivered one, is a conflict; an unknown id is not found.
  EXPECT_EQ(dispatcher_->discard(id, "again").http_status, 409);
  EXPECT_EQ(dispatcher_->discard(987654, "x").http_status, 404);
}

TEST_F(DispatcherTest, DiscardAndRetryOfAnInFlightOneAreConflicts) {
  init(SystemClock::instance(), {dest("d", 2, 1, 1, 5)});
  Gate gate;
  StopAtExit stop_at_exit{this};
  deliver_all_but("a", gate);
  dispatcher_->start();
  int64_t id = send("a", "A");
  ASSERT_TRUE(wait_called("a"));
  EXPECT_TRUE(dispatcher_->in_flight(id));
  DestinationStats s = stats();
  EXPECT_EQ(s.in_flight, 1u);
  EXPECT_EQ(s.queued, 1u);
  Status st = dispatcher_->discard(id, "x");
  EXPECT_EQ(st.http_status, 409) << st.detail;
  st = dispatcher_->retry(id);
  EXPECT_EQ(st.http_status, 409) << st.detail;
  gate.open();
  EXPECT_TRUE(wait_state(id, DeliveryState::Delivered));
  EXPECT_TRUE(wait_until([&] { return !dispatcher_->in_flight(id); }));
  EXPECT_EQ(stats().in_flight, 0u);
  EXPECT_EQ(count("a"), 1);
}

TEST_F(DispatcherTest, StatsDepthInFlightAndOldest) {
  ManualClock& clock = manual_;  // outlives the dispatcher's workers
  init(clock, {dest("d", 1, 1, 1, 5), dest("e", 1, 1, 1, 5)});
  dispatcher_->start();
  send("a1", "A", kT0 + 60000);
  clock.advance(10);
  send("a2", "A", kT0 + 60000);
  clock.advance(10);
  send("b1", "B", kT0 + 60000);
  send("x1", "X", 0, "nowhere");  // not configured: counted, left in the store
  DestinationStats d = stats("d");
  EXPECT_EQ(d.queued, 3u);
  EXPECT_EQ(d.in_flight, 0u);
  EXPECT_EQ(d.held_keys, 0u);
  EXPECT_EQ(d.oldest_received, kT0);
  DestinationStats e = stats("e");
  EXPECT_EQ(e.queued, 0u);
  EXPECT_EQ(e.oldest_received, 0);
  EXPECT_TRUE(wait_until([&] { return dispatcher_->unknown_destination_count() == 1; }));
  EXPECT_TRUE(dispatcher_->has_destination("d"));
  EXPECT_FALSE(dispatcher_->has_destination("nowhere"));
  std::string text = metrics_->render();
  EXPECT_NE(text.find("relais_queue_depth{destination=\"d\"} 3"), std::string::npos) << text;
  EXPECT_NE(text.find("relais_queue_depth{destination=\"e\"} 0"), std::string::npos) << text;

  clock.set(kT0 + 60000);
  ASSERT_TRUE(wait_until([&] { return count("a1") + count("a2") + count("b1") == 3; }));
  ASSERT_TRUE(wait_until([&] { return stats("d").queued == 0; }));
  EXPECT_EQ(stats("d").oldest_received, 0);
  EXPECT_EQ(count("x1"), 0);
}

TEST_F(DispatcherTest, UnorderedMessagesDoNotWaitForEachOther) {
  // Messages without a correlation key each form their own key: a failing one does not hold
  // the others, even under the hold policy.
  init(SystemClock::instance(), {dest("d", 1, 1, 1, 5, true)});
  set_script([](const Call& c) {
    if (c.label == "u1") return Outcome::reject("http", 400, "HTTP 400");
    return Outcome::delivered();
  });
  auto ids = send_batch({{"u1", ""}, {"u2", ""}, {"u3", ""}});
  dispatcher_->start();
  EXPECT_TRUE(wait_state(ids[2], DeliveryState::Delivered));
  EXPECT_TRUE(wait_state(ids[1], DeliveryState::Delivered));
  EXPECT_EQ(stats().held_keys, 0u);
}

TEST_F(DispatcherTest, StopKeepsPendingDeliveriesInTheStore) {
  ManualClock& clock = manual_;  // outlives the dispatcher's workers
  init(clock, {dest("d", 2, 1, 1, 5)});
  dispatcher_->start();
  int64_t id = send("a", "A", kT0 + 1000);
  dispatcher_->stop(0);
  clock.set(kT0 + 2000);
  auto d = committed(id);
  EXPECT_EQ(d->state, DeliveryState::Pending);
  EXPECT_EQ(count("a"), 0);
  auto active = store_->load_active();
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].id, id);
}

// A backlog larger than `queue_in_memory`: what is beyond the bound stays in the store and comes
// back page by page, with its bodies, in order per key; memory never holds more than the bound
// (plus what is already in flight), and the figures count memory and store together.
TEST_F(DispatcherTest, BacklogBeyondTheBoundIsPagedBackInOrderPerKey) {
  auto settings = dest("d", 3, 1, 2, 100);
  settings.queue_in_memory = 40;
  init(SystemClock::instance(), {settings});
  constexpr int kKeys = 25, kPerKey = 40;  // 1,000 deliveries: 25 times the bound
  std::atomic<size_t> most_in_memory{0};
  std::atomic<int> delivered{0};
  StopAtExit stop_at_exit{this};
  set_script([&](const Call& c) {
    note_max(most_in_memory, stats().in_memory);
    // One in seven fails once: retries stay in memory, behind them their key waits.
    if (c.attempts_before == 0 && mix(c.label) % 7 == 0) {
      return Outcome::retry("http", 503, "HTTP 503");
    }
    delivered.fetch_add(1);
    return Outcome::delivered();
  });
  send_rounds(kKeys, kPerKey);
  DestinationStats before = stats();
  EXPECT_EQ(before.queued, static_cast<size_t>(kKeys * kPerKey));
  EXPECT_EQ(before.in_memory, 40u) << "the bound is not kept while nothing is sent";
  dispatcher_->start();
  ASSERT_TRUE(wait_until([&] { return delivered.load() == kKeys * kPerKey; }, 60000))
      << delivered.load();
  EXPECT_LE(most_in_memory.load(), 40u);
  expect_rounds_in_order(kKeys, kPerKey);
  int without_body = 0;
  for (const auto& c : calls()) without_body += c.had_message ? 0 : 1;
  EXPECT_EQ(without_body, 0) << "a page brings its messages: none is read back one by one";
  EXPECT_TRUE(wait_until([&] { return stats().queued == 0; }));
  EXPECT_EQ(stats().in_memory, 0u);
}

// A restart with a backlog: the dispatcher counts it, reads it back page by page once started
// (never more than the bound in memory), and every delivery goes out once, in order per key.
TEST_F(DispatcherTest, RestartReadsTheBacklogBackPageByPage) {
  auto settings = dest("d", 2, 1, 2, 100);
  settings.queue_in_memory = 30;
  init(SystemClock::instance(), {settings});
  std::vector<std::pair<std::string, std::string>> batch;
  for (int i = 0; i < 300; ++i) {
    batch.emplace_back("m" + std::to_string(i), "key" + std::to_string(i % 7));
  }
  send_batch(batch);  // never started: all 300 wait in the store
  restart();
  DestinationStats st = stats();
  EXPECT_EQ(st.queued, 300u);
  EXPECT_EQ(st.in_memory, 0u) << "nothing is loaded before the dispatcher starts";
  std::atomic<size_t> most_in_memory{0};
  StopAtExit stop_at_exit{this};
  set_script([&](const Call&) {
    note_max(most_in_memory, stats().in_memory);
    return Outcome::delivered();
  });
  dispatcher_->start();
  ASSERT_TRUE(wait_until([&] { return static_cast<int>(calls().size()) >= 300; }, 30000));
  EXPECT_TRUE(wait_until([&] { return stats().queued == 0; }));
  EXPECT_LE(most_in_memory.load(), 30u);
  std::map<std::string, int> seen;
  for (const auto& c : calls()) ++seen[c.label];
  EXPECT_EQ(seen.size(), 300u);
  for (const auto& [label, n] : seen) EXPECT_EQ(n, 1) << label << " attempted " << n << " times";
  for (int k = 0; k < 7; ++k) {
    auto labels = labels_of_key("key" + std::to_string(k));
    std::vector<std::string> expected;
    for (int i = k; i < 300; i += 7) expected.push_back("m" + std::to_string(i));
    EXPECT_EQ(labels, expected) << "key" << k;
  }
}

// A person's discard or retry of a delivery that is still in the store (beyond the bound): the
// discarded one is never attempted, the retried one keeps its place in its key's order.
TEST_F(DispatcherTest, DiscardAndRetryOfADeliveryStillInTheStore) {
  auto settings = dest("d", 1, 1, 2, 100);
  settings.queue_in_memory = 10;
  init(SystemClock::instance(), {settings});
  Gate gate;
  StopAtExit stop_at_exit{this};
  deliver_all_but("m0", gate);
  dispatcher_->start();
  std::vector<std::pair<std::string, std::string>> batch;
  for (int i = 0; i < 60; ++i) batch.emplace_back("m" + std::to_string(i), "K");
  auto ids = send_batch(batch);
  ASSERT_TRUE(wait_called("m0"));  // in flight, holding the single worker
  EXPECT_EQ(stats().in_memory, 10u);
  Status s = dispatcher_->discard(ids[45], "sent twice");
  ASSERT_TRUE(s.ok) << s.detail;
  EXPECT_EQ(committed(ids[45])->state, DeliveryState::Discarded);
  s = dispatcher_->retry(ids[50]);  // pending, in the store: made due now, still after its key
  ASSERT_TRUE(s.ok) << s.detail;
  gate.open();
  ASSERT_TRUE(wait_called("m59"));
  std::vector<std::string> expected;
  for (int i = 0; i < 60; ++i) {
    if (i != 45) expected.push_back("m" + std::to_string(i));
  }
  EXPECT_EQ(labels_of_key("K"), expected);
  EXPECT_EQ(committed(ids[45])->state, DeliveryState::Discarded);
  EXPECT_TRUE(wait_state(ids[59], DeliveryState::Delivered));
  EXPECT_TRUE(wait_until([&] { return stats().queued == 0; }));
}

}  // namespace
}  // namespace relais

// bench_store: the store alone (core/store.h), as the HTTP door and the dispatcher use it, on
// either engine: T threads accept one message each at a time (an idempotency key, one delivery,
// the CMS76 sample's size of body), and every new delivery's outcome is recorded (delivered, one
// attempt) as the dispatcher does; for D seconds, then everything is flushed. Prints accepted
// msg/s, outcomes/s and the accept latency p50/p99. Used by bench/run-core-bench.sh with
// BENCH_STORE=postgresql (while the relais binary cannot open that store yet) and by hand:
//
//   bench_store --uri 'host=127.0.0.1 port=5432 dbname=relais user=relais password=…' [T] [D]
//   bench_store --path /tmp/relais.db [T] [D]

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/ids.h"
#include "core/store.h"
#include "store/postgresql/pg_backend.h"
#include "store/sqlite/sqlite_backend.h"

using namespace relais;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_store --uri URI | --path FILE [threads] [seconds]\n");
    return 2;
  }
  StoreOptions o;
  std::string kind = argv[1];
  if (kind == "--uri") {
    o.uri = argv[2];
  } else {
    o.path = argv[2];
  }
  const int threads = argc > 3 ? std::atoi(argv[3]) : 32;
  const int seconds = argc > 4 ? std::atoi(argv[4]) : 10;
  auto store = kind == "--uri" ? open_postgresql_store(o) : open_sqlite_store(o);
  SystemClock clock;
  IdGenerator ids(clock);
  const std::string body(620, 'x');

  // The "dispatcher": each new delivery delivered at once, its outcome recorded.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<QueuedDelivery> fresh;
  bool done = false;
  std::atomic<int64_t> outcomes{0};
  store->set_commit_listener([&](std::vector<QueuedDelivery>&& qs) {
    {
      std::lock_guard<std::mutex> lock(mu);
      for (auto& q : qs) fresh.push_back(std::move(q));
    }
    cv.notify_one();
  });
  std::thread dispatcher([&] {
    for (;;) {
      std::deque<QueuedDelivery> mine;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return !fresh.empty() || done; });
        if (fresh.empty()) return;
        mine.swap(fresh);
      }
      for (auto& q : mine) {
        DeliveryUpdate u;
        u.id = q.id;
        u.state = DeliveryState::Delivered;
        u.attempts = 1;
        u.now = clock.now_ms();
        u.attempt = Attempt{u.now, 3, "delivered", "", 201, "HTTP 201", "{\"id\":\"x\"}"};
        u.external_ref = "/items/1";
        store->record(std::move(u), [&] { outcomes.fetch_add(1); });
      }
    }
  });

  std::atomic<bool> running{true};
  std::atomic<int64_t> accepted{0}, failed{0};
  std::vector<std::vector<double>> latencies(static_cast<size_t>(threads));
  std::vector<std::thread> load;
  auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; ++t) {
    load.emplace_back([&, t] {
      for (int64_t i = 0; running; ++i) {
        auto m = std::make_shared<Message>();
        m->id = ids.next();
        m->source = "cms76";
        m->type = "rdv.planned";
        m->correlation = "rdv:" + std::to_string(t) + "-" + std::to_string(i);
        m->idempotency = "evt-" + m->id;
        m->body = body;
        m->received_at = clock.now_ms();
        Incoming in;
        in.message = std::move(m);
        in.deliveries.push_back(NewDelivery{"calendar", "rdv", "rdv-calendar", 0});
        in.body_digest = "d";
        std::vector<Incoming> one;
        one.push_back(std::move(in));
        auto t0 = std::chrono::steady_clock::now();
        auto r = store->accept(std::move(one));
        auto t1 = std::chrono::steady_clock::now();
        latencies[static_cast<size_t>(t)].push_back(
            std::chrono::duration<double, std::milli>(t1 - t0).count());
        (r.at(0).kind == AcceptResult::Kind::Created ? accepted : failed).fetch_add(1);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  running = false;
  for (auto& th : load) th.join();
  double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Drain: every outcome committed.
  while (outcomes.load() < accepted.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    store->flush();
  }
  double all_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
  }
  cv.notify_one();
  dispatcher.join();
  store->close();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    return all.empty() ? 0.0 : all[std::min(all.size() - 1, static_cast<size_t>(p * all.size()))];
  };
  std::printf(
      "engine=%s threads=%d accepted=%lld failed=%lld accepted_per_s=%.0f "
      "delivered_per_s=%.0f accept_p50_ms=%.2f accept_p99_ms=%.2f\n",
      kind == "--uri" ? "postgresql" : "sqlite", threads, static_cast<long long>(accepted.load()),
      static_cast<long long>(failed.load()), accepted.load() / load_s, outcomes.load() / all_s,
      pct(0.5), pct(0.99));
  return failed.load() == 0 ? 0 : 1;
}

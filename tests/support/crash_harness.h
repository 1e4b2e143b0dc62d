#pragma once
// The two halves of the crash tests (tests/integration/crash_test.cpp, tests/cluster/) around
// relais: the partner — an HTTP sink that logs the number of every message it receives, in
// order — and the senders — clients posting numbered messages, a key's next message only once
// the previous one was acknowledged, each message again until it is (202, or 200 "duplicate"
// for a resend whose first 202 was lost to a kill). The verdict is tests/support/
// delivery_verdict.h. Header-only; thread-safe where it says so.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {

// The partner: logs the "n" of each JSON body received (400 for anything else). Thread-safe.
// Owns its sink.
class ArrivalLog {
 public:
  explicit ArrivalLog(int threads = 32)
      : state_(std::make_shared<State>()), sink_(0, false, threads) {
    sink_.set_responder([state = state_](const relais::tools::SinkRequest& req) {
      nlohmann::json j = nlohmann::json::parse(req.body, nullptr, false);
      relais::tools::SinkResponse out;
      if (!j.is_object() || !j.contains("n") || !j["n"].is_number_integer()) {
        out.status = 400;
        return out;
      }
      std::lock_guard<std::mutex> lock(state->mu);
      state->arrivals.push_back(j["n"].get<int>());
      return out;
    });
  }
  int port() const { return sink_.port(); }
  std::vector<int> arrivals() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->arrivals;
  }
  size_t distinct() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    return std::set<int>(state_->arrivals.begin(), state_->arrivals.end()).size();
  }

 private:
  struct State {
    mutable std::mutex mu;
    std::vector<int> arrivals;
  };
  std::shared_ptr<State> state_;
  relais::tools::HttpSink sink_;
};

// The senders: `clients` threads post messages 0 … messages-1 to the source "app" — message n
// of key "key-<n % keys>", idempotency id "<prefix>-<n>" — the keys shared among the clients.
// Each try goes to the port `port_for(turn)` gives (0: nobody listens now; `turn` counts the
// client's tries, starting at its index: round-robin over several nodes). Starts at
// construction; the destructor gives up and joins. Read-only accessors are thread-safe.
class PostingClients {
 public:
  PostingClients(int messages, int keys, int clients, const std::string& token,
                 const std::string& prefix, std::function<int(int turn)> port_for)
      : status_(static_cast<size_t>(messages)) {
    for (auto& s : status_) s = 0;
    for (int c = 0; c < clients; ++c) {
      threads_.emplace_back([=, this] {
        HttpClient http("", token);
        http.set_timeout_ms(10000);
        int turn = c;
        for (int n = 0; n < messages && !give_up_; ++n) {
          if ((n % keys) % clients != c) continue;
          std::string text = nlohmann::json{
              {"type", prefix + ".test"},
              {"id", prefix + "-" + std::to_string(n)},
              {"key", "key-" + std::to_string(n % keys)},
              {"n", n}}.dump();
          while (!give_up_) {
            int port = port_for(turn++);
            HttpResponse r;
            if (port != 0) {
              r = http.post_json(
                  "http://127.0.0.1:" + std::to_string(port) + "/api/v1/sources/app/messages",
                  text);
            }
            if (r.status == 202 || (r.status == 200 && r.json().value("duplicate", false))) {
              status_[static_cast<size_t>(n)] = static_cast<int>(r.status);
              ++acknowledged_;
              break;
            }
            (r.status == 0 ? transport_errors_ : other_statuses_)++;     // e.g. 503: send again
            std::this_thread::sleep_for(std::chrono::milliseconds(10));  // the client's back-off
          }
        }
      });
    }
  }
  ~PostingClients() { finish(); }
  PostingClients(const PostingClients&) = delete;
  PostingClients& operator=(const PostingClients&) = delete;

  // Gives up what is not acknowledged yet and waits for the threads.
  void finish() {
    give_up_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  int acknowledged() const { return acknowledged_.load(); }
  // 0 (not acknowledged), 202, or 200 (acknowledged as a duplicate of a lost 202).
  int status(int n) const { return status_[static_cast<size_t>(n)].load(); }
  int duplicate_acks() const {
    int d = 0;
    for (const auto& s : status_) d += s == 200 ? 1 : 0;
    return d;
  }
  int transport_errors() const { return transport_errors_.load(); }
  int other_statuses() const { return other_statuses_.load(); }

 private:
  std::vector<std::atomic<int>> status_;
  std::atomic<int> acknowledged_{0}, transport_errors_{0}, other_statuses_{0};
  std::atomic<bool> give_up_{false};
  std::vector<std::thread> threads_;
};

// Asks relais at `base_url` until no message has a delivery in state pending, retrying or dead
// (at most `limit` per state); a failure names the state left.
inline void expect_queues_empty(const std::string& base_url, const std::string& token,
                                std::chrono::milliseconds limit) {
  HttpClient api(base_url, token);
  for (const char* state : {"pending", "retrying", "dead"}) {
    const std::string path = std::string("/api/v1/messages?limit=5&state=") + state;
    bool empty = wait_until(
        [&] {
          HttpResponse r = api.get(path);
          return r.status == 200 && r.json()["items"].empty();
        },
        limit, std::chrono::milliseconds(50));
    EXPECT_TRUE(empty) << "deliveries left in state " << state << ": " << api.get(path).body;
  }
}

}  // namespace relais::testing

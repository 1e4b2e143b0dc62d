#pragma once
// A store with the dispatcher wired as the Hub wires it (commit listener, dead heads held, active
// deliveries queued at start), one destination "cal" whose partner records what it received per
// correlation key, in order, behind a gate the test opens and closes: the base of the fault tests
// of both engines (store_faults_test.cpp: SQLite's file faults; store_postgresql_test.cpp: the
// server going away). Not thread-safe except the partner's record (the dispatcher's threads).

#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/ids.h"
#include "core/metrics.h"
#include "core/store.h"
#include "routing/dispatcher.h"
#include "tests/core/test_support.h"

namespace relais::testing {

class DispatchedStoreTest : public ::testing::Test {
 protected:
  DispatchedStoreTest() : ids_(clock_) {}
  ~DispatchedStoreTest() override {
    gate(true);
    shutdown();
  }

  // Starts the dispatcher on `store` (owned from now on).
  void start_with(std::unique_ptr<Store> store) {
    store_ = std::move(store);
    metrics_ = std::make_unique<Metrics>();
    dispatcher_ = std::make_unique<Dispatcher>(
        *store_, *metrics_, clock_, [this](const QueuedDelivery& q, int) { return deliver(q); });
    DestinationSettings d;
    d.name = "cal";
    d.concurrency = 4;
    d.retry.initial_ms = 10;
    d.retry.max_ms = 50;
    dispatcher_->add_destination(d);
    store_->set_commit_listener(
        [this](std::vector<QueuedDelivery>&& fresh) { dispatcher_->enqueue(std::move(fresh)); });
    for (const auto& h : store_->load_dead_heads()) dispatcher_->hold(h);
    dispatcher_->recover();  // as the hub: the active deliveries read back page by page
    dispatcher_->start();
  }

  // Like a kill: the dispatcher stops, the store closes with whatever it could not commit.
  void shutdown() {
    if (dispatcher_) dispatcher_->stop(0);
    if (store_) {
      store_->set_commit_listener(nullptr);
      store_->close();
    }
    dispatcher_.reset();
    store_.reset();
    metrics_.reset();
  }

  AttemptResult deliver(const QueuedDelivery& q) {
    MessagePtr m = q.message ? q.message : store_->message_by_seq(q.message_seq);
    {
      std::unique_lock<std::mutex> lock(mu_);
      ++waiting_;
      cv_.wait(lock, [&] { return gate_open_; });
      --waiting_;
      seen_[q.key].push_back(m ? m->type : "?");
      ++attempts_;
    }
    cv_.notify_all();
    AttemptResult r;
    r.outcome = Outcome::delivered("ref");
    return r;
  }

  AcceptResult send(const std::string& type, const std::string& key) {
    std::vector<Incoming> batch;
    batch.push_back(make_incoming(ids_, "cms", type, key, "", clock_.now_ms(), {to_dest("cal")}));
    return store_->accept(std::move(batch)).at(0);
  }

  // While the gate is closed, attempts wait before reaching the partner.
  void gate(bool open) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      gate_open_ = open;
    }
    cv_.notify_all();
  }
  // Attempts that reached the partner; attempts waiting at the gate.
  int attempts() {
    std::lock_guard<std::mutex> lock(mu_);
    return attempts_;
  }
  int waiting() {
    std::lock_guard<std::mutex> lock(mu_);
    return waiting_;
  }
  std::vector<std::string> seen(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_[key];
  }

  SystemClock clock_;
  IdGenerator ids_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<Dispatcher> dispatcher_;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::vector<std::string>> seen_;
  int attempts_ = 0;
  int waiting_ = 0;
  bool gate_open_ = true;
};

}  // namespace relais::testing

#include "routing/cluster_feed.h"

#include <algorithm>
#include <chrono>

#include "core/log.h"
#include "core/thread_name.h"

namespace relais {
namespace {
constexpr int kFeedPage = 2000;  // rows per read of the feed
}

ClusterFeed::ClusterFeed(Store& store, Dispatcher& dispatcher, Membership& membership,
                         Millis poll_ms, std::function<void(bool)> on_leader)
    : store_(store),
      dispatcher_(dispatcher),
      membership_(membership),
      poll_ms_(std::max<Millis>(poll_ms, 1)),
      on_leader_(std::move(on_leader)),
      parts_(membership.partitions()),
      ready_(new std::atomic<bool>[static_cast<size_t>(membership.partitions())]) {
  for (int p = 0; p < parts_; ++p) ready_[static_cast<size_t>(p)] = false;
}

ClusterFeed::~ClusterFeed() {
  stop();
}

bool ClusterFeed::may_start(const std::string& key, int64_t delivery_id) const {
  int p = key_partition(key, delivery_id, parts_);
  return ready_[static_cast<size_t>(p)].load(std::memory_order_acquire) && membership_.owns(p);
}

bool ClusterFeed::idle(int partition) const {
  return dispatcher_.idle([this, partition](const std::string& key, int64_t id) {
    return key_partition(key, id, parts_) == partition;
  });
}

void ClusterFeed::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] {
    set_thread_name("feed");
    run();
  });
}

void ClusterFeed::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (leading_ && on_leader_) on_leader_(false);
  leading_ = false;
}

void ClusterFeed::wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = true;
  }
  cv_.notify_one();
}

std::string ClusterFeed::problem() const {
  std::lock_guard<std::mutex> lock(mu_);
  return problem_;
}

void ClusterFeed::run() {
  for (;;) {
    bool more = round();
    std::unique_lock<std::mutex> lock(mu_);
    if (stop_) return;
    if (!more) {
      cv_.wait_for(lock, std::chrono::milliseconds(poll_ms_), [this] { return stop_ || woken_; });
    }
    woken_ = false;
    if (stop_) return;
  }
}

bool ClusterFeed::load(const std::vector<int>& partitions) {
  std::vector<bool> wanted(static_cast<size_t>(parts_), false);
  for (int p : partitions) wanted[static_cast<size_t>(p)] = true;
  auto in = [&](const std::string& key, int64_t id) {
    return wanted[static_cast<size_t>(key_partition(key, id, parts_))];
  };
  std::vector<QueuedDelivery> active;
  Status st = store_.load_active_upto(cursor_, active);
  if (!st.ok) {
    std::lock_guard<std::mutex> lock(mu_);
    problem_ = "lecture du magasin impossible : " + st.detail;
    return false;
  }
  std::vector<HeldKey> held;
  try {
    held = store_.load_dead_heads();
  } catch (const std::exception& e) {
    std::lock_guard<std::mutex> lock(mu_);
    problem_ = std::string("lecture du magasin impossible : ") + e.what();
    return false;
  }
  for (const auto& h : held) {
    if (in(h.key, h.dead_delivery_id)) dispatcher_.hold(h);
  }
  std::erase_if(active, [&](const QueuedDelivery& q) { return !in(q.key, q.id); });
  size_t n = active.size();
  dispatcher_.enqueue(std::move(active));
  for (int p : partitions) ready_[static_cast<size_t>(p)] = true;
  log_info("cluster", "took " + std::to_string(partitions.size()) + " partition(s): " +
                          std::to_string(n) + " active deliveries read from the store");
  return true;
}

bool ClusterFeed::round() {
  if (!positioned_) {
    Status st = store_.feed_horizon(cursor_);
    if (!st.ok) {
      std::lock_guard<std::mutex> lock(mu_);
      problem_ = "lecture du magasin impossible : " + st.detail;
      return false;
    }
    positioned_ = true;
  }
  // Leadership: the jobs that run on one node.
  bool lead = membership_.leader();
  if (lead != leading_) {
    leading_ = lead;
    if (on_leader_) on_leader_(lead);
  }
  // Partitions gained and lost, in the order it happened.
  for (const auto& change : membership_.take_changes()) {
    const int p = change.first;  // a plain variable: lambdas capture it (not a binding)
    if (p < 0 || p >= parts_) continue;
    if (change.second) {
      if (std::find(to_load_.begin(), to_load_.end(), p) == to_load_.end()) to_load_.push_back(p);
      continue;
    }
    std::erase(to_load_, p);
    ready_[static_cast<size_t>(p)] = false;
    dispatcher_.release([this, p](const std::string& key, int64_t id) {
      return key_partition(key, id, parts_) == p;
    });
  }
  // A partition is read before anything newer of it is queued: until its load succeeds the
  // feed waits (its rows after the position would otherwise run ahead of the older ones).
  if (!to_load_.empty()) {
    if (!load(to_load_)) return false;
    to_load_.clear();
  }
  std::vector<FeedRow> rows;
  Status st = store_.feed(cursor_, kFeedPage, rows);
  if (!st.ok) {
    std::lock_guard<std::mutex> lock(mu_);
    if (problem_.empty()) log_warn("cluster", "the feed cannot be read: " + st.detail);
    problem_ = "lecture du magasin impossible : " + st.detail;
    return false;
  }
  bool more = rows.size() >= static_cast<size_t>(kFeedPage);
  if (!rows.empty()) {
    cursor_ = rows.back().at;
    std::erase_if(rows, [&](const FeedRow& r) {
      return !ready_[static_cast<size_t>(key_partition(r.delivery.key, r.delivery.id, parts_))];
    });
    dispatcher_.apply_feed(std::move(rows));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!problem_.empty()) log_info("cluster", "the feed reads again");
  problem_.clear();
  return more;
}

}  // namespace relais

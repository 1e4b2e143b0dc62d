#include "routing/dispatcher.h"

#include <algorithm>
#include <chrono>

#include "core/log.h"
#include "core/thread_name.h"

namespace relais {
namespace {
constexpr Millis kMaxWaitMs = 200;    // upper bound of a worker's sleep (keeps a test clock live)
constexpr Millis kGateRetryMs = 100;  // a key another node may own is asked about again after
constexpr size_t kPageRows = 1000;    // deliveries read back from the store per page
constexpr Millis kPagerPollMs = 500;  // the pager looks again at least this often (a failed read)
}  // namespace

Dispatcher::Dispatcher(Store& store, Metrics& metrics, const Clock& clock, ProcessFn process)
    : store_(store),
      metrics_(metrics),
      clock_(clock),
      process_(std::move(process)),
      rng_(std::random_device{}()) {
  metrics_.describe("relais_delivered_total", "counter", "Deliveries accepted by a destination");
  metrics_.describe("relais_retried_total", "counter", "Attempts that failed transiently");
  metrics_.describe("relais_dead_total", "counter", "Deliveries parked as dead");
  metrics_.describe("relais_skipped_total", "counter", "Deliveries skipped by a mapping");
  metrics_.describe("relais_throttled_total", "counter",
                    "Requests the partner asked to slow down (not counted as attempts)");
  metrics_.describe("relais_delivery_latency_seconds", "histogram",
                    "Time from reception to delivery");
  metrics_.describe("relais_attempt_duration_seconds", "histogram",
                    "Duration of one delivery attempt");
  metrics_.add_collector([this](std::string& out) {
    auto st = stats();
    Millis now = clock_.now_ms();
    out += "# HELP relais_queue_depth Active deliveries per destination\n";
    out += "# TYPE relais_queue_depth gauge\n";
    for (const auto& s : st) {
      out +=
          "relais_queue_depth{destination=\"" + s.name + "\"} " + std::to_string(s.queued) + "\n";
    }
    out +=
        "# HELP relais_queue_in_memory Active deliveries held in memory per destination (the "
        "rest of the depth waits in the store, read back page by page)\n";
    out += "# TYPE relais_queue_in_memory gauge\n";
    for (const auto& s : st) {
      out += "relais_queue_in_memory{destination=\"" + s.name + "\"} " +
             std::to_string(s.in_memory) + "\n";
    }
    out += "# HELP relais_in_flight Deliveries being attempted now\n";
    out += "# TYPE relais_in_flight gauge\n";
    for (const auto& s : st) {
      out +=
          "relais_in_flight{destination=\"" + s.name + "\"} " + std::to_string(s.in_flight) + "\n";
    }
    out += "# HELP relais_held_keys Correlation keys held behind a dead delivery\n";
    out += "# TYPE relais_held_keys gauge\n";
    for (const auto& s : st) {
      out +=
          "relais_held_keys{destination=\"" + s.name + "\"} " + std::to_string(s.held_keys) + "\n";
    }
    out += "# HELP relais_throttled Whether the partner has paused the destination (1) or not\n";
    out += "# TYPE relais_throttled gauge\n";
    for (const auto& s : st) {
      out += "relais_throttled{destination=\"" + s.name + "\"} " +
             (s.throttled_until > now ? "1" : "0") + "\n";
    }
    out += "# HELP relais_oldest_pending_age_seconds Age of the oldest active delivery\n";
    out += "# TYPE relais_oldest_pending_age_seconds gauge\n";
    for (const auto& s : st) {
      double age = s.oldest_received ? static_cast<double>(now - s.oldest_received) / 1000.0 : 0;
      out += "relais_oldest_pending_age_seconds{destination=\"" + s.name + "\"} " +
             std::to_string(std::max(0.0, age)) + "\n";
    }
  });
}

Dispatcher::~Dispatcher() {
  stop(0);
}

void Dispatcher::add_destination(const DestinationSettings& settings) {
  auto d = std::make_unique<Dest>();
  d->settings = settings;
  d->latency =
      &metrics_.histogram("relais_delivery_latency_seconds", {{"destination", settings.name}});
  d->attempt_duration =
      &metrics_.histogram("relais_attempt_duration_seconds", {{"destination", settings.name}});
  dests_.emplace(settings.name, std::move(d));
}

bool Dispatcher::has_destination(const std::string& name) const {
  return find(name) != nullptr;
}

Dispatcher::Dest* Dispatcher::find(const std::string& name) const {
  auto it = dests_.find(name);
  return it == dests_.end() ? nullptr : it->second.get();
}

double Dispatcher::uniform01() {
  std::lock_guard<std::mutex> lock(rng_mu_);
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
}

std::string Dispatcher::queue_key(const QueuedDelivery& d) {
  // No correlation key: no ordering constraint, every delivery is its own key.
  return d.key.empty() ? "#" + std::to_string(d.id) : "k:" + d.key;
}

void Dispatcher::enqueue(std::vector<QueuedDelivery>&& deliveries) {
  // Group by destination so each destination's lock is taken once per batch.
  std::map<Dest*, std::vector<QueuedDelivery*>> by_dest;
  for (auto& q : deliveries) {
    Dest* d = find(q.destination);
    if (d == nullptr) {
      if (unknown_.fetch_add(1) == 0) {
        log_warn("dispatcher", "deliveries for destination '" + q.destination +
                                   "', which is not configured, stay pending in the store");
      }
      continue;
    }
    by_dest[d].push_back(&q);
  }
  for (auto& [d, list] : by_dest) {
    std::vector<DeliveryUpdate> replaced;
    size_t queued = 0;
    {
      // By id: a destination that starts paging leaves in the store what comes after.
      std::sort(list.begin(), list.end(),
                [](const QueuedDelivery* a, const QueuedDelivery* b) { return a->id < b->id; });
      std::lock_guard<std::mutex> lock(d->mu);
      for (auto* q : list) {
        if (spill_locked(*d, *q)) continue;
        insert_locked(*d, std::move(*q), replaced);
        ++queued;
      }
    }
    record_replaced(replaced);
    wake_workers(*d, queued);
  }
}

void Dispatcher::hold(const HeldKey& held) {
  Dest* d = find(held.destination);
  if (d == nullptr || !d->settings.hold_on_dead) return;
  std::lock_guard<std::mutex> lock(d->mu);
  std::string k = "k:" + held.key;
  auto& kq = d->keys[k];
  kq.key = k;
  kq.held_by = held.dead_delivery_id;
  unready_locked(*d, kq);
}

void Dispatcher::insert_locked(Dest& d, QueuedDelivery q, std::vector<DeliveryUpdate>& replaced) {
  std::string k = queue_key(q);
  auto& kq = d.keys[k];
  kq.key = k;
  if (kq.held_by == q.id) kq.held_by = 0;  // the dead delivery holding its key comes back
  if (d.index.count(q.id)) return;         // already queued
  if (q.message && d.index.size() >= d.settings.max_cached_messages) q.message.reset();
  d.index[q.id] = k;
  d.max_offered = std::max(d.max_offered, q.id);
  auto pos = std::upper_bound(kq.items.begin(), kq.items.end(), q.id,
                              [](int64_t id, const QueuedDelivery& e) { return id < e.id; });
  bool becomes_front = pos == kq.items.begin();
  kq.items.insert(pos, std::move(q));
  if (becomes_front) unready_locked(d, kq);
  replace_older_locked(d, kq, replaced);
  make_ready_locked(d, kq);
}

void Dispatcher::replace_older_locked(Dest& d, KeyQueue& kq,
                                      std::vector<DeliveryUpdate>& replaced) {
  if (!d.settings.replace_pending || kq.items.size() < 2 || kq.key.rfind("k:", 0) != 0) return;
  const QueuedDelivery& newest = kq.items.back();  // items are ordered by delivery id
  std::string by = newest.message
                       ? "le message " + newest.message->id + " (" + newest.message->type + ")"
                       : "la livraison " + std::to_string(newest.id);
  Millis now = clock_.now_ms();
  bool front_changed = false;
  for (auto it = kq.items.begin(); it + 1 != kq.items.end();) {
    if (it->id == kq.busy_id) {  // in flight: finish() replaces it if it stays queued
      ++it;
      continue;
    }
    DeliveryUpdate u;
    u.id = it->id;
    u.state = DeliveryState::Skipped;
    u.attempts = it->attempts;
    u.now = now;
    Attempt a;
    a.at = now;
    a.outcome = "skip";
    a.error_class = "replaced";
    a.text = "remplacé par " + by + ", plus récent pour la même clé";
    u.attempt = std::move(a);
    u.expected = {DeliveryState::Pending, DeliveryState::Retrying};
    replaced.push_back(std::move(u));
    counters_for(d, it->source).skipped->inc();
    front_changed = front_changed || it == kq.items.begin();
    d.index.erase(it->id);
    it = kq.items.erase(it);
  }
  if (front_changed) unready_locked(d, kq);
}

void Dispatcher::record_replaced(std::vector<DeliveryUpdate>& replaced) {
  for (auto& u : replaced) store_.record(std::move(u));
  replaced.clear();
}

void Dispatcher::wake_workers(Dest& d, size_t n) {
  // One worker per new delivery, not every worker per batch: a commit group of a few messages
  // used to wake all `concurrency` workers, most of which found nothing to do.
  if (n >= static_cast<size_t>(d.settings.concurrency)) {
    d.cv.notify_all();
  } else {
    for (size_t i = 0; i < n; ++i) d.cv.notify_one();
  }
}

size_t Dispatcher::memory_bound(const Dest& d) const {
  if (cluster_ || d.settings.queue_in_memory == 0) return SIZE_MAX;
  return d.settings.queue_in_memory;
}

bool Dispatcher::spill_locked(Dest& d, const QueuedDelivery& q) {
  if (d.index.count(q.id)) return false;
  if (!d.paging) {
    // A delivery memory had before (a person's retry of a dead one) is queued over the bound:
    // paging starts above everything ever queued, so that no page brings one back.
    if (d.index.size() < memory_bound(d) || q.id <= d.max_offered) return false;
    d.paging = true;
    d.paged_upto = d.max_offered;
  } else if (q.id <= d.paged_upto) {
    return false;
  }
  d.spilled_max = std::max(d.spilled_max, q.id);
  ++d.stored;
  return true;
}

void Dispatcher::want_page(Dest& d) {
  if (!d.paging || d.index.size() > memory_bound(d) / 2) return;
  {
    std::lock_guard<std::mutex> lock(pager_mu_);
    pager_wanted_ = true;
  }
  pager_cv_.notify_one();
}

void Dispatcher::pager() {
  while (!stopping_) {
    for (auto& [name, d] : dests_) {
      while (!stopping_ && page(*d)) {
      }
    }
    std::unique_lock<std::mutex> lock(pager_mu_);
    pager_cv_.wait_for(lock, std::chrono::milliseconds(kPagerPollMs),
                       [this] { return pager_wanted_ || stopping_; });
    pager_wanted_ = false;
  }
}

bool Dispatcher::page(Dest& d) {
  int64_t from = 0, spilled_before = 0;
  int limit = 0;
  {
    std::lock_guard<std::mutex> lock(d.mu);
    size_t bound = memory_bound(d), have = d.index.size();
    if (!d.paging || have > bound / 2) return false;
    limit = static_cast<int>(std::min(kPageRows, bound - have));
    from = d.paged_upto;
    spilled_before = d.spilled_max;
  }
  std::vector<QueuedDelivery> rows;
  Status st = store_.load_active_page(d.settings.name, from, limit, rows);
  if (!st.ok) {
    // Said once until a page is read again; the pager tries again every kPagerPollMs.
    if (!pager_failing_.exchange(true)) {
      log_warn("dispatcher", "the backlog of " + d.settings.name +
                                 " cannot be read from the store (" + st.detail +
                                 "); trying again");
    }
    return false;
  }
  if (pager_failing_.exchange(false)) {
    log_info("dispatcher", "the backlog is read from the store again");
  }
  bool full = rows.size() == static_cast<size_t>(limit);
  int64_t last = rows.empty() ? from : rows.back().id;
  std::vector<DeliveryUpdate> replaced;
  size_t queued = 0;
  {
    std::lock_guard<std::mutex> lock(d.mu);
    Millis now = clock_.now_ms();
    for (auto& q : rows) {
      auto a = d.actions.find(q.id);
      if (a != d.actions.end()) {
        if (a->second == Dest::Action::Discarding) {
          d.vetoed.emplace(q.id, std::move(q));  // discard() decides
          continue;
        }
        if (a->second == Dest::Action::Discarded) continue;  // read before the discard committed
        q.due = std::min(q.due, now);                        // a person's retry
      }
      insert_locked(d, std::move(q), replaced);
      ++queued;
    }
    d.stored -= std::min(d.stored, rows.size());
    d.paged_upto = std::max(d.paged_upto, last);
    // Caught up when nothing was left in the store since this page's read began; else (a full
    // page, or some arrived during the read) read on from its end.
    bool caught_up = !full && d.spilled_max == spilled_before;
    if (caught_up) {
      d.paging = false;
      d.stored = 0;
    }
    full = !caught_up;
    // The marks of the deliveries passed (all of them once caught up) are done with, but those
    // of discards still being written (discard() ends them).
    std::erase_if(d.actions, [&](const auto& e) {
      return (caught_up || e.first <= d.paged_upto) && e.second != Dest::Action::Discarding;
    });
  }
  record_replaced(replaced);
  wake_workers(d, queued);
  return full;
}

int64_t Dispatcher::recover() {
  std::map<std::string, int64_t> counts;
  Status st = store_.count_active(counts);
  if (!st.ok) {
    log_warn("dispatcher", "the active deliveries could not be counted (" + st.detail +
                               "); they are read back all the same");
  }
  int64_t total = 0;
  for (auto& [name, d] : dests_) {
    std::lock_guard<std::mutex> lock(d->mu);
    d->paging = true;
    d->paged_upto = 0;
    d->spilled_max = 0;
    auto it = counts.find(name);
    d->stored = it == counts.end() ? 0 : static_cast<size_t>(it->second);
    total += it == counts.end() ? 0 : it->second;
  }
  for (const auto& [name, n] : counts) {
    if (find(name) != nullptr) continue;
    if (unknown_.fetch_add(static_cast<size_t>(n)) == 0) {
      log_warn("dispatcher", "deliveries for destination '" + name +
                                 "', which is not configured, stay pending in the store");
    }
  }
  return total;
}

void Dispatcher::make_ready_locked(Dest& d, KeyQueue& kq) {
  if (kq.in_ready || kq.busy_id != 0 || kq.held_by != 0 || kq.items.empty()) return;
  const auto& front = kq.items.front();
  kq.ready_entry = ReadyEntry{front.due, front.id, &kq};
  d.ready.insert(kq.ready_entry);
  kq.in_ready = true;
}

void Dispatcher::unready_locked(Dest& d, KeyQueue& kq) {
  if (!kq.in_ready) return;
  d.ready.erase(kq.ready_entry);
  kq.in_ready = false;
}

void Dispatcher::drop_if_idle_locked(Dest& d, KeyQueue& kq) {
  if (kq.items.empty() && kq.busy_id == 0 && kq.held_by == 0) {
    unready_locked(d, kq);
    d.keys.erase(kq.key);  // kq is invalid after this
  }
}

void Dispatcher::start() {
  if (started_.exchange(true)) return;
  pager_thread_ = std::thread([this] {
    set_thread_name("pager");
    pager();
  });
  for (auto& [name, d] : dests_) {
    for (int i = 0; i < d->settings.concurrency; ++i) {
      Dest* dp = d.get();
      d->workers.emplace_back([this, dp, i] { worker(*dp, i); });
    }
  }
}

void Dispatcher::stop(Millis grace_ms) {
  stopping_ = true;
  for (auto& [name, d] : dests_) d->cv.notify_all();
  {
    std::lock_guard<std::mutex> lock(pager_mu_);
    pager_wanted_ = true;
  }
  pager_cv_.notify_all();
  if (pager_thread_.joinable()) pager_thread_.join();
  (void)grace_ms;  // attempts are bounded by each connector's own timeouts
  for (auto& [name, d] : dests_) {
    for (auto& t : d->workers) {
      if (t.joinable()) t.join();
    }
    d->workers.clear();
  }
}

void Dispatcher::worker(Dest& d, int slot) {
  set_thread_name("dlv-" + d.settings.name, slot);
  if (d.settings.nice > 0 && !set_thread_nice(d.settings.nice) && slot == 0) {
    log_warn("dispatcher", "cannot lower the CPU priority of the workers of " + d.settings.name);
  }
  std::unique_lock<std::mutex> lock(d.mu);
  while (!stopping_) {
    // After a failed commit no new attempt starts until the store commits again (the outcomes
    // it holds are retried meanwhile): nothing is attempted whose outcome could not be kept.
    if (d.ready.empty() || !store_.writable()) {
      d.cv.wait_for(lock, std::chrono::milliseconds(kMaxWaitMs));
      continue;
    }
    auto [due, id, kq] = *d.ready.begin();
    Millis now = clock_.now_ms();
    // The partner asked the whole destination to slow down: every slot waits.
    Millis at = std::max(due, d.paused_until);
    if (at > now) {
      d.cv.wait_for(lock, std::chrono::milliseconds(std::min(at - now, kMaxWaitMs)));
      continue;
    }
    if (gate_ && !gate_(kq->items.front().key, id)) {
      // Not this node's key right now (its partition's lease lapsed or is being given up):
      // it waits, queued, and is asked about again.
      d.ready.erase(d.ready.begin());
      kq->ready_entry = ReadyEntry{now + kGateRetryMs, id, kq};
      d.ready.insert(kq->ready_entry);
      continue;
    }
    d.ready.erase(d.ready.begin());
    kq->in_ready = false;
    kq->busy_id = id;
    ++d.in_flight;
    QueuedDelivery q = kq->items.front();
    lock.unlock();

    Millis started = clock_.now_ms();
    AttemptResult r = process_(q, slot);
    Millis ended = clock_.now_ms();
    finish(d, q, r, started, ended);

    lock.lock();
  }
}

const Dispatcher::OutcomeCounters& Dispatcher::counters_for(Dest& d, const std::string& source) {
  std::lock_guard<std::mutex> lock(d.counters_mu);
  auto it = d.counters.find(source);
  if (it != d.counters.end()) return it->second;
  Labels labels{{"source", source}, {"destination", d.settings.name}};
  OutcomeCounters c{&metrics_.counter("relais_delivered_total", labels),
                    &metrics_.counter("relais_skipped_total", labels),
                    &metrics_.counter("relais_retried_total", labels),
                    &metrics_.counter("relais_dead_total", labels),
                    &metrics_.counter("relais_throttled_total", labels)};
  return d.counters.emplace(source, c).first->second;
}

void Dispatcher::finish(Dest& d, const QueuedDelivery& q, const AttemptResult& r, Millis started,
                        Millis ended) {
  const Outcome& o = r.outcome;
  int attempts = q.attempts + 1;
  DeliveryUpdate u;
  u.id = q.id;
  u.attempts = attempts;
  u.now = ended;
  u.external_ref = o.external_ref;
  u.mapping = r.mapping;
  u.mapping_version = r.mapping_version;
  u.payload = r.payload;
  u.flags = r.flags;
  Attempt a;
  a.at = started;
  a.duration_ms = ended - started;
  a.outcome = to_string(o.kind);
  a.error_class = o.error_class;
  a.code = o.code;
  a.text = o.text;
  a.excerpt = o.excerpt.substr(0, 2048);
  std::optional<Millis> next;
  const OutcomeCounters& counters = counters_for(d, q.source);
  switch (o.kind) {
    case Outcome::Kind::Defer:
      // Not an attempt: the delivery waits, pending, until not_before.
      u.state = q.attempts > 0 ? DeliveryState::Retrying : DeliveryState::Pending;
      u.attempts = attempts = q.attempts;
      next = std::max(o.not_before, ended);
      u.next_attempt_at = *next;
      break;
    case Outcome::Kind::Throttle: {
      // Not an attempt and no back-off step: the partner's pause, bounded, then the same
      // delivery again. The whole destination pauses unless the partner throttles one account.
      Millis pause = o.retry_after_ms ? d.settings.retry.bounded_retry_after(*o.retry_after_ms)
                                      : d.settings.retry.throttle_default_ms;
      u.state = q.attempts > 0 ? DeliveryState::Retrying : DeliveryState::Pending;
      u.attempts = attempts = q.attempts;
      next = ended + pause;
      u.next_attempt_at = *next;
      a.text = "ralenti par le partenaire pour " + std::to_string((pause + 999) / 1000) + " s" +
               (o.throttle_scope.empty() ? "" : " (ce compte seulement)") +
               (o.text.empty() ? "" : " : " + o.text);
      counters.throttled->inc();
      std::lock_guard<std::mutex> lock(d.mu);
      if (o.throttle_scope.empty()) {
        d.paused_until = std::max(d.paused_until, *next);
      } else {
        Millis& until = d.scope_paused_until[o.throttle_scope];
        until = std::max(until, *next);
      }
      break;
    }
    case Outcome::Kind::Delivered:
      u.state = DeliveryState::Delivered;
      counters.delivered->inc();
      d.latency->observe(static_cast<double>(ended - q.received_at) / 1000.0);
      break;
    case Outcome::Kind::Skip:
      u.state = DeliveryState::Skipped;
      counters.skipped->inc();
      break;
    case Outcome::Kind::Retry:
      next = d.settings.retry.next_attempt(attempts, q.received_at, ended, o.retry_after_ms,
                                           [this] { return uniform01(); });
      if (next) {
        u.state = DeliveryState::Retrying;
        u.next_attempt_at = *next;
        counters.retried->inc();
      } else {
        u.state = DeliveryState::Dead;
        a.text = "gave up after " + std::to_string(attempts) + " attempt(s): " + o.text;
        counters.dead->inc();
      }
      break;
    case Outcome::Kind::Reject:
      u.state = DeliveryState::Dead;
      counters.dead->inc();
      break;
  }
  d.attempt_duration->observe(static_cast<double>(ended - started) / 1000.0);
  u.attempt = std::move(a);
  bool waits = o.kind == Outcome::Kind::Defer || o.kind == Outcome::Kind::Throttle;
  Settled s{u.state, waits, attempts, next.value_or(0)};
  // The key moves on only once this outcome is durable: until the store has committed it, the
  // key stays busy (its next delivery waits), so a failed commit can never let a newer message
  // of the key reach the partner before this one is settled — across a restart too.
  Dest* dp = &d;
  store_.record(std::move(u), [this, dp, q, s] { settle(*dp, q, s); });
}

void Dispatcher::settle(Dest& d, const QueuedDelivery& q, const Settled& s) {
  std::vector<DeliveryUpdate> replaced;
  std::unique_lock<std::mutex> lock(d.mu);
  --d.in_flight;
  auto kit = d.keys.find(queue_key(q));
  if (kit == d.keys.end()) return;
  KeyQueue& kq = kit->second;
  kq.busy_id = 0;
  bool woken = kq.wake_pending;
  kq.wake_pending = false;
  auto it = std::find_if(kq.items.begin(), kq.items.end(),
                         [&](const QueuedDelivery& e) { return e.id == q.id; });
  if (it != kq.items.end()) {
    if (s.state == DeliveryState::Retrying || s.deferred) {
      it->attempts = s.attempts;
      it->due = s.deferred && woken ? std::min(s.next, clock_.now_ms()) : s.next;
      if (!it->message && q.message) it->message = q.message;
    } else {
      kq.items.erase(it);
      d.index.erase(q.id);
      want_page(d);
      if (s.state == DeliveryState::Dead && d.settings.hold_on_dead && !q.key.empty()) {
        kq.held_by = q.id;
        log_warn("dispatcher", "delivery " + std::to_string(q.id) + " to " + d.settings.name +
                                   " is dead; later messages of its key are held");
      }
    }
  }
  if (kq.released) {
    // Its partition was lost while the attempt was in flight: the next owner reads the rest
    // (this outcome included, committed now) from the store.
    kq.released = false;
    kq.held_by = 0;
    forget_locked(d, kq);  // kq is gone
    return;
  }
  // A delivery that stays queued (retry, deferred) while a newer one of its key arrived.
  replace_older_locked(d, kq, replaced);
  make_ready_locked(d, kq);
  drop_if_idle_locked(d, kq);
  // Settling runs on the store's completion thread: wake a worker for the key made ready.
  if (!d.ready.empty()) d.cv.notify_one();
  lock.unlock();
  record_replaced(replaced);
}

bool Dispatcher::in_flight(int64_t delivery_id) const {
  for (const auto& [name, d] : dests_) {
    std::lock_guard<std::mutex> lock(d->mu);
    auto it = d->index.find(delivery_id);
    if (it == d->index.end()) continue;
    auto kit = d->keys.find(it->second);
    if (kit != d->keys.end() && kit->second.busy_id == delivery_id) return true;
  }
  return false;
}

void Dispatcher::wake(const std::string& destination, const std::string& key) {
  if (!key.empty()) wake_queue(destination, "k:" + key);
}

void Dispatcher::wake_delivery(const std::string& destination, int64_t delivery_id,
                               const std::string& key) {
  QueuedDelivery q;
  q.id = delivery_id;
  q.key = key;
  wake_queue(destination, queue_key(q));
}

void Dispatcher::wake_queue(const std::string& destination, const std::string& queue) {
  Dest* d = find(destination);
  if (d == nullptr) return;
  std::lock_guard<std::mutex> lock(d->mu);
  auto it = d->keys.find(queue);
  if (it == d->keys.end()) return;
  KeyQueue& kq = it->second;
  if (kq.busy_id != 0) {
    kq.wake_pending = true;  // the attempt in flight may be deferring for what just arrived
    return;
  }
  if (kq.held_by != 0 || kq.items.empty()) return;
  Millis now = clock_.now_ms();
  if (kq.items.front().due <= now) return;
  kq.items.front().due = now;
  unready_locked(*d, kq);
  make_ready_locked(*d, kq);
  d->cv.notify_one();
}

Status Dispatcher::retry(int64_t delivery_id) {
  auto del = store_.delivery(delivery_id);
  if (!del) return Status::failure(404, "not found", "no delivery " + std::to_string(delivery_id));
  Dest* d = find(del->destination);
  if (d == nullptr) {
    return Status::failure(409, "conflict",
                           "destination '" + del->destination + "' is not configured");
  }
  bool in_store = false;
  {
    std::lock_guard<std::mutex> lock(d->mu);
    auto it = d->index.find(delivery_id);
    if (it != d->index.end()) {
      KeyQueue& kq = d->keys[it->second];
      if (kq.busy_id == delivery_id) {
        return Status::failure(409, "conflict", "the delivery is being attempted right now");
      }
      // Active: try now.
      for (auto& e : kq.items) {
        if (e.id == delivery_id) e.due = clock_.now_ms();
      }
      unready_locked(*d, kq);
      make_ready_locked(*d, kq);
      d->cv.notify_one();
      DeliveryUpdate u;
      u.id = delivery_id;
      u.state =
          del->state == DeliveryState::Retrying ? DeliveryState::Retrying : DeliveryState::Pending;
      u.attempts = del->attempts;
      u.next_attempt_at = clock_.now_ms();
      u.now = clock_.now_ms();
      store_.record(std::move(u));
      return Status::success();
    }
    // Still in the store, to be read back: due now when its page comes (set before the write,
    // so a page read before it commits gets it too).
    if (is_active(del->state) && in_store_locked(*d, delivery_id)) {
      d->actions[delivery_id] = Dest::Action::DueNow;
      in_store = true;
    }
  }
  if (is_active(del->state)) {
    if (!cluster_ && !in_store) {
      return Status::failure(409, "conflict", "the delivery is active but not queued here");
    }
    // Another node owns its key, or its page has not been read yet: made due now in the store;
    // that node's feed, or the page, does the rest.
    DeliveryUpdate u;
    u.id = delivery_id;
    u.state = del->state;
    u.attempts = del->attempts;
    u.now = clock_.now_ms();
    u.next_attempt_at = u.now;
    u.action_text = "retry requested";
    u.expected = {del->state};
    return store_.apply(std::move(u));
  }
  MessagePtr m = store_.message_by_seq(del->message_seq);
  if (!m) return Status::failure(404, "not found", "the delivery's message is gone");
  // Erased or purged: what is left is the tombstone, which must never reach the partner.
  if (nlohmann::json t = erased_tombstone(m->body); !t.is_null()) {
    return Status::failure(
        409, "conflict",
        "the message's payloads were " + erased_label(t) + ": there is nothing left to send");
  }
  DeliveryUpdate u;
  u.id = delivery_id;
  u.state = DeliveryState::Pending;
  u.attempts = 0;
  u.now = clock_.now_ms();
  u.next_attempt_at = u.now;
  u.action_text = "retry requested";
  u.expected = {del->state};
  Status s = store_.apply(std::move(u));
  if (!s.ok || cluster_) return s;  // several nodes: the owner's feed queues it again
  QueuedDelivery q;
  q.id = delivery_id;
  q.destination = del->destination;
  q.source = m->source;
  q.key = m->correlation;
  q.mapping = del->mapping;
  q.attempts = 0;
  q.due = clock_.now_ms();
  q.received_at = clock_.now_ms();  // a person's retry gets a fresh age budget
  q.message_seq = del->message_seq;
  q.message = m;
  std::vector<DeliveryUpdate> replaced;
  {
    std::lock_guard<std::mutex> lock(d->mu);
    std::string k = queue_key(q);
    auto kit = d->keys.find(k);
    if (kit != d->keys.end() && kit->second.held_by == delivery_id) kit->second.held_by = 0;
    d->actions.erase(delivery_id);  // an earlier discard's mark: this is a new start
    // Active again in the store: queued, or read back by the pager when it comes after the
    // pages read so far.
    if (!spill_locked(*d, q)) insert_locked(*d, std::move(q), replaced);
  }
  record_replaced(replaced);
  d->cv.notify_one();
  return Status::success();
}

Status Dispatcher::discard(int64_t delivery_id, const std::string& reason) {
  auto del = store_.delivery(delivery_id);
  if (!del) return Status::failure(404, "not found", "no delivery " + std::to_string(delivery_id));
  Dest* d = find(del->destination);
  bool was_queued = false;
  bool in_store = false;  // active, not read back from the store yet
  if (d != nullptr) {
    std::lock_guard<std::mutex> lock(d->mu);
    auto it = d->index.find(delivery_id);
    if (it == d->index.end() && is_active(del->state) && in_store_locked(*d, delivery_id)) {
      d->actions[delivery_id] = Dest::Action::Discarding;  // a page that brings it holds it
      in_store = true;
    } else if (it != d->index.end()) {
      KeyQueue& kq = d->keys.find(it->second)->second;
      if (kq.busy_id == delivery_id) {
        return Status::failure(409, "conflict", "the delivery is being attempted right now");
      }
      unready_locked(*d, kq);
      kq.items.erase(std::remove_if(kq.items.begin(), kq.items.end(),
                                    [&](const QueuedDelivery& e) { return e.id == delivery_id; }),
                     kq.items.end());
      d->index.erase(it);
      make_ready_locked(*d, kq);
      drop_if_idle_locked(*d, kq);
      want_page(*d);
      was_queued = true;
    }
  }
  std::set<DeliveryState> expected;
  if (was_queued || in_store || ((d == nullptr || cluster_) && is_active(del->state))) {
    expected = {DeliveryState::Pending, DeliveryState::Retrying};
  } else if (del->state == DeliveryState::Dead) {
    expected = {DeliveryState::Dead};
  } else {
    return Status::failure(409, "conflict",
                           std::string("only pending, retrying or dead deliveries can be "
                                       "discarded; this one is ") +
                               to_string(del->state));
  }
  DeliveryUpdate u;
  u.id = delivery_id;
  u.state = DeliveryState::Discarded;
  u.attempts = del->attempts;
  u.now = clock_.now_ms();
  u.action_text = "discarded: " + reason;
  u.expected = expected;
  Status s = store_.apply(std::move(u));
  if (in_store) {
    std::vector<DeliveryUpdate> replaced;
    {
      std::lock_guard<std::mutex> lock(d->mu);
      auto v = d->vetoed.find(delivery_id);
      auto a = d->actions.find(delivery_id);
      if (s.ok && v == d->vetoed.end() && a != d->actions.end()) {
        a->second = Dest::Action::Discarded;  // a page read before the discard skips it
      } else if (a != d->actions.end()) {
        d->actions.erase(a);
      }
      if (v != d->vetoed.end()) {
        // A page brought it meanwhile: gone when discarded; queued when the discard failed.
        if (!s.ok) insert_locked(*d, std::move(v->second), replaced);
        d->vetoed.erase(v);
      }
    }
    record_replaced(replaced);
    d->cv.notify_one();
  }
  if (!s.ok) return s;
  if (d != nullptr && del->state == DeliveryState::Dead) {
    // Release the key this dead delivery was holding.
    std::lock_guard<std::mutex> lock(d->mu);
    for (auto& [k, kq] : d->keys) {
      if (kq.held_by == delivery_id) {
        kq.held_by = 0;
        make_ready_locked(*d, kq);
        drop_if_idle_locked(*d, kq);
        break;  // kq may be gone: stop iterating
      }
    }
    d->cv.notify_all();
  }
  return Status::success();
}

void Dispatcher::set_cluster(KeyGate may_start) {
  gate_ = std::move(may_start);
  cluster_ = true;
}

bool Dispatcher::selects(const KeyGate& which, const KeyQueue& kq) {
  if (kq.key.rfind("k:", 0) == 0) return which(kq.key.substr(2), 0);
  return which("", std::strtoll(kq.key.c_str() + 1, nullptr, 10));  // "#<delivery id>"
}

void Dispatcher::forget_locked(Dest& d, KeyQueue& kq) {
  unready_locked(d, kq);
  for (auto it = kq.items.begin(); it != kq.items.end();) {
    if (it->id == kq.busy_id) {
      ++it;
      continue;
    }
    d.index.erase(it->id);
    it = kq.items.erase(it);
  }
  kq.held_by = 0;
  if (kq.busy_id != 0) {
    kq.released = true;  // settle() forgets the rest
    return;
  }
  d.keys.erase(kq.key);
}

void Dispatcher::release(const KeyGate& which) {
  for (auto& [name, d] : dests_) {
    std::lock_guard<std::mutex> lock(d->mu);
    for (auto it = d->keys.begin(); it != d->keys.end();) {
      KeyQueue& kq = it->second;
      ++it;  // forget_locked may erase kq
      if (selects(which, kq)) forget_locked(*d, kq);
    }
  }
}

bool Dispatcher::idle(const KeyGate& which) const {
  for (const auto& [name, d] : dests_) {
    std::lock_guard<std::mutex> lock(d->mu);
    if (d->in_flight == 0) continue;
    for (const auto& [k, kq] : d->keys) {
      if (kq.busy_id != 0 && selects(which, kq)) return false;
    }
  }
  return true;
}

void Dispatcher::apply_feed(std::vector<FeedRow>&& rows) {
  std::vector<QueuedDelivery> fresh;
  for (auto& row : rows) {
    QueuedDelivery& q = row.delivery;
    Dest* d = find(q.destination);
    if (d == nullptr) {
      if (is_active(row.state)) fresh.push_back(std::move(q));  // counted by enqueue()
      continue;
    }
    std::lock_guard<std::mutex> lock(d->mu);
    auto it = d->index.find(q.id);
    if (it == d->index.end()) {
      if (is_active(row.state)) {
        fresh.push_back(std::move(q));
      } else if (!q.key.empty()) {
        // A dead delivery discarded elsewhere: the key it held moves on.
        auto kit = d->keys.find("k:" + q.key);
        if (kit != d->keys.end() && kit->second.held_by == q.id) {
          kit->second.held_by = 0;
          make_ready_locked(*d, kit->second);
          drop_if_idle_locked(*d, kit->second);
          d->cv.notify_one();
        }
      }
      continue;
    }
    KeyQueue& kq = d->keys.find(it->second)->second;
    if (kq.busy_id == q.id) continue;  // its outcome decides
    auto e = std::find_if(kq.items.begin(), kq.items.end(),
                          [&](const QueuedDelivery& x) { return x.id == q.id; });
    if (e == kq.items.end()) continue;
    unready_locked(*d, kq);
    if (is_active(row.state)) {
      e->due = std::min(e->due, q.due);  // a retry asked elsewhere
    } else {
      kq.items.erase(e);  // discarded elsewhere
      d->index.erase(it);
    }
    make_ready_locked(*d, kq);
    drop_if_idle_locked(*d, kq);
    d->cv.notify_one();
  }
  if (!fresh.empty()) enqueue(std::move(fresh));
}

std::vector<DestinationStats> Dispatcher::stats() const {
  std::vector<DestinationStats> out;
  for (const auto& [name, d] : dests_) {
    DestinationStats s;
    s.name = name;
    std::lock_guard<std::mutex> lock(d->mu);
    s.in_memory = d->index.size();
    s.queued = s.in_memory + d->stored;
    s.in_flight = d->in_flight;
    Millis now = clock_.now_ms();
    if (d->paused_until > now) s.throttled_until = d->paused_until;
    std::erase_if(d->scope_paused_until, [now](const auto& e) { return e.second <= now; });
    s.throttled_scopes = d->scope_paused_until.size();
    for (const auto& [k, kq] : d->keys) {
      if (kq.held_by) ++s.held_keys;
      for (const auto& e : kq.items) {
        if (s.oldest_received == 0 || e.received_at < s.oldest_received) {
          s.oldest_received = e.received_at;
        }
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace relais

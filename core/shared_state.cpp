#include "core/shared_state.h"

#include <algorithm>

namespace relais {

// ---------------------------------------------------------------------------------------------
// LocalSessionStore

Status LocalSessionStore::put(const std::string& key, const SessionRecord& session) {
  Millis now = clock_.now_ms();
  std::lock_guard<std::mutex> lock(mu_);
  // Forget expired sessions now and then (every creation).
  for (auto it = by_key_.begin(); it != by_key_.end();) {
    it = expired(it->second, now) ? by_key_.erase(it) : std::next(it);
  }
  by_key_[key] = Entry{session, now};
  return Status::success();
}

Status LocalSessionStore::get(const std::string& key, std::optional<SessionRecord>& out) {
  out.reset();
  Millis now = clock_.now_ms();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return Status::success();
  if (expired(it->second, now)) {
    by_key_.erase(it);
    return Status::success();
  }
  it->second.seen = now;
  out = it->second.session;
  return Status::success();
}

Status LocalSessionStore::remove(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  by_key_.erase(key);
  return Status::success();
}

Status LocalSessionStore::remove_user(const std::string& user) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = by_key_.begin(); it != by_key_.end();) {
    it = it->second.session.user == user ? by_key_.erase(it) : std::next(it);
  }
  return Status::success();
}

// ---------------------------------------------------------------------------------------------
// LocalLoginThrottle

Millis LocalLoginThrottle::wait_of(Count& c, Millis now, int max) const {
  if (c.failures == 0) return 0;
  if (now - c.first >= window_) {
    c = Count{};
    return 0;
  }
  return c.failures >= max ? window_ - (now - c.first) : 0;
}

Status LocalLoginThrottle::blocked_for(const std::string& user, const std::string& address,
                                       Millis& wait) {
  Millis now = clock_.now_ms();
  std::lock_guard<std::mutex> lock(mu_);
  // An address gets more room than a user name (several people behind one proxy).
  wait = std::max(wait_of(users_[user], now, max_), wait_of(addresses_[address], now, max_ * 4));
  return Status::success();
}

Status LocalLoginThrottle::failed(const std::string& user, const std::string& address) {
  Millis now = clock_.now_ms();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto* m : {&users_, &addresses_}) {
    if (m->size() < 10000) continue;
    for (auto it = m->begin(); it != m->end();) {
      it = now - it->second.first >= window_ ? m->erase(it) : std::next(it);
    }
  }
  for (Count* c : {&users_[user], &addresses_[address]}) {
    if (c->failures == 0 || now - c->first >= window_) *c = Count{0, now};
    ++c->failures;
  }
  return Status::success();
}

Status LocalLoginThrottle::succeeded(const std::string& user) {
  std::lock_guard<std::mutex> lock(mu_);
  users_.erase(user);
  return Status::success();
}

// ---------------------------------------------------------------------------------------------
// ChangeHandlers

int ChangeHandlers::add(ChangeBus::Handler h) {
  std::lock_guard<std::mutex> lock(mu_);
  handlers_.emplace(next_, std::move(h));
  return next_++;
}

void ChangeHandlers::remove(int id) {
  std::lock_guard<std::mutex> lock(mu_);
  handlers_.erase(id);
}

void ChangeHandlers::call(const std::string& topic) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, h] : handlers_) h(topic);
}

// ---------------------------------------------------------------------------------------------

Status LocalNodeReports::put(const std::string& topic, const std::string& node,
                             const std::string& text, Millis ttl_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  reports_[topic][node] = {clock_.now_ms() + ttl_ms, text};
  return Status::success();
}

Status LocalNodeReports::get(const std::string& topic, std::map<std::string, std::string>& out) {
  out.clear();
  Millis now = clock_.now_ms();
  std::lock_guard<std::mutex> lock(mu_);
  auto& nodes = reports_[topic];
  for (auto it = nodes.begin(); it != nodes.end();) {
    if (it->second.first <= now) {
      it = nodes.erase(it);
      continue;
    }
    out[it->first] = it->second.second;
    ++it;
  }
  return Status::success();
}

SharedState local_shared_state(const Clock& clock,
                               std::function<RateLimit(const std::string&)> limit_of) {
  SharedState s;
  s.sessions = std::make_unique<LocalSessionStore>(clock, kSessionIdleMs, kSessionMaxMs);
  s.logins = std::make_unique<LocalLoginThrottle>(clock, kLoginMaxFailures, kLoginWindowMs);
  s.rates = std::make_unique<LocalRateLimiter>(std::move(limit_of));
  s.changes = std::make_unique<LocalChangeBus>();
  s.reports = std::make_unique<LocalNodeReports>(clock);
  s.where = "in process";
  return s;
}

}  // namespace relais

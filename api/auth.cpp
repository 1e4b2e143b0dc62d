#include "api/auth.h"

#include "core/crypto.h"

namespace relais::api {

std::string SessionTable::create(const std::string& user, const std::string& role,
                                 std::string& csrf) {
  std::string id = random_hex(32);
  csrf = random_hex(32);
  Millis now = clock_.now_ms();
  std::lock_guard<std::mutex> lock(mu_);
  // Forget expired sessions now and then (every creation).
  for (auto it = by_digest_.begin(); it != by_digest_.end();) {
    if (now - it->second.seen > idle_ms_ || now - it->second.created > max_ms_) {
      it = by_digest_.erase(it);
    } else {
      ++it;
    }
  }
  by_digest_[sha256_hex(id)] = Entry{user, role, csrf, now, now};
  return id;
}

std::optional<Principal> SessionTable::find(const std::string& id) {
  if (id.empty()) return std::nullopt;
  std::string digest = sha256_hex(id);
  Millis now = clock_.now_ms();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_digest_.find(digest);
  if (it == by_digest_.end()) return std::nullopt;
  Entry& e = it->second;
  if (now - e.seen > idle_ms_ || now - e.created > max_ms_) {
    by_digest_.erase(it);
    return std::nullopt;
  }
  e.seen = now;
  Principal p;
  p.name = e.user;
  p.role = e.role;
  p.session = true;
  p.csrf = e.csrf;
  p.session_id = id;
  return p;
}

void SessionTable::remove(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  by_digest_.erase(sha256_hex(id));
}

void SessionTable::remove_user(const std::string& user) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = by_digest_.begin(); it != by_digest_.end();) {
    if (it->second.user == user) {
      it = by_digest_.erase(it);
    } else {
      ++it;
    }
  }
}

Millis LoginThrottle::wait_of(Count& c, Millis now) const {
  if (c.failures == 0) return 0;
  if (now - c.first >= window_) {
    c = Count{};
    return 0;
  }
  return c.failures >= max_ ? window_ - (now - c.first) : 0;
}

Millis LoginThrottle::blocked_for(const std::string& user, const std::string& address) {
  Millis now = clock_.now_ms();
  std::lock_guard<std::mutex> lock(mu_);
  Millis a = wait_of(users_[user], now);
  // An address gets more room than a user name (several people behind one proxy).
  Millis b = 0;
  auto& ac = addresses_[address];
  if (ac.failures >= max_ * 4)
    b = wait_of(ac, now);
  else if (now - ac.first >= window_)
    ac = Count{};
  return std::max(a, b);
}

void LoginThrottle::failed(const std::string& user, const std::string& address) {
  Millis now = clock_.now_ms();
  std::lock_guard<std::mutex> lock(mu_);
  // Bounded memory: a flood of invented names forgets the counts whose window has passed.
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
}

void LoginThrottle::succeeded(const std::string& user) {
  std::lock_guard<std::mutex> lock(mu_);
  users_.erase(user);
}

}  // namespace relais::api

#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/NameValueCollection.h>

namespace relais::api {

std::string session_cookie(const Poco::Net::HTTPServerRequest& req) {
  Poco::Net::NameValueCollection cookies;
  req.getCookies(cookies);
  return cookies.get(kSessionCookie, "");
}

}  // namespace relais::api

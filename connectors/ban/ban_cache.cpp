// The BAN enricher's cache (LRU with TTL), its Redis client (hiredis) and its rate limiter.

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>

#include "connectors/ban/ban.h"
#include "core/log.h"

namespace relais::ban {

// ---------------------------------------------------------------------------------------------
// LruCache

LruCache::LruCache(size_t capacity, int64_t ttl_ms) : capacity_(capacity), ttl_ms_(ttl_ms) {}

std::shared_ptr<const Match> LruCache::get(const std::string& key, Millis now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  if (it->second->expires <= now) {
    order_.erase(it->second);
    index_.erase(it);
    return nullptr;
  }
  if (it->second != order_.begin()) order_.splice(order_.begin(), order_, it->second);
  return it->second->value;
}

void LruCache::put(const std::string& key, std::shared_ptr<const Match> value, Millis now) {
  if (capacity_ == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key);
  if (it != index_.end()) {
    it->second->value = std::move(value);
    it->second->expires = now + ttl_ms_;
    order_.splice(order_.begin(), order_, it->second);
    return;
  }
  order_.push_front(Entry{key, std::move(value), now + ttl_ms_});
  index_.emplace(key, order_.begin());
  while (order_.size() > capacity_) {
    index_.erase(order_.back().key);
    order_.pop_back();
  }
}

size_t LruCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return order_.size();
}

void LruCache::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  order_.clear();
  index_.clear();
}

// ---------------------------------------------------------------------------------------------
// Redis

namespace {

struct ReplyDeleter {
  void operator()(redisReply* r) const {
    if (r) freeReplyObject(r);
  }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

timeval to_timeval(int64_t ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

}  // namespace

Redis::Redis(std::string host_port, int64_t timeout_ms) : timeout_ms_(timeout_ms) {
  auto colon = host_port.rfind(':');
  if (colon == std::string::npos) {
    host_ = host_port;
  } else {
    host_ = host_port.substr(0, colon);
    port_ = std::atoi(host_port.c_str() + colon + 1);
  }
}

Redis::~Redis() {
  if (ctx_) redisFree(static_cast<redisContext*>(ctx_));
}

bool Redis::connect_locked() {
  if (ctx_) return true;
  auto now = std::chrono::steady_clock::now();
  if (now < next_connect_) return false;
  next_connect_ = now + std::chrono::seconds(1);
  redisContext* c = redisConnectWithTimeout(host_.c_str(), port_, to_timeval(timeout_ms_));
  if (c == nullptr || c->err) {
    if (!warned_) {
      log_warn("ban", "redis " + host_ + ":" + std::to_string(port_) + " unreachable: " +
                          (c ? c->errstr : "out of memory") + " (local cache and limit only)");
      warned_ = true;
    }
    if (c) redisFree(c);
    return false;
  }
  redisSetTimeout(c, to_timeval(timeout_ms_));
  ctx_ = c;
  if (warned_) log_info("ban", "redis " + host_ + ":" + std::to_string(port_) + " reachable again");
  warned_ = false;
  return true;
}

void Redis::drop_locked(const char* what) {
  auto* c = static_cast<redisContext*>(ctx_);
  if (!warned_) {
    log_warn("ban", std::string("redis ") + what + " failed: " + (c && c->err ? c->errstr : "?") +
                        " (local cache and limit only until it is back)");
    warned_ = true;
  }
  if (c) redisFree(c);
  ctx_ = nullptr;
}

std::optional<std::string> Redis::get(const std::string& key, bool* error) {
  if (error) *error = false;
  std::lock_guard<std::mutex> lock(mu_);
  if (!connect_locked()) {
    if (error) *error = true;
    return std::nullopt;
  }
  auto* c = static_cast<redisContext*>(ctx_);
  Reply r(static_cast<redisReply*>(redisCommand(c, "GET %b", key.data(), key.size())));
  if (!r) {
    drop_locked("GET");
    if (error) *error = true;
    return std::nullopt;
  }
  if (r->type == REDIS_REPLY_STRING) return std::string(r->str, r->len);
  if (r->type != REDIS_REPLY_NIL && error) *error = true;
  return std::nullopt;
}

bool Redis::setex(const std::string& key, int64_t ttl_s, const std::string& value) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!connect_locked()) return false;
  auto* c = static_cast<redisContext*>(ctx_);
  std::string ttl = std::to_string(std::max<int64_t>(1, ttl_s));
  Reply r(static_cast<redisReply*>(redisCommand(c, "SETEX %b %s %b", key.data(), key.size(),
                                                ttl.c_str(), value.data(), value.size())));
  if (!r) {
    drop_locked("SETEX");
    return false;
  }
  return r->type == REDIS_REPLY_STATUS;
}

std::optional<long long> Redis::eval_integer(const char* script, const std::string& key,
                                             const std::vector<std::string>& args) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!connect_locked()) return std::nullopt;
  auto* c = static_cast<redisContext*>(ctx_);
  std::vector<const char*> argv = {"EVAL", script, "1", key.c_str()};
  std::vector<size_t> lens = {4, std::strlen(script), 1, key.size()};
  for (const auto& a : args) {
    argv.push_back(a.c_str());
    lens.push_back(a.size());
  }
  Reply r(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data())));
  if (!r) {
    drop_locked("EVAL");
    return std::nullopt;
  }
  if (r->type != REDIS_REPLY_INTEGER) return std::nullopt;
  return r->integer;
}

bool Redis::ping() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!connect_locked()) return false;
  auto* c = static_cast<redisContext*>(ctx_);
  Reply r(static_cast<redisReply*>(redisCommand(c, "PING")));
  if (!r) {
    drop_locked("PING");
    return false;
  }
  return r->type == REDIS_REPLY_STATUS;
}

// ---------------------------------------------------------------------------------------------
// RateLimiter

RateLimiter::RateLimiter(double per_second, Redis* redis, std::string key_prefix)
    : local_(per_second > 0 ? per_second : 1, 1),
      redis_(redis),
      key_(std::move(key_prefix) + "rate"),
      interval_(std::to_string(rate_bucket_parameters(per_second > 0 ? per_second : 1, 1).first)) {}

bool RateLimiter::acquire(int64_t max_wait_ms) {
  const Micros deadline = steady_micros() + max_wait_ms * 1000;
  for (;;) {
    Micros now = steady_micros();
    Micros wait = local_.take(now);
    if (wait == 0) {
      if (redis_ == nullptr) return true;
      // The shared bucket, across nodes (burst 1: tolerance 0).
      auto shared = redis_->eval_integer(kRateBucketScript, key_, {interval_, "0"});
      if (!shared || *shared <= 0) return true;  // admitted, or Redis down: the local bucket
      wait = *shared;
    }
    if (now + wait > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(wait));
  }
}

void RateLimiter::pause_for(int64_t ms) {
  local_.hold(steady_micros() + ms * 1000);
}

}  // namespace relais::ban

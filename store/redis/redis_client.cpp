#include "store/redis/redis_client.h"

#include <Poco/URI.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <map>
#include <memory>

#include "core/log.h"

namespace relais::redis {

namespace {

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

struct ReplyDeleter {
  void operator()(redisReply* r) const {
    if (r) freeReplyObject(r);
  }
};
using OwnedReply = std::unique_ptr<redisReply, ReplyDeleter>;

// A command's words as hiredis takes them (pointers into `cmd`, which must outlive this).
struct Argv {
  explicit Argv(const RedisCommand& cmd) {
    for (const auto& w : cmd) {
      words.push_back(w.data());
      lens.push_back(w.size());
    }
  }
  int count() const { return static_cast<int>(words.size()); }
  std::vector<const char*> words;
  std::vector<size_t> lens;
};

// One command on an open context, synchronously (start-up of a context only).
std::string simple_command(redisContext* c, const RedisCommand& cmd) {
  Argv a(cmd);
  OwnedReply r(
      static_cast<redisReply*>(redisCommandArgv(c, a.count(), a.words.data(), a.lens.data())));
  if (!r) return c->errstr[0] ? c->errstr : "no answer";
  if (r->type == REDIS_REPLY_ERROR) return std::string(r->str, r->len);
  return "";
}

Status unavailable(const std::string& detail) {
  return Status::failure(503, "shared state unavailable", detail);
}

}  // namespace

bool RedisAddress::parse(const std::string& uri, RedisAddress& out, std::string& error) {
  out = RedisAddress{};
  try {
    Poco::URI u(uri);
    if (u.getScheme() != "redis") {
      error = "the URI must start with redis://";
      return false;
    }
    if (!u.getHost().empty()) out.host = u.getHost();
    if (u.getPort() != 0) out.port = u.getPort();
    std::string info = u.getUserInfo();
    if (!info.empty()) {
      auto colon = info.find(':');
      out.user = info.substr(0, colon);
      if (colon != std::string::npos) out.password = info.substr(colon + 1);
    }
    std::string path = u.getPath();
    if (!path.empty() && path != "/") {
      std::string db = path.substr(1);
      if (db.empty() || db.size() > 2 || !std::all_of(db.begin(), db.end(), ::isdigit)) {
        error = "the database after the host must be a number (e.g. /0)";
        return false;
      }
      out.db = std::stoi(db);
    }
  } catch (const std::exception& e) {
    error = std::string("not a URI: ") + e.what();
    return false;
  }
  return true;
}

std::string RedisAddress::display() const {
  return host + ":" + std::to_string(port) + "/" + std::to_string(db);
}

void* open_context(const RedisAddress& address, std::chrono::milliseconds timeout,
                   std::string& error) {
  redisContext* c =
      redisConnectWithTimeout(address.host.c_str(), address.port, to_timeval(timeout));
  if (c == nullptr || c->err) {
    error = c ? c->errstr : "out of memory";
    if (c) redisFree(c);
    return nullptr;
  }
  redisSetTimeout(c, to_timeval(timeout));
  if (!address.password.empty()) {
    RedisCommand auth = {"AUTH"};
    if (!address.user.empty()) auth.push_back(address.user);
    auth.push_back(address.password);
    error = simple_command(c, auth);
    if (!error.empty()) error = "AUTH refused: " + error;
  }
  if (error.empty() && address.db != 0) {
    error = simple_command(c, {"SELECT", std::to_string(address.db)});
  }
  if (!error.empty()) {
    redisFree(c);
    return nullptr;
  }
  return c;
}

RedisReply copy_reply(const void* raw) {
  const auto* r = static_cast<const redisReply*>(raw);
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::Integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::String;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::Status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::Error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::Array;
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(copy_reply(r->element[i]));
      break;
    default:
      break;
  }
  return out;
}

RedisClient::RedisClient(RedisAddress address, std::chrono::milliseconds timeout,
                         std::string component)
    : address_(std::move(address)), timeout_(timeout), component_(std::move(component)) {}

RedisClient::~RedisClient() {
  if (ctx_) redisFree(static_cast<redisContext*>(ctx_));
}

Status RedisClient::connect_locked() {
  if (ctx_) return Status::success();
  auto now = std::chrono::steady_clock::now();
  if (now < next_connect_) {
    return unavailable(
        "Redis " + address_.display() + " is unreachable; next try in " +
        std::to_string(
            std::chrono::duration_cast<std::chrono::milliseconds>(next_connect_ - now).count()) +
        " ms");
  }
  std::string error;
  ctx_ = open_context(address_, timeout_, error);
  if (ctx_ == nullptr) return fail_locked("connect: " + error);
  return Status::success();
}

Status RedisClient::fail_locked(const std::string& what) {
  if (ctx_) redisFree(static_cast<redisContext*>(ctx_));
  ctx_ = nullptr;
  backoff_ = std::min<std::chrono::milliseconds>(
      std::chrono::seconds(5),
      std::max<std::chrono::milliseconds>(backoff_ * 2, std::chrono::milliseconds(100)));
  next_connect_ = std::chrono::steady_clock::now() + backoff_;
  std::string detail = "Redis " + address_.display() + ": " + what;
  if (!down_) {
    log_warn("redis", component_ + ": " + detail + " (reconnecting with back-off)");
    down_ = true;
  }
  return unavailable(detail);
}

Status RedisClient::run_locked(const std::vector<RedisCommand>& cmds,
                               std::vector<RedisReply>& out) {
  out.clear();
  Status st = connect_locked();
  if (!st.ok) return st;
  auto* c = static_cast<redisContext*>(ctx_);
  for (const auto& cmd : cmds) {
    Argv a(cmd);
    if (redisAppendCommandArgv(c, a.count(), a.words.data(), a.lens.data()) != REDIS_OK) {
      return fail_locked(std::string("send: ") + c->errstr);
    }
  }
  for (size_t i = 0; i < cmds.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(c, &raw) != REDIS_OK || raw == nullptr) {
      return fail_locked(std::string("read: ") + (c->errstr[0] ? c->errstr : "no answer"));
    }
    OwnedReply r(static_cast<redisReply*>(raw));
    out.push_back(copy_reply(r.get()));
  }
  if (down_) {
    log_info("redis", component_ + ": Redis " + address_.display() + " reachable again");
    down_ = false;
  }
  backoff_ = std::chrono::milliseconds(0);
  return Status::success();
}

Status RedisClient::pipeline(const std::vector<RedisCommand>& cmds, std::vector<RedisReply>& out) {
  std::lock_guard<std::mutex> lock(mu_);
  Status st = run_locked(cmds, out);
  if (!st.ok) return st;
  for (const auto& r : out) {
    if (r.type == RedisReply::Type::Error) {
      return Status::failure(503, "shared state unavailable", "Redis answered: " + r.str);
    }
  }
  return st;
}

Status RedisClient::command(const RedisCommand& cmd, RedisReply& out) {
  std::vector<RedisReply> replies;
  Status st = pipeline({cmd}, replies);
  if (st.ok) out = std::move(replies.front());
  return st;
}

Status RedisClient::eval(const std::string& script, const std::vector<std::string>& keys,
                         const std::vector<std::string>& args, RedisReply& out) {
  // The scripts are a few constants: their digests, as Redis gave them, by text.
  static std::mutex digests_mu;
  static std::map<std::string, std::string> digests;
  std::string digest;
  {
    std::lock_guard<std::mutex> lock(digests_mu);
    digest = digests[script];
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (digest.empty()) {
      RedisReply loaded;
      Status st = command({"SCRIPT", "LOAD", script}, loaded);
      if (!st.ok) return st;
      digest = loaded.str;
      std::lock_guard<std::mutex> lock(digests_mu);
      digests[script] = digest;
    }
    RedisCommand cmd = {"EVALSHA", digest, std::to_string(keys.size())};
    cmd.insert(cmd.end(), keys.begin(), keys.end());
    cmd.insert(cmd.end(), args.begin(), args.end());
    std::vector<RedisReply> replies;
    Status st;
    {
      std::lock_guard<std::mutex> lock(mu_);
      st = run_locked({cmd}, replies);
    }
    if (!st.ok) return st;
    out = std::move(replies.front());
    // A restarted Redis has forgotten its scripts: load it again, once.
    if (out.type == RedisReply::Type::Error && out.str.rfind("NOSCRIPT", 0) == 0) {
      digest.clear();
      continue;
    }
    if (out.type == RedisReply::Type::Error) {
      return Status::failure(503, "shared state unavailable", "Redis answered: " + out.str);
    }
    return Status::success();
  }
  return Status::failure(503, "shared state unavailable", "Redis keeps forgetting its scripts");
}

}  // namespace relais::redis

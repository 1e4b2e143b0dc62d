#pragma once
// A synchronous Redis client (hiredis) for what the nodes share (core/shared_state.h): one
// connection per use — the commands of one component, or one subscriber — with connect and
// read/write timeouts, a reconnect with back-off after an error, AUTH and SELECT from the
// `redis:` section's URI, and errors as Status (503) on the message path, never exceptions.

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"

namespace relais::redis {

// Where Redis is: parsed from "redis://[[user]:password@]host[:port][/db]". Plain value.
struct RedisAddress {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string user;      // "" = the default user
  std::string password;  // "" = no AUTH; from the URI or `redis.password_env`
  // Parses `uri`; false with `error` on a malformed one.
  static bool parse(const std::string& uri, RedisAddress& out, std::string& error);
  // "host:port/db", for logs (never the password).
  std::string display() const;
};

// One reply, copied out of hiredis. Plain value.
struct RedisReply {
  enum class Type { Nil, Integer, String, Status, Array, Error };
  Type type = Type::Nil;
  long long integer = 0;
  std::string str;  // String, Status, Error
  std::vector<RedisReply> elements;
  bool nil() const { return type == Type::Nil; }
};

// A command: its words, binary-safe.
using RedisCommand = std::vector<std::string>;

// One connection, guarded by a mutex: commands from several threads run one after the other.
// After a failure the connection is dropped and the next command reconnects, no sooner than
// the back-off (100 ms doubling to 5 s; reset by a success): meanwhile commands fail at once
// instead of each waiting for a timeout. Logs a loss and a recovery once each, by address only.
// Thread-safe.
class RedisClient {
 public:
  // `component` names the user in logs ("sessions", "changes", …).
  RedisClient(RedisAddress address, std::chrono::milliseconds timeout, std::string component);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Runs one command. !ok (503) when Redis cannot be reached or answers an error.
  Status command(const RedisCommand& cmd, RedisReply& out);
  // Runs several commands in one round trip; `out` gets one reply per command.
  Status pipeline(const std::vector<RedisCommand>& cmds, std::vector<RedisReply>& out);
  // Runs a Lua script (EVALSHA, loading it on NOSCRIPT). `keys` then `args`.
  Status eval(const std::string& script, const std::vector<std::string>& keys,
              const std::vector<std::string>& args, RedisReply& out);

  const RedisAddress& address() const { return address_; }

 private:
  Status connect_locked();
  Status fail_locked(const std::string& what);
  Status run_locked(const std::vector<RedisCommand>& cmds, std::vector<RedisReply>& out);

  const RedisAddress address_;
  const std::chrono::milliseconds timeout_;
  const std::string component_;
  std::mutex mu_;
  void* ctx_ = nullptr;  // redisContext*
  std::chrono::steady_clock::time_point next_connect_{};
  std::chrono::milliseconds backoff_{0};
  bool down_ = false;  // a loss was logged; the recovery will be
};

// Opens a context on `address` with `timeout` (connect, read, write), AUTH and SELECT done.
// Returns the redisContext* (to free with redisFree) or null with `error`. Shared by
// RedisClient and the change bus's subscriber.
void* open_context(const RedisAddress& address, std::chrono::milliseconds timeout,
                   std::string& error);

// Copies a hiredis reply.
RedisReply copy_reply(const void* redis_reply);

}  // namespace relais::redis

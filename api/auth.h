#pragma once
// Who is calling: the principal of a request (a bearer token from the configuration or the
// store, or a console session), the console sessions and the login throttle.

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"

namespace relais::api {

struct Principal {
  std::string name;
  std::string role;                  // admin | support | auditor | system
  std::vector<std::string> sources;  // for system tokens: sources it may post to (empty = all)
  // For system tokens of the configuration: mailbox globs whose free/busy it may read (null or
  // empty = none); points into the configuration, which outlives every request.
  const std::vector<std::string>* free_busy_mailboxes = nullptr;
  bool session = false;    // authenticated by the session cookie (CSRF applies)
  std::string csrf;        // the session's CSRF token
  std::string session_id;  // the cookie value (to log out)
};

// Console sessions, in memory (a restart logs everybody out). A session ends after `idle_ms`
// without a request or `max_ms` after login. Thread-safe (one mutex; short critical sections).
class SessionTable {
 public:
  SessionTable(const Clock& clock, Millis idle_ms = 30 * 60000, Millis max_ms = 10 * 3600000)
      : clock_(clock), idle_ms_(idle_ms), max_ms_(max_ms) {}
  // Creates a session; returns its cookie value (256 random bits) and sets `csrf`.
  std::string create(const std::string& user, const std::string& role, std::string& csrf);
  // The principal of a live session (touches it), or nothing.
  std::optional<Principal> find(const std::string& id);
  void remove(const std::string& id);
  // Ends every session of a user (disabled, role or password changed).
  void remove_user(const std::string& user);

 private:
  struct Entry {
    std::string user, role, csrf;
    Millis created = 0, seen = 0;
  };
  const Clock& clock_;
  Millis idle_ms_, max_ms_;
  std::mutex mu_;
  std::map<std::string, Entry> by_digest_;  // SHA-256 of the cookie value → session
};

// Counts failed logins per user name and per client address; after `max_failures` within
// `window_ms` further attempts are refused until the window has passed. Thread-safe.
class LoginThrottle {
 public:
  LoginThrottle(const Clock& clock, int max_failures = 5, Millis window_ms = 15 * 60000)
      : clock_(clock), max_(max_failures), window_(window_ms) {}
  // 0 when an attempt is allowed, else the milliseconds to wait.
  Millis blocked_for(const std::string& user, const std::string& address);
  void failed(const std::string& user, const std::string& address);
  void succeeded(const std::string& user);

 private:
  struct Count {
    int failures = 0;
    Millis first = 0;
  };
  Millis wait_of(Count& c, Millis now) const;
  const Clock& clock_;
  int max_;
  Millis window_;
  std::mutex mu_;
  std::map<std::string, Count> users_, addresses_;
};

}  // namespace relais::api

namespace Poco::Net {
class HTTPServerRequest;
}
namespace relais::api {
// The name of the session cookie.
constexpr const char* kSessionCookie = "relais_session";
// The session cookie's value in the request, or "".
std::string session_cookie(const Poco::Net::HTTPServerRequest& req);
}  // namespace relais::api

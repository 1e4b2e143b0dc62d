#pragma once
// Who is calling: the principal of a request (a bearer token from the configuration or the
// store, or a console session) and the console sessions (core/shared_state.h keeps them).

#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/console_store.h"
#include "core/shared_state.h"

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

// Console sessions over a SessionStore (in memory, or shared in Redis): creates the cookie
// values (256 random bits) and keys the store by their SHA-256, never by the value itself.
// Thread-safe as its store; borrows the store, which must outlive it.
class SessionTable {
 public:
  explicit SessionTable(SessionStore& store, const Clock& clock) : store_(store), clock_(clock) {}
  // Creates a session: `id` is its cookie value; sets `csrf`. !ok when it cannot be stored.
  Status create(const std::string& user, const std::string& role, std::string& id,
                std::string& csrf);
  // The principal of a live session (touches it), or nothing in `out`. !ok when the sessions
  // cannot be read: the request is refused (503), never let in unchecked.
  Status find(const std::string& id, std::optional<Principal>& out);
  Status remove(const std::string& id);
  // Ends every session of a user (disabled, role or password changed).
  Status remove_user(const std::string& user) { return store_.remove_user(user); }

 private:
  SessionStore& store_;
  const Clock& clock_;
};

// Tokens created or revoked on another node (ChangeBus::kTokens, or kAll after the bus
// reconnected): `console` re-reads them at the next request instead of up to 10 s later.
// Returns the subscription, to unsubscribe before `console` goes.
int follow_token_changes(ChangeBus& bus, ConsoleStore& console);

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

#include "api/auth.h"

#include "core/crypto.h"

namespace relais::api {

Status SessionTable::create(const std::string& user, const std::string& role, std::string& id,
                            std::string& csrf) {
  id = random_hex(32);
  csrf = random_hex(32);
  return store_.put(sha256_hex(id), SessionRecord{user, role, csrf, clock_.now_ms()});
}

Status SessionTable::find(const std::string& id, std::optional<Principal>& out) {
  out.reset();
  if (id.empty()) return Status::success();
  std::optional<SessionRecord> s;
  Status st = store_.get(sha256_hex(id), s);
  if (!st.ok || !s) return st;
  Principal p;
  p.name = s->user;
  p.role = s->role;
  p.session = true;
  p.csrf = s->csrf;
  p.session_id = id;
  out = std::move(p);
  return st;
}

Status SessionTable::remove(const std::string& id) {
  return store_.remove(sha256_hex(id));
}

int follow_token_changes(ChangeBus& bus, ConsoleStore& console) {
  return bus.subscribe([&console](const std::string& topic) {
    if (topic == ChangeBus::kTokens || topic == ChangeBus::kAll) console.tokens_changed();
  });
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

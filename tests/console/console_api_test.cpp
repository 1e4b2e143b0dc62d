// The console's API on a running relais: every role × every endpoint of the table (401 without
// credentials, 403 with a role the table does not allow), sessions (cookie flags, CSRF, logout,
// throttling), users and tokens, the append-only audit trail and its CSV export, the support
// desk (business labels, explanations, masking and audited clear views, bulk retry with a
// confirmed count).

#include <gtest/gtest.h>

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>

#include <cstdlib>

#include "api/desk_text.h"
#include "api/endpoints.h"
#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;

// A value for each path parameter of the table.
std::string concrete(const std::string& pattern) {
  std::string out = pattern;
  const std::vector<std::pair<std::string, std::string>> values = {
      {"{source}", "cms76"}, {"{id}", "1"}, {"{name}", "no-such-name"}, {"{version}", "1"}};
  for (const auto& [k, v] : values) {
    for (size_t p = out.find(k); p != std::string::npos; p = out.find(k))
      out.replace(p, k.size(), v);
  }
  return out;
}

class ConsoleApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sink_ = std::make_unique<tools::HttpSink>(0, true, 4);
    // RDV 91877 is refused (404) until the test says otherwise; the others are delivered.
    sink_->set_responder([this](const tools::SinkRequest& r) {
      tools::SinkResponse out;
      if (r.path.find("91877") != std::string::npos && refuse_.load()) {
        out.status = 404;
        out.body = "{\"error\":\"unknown rdv\"}";
      }
      if (r.path.find("/5150") != std::string::npos && slow_down_.load()) {  // "slow down"
        out.status = 429;
        out.headers["Retry-After"] = "3";
        out.body = "{\"error\":\"too many requests\"}";
      }
      if (r.path.find("/4242") != std::string::npos) {  // as EWS says it for an unknown mailbox
        out.status = 400;
        out.body = "{\"ResponseCode\":\"ErrorNonExistentMailbox\"}";
      }
      return out;
    });
    RelaisOptions o;
    o.binary = RELAIS_BINARY;
    o.body_yaml =
        "sources:\n  cms76:\n    type: $.event\n    correlation:\n"
        "      - \"rdv:{$.rdv.id}\"\n      - \"individu:{$.individu.id}\"\n"
        "  other:\n    type: $.event\n"
        "connectors:\n  agenda:\n    connector: http\n    url: http://127.0.0.1:" +
        std::to_string(sink_->port()) +
        "/agenda/{$.rdv.id}\n    retry: {initial: 50ms, max: 100ms, max_attempts: 2}\n"
        "routes:\n  - name: rdv-agenda\n    source: cms76\n    to:\n"
        "      - destination: agenda\n";
    relais_ = std::make_unique<RelaisProcess>(o);
    relais_->start();
    admin_ = relais_->client();
    planned_ =
        json::parse(read_file(std::string(RELAIS_SHARED_DIR) + "/fixtures/cms76/rdv-planned.json"));
  }

  // Creates an API token with `role` through the API; returns its value.
  std::string make_token(const std::string& name, const std::string& role,
                         const json& sources = json::array()) {
    auto r = admin_.post_json("/api/v1/tokens",
                              json{{"name", name}, {"role", role}, {"sources", sources}}.dump());
    EXPECT_EQ(r.status, 201) << r.body;
    return r.json().value("token", "");
  }

  void add_user(const std::string& name, const std::string& role, const std::string& password) {
    auto r = admin_.post_json("/api/v1/users",
                              json{{"name", name}, {"role", role}, {"password", password}}.dump());
    ASSERT_EQ(r.status, 201) << r.body;
  }

  // Logs in; returns the "Cookie: …" header line and sets csrf.
  std::string login(const std::string& user, const std::string& password, std::string& csrf,
                    HttpResponse* out = nullptr) {
    HttpClient c(relais_->base_url());
    auto r = c.post_json("/api/v1/session", json{{"user", user}, {"password", password}}.dump());
    if (out) *out = r;
    if (r.status != 200) return "";
    csrf = r.json().value("csrf", "");
    std::string set = r.header("Set-Cookie");
    return "Cookie: " + set.substr(0, set.find(';'));
  }

  std::string post_rdv(int id) {
    json body = planned_;
    body["rdv"]["id"] = id;
    body["id"] = "evt-" + std::to_string(id);
    auto r = admin_.post_json("/api/v1/sources/cms76/messages", body.dump());
    EXPECT_EQ(r.status, 202) << r.body;
    return r.json().value("id", "");
  }

  // Waits until the desk lists a dead delivery for `object` (e.g. "RDV 91877"); returns its id.
  std::string wait_dead(HttpClient& c, const std::string& object) {
    std::string id;
    wait_until(
        [&] {
          auto r = c.get("/api/v1/deliveries?state=dead&q=" + object.substr(0, 3) + "%20" +
                         object.substr(4));
          for (const auto& i : r.json().value("items", json::array())) {
            if (i.value("object", "") == object) id = i.value("delivery_id", "");
          }
          return !id.empty();
        },
        std::chrono::seconds(30));
    return id;
  }

  std::atomic<bool> refuse_{true};
  std::atomic<bool> slow_down_{true};
  std::unique_ptr<tools::HttpSink> sink_;
  std::unique_ptr<RelaisProcess> relais_;
  HttpClient admin_;
  json planned_;
};

TEST_F(ConsoleApiTest, EveryEndpointChecksEveryRole) {
  std::map<std::string, std::string> tokens = {{"admin", relais_->token()},
                                               {"system", relais_->system_token()}};
  tokens["support"] = make_token("t-support", "support");
  tokens["auditor"] = make_token("t-auditor", "auditor");
  ASSERT_EQ(tokens.size(), api::all_roles().size());
  size_t checked = 0;
  for (const auto& e : api::endpoints()) {
    std::string target = concrete(e.path);
    HttpClient anonymous(relais_->base_url());
    auto r = anonymous.request(e.method, target, "{}", "application/json", {});
    if (e.is_public()) {
      EXPECT_NE(r.status, 401) << e.method << " " << e.path << " is public";
      continue;
    }
    EXPECT_EQ(r.status, 401) << e.method << " " << e.path << " without credentials: " << r.body;
    for (const auto& role : api::all_roles()) {
      HttpClient c(relais_->base_url(), tokens[role]);
      auto rr = c.request(e.method, target, "{}", "application/json", {});
      if (e.allows(role)) {
        EXPECT_NE(rr.status, 401) << e.method << " " << e.path << " as " << role;
        EXPECT_NE(rr.status, 403) << e.method << " " << e.path << " as " << role << ": " << rr.body;
      } else {
        EXPECT_EQ(rr.status, 403) << e.method << " " << e.path << " as " << role << ": " << rr.body;
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 100u);
  // Every call above that would change something was refused (no such destination, bad body):
  // a refused request changed nothing, so it is not in the audit trail as done.
  for (const char* action :
       {"optout.add", "optout.remove", "destination.message", "privacy.erase"}) {
    EXPECT_EQ(admin_.get(std::string("/api/v1/audit?action=") + action).json()["items"].size(), 0u)
        << action;
  }
  // A wrong token is no token.
  HttpClient wrong(relais_->base_url(), "not-a-token-of-this-relais-0000");
  EXPECT_EQ(wrong.get("/api/v1/messages").status, 401);
}

TEST_F(ConsoleApiTest, SystemTokensAreScopedToTheirSources) {
  std::string t = make_token("cms76-only", "system", json::array({"cms76"}));
  HttpClient c(relais_->base_url(), t);
  EXPECT_EQ(c.post_json("/api/v1/sources/cms76/messages", planned_.dump()).status, 202);
  auto r = c.post_json("/api/v1/sources/other/messages", planned_.dump());
  EXPECT_EQ(r.status, 403) << r.body;
  // Revoked: no longer accepted.
  ASSERT_EQ(admin_.request("DELETE", "/api/v1/tokens/cms76-only", "", "", {}).status, 200);
  EXPECT_EQ(c.post_json("/api/v1/sources/cms76/messages", planned_.dump()).status, 401);
  // Token changes are in the audit trail.
  EXPECT_EQ(
      admin_.get("/api/v1/audit?action=token.create&object=cms76-only").json()["items"].size(), 1u);
  EXPECT_EQ(
      admin_.get("/api/v1/audit?action=token.revoke&object=cms76-only").json()["items"].size(), 1u);
  auto list = admin_.get("/api/v1/tokens").json();
  for (const auto& i : list["items"]) {
    EXPECT_FALSE(i.contains("token")) << "a token's value is never listed";
    EXPECT_FALSE(i.contains("sha256"));
  }
}

TEST_F(ConsoleApiTest, ATokenRevokedElsewhereStopsWorkingHere) {
  std::string t = make_token("revoked-elsewhere", "auditor");
  HttpClient c(relais_->base_url(), t);
  ASSERT_EQ(c.get("/api/v1/messages").status, 200);
  // Another node (or a script) revokes it in the shared store.
  Poco::Data::SQLite::Connector::registerConnector();
  Poco::Data::Session s("SQLite", relais_->store_path());
  s << "UPDATE api_tokens SET revoked_at = 1 WHERE name = 'revoked-elsewhere'",
      Poco::Data::Keywords::now;
  EXPECT_TRUE(wait_until([&] { return c.get("/api/v1/messages").status == 401; },
                         std::chrono::seconds(60)));
}

TEST_F(ConsoleApiTest, SessionsUseSafeCookiesAndCsrf) {
  add_user("alice", "support", "correct horse battery");
  HttpResponse lr;
  std::string csrf;
  std::string cookie = login("alice", "correct horse battery", csrf, &lr);
  ASSERT_FALSE(cookie.empty()) << lr.body;
  std::string set = lr.header("Set-Cookie");
  EXPECT_NE(set.find("HttpOnly"), std::string::npos) << set;
  EXPECT_NE(set.find("SameSite=Strict"), std::string::npos) << set;
  EXPECT_EQ(set.find("Secure"), std::string::npos) << "plain HTTP on loopback: " << set;
  {
    // Behind a TLS reverse proxy the cookie is Secure.
    HttpClient tls(relais_->base_url());
    auto r = tls.post_json("/api/v1/session",
                           json{{"user", "alice"}, {"password", "correct horse battery"}}.dump(),
                           {"X-Forwarded-Proto: https"});
    ASSERT_EQ(r.status, 200);
    EXPECT_NE(r.header("Set-Cookie").find("; Secure"), std::string::npos) << r.header("Set-Cookie");
  }
  HttpClient c(relais_->base_url());
  auto who = c.get("/api/v1/session", {cookie});
  ASSERT_EQ(who.status, 200) << who.body;
  EXPECT_EQ(who.json().value("role", ""), "support");
  // State-changing requests need the CSRF header.
  std::string id = post_rdv(91877);
  std::string did = wait_dead(admin_, "RDV 91877");
  ASSERT_FALSE(did.empty());
  auto no_csrf = c.post_json("/api/v1/deliveries/" + did + "/retry", "{}", {cookie});
  EXPECT_EQ(no_csrf.status, 403) << no_csrf.body;
  std::string forged = csrf;
  forged[0] = forged[0] == 'a' ? 'b' : 'a';
  auto bad_csrf = c.post_json("/api/v1/deliveries/" + did + "/retry", "{}",
                              {cookie, "X-CSRF-Token: " + forged});
  EXPECT_EQ(bad_csrf.status, 403) << csrf;
  auto ok =
      c.post_json("/api/v1/deliveries/" + did + "/retry", "{}", {cookie, "X-CSRF-Token: " + csrf});
  EXPECT_EQ(ok.status, 200) << ok.body;
  // Support may not publish a mapping, even with a session.
  auto pub = c.post_json("/api/v1/mappings/x/activate", "{\"version\":1}",
                         {cookie, "X-CSRF-Token: " + csrf});
  EXPECT_EQ(pub.status, 403);
  // Logout ends the session.
  ASSERT_EQ(
      c.request("DELETE", "/api/v1/session", "", "", {cookie, "X-CSRF-Token: " + csrf}).status,
      200);
  EXPECT_EQ(c.get("/api/v1/session", {cookie}).status, 401);
  // A disabled user cannot log in.
  ASSERT_EQ(
      admin_.request("PATCH", "/api/v1/users/alice", "{\"disabled\":true}", "application/json", {})
          .status,
      200);
  std::string ignored;
  EXPECT_TRUE(login("alice", "correct horse battery", ignored).empty());
  // Logins, logouts and user changes are in the audit trail.
  EXPECT_GE(admin_.get("/api/v1/audit?action=login&actor=alice").json()["items"].size(), 2u);
  EXPECT_EQ(admin_.get("/api/v1/audit?action=logout&actor=alice").json()["items"].size(), 1u);
  EXPECT_EQ(admin_.get("/api/v1/audit?action=user.").json()["items"].size(), 2u)
      << "user.create and user.update";
}

TEST_F(ConsoleApiTest, BadBodiesGetClearErrors) {
  HttpClient anonymous(relais_->base_url());
  auto r = anonymous.post_json("/api/v1/session", "{\"user\": 1, \"password\": []}");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(anonymous.post_json("/api/v1/session", "{\"user\": \"x\"").status, 400);
  auto u = admin_.post_json("/api/v1/users",
                            "{\"name\": \"ok\", \"role\": \"chef\", "
                            "\"password\": \"long enough password\"}");
  EXPECT_EQ(u.status, 400);
  EXPECT_NE(u.body.find("role"), std::string::npos);
  EXPECT_EQ(admin_.get("/api/v1/deliveries?state=lost").status, 400);
  EXPECT_EQ(admin_.get("/api/v1/audit?from=yesterday").status, 400);
  EXPECT_EQ(admin_.request("PUT", "/api/v1/users", "{}", "application/json", {}).status, 405);
  EXPECT_EQ(admin_.get("/api/v1/nothing-here").status, 404);
}

TEST_F(ConsoleApiTest, LoginIsThrottledAfterRepeatedFailures) {
  add_user("bob", "auditor", "a long enough password");
  std::string csrf;
  HttpResponse r;
  for (int i = 0; i < 5; ++i) {
    login("bob", "wrong password " + std::to_string(i), csrf, &r);
    EXPECT_EQ(r.status, 401);
  }
  // Now even the right password is refused for a while, with Retry-After.
  login("bob", "a long enough password", csrf, &r);
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_FALSE(r.header("Retry-After").empty());
  auto audit = admin_.get("/api/v1/audit?action=login.failed").json();
  EXPECT_EQ(audit["items"].size(), 5u);
}

TEST_F(ConsoleApiTest, PasswordsAreStoredAsSlowHashes) {
  add_user("carol", "admin", "another long password");
  Poco::Data::SQLite::Connector::registerConnector();
  Poco::Data::Session s("SQLite", relais_->store_path());
  std::string stored;
  s << "SELECT password FROM users WHERE name = 'carol'", Poco::Data::Keywords::into(stored),
      Poco::Data::Keywords::now;
  EXPECT_EQ(stored.rfind("pbkdf2-sha256$600000$", 0), 0u) << stored;
  EXPECT_EQ(stored.find("another"), std::string::npos);
  // The users list never shows the hash.
  EXPECT_EQ(admin_.get("/api/v1/users").body.find("pbkdf2"), std::string::npos);
}

TEST_F(ConsoleApiTest, TheAuditTrailIsAppendOnlyAndExportsCsv) {
  std::string id = post_rdv(91877);
  std::string did = wait_dead(admin_, "RDV 91877");
  ASSERT_FALSE(did.empty());
  ASSERT_EQ(admin_
                .post_json("/api/v1/deliveries/" + did + "/discard",
                           "{\"reason\":\"doublon, déjà saisi\"}")
                .status,
            200);
  auto list = admin_.get("/api/v1/audit?action=delivery.discard").json();
  ASSERT_EQ(list["items"].size(), 1u);
  EXPECT_EQ(list["items"][0]["actor"], "test-admin");
  EXPECT_EQ(list["items"][0]["object"], "delivery:" + did);
  EXPECT_EQ(list["items"][0]["detail"], "doublon, déjà saisi");
  auto csv = admin_.get("/api/v1/audit.csv");
  ASSERT_EQ(csv.status, 200);
  EXPECT_NE(csv.header("Content-Type").find("text/csv"), std::string::npos);
  EXPECT_EQ(csv.body.rfind("id,at,actor,role,action,object,detail,address\r\n", 0), 0u);
  EXPECT_NE(csv.body.find("\"delivery.discard\",\"delivery:" + did + "\""), std::string::npos)
      << csv.body;
  // The table refuses updates and deletes.
  Poco::Data::SQLite::Connector::registerConnector();
  Poco::Data::Session s("SQLite", relais_->store_path());
  EXPECT_ANY_THROW((s << "UPDATE audit SET actor = 'nobody'", Poco::Data::Keywords::now));
  EXPECT_ANY_THROW((s << "DELETE FROM audit", Poco::Data::Keywords::now));
}

TEST_F(ConsoleApiTest, TheDeskExplainsMasksAndAuditsClearViews) {
  std::string support = make_token("desk-support", "support");
  post_rdv(91877);
  std::string did = wait_dead(admin_, "RDV 91877");
  ASSERT_FALSE(did.empty());
  HttpClient s(relais_->base_url(), support);
  auto item = s.get("/api/v1/deliveries?q=RDV%2091877").json()["items"][0];
  EXPECT_EQ(item["object"], "RDV 91877");
  EXPECT_EQ(item["class"], "http");
  EXPECT_EQ(item["code"], 404);
  EXPECT_NE(item["explanation"].get<std::string>().find("n'existe pas"), std::string::npos);
  auto masked = s.get("/api/v1/deliveries/" + did);
  ASSERT_EQ(masked.status, 200) << masked.body;
  EXPECT_EQ(masked.body.find("DUPONT"), std::string::npos) << "support sees names masked";
  EXPECT_EQ(masked.body.find("06.00.00.00.00"), std::string::npos);
  EXPECT_TRUE(masked.json()["masked"].get<bool>());
  EXPECT_EQ(masked.json()["payload_before"]["rdv"]["id"], 91877) << "non-personal fields stay";
  EXPECT_EQ(masked.json()["attempts"].size(), 1u) << "a 404 is a rejection: no retry";
  EXPECT_TRUE(admin_.get("/api/v1/audit?action=payload.view").json()["items"].empty());
  auto clear = admin_.get("/api/v1/deliveries/" + did);
  EXPECT_NE(clear.body.find("DUPONT"), std::string::npos) << "admin sees the payload";
  auto views = admin_.get("/api/v1/audit?action=payload.view").json()["items"];
  ASSERT_EQ(views.size(), 1u);
  EXPECT_EQ(views[0]["object"], "delivery:" + did);
  // The message endpoint masks the same way.
  auto msg = s.get("/api/v1/messages/" + masked.json()["message_id"].get<std::string>());
  EXPECT_EQ(msg.body.find("DUPONT"), std::string::npos);
}

TEST_F(ConsoleApiTest, ThePeersOwnErrorCodeChoosesTheExplanation) {
  post_rdv(4242);
  std::string did = wait_dead(admin_, "RDV 4242");
  ASSERT_FALSE(did.empty());
  auto d = admin_.get("/api/v1/deliveries/" + did).json();
  EXPECT_EQ(d["error"]["explanation"].get<std::string>().rfind("Boîte aux lettres inconnue", 0), 0u)
      << d.dump();
  EXPECT_NE(d["error"]["action"].get<std::string>().find("CMS76"), std::string::npos);
  auto item = admin_.get("/api/v1/deliveries?q=RDV%204242").json()["items"][0];
  EXPECT_EQ(item["explanation"], d["error"]["explanation"]) << "the list says the same";
}

// A partner's "slow down" (429 + Retry-After) pauses the destination: the dashboard says so,
// without counting a failure of the day nor opening the circuit, and the chronology names it.
TEST_F(ConsoleApiTest, APartnersSlowDownIsShownAsAPauseNotAFailure) {
  const std::string mid = post_rdv(5150);
  auto agenda_figures = [&] {
    const json all = admin_.get("/api/v1/overview").json();
    for (const auto& d : all["destinations"]) {
      if (d["destination"] == "agenda") return d;
    }
    return json();
  };
  json agenda;
  ASSERT_TRUE(wait_until(
      [&] {
        agenda = agenda_figures();
        return !agenda.is_null() && !agenda["throttled_until"].is_null();
      },
      std::chrono::seconds(10)))
      << "the overview never showed the pause: " << agenda.dump();
  EXPECT_EQ(agenda["failed_today"], 0) << agenda.dump();
  EXPECT_EQ(agenda["dead_today"], 0) << agenda.dump();
  EXPECT_EQ(agenda["circuit"], "closed") << agenda.dump();
  // A pause is not a failure: the desk's list of failing deliveries stays empty.
  EXPECT_TRUE(admin_.get("/api/v1/deliveries?q=RDV%205150").json()["items"].empty());
  const json msg = admin_.get("/api/v1/messages/" + mid).json();
  ASSERT_EQ(msg["deliveries"].size(), 1u) << msg.dump();
  const std::string did = msg["deliveries"][0]["id"].get<std::string>();
  json d;
  ASSERT_TRUE(wait_until(
      [&] {
        d = admin_.get("/api/v1/deliveries/" + did).json();
        return !d["attempts"].empty();
      },
      std::chrono::seconds(10)));
  EXPECT_EQ(d["attempts"][0]["outcome"], "throttled") << d.dump();
  EXPECT_FALSE(d["attempts"][0].value("explanation", "").empty()) << d.dump();
  // The partner is ready again: the paused delivery goes once the pause is over, and the pauses
  // were not attempts (max_attempts is 2: it would be dead by now if they had counted).
  slow_down_ = false;
  ASSERT_TRUE(wait_until(
      [&] {
        d = admin_.get("/api/v1/deliveries/" + did).json();
        return d.value("state", "") == "delivered";
      },
      std::chrono::seconds(20)))
      << d.dump();
  agenda = agenda_figures();
  EXPECT_EQ(agenda["failed_today"], 0) << agenda.dump();
  EXPECT_EQ(agenda["delivered_today"], 1) << agenda.dump();
}

TEST_F(ConsoleApiTest, BulkRetryCountsFirstThenNeedsTheConfirmedCount) {
  for (int i = 0; i < 3; ++i) post_rdv(91877 + i * 100000);  // 91877, 191877, 291877: refused
  post_rdv(12345);                                           // delivered
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = admin_.get("/api/v1/deliveries?state=dead&destination=agenda").json();
        return r["items"].size() == 3;
      },
      std::chrono::seconds(30)));
  json filter = {{"state", "dead"}, {"destination", "agenda"}, {"q", "91877"}};
  auto count = admin_.post_json("/api/v1/deliveries:retry", json{{"filter", filter}}.dump());
  ASSERT_EQ(count.status, 200) << count.body;
  EXPECT_EQ(count.json()["count"], 3);
  auto wrong =
      admin_.post_json("/api/v1/deliveries:retry", json{{"filter", filter}, {"confirm", 2}}.dump());
  EXPECT_EQ(wrong.status, 409);
  refuse_ = false;
  auto done =
      admin_.post_json("/api/v1/deliveries:retry", json{{"filter", filter}, {"confirm", 3}}.dump());
  ASSERT_EQ(done.status, 200) << done.body;
  EXPECT_EQ(done.json()["retried"], 3);
  EXPECT_TRUE(wait_until(
      [&] {
        auto o = admin_.get("/api/v1/overview").json();
        return o["destinations"][0]["delivered_today"] == 4;
      },
      std::chrono::seconds(30)));
  auto o = admin_.get("/api/v1/overview").json()["destinations"][0];
  EXPECT_EQ(o["destination"], "agenda");
  EXPECT_EQ(o["circuit"], "closed");
  EXPECT_FALSE(o["last_success"].is_null());
  EXPECT_EQ(o["delivered_per_hour"].size(), 24u);
  EXPECT_EQ(admin_.get("/api/v1/audit?action=delivery.bulk_retry").json()["items"].size(), 1u);
}

TEST_F(ConsoleApiTest, TheFirstAdminIsCreatedFromTheCommandLine) {
  setenv("RELAIS_PASSWORD", "first admin password", 1);
  // relais runs on the store: the command refuses to write it behind the server's back…
  auto refused = run_command({RELAIS_BINARY, "users", "add", "root", "--role", "admin", "--config",
                              relais_->config_path()});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("relais is running on this store"), std::string::npos) << refused.err;
  // …and goes through its API with an admin token (the case without a server is in
  // tests/integration/tools_test.cpp).
  auto r = run_command({RELAIS_BINARY, "users", "add", "root", "--role", "admin", "--config",
                        relais_->config_path(), "--server", relais_->base_url(), "--token",
                        relais_->token()});
  unsetenv("RELAIS_PASSWORD");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::string csrf;
  EXPECT_FALSE(login("root", "first admin password", csrf).empty());
  auto bad = run_command(
      {RELAIS_BINARY, "users", "add", "x", "--role", "boss", "--config", relais_->config_path()});
  EXPECT_EQ(bad.exit_code, 64);
  auto audit = admin_.get("/api/v1/audit?action=user.create").json()["items"];
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0]["role"], "admin");  // the token's role: it went through the API
}

TEST_F(ConsoleApiTest, DestinationsHideSecretsAndCanBeProbed) {
  auto r = admin_.get("/api/v1/destinations");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.json()["items"][0]["name"], "agenda");
  auto p = admin_.post_json("/api/v1/destinations/agenda/probe", "{}");
  ASSERT_EQ(p.status, 200) << p.body;
  EXPECT_TRUE(p.json()["ok"].get<bool>());
  EXPECT_EQ(admin_.post_json("/api/v1/destinations/nope/probe", "{}").status, 404);
}

// An unknown result (the request went out, its answer never came) is explained as such, not
// as a failure: the partner may have the message and relais checks before sending again.
TEST(DeskText, AnUnknownOutcomeSaysThePartnerMayHaveTheMessage) {
  auto e = api::explain("unknown_outcome", 28, "résultat de l'envoi inconnu");
  EXPECT_EQ(e.title.rfind("Le partenaire a peut-être reçu le message", 0), 0u) << e.title;
  EXPECT_NE(e.title.find("vérifie avant de renvoyer"), std::string::npos) << e.title;
  EXPECT_NE(e.action.find("Rien à faire"), std::string::npos) << e.action;
  // A plain network failure keeps its own explanation.
  EXPECT_EQ(api::explain("network", 7, "").title.find("peut-être reçu"), std::string::npos);
}

// Masking walks any stored document without recursion: 200,000 levels (a document from a store
// written before the depth limit) neither overflow the stack nor lose the masking.
TEST(MaskPersonal, DeepDocumentsAreMaskedWithoutRecursion) {
  json inner = {{"nom", "Dupont"}, {"code", 7}};
  for (int i = 0; i < 200000; ++i) {  // moved in, never copied (a copy would recurse)
    json wrap = json::array();
    wrap.push_back(std::move(inner));
    inner = std::move(wrap);
  }
  json deep = json::object();
  deep["telephone"] = {{"fixe", "0235000000"}, {"ok", true}};
  deep["rdv"] = std::move(inner);
  bool found = false;
  json out = api::mask_personal(deep, found);
  EXPECT_TRUE(found);
  EXPECT_EQ(out["telephone"]["fixe"], "•••");
  EXPECT_EQ(out["telephone"]["ok"], true);  // booleans say nothing about a person
  const json* p = &out["rdv"];
  for (int i = 0; i < 200000; ++i) {
    ASSERT_TRUE(p->is_array() && p->size() == 1) << "level " << i;
    p = &(*p)[0];
  }
  EXPECT_EQ((*p)["nom"], "•••");
  EXPECT_EQ((*p)["code"], 7);
}

}  // namespace
}  // namespace relais::testing

// The EWS driver: SOAP 1.1 over libcurl, XML built and read with pugixml, elements in the order
// of Microsoft's schema (types.xsd / messages.xsd). CreateItem, UpdateItem (SetItemField,
// ConflictResolution, ChangeKey), DeleteItem, GetItem, FindItem (on the extended property) and
// GetUserAvailability. Auth: Basic, NTLM or OAuth2 client credentials.

#include <curl/curl.h>

#include <algorithm>
#include <cstdlib>
#include <pugixml.hpp>
#include <set>
#include <sstream>

#include "connectors/calendar/calendar.h"
#include "connectors/calendar/calendar_http.h"
#include "connectors/calendar/ews_xml.h"

namespace relais::calendar {
namespace {

using namespace ews;

const std::set<std::string>& transient_codes() {
  static const std::set<std::string> s{"ErrorInternalServerTransientError",
                                       "ErrorTimeoutExpired",
                                       "ErrorMailboxStoreUnavailable",
                                       "ErrorMailboxMoveInProgress",
                                       "ErrorServerBusy",
                                       "ErrorConnectionFailed",
                                       "ErrorInternalServerError",
                                       "ErrorBatchProcessingStopped"};
  return s;
}

bool is_conflict(const std::string& code) {
  return code == "ErrorIrresolvableConflict" || code == "ErrorInvalidChangeKey" ||
         code == "ErrorStaleObject";
}

// The fix support should apply for an error that names a mailbox or the service account.
std::string fix_for(const std::string& code, bool impersonation) {
  if (code == "ErrorNonExistentMailbox" || code == "ErrorInvalidSmtpAddress") {
    return "the address is not a mailbox of this Exchange organisation: correct the "
           "professional's e-mail address in CMS76 (or create the mailbox)";
  }
  if (code == "ErrorImpersonateUserDenied" || code == "ErrorImpersonationDenied" ||
      code == "ErrorImpersonationFailed") {
    return "the service account may not impersonate this mailbox: grant the "
           "ApplicationImpersonation role (New-ManagementRoleAssignment) with a scope that "
           "includes it";
  }
  if (code == "ErrorAccessDenied") {
    return impersonation ? "the service account has no right on this mailbox: check the "
                           "ApplicationImpersonation role assignment and its scope"
                         : "the service account has no right on this calendar: grant it "
                           "Editor on the calendar (Add-MailboxFolderPermission) or use access: "
                           "impersonation";
  }
  if (code == "ErrorMailboxConfiguration" || code == "ErrorNoPublicFolderReplicaAvailable") {
    return "the mailbox is not usable by EWS: check that EWS is enabled for it "
           "(Set-CASMailbox -EwsEnabled $true) and that it is not being migrated";
  }
  return "";
}

// What one SOAP exchange gave: a transport/HTTP failure, or the answer read (ews::Answer).
struct Exchange : Answer {
  bool failed = false;  // transport, HTTP or auth failure: see `failure`
  Outcome failure;
  std::string raw;
};

// The EWS driver of one destination. Thread-safe for distinct slots: each slot owns one curl
// handle; the token cache is shared and locks itself. Owns its handles; the clock is the hub's.
class EwsDriver final : public Driver {
 public:
  EwsDriver(const ConfigView& c, const std::string& destination, int slots, const Clock& clock,
            ThrottleGate* gate)
      : destination_(destination), clock_(clock), gate_(gate, clock), handles_(slots) {
    url_ = c.str("url");
    if (url_.empty()) {
      throw std::runtime_error("connector " + destination + ": the ews driver needs url");
    }
    std::string auth = c.str("auth");
    if (auth == "basic") auth_.mode = HttpAuth::Mode::Basic;
    if (auth == "ntlm") auth_.mode = HttpAuth::Mode::Ntlm;
    if (auth == "oauth2") auth_.mode = HttpAuth::Mode::Bearer;
    auth_.user = c.str("user");
    auth_.password = c.str("password");
    oauth_ = auth_.mode == HttpAuth::Mode::Bearer;
    token_ = token_settings(c, "https://outlook.office365.com/.default");
    impersonation_ = c.str("access") == "impersonation";
    opts_.server_version = c.str("server_version");
    opts_.time_zone = c.str("time_zone");
    opts_.property_set_id = c.str("property_set_id");
    opts_.property_name = c.str("property_name");
    opts_.conflict_resolution = c.str("conflict_resolution");
    opts_.impersonation = impersonation_;
    transfer_ = token_.transfer;
  }

  std::string name() const override { return "ews"; }
  bool idempotent_create() const override { return false; }
  Status probe() override { return probe_server(oauth_, token_, clock_, url_, transfer_); }

  Result create(const Event& e, int slot) override {
    std::string xml = create_item(opts_, e);
    Exchange a;
    int n = exchange(xml, e.mailbox, "CreateItem", slot, a);
    if (a.failed) return counted(Result::failed(a.failure), n);
    if (a.code != "NoError") return counted(classify(a, e.mailbox, "CreateItem"), n);
    return counted(Result::ok(item_id(a.message)), n);
  }

  Result update(const Event& e, const RemoteRef& ref, unsigned fields, int slot) override {
    RemoteRef current = ref;
    int n = 0;
    for (int pass = 0; pass < 2; ++pass) {
      Exchange a;
      n += exchange(update_item(opts_, e, current, fields), e.mailbox, "UpdateItem", slot, a);
      if (a.failed) return counted(Result::failed(a.failure), n);
      if (a.code == "NoError") {
        RemoteRef r = item_id(a.message);
        if (r.id.empty()) r = current;
        return counted(Result::ok(r), n);
      }
      if (!is_conflict(a.code) || pass == 1)
        return counted(classify(a, e.mailbox, "UpdateItem"), n);
      // Someone changed the item (or the ChangeKey we hold is stale): read the current
      // ChangeKey and apply the update once more.
      Exchange g;
      n += exchange(get_item(opts_, e.mailbox, current.id), e.mailbox, "GetItem", slot, g);
      if (g.failed) return counted(Result::failed(g.failure), n);
      if (g.code != "NoError") return counted(classify(g, e.mailbox, "GetItem"), n);
      current = item_id(g.message);
      if (current.id.empty()) current.id = ref.id;
    }
    return counted(Result::failed(Outcome::retry("ews", 0, "UpdateItem conflict")), n);
  }

  Result remove(const std::string& mailbox, const RemoteRef& ref, int slot) override {
    Exchange a;
    int n = exchange(delete_item(opts_, mailbox, ref.id), mailbox, "DeleteItem", slot, a);
    if (a.failed) return counted(Result::failed(a.failure), n);
    if (a.code != "NoError") return counted(classify(a, mailbox, "DeleteItem"), n);
    return counted(Result::ok(ref), n);
  }

  Result find(const std::string& mailbox, const std::string& key, const std::string& from,
              const std::string& to, int slot) override {
    Result out;
    int offset = 0;
    for (int page = 0; page < 1000; ++page) {
      Exchange a;
      out.requests += exchange(find_item(opts_, mailbox, key, from, to, offset, kPage), mailbox,
                               "FindItem", slot, a);
      if (a.failed) return counted(Result::failed(a.failure), out.requests);
      if (a.code != "NoError") return counted(classify(a, mailbox, "FindItem"), out.requests);
      FoundPage found = read_found_items(a.message, key);
      if (!found.valid) {
        Outcome o = Outcome::retry("ews", 0,
                                   "unexpected answer from the calendar server to FindItem: no "
                                   "RootFolder");
        o.excerpt = excerpt(a.raw);
        return counted(Result::failed(o), out.requests);
      }
      out.found.insert(out.found.end(), found.items.begin(), found.items.end());
      if (found.last) break;
      offset += found.count;
    }
    return out;
  }

  Result free_busy(const std::string& mailbox, const std::string& from, const std::string& to,
                   int slot) override {
    Exchange a;
    int n = exchange(get_user_availability(opts_, mailbox, from, to), mailbox,
                     "GetUserAvailability", slot, a);
    if (a.failed) return counted(Result::failed(a.failure), n);
    if (a.code != "NoError") return counted(classify(a, mailbox, "GetUserAvailability"), n);
    Result out = Result::ok();
    out.requests = n;
    out.busy = read_free_busy(a.message);
    return out;
  }

 private:
  static constexpr int kPage = 100;

  static Result counted(Result r, int n) {
    r.requests = n;
    return r;
  }

  Result classify(const Exchange& a, const std::string& mailbox, const std::string& op) {
    const std::string& code = a.code;
    std::string detail = op + " answered " + code;
    if (code == "ErrorItemNotFound") return Result::not_found();
    if (code == "ErrorServerBusy") {
      // Exchange throttles per mailbox (and per account): no request for this mailbox, from
      // any slot, until the BackOffMilliseconds it asked for has passed.
      Outcome o =
          gate_.pause(mailbox, 0, detail + " (throttled)",
                      a.backoff_ms >= 0 ? std::optional<int64_t>(a.backoff_ms) : std::nullopt);
      o.excerpt = excerpt(a.raw);
      return Result::failed(o);
    }
    if (transient_codes().count(code) > 0 || is_conflict(code)) {
      Outcome o = Outcome::retry("ews", 0, detail + ": transient, will try again");
      o.excerpt = excerpt(a.raw);
      return Result::failed(o);
    }
    std::string fix = fix_for(code, impersonation_);
    Outcome o;
    if (!fix.empty()) {
      o = Outcome::reject("config", 0, detail + " for mailbox " + mailbox + ": " + fix);
    } else {
      o = Outcome::reject("ews", 0,
                          detail + " for mailbox " + mailbox +
                              (a.text.empty() ? std::string() : " (" + a.text + ")") +
                              ": the request was refused");
    }
    o.excerpt = excerpt(a.raw);
    return Result::failed(o);
  }

  // Sends one SOAP request (refreshing an OAuth2 token once on a 401). Fills `a`; returns the
  // number of HTTP requests made.
  int exchange(const std::string& xml, const std::string& mailbox, const std::string& op, int slot,
               Exchange& a) {
    int requests = 0;
    if (std::optional<Outcome> paused = gate_.closed(mailbox)) {
      a.failed = true;
      a.failure = *paused;
      return requests;
    }
    for (int pass = 0; pass < 2; ++pass) {
      HttpAuth auth = auth_;
      if (oauth_) {
        TokenResult t = shared_token_cache().get(token_, clock_, pass > 0);
        if (!t.ok) {
          a.failed = true;
          a.failure = t.failure;
          return requests;
        }
        auth.bearer = t.token;
      }
      std::vector<std::string> headers{
          "Content-Type: text/xml; charset=utf-8", "Accept: text/xml",
          "SOAPAction: \"http://schemas.microsoft.com/exchange/services/2006/messages/" + op +
              "\""};
      if (impersonation_) headers.push_back("X-AnchorMailbox: " + mailbox);
      // Every EWS operation is a POST; only CreateItem must not reach Exchange twice.
      Send send = op == "CreateItem" ? Send::Once : Send::Idempotent;
      HttpAnswer h =
          http_exchange(handles_.at(slot), "POST", url_, headers, xml, transfer_, auth, send);
      ++requests;
      if (h.rc != CURLE_OK) {
        a.failed = true;
        a.failure = network_failure(h, "the Exchange server");
        return requests;
      }
      if (h.status == 401) {
        if (oauth_ && pass == 0) {
          shared_token_cache().invalidate(token_);
          continue;
        }
        a.failed = true;
        a.failure = Outcome::reject(
            "config", 401,
            "the Exchange server refused the credentials (HTTP 401) for mailbox " + mailbox +
                (oauth_ ? ", even with a fresh token: check that the app registration has the "
                          "full_access_as_app application permission on Office 365 Exchange "
                          "Online, with admin consent"
                        : ": check user and password (the service account's password may have "
                          "expired or the account may be locked)"));
        return requests;
      }
      a.raw = h.body;
      bool parsed = read_answer(h.body, a);
      if (h.status == 429 || h.status == 502 || h.status == 503 || h.status == 504 ||
          (h.status >= 500 && !parsed)) {
        std::optional<int64_t> after = retry_after_ms(h.header("retry-after"), clock_.now_ms());
        a.failed = true;
        if ((h.status == 429 || h.status == 503) && (after || h.status == 429)) {
          // "Slow down" at the HTTP level: the mailbox's requests wait, every slot.
          a.failure =
              gate_.pause(mailbox, static_cast<int>(h.status),
                          "HTTP " + std::to_string(h.status) + " from the Exchange server", after);
          a.failure.excerpt = excerpt(h.body);
          return requests;
        }
        a.failure = Outcome::retry(
            "http", static_cast<int>(h.status),
            "HTTP " + std::to_string(h.status) + " from the Exchange server: will try again",
            after);
        a.failure.excerpt = excerpt(h.body);
        return requests;
      }
      if (!parsed || (h.status != 200 && h.status != 500)) {
        a.failed = true;
        a.failure = Outcome::reject("http", static_cast<int>(h.status),
                                    "HTTP " + std::to_string(h.status) +
                                        " from the Exchange "
                                        "server to " +
                                        op + ": not a SOAP answer (check url)");
        a.failure.excerpt = excerpt(h.body);
        return requests;
      }
      if (a.code.empty()) {
        a.failed = true;
        a.failure = Outcome::reject("ews", static_cast<int>(h.status),
                                    op + ": the answer carries no response code");
        a.failure.excerpt = excerpt(h.body);
      }
      return requests;
    }
    return requests;
  }

  std::string destination_;
  const Clock& clock_;
  MailboxGate gate_;
  CurlHandles handles_;
  std::string url_;
  HttpAuth auth_;
  bool oauth_ = false;
  TokenSettings token_;
  bool impersonation_ = true;
  CurlTransfer transfer_;
  Options opts_;
};

}  // namespace

std::unique_ptr<Driver> make_ews_driver(const ConfigView& c, const std::string& destination,
                                        int slots, const Clock& clock, ThrottleGate* gate) {
  return std::make_unique<EwsDriver>(c, destination, slots, clock, gate);
}

}  // namespace relais::calendar

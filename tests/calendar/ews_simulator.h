#pragma once
// An Exchange Web Services simulator for the tests: an in-process HTTP server
// (relais::tools::HttpSink) speaking SOAP 1.1 like Exchange Server / Exchange Online, with an
// in-memory calendar per mailbox.
//
// Strict about what it receives, like the real server: the SOAP envelope namespace, the
// RequestServerVersion header, one operation element in the messages namespace, the attributes
// Exchange requires on calendar operations (SendMeetingInvitations, ConflictResolution,
// SendMeetingInvitationsOrCancellations, DeleteType, SendMeetingCancellations), CalendarItem
// children in schema order, SetItemField whose FieldURI matches its element, X-AnchorMailbox
// equal to the impersonated mailbox. A request that breaks a rule is answered with an
// ErrorSchemaValidation fault and recorded as a violation (tests assert there are none).
//
// Answers are built from the real samples of ${RELAIS_SHARED_DIR}/fixtures/ews/ (the CreateItem
// response envelope, the ErrorItemNotFound response, the ErrorServerBusy and
// ErrorNonExistentMailbox faults). Faults are injectable per operation; periodic or random
// (seeded) throttling, transient errors, lost answers and "saved, then the connection reset
// without an answer" (on reused keep-alive connections, where libcurl may silently re-send) can
// be switched on for scenarios. Throttling is per mailbox and as strict as Exchange: after an
// ErrorServerBusy, every request of that mailbox is refused (ErrorServerBusy with the time
// left) until the BackOffMilliseconds it gave has passed, on the simulator's clock (the steady
// clock unless a test gives its own). Auth: Basic, or OAuth2 bearer tokens from its own
// client-credentials token endpoint.
//
// Thread-safe: every public method locks; requests are served on the sink's thread pool.

#include <Poco/Base64Decoder.h>
#include <Poco/Base64Encoder.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <pugixml.hpp>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/calendar/sim_faults.h"
#include "tests/support/sim_text.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {

inline std::string ews_fixture(const std::string& name) {
  return read_text(std::string(RELAIS_SHARED_DIR) + "/fixtures/ews/" + name);
}

inline std::string unbase64(const std::string& s) {
  std::istringstream in(s);
  Poco::Base64Decoder dec(in);
  std::string out((std::istreambuf_iterator<char>(dec)), std::istreambuf_iterator<char>());
  return out;
}

inline std::string base64(const std::string& s) {
  std::ostringstream out;
  Poco::Base64Encoder enc(out);
  enc.rdbuf()->setLineLength(0);
  enc << s;
  enc.close();
  return out.str();
}

// A calendar item as the simulator stores it.
struct EwsItem {
  std::string id;
  std::string change_key;
  std::string subject;
  std::string body;
  std::string start;  // UTC as received
  std::string end;
  std::string location;
  std::string free_busy;
  std::string start_tz;
  std::string key;  // the Relais extended property
  std::vector<std::string> categories;
  int reminder = -1;
};

// The items of one mailbox, and of every mailbox, of a simulator's calendars
// (mailbox → id → item). The caller holds the simulator's lock.
template <class T>
std::vector<T> items_of(const std::map<std::string, std::map<std::string, T>>& calendars,
                        const std::string& mailbox) {
  std::vector<T> out;
  if (auto it = calendars.find(mailbox); it != calendars.end()) {
    for (const auto& [id, item] : it->second) out.push_back(item);
  }
  return out;
}
template <class T>
std::map<std::string, std::vector<T>> items_by_mailbox(
    const std::map<std::string, std::map<std::string, T>>& calendars) {
  std::map<std::string, std::vector<T>> out;
  for (const auto& [mb, cal] : calendars) out[mb] = items_of(calendars, mb);
  return out;
}

// One request the simulator received.
struct EwsRequest {
  std::string op;    // local name of the element inside soap:Body
  std::string body;  // the whole envelope
  std::string mailbox;
  std::string authorization;
  std::string anchor;
};

class EwsSimulator : public SimulatorFaults {
 public:
  inline static const std::string kSoap = "http://schemas.xmlsoap.org/soap/envelope/";
  inline static const std::string kT = "http://schemas.microsoft.com/exchange/services/2006/types";
  inline static const std::string kM =
      "http://schemas.microsoft.com/exchange/services/2006/messages";

  enum class Fault {
    ServerBusy,      // SOAP fault ErrorServerBusy with BackOffMilliseconds
    Http503,         // HTTP 503 without body
    Transient,       // ResponseCode ErrorInternalServerTransientError
    MailboxMove,     // ResponseCode ErrorMailboxMoveInProgress
    Conflict,        // ResponseCode ErrorIrresolvableConflict
    LoseResponse,    // the operation is applied, then HTTP 503 is answered (lost response)
    AccessDenied,    // ResponseCode ErrorAccessDenied
    ResetAfterSave,  // the operation is applied, then the connection is reset, no answer
  };

  EwsSimulator() : sink_(0, true, 16) {
    sink_.set_responder([this](const tools::SinkRequest& r) { return answer(r); });
  }
  ~EwsSimulator() { sink_.set_responder(nullptr); }

  std::string base() const { return "http://127.0.0.1:" + std::to_string(sink_.port()); }
  std::string url() const { return base() + "/EWS/Exchange.asmx"; }
  std::string token_url() const { return base() + "/tenant-1/oauth2/v2.0/token"; }

  void add_mailbox(const std::string& mailbox, bool may_impersonate = true) {
    std::lock_guard<std::mutex> lock(mu_);
    calendars_[mailbox];
    if (!may_impersonate) denied_.insert(mailbox);
  }
  void use_basic(std::string user, std::string password) {
    std::lock_guard<std::mutex> lock(mu_);
    expected_auth_ = "Basic " + base64(user + ":" + password);
    oauth_ = false;
  }
  // NTLM: the handshake (Type 1 → 401 with a Type 2 challenge → Type 3) and the user name are
  // checked; the response hashes are not (that needs a domain controller).
  void use_ntlm(std::string user) {
    std::lock_guard<std::mutex> lock(mu_);
    ntlm_user_ = std::move(user);
    oauth_ = false;
  }
  int ntlm_handshakes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return ntlm_handshakes_;
  }
  void use_oauth(std::string client_id, std::string secret, int lifetime_s = 3599) {
    std::lock_guard<std::mutex> lock(mu_);
    client_id_ = std::move(client_id);
    client_secret_ = std::move(secret);
    token_lifetime_s_ = lifetime_s;
    oauth_ = true;
  }
  // Every token issued so far stops working (as after a key rollover).
  void revoke_tokens() {
    std::lock_guard<std::mutex> lock(mu_);
    tokens_.clear();
  }
  int tokens_issued() const {
    std::lock_guard<std::mutex> lock(mu_);
    return tokens_issued_;
  }
  // The next `n` requests of operation `op` ("" = any) get `f`.
  void inject(Fault f, int n = 1, const std::string& op = "") {
    std::lock_guard<std::mutex> lock(mu_);
    for (int i = 0; i < n; ++i) injected_.push_back({f, op});
  }
  // Every `n`-th request (0 = off) is throttled / fails transiently / loses its response.
  void periodic(int throttle_every, int transient_every, int lose_every = 0) {
    std::lock_guard<std::mutex> lock(mu_);
    throttle_every_ = throttle_every;
    transient_every_ = transient_every;
    lose_every_ = lose_every;
  }
  // Random faults from a seeded generator, each a probability per request: ErrorServerBusy,
  // a transient error (503 or ErrorInternalServerTransientError), a lost answer after the
  // create is saved (503), and — on a reused connection, for CreateItem/UpdateItem/DeleteItem —
  // the operation saved then the connection reset without an answer.
  void random_faults(uint64_t seed, double busy, double transient, double lose, double reset) {
    std::lock_guard<std::mutex> lock(mu_);
    this->seed(seed);
    p_busy_ = busy, p_transient_ = transient, p_lose_ = lose, p_reset_ = reset;
  }
  void set_backoff_ms(int ms) {
    std::lock_guard<std::mutex> lock(mu_);
    backoff_ms_ = ms;
  }
  // Changes the item behind Relais's back (its ChangeKey moves on).
  void touch(const std::string& mailbox, const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& cal = calendars_[mailbox];
    if (auto it = cal.find(id); it != cal.end()) it->second.change_key = next_change_key();
  }
  // Adds an item behind Relais's back (a duplicate, a leftover); returns its id.
  std::string put(const std::string& mailbox, EwsItem item) {
    std::lock_guard<std::mutex> lock(mu_);
    item.id = "AAMkA" + std::to_string(++item_seq_) + "=";
    item.change_key = next_change_key();
    calendars_[mailbox][item.id] = item;
    return item.id;
  }
  // Moves an item behind Relais's back.
  void set_start(const std::string& mailbox, const std::string& id, const std::string& start) {
    std::lock_guard<std::mutex> lock(mu_);
    if (EwsItem* i = find_item(mailbox, id)) {
      i->start = start;
      i->change_key = next_change_key();
    }
  }
  void erase(const std::string& mailbox, const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    calendars_[mailbox].erase(id);
  }

  std::vector<EwsItem> items(const std::string& mailbox) const {
    std::lock_guard<std::mutex> lock(mu_);
    return items_of(calendars_, mailbox);
  }
  std::map<std::string, std::vector<EwsItem>> all_items() const {
    std::lock_guard<std::mutex> lock(mu_);
    return items_by_mailbox(calendars_);
  }
  std::vector<EwsRequest> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  size_t request_count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_.size();
  }
  std::vector<std::string> violations() const {
    std::lock_guard<std::mutex> lock(mu_);
    return violations_;
  }
  void clear_requests() {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.clear();
  }

 private:
  struct Injected {
    Fault fault;
    std::string op;
  };
  struct Reply {
    int status = 200;
    std::string body;
    bool reset = false;  // close the connection without answering
  };

  // --- namespaces -------------------------------------------------------------------------
  static std::string prefix_of(const std::string& qname) {
    auto c = qname.find(':');
    return c == std::string::npos ? "" : qname.substr(0, c);
  }
  static std::string local(const std::string& qname) {
    auto c = qname.find(':');
    return c == std::string::npos ? qname : qname.substr(c + 1);
  }
  static std::string ns(pugi::xml_node n) {
    std::string attr = prefix_of(n.name()).empty() ? "xmlns" : "xmlns:" + prefix_of(n.name());
    for (pugi::xml_node x = n; x; x = x.parent()) {
      if (auto a = x.attribute(attr.c_str())) return a.value();
    }
    return "";
  }
  static std::vector<pugi::xml_node> elements(pugi::xml_node n) {
    std::vector<pugi::xml_node> out;
    for (auto c : n.children()) {
      if (c.type() == pugi::node_element) out.push_back(c);
    }
    return out;
  }
  // The child with this namespace and local name; a violation if absent and `required`.
  pugi::xml_node need(pugi::xml_node n, const std::string& uri, const std::string& name,
                      std::vector<std::string>& errs, bool required = true) {
    for (auto c : elements(n)) {
      if (local(c.name()) == name && ns(c) == uri) return c;
    }
    if (required) errs.push_back(std::string(n.name()) + ": missing " + name);
    return {};
  }
  void need_attr(pugi::xml_node n, const char* name, const std::set<std::string>& allowed,
                 std::vector<std::string>& errs) {
    auto a = n.attribute(name);
    if (!a) {
      errs.push_back(std::string(n.name()) + ": missing attribute " + name);
    } else if (!allowed.empty() && allowed.count(a.value()) == 0) {
      errs.push_back(std::string(n.name()) + ": bad " + name + " '" + a.value() + "'");
    }
  }

  // Schema order of the CalendarItem children this simulator knows (ItemType then
  // CalendarItemType, types.xsd).
  static int order_of(const std::string& name) {
    static const std::vector<std::string> order{"MimeContent",
                                                "ItemId",
                                                "ParentFolderId",
                                                "ItemClass",
                                                "Subject",
                                                "Sensitivity",
                                                "Body",
                                                "Attachments",
                                                "DateTimeReceived",
                                                "Size",
                                                "Categories",
                                                "Importance",
                                                "InReplyTo",
                                                "IsSubmitted",
                                                "IsDraft",
                                                "IsFromMe",
                                                "IsResend",
                                                "IsUnmodified",
                                                "InternetMessageHeaders",
                                                "DateTimeSent",
                                                "DateTimeCreated",
                                                "ResponseObjects",
                                                "ReminderDueBy",
                                                "ReminderIsSet",
                                                "ReminderNextTime",
                                                "ReminderMinutesBeforeStart",
                                                "DisplayCc",
                                                "DisplayTo",
                                                "HasAttachments",
                                                "ExtendedProperty",
                                                "Culture",
                                                "UID",
                                                "RecurrenceId",
                                                "DateTimeStamp",
                                                "Start",
                                                "End",
                                                "OriginalStart",
                                                "IsAllDayEvent",
                                                "LegacyFreeBusyStatus",
                                                "Location",
                                                "When",
                                                "IsMeeting",
                                                "IsCancelled",
                                                "IsRecurring",
                                                "MeetingRequestWasSent",
                                                "IsResponseRequested",
                                                "CalendarItemType",
                                                "MyResponseType",
                                                "Organizer",
                                                "RequiredAttendees",
                                                "OptionalAttendees",
                                                "Resources",
                                                "Duration",
                                                "TimeZone",
                                                "Recurrence",
                                                "MeetingTimeZone",
                                                "StartTimeZone",
                                                "EndTimeZone"};
    auto it = std::find(order.begin(), order.end(), name);
    return it == order.end() ? -1 : static_cast<int>(it - order.begin());
  }

  // Reads a CalendarItem's children into `item`, checking namespaces and order.
  void read_item(pugi::xml_node ci, EwsItem& item, std::vector<std::string>& errs) {
    int last = -1;
    for (auto c : elements(ci)) {
      std::string n = local(c.name());
      if (ns(c) != kT) errs.push_back("CalendarItem/" + n + ": not in the types namespace");
      int o = order_of(n);
      if (o < 0) {
        errs.push_back("CalendarItem: unknown element " + n);
        continue;
      }
      if (o < last || (o == last && n != "ExtendedProperty")) {
        errs.push_back("CalendarItem: " + n + " out of schema order");
      }
      last = o;
      std::string v = c.text().get();
      if (n == "Subject") item.subject = v;
      if (n == "Body") {
        item.body = v;
        need_attr(c, "BodyType", {"Text", "HTML"}, errs);
      }
      if (n == "Start") item.start = v;
      if (n == "End") item.end = v;
      if (n == "Location") item.location = v;
      if (n == "LegacyFreeBusyStatus") item.free_busy = v;
      if (n == "ReminderMinutesBeforeStart") item.reminder = std::atoi(v.c_str());
      if (n == "StartTimeZone")
        need_attr(c, "Id", {}, errs), item.start_tz = c.attribute("Id").value();
      if (n == "EndTimeZone") need_attr(c, "Id", {}, errs);
      if (n == "Categories") {
        item.categories.clear();
        for (auto s : elements(c)) item.categories.push_back(s.text().get());
      }
      if (n == "ExtendedProperty") {
        auto uri = need(c, kT, "ExtendedFieldURI", errs);
        need_attr(uri, "PropertyType", {"String"}, errs);
        if (!uri.attribute("PropertySetId") && !uri.attribute("DistinguishedPropertySetId")) {
          errs.push_back("ExtendedFieldURI: no property set");
        }
        item.key = need(c, kT, "Value", errs).text().get();
      }
    }
    for (const std::string& s : {item.start, item.end}) {
      if (!s.empty() && s.back() != 'Z') errs.push_back("Start/End not in UTC: " + s);
    }
  }

  // --- answers built from the samples ---------------------------------------------------
  // Loads a response sample and renames its response and message elements for `op`; returns
  // the message element.
  static pugi::xml_node sample_for(pugi::xml_document& doc, const std::string& fixture,
                                   const std::string& sample_op, const std::string& op) {
    std::string text = ews_fixture(fixture);
    doc.load_buffer(text.data(), text.size());
    auto resp = doc.select_node(("//*[local-name()='" + sample_op + "Response']").c_str()).node();
    resp.set_name((op + "Response").c_str());
    auto msg =
        resp.select_node((".//*[local-name()='" + sample_op + "ResponseMessage']").c_str()).node();
    msg.set_name(("m:" + op + "ResponseMessage").c_str());
    return msg;
  }
  static std::string text_of(const pugi::xml_document& doc) {
    std::ostringstream s;
    doc.save(s, "", pugi::format_raw);
    return s.str();
  }
  // A success answer: the CreateItem response sample, renamed for `op`, its Items replaced.
  std::string success(const std::string& op, const std::string& inner_xml) {
    pugi::xml_document doc;
    auto msg = sample_for(doc, "createitem-calendar-response.xml", "CreateItem", op);
    msg.remove_child(msg.select_node("*[local-name()='Items']").node());
    if (!inner_xml.empty()) {
      pugi::xml_document frag;
      std::string wrapped =
          "<x xmlns:m=\"" + kM + "\" xmlns:t=\"" + kT + "\">" + inner_xml + "</x>";
      frag.load_buffer(wrapped.data(), wrapped.size());
      for (auto c : frag.first_child().children()) msg.append_copy(c);
    }
    return text_of(doc);
  }
  std::string item_xml(const EwsItem& i, bool full) {
    std::string x =
        "<t:CalendarItem><t:ItemId Id=\"" + i.id + "\" ChangeKey=\"" + i.change_key + "\"/>";
    if (full) {
      pugi::xml_document d;
      auto ci = d.append_child("t:CalendarItem");
      ci.append_child("t:ItemId").append_attribute("Id") = i.id.c_str();
      ci.child("t:ItemId").append_attribute("ChangeKey") = i.change_key.c_str();
      ci.append_child("t:Subject").text().set(i.subject.c_str());
      auto ep = ci.append_child("t:ExtendedProperty");
      ep.append_child("t:ExtendedFieldURI").append_attribute("PropertyName") = "RelaisKey";
      ep.append_child("t:Value").text().set(i.key.c_str());
      ci.append_child("t:Start").text().set(i.start.c_str());
      ci.append_child("t:End").text().set(i.end.c_str());
      std::ostringstream s;
      d.save(s, "", pugi::format_raw | pugi::format_no_declaration);
      return s.str();
    }
    return x + "</t:CalendarItem>";
  }
  // An error answer: the ErrorItemNotFound response sample, renamed for `op`, with `code`.
  std::string error(const std::string& op, const std::string& code, const std::string& text) {
    pugi::xml_document doc;
    auto msg = sample_for(doc, "deleteitem-error-itemnotfound-response.xml", "DeleteItem", op);
    msg.select_node("*[local-name()='ResponseCode']").node().text().set(code.c_str());
    msg.select_node("*[local-name()='MessageText']").node().text().set(text.c_str());
    if (code == "ErrorServerBusy") {
      msg.append_child("m:MessageXml")
          .append_child("t:Value")
          .append_attribute("Name")
          .set_value("BackOffMilliseconds");
      msg.child("m:MessageXml").child("t:Value").text().set(backoff_ms_);
    }
    return text_of(doc);
  }
  std::string server_busy_fault(int64_t backoff_ms) {
    std::string t = ews_fixture("fault-errorserverbusy-backoff.xml");
    auto p = t.find("297749");
    return t.replace(p, 6, std::to_string(backoff_ms));
  }
  std::string mailbox_fault(const std::string& code, const std::string& message) {
    std::string t = ews_fixture("fault-errornonexistentmailbox.xml");
    auto repl = [&t](const std::string& from, const std::string& to) {
      auto p = t.find(from);
      if (p != std::string::npos) t.replace(p, from.size(), to);
    };
    repl(">XXX<", ">a:" + code + "<");
    repl("<faultcode>", "<faultcode xmlns:a=\"" + kT + "\">");
    repl(">AAA<", ">" + message + "<");
    repl("ErrorNonExistentMailbox", code);
    repl(">YYY<", ">" + message + "<");
    return t;
  }
  Reply schema_fault(const std::vector<std::string>& errs) {
    for (const auto& e : errs) violations_.push_back(e);
    std::string t = mailbox_fault("ErrorSchemaValidation", "The request failed schema validation");
    return {500, t};
  }

  std::string next_change_key() { return "DwAAAB" + std::to_string(++change_seq_); }

  EwsItem* find_item(const std::string& mailbox, const std::string& id) {
    auto& cal = calendars_[mailbox];
    auto it = cal.find(id);
    return it == cal.end() ? nullptr : &it->second;
  }

  // --- the server ---------------------------------------------------------------------------
  tools::SinkResponse answer(const tools::SinkRequest& r) {
    std::lock_guard<std::mutex> lock(mu_);
    tools::SinkResponse out;
    out.headers["Content-Type"] = "text/xml; charset=utf-8";
    if (r.path.rfind("/tenant-1/oauth2/v2.0/token", 0) == 0) return token(r);
    if (r.path != "/EWS/Exchange.asmx" || r.method != "POST") {
      out.status = 404;
      out.body = "";
      return out;
    }
    std::string auth = r.headers.count("authorization") ? r.headers.at("authorization") : "";
    if (!ntlm_user_.empty()) {
      std::string msg = auth.rfind("NTLM ", 0) == 0 ? unbase64(auth.substr(5)) : "";
      if (msg.size() >= 12 && msg.compare(0, 8, std::string("NTLMSSP\0", 8)) == 0 && msg[8] == 1) {
        out.status = 401;
        out.headers["WWW-Authenticate"] = "NTLM " + base64(ntlm_challenge());
        out.body = "";
        return out;
      }
      bool ok = false;
      if (msg.size() >= 44 && msg.compare(0, 8, std::string("NTLMSSP\0", 8)) == 0 && msg[8] == 3) {
        auto u16 = [&msg](size_t at) {
          return static_cast<size_t>(static_cast<unsigned char>(msg[at])) |
                 static_cast<size_t>(static_cast<unsigned char>(msg[at + 1])) << 8;
        };
        size_t len = u16(36), off = u16(40) | u16(42) << 16;
        ok = off + len <= msg.size() && msg.substr(off, len) == ntlm_user_;
        if (ok) ++ntlm_handshakes_;
      }
      if (!ok) {
        out.status = 401;
        out.headers["WWW-Authenticate"] = "NTLM";
        out.body = "";
        return out;
      }
    }
    bool authorised = !ntlm_user_.empty() ||
                      (oauth_ ? (auth.rfind("Bearer ", 0) == 0 && tokens_.count(auth.substr(7)))
                              : auth == expected_auth_);
    if (!authorised) {
      out.status = 401;
      out.headers["WWW-Authenticate"] = oauth_ ? "Bearer" : "Basic realm=\"ews\"";
      out.body = "";
      return out;
    }
    std::string ct = r.headers.count("content-type") ? r.headers.at("content-type") : "";
    Reply rep;
    if (ct.rfind("text/xml", 0) != 0) {
      violations_.push_back("Content-Type " + ct);
      out.status = 415;
      out.body = "";
      return out;
    }
    rep = handle(r);
    out.status = rep.status;
    out.body = rep.body;
    out.reset = rep.reset;
    return out;
  }

  // A Type 2 message: OEM strings, NTLM, target info present (so the client answers NTLMv2).
  static std::string ntlm_challenge() {
    std::string m("NTLMSSP\0", 8);
    auto u16 = [&m](unsigned v) {
      m.push_back(static_cast<char>(v & 0xff));
      m.push_back(static_cast<char>((v >> 8) & 0xff));
    };
    auto u32 = [&](unsigned v) {
      u16(v & 0xffff);
      u16(v >> 16);
    };
    u32(2);
    u16(0), u16(0), u32(48);                                  // target name: empty
    u32(0x00000002 | 0x00000200 | 0x00800000);                // OEM | NTLM | TARGET_INFO
    m += std::string("\x01\x23\x45\x67\x89\xab\xcd\xef", 8);  // challenge
    m += std::string(8, '\0');                                // context
    u16(4), u16(4), u32(48);                                  // target info
    m += std::string(4, '\0');                                // MsvAvEOL
    return m;
  }

  tools::SinkResponse token(const tools::SinkRequest& r) {
    tools::SinkResponse out;
    out.headers["Content-Type"] = "application/json";
    auto f = form_fields(r.body);
    if (f["grant_type"] != "client_credentials" || f["client_id"] != client_id_ ||
        f["client_secret"] != client_secret_) {
      out.status = 401;
      out.body =
          "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid client "
          "secret provided.\"}";
      return out;
    }
    if (f["scope"] != "https://outlook.office365.com/.default") {
      out.status = 400;
      out.body = read_text(std::string(RELAIS_SHARED_DIR) +
                           "/fixtures/graph/token-error-invalid-scope-response.json");
      return out;
    }
    std::string tok = "ews-token-" + std::to_string(++tokens_issued_);
    tokens_.insert(tok);
    out.body = "{\"token_type\":\"Bearer\",\"expires_in\":" + std::to_string(token_lifetime_s_) +
               ",\"access_token\":\"" + tok + "\"}";
    return out;
  }

  Reply handle(const tools::SinkRequest& r) {
    std::vector<std::string> errs;
    pugi::xml_document doc;
    auto res = doc.load_buffer(r.body.data(), r.body.size());
    if (!res) return schema_fault({std::string("not well-formed XML: ") + res.description()});
    auto env = doc.document_element();
    if (local(env.name()) != "Envelope" || ns(env) != kSoap) {
      return schema_fault({"root is not a SOAP 1.1 Envelope in " + kSoap});
    }
    auto header = need(env, kSoap, "Header", errs);
    auto body = need(env, kSoap, "Body", errs);
    auto version = need(header, kT, "RequestServerVersion", errs);
    need_attr(version, "Version",
              {"Exchange2010", "Exchange2010_SP1", "Exchange2010_SP2", "Exchange2013",
               "Exchange2013_SP1", "Exchange2016", "V2016_01_06"},
              errs);
    std::string impersonated;
    if (auto imp = need(header, kT, "ExchangeImpersonation", errs, false)) {
      auto sid = need(imp, kT, "ConnectingSID", errs);
      auto smtp = need(sid, kT, "PrimarySmtpAddress", errs, false);
      if (!smtp) smtp = need(sid, kT, "SmtpAddress", errs);
      impersonated = smtp.text().get();
    }
    auto ops = elements(body);
    if (ops.size() != 1 || ns(ops[0]) != kM) {
      errs.push_back("soap:Body must hold one element of the messages namespace");
      return schema_fault(errs);
    }
    auto op = ops[0];
    std::string name = local(op.name());
    std::string anchor = r.headers.count("x-anchormailbox") ? r.headers.at("x-anchormailbox") : "";
    if (!impersonated.empty() && anchor != impersonated) {
      errs.push_back("X-AnchorMailbox '" + anchor + "' is not the impersonated mailbox");
    }
    requests_.push_back({name, r.body, impersonated,
                         r.headers.count("authorization") ? r.headers.at("authorization") : "",
                         anchor});
    if (!errs.empty()) return schema_fault(errs);
    if (!impersonated.empty()) {
      if (calendars_.count(impersonated) == 0) {
        return {500, mailbox_fault("ErrorNonExistentMailbox",
                                   "The SMTP address has no mailbox associated with it.")};
      }
      if (denied_.count(impersonated) > 0) {
        return {500, mailbox_fault("ErrorImpersonateUserDenied",
                                   "The account does not have permission to impersonate the "
                                   "requested user.")};
      }
    }
    // Per-mailbox throttling, as strict as Exchange: during the back-off it asked for, every
    // request of the mailbox (or of the service account without impersonation) is refused.
    const std::string account = !impersonated.empty() ? impersonated : anchor;
    int64_t now = this->now();
    if (int64_t left = busy_left(account, now); left > 0) {
      ++busy_answers_;
      return {500, server_busy_fault(left)};
    }
    // Injected, periodic and random faults.
    ++seq_;
    std::optional<Fault> fault;
    for (auto it = injected_.begin(); it != injected_.end(); ++it) {
      if (it->op.empty() || it->op == name) {
        fault = it->fault;
        injected_.erase(it);
        break;
      }
    }
    if (!fault && throttle_every_ > 0 && seq_ % throttle_every_ == 0) fault = Fault::ServerBusy;
    if (!fault && transient_every_ > 0 && seq_ % transient_every_ == 1 % transient_every_ &&
        seq_ > 1) {
      fault = (seq_ / transient_every_) % 2 ? Fault::Http503 : Fault::Transient;
    }
    if (!fault && lose_every_ > 0 && seq_ % lose_every_ == 2 % lose_every_ &&
        name == "CreateItem") {
      fault = Fault::LoseResponse;
    }
    if (!fault && chance(p_busy_)) fault = Fault::ServerBusy;
    if (!fault && chance(p_transient_)) fault = chance(0.5) ? Fault::Http503 : Fault::Transient;
    if (!fault && name == "CreateItem" && chance(p_lose_)) fault = Fault::LoseResponse;
    bool mutation = name == "CreateItem" || name == "UpdateItem" || name == "DeleteItem";
    if (!fault && mutation && r.reused && chance(p_reset_)) fault = Fault::ResetAfterSave;
    if (fault) {
      switch (*fault) {
        case Fault::ServerBusy:
          start_backoff(account, now, backoff_ms_);
          return {500, server_busy_fault(backoff_ms_)};
        case Fault::Http503:
          return {503, ""};
        case Fault::Transient:
          return {200, error(name, "ErrorInternalServerTransientError",
                             "An internal server error occurred. Try again later.")};
        case Fault::MailboxMove:
          return {200, error(name, "ErrorMailboxMoveInProgress", "The mailbox is being moved.")};
        case Fault::Conflict:
          return {200, error(name, "ErrorIrresolvableConflict",
                             "The send or update operation could not be performed because the "
                             "change key passed in the request does not match the current "
                             "change key for the item.")};
        case Fault::AccessDenied:
          return {200, error(name, "ErrorAccessDenied", "Access is denied.")};
        case Fault::LoseResponse:
        case Fault::ResetAfterSave:
          break;
      }
    }
    Reply rep = operation(name, op, impersonated, errs);
    if (!errs.empty()) return schema_fault(errs);
    if (fault && *fault == Fault::LoseResponse) return {503, ""};
    if (fault && *fault == Fault::ResetAfterSave) {
      ++resets_;
      return {0, "", true};
    }
    return rep;
  }

  // The mailbox a request works on: the impersonated one, or DistinguishedFolderId/Mailbox.
  std::string mailbox_of(pugi::xml_node folder_parent, const std::string& impersonated,
                         std::vector<std::string>& errs) {
    auto f = need(folder_parent, kT, "DistinguishedFolderId", errs);
    need_attr(f, "Id", {"calendar"}, errs);
    std::string mb = impersonated;
    if (auto m = need(f, kT, "Mailbox", errs, false)) {
      mb = need(m, kT, "EmailAddress", errs).text().get();
    }
    if (mb.empty()) errs.push_back("no mailbox: neither impersonation nor Mailbox");
    return mb;
  }

  // The item an ItemId element names, in the impersonated mailbox (null when not there).
  EwsItem* item_of(pugi::xml_node id, const std::string& impersonated) {
    std::string mb = mailbox_of_item(id.attribute("Id").value(), impersonated);
    return mb.empty() ? nullptr : find_item(mb, id.attribute("Id").value());
  }
  Reply not_found(const std::string& op) {
    return {200,
            error(op, "ErrorItemNotFound", "The specified object was not found in the store.")};
  }

  // The mailbox holding item `id` (ids name their mailbox), checked against impersonation.
  std::string mailbox_of_item(const std::string& id, const std::string& impersonated) {
    for (auto& [mb, cal] : calendars_) {
      if (cal.count(id) > 0) return impersonated.empty() || impersonated == mb ? mb : "";
    }
    return "";
  }

  Reply operation(const std::string& name, pugi::xml_node op, const std::string& impersonated,
                  std::vector<std::string>& errs) {
    if (name == "CreateItem") {
      need_attr(op, "SendMeetingInvitations",
                {"SendToNone", "SendOnlyToAll", "SendToAllAndSaveCopy"}, errs);
      std::string mb = mailbox_of(need(op, kM, "SavedItemFolderId", errs), impersonated, errs);
      auto items = need(op, kM, "Items", errs);
      auto ci = need(items, kT, "CalendarItem", errs);
      EwsItem item;
      read_item(ci, item, errs);
      if (item.start.empty() || item.end.empty()) errs.push_back("CalendarItem without Start/End");
      if (!errs.empty()) return {};
      if (calendars_.count(mb) == 0) {
        return {200, error(name, "ErrorNonExistentMailbox", "The mailbox does not exist.")};
      }
      item.id = "AAMkA" + std::to_string(++item_seq_) + "=";
      item.change_key = next_change_key();
      calendars_[mb][item.id] = item;
      return {200, success(name, "<m:Items>" + item_xml(item, false) + "</m:Items>")};
    }
    if (name == "UpdateItem") {
      need_attr(op, "ConflictResolution", {"NeverOverwrite", "AutoResolve", "AlwaysOverwrite"},
                errs);
      need_attr(op, "MessageDisposition", {"SaveOnly"}, errs);
      need_attr(op, "SendMeetingInvitationsOrCancellations",
                {"SendToNone", "SendOnlyToAll", "SendToAllAndSaveCopy", "SendOnlyToChanged"}, errs);
      auto change = need(need(op, kM, "ItemChanges", errs), kT, "ItemChange", errs);
      auto id = need(change, kT, "ItemId", errs);
      need_attr(id, "Id", {}, errs);
      auto updates = need(change, kT, "Updates", errs);
      if (!errs.empty()) return {};
      EwsItem* item = item_of(id, impersonated);
      EwsItem changed = item != nullptr ? *item : EwsItem{};
      for (auto u : elements(updates)) {
        std::string kind = local(u.name());
        auto uri = need(u, kT, "FieldURI", errs);
        std::string field = local(uri.attribute("FieldURI").value());
        if (kind == "SetItemField") {
          auto ci = need(u, kT, "CalendarItem", errs);
          auto kids = elements(ci);
          if (kids.size() != 1 || local(kids[0].name()) != field) {
            errs.push_back("SetItemField " + field + " does not hold exactly that element");
          }
          read_item(ci, changed, errs);
        } else if (kind == "DeleteItemField") {
          if (field == "Location") changed.location.clear();
          if (field == "Categories") changed.categories.clear();
          if (field == "ReminderMinutesBeforeStart") changed.reminder = -1;
        } else {
          errs.push_back("Updates: unexpected " + kind);
        }
      }
      if (!errs.empty()) return {};
      if (item == nullptr) return not_found(name);
      std::string ck = id.attribute("ChangeKey").value();
      if (std::string(op.attribute("ConflictResolution").value()) != "AlwaysOverwrite" &&
          ck != item->change_key) {
        return {200, error(name, "ErrorIrresolvableConflict",
                           "The send or update operation could not be performed because the "
                           "change key passed in the request does not match the current change "
                           "key for the item.")};
      }
      changed.id = item->id;
      changed.key = item->key;
      changed.change_key = next_change_key();
      *item = changed;
      return {200, success(name, "<m:Items>" + item_xml(*item, false) +
                                     "</m:Items><m:ConflictResults><t:Count>0</t:Count>"
                                     "</m:ConflictResults>")};
    }
    if (name == "DeleteItem") {
      need_attr(op, "DeleteType", {"HardDelete", "SoftDelete", "MoveToDeletedItems"}, errs);
      need_attr(op, "SendMeetingCancellations",
                {"SendToNone", "SendOnlyToAll", "SendToAllAndSaveCopy"}, errs);
      auto id = need(need(op, kM, "ItemIds", errs), kT, "ItemId", errs);
      if (!errs.empty()) return {};
      std::string mb = mailbox_of_item(id.attribute("Id").value(), impersonated);
      if (mb.empty()) {
        return {200, ews_fixture_error(name)};
      }
      calendars_[mb].erase(id.attribute("Id").value());
      std::string t = ews_fixture("deleteitem-response.xml");
      return {200, t};
    }
    if (name == "GetItem") {
      auto shape = need(op, kM, "ItemShape", errs);
      need(shape, kT, "BaseShape", errs);
      auto id = need(need(op, kM, "ItemIds", errs), kT, "ItemId", errs);
      if (!errs.empty()) return {};
      EwsItem* item = item_of(id, impersonated);
      if (item == nullptr) return not_found(name);
      return {200, success(name, "<m:Items>" + item_xml(*item, false) + "</m:Items>")};
    }
    if (name == "FindItem") {
      need_attr(op, "Traversal", {"Shallow"}, errs);
      auto shape = need(op, kM, "ItemShape", errs);
      need(shape, kT, "BaseShape", errs);
      auto view = need(op, kM, "IndexedPageItemView", errs);
      need_attr(view, "BasePoint", {"Beginning"}, errs);
      need_attr(view, "Offset", {}, errs);
      auto restriction = need(op, kM, "Restriction", errs);
      std::string mb = mailbox_of(need(op, kM, "ParentFolderIds", errs), impersonated, errs);
      // Child order: ItemShape, IndexedPageItemView, Restriction, SortOrder, ParentFolderIds.
      std::vector<std::string> seen;
      for (auto c : elements(op)) seen.push_back(local(c.name()));
      std::vector<std::string> expected{"ItemShape", "IndexedPageItemView", "Restriction",
                                        "SortOrder", "ParentFolderIds"};
      if (seen != expected) errs.push_back("FindItem children out of schema order");
      if (!errs.empty()) return {};
      std::string key, from, to;
      if (auto eq = need(restriction, kT, "IsEqualTo", errs, false)) {
        key = eq.select_node(".//*[local-name()='Constant']").node().attribute("Value").value();
      } else if (auto all = need(restriction, kT, "And", errs)) {
        from = need(all, kT, "IsGreaterThanOrEqualTo", errs)
                   .select_node(".//*[local-name()='Constant']")
                   .node()
                   .attribute("Value")
                   .value();
        to = need(all, kT, "IsLessThan", errs)
                 .select_node(".//*[local-name()='Constant']")
                 .node()
                 .attribute("Value")
                 .value();
      }
      if (!errs.empty()) return {};
      std::vector<EwsItem> hits;
      for (const auto& [id, item] : calendars_[mb]) {
        if (!key.empty() ? item.key == key
                         : (!item.key.empty() && item.start >= from && item.start < to)) {
          hits.push_back(item);
        }
      }
      std::sort(hits.begin(), hits.end(),
                [](const EwsItem& a, const EwsItem& b) { return a.start < b.start; });
      size_t offset = static_cast<size_t>(std::atoi(view.attribute("Offset").value()));
      size_t max = static_cast<size_t>(std::atoi(view.attribute("MaxEntriesReturned").value()));
      std::string items;
      size_t n = 0;
      for (size_t i = offset; i < hits.size() && n < max; ++i, ++n)
        items += item_xml(hits[i], true);
      bool last = offset + n >= hits.size();
      return {200,
              success(name, "<m:RootFolder IndexedPagingOffset=\"" + std::to_string(offset + n) +
                                "\" TotalItemsInView=\"" + std::to_string(hits.size()) +
                                "\" IncludesLastItemInRange=\"" + (last ? "true" : "false") +
                                "\"><t:Items>" + items + "</t:Items></m:RootFolder>")};
    }
    if (name == "GetUserAvailabilityRequest") {
      need(op, kT, "TimeZone", errs);
      auto data = need(need(op, kM, "MailboxDataArray", errs), kT, "MailboxData", errs);
      std::string mb = need(need(data, kT, "Email", errs), kT, "Address", errs).text().get();
      auto window = need(need(op, kT, "FreeBusyViewOptions", errs), kT, "TimeWindow", errs);
      std::string from = need(window, kT, "StartTime", errs).text().get();
      std::string to = need(window, kT, "EndTime", errs).text().get();
      if (!errs.empty()) return {};
      std::string events;
      for (const auto& [id, item] : calendars_[mb]) {
        std::string s = item.start.substr(0, 19), e = item.end.substr(0, 19);
        if (e <= from || s >= to) continue;
        events += "<t:CalendarEvent><t:StartTime>" + s + "</t:StartTime><t:EndTime>" + e +
                  "</t:EndTime><t:BusyType>" + (item.free_busy.empty() ? "Busy" : item.free_busy) +
                  "</t:BusyType></t:CalendarEvent>";
      }
      std::string resp =
          "<?xml version=\"1.0\" encoding=\"utf-8\"?><s:Envelope xmlns:s=\"" + kSoap +
          "\"><s:Body><GetUserAvailabilityResponse xmlns=\"" + kM + "\" xmlns:t=\"" + kT +
          "\"><FreeBusyResponseArray><FreeBusyResponse><ResponseMessage ResponseClass=\"Success\">"
          "<ResponseCode>NoError</ResponseCode></ResponseMessage><FreeBusyView>"
          "<t:FreeBusyViewType>Detailed</t:FreeBusyViewType><t:CalendarEventArray>" +
          events +
          "</t:CalendarEventArray></FreeBusyView></FreeBusyResponse></FreeBusyResponseArray>"
          "</GetUserAvailabilityResponse></s:Body></s:Envelope>";
      return {200, resp};
    }
    errs.push_back("operation " + name + " is not simulated");
    return {};
  }

  std::string ews_fixture_error(const std::string& op) {
    if (op == "DeleteItem") return ews_fixture("deleteitem-error-itemnotfound-response.xml");
    return error(op, "ErrorItemNotFound", "The specified object was not found in the store.");
  }

  tools::HttpSink sink_;
  std::map<std::string, std::map<std::string, EwsItem>> calendars_;
  std::set<std::string> denied_;
  std::string expected_auth_ = "Basic " + base64("svc-relais:secret");
  std::string ntlm_user_;
  int ntlm_handshakes_ = 0;
  bool oauth_ = false;
  std::string client_id_, client_secret_;
  int token_lifetime_s_ = 3599;
  std::set<std::string> tokens_;
  int tokens_issued_ = 0;
  std::deque<Injected> injected_;
  int throttle_every_ = 0, transient_every_ = 0, lose_every_ = 0;
  int backoff_ms_ = 50;
  double p_busy_ = 0, p_transient_ = 0, p_lose_ = 0, p_reset_ = 0;
  long seq_ = 0;
  long item_seq_ = 0;
  long change_seq_ = 0;
  std::vector<EwsRequest> requests_;
  std::vector<std::string> violations_;
};

}  // namespace relais::testing

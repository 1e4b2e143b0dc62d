// EWS request builders (see ews_xml.h).

#include "connectors/calendar/ews_xml.h"

#include <functional>
#include <sstream>
#include <vector>

namespace relais::calendar::ews {
namespace {

// A SOAP envelope with the version header and, when impersonating, the impersonation header.
struct Soap {
  pugi::xml_document doc;
  pugi::xml_node body;

  Soap(const Options& o, const std::string& mailbox) {
    auto decl = doc.append_child(pugi::node_declaration);
    decl.append_attribute("version") = "1.0";
    decl.append_attribute("encoding") = "utf-8";
    auto env = doc.append_child("soap:Envelope");
    env.append_attribute("xmlns:soap") = kSoapNs;
    env.append_attribute("xmlns:t") = kTypesNs;
    env.append_attribute("xmlns:m") = kMessagesNs;
    auto header = env.append_child("soap:Header");
    header.append_child("t:RequestServerVersion").append_attribute("Version") =
        o.server_version.c_str();
    if (o.impersonation && !mailbox.empty()) {
      header.append_child("t:ExchangeImpersonation")
          .append_child("t:ConnectingSID")
          .append_child("t:PrimarySmtpAddress")
          .text()
          .set(mailbox.c_str());
    }
    body = env.append_child("soap:Body");
  }

  std::string text() const {
    std::ostringstream s;
    doc.save(s, "", pugi::format_raw, pugi::encoding_utf8);
    return s.str();
  }
};

pugi::xml_node add(pugi::xml_node parent, const char* name, const std::string& text = {}) {
  auto n = parent.append_child(name);
  if (!text.empty()) n.text().set(text.c_str());
  return n;
}

// <t:DistinguishedFolderId Id="calendar"> with the mailbox when not impersonating.
void calendar_folder(pugi::xml_node parent, const Options& o, const std::string& mailbox) {
  auto f = parent.append_child("t:DistinguishedFolderId");
  f.append_attribute("Id") = "calendar";
  if (!o.impersonation && !mailbox.empty()) {
    add(f.append_child("t:Mailbox"), "t:EmailAddress", mailbox);
  }
}

void extended_field_uri(pugi::xml_node parent, const Options& o) {
  auto u = parent.append_child("t:ExtendedFieldURI");
  u.append_attribute("PropertySetId") = o.property_set_id.c_str();
  u.append_attribute("PropertyName") = o.property_name.c_str();
  u.append_attribute("PropertyType") = "String";
}

std::string free_busy_status(const std::string& show_as) {
  if (show_as == "free") return "Free";
  if (show_as == "tentative") return "Tentative";
  if (show_as == "oof") return "OOF";
  if (show_as == "workingElsewhere") return "WorkingElsewhere";
  return "Busy";
}

std::string utc(const std::string& iso) {
  std::string out;
  return to_utc(iso, out) ? out : iso;
}

// One settable field: its FieldURI and how it writes itself into a CalendarItem. In schema
// order (ItemType, then CalendarItemType).
struct Field {
  unsigned bit;  // FieldBits; 0: written on create only (the extended property)
  const char* uri;
  std::function<bool(pugi::xml_node, const Options&, const Event&)> write;  // false = absent
};

const std::vector<Field>& calendar_fields() {
  static const std::vector<Field> f{
      {kSubject, "item:Subject",
       [](pugi::xml_node ci, const Options&, const Event& e) {
         add(ci, "t:Subject", e.subject);
         return true;
       }},
      {kBody, "item:Body",
       [](pugi::xml_node ci, const Options&, const Event& e) {
         auto b = add(ci, "t:Body", e.body);
         b.append_attribute("BodyType") = "Text";
         return true;
       }},
      {kCategories, "item:Categories",
       [](pugi::xml_node ci, const Options&, const Event& e) {
         if (e.categories.empty()) return false;
         auto c = ci.append_child("t:Categories");
         for (const auto& s : e.categories) add(c, "t:String", s);
         return true;
       }},
      {kReminder, "item:ReminderIsSet",
       [](pugi::xml_node ci, const Options&, const Event& e) {
         add(ci, "t:ReminderIsSet", e.reminder_minutes >= 0 ? "true" : "false");
         return true;
       }},
      {kReminder, "item:ReminderMinutesBeforeStart",
       [](pugi::xml_node ci, const Options&, const Event& e) {
         if (e.reminder_minutes < 0) return false;
         add(ci, "t:ReminderMinutesBeforeStart", std::to_string(e.reminder_minutes));
         return true;
       }},
      {0, nullptr,
       [](pugi::xml_node ci, const Options& o, const Event& e) {
         auto p = ci.append_child("t:ExtendedProperty");
         extended_field_uri(p, o);
         add(p, "t:Value", e.key);
         return true;
       }},
      {kStart, "calendar:Start",
       [](pugi::xml_node ci, const Options&, const Event& e) {
         add(ci, "t:Start", utc(e.start));
         return true;
       }},
      {kEnd, "calendar:End",
       [](pugi::xml_node ci, const Options&, const Event& e) {
         add(ci, "t:End", utc(e.end));
         return true;
       }},
      {kShowAs, "calendar:LegacyFreeBusyStatus",
       [](pugi::xml_node ci, const Options&, const Event& e) {
         add(ci, "t:LegacyFreeBusyStatus", free_busy_status(e.show_as));
         return true;
       }},
      {kLocation, "calendar:Location",
       [](pugi::xml_node ci, const Options&, const Event& e) {
         if (e.location.empty()) return false;
         add(ci, "t:Location", e.location);
         return true;
       }},
      {kStart, "calendar:StartTimeZone",
       [](pugi::xml_node ci, const Options& o, const Event&) {
         ci.append_child("t:StartTimeZone").append_attribute("Id") = o.time_zone.c_str();
         return true;
       }},
      {kEnd, "calendar:EndTimeZone",
       [](pugi::xml_node ci, const Options& o, const Event&) {
         ci.append_child("t:EndTimeZone").append_attribute("Id") = o.time_zone.c_str();
         return true;
       }},
  };
  return f;
}

void item_id(pugi::xml_node parent, const std::string& id, const std::string& change_key = {}) {
  auto n = parent.append_child("t:ItemId");
  n.append_attribute("Id") = id.c_str();
  if (!change_key.empty()) n.append_attribute("ChangeKey") = change_key.c_str();
}

// SerializableTimeZone for UTC: no bias, no daylight saving.
void utc_time_zone(pugi::xml_node parent) {
  auto tz = parent.append_child("t:TimeZone");
  add(tz, "t:Bias", "0");
  for (const char* name : {"t:StandardTime", "t:DaylightTime"}) {
    auto t = tz.append_child(name);
    add(t, "t:Bias", "0");
    add(t, "t:Time", "00:00:00");
    add(t, "t:DayOrder", "1");
    add(t, "t:Month", "1");
    add(t, "t:DayOfWeek", "Sunday");
  }
}

std::string without_z(const std::string& t) {
  return !t.empty() && t.back() == 'Z' ? t.substr(0, t.size() - 1) : t;
}

}  // namespace

std::string create_item(const Options& o, const Event& e) {
  Soap s(o, e.mailbox);
  auto ci = s.body.append_child("m:CreateItem");
  ci.append_attribute("SendMeetingInvitations") = "SendToNone";
  calendar_folder(ci.append_child("m:SavedItemFolderId"), o, e.mailbox);
  auto item = ci.append_child("m:Items").append_child("t:CalendarItem");
  for (const auto& f : calendar_fields()) f.write(item, o, e);
  return s.text();
}

std::string update_item(const Options& o, const Event& e, const RemoteRef& ref, unsigned fields) {
  Soap s(o, e.mailbox);
  auto u = s.body.append_child("m:UpdateItem");
  u.append_attribute("MessageDisposition") = "SaveOnly";
  u.append_attribute("ConflictResolution") = o.conflict_resolution.c_str();
  u.append_attribute("SendMeetingInvitationsOrCancellations") = "SendToNone";
  auto change = u.append_child("m:ItemChanges").append_child("t:ItemChange");
  item_id(change, ref.id, ref.version);
  auto updates = change.append_child("t:Updates");
  for (const auto& f : calendar_fields()) {
    if ((f.bit & fields) == 0) continue;
    auto set = updates.append_child("t:SetItemField");
    set.append_child("t:FieldURI").append_attribute("FieldURI") = f.uri;
    if (!f.write(set.append_child("t:CalendarItem"), o, e)) {
      // Absent in the event: clear it on the item.
      updates.remove_child(set);
      auto del = updates.append_child("t:DeleteItemField");
      del.append_child("t:FieldURI").append_attribute("FieldURI") = f.uri;
    }
  }
  return s.text();
}

std::string delete_item(const Options& o, const std::string& mailbox, const std::string& id) {
  Soap s(o, mailbox);
  auto d = s.body.append_child("m:DeleteItem");
  d.append_attribute("DeleteType") = "MoveToDeletedItems";
  d.append_attribute("SendMeetingCancellations") = "SendToNone";
  item_id(d.append_child("m:ItemIds"), id);
  return s.text();
}

std::string get_item(const Options& o, const std::string& mailbox, const std::string& id) {
  Soap s(o, mailbox);
  auto g = s.body.append_child("m:GetItem");
  add(g.append_child("m:ItemShape"), "t:BaseShape", "IdOnly");
  item_id(g.append_child("m:ItemIds"), id);
  return s.text();
}

std::string find_item(const Options& o, const std::string& mailbox, const std::string& key,
                      const std::string& from_utc, const std::string& to_utc, int offset, int max) {
  Soap s(o, mailbox);
  auto f = s.body.append_child("m:FindItem");
  f.append_attribute("Traversal") = "Shallow";
  auto shape = f.append_child("m:ItemShape");
  add(shape, "t:BaseShape", "IdOnly");
  auto props = shape.append_child("t:AdditionalProperties");
  for (const char* uri : {"item:Subject", "calendar:Start", "calendar:End"}) {
    props.append_child("t:FieldURI").append_attribute("FieldURI") = uri;
  }
  extended_field_uri(props, o);
  auto view = f.append_child("m:IndexedPageItemView");
  view.append_attribute("MaxEntriesReturned") = std::to_string(max).c_str();
  view.append_attribute("Offset") = std::to_string(offset).c_str();
  view.append_attribute("BasePoint") = "Beginning";
  auto r = f.append_child("m:Restriction");
  if (!key.empty()) {
    auto eq = r.append_child("t:IsEqualTo");
    extended_field_uri(eq, o);
    eq.append_child("t:FieldURIOrConstant").append_child("t:Constant").append_attribute("Value") =
        key.c_str();
  } else {
    auto all = r.append_child("t:And");
    extended_field_uri(all.append_child("t:Exists"), o);
    auto ge = all.append_child("t:IsGreaterThanOrEqualTo");
    ge.append_child("t:FieldURI").append_attribute("FieldURI") = "calendar:Start";
    ge.append_child("t:FieldURIOrConstant").append_child("t:Constant").append_attribute("Value") =
        from_utc.c_str();
    auto lt = all.append_child("t:IsLessThan");
    lt.append_child("t:FieldURI").append_attribute("FieldURI") = "calendar:Start";
    lt.append_child("t:FieldURIOrConstant").append_child("t:Constant").append_attribute("Value") =
        to_utc.c_str();
  }
  auto sort = f.append_child("m:SortOrder").append_child("t:FieldOrder");
  sort.append_attribute("Order") = "Ascending";
  sort.append_child("t:FieldURI").append_attribute("FieldURI") = "calendar:Start";
  calendar_folder(f.append_child("m:ParentFolderIds"), o, mailbox);
  return s.text();
}

std::string get_user_availability(const Options& o, const std::string& mailbox,
                                  const std::string& from_utc, const std::string& to_utc) {
  Options plain = o;
  plain.impersonation = false;  // availability is read with the service account's own rights
  Soap s(plain, mailbox);
  auto g = s.body.append_child("m:GetUserAvailabilityRequest");
  utc_time_zone(g);
  auto md = g.append_child("m:MailboxDataArray").append_child("t:MailboxData");
  add(md.append_child("t:Email"), "t:Address", mailbox);
  add(md, "t:AttendeeType", "Required");
  add(md, "t:ExcludeConflicts", "false");
  auto opts = g.append_child("t:FreeBusyViewOptions");
  auto w = opts.append_child("t:TimeWindow");
  add(w, "t:StartTime", without_z(from_utc));
  add(w, "t:EndTime", without_z(to_utc));
  add(opts, "t:MergedFreeBusyIntervalInMinutes", "30");
  add(opts, "t:RequestedView", "Detailed");
  return s.text();
}

std::string local(const std::string& name) {
  auto c = name.find(':');
  return c == std::string::npos ? name : name.substr(c + 1);
}

pugi::xml_node child(pugi::xml_node n, const char* local_name) {
  for (pugi::xml_node c : n.children()) {
    if (c.type() == pugi::node_element && local(c.name()) == local_name) return c;
  }
  return {};
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

namespace {

// Availability answers in the requested zone (UTC here) without a designator.
std::string utc_text(std::string t) {
  if (!t.empty() && t.back() != 'Z' && t.find('+') == std::string::npos) t += "Z";
  return t;
}

}  // namespace

bool read_answer(const std::string& body, Answer& a) {
  if (body.empty() || !a.doc.load_buffer(body.data(), body.size())) return false;
  pugi::xml_node soap_body = child(a.doc.document_element(), "Body");
  pugi::xml_node fault = child(soap_body, "Fault");
  if (fault) {
    a.message = fault;
    a.text = trim(child(fault, "faultstring").text().get());
    std::string code = trim(child(child(fault, "detail"), "ResponseCode").text().get());
    if (code.empty()) code = local(trim(child(fault, "faultcode").text().get()));
    a.code = code;
  } else {
    pugi::xpath_node m = soap_body.select_node(".//*[@ResponseClass]");
    if (!m) return true;
    a.message = m.node();
    a.code = trim(child(a.message, "ResponseCode").text().get());
    a.text = trim(child(a.message, "MessageText").text().get());
    if (a.code.empty() && std::string(a.message.attribute("ResponseClass").value()) == "Success") {
      a.code = "NoError";
    }
  }
  pugi::xpath_node v =
      a.message.select_node(".//*[local-name()='Value'][@Name='BackOffMilliseconds']");
  if (v) {
    // Digits only, bounded: a hostile or broken answer cannot overflow the pause.
    std::string digits = trim(v.node().text().get());
    if (!digits.empty() && digits.size() <= 9 &&
        digits.find_first_not_of("0123456789") == std::string::npos) {
      a.backoff_ms = std::stoll(digits);
    }
  }
  return true;
}

RemoteRef item_id(pugi::xml_node n) {
  pugi::xpath_node x = n.select_node(".//*[local-name()='ItemId']");
  RemoteRef r;
  if (x) {
    r.id = x.node().attribute("Id").value();
    r.version = x.node().attribute("ChangeKey").value();
  }
  return r;
}

FoundPage read_found_items(pugi::xml_node message, const std::string& key) {
  FoundPage page;
  pugi::xml_node root = child(message, "RootFolder");
  page.valid = static_cast<bool>(root);
  for (pugi::xml_node ci : child(root, "Items").children()) {
    if (ci.type() != pugi::node_element) continue;
    RemoteEvent ev;
    pugi::xml_node id = child(ci, "ItemId");
    ev.ref.id = id.attribute("Id").value();
    ev.ref.version = id.attribute("ChangeKey").value();
    ev.subject = child(ci, "Subject").text().get();
    ev.start = child(ci, "Start").text().get();
    ev.end = child(ci, "End").text().get();
    ev.key = child(child(ci, "ExtendedProperty"), "Value").text().get();
    if (key.empty() || ev.key == key) page.items.push_back(ev);
    ++page.count;
  }
  page.last =
      std::string(root.attribute("IncludesLastItemInRange").value()) != "false" || page.count == 0;
  return page;
}

std::vector<BusyPeriod> read_free_busy(pugi::xml_node message) {
  std::vector<BusyPeriod> out;
  // The FreeBusyView is the sibling of the ResponseMessage inside FreeBusyResponse.
  pugi::xml_node view = child(message.parent(), "FreeBusyView");
  for (pugi::xml_node ev : child(view, "CalendarEventArray").children()) {
    if (local(ev.name()) != "CalendarEvent") continue;
    std::string type = child(ev, "BusyType").text().get();
    if (type == "Free" || type == "NoData") continue;
    BusyPeriod p;
    p.start = utc_text(child(ev, "StartTime").text().get());
    p.end = utc_text(child(ev, "EndTime").text().get());
    p.status = type == "Tentative" ? "tentative" : type == "OOF" ? "oof" : "busy";
    out.push_back(p);
  }
  return out;
}

}  // namespace relais::calendar::ews

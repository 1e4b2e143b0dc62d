// Every EWS request the driver can produce is valid against Microsoft's schema: the driver is
// driven through every operation and variant (impersonation and delegate, create, update with
// SetItemField and DeleteItemField, conflict re-read, delete, search by key and by period,
// availability) against the simulator; the element inside soap:Body of every request it sent is
// validated with `xmllint --schema fixtures/ews/schema/validate.xsd`. Microsoft's own samples
// are checked the same way, so the schema set is known to be usable. Fails when xmllint is
// missing (libxml2-utils, scripts/install-deps.sh).

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <pugixml.hpp>
#include <sstream>

#include "connectors/calendar/calendar.h"
#include "tests/calendar/calendar_test_support.h"
#include "tests/calendar/ews_simulator.h"

namespace relais::testing {
namespace {

const std::string kSchema = std::string(RELAIS_SHARED_DIR) + "/fixtures/ews/schema/validate.xsd";

struct Run {
  int code = -1;
  std::string out;
};

Run run(const std::string& cmd) {
  Run r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = ::pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// The element inside soap:Body, standing alone with the namespaces it uses.
std::string body_element(const std::string& envelope) {
  pugi::xml_document doc;
  if (!doc.load_buffer(envelope.data(), envelope.size())) return "";
  pugi::xml_node body;
  for (auto c : doc.document_element().children()) {
    std::string n = c.name();
    if (n.size() >= 4 && n.substr(n.size() - 4) == "Body") body = c;
  }
  pugi::xml_node op = body.first_child();
  while (op && op.type() != pugi::node_element) op = op.next_sibling();
  pugi::xml_document out;
  auto copy = out.append_copy(op);
  // Carry the envelope's namespace declarations down to the element.
  for (auto a : doc.document_element().attributes()) {
    std::string n = a.name();
    if (n.rfind("xmlns", 0) == 0 && !copy.attribute(a.name())) {
      copy.append_attribute(a.name()) = a.value();
    }
  }
  std::ostringstream s;
  out.save(s, "  ");
  return s.str();
}

// Validates every file in one xmllint run; returns its output on failure.
::testing::AssertionResult valid(const std::vector<std::string>& files) {
  std::string cmd = "xmllint --noout --schema '" + kSchema + "'";
  for (const auto& f : files) cmd += " '" + f + "'";
  Run r = run(cmd);
  if (r.code == 127 || r.out.find("not found") != std::string::npos) {
    return ::testing::AssertionFailure() << "xmllint is missing (install libxml2-utils): " << r.out;
  }
  if (r.code != 0) return ::testing::AssertionFailure() << r.out;
  return ::testing::AssertionSuccess();
}

TEST(EwsSchema, MicrosoftsSamplesPassTheSchema) {
  // The samples the fixtures' SOURCES.md lists as valid (every request and response except the
  // SOAP faults and the response with a namespace typo), normalised for the https soap typo.
  TempDir dir;
  std::vector<std::string> files;
  for (const char* name :
       {"createitem-calendar-request.xml", "createitem-calendar-response.xml",
        "createitem-impersonation-request.xml", "createitem-starttimezone-request.xml",
        "createitem-timezonecontext-request.xml", "updateitem-appointment-request.xml",
        "updateitem-meeting-request.xml", "updateitem-meeting-response.xml",
        "deleteitem-appointment-request.xml", "deleteitem-appointment-response.xml",
        "deleteitem-harddelete-request.xml", "deleteitem-response.xml",
        "deleteitem-error-itemnotfound-response.xml", "cancelcalendaritem-request.xml",
        "cancelcalendaritem-response.xml", "createitem-response-two-messages.xml"}) {
    std::string text = ews_fixture(name);
    for (size_t p; (p = text.find("https://schemas.xmlsoap.org")) != std::string::npos;) {
      text.replace(p, 5, "http");
    }
    std::string el = body_element(text);
    ASSERT_FALSE(el.empty()) << name;
    std::string f = dir.file(name);
    std::ofstream(f) << el;
    files.push_back(f);
  }
  EXPECT_TRUE(valid(files));
}

TEST(EwsSchema, TheValidationCatchesOutOfOrderElements) {
  TempDir dir;
  std::string f = dir.file("bad.xml");
  std::ofstream(f) << "<m:CreateItem xmlns:m=\"" << EwsSimulator::kM << "\" xmlns:t=\""
                   << EwsSimulator::kT
                   << "\" SendMeetingInvitations=\"SendToNone\"><m:Items><t:CalendarItem>"
                      "<t:Start>2019-05-17T08:00:00Z</t:Start><t:Subject>x</t:Subject>"
                      "</t:CalendarItem></m:Items></m:CreateItem>";
  EXPECT_FALSE(valid({f}));
}

TEST(EwsSchema, EveryRequestTheDriverProducesIsValid) {
  const std::string mb = "lea.gosselin@example.org";
  EwsSimulator sim;
  sim.add_mailbox(mb);
  sim.use_basic("svc-relais", "secret");
  for (const std::string access : {"impersonation", "delegate"}) {
    CalendarHarness h("driver: ews\nurl: " + sim.url() +
                      "\nauth: basic\nuser: svc-relais\npassword: secret\naccess: " + access +
                      "\nconflict_resolution: AutoResolve\nserver_version: Exchange2016\n");
    ASSERT_TRUE(h.config_errors().empty());
    auto ev = rdv_event(mb, 1, "2019-05-17T10:00:00+02:00", "2019-05-17T10:30:00+02:00");
    ASSERT_EQ(h.send("rdv.planned", 1, ev).kind, Outcome::Kind::Delivered);
    // No location, no reminder, no categories: DeleteItemField for those.
    auto bare = rdv_event(mb, 1, "2019-05-18T10:00:00+02:00", "2019-05-18T10:30:00+02:00", "");
    bare["event"].erase("reminder_minutes");
    bare["event"].erase("categories");
    ASSERT_EQ(h.send("rdv.moved", 1, bare).kind, Outcome::Kind::Delivered);
    sim.touch(mb, sim.items(mb)[0].id);  // stale ChangeKey: GetItem, then UpdateItem again
    ASSERT_EQ(h.send("rdv.moved", 1, ev).kind, Outcome::Kind::Delivered);
    ASSERT_EQ(h.send("rdv.cancelled", 1, nlohmann::json{{"mailbox", mb}}).kind,
              Outcome::Kind::Delivered);
    ASSERT_EQ(h.send("rdv.cancelled", 2, nlohmann::json{{"mailbox", mb}}).kind,
              Outcome::Kind::Delivered);
    auto driver = calendar::make_driver(h.config(), "agenda", 1, h.clock());
    auto found = driver->find(mb, "", "2019-05-01T00:00:00Z", "2019-06-01T00:00:00Z", 0);
    ASSERT_EQ(found.kind, calendar::Result::Kind::Ok) << found.failure.text;
    auto busy = driver->free_busy(mb, "2019-05-17T00:00:00Z", "2019-05-18T00:00:00Z", 0);
    ASSERT_EQ(busy.kind, calendar::Result::Kind::Ok) << busy.failure.text;
  }
  ASSERT_TRUE(sim.violations().empty()) << sim.violations().front();
  TempDir dir;
  std::vector<std::string> files;
  std::set<std::string> ops;
  for (const auto& r : sim.requests()) {
    ops.insert(r.op);
    std::string f = dir.file(std::to_string(files.size()) + "-" + r.op + ".xml");
    std::ofstream(f) << body_element(r.body);
    files.push_back(f);
  }
  EXPECT_EQ(ops, (std::set<std::string>{"CreateItem", "UpdateItem", "GetItem", "DeleteItem",
                                        "FindItem", "GetUserAvailabilityRequest"}));
  EXPECT_TRUE(valid(files));
}

}  // namespace
}  // namespace relais::testing

// Online booking (connectors/booking/): the slots offered are free (busy times, opening hours, a
// public holiday, the DST change day), a calendar that cannot be read is a clear error, and 50
// concurrent bookings of 10 slots make exactly 10 RDV in CMS76 — against the Graph simulator
// (tests/calendar/) and the CMS76 API simulator (tests/cms76/), real loopback servers.

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "connectors/booking/booking.h"
#include "routing/booking_config.h"
#include "routing/hub_config.h"
#include "tests/calendar/calendar_test_support.h"
#include "tests/calendar/graph_simulator.h"
#include "tests/cms76/cms76_simulator.h"

namespace relais::testing {
namespace {

using booking::BookingService;
using booking::Slot;

const std::string kA = "anne.martin@cd76.fr";
const std::string kB = "bruno.leroy@cd76.fr";

Millis at(const std::string& rfc3339) {
  Millis t = 0;
  EXPECT_TRUE(parse_rfc3339(rfc3339, t)) << rfc3339;
  return t;
}

std::string utc(Millis t) {
  return format_rfc3339(t).substr(0, 19) + "Z";
}

std::vector<std::string> starts_of(const std::vector<Slot>& slots, const std::string& pro) {
  std::vector<std::string> out;
  for (const auto& s : slots) {
    if (s.professional == pro) out.push_back(utc(s.start));
  }
  return out;
}

// The `booking:` section as an operator writes it, validated against its spec.
booking::Settings settings(const std::string& offers, const std::string& extra = "") {
  YAML::Node node =
      YAML::Load("calendar: agenda\ncms76: cms76-api\n" + extra + "offers:\n" + offers);
  std::vector<ConfigError> errors;
  validate(node, {&booking_spec()}, "booking", "test.yaml", errors);
  for (const auto& e : errors) ADD_FAILURE() << e.to_string();
  return booking::read_settings(ConfigView(node, {&booking_spec()}, "booking"));
}

const std::string kWeekdays =
    "  - cms: CMS-BARENTIN\n    motif: accueil-social\n    slot: 30m\n"
    "    days: [mon, tue, wed, thu, fri]\n    hours: ['09:00-12:00']\n"
    "    professionals:\n      - {id: as-anne, mailbox: " +
    kA +
    "}\n"
    "      - {id: as-bruno, mailbox: " +
    kB + "}\n";

class BookingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sim.add_mailbox(kA);
    sim.add_mailbox(kB);
  }
  void TearDown() override {
    EXPECT_TRUE(sim.violations().empty()) << sim.violations().front();
    EXPECT_TRUE(cms76.violations().empty()) << cms76.violations().front();
  }
  // The service reading free/busy through the running calendar connector, as the hub does.
  std::unique_ptr<BookingService> service(booking::Settings s) {
    YAML::Node api = YAML::Load("url: " + cms76.url() + "\ntimeout: 5s\n");
    const ConnectorKind* http = registries.connectors.find("http");  // as the hub declares it
    std::vector<ConfigError> errors;
    validate(api, {http->spec}, "connectors.cms76-api", "test.yaml", errors);
    for (const auto& e : errors) ADD_FAILURE() << e.to_string();
    rdv = booking::make_http_rdv_api(ConfigView(api, {http->spec}, "connectors.cms76-api"),
                                     "cms76-api");
    return std::make_unique<BookingService>(
        std::move(s),
        [this](const std::string& mb, const std::string& from, const std::string& to) {
          return calendar::free_busy(h.connector(), mb, from, to);
        },
        *rdv, h.xrefs(), h.clock());
  }
  void busy(const std::string& mailbox, int rdv_no, const std::string& start,
            const std::string& end) {
    ASSERT_EQ(h.send("rdv.planned", rdv_no, rdv_event(mailbox, rdv_no, start, end)).kind,
              Outcome::Kind::Delivered);
  }

  Registries registries;
  GraphSimulator sim;
  Cms76Simulator cms76;
  CalendarHarness h{"driver: graph\nurl: " + sim.url() + "\ntoken_url: " + sim.token_url() +
                    "\nclient_id: relais-client\nclient_secret: relais-secret\n"};
  std::unique_ptr<booking::RdvApi> rdv;
  const nlohmann::json citizen = {{"person", "P-000123"}, {"phone", "+33600000000"}};
};

// Opening hours minus busy times: a Friday in winter time, the weekend closed, the Monday after
// the DST change at 09:00 Paris = 07:00Z, and the professional busy 10:00-11:00 loses two slots.
TEST_F(BookingTest, OnlyFreeSlotsInOpeningHoursAreOffered) {
  busy(kA, 1, "2026-03-30T10:00:00+02:00", "2026-03-30T11:00:00+02:00");
  auto svc = service(settings(kWeekdays));
  auto a = svc->slots("CMS-BARENTIN", "accueil-social", at("2026-03-27"), at("2026-03-31"));
  ASSERT_FALSE(a.failure) << a.failure->text;
  EXPECT_EQ(starts_of(a.slots, "as-anne"),
            (std::vector<std::string>{"2026-03-27T08:00:00Z", "2026-03-27T08:30:00Z",
                                      "2026-03-27T09:00:00Z", "2026-03-27T09:30:00Z",
                                      "2026-03-27T10:00:00Z", "2026-03-27T10:30:00Z",
                                      "2026-03-30T07:00:00Z", "2026-03-30T07:30:00Z",
                                      "2026-03-30T09:00:00Z", "2026-03-30T09:30:00Z"}));
  EXPECT_EQ(starts_of(a.slots, "as-bruno").size(), 12u);  // not busy: both whole mornings
  for (const auto& s : a.slots) EXPECT_EQ(s.end - s.start, 30 * 60000);
  // Unknown offer, too long a period.
  EXPECT_EQ(svc->slots("CMS-BARENTIN", "autre", at("2026-03-27"), at("2026-03-28")).failure->status,
            404);
  EXPECT_EQ(svc->slots("CMS-BARENTIN", "accueil-social", at("2026-03-01"), at("2026-06-01"))
                .failure->status,
            400);
}

// Easter Monday 2026 (6 April) is closed; the Tuesday is open; a configured closed date too.
TEST_F(BookingTest, PublicHolidaysAndClosedDatesHaveNoSlot) {
  auto svc = service(settings(kWeekdays + "    closed_dates: ['2026-04-08']\n"));
  auto a = svc->slots("CMS-BARENTIN", "accueil-social", at("2026-04-06"), at("2026-04-09"));
  ASSERT_FALSE(a.failure) << a.failure->text;
  std::set<std::string> days;
  for (const auto& s : a.slots) days.insert(utc(s.start).substr(0, 10));
  EXPECT_EQ(days, (std::set<std::string>{"2026-04-07"}));
  EXPECT_EQ(a.slots.size(), 12u);
}

// On the spring-forward Sunday the wall-clock times 02:00-03:00 do not exist: no slot starts or
// ends in the gap, and every slot offered lasts its 30 minutes; likewise in the autumn.
TEST_F(BookingTest, TheDstChangeDayOffersOnlyRealSlots) {
  auto svc = service(
      settings("  - cms: CMS-ROUEN\n    motif: urgence\n    slot: 30m\n    days: [sun]\n"
               "    hours: ['01:00-04:00']\n    professionals:\n      - {id: as-anne, mailbox: " +
               kA + "}\n"));
  auto a = svc->slots("CMS-ROUEN", "urgence", at("2026-03-29"), at("2026-03-30"));
  ASSERT_FALSE(a.failure) << a.failure->text;
  // 01:00+01 = 00:00Z; 01:30 would end at 02:00 (skipped); 03:00+02 = 01:00Z; 03:30+02.
  EXPECT_EQ(starts_of(a.slots, "as-anne"),
            (std::vector<std::string>{"2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z",
                                      "2026-03-29T01:30:00Z"}));
  // On the fall-back Sunday 02:00-03:00 happens twice: the first 02:00 is offered, the slot
  // 02:30-03:00 (90 minutes long that night) is not.
  auto b = svc->slots("CMS-ROUEN", "urgence", at("2026-10-24T22:00:00Z"), at("2026-10-26"));
  ASSERT_FALSE(b.failure) << b.failure->text;
  EXPECT_EQ(starts_of(b.slots, "as-anne"),
            (std::vector<std::string>{"2026-10-24T23:00:00Z", "2026-10-24T23:30:00Z",
                                      "2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z",
                                      "2026-10-25T02:30:00Z"}));
}

// A calendar that cannot be read: 503 naming the professional, and no slot at all (never one
// that might not be free).
TEST_F(BookingTest, ACalendarThatCannotBeReadIsAClearError) {
  const std::string offers =
      "  - cms: CMS-BARENTIN\n    motif: accueil-social\n    professionals:\n"
      "      - {id: as-anne, mailbox: " +
      kA + "}\n      - {id: as-claire, mailbox: claire.dupont@cd76.fr}\n";
  auto svc = service(settings(offers));  // claire's mailbox is unknown to the tenant
  auto a = svc->slots("CMS-BARENTIN", "accueil-social", at("2026-03-30"), at("2026-03-31"));
  ASSERT_TRUE(a.failure);
  EXPECT_EQ(a.failure->status, 503);
  EXPECT_NE(a.failure->text.find("as-claire"), std::string::npos) << a.failure->text;
  EXPECT_NE(a.failure->text.find("claire.dupont@cd76.fr"), std::string::npos);
  EXPECT_TRUE(a.slots.empty());
  // Outlook down for a moment (503): the same clear error, and no booking either.
  sim.inject(GraphSimulator::Fault::Http503, 2);
  auto b = service(settings(kWeekdays));
  auto c = b->slots("CMS-BARENTIN", "accueil-social", at("2026-03-30"), at("2026-03-31"));
  ASSERT_TRUE(c.failure);
  EXPECT_EQ(c.failure->status, 503);
  sim.inject(GraphSimulator::Fault::Http503);  // still down when the citizen books
  auto d =
      b->book("CMS-BARENTIN", "accueil-social", "as-anne", at("2026-03-30T07:00:00Z"), citizen);
  ASSERT_TRUE(d.failure);
  EXPECT_EQ(d.failure->status, 503);
  EXPECT_TRUE(cms76.rdvs().empty());
}

// Slot lists reuse a professional's free/busy for cache_ttl; a booking drops it, and re-reads
// the calendar itself (not the cache): a slot busy since the list was made is refused.
TEST_F(BookingTest, TheCacheServesListsButABookingReadsTheCalendarAgain) {
  auto svc = service(settings(kWeekdays, "cache_ttl: 60s\n"));
  const Millis from = at("2026-03-30"), to = at("2026-03-31");
  ASSERT_FALSE(svc->slots("CMS-BARENTIN", "accueil-social", from, to).failure);
  const int64_t reads = svc->reads();
  EXPECT_EQ(reads, 2);
  ASSERT_FALSE(svc->slots("CMS-BARENTIN", "accueil-social", from, to).failure);
  EXPECT_EQ(svc->reads(), reads);  // warm
  busy(kA, 2, "2026-03-30T09:00:00+02:00", "2026-03-30T09:30:00+02:00");
  auto a =
      svc->book("CMS-BARENTIN", "accueil-social", "as-anne", at("2026-03-30T07:00:00Z"), citizen);
  ASSERT_TRUE(a.failure);
  EXPECT_EQ(a.failure->status, 409);
  EXPECT_EQ(a.failure->error, "créneau plus disponible");
  EXPECT_EQ(starts_of(a.fresh, "as-anne").front(), "2026-03-30T07:30:00Z");  // fresh slots
  EXPECT_TRUE(cms76.rdvs().empty());
  h.clock().advance(61000);
  const int64_t before = svc->reads();
  ASSERT_FALSE(svc->slots("CMS-BARENTIN", "accueil-social", from, to).failure);
  EXPECT_EQ(svc->reads(), before + 2);  // expired
}

// 50 citizens book 10 slots at once (5 each side of two professionals): exactly 10 RDV in
// CMS76, one per slot; the others are told "créneau plus disponible"; the booked slots are no
// longer offered, the RDV carries the citizen as given.
TEST_F(BookingTest, FiftyConcurrentBookingsOfTenSlotsMakeTenRdv) {
  auto svc = service(settings(kWeekdays));
  auto list = svc->slots("CMS-BARENTIN", "accueil-social", at("2026-03-30"), at("2026-03-31"));
  ASSERT_FALSE(list.failure);
  ASSERT_EQ(list.slots.size(), 12u);
  std::vector<Slot> ten(list.slots.begin(), list.slots.begin() + 10);
  std::atomic<int> won{0}, lost{0}, other{0};
  std::vector<std::thread> citizens;
  for (int i = 0; i < 50; ++i) {
    citizens.emplace_back([&, i] {
      const Slot& s = ten[static_cast<size_t>(i) % ten.size()];
      auto a = svc->book("CMS-BARENTIN", "accueil-social", s.professional, s.start, citizen);
      if (!a.failure) {
        ++won;
      } else if (a.failure->status == 409) {
        ++lost;
      } else {
        ++other;
      }
    });
  }
  for (auto& t : citizens) t.join();
  EXPECT_EQ(won.load(), 10);
  EXPECT_EQ(lost.load(), 40);
  EXPECT_EQ(other.load(), 0);
  auto rdvs = cms76.rdvs();
  ASSERT_EQ(rdvs.size(), 10u);
  std::set<std::string> slots;
  for (const auto& r : rdvs) {
    slots.insert(r.professional + " " + r.start);
    EXPECT_EQ(r.citizen, citizen);
    EXPECT_EQ(r.cms, "CMS-BARENTIN");
  }
  EXPECT_EQ(slots.size(), 10u);
  auto after = svc->slots("CMS-BARENTIN", "accueil-social", at("2026-03-30"), at("2026-03-31"));
  ASSERT_FALSE(after.failure);
  EXPECT_EQ(after.slots, std::vector<Slot>(list.slots.begin() + 10, list.slots.end()));
  // The claims are durable: a service started again on the same store refuses them too.
  auto again = service(settings(kWeekdays));
  auto b =
      again->book("CMS-BARENTIN", "accueil-social", ten[0].professional, ten[0].start, citizen);
  ASSERT_TRUE(b.failure);
  EXPECT_EQ(b.failure->status, 409);
  EXPECT_EQ(cms76.rdvs().size(), 10u);
}

// CMS76 itself: a slow answer within the timeout is waited for; a 503 books nothing and frees
// the slot; a slot CMS76 already has is 409; a lost answer keeps the slot reserved (the RDV may
// exist); something that is not a slot is refused before anything is sent.
TEST_F(BookingTest, Cms76AnswersDecideTheBooking) {
  auto svc = service(settings(kWeekdays));
  const Millis s0 = at("2026-03-30T07:00:00Z"), s1 = at("2026-03-30T07:30:00Z"),
               s2 = at("2026-03-30T08:00:00Z");
  cms76.slow(300);
  auto a = svc->book("CMS-BARENTIN", "accueil-social", "as-anne", s0, citizen);
  ASSERT_FALSE(a.failure) << a.failure->text;
  EXPECT_EQ(a.rdv_id, "RDV-1");
  cms76.slow(0);
  cms76.faulty(1);
  auto b = svc->book("CMS-BARENTIN", "accueil-social", "as-anne", s1, citizen);
  ASSERT_TRUE(b.failure);
  EXPECT_EQ(b.failure->status, 503);
  auto b2 = svc->book("CMS-BARENTIN", "accueil-social", "as-anne", s1, citizen);
  ASSERT_FALSE(b2.failure) << b2.failure->text;  // the slot was free again
  cms76.take("as-bruno", "2026-03-30T07:00:00Z");
  auto c = svc->book("CMS-BARENTIN", "accueil-social", "as-bruno", s0, citizen);
  ASSERT_TRUE(c.failure);
  EXPECT_EQ(c.failure->status, 409);
  cms76.lose(1);
  auto d = svc->book("CMS-BARENTIN", "accueil-social", "as-anne", s2, citizen);
  ASSERT_TRUE(d.failure);
  EXPECT_EQ(d.failure->status, 503);
  EXPECT_NE(d.failure->text.find("may have been created"), std::string::npos) << d.failure->text;
  auto e = svc->book("CMS-BARENTIN", "accueil-social", "as-bruno", s2, citizen);
  EXPECT_FALSE(e.failure);  // another professional's slot at the same time
  auto f = svc->slots("CMS-BARENTIN", "accueil-social", s0, s2 + 1);
  ASSERT_FALSE(f.failure);
  // Booked, reserved or taken in CMS76: only as-bruno at 07:30 is left.
  ASSERT_EQ(f.slots.size(), 1u);
  EXPECT_EQ(f.slots[0], (Slot{"as-bruno", s1, s1 + 30 * 60000}));
  const int sent = cms76.requests();
  auto g =
      svc->book("CMS-BARENTIN", "accueil-social", "as-anne", at("2026-03-30T07:10:00Z"), citizen);
  ASSERT_TRUE(g.failure);
  EXPECT_EQ(g.failure->status, 400);
  auto k =
      svc->book("CMS-BARENTIN", "accueil-social", "as-anne", at("2026-04-06T07:00:00Z"), citizen);
  ASSERT_TRUE(k.failure);
  EXPECT_EQ(k.failure->status, 400);  // Easter Monday
  EXPECT_EQ(cms76.requests(), sent);
  EXPECT_EQ(cms76.rdvs().size(), 4u);
}

// check-config names a booking section whose destinations are missing or of another kind.
// The `booking` destination (issue 13, gap 1), in process: a cancel found by the RDV's id
// releases the claim and the running service offers the slot again; without rdv_id a cancel
// names the slot (mailbox, RFC 3339 start); a move without rdv_id is refused at start-up.
class ClaimReleaseTest : public BookingTest {
 protected:
  std::unique_ptr<Connector> release(const std::string& yaml) {
    const ConnectorKind* kind = registries.connectors.find("booking");
    EXPECT_NE(kind, nullptr);
    node = YAML::Load(yaml);
    std::vector<ConfigError> errors;
    validate(node, {kind->spec}, "connectors.claims", "test.yaml", errors);
    for (const auto& e : errors) ADD_FAILURE() << e.to_string();
    ConnectorContext ctx;
    ctx.name = "claims";
    ctx.config = ConfigView(node, {kind->spec}, "connectors.claims");
    ctx.xrefs = &h.xrefs();
    ctx.clock = &h.clock();
    return kind->create(ctx);
  }
  Outcome deliver(Connector& c, const std::string& type, const nlohmann::json& body) {
    Message m;
    m.id = "m-" + std::to_string(++n);
    m.source = "cms76";
    m.type = type;
    DeliveryRequest r;
    r.message = &m;
    r.body = &body;
    r.mapped = &body;
    return c.deliver(r);
  }
  YAML::Node node;
  int n = 0;
};

TEST_F(ClaimReleaseTest, ACancelReleasesTheClaimOfItsRdvOnly) {
  auto svc = service(settings(kWeekdays));
  const Millis from = at("2027-01-04T00:00:00Z"), to = at("2027-01-05T00:00:00Z");
  auto booked =
      svc->book("CMS-BARENTIN", "accueil-social", "as-anne", at("2027-01-04T08:00:00Z"), citizen);
  ASSERT_FALSE(booked.failure) << booked.failure->text;
  ASSERT_EQ(svc->slots("CMS-BARENTIN", "accueil-social", from, to).slots.size(), 11u);
  auto by_id = release("mailbox: $.rdv.tms.email\n");
  ASSERT_TRUE(booking::attach_release(*by_id, svc.get()));
  // Not a cancel nor a move: skipped. Another RDV: nothing released.
  EXPECT_EQ(deliver(*by_id, "rdv.planned", {{"rdv", {{"id", booked.rdv_id}}}}).kind,
            Outcome::Kind::Skip);
  EXPECT_EQ(deliver(*by_id, "rdv.cancelled", {{"rdv", {{"id", "RDV-404"}}}}).kind,
            Outcome::Kind::Delivered);
  EXPECT_EQ(svc->slots("CMS-BARENTIN", "accueil-social", from, to).slots.size(), 11u);
  EXPECT_EQ(deliver(*by_id, "rdv.cancelled", {{"rdv", {}}}).kind, Outcome::Kind::Reject);
  // Its RDV: released, in the store and in the running service.
  Outcome o = deliver(*by_id, "rdv.cancelled", {{"rdv", {{"id", booked.rdv_id}}}});
  EXPECT_EQ(o.kind, Outcome::Kind::Delivered);
  EXPECT_NE(o.text.find("1 créneau"), std::string::npos) << o.text;
  EXPECT_EQ(svc->slots("CMS-BARENTIN", "accueil-social", from, to).slots.size(), 12u);
  EXPECT_FALSE(h.xrefs().get(booking::kClaimDestination,
                             booking::claim_key(kA, at("2027-01-04T08:00:00Z"))));
  booking::detach_release(*by_id);

  // By slot: no rdv_id, the mailbox and an RFC 3339 start name the claim.
  auto again =
      svc->book("CMS-BARENTIN", "accueil-social", "as-bruno", at("2027-01-04T09:00:00Z"), citizen);
  ASSERT_FALSE(again.failure) << again.failure->text;
  auto by_slot = release("rdv_id: ''\nmailbox: $.m\nstart: $.s\n");
  // Attaching reads the claims from the store again, then the service hears the releases.
  ASSERT_TRUE(booking::attach_release(*by_slot, svc.get()));
  EXPECT_EQ(svc->slots("CMS-BARENTIN", "accueil-social", from, to).slots.size(), 11u);
  EXPECT_EQ(
      deliver(*by_slot, "rdv.cancelled", {{"m", kB}, {"s", "2027-01-04T10:00:00+01:00"}}).kind,
      Outcome::Kind::Delivered);
  EXPECT_EQ(svc->slots("CMS-BARENTIN", "accueil-social", from, to).slots.size(), 12u);
  booking::detach_release(*by_slot);
  // A move cannot be found without the RDV's id.
  EXPECT_THROW(release("rdv_id: ''\nmailbox: $.m\nstart: $.s\nmove_types: [rdv.moved]\n"),
               std::runtime_error);
}

TEST(BookingConfig, TheDestinationsItNamesAreChecked) {
  Registries registries;
  const std::string yaml =
      "store: {path: /nonexistent/s.db}\nsources:\n  cms76: {type: $.event, correlation: $.id}\n"
      "connectors:\n  sink: {connector: http, url: 'http://127.0.0.1:9/'}\n"
      "booking:\n  calendar: sink\n  cms76: nope\n  offers:\n    - cms: A\n      motif: b\n"
      "      professionals: [{id: x, mailbox: x@cd76.fr}]\n";
  HubConfig out;
  std::vector<ConfigError> errors;
  EXPECT_FALSE(load_hub_config_text(yaml, "relais.yaml", "/tmp", registries.connectors, out, errors,
                                    &registries.enrichers, &registries.pollers));
  std::vector<std::string> texts;
  for (const auto& e : errors) texts.push_back(e.to_string());
  ASSERT_EQ(texts.size(), 2u) << ::testing::PrintToString(texts);
  EXPECT_NE(texts[0].find("booking.calendar: 'sink' is not a configured calendar destination"),
            std::string::npos)
      << texts[0];
  EXPECT_NE(texts[1].find("booking.cms76: 'nope' is not a configured http destination"),
            std::string::npos)
      << texts[1];
  // What the spec cannot check is refused when the service is built (relais serve).
  YAML::Node bad = YAML::Load(
      "calendar: agenda\ncms76: api\noffers:\n  - {cms: A, motif: b, hours: ['9h-12h'], "
      "professionals: [{id: x, mailbox: x@cd76.fr}]}\n");
  EXPECT_THROW(booking::read_settings(ConfigView(bad, {&booking_spec()}, "booking")),
               std::invalid_argument);
}

}  // namespace
}  // namespace relais::testing

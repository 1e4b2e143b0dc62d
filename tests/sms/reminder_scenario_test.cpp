// 500 appointments over two days, with moves and cancellations, through the hub in-process on a
// controllable clock (ManualClock), the shipped CMS76 SMS mappings and the SMS destination with
// the generic HTTP driver towards a recording gateway. The clock jumps from one due time to the
// next. Checked: no reminder for a cancelled RDV, none at an old time, nothing outside the
// sending window (08:00-20:00 Paris, no Sunday), exactly one reminder for each kept RDV, sent
// the day before at the RDV's time; a replaced reminder names the newer message.

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "core/clock.h"
#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais {
namespace {

using json = nlohmann::json;
using testing::TempDir;
using testing::wait_until;

constexpr Millis kHour = 3600 * 1000LL;
constexpr Millis kMinute = 60 * 1000LL;

// Paris is UTC+1 from November to March: local wall clock → UTC ms.
Millis paris(int y, int mo, int d, int h, int mi) {
  std::tm t{};
  t.tm_year = y - 1900;
  t.tm_mon = mo - 1;
  t.tm_mday = d;
  t.tm_hour = h;
  t.tm_min = mi;
  return static_cast<Millis>(timegm(&t)) * 1000 - kHour;
}

struct Rdv {
  int id = 0;
  std::string phone;  // national, distinct per RDV
  int day = 1;        // 1 = Tuesday 1 December 2026, 2 = Wednesday 2 December
  int minute = 0;     // of the day (local)
  bool cancelled = false;
  int versions = 0;  // events sent
  Millis start() const { return paris(2026, 12, day, minute / 60, minute % 60); }
  std::string date() const { return day == 1 ? "2026-12-01" : "2026-12-02"; }
  std::string heure() const {
    char b[32];
    std::snprintf(b, sizeof b, "%02d:%02d", minute / 60, minute % 60);
    return b;
  }
  std::string spoken() const {  // as the SMS says it
    char b[32];
    std::snprintf(b, sizeof b, "à %02dh%02d", minute / 60, minute % 60);
    return std::string(day == 1 ? "mardi 1 décembre " : "mercredi 2 décembre ") + b;
  }
};

struct Event {
  Millis at = 0;
  std::string type;
  int rdv = 0;
  int day = 0, minute = 0;  // moved to (rdv.moved)
};

struct Received {
  Millis at = 0;
  std::string to, text;
};

class ReminderScenario : public ::testing::Test {
 protected:
  ManualClock clock_{paris(2026, 11, 29, 17, 0)};  // Sunday evening
};

TEST_F(ReminderScenario, FiveHundredRdvOverTwoDaysWithMovesAndCancellations) {
  TempDir dir("relais-sms-scenario-");
  std::mutex mu;
  std::vector<Received> received;
  tools::HttpSink gateway;
  gateway.set_responder([&](const tools::SinkRequest& r) {
    json j = json::parse(r.body, nullptr, false);
    std::lock_guard<std::mutex> lock(mu);
    received.push_back({clock_.now_ms(), j.value("to", ""), j.value("text", "")});
    tools::SinkResponse out;
    out.status = 201;
    out.body = json{{"id", "gw-" + std::to_string(received.size())}}.dump();
    return out;
  });
  std::string src = RELAIS_SOURCE_DIR;
  std::string sms = "    connector: sms\n    driver: http\n    url: http://127.0.0.1:" +
                    std::to_string(gateway.port()) +
                    "/sms\n"
                    "    http_body: '{\"to\":\"{{to}}\",\"text\":\"{{text}}\"}'\n"
                    "    http_ref_path: $.id\n"
                    "    rate_limit: 0\n"
                    "    concurrency: 4\n"
                    "    retry: {initial: 1s, max: 10s, max_attempts: 10, max_age: 30d}\n";
  std::string yaml =
      "store:\n  path: " + dir.path() +
      "/relais.db\n  synchronous: normal\n"
      "sources:\n  cms76:\n    type: $.event\n    correlation: [\"rdv:{$.rdv.id}\"]\n"
      "    idempotency: $.id\n"
      "mappings:\n  directory: " +
      src + "/config/mappings\n  tables: " + src +
      "/config/tables\n"
      "connectors:\n  sms:\n" +
      sms + "  sms-rappels:\n" + sms +
      "    replace_pending: true\n"
      "routes:\n"
      "  - {name: confirmation, source: cms76, type: rdv.planned, to: [{destination: sms, "
      "mapping: rdv-sms-confirmation}]}\n"
      "  - {name: deplacement, source: cms76, type: rdv.moved, to: [{destination: sms, "
      "mapping: rdv-sms-moved}]}\n"
      "  - {name: annulation, source: cms76, type: rdv.cancelled, to: [{destination: sms, "
      "mapping: rdv-sms-cancelled}]}\n"
      "  - {name: rappel, source: cms76, type: \"rdv.*\", to: [{destination: sms-rappels, "
      "mapping: rdv-sms-reminder}]}\n";
  Registries registries;
  HubConfig cfg;
  std::vector<ConfigError> errors;
  ASSERT_TRUE(load_hub_config_text(yaml, "scenario.yaml", dir.path(), registries.connectors, cfg,
                                   errors, &registries.enrichers))
      << (errors.empty() ? "" : errors[0].to_string());
  Runtime rt = make_runtime(cfg, registries, clock_);
  Hub& hub = *rt.hub;
  hub.start();

  // 500 RDV on Tuesday and Wednesday, 08:30-17:30 every 30 minutes.
  std::vector<Rdv> rdvs(500);
  for (int i = 0; i < 500; ++i) {
    rdvs[i].id = 10000 + i;
    char phone[16];
    std::snprintf(phone, sizeof phone, "06%08d", 12000000 + i);
    rdvs[i].phone = phone;
    rdvs[i].day = 1 + i % 2;
    rdvs[i].minute = 8 * 60 + 30 + 30 * ((i / 2) % 19);
  }
  // The events: every RDV planned on Sunday evening (outside the window); moves and
  // cancellations on Monday 07:00-07:45 (before the first reminder), then a second wave at
  // 13:00 for Wednesday RDV (their reminders are due on Tuesday).
  std::vector<Event> events;
  std::mt19937 rng(76);
  for (int i = 0; i < 500; ++i) {
    events.push_back({paris(2026, 11, 29, 18, 0) + i * 5000, "rdv.planned", i, 0, 0});
  }
  std::vector<int> order(500);
  for (int i = 0; i < 500; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  for (int k = 0; k < 120; ++k) {  // moved
    int i = order[k];
    events.push_back({paris(2026, 11, 30, 7, 0) + k * 10000, "rdv.moved", i, 1 + (k % 2),
                      9 * 60 + 30 * (k % 16)});
  }
  for (int k = 120; k < 180; ++k) {  // cancelled (40 of them after a move)
    events.push_back({paris(2026, 11, 30, 7, 30) + k * 5000, "rdv.cancelled", order[k - 40], 0, 0});
  }
  int second_wave = 0;
  for (int k = 180; k < 500 && second_wave < 60; ++k) {  // Wednesday RDV, moved or cancelled again
    int i = order[k];
    if (rdvs[i].day != 2) continue;
    bool cancel = second_wave % 3 == 0;
    events.push_back({paris(2026, 11, 30, 13, 0) + second_wave * 5000,
                      cancel ? "rdv.cancelled" : "rdv.moved", i, 2,
                      14 * 60 + 30 * (second_wave % 6)});
    ++second_wave;
  }
  std::stable_sort(events.begin(), events.end(),
                   [](const Event& a, const Event& b) { return a.at < b.at; });

  auto post = [&](const Event& e) {
    Rdv& r = rdvs[e.rdv];
    json body = {{"event", e.type},
                 {"id", "evt-" + std::to_string(r.id) + "-" + std::to_string(++r.versions)},
                 {"rdv",
                  {{"id", r.id},
                   {"demandeur", {{"telephone_portable", r.phone}, {"consent_sms", true}}},
                   {"emplacement", "CMS"},
                   {"cms",
                    {{"nom", "Barentin"},
                     {"adresse", "Place de la Libération, 76360 Barentin"},
                     {"telephone", "02.35.00.00.00"}}}}}};
    if (e.type == "rdv.moved") {
      r.day = e.day;
      r.minute = e.minute;
    }
    if (e.type == "rdv.cancelled") {
      r.cancelled = true;
    } else {
      body["rdv"]["date"] = r.date();
      body["rdv"]["heure"] = r.heure();
    }
    AcceptRequest a;
    a.source = "cms76";
    a.body = body.dump();
    AcceptResponse resp = hub.accept(a);
    ASSERT_EQ(resp.status, 202) << resp.detail;
  };

  // The earliest time something is due: the head of each (destination, key) queue.
  auto next_due = [&](Millis now, bool& settled) {
    hub.store().flush();
    std::map<std::pair<std::string, std::string>, std::pair<int64_t, Millis>> heads;
    for (const auto& q : hub.store().load_active()) {
      auto k = std::make_pair(q.destination, q.key.empty() ? std::to_string(q.id) : q.key);
      auto it = heads.find(k);
      if (it == heads.end() || q.id < it->second.first) heads[k] = {q.id, q.due};
    }
    Millis next = 0;
    settled = true;
    for (const auto& [k, h] : heads) {
      if (h.second <= now) settled = false;
      if (h.second > now && (next == 0 || h.second < next)) next = h.second;
    }
    for (const auto& s : hub.dispatcher().stats()) settled = settled && s.in_flight == 0;
    return next;
  };

  size_t ev = 0;
  Millis end = paris(2026, 12, 3, 0, 0);
  int steps = 0;
  while (clock_.now_ms() < end) {
    Millis now = clock_.now_ms();
    while (ev < events.size() && events[ev].at <= now) post(events[ev++]);
    bool settled = false;
    ASSERT_TRUE(wait_until(
        [&] {
          next_due(now, settled);
          return settled;
        },
        std::chrono::seconds(60)))
        << "the hub did not settle at step " << steps;
    Millis next = next_due(now, settled);
    Millis next_event = ev < events.size() ? events[ev].at : end;
    if (next == 0 || next > next_event) next = next_event;
    clock_.set(std::max(next, now + 1));
    ++steps;
  }

  // Checks.
  std::vector<Received> got;
  {
    std::lock_guard<std::mutex> lock(mu);
    got = received;
  }
  std::map<std::string, const Rdv*> by_phone;
  for (const auto& r : rdvs) by_phone["+33" + r.phone.substr(1)] = &r;
  std::map<std::string, std::vector<Received>> reminders;
  int confirmations = 0;
  for (const auto& m : got) {
    // Nothing outside the window: 08:00-20:00 local, not on Sunday.
    Millis local = m.at + kHour;
    int64_t days = local / (24 * kHour);
    int weekday = static_cast<int>((days + 4) % 7);  // 1970-01-01 was a Thursday
    int minute = static_cast<int>((local % (24 * kHour)) / kMinute);
    EXPECT_NE(weekday, 0) << m.text;
    EXPECT_GE(minute, 8 * 60) << format_rfc3339(m.at);
    EXPECT_LT(minute, 20 * 60) << format_rfc3339(m.at);
    ASSERT_TRUE(by_phone.count(m.to)) << m.to;
    if (m.text.rfind("Département 76 : rappel", 0) == 0) reminders[m.to].push_back(m);
    if (m.text.find("est fixé le") != std::string::npos) ++confirmations;
  }
  EXPECT_EQ(confirmations, 500);
  int kept = 0;
  for (const auto& r : rdvs) {
    std::string to = "+33" + r.phone.substr(1);
    const auto& list = reminders[to];
    if (r.cancelled) {
      EXPECT_TRUE(list.empty()) << "reminder for cancelled RDV " << r.id;
      continue;
    }
    ++kept;
    ASSERT_EQ(list.size(), 1u) << "RDV " << r.id << " got " << list.size() << " reminders";
    EXPECT_NE(list[0].text.find(r.spoken()), std::string::npos)
        << "RDV " << r.id << " (" << r.spoken() << "): " << list[0].text;
    EXPECT_EQ(list[0].at, r.start() - 24 * kHour) << "RDV " << r.id;
    EXPECT_LT(list[0].at, r.start());
  }
  EXPECT_GT(kept, 350);
  EXPECT_LT(kept, 480);

  // A replaced reminder names the newer message.
  const Rdv& moved = rdvs[order[0]];
  MessageFilter f;
  f.correlation = "rdv:" + std::to_string(moved.id);
  f.limit = 10;
  auto page = hub.store().list(f);
  int replaced = 0;
  for (const auto& rec : page.items) {
    for (const auto& d : rec.deliveries) {
      if (d.destination == "sms-rappels" && d.last_class == "replaced") {
        ++replaced;
        EXPECT_NE(d.last_text.find("remplacé par le message"), std::string::npos) << d.last_text;
        EXPECT_EQ(d.state, DeliveryState::Skipped);
      }
    }
  }
  EXPECT_GE(replaced, 1);
  std::cout << "scenario: " << got.size() << " SMS, " << kept << " kept RDV, " << steps
            << " clock steps\n";
  hub.stop();
}

}  // namespace
}  // namespace relais

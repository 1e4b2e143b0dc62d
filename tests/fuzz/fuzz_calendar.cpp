// Fuzz target: what the calendar destination reads from its partners — an Exchange (EWS) SOAP
// answer (response code, fault, back-off, item ids, a FindItem page, a free/busy view), a
// Microsoft Graph answer (events page, schedule, error, the event compared with what was sent)
// and an OAuth2 token endpoint's answer. None may crash, throw or trip a sanitizer.

#include <nlohmann/json.hpp>

#include "connectors/calendar/calendar.h"
#include "connectors/calendar/ews_xml.h"
#include "connectors/calendar/graph_json.h"
#include "tests/fuzz/fuzz_targets.h"

namespace cal = relais::calendar;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);

  cal::ews::Answer a;
  if (cal::ews::read_answer(text, a)) {
    if (a.backoff_ms < -1) __builtin_trap();
    (void)cal::ews::item_id(a.message);
    cal::ews::FoundPage page = cal::ews::read_found_items(a.message, "");
    if (static_cast<int>(page.items.size()) > page.count) __builtin_trap();
    (void)cal::ews::read_found_items(a.message, "cms76:rdv:1");
    (void)cal::ews::read_free_busy(a.message);
  }

  nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  if (!doc.is_discarded()) {
    const std::string property = "String {f3a6c1d0-76cd-4c5e-9b1a-2c0d7e6f7601} Name RelaisKey";
    cal::graph::EventsPage events = cal::graph::read_events(doc, property, "");
    for (const auto& e : events.items) {
      if (e.key.empty()) __builtin_trap();
    }
    (void)cal::graph::read_events(doc, property, "cms76:rdv:1");
    cal::graph::Schedule s = cal::graph::read_schedule(doc);
    if (s.failed && (s.error.empty() || !s.busy.empty())) __builtin_trap();
    (void)cal::graph::read_error(doc);
    (void)cal::graph::ref_of(doc);
    cal::Event e;
    e.subject = "RDV";
    e.start = "2026-12-07T09:00:00+01:00";
    e.end = "2026-12-07T09:30:00+01:00";
    e.reminder_minutes = 15;
    (void)cal::graph::differing_fields(doc, e);
  }

  long status = size > 0 ? 200 + static_cast<long>(data[0] % 4) * 100 : 200;
  relais::Millis refresh_at = 0;
  const relais::Millis now = 1'796'000'000'000;
  cal::TokenResult t = cal::read_token_answer(status, text, now, refresh_at);
  if (t.ok && (refresh_at < now || refresh_at > now + 86'400'000)) __builtin_trap();
  if (!t.ok && t.failure.text.empty()) __builtin_trap();
  return 0;
}

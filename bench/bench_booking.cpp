// Online booking's slot lists with a warm cache (issue 13 floor: p99 <= 300 ms): 200
// professionals' Outlook calendars (the Graph simulator of tests/calendar/, loopback, 3 busy
// periods each), one offer of all 200, slot lists of one week asked by `clients` threads for
// `seconds`; the cache is warmed once first (one getSchedule per professional), as the
// portal's steady traffic keeps it. Measures BookingService::slots (free/busy cache, opening
// hours, claims, sorting) without the HTTP layer. Prints one line: answers/s p50 p99 max.
// Usage: bench_booking [clients=8] [seconds=10] [professionals=200]

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include <unistd.h>

#include "connectors/booking/booking.h"
#include "connectors/registry.h"
#include "core/store.h"
#include "routing/booking_config.h"
#include "store/sqlite/sqlite_backend.h"
#include "tests/calendar/graph_simulator.h"

using namespace relais;

namespace {

class NoRdv final : public booking::RdvApi {
 public:
  booking::RdvReply create(const booking::RdvRequest&) override { return {}; }
};

}  // namespace

int main(int argc, char** argv) {
  const int clients = argc > 1 ? std::atoi(argv[1]) : 8;
  const int seconds = argc > 2 ? std::atoi(argv[2]) : 10;
  const int pros = argc > 3 ? std::atoi(argv[3]) : 200;
  const std::string dir = std::filesystem::temp_directory_path() /
                          ("relais-bench-booking-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  testing::GraphSimulator sim;
  std::string offer =
      "  - cms: CMS-BARENTIN\n    motif: accueil-social\n    slot: 30m\n    professionals:\n";
  for (int i = 0; i < pros; ++i) {
    const std::string mb = "pro" + std::to_string(i) + "@cd76.fr";
    sim.add_mailbox(mb);
    for (int d = 0; d < 3; ++d) {
      testing::GraphEvent e;
      const std::string day = "2027-03-1" + std::to_string(5 + d);
      e.body = {{"showAs", "busy"},
                {"start", {{"dateTime", day + "T09:00:00.0000000"}, {"timeZone", "UTC"}}},
                {"end", {{"dateTime", day + "T10:00:00.0000000"}, {"timeZone", "UTC"}}}};
      sim.put(mb, e);
    }
    offer += "      - {id: p" + std::to_string(i) + ", mailbox: " + mb + "}\n";
  }
  StoreOptions so;
  so.path = dir + "/relais.db";
  auto store = open_sqlite_store(so);
  const Clock& clock = SystemClock::instance();
  auto xrefs = open_sqlite_xref_store(so.path, clock);
  Registries registries;
  const ConnectorKind* kind = registries.connectors.find("calendar");
  ConnectorContext ctx;
  ctx.name = "agenda";
  ctx.config =
      ConfigView(YAML::Load("driver: graph\nurl: " + sim.url() + "\ntoken_url: " + sim.token_url() +
                            "\nclient_id: relais-client\nclient_secret: relais-secret\n"),
                 {kind->spec}, "connectors.agenda");
  ctx.concurrency = 8;
  ctx.clock = &clock;
  ctx.xrefs = xrefs.get();
  auto calendar = kind->create(ctx);
  YAML::Node b = YAML::Load(
      "calendar: agenda\ncms76: cms76-api\ncache_ttl: 1h\nparallel: 8\n"
      "offers:\n" +
      offer);
  NoRdv rdv;
  booking::BookingService service(
      booking::read_settings(ConfigView(b, {&booking_spec()}, "booking")),
      [&](const std::string& mb, const std::string& f, const std::string& t) {
        return calendar::free_busy(*calendar, mb, f, t);
      },
      rdv, *xrefs, clock);
  Millis from = 0, to = 0;
  parse_rfc3339("2027-03-15", from);
  parse_rfc3339("2027-03-22", to);
  auto warm = service.slots("CMS-BARENTIN", "accueil-social", from, to);
  if (warm.failure) {
    std::fprintf(stderr, "warm-up failed: %s\n", warm.failure->text.c_str());
    return 1;
  }
  std::atomic<bool> stop{false};
  std::vector<std::vector<double>> lat(static_cast<size_t>(clients));
  std::vector<std::thread> threads;
  size_t slots = warm.slots.size();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      while (!stop) {
        auto t0 = std::chrono::steady_clock::now();
        auto a = service.slots("CMS-BARENTIN", "accueil-social", from, to);
        auto t1 = std::chrono::steady_clock::now();
        if (a.failure || a.slots.size() != slots) std::abort();
        lat[static_cast<size_t>(c)].push_back(
            std::chrono::duration<double, std::milli>(t1 - t0).count());
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));  // the measured period
  stop = true;
  for (auto& t : threads) t.join();
  std::vector<double> all;
  for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) { return all[static_cast<size_t>(p * (all.size() - 1))]; };
  std::printf(
      "professionals=%d slots=%zu clients=%d answers=%zu answers_per_s=%.0f p50_ms=%.2f "
      "p99_ms=%.2f max_ms=%.2f calendar_reads=%lld\n",
      pros, slots, clients, all.size(), all.size() / static_cast<double>(seconds), pct(0.5),
      pct(0.99), all.back(), static_cast<long long>(service.reads()));
  std::filesystem::remove_all(dir);
  return 0;
}

// The hub's workers survive a connector that throws despite its contract (Connector::deliver
// must not throw): the attempt ends as a retry of class "internal" whose reason the desk shows,
// the log names the delivery but not the exception's text (it may quote the input), and the
// delivery goes through once the connector behaves.

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <stdexcept>

#include "connectors/registry.h"
#include "core/clock.h"
#include "core/config_spec.h"
#include "routing/hub.h"
#include "routing/hub_config.h"
#include "tests/core/test_hub.h"
#include "tests/core/test_support.h"

namespace relais::testing {
namespace {

// Throws on its first `throws` attempts, then delivers. Thread-safe (atomics).
std::atomic<int> g_calls{0};
std::atomic<int> g_throws{0};

class ThrowingConnector final : public Connector {
 public:
  Outcome deliver(const DeliveryRequest&) override {
    if (g_calls++ < g_throws) throw std::runtime_error("type must be string, but is number");
    return Outcome::delivered();
  }
};

TEST(HubGuard, AConnectorThatThrowsIsARetryNotACrash) {
  g_calls = 0;
  g_throws = 2;
  TempDir dir;
  Registries registries;
  add_test_connector(registries, "throwing",
                     [](const ConnectorContext&) { return std::make_unique<ThrowingConnector>(); });
  std::string yaml =
      "store:\n  path: relais.db\n  synchronous: normal\n"
      "sources:\n  app:\n    type: $.type\n    correlation: \"{$.key}\"\n"
      "connectors:\n  partner:\n    connector: throwing\n"
      "    retry: {initial: 20ms, max: 20ms, max_attempts: 5}\n"
      "routes:\n  - name: r\n    source: app\n    to:\n      - destination: partner\n";
  HubConfig cfg;
  std::string error;
  ASSERT_TRUE(load_test_hub_config(yaml, dir.path(), registries, cfg, error)) << error;
  Hub hub(cfg, registries.connectors, SystemClock::instance());
  hub.start();
  AcceptResponse a = hub.accept(AcceptRequest{"app", R"({"type":"t","key":"k"})", "", {}});
  ASSERT_EQ(a.status, 202) << a.detail;
  ASSERT_TRUE(wait_until(
      [&] {
        auto d = hub.store().delivery(1);
        return d && d->state == DeliveryState::Delivered;
      },
      10000));
  auto rec = hub.store().message(a.id, true);
  ASSERT_TRUE(rec);
  ASSERT_EQ(rec->deliveries.size(), 1u);
  const Delivery* d = &rec->deliveries[0];
  ASSERT_EQ(d->history.size(), 3u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(d->history[i].outcome, "retry");
    EXPECT_EQ(d->history[i].error_class, "internal");
    EXPECT_NE(d->history[i].text.find("erreur interne"), std::string::npos) << d->history[i].text;
  }
  EXPECT_EQ(g_calls.load(), 3);
  hub.stop();
}

}  // namespace
}  // namespace relais::testing

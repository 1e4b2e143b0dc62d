// The pairings of persons with partners' records (core/pairing_store.h,
// store/sqlite/sqlite_pairings.cpp) and the wake-up of the deliveries that waited for them
// (Dispatcher::wake through the hub).

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>

#include "connectors/registry.h"
#include "core/at_rest.h"
#include "core/clock.h"
#include "core/config_spec.h"
#include "core/pairing_store.h"
#include "core/store.h"
#include "routing/hub.h"
#include "routing/hub_config.h"
#include "store/sqlite/sqlite_backend.h"
#include "tests/core/test_support.h"

namespace relais::testing {
namespace {

std::string open_store(const TempDir& dir) {
  StoreOptions o;
  o.path = dir.path() + "/relais.db";
  o.synchronous_full = false;
  open_sqlite_store(o)->close();
  return o.path;
}

PairingCandidate candidate(const std::string& id, double score, const std::string& nom) {
  PairingCandidate c;
  c.external_id = id;
  c.score = score;
  c.summary = {{"nom_naissance", nom}, {"date_naissance", "1962-09-22"}};
  return c;
}

TEST(PairingStore, ProposeWaitPairUndo) {
  TempDir dir;
  auto store = open_sqlite_pairing_store(open_store(dir), SystemClock::instance(), nullptr);
  Status st;
  EXPECT_FALSE(store->get("genesis", "individu:1", st));
  EXPECT_TRUE(st.ok);

  Pairing p;
  ASSERT_TRUE(store
                  ->propose("genesis", "individu:1",
                            {candidate("G-1", 0.9, "DUPONT"), candidate("G-2", 0.7, "DUPOND")},
                            PairingWaiter{"genesis-personnes", "individu:1"}, p)
                  .ok);
  EXPECT_EQ(p.state, PairingState::Waiting);
  ASSERT_EQ(p.candidates.size(), 2u);
  EXPECT_EQ(p.candidates[1].summary["nom_naissance"], "DUPOND");
  // Another delivery of the person waits too (once, however often it asks).
  ASSERT_TRUE(store->wait("genesis", "individu:1", {"genesis-demandes", "demande:547"}).ok);
  ASSERT_TRUE(store->wait("genesis", "individu:1", {"genesis-demandes", "demande:547"}).ok);
  EXPECT_EQ(store->count(PairingState::Waiting, st), 1);

  std::vector<PairingWaiter> woken;
  ASSERT_TRUE(store->pair("genesis", "individu:1", "G-2", "console", "alice", woken).ok);
  ASSERT_EQ(woken.size(), 2u);
  EXPECT_EQ(woken[0], (PairingWaiter{"genesis-personnes", "individu:1"}));
  EXPECT_EQ(woken[1], (PairingWaiter{"genesis-demandes", "demande:547"}));
  auto got = store->get("genesis", "individu:1", st);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->state, PairingState::Paired);
  EXPECT_EQ(got->external_id, "G-2");
  EXPECT_EQ(got->how, "console");
  EXPECT_EQ(got->by, "alice");
  EXPECT_TRUE(got->waiters.empty());

  // Paired: the same id again is fine and wakes nothing; another id is refused; no new waiter.
  EXPECT_TRUE(store->pair("genesis", "individu:1", "G-2", "message", "cms76", woken).ok);
  EXPECT_TRUE(woken.empty());
  EXPECT_EQ(store->pair("genesis", "individu:1", "G-1", "message", "cms76", woken).http_status,
            409);
  EXPECT_EQ(store->wait("genesis", "individu:1", {"genesis-demandes", "demande:9"}).http_status,
            409);
  EXPECT_EQ(store->propose("genesis", "individu:1", {}, {}, p).http_status, 409);

  // Undone: the next messages wait again, and another record can be chosen.
  EXPECT_EQ(store->undo("genesis", "individu:2", "alice", "erreur").http_status, 404);
  ASSERT_TRUE(store->undo("genesis", "individu:1", "alice", "homonyme").ok);
  got = store->get("genesis", "individu:1", st);
  EXPECT_EQ(got->state, PairingState::Undone);
  EXPECT_EQ(got->reason, "homonyme");
  EXPECT_EQ(store->undo("genesis", "individu:1", "alice", "encore").http_status, 409);
  ASSERT_TRUE(store->wait("genesis", "individu:1", {"genesis-demandes", "demande:9"}).ok);
  ASSERT_TRUE(store->pair("genesis", "individu:1", "G-1", "message", "cms76", woken).ok);
  ASSERT_EQ(woken.size(), 1u);

  PairingFilter f;
  f.state = PairingState::Paired;
  auto list = store->list(f, st);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].person, "individu:1");
  f.state = PairingState::Waiting;
  EXPECT_TRUE(store->list(f, st).empty());
}

TEST(PairingStore, CandidatesAreEncryptedAtRest) {
  TempDir dir;
  std::string path = open_store(dir);
  { std::ofstream(dir.path() + "/k.key", std::ios::binary) << std::string(32, '\x07'); }
  std::filesystem::permissions(dir.path() + "/k.key", std::filesystem::perms::owner_read |
                                                          std::filesystem::perms::owner_write);
  AtRestSettings settings;
  settings.active = "k1";
  settings.keys.push_back(AtRestKeySource{"k1", dir.path() + "/k.key", ""});
  auto cipher = load_at_rest_cipher(settings);
  Pairing p;
  {
    auto store = open_sqlite_pairing_store(path, SystemClock::instance(), cipher);
    ASSERT_TRUE(store
                    ->propose("genesis", "individu:7", {candidate("G-7", 0.8, "LEFRANCQ")},
                              PairingWaiter{}, p)
                    .ok);
    Status st;
    auto got = store->get("genesis", "individu:7", st);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->candidates.at(0).summary["nom_naissance"], "LEFRANCQ");
  }
  std::string raw;
  for (const auto& f : std::filesystem::directory_iterator(dir.path())) {
    std::ifstream in(f.path(), std::ios::binary);
    raw.append(std::istreambuf_iterator<char>(in), {});
  }
  EXPECT_EQ(raw.find("LEFRANCQ"), std::string::npos);
}

// Defers every attempt for an hour until `g_ready`, then delivers.
std::atomic<bool> g_ready{false};
std::atomic<int> g_attempts{0};
class WaitingConnector final : public Connector {
 public:
  explicit WaitingConnector(const Clock& clock) : clock_(clock) {}
  Outcome deliver(const DeliveryRequest&) override {
    ++g_attempts;
    if (!g_ready) return Outcome::defer(clock_.now_ms() + 3600 * 1000, "en attente d'appariement");
    return Outcome::delivered();
  }

 private:
  const Clock& clock_;
};
const ConfigSpec& waiting_spec() {
  static const ConfigSpec spec{"waiting", {}};
  return spec;
}

// A hub on a temporary store whose destinations are WaitingConnectors (the `waiting` kind),
// checking that connectors get the hub's pairings and services.
class PairingWake : public ::testing::Test {
 protected:
  void SetUp() override {
    ConnectorKind k;
    k.name = "waiting";
    k.description = "test: defers until ready";
    k.spec = &waiting_spec();
    k.create = [](const ConnectorContext& ctx) {
      EXPECT_NE(ctx.pairings, nullptr);
      EXPECT_NE(ctx.hub, nullptr);
      return std::make_unique<WaitingConnector>(*ctx.clock);
    };
    registries_.connectors.add(std::move(k));
  }
  // Starts the hub on `body` (sources, connectors, routes) after the store section.
  Hub& start(const std::string& body) {
    std::string yaml = "store:\n  path: relais.db\n  synchronous: normal\n" + body;
    std::vector<ConfigError> errors;
    EXPECT_TRUE(
        load_hub_config_text(yaml, "t.yaml", dir_.path(), registries_.connectors, cfg_, errors))
        << (errors.empty() ? "" : errors[0].to_string());
    hub_ = std::make_unique<Hub>(cfg_, registries_.connectors, SystemClock::instance());
    hub_->start();
    return *hub_;
  }
  void TearDown() override {
    if (hub_) hub_->stop();
  }
  TempDir dir_;
  Registries registries_;
  HubConfig cfg_;
  std::unique_ptr<Hub> hub_;
};

TEST_F(PairingWake, ADeferredKeyIsWokenByTheHub) {
  g_ready = false;
  g_attempts = 0;
  Hub& hub = start(
      "sources:\n  app:\n    type: $.type\n    correlation: \"{$.key}\"\n"
      "connectors:\n  genesis:\n    connector: waiting\n"
      "routes:\n  - name: r\n    source: app\n    to:\n      - destination: genesis\n");
  ASSERT_EQ(hub.accept(AcceptRequest{"app", R"({"type":"t","key":"individu:1"})", "", {}}).status,
            202);
  ASSERT_EQ(hub.accept(AcceptRequest{"app", R"({"type":"u","key":"individu:1"})", "", {}}).status,
            202);
  ASSERT_TRUE(wait_until([&] { return g_attempts.load() == 1; }, 5000));
  // Deferred for an hour: the key's second message waits behind it.
  ASSERT_TRUE(wait_until(
      [&] {
        return hub.store().delivery(1)->state == DeliveryState::Pending &&
               hub.store().delivery(1)->next_attempt_at > 0;
      },
      5000));
  EXPECT_EQ(hub.store().delivery(2)->state, DeliveryState::Pending);
  EXPECT_EQ(g_attempts.load(), 1);
  g_ready = true;
  hub.wake("genesis", "individu:1");
  ASSERT_TRUE(wait_until(
      [&] {
        return hub.store().delivery(1)->state == DeliveryState::Delivered &&
               hub.store().delivery(2)->state == DeliveryState::Delivered;
      },
      5000));
  EXPECT_EQ(g_attempts.load(), 3);
}

// post() commits a message for one destination; an unknown one is a readable 404.
TEST_F(PairingWake, PostCommitsAMessageForOneDestination) {
  g_ready = true;
  Hub& hub = start(
      "sources:\n  app:\n    type: $.type\n"
      "connectors:\n  cms76-appariement:\n    connector: waiting\n");
  std::string id;
  ASSERT_TRUE(hub.post("cms76-appariement", "appariement.candidats", "individu:1",
                       R"({"personne":"individu:1"})", id)
                  .ok);
  EXPECT_FALSE(id.empty());
  auto rec = hub.store().message(id, false);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->message->type, "appariement.candidats");
  Status st = hub.post("nowhere", "t", "k", "{}", id);
  EXPECT_EQ(st.http_status, 404);
}

}  // namespace
}  // namespace relais::testing

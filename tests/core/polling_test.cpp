// Polling sources through the hub (core/poller.h, routing/polling.*): each batch's messages,
// its checkpoint and its refused records are committed together; a restart resumes from the
// checkpoint; a source that cannot be read backs off and says why; the same record offered
// again is a duplicate, never a second message.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include <nlohmann/json.hpp>

#include "connectors/registry.h"
#include "core/clock.h"
#include "core/config_spec.h"
#include "routing/hub.h"
#include "routing/hub_config.h"
#include "store/sqlite/sqlite_backend.h"
#include "tests/core/test_support.h"

namespace relais::testing {
namespace {

// What the scripted source offers and what it was told. Guarded by mu.
struct Script {
  std::mutex mu;
  std::vector<PolledRecord> records;  // offered in order, `batch` at a time
  size_t batch = 2;
  int fail_polls = 0;  // the next polls that fail
  std::vector<std::string> seen_checkpoints;
  std::vector<std::vector<int>> told;  // statuses given to committed(), per stored batch
  bool repeat_last = false;            // offer the last batch again once (a crash before commit)
  bool pipelined = false;              // the poller may be polled while a batch commits
  // Every committed() call, in order: "<checkpoint>:stored" or "<checkpoint>:lost".
  std::vector<std::string> committed_calls;
};
Script g_script;

// Back to an empty script: no records, batches of 2, nothing seen nor told.
void reset_script() {
  std::lock_guard<std::mutex> lock(g_script.mu);
  g_script.records.clear();
  g_script.batch = 2;
  g_script.fail_polls = 0;
  g_script.seen_checkpoints.clear();
  g_script.told.clear();
  g_script.pipelined = false;
  g_script.committed_calls.clear();
}

// Offers g_script.records after the checkpoint (the index of the next record).
class ScriptedPoller final : public Poller {
 public:
  Status poll(const std::string& checkpoint, PollBatch& out) override {
    std::lock_guard<std::mutex> lock(g_script.mu);
    g_script.seen_checkpoints.push_back(checkpoint);
    if (g_script.fail_polls > 0) {
      --g_script.fail_polls;
      return Status::failure(503, "base injoignable", "connexion refusée (test)");
    }
    size_t from = checkpoint.empty() ? 0 : std::stoul(checkpoint);
    size_t to = std::min(g_script.records.size(), from + g_script.batch);
    for (size_t i = from; i < to; ++i) out.records.push_back(g_script.records[i]);
    out.checkpoint = std::to_string(to);
    out.more = to < g_script.records.size();
    return Status::success();
  }
  bool pipelined() const override {
    std::lock_guard<std::mutex> lock(g_script.mu);
    return g_script.pipelined;
  }
  Status committed(const PollBatch& batch, bool stored,
                   const std::vector<PolledOutcome>& outcomes) override {
    std::lock_guard<std::mutex> lock(g_script.mu);
    g_script.committed_calls.push_back(batch.checkpoint + (stored ? ":stored" : ":lost"));
    if (stored && !batch.records.empty()) {
      std::vector<int> s;
      for (const auto& o : outcomes) s.push_back(o.status);
      g_script.told.push_back(s);
    }
    return Status::success();
  }
};

const ConfigSpec& scripted_spec() {
  static const ConfigSpec spec{"scripted", {}};
  return spec;
}

// Records every delivered body, in order.
std::mutex g_seen_mu;
std::vector<std::string> g_seen;
class RecordingConnector final : public Connector {
 public:
  Outcome deliver(const DeliveryRequest& r) override {
    std::lock_guard<std::mutex> lock(g_seen_mu);
    g_seen.push_back(r.message->body);
    return Outcome::delivered();
  }
};
const ConfigSpec& recording_spec() {
  static const ConfigSpec spec{"recording", {}};
  return spec;
}

void register_test_kinds(Registries& registries) {
  PollerKind p;
  p.name = "scripted";
  p.description = "test: scripted records";
  p.spec = &scripted_spec();
  p.create = [](const PollerContext&) { return std::make_unique<ScriptedPoller>(); };
  registries.pollers.add(std::move(p));
  ConnectorKind c;
  c.name = "recording";
  c.description = "test: records bodies";
  c.spec = &recording_spec();
  c.create = [](const ConnectorContext&) { return std::make_unique<RecordingConnector>(); };
  registries.connectors.add(std::move(c));
}

const char* kYaml =
    "store:\n  path: relais.db\n  synchronous: normal\n"
    "sources:\n  base:\n    type: $.event\n    correlation: \"demande:{$.numero}\"\n"
    "    idempotency: $.id\n"
    "    poll: {kind: scripted, interval: 50ms, max_backoff: 200ms}\n"
    "connectors:\n  partner:\n    connector: recording\n"
    "routes:\n  - name: r\n    source: base\n    to:\n      - destination: partner\n";

PolledRecord rec(int id, int numero, const std::string& event = "demande.created") {
  PolledRecord r;
  r.body = R"({"id":"row-)" + std::to_string(id) + R"(","numero":)" + std::to_string(numero) +
           R"(,"event":")" + event + R"("})";
  r.position = "id " + std::to_string(id);
  return r;
}

class Polling : public ::testing::Test {
 protected:
  void SetUp() override {
    reset_script();
    std::lock_guard<std::mutex> lock2(g_seen_mu);
    g_seen.clear();
    register_test_kinds(registries_);
    std::vector<ConfigError> errors;
    ASSERT_TRUE(load_hub_config_text(kYaml, "t.yaml", dir_.path(), registries_.connectors, cfg_,
                                     errors, &registries_.enrichers, &registries_.pollers))
        << errors.at(0).to_string();
  }
  std::unique_ptr<Hub> hub() {
    return std::make_unique<Hub>(cfg_, registries_.connectors, SystemClock::instance(), nullptr,
                                 &registries_.enrichers, &registries_.pollers);
  }
  size_t seen() {
    std::lock_guard<std::mutex> lock(g_seen_mu);
    return g_seen.size();
  }
  // How many stored batches with records the poller was told of.
  static size_t told() {
    std::lock_guard<std::mutex> lock(g_script.mu);
    return g_script.told.size();
  }
  TempDir dir_;
  Registries registries_;
  HubConfig cfg_;
};

TEST_F(Polling, RecordsCheckpointAndRejectsAreCommittedTogether) {
  {
    std::lock_guard<std::mutex> lock(g_script.mu);
    g_script.records = {rec(1, 547), rec(2, 548), rec(3, 547, "")};
    PolledRecord bad;
    bad.position = "id 4";
    bad.unreadable = "colonne date_modification illisible";
    g_script.records.push_back(bad);
    g_script.records.push_back(rec(5, 547, "demande.closed"));
  }
  auto h = hub();
  h->start();
  ASSERT_TRUE(wait_until([&] { return h->store().checkpoint("base").value_or("") == "5"; }, 5000));
  ASSERT_TRUE(wait_until([&] { return seen() == 3; }, 5000));
  ASSERT_TRUE(wait_until([&] { return told() == 3; }, 5000));
  // The refused records are kept for the desk with their position and reason, no content.
  auto rejects = h->store().rejects("base", 0, 10);
  ASSERT_EQ(rejects.size(), 2u);
  EXPECT_EQ(rejects[0].reject.position, "id 4");
  EXPECT_EQ(rejects[0].reject.status, 422);
  EXPECT_EQ(rejects[0].reject.detail, "colonne date_modification illisible");
  EXPECT_EQ(rejects[1].reject.position, "id 3");
  EXPECT_EQ(rejects[1].reject.error, "no message type");
  {
    std::lock_guard<std::mutex> lock(g_script.mu);
    ASSERT_EQ(g_script.told.size(), 3u);
    EXPECT_EQ(g_script.told[0], (std::vector<int>{202, 202}));
    EXPECT_EQ(g_script.told[1], (std::vector<int>{422, 422}));
    EXPECT_EQ(g_script.told[2], (std::vector<int>{202}));
  }
  {
    // Order per key: demande 547's created then closed.
    std::lock_guard<std::mutex> lock(g_seen_mu);
    EXPECT_NE(g_seen.back().find("demande.closed"), std::string::npos);
  }
  auto states = h->polling_states();
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states[0].records, 3);
  EXPECT_EQ(states[0].rejected, 2);
  EXPECT_FALSE(states[0].failing);
  h->stop();
}

TEST_F(Polling, ARestartResumesFromTheCommittedCheckpoint) {
  {
    std::lock_guard<std::mutex> lock(g_script.mu);
    g_script.records = {rec(1, 1), rec(2, 2), rec(3, 3)};
  }
  {
    auto h = hub();
    h->start();
    ASSERT_TRUE(
        wait_until([&] { return h->store().checkpoint("base").value_or("") == "3"; }, 5000));
    h->stop();
  }
  {
    std::lock_guard<std::mutex> lock(g_script.mu);
    g_script.seen_checkpoints.clear();
    g_script.records.push_back(rec(4, 4));
  }
  auto h = hub();
  h->start();
  ASSERT_TRUE(wait_until([&] { return h->store().checkpoint("base").value_or("") == "4"; }, 5000));
  ASSERT_TRUE(wait_until([&] { return seen() == 4; }, 5000));
  // Stopped first: the polling thread takes g_script.mu in poll(), and stop() joins it.
  h->stop();
  std::lock_guard<std::mutex> lock(g_script.mu);
  ASSERT_FALSE(g_script.seen_checkpoints.empty());
  EXPECT_EQ(g_script.seen_checkpoints.front(), "3");  // not from the start
}

TEST_F(Polling, TheSameRecordOfferedAgainIsADuplicate) {
  {
    std::lock_guard<std::mutex> lock(g_script.mu);
    g_script.records = {rec(1, 1), rec(1, 1)};  // the same row twice (same idempotency key)
  }
  auto h = hub();
  h->start();
  ASSERT_TRUE(wait_until([&] { return h->store().checkpoint("base").value_or("") == "2"; }, 5000));
  // committed() runs after the commit: wait for it to be told.
  ASSERT_TRUE(wait_until([&] { return told() == 1; }, 5000));
  h->stop();  // before taking g_script.mu (the polling thread takes it; stop() joins it)
  std::lock_guard<std::mutex> lock(g_script.mu);
  EXPECT_EQ(g_script.told[0], (std::vector<int>{202, 200}));
}

TEST_F(Polling, ASourceThatCannotBeReadIsRetriedAndSaysWhy) {
  {
    std::lock_guard<std::mutex> lock(g_script.mu);
    g_script.records = {rec(1, 1)};
    g_script.fail_polls = 3;
  }
  auto h = hub();
  h->start();
  ASSERT_TRUE(wait_until(
      [&] {
        auto s = h->polling_states();
        return s.at(0).failing && s.at(0).failures_in_row >= 1;
      },
      5000));
  auto failing = h->polling_states().at(0);
  EXPECT_NE(failing.last_error.find("base injoignable"), std::string::npos) << failing.last_error;
  // Then it comes back: the record flows and the state is clear again.
  ASSERT_TRUE(wait_until([&] { return seen() == 1; }, 10000));
  ASSERT_TRUE(wait_until([&] { return !h->polling_states().at(0).failing; }, 5000));
  EXPECT_TRUE(h->polling_states().at(0).last_error.empty());
  h->stop();
}

TEST_F(Polling, AKeyReusedWithAnotherBodyIsKeptAsARejectWithoutItsContent) {
  {
    std::lock_guard<std::mutex> lock(g_script.mu);
    g_script.batch = 3;
    // Row 2 carries row 1's idempotency key ($.id) with another body.
    PolledRecord other = rec(1, 9999, "demande.closed");
    other.position = "id 2";
    g_script.records = {rec(1, 547), other, rec(3, 548)};
  }
  auto h = hub();
  h->start();
  ASSERT_TRUE(wait_until([&] { return told() == 1; }, 5000));
  ASSERT_TRUE(wait_until([&] { return seen() == 2; }, 5000));
  // Committed with the batch: the desk sees where and why, never the key nor the content.
  auto rejects = h->store().rejects("base", 0, 10);
  ASSERT_EQ(rejects.size(), 1u);
  EXPECT_EQ(rejects[0].reject.position, "id 2");
  EXPECT_EQ(rejects[0].reject.status, 409);
  EXPECT_EQ(rejects[0].reject.error, "idempotency key reused");
  for (const auto& text : {rejects[0].reject.error, rejects[0].reject.detail}) {
    EXPECT_EQ(text.find("row-1"), std::string::npos) << text;
    EXPECT_EQ(text.find("9999"), std::string::npos) << text;
    EXPECT_EQ(text.find("demande.closed"), std::string::npos) << text;
  }
  auto states = h->polling_states();
  EXPECT_EQ(states.at(0).records, 2);
  EXPECT_EQ(states.at(0).rejected, 1);
  h->stop();  // before taking g_script.mu (the polling thread takes it; stop() joins it)
  std::lock_guard<std::mutex> lock(g_script.mu);
  EXPECT_EQ(g_script.told[0], (std::vector<int>{202, 409, 202}));
}

TEST_F(Polling, APipelinedSourceCommitsEveryBatchOnceAndInOrder) {
  {
    std::lock_guard<std::mutex> lock(g_script.mu);
    g_script.pipelined = true;
    for (int i = 1; i <= 21; ++i) g_script.records.push_back(rec(i, i % 3));
  }
  auto h = hub();
  h->start();
  ASSERT_TRUE(wait_until([&] { return h->store().checkpoint("base").value_or("") == "21"; }, 5000));
  ASSERT_TRUE(wait_until([&] { return seen() == 21; }, 5000));
  ASSERT_TRUE(wait_until([&] { return told() == 11; }, 5000));
  h->stop();
  std::lock_guard<std::mutex> lock(g_script.mu);
  // Told once per batch, in the order read, every one stored; then the empty polls.
  ASSERT_GE(g_script.committed_calls.size(), 11u);
  for (int b = 0; b < 11; ++b) {
    EXPECT_EQ(g_script.committed_calls[b], std::to_string(std::min(21, 2 * (b + 1))) + ":stored");
  }
  // Each batch was read after the previous one's position, stored or still committing.
  for (size_t i = 0; i < 11 && i < g_script.seen_checkpoints.size(); ++i) {
    EXPECT_EQ(g_script.seen_checkpoints[i], i == 0 ? "" : std::to_string(2 * i));
  }
  // Every record delivered once, in order per correlation key (demande:<numero>).
  std::lock_guard<std::mutex> lock2(g_seen_mu);
  std::map<int, std::vector<int>> by_key;
  for (const auto& body : g_seen) {
    auto doc = nlohmann::json::parse(body);
    by_key[doc["numero"].get<int>()].push_back(std::stoi(doc["id"].get<std::string>().substr(4)));
  }
  for (int k = 0; k < 3; ++k) {
    std::vector<int> want;
    for (int i = 1; i <= 21; ++i) {
      if (i % 3 == k) want.push_back(i);
    }
    EXPECT_EQ(by_key[k], want) << "key demande:" << k;
  }
}

// A pipelined source whose commit of one batch fails, driven with a commit of the test's: the
// batch read meanwhile is told not stored either, polling resumes from the last stored
// checkpoint, and every record is committed exactly once, in order.
TEST(PollingPipeline, AFailedCommitDropsTheBatchReadMeanwhileAndResumesFromTheStore) {
  TempDir dir;
  StoreOptions o;
  o.path = dir.path() + "/relais.db";
  o.synchronous_full = false;
  auto store = open_sqlite_store(o);
  Metrics metrics;
  std::mutex mu;                       // guards committed, failed_once and the commits' order check
  std::vector<std::string> committed;  // the records' positions, in commit order
  bool failed_once = false;
  int in_commit = 0, overlap = 0;
  auto prepare = [&](const std::string& source, const PollBatch& batch) -> PollingSource::Commit {
    std::vector<std::string> positions;
    for (const auto& r : batch.records) positions.push_back(r.position);
    std::string value = batch.checkpoint;
    return [&, source, positions, value](bool& stored) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (++in_commit > 1) ++overlap;
      }
      std::vector<PolledOutcome> outcomes(positions.size());
      stored = false;
      bool fail = false;
      {
        std::lock_guard<std::mutex> lock(mu);
        fail = value == "6" && !failed_once;
        if (fail) failed_once = true;
      }
      if (!fail) {
        SourceCheckpoint cp;
        cp.source = source;
        cp.value = value;
        auto r = store->accept_polled({}, cp, 1);
        stored = r.size() == 1 && r[0].kind == AcceptResult::Kind::Created;
      }
      std::lock_guard<std::mutex> lock(mu);
      --in_commit;
      if (stored) committed.insert(committed.end(), positions.begin(), positions.end());
      return outcomes;
    };
  };
  {
    reset_script();
    std::lock_guard<std::mutex> lock(g_script.mu);
    g_script.pipelined = true;
    for (int i = 1; i <= 12; ++i) g_script.records.push_back(rec(i, i));
  }
  PollConfig pc;
  pc.kind = "scripted";
  pc.interval_ms = 20;
  pc.max_backoff_ms = 50;
  PollingSource source("base", pc, std::make_unique<ScriptedPoller>(), *store, prepare,
                       SystemClock::instance(), metrics);
  source.start();
  ASSERT_TRUE(wait_until([&] { return store->checkpoint("base").value_or("") == "12"; }, 5000));
  source.stop();
  std::vector<std::string> want;
  for (int i = 1; i <= 12; ++i) want.push_back("id " + std::to_string(i));
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_TRUE(failed_once);
    EXPECT_EQ(committed, want);  // once each, in order: nothing lost, nothing twice
    EXPECT_EQ(overlap, 0);       // one batch in flight at most
  }
  std::lock_guard<std::mutex> lock(g_script.mu);
  // Batch "6" failed; batch "8", read while it committed, was not committed either; then the
  // source read again from the stored "4".
  auto& calls = g_script.committed_calls;
  auto at = std::find(calls.begin(), calls.end(), "6:lost");
  ASSERT_NE(at, calls.end());
  ASSERT_NE(at + 1, calls.end());
  EXPECT_EQ(*(at + 1), "8:lost");
  ASSERT_NE(at + 2, calls.end());
  EXPECT_EQ(*(at + 2), "6:stored");
  auto polled_after =
      std::find(g_script.seen_checkpoints.begin(), g_script.seen_checkpoints.end(), "6");
  ASSERT_NE(polled_after, g_script.seen_checkpoints.end());
  EXPECT_NE(std::find(polled_after + 1, g_script.seen_checkpoints.end(), "4"),
            g_script.seen_checkpoints.end());
  EXPECT_EQ(source.state().records, 12);
}

// The waits between attempts while a source cannot be read: doubling from 1 s, capped.
TEST(PollingBackoff, DoublesFromOneSecondUpToTheMaximum) {
  EXPECT_EQ(poll_backoff(1, 300000), 1000);
  EXPECT_EQ(poll_backoff(2, 300000), 2000);
  EXPECT_EQ(poll_backoff(3, 300000), 4000);
  EXPECT_EQ(poll_backoff(9, 300000), 256000);
  EXPECT_EQ(poll_backoff(10, 300000), 300000);
  EXPECT_EQ(poll_backoff(1000, 300000), 300000);
  EXPECT_EQ(poll_backoff(1, 200), 200);  // a maximum below 1 s caps the first wait too
}

TEST(PollingConfig, AnUnknownKindIsNamedWithTheKnownOnes) {
  Registries registries;
  register_test_kinds(registries);
  HubConfig cfg;
  std::vector<ConfigError> errors;
  std::string yaml =
      "store:\n  path: r.db\nsources:\n  base:\n    type: $.event\n    poll: {kind: ftp}\n";
  EXPECT_FALSE(load_hub_config_text(yaml, "t.yaml", "/tmp", registries.connectors, cfg, errors,
                                    &registries.enrichers, &registries.pollers));
  ASSERT_FALSE(errors.empty());
  EXPECT_NE(errors[0].to_string().find("unknown polling-source kind 'ftp'"), std::string::npos)
      << errors[0].to_string();
  EXPECT_NE(errors[0].to_string().find("scripted"), std::string::npos);
}

}  // namespace
}  // namespace relais::testing

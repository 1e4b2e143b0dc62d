// The conformance suite of the store engines (core/store.h): every case runs on the embedded
// SQLite store and on the PostgreSQL store (tests/core/store_backends.h: a throwaway PostgreSQL
// 15 server, a fresh database per test). Commits, idempotency (within a batch, across a reopen,
// with a retention, conflicts), reload after reopen, active/dead-head queries, updates, filters
// and paging, the commit listener, group commit under concurrency, and erasure. What is proper to
// one engine stays with it: SQLite's migrations, file faults and query plans in store_test.cpp
// and store_faults_test.cpp; PostgreSQL's in store_postgresql_test.cpp.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>

#include "core/clock.h"
#include "core/ids.h"
#include "core/retention.h"
#include "core/store.h"
#include "core/xref_store.h"
#include "tests/core/store_backends.h"
#include "tests/core/test_support.h"

namespace relais {
namespace {

using relais::testing::cipher;
using relais::testing::keys_of;
using relais::testing::make_incoming;
using relais::testing::StoreBackend;
using relais::testing::to_dest;
using relais::testing::xref;

constexpr Millis kT0 = 1'700'000'000'000;

// A store of the backend named by the test's parameter.
class StoreConformance : public ::testing::TestWithParam<std::string> {
 protected:
  StoreConformance() : clock_(kT0), ids_(clock_) {}

  void SetUp() override {
    backend_ = StoreBackend::make(GetParam());
    open();
  }
  void TearDown() override {
    if (store_) store_->close();
  }

  void open() { store_ = backend_->open(options_); }
  void reopen() {
    store_->close();
    store_.reset();
    open();
  }

  // Accepts one message and returns its id (asserting it was created).
  // Records a delivery's new state (committed with the next flush).
  void set_state(int64_t id, DeliveryState st, int attempts, Millis next) {
    DeliveryUpdate u;
    u.id = id;
    u.state = st;
    u.attempts = attempts;
    u.next_attempt_at = next;
    u.now = kT0 + 50;
    store_->record(u);
  }

  std::string accept_one(const std::string& source, const std::string& type,
                         const std::string& correlation, Millis received_at,
                         const std::vector<NewDelivery>& deliveries,
                         const std::string& idempotency = "") {
    std::vector<Incoming> batch;
    batch.push_back(
        make_incoming(ids_, source, type, correlation, idempotency, received_at, deliveries));
    auto r = store_->accept(std::move(batch));
    EXPECT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].kind, AcceptResult::Kind::Created) << r[0].error;
    return r[0].id;
  }

  std::vector<int64_t> delivery_ids(const std::string& message_id) {
    std::vector<int64_t> out;
    auto rec = store_->message(message_id, false);
    EXPECT_TRUE(rec.has_value());
    if (rec) {
      for (const auto& d : rec->deliveries) out.push_back(d.id);
    }
    return out;
  }

  int64_t scalar(const std::string& sql) { return backend_->scalar(sql); }

  StoreOptions options_;
  std::unique_ptr<StoreBackend> backend_;
  ManualClock clock_;
  IdGenerator ids_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreConformance, AcceptCommitsAndAssignsSeqAndDeliveryIds) {
  std::vector<Incoming> batch;
  batch.push_back(
      make_incoming(ids_, "cms", "rdv.planned", "rdv:1", "", kT0, {to_dest("a"), to_dest("b")}));
  batch.push_back(make_incoming(ids_, "cms", "rdv.moved", "rdv:2", "", kT0 + 1, {to_dest("a")}));
  batch.push_back(make_incoming(ids_, "cms", "rdv.gone", "", "", kT0 + 2, {}));
  std::vector<std::string> sent;
  for (const auto& in : batch) sent.push_back(in.message->id);

  auto results = store_->accept(std::move(batch));
  ASSERT_EQ(results.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(results[i].kind, AcceptResult::Kind::Created);
    EXPECT_EQ(results[i].id, sent[i]);
    EXPECT_TRUE(is_valid_id(results[i].id));
  }
  auto m1 = store_->message(sent[0], false);
  auto m2 = store_->message(sent[1], false);
  auto m3 = store_->message(sent[2], false);
  ASSERT_TRUE(m1 && m2 && m3);
  EXPECT_EQ(m1->message->seq, 1);
  EXPECT_EQ(m2->message->seq, 2);
  EXPECT_EQ(m3->message->seq, 3);
  ASSERT_EQ(m1->deliveries.size(), 2u);
  EXPECT_EQ(m1->deliveries[0].id, 1);
  EXPECT_EQ(m1->deliveries[0].destination, "a");
  EXPECT_EQ(m1->deliveries[1].id, 2);
  EXPECT_EQ(m1->deliveries[1].destination, "b");
  EXPECT_EQ(m1->deliveries[0].state, DeliveryState::Pending);
  EXPECT_EQ(m1->deliveries[0].message_id, sent[0]);
  EXPECT_EQ(m1->deliveries[0].route, "r1");
  ASSERT_EQ(m2->deliveries.size(), 1u);
  EXPECT_EQ(m2->deliveries[0].id, 3);
  EXPECT_TRUE(m3->deliveries.empty());

  auto by_seq = store_->message_by_seq(2);
  ASSERT_TRUE(by_seq);
  EXPECT_EQ(by_seq->id, sent[1]);
  EXPECT_EQ(store_->message_by_seq(99), nullptr);
  EXPECT_FALSE(store_->message("01ZZZZZZZZZZZZZZZZZZZZZZZZ", false).has_value());
  EXPECT_FALSE(store_->delivery(999).has_value());
  EXPECT_TRUE(store_->healthy());
}

TEST_P(StoreConformance, DuplicateIdempotencyKeyReturnsTheFirstId) {
  std::string first = accept_one("cms", "t", "", kT0, {to_dest("a")}, "evt-1");

  std::vector<Incoming> again;
  again.push_back(make_incoming(ids_, "cms", "t", "", "evt-1", kT0 + 5, {to_dest("a")}));
  auto r = store_->accept(std::move(again));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].kind, AcceptResult::Kind::Duplicate);
  EXPECT_EQ(r[0].id, first);

  // Same key from another source is a different message.
  std::string other = accept_one("crm", "t", "", kT0, {to_dest("a")}, "evt-1");
  EXPECT_NE(other, first);

  // Messages without an idempotency key are never duplicates of each other.
  std::string n1 = accept_one("cms", "t", "", kT0, {});
  std::string n2 = accept_one("cms", "t", "", kT0, {});
  EXPECT_NE(n1, n2);

  EXPECT_EQ(scalar("SELECT COUNT(*) FROM messages"), 4);
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM deliveries"), 2);  // the duplicate added none
}

TEST_P(StoreConformance, DuplicateWithinOneBatch) {
  std::vector<Incoming> batch;
  batch.push_back(make_incoming(ids_, "cms", "t", "", "k", kT0, {to_dest("a")}));
  batch.push_back(make_incoming(ids_, "cms", "t", "", "other", kT0, {to_dest("a")}));
  batch.push_back(make_incoming(ids_, "cms", "t", "", "k", kT0, {to_dest("a")}));
  std::string first = batch[0].message->id;
  std::string other = batch[1].message->id;
  auto r = store_->accept(std::move(batch));
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].kind, AcceptResult::Kind::Created);
  EXPECT_EQ(r[0].id, first);
  EXPECT_EQ(r[1].kind, AcceptResult::Kind::Created);
  EXPECT_EQ(r[1].id, other);
  EXPECT_EQ(r[2].kind, AcceptResult::Kind::Duplicate);
  EXPECT_EQ(r[2].id, first);
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM messages"), 2);
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM deliveries"), 2);
}

// A batch larger than the engines write in one statement (SQLite: 64, 8, then single rows):
// every message and delivery is stored with its own values, in order, ids following each other;
// a key used earlier in the batch (past any statement's rows) or in an earlier batch answers
// the first message's id, a duplicate or a conflict by its body, and nothing of it is stored.
TEST_P(StoreConformance, ABatchOfManyMessagesKeepsEachRowAndItsKeys) {
  const std::string earlier = accept_one("cms", "t", "c:0", kT0, {}, "key-earlier");
  std::vector<Incoming> batch;
  const int n = 150;
  for (int i = 0; i < n; ++i) {
    std::vector<NewDelivery> to;
    for (int d = 0; d < i % 3; ++d) to.push_back(to_dest("dest-" + std::to_string(d)));
    std::string body = "{\"n\":" + std::to_string(i) + "}";
    batch.push_back(make_incoming(ids_, "cms", "type-" + std::to_string(i),
                                  "c:" + std::to_string(i), "key-" + std::to_string(i), kT0 + i, to,
                                  body));
    batch.back().body_digest = "digest-" + std::to_string(i);
  }
  // The key of message 3, again at the end: same body (duplicate), then another (conflict).
  batch.push_back(make_incoming(ids_, "cms", "t", "c:3", "key-3", kT0 + n, {to_dest("dest-0")}));
  batch.back().body_digest = "digest-3";
  batch.push_back(make_incoming(ids_, "cms", "t", "c:3", "key-3", kT0 + n, {to_dest("dest-0")}));
  batch.back().body_digest = "digest-other";
  batch.push_back(make_incoming(ids_, "cms", "t", "c:0", "key-earlier", kT0 + n, {}));
  std::vector<std::string> sent;
  for (const auto& in : batch) sent.push_back(in.message->id);

  auto r = store_->accept(std::move(batch));
  ASSERT_EQ(r.size(), static_cast<size_t>(n + 3));
  int64_t delivery = 1;
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(r[i].kind, AcceptResult::Kind::Created) << i;
    EXPECT_EQ(r[i].id, sent[i]);
    auto rec = store_->message(sent[i], false);
    ASSERT_TRUE(rec.has_value()) << i;
    EXPECT_EQ(rec->message->seq, i + 2);
    EXPECT_EQ(rec->message->type, "type-" + std::to_string(i));
    EXPECT_EQ(rec->message->correlation, "c:" + std::to_string(i));
    EXPECT_EQ(rec->message->idempotency, "key-" + std::to_string(i));
    EXPECT_EQ(rec->message->body, "{\"n\":" + std::to_string(i) + "}");
    EXPECT_EQ(rec->message->received_at, kT0 + i);
    ASSERT_EQ(rec->deliveries.size(), static_cast<size_t>(i % 3)) << i;
    for (int d = 0; d < i % 3; ++d) {
      EXPECT_EQ(rec->deliveries[d].id, delivery++);
      EXPECT_EQ(rec->deliveries[d].destination, "dest-" + std::to_string(d));
      EXPECT_EQ(rec->deliveries[d].state, DeliveryState::Pending);
    }
  }
  EXPECT_EQ(r[n].kind, AcceptResult::Kind::Duplicate);
  EXPECT_EQ(r[n].id, sent[3]);
  EXPECT_EQ(r[n + 1].kind, AcceptResult::Kind::Conflict);
  EXPECT_EQ(r[n + 1].id, sent[3]);
  EXPECT_EQ(r[n + 2].kind, AcceptResult::Kind::Duplicate);
  EXPECT_EQ(r[n + 2].id, earlier);
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM messages"), n + 1);
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM deliveries"), delivery - 1);
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM idempotency_keys"), n + 1);
  // The keys are remembered after the batch too.
  std::vector<Incoming> again;
  again.push_back(make_incoming(ids_, "cms", "t", "c:149", "key-149", kT0 + n + 1, {}));
  again.back().body_digest = "digest-149";
  auto a = store_->accept(std::move(again));
  EXPECT_EQ(a.at(0).kind, AcceptResult::Kind::Duplicate);
  EXPECT_EQ(a.at(0).id, sent[149]);
}

TEST_P(StoreConformance, ReopenReloadsMessagesDeliveriesAndAttempts) {
  std::vector<Incoming> batch;
  batch.push_back(make_incoming(ids_, "cms", "rdv.planned", "rdv:7", "evt-7", kT0 + 10,
                                {to_dest("a", kT0 + 500, "route-a", "map-a"), to_dest("b")},
                                "{\"rdv\":{\"id\":7}}"));
  auto& m = *batch[0].message;
  m.headers = {{"x-trace", "abc"}, {"x-user", "u1"}};
  std::string id = m.id;
  ASSERT_EQ(store_->accept(std::move(batch))[0].kind, AcceptResult::Kind::Created);
  auto ds = delivery_ids(id);
  ASSERT_EQ(ds.size(), 2u);

  DeliveryUpdate u;
  u.id = ds[0];
  u.state = DeliveryState::Retrying;
  u.attempts = 1;
  u.next_attempt_at = kT0 + 2000;
  u.now = kT0 + 1000;
  u.attempt = Attempt{kT0 + 900, 100, "retry", "http", 503, "HTTP 503", "busy"};
  store_->record(u);
  store_->flush();

  reopen();

  auto rec = store_->message(id, true);
  ASSERT_TRUE(rec.has_value());
  const Message& back = *rec->message;
  EXPECT_EQ(back.seq, 1);
  EXPECT_EQ(back.source, "cms");
  EXPECT_EQ(back.type, "rdv.planned");
  EXPECT_EQ(back.correlation, "rdv:7");
  EXPECT_EQ(back.idempotency, "evt-7");
  EXPECT_EQ(back.body, "{\"rdv\":{\"id\":7}}");
  EXPECT_EQ(back.received_at, kT0 + 10);
  EXPECT_EQ(back.headers,
            (std::map<std::string, std::string>{{"x-trace", "abc"}, {"x-user", "u1"}}));
  ASSERT_EQ(rec->deliveries.size(), 2u);
  const Delivery& d0 = rec->deliveries[0];
  EXPECT_EQ(d0.id, ds[0]);
  EXPECT_EQ(d0.destination, "a");
  EXPECT_EQ(d0.route, "route-a");
  EXPECT_EQ(d0.mapping, "map-a");
  EXPECT_EQ(d0.state, DeliveryState::Retrying);
  EXPECT_EQ(d0.attempts, 1);
  EXPECT_EQ(d0.next_attempt_at, kT0 + 2000);
  EXPECT_EQ(d0.not_before, kT0 + 500);
  EXPECT_EQ(d0.updated_at, kT0 + 1000);
  EXPECT_EQ(d0.last_outcome, "retry");
  EXPECT_EQ(d0.last_class, "http");
  EXPECT_EQ(d0.last_code, 503);
  EXPECT_EQ(d0.last_text, "HTTP 503");
  ASSERT_EQ(d0.history.size(), 1u);
  EXPECT_EQ(d0.history[0].at, kT0 + 900);
  EXPECT_EQ(d0.history[0].duration_ms, 100);
  EXPECT_EQ(d0.history[0].outcome, "retry");
  EXPECT_EQ(d0.history[0].error_class, "http");
  EXPECT_EQ(d0.history[0].code, 503);
  EXPECT_EQ(d0.history[0].text, "HTTP 503");
  EXPECT_EQ(d0.history[0].excerpt, "busy");
  EXPECT_EQ(rec->deliveries[1].state, DeliveryState::Pending);
  EXPECT_TRUE(rec->deliveries[1].history.empty());

  // Idempotency survives the restart, and new rows continue after the old ones.
  std::vector<Incoming> dup;
  dup.push_back(make_incoming(ids_, "cms", "t", "", "evt-7", kT0, {to_dest("a")}));
  auto r = store_->accept(std::move(dup));
  EXPECT_EQ(r[0].kind, AcceptResult::Kind::Duplicate);
  EXPECT_EQ(r[0].id, id);
  std::string next = accept_one("cms", "t", "", kT0, {to_dest("a")});
  auto rn = store_->message(next, false);
  ASSERT_TRUE(rn);
  EXPECT_EQ(rn->message->seq, 2);
  ASSERT_EQ(rn->deliveries.size(), 1u);
  EXPECT_EQ(rn->deliveries[0].id, 3);
}

TEST_P(StoreConformance, LoadActiveReturnsPendingAndRetryingInIdOrderWithDue) {
  // d1: pending, not_before in the future; d2: retrying, next attempt later than not_before;
  // d3: delivered (excluded); d4: retrying with next attempt before not_before; d5: dead.
  std::string m1 = accept_one("cms", "t", "k1", kT0, {to_dest("a", kT0 + 5000)});
  std::string m2 = accept_one("cms", "t", "k2", kT0 + 1, {to_dest("a", kT0 + 100)});
  std::string m3 = accept_one("cms", "t", "k3", kT0 + 2, {to_dest("b")});
  std::string m4 = accept_one("crm", "t", "", kT0 + 3, {to_dest("b", kT0 + 9000)});
  std::string m5 = accept_one("cms", "t", "k5", kT0 + 4, {to_dest("a")});
  set_state(2, DeliveryState::Retrying, 2, kT0 + 7000);
  set_state(3, DeliveryState::Delivered, 1, 0);
  set_state(4, DeliveryState::Retrying, 1, kT0 + 10);
  set_state(5, DeliveryState::Dead, 3, 0);
  store_->flush();

  auto active = store_->load_active();
  ASSERT_EQ(active.size(), 3u);
  EXPECT_EQ(active[0].id, 1);
  EXPECT_EQ(active[0].destination, "a");
  EXPECT_EQ(active[0].key, "k1");
  EXPECT_EQ(active[0].source, "cms");
  EXPECT_EQ(active[0].attempts, 0);
  EXPECT_EQ(active[0].due, kT0 + 5000);
  EXPECT_EQ(active[0].received_at, kT0);
  EXPECT_EQ(active[0].message_seq, 1);
  EXPECT_EQ(active[1].id, 2);
  EXPECT_EQ(active[1].attempts, 2);
  EXPECT_EQ(active[1].due, kT0 + 7000);  // max(not_before, next_attempt_at)
  EXPECT_EQ(active[2].id, 4);
  EXPECT_EQ(active[2].key, "");
  EXPECT_EQ(active[2].source, "crm");
  EXPECT_EQ(active[2].due, kT0 + 9000);  // not_before wins
  EXPECT_EQ(active[2].message_seq, 4);
}

// A destination's backlog read back page by page (routing/dispatcher.h): its active deliveries
// only, by id, after the cursor, `limit` at most, each with its message; and the counts.
TEST_P(StoreConformance, ActivePagesOfADestinationByIdWithTheirMessages) {
  std::vector<int64_t> a_ids;
  for (int i = 0; i < 7; ++i) {
    accept_one("cms", "t" + std::to_string(i), "k" + std::to_string(i % 3), kT0 + i,
               {to_dest("a", i == 2 ? kT0 + 5000 : 0), to_dest("b")});
  }
  // Deliveries: message i has ids 2i+1 (a) and 2i+2 (b).
  for (int i = 0; i < 7; ++i) a_ids.push_back(2 * i + 1);
  set_state(a_ids[1], DeliveryState::Delivered, 1, 0);          // not active: never paged
  set_state(a_ids[3], DeliveryState::Retrying, 2, kT0 + 7000);  // active, due later
  set_state(a_ids[5], DeliveryState::Dead, 3, 0);
  store_->flush();

  std::vector<QueuedDelivery> page;
  ASSERT_TRUE(store_->load_active_page("a", 0, 3, page).ok);
  ASSERT_EQ(page.size(), 3u);
  EXPECT_EQ(page[0].id, a_ids[0]);
  EXPECT_EQ(page[1].id, a_ids[2]);
  EXPECT_EQ(page[2].id, a_ids[3]);
  EXPECT_EQ(page[1].due, kT0 + 5000);  // not_before
  EXPECT_EQ(page[2].due, kT0 + 7000);  // next attempt
  EXPECT_EQ(page[2].attempts, 2);
  for (const auto& q : page) {
    EXPECT_EQ(q.destination, "a");
    EXPECT_EQ(q.source, "cms");
    ASSERT_NE(q.message, nullptr) << q.id;
    EXPECT_EQ(q.message->seq, q.message_seq);
    EXPECT_EQ(q.key, q.message->correlation);
    EXPECT_EQ(q.received_at, q.message->received_at);
    EXPECT_FALSE(q.message->body.empty());
  }
  EXPECT_EQ(page[2].message->type, "t3");
  std::vector<QueuedDelivery> rest;
  ASSERT_TRUE(store_->load_active_page("a", page.back().id, 3, rest).ok);
  ASSERT_EQ(rest.size(), 2u);  // a_ids[4], a_ids[6]; a_ids[5] is dead
  EXPECT_EQ(rest[0].id, a_ids[4]);
  EXPECT_EQ(rest[1].id, a_ids[6]);
  std::vector<QueuedDelivery> none;
  ASSERT_TRUE(store_->load_active_page("a", rest.back().id, 3, none).ok);
  EXPECT_TRUE(none.empty());
  ASSERT_TRUE(store_->load_active_page("nowhere", 0, 3, none).ok);
  EXPECT_TRUE(none.empty());

  std::map<std::string, int64_t> counts;
  ASSERT_TRUE(store_->count_active(counts).ok);
  EXPECT_EQ(counts, (std::map<std::string, int64_t>{{"a", 5}, {"b", 7}}));
}

TEST_P(StoreConformance, RecordAndFlushUpdateStateHistoryRefAndPayload) {
  std::string id = accept_one("cms", "t", "k", kT0, {to_dest("a", 0, "r", "m1")});
  int64_t did = delivery_ids(id).at(0);

  DeliveryUpdate u1;
  u1.id = did;
  u1.state = DeliveryState::Retrying;
  u1.attempts = 1;
  u1.next_attempt_at = kT0 + 300;
  u1.now = kT0 + 100;
  u1.attempt = Attempt{kT0 + 90, 10, "retry", "network", 7, "cannot reach", ""};
  u1.payload = "{\"mapped\":1}";
  u1.mapping_version = 3;
  store_->record(u1);

  DeliveryUpdate u2;
  u2.id = did;
  u2.state = DeliveryState::Delivered;
  u2.attempts = 2;
  u2.now = kT0 + 400;
  u2.attempt = Attempt{kT0 + 390, 10, "delivered", "", 201, "HTTP 201", "{\"ok\":true}"};
  u2.external_ref = "/items/42";
  store_->record(u2);
  store_->flush();

  auto d = store_->delivery(did);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->state, DeliveryState::Delivered);
  EXPECT_EQ(d->attempts, 2);
  EXPECT_EQ(d->updated_at, kT0 + 400);
  EXPECT_EQ(d->last_outcome, "delivered");
  EXPECT_EQ(d->last_code, 201);
  EXPECT_EQ(d->last_text, "HTTP 201");
  EXPECT_EQ(d->external_ref, "/items/42");
  EXPECT_EQ(d->mapping, "m1");
  EXPECT_EQ(d->mapping_version, 3);
  ASSERT_TRUE(d->payload.has_value());  // kept: the second update carried none
  EXPECT_EQ(*d->payload, "{\"mapped\":1}");
  EXPECT_EQ(d->message_id, id);

  // A person's action without an attempt replaces the text, keeps the outcome and the ref.
  DeliveryUpdate u3;
  u3.id = did;
  u3.state = DeliveryState::Discarded;
  u3.attempts = 2;
  u3.now = kT0 + 500;
  u3.action_text = "discarded: duplicate at the partner";
  store_->record(u3);
  store_->flush();
  d = store_->delivery(did);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->state, DeliveryState::Discarded);
  EXPECT_EQ(d->last_text, "discarded: duplicate at the partner");
  EXPECT_EQ(d->last_outcome, "delivered");
  EXPECT_EQ(d->external_ref, "/items/42");

  auto rec = store_->message(id, true);
  ASSERT_TRUE(rec);
  ASSERT_EQ(rec->deliveries.size(), 1u);
  const auto& h = rec->deliveries[0].history;
  ASSERT_EQ(h.size(), 2u);  // the action adds no attempt
  EXPECT_EQ(h[0].outcome, "retry");
  EXPECT_EQ(h[0].error_class, "network");
  EXPECT_EQ(h[1].outcome, "delivered");
  EXPECT_EQ(h[1].excerpt, "{\"ok\":true}");
  // Without history the attempts list stays empty.
  EXPECT_TRUE(store_->message(id, false)->deliveries[0].history.empty());
}

TEST_P(StoreConformance, InFlightIsStoredAsPending) {
  std::string id = accept_one("cms", "t", "k", kT0, {to_dest("a")});
  DeliveryUpdate u;
  u.id = delivery_ids(id).at(0);
  u.state = DeliveryState::InFlight;
  u.now = kT0;
  store_->record(u);
  store_->flush();
  EXPECT_EQ(store_->delivery(u.id)->state, DeliveryState::Pending);
}

TEST_P(StoreConformance, ApplyChecksExpectedStateAndExistence) {
  std::string id = accept_one("cms", "t", "k", kT0, {to_dest("a")});
  int64_t did = delivery_ids(id).at(0);

  DeliveryUpdate wrong;
  wrong.id = did;
  wrong.state = DeliveryState::Discarded;
  wrong.now = kT0;
  wrong.expected = {DeliveryState::Dead};
  Status s = store_->apply(wrong);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.http_status, 409);
  EXPECT_NE(s.detail.find("pending"), std::string::npos) << s.detail;
  EXPECT_EQ(store_->delivery(did)->state, DeliveryState::Pending);  // unchanged

  DeliveryUpdate missing = wrong;
  missing.id = 12345;
  s = store_->apply(missing);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.http_status, 404);
  missing.expected.clear();
  s = store_->apply(missing);
  EXPECT_FALSE(s.ok);
  EXPECT_EQ(s.http_status, 404);

  DeliveryUpdate right = wrong;
  right.expected = {DeliveryState::Pending, DeliveryState::Retrying};
  right.action_text = "discarded: test";
  s = store_->apply(right);
  EXPECT_TRUE(s.ok) << s.detail;
  auto d = store_->delivery(did);  // apply() is durable when it returns: no flush needed
  EXPECT_EQ(d->state, DeliveryState::Discarded);
  EXPECT_EQ(d->last_text, "discarded: test");
}

TEST_P(StoreConformance, ListFiltersAndCursorPaging) {
  // 12 messages: sources cms/crm alternate, types t0/t1/t2, correlation k0..k3,
  // received at kT0 + i*1000; destinations a (even) or b (odd); #11 is unrouted.
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) {
    std::vector<NewDelivery> to;
    if (i != 11) to.push_back(to_dest(i % 2 == 0 ? "a" : "b"));
    ids.push_back(accept_one(i % 2 == 0 ? "cms" : "crm", "t" + std::to_string(i % 3),
                             "k" + std::to_string(i % 4), kT0 + i * 1000, to));
  }
  // Deliveries 1..11 belong to messages 0..10; make #3 dead and #4 delivered.
  auto set_state = [&](int64_t did, DeliveryState st) {
    DeliveryUpdate u;
    u.id = did;
    u.state = st;
    u.now = kT0;
    store_->record(u);
  };
  set_state(4, DeliveryState::Dead);
  set_state(5, DeliveryState::Delivered);
  store_->flush();

  auto seqs = [&](MessageFilter f) {
    f.limit = 100;
    std::vector<int64_t> out;
    for (const auto& r : store_->list(f).items) out.push_back(r.message->seq);
    return out;
  };
  using V = std::vector<int64_t>;
  MessageFilter f;
  EXPECT_EQ(seqs(f), (V{12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}));  // newest first
  f = {};
  f.source = "crm";
  EXPECT_EQ(seqs(f), (V{12, 10, 8, 6, 4, 2}));
  f = {};
  f.type = "t2";
  EXPECT_EQ(seqs(f), (V{12, 9, 6, 3}));
  f = {};
  f.correlation = "k1";
  EXPECT_EQ(seqs(f), (V{10, 6, 2}));
  f = {};
  f.destination = "a";
  EXPECT_EQ(seqs(f), (V{11, 9, 7, 5, 3, 1}));
  f = {};
  f.state = "dead";
  EXPECT_EQ(seqs(f), (V{4}));
  f = {};
  f.state = "delivered";
  f.destination = "b";  // message 5 went to a: no match
  EXPECT_TRUE(seqs(f).empty());
  f = {};
  f.state = "pending";
  f.destination = "a";
  EXPECT_EQ(seqs(f), (V{11, 9, 7, 3, 1}));
  f = {};
  f.state = "unrouted";
  EXPECT_EQ(seqs(f), (V{12}));
  f = {};
  f.from = kT0 + 3000;  // inclusive
  f.to = kT0 + 6000;    // exclusive
  EXPECT_EQ(seqs(f), (V{6, 5, 4}));
  f = {};
  f.source = "cms";
  f.type = "t0";
  EXPECT_EQ(seqs(f), (V{7, 1}));  // filters combine
  f.correlation = "k0";
  EXPECT_EQ(seqs(f), (V{1}));

  // Each record carries its deliveries.
  f = {};
  f.correlation = "k3";
  f.limit = 1;
  auto page = store_->list(f);
  ASSERT_EQ(page.items.size(), 1u);
  EXPECT_EQ(page.items[0].message->id, ids[11]);
  EXPECT_TRUE(page.items[0].deliveries.empty());

  // Paging by 5: every message once, in order, and the last page says there is no more.
  for (int limit : {1, 5, 12, 13}) {
    std::vector<int64_t> all;
    MessageFilter pf;
    pf.limit = limit;
    int pages = 0;
    for (;;) {
      auto p = store_->list(pf);
      ++pages;
      ASSERT_LE(p.items.size(), static_cast<size_t>(limit));
      for (const auto& r : p.items) {
        all.push_back(r.message->seq);
        if (r.message->seq <= 11) {
          ASSERT_EQ(r.deliveries.size(), 1u);
          EXPECT_EQ(r.deliveries[0].message_id, r.message->id);
        }
      }
      if (p.next_cursor == 0) break;
      EXPECT_EQ(p.next_cursor, p.items.back().message->seq);
      pf.before_seq = p.next_cursor;
      ASSERT_LT(pages, 20);
    }
    EXPECT_EQ(all, (V{12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1})) << "limit " << limit;
    EXPECT_EQ(pages, (12 + limit - 1) / limit) << "limit " << limit;
  }

  // Paging with a filter.
  std::vector<int64_t> crm;
  MessageFilter cf;
  cf.source = "crm";
  cf.limit = 4;
  auto p1 = store_->list(cf);
  for (const auto& r : p1.items) crm.push_back(r.message->seq);
  ASSERT_NE(p1.next_cursor, 0);
  cf.before_seq = p1.next_cursor;
  auto p2 = store_->list(cf);
  for (const auto& r : p2.items) crm.push_back(r.message->seq);
  EXPECT_EQ(p2.next_cursor, 0);
  EXPECT_EQ(crm, (V{12, 10, 8, 6, 4, 2}));
}

TEST_P(StoreConformance, LoadDeadHeads) {
  auto dead = [&](int64_t did) {
    DeliveryUpdate u;
    u.id = did;
    u.state = DeliveryState::Dead;
    u.now = kT0;
    store_->record(u);
  };
  auto delivered = [&](int64_t did) {
    DeliveryUpdate u;
    u.id = did;
    u.state = DeliveryState::Delivered;
    u.now = kT0;
    store_->record(u);
  };
  // Every (destination, key) with a dead delivery is held by its earliest dead one, whether
  // or not something is queued behind it yet; messages without a key are never held.
  accept_one("cms", "t", "A", kT0, {to_dest("a")});  // d1 dead
  accept_one("cms", "t", "A", kT0, {to_dest("a")});  // d2 pending
  accept_one("cms", "t", "B", kT0, {to_dest("a")});  // d3 dead, nothing after
  accept_one("cms", "t", "", kT0, {to_dest("a")});   // d4 dead, no key
  accept_one("cms", "t", "", kT0, {to_dest("a")});   // d5 pending, no key
  accept_one("cms", "t", "C", kT0, {to_dest("a")});  // d6 dead
  accept_one("cms", "t", "C", kT0, {to_dest("a")});  // d7 dead
  accept_one("cms", "t", "C", kT0, {to_dest("a")});  // d8 retrying
  accept_one("cms", "t", "A", kT0, {to_dest("b")});  // d9 dead (same key, other destination)
  accept_one("cms", "t", "A", kT0, {to_dest("b")});  // d10 delivered
  accept_one("cms", "t", "E", kT0, {to_dest("a")});  // d11 delivered only: not held
  for (int64_t d : {1, 3, 4, 6, 7, 9}) dead(d);
  delivered(10);
  delivered(11);
  DeliveryUpdate r;
  r.id = 8;
  r.state = DeliveryState::Retrying;
  r.attempts = 1;
  r.now = kT0;
  store_->record(r);
  store_->flush();

  auto heads = store_->load_dead_heads();
  std::vector<std::tuple<std::string, std::string, int64_t>> got;
  for (const auto& h : heads) got.emplace_back(h.destination, h.key, h.dead_delivery_id);
  std::sort(got.begin(), got.end());
  using T = std::tuple<std::string, std::string, int64_t>;
  EXPECT_EQ(got, (std::vector<T>{T{"a", "A", 1}, T{"a", "B", 3}, T{"a", "C", 6}, T{"b", "A", 9}}));
}

TEST_P(StoreConformance, CommitListenerGetsNewActiveDeliveriesAfterCommit) {
  std::mutex mu;
  std::vector<QueuedDelivery> got;
  int calls = 0;
  bool all_visible = true;
  Store* store = store_.get();
  store_->set_commit_listener([&](std::vector<QueuedDelivery>&& fresh) {
    // Runs after the commit: the rows must already be readable from another connection.
    bool visible = true;
    for (const auto& q : fresh) {
      auto d = store->delivery(q.id);
      visible = visible && d.has_value() && d->state == DeliveryState::Pending;
    }
    std::lock_guard<std::mutex> lock(mu);
    ++calls;
    all_visible = all_visible && visible;
    for (auto& q : fresh) got.push_back(std::move(q));
  });

  std::vector<Incoming> batch;
  batch.push_back(make_incoming(ids_, "cms", "t", "rdv:1", "e1", kT0,
                                {to_dest("a", kT0 + 42, "r", "m"), to_dest("b")}));
  batch.push_back(make_incoming(ids_, "crm", "t", "", "", kT0 + 1, {}));  // unrouted: nothing
  std::string id1 = batch[0].message->id;
  store_->accept(std::move(batch));
  {
    // The listener has run when accept() returns (after the commit, before the answer), so
    // a retry or discard right after the 202 finds the delivery queued.
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(got.size(), 2u);
  }
  // A duplicate and a state update produce no new deliveries.
  std::vector<Incoming> dup;
  dup.push_back(make_incoming(ids_, "cms", "t", "rdv:1", "e1", kT0, {to_dest("a")}));
  EXPECT_EQ(store_->accept(std::move(dup))[0].kind, AcceptResult::Kind::Duplicate);
  DeliveryUpdate u;
  u.id = 1;
  u.state = DeliveryState::Retrying;
  u.now = kT0;
  store_->record(u);
  store_->flush();
  // A later message shows that the listener is still called (and the duplicate added nothing).
  accept_one("cms", "t", "rdv:2", kT0 + 2, {to_dest("a")});

  std::lock_guard<std::mutex> lock(mu);
  EXPECT_TRUE(all_visible);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(got[0].id, 1);
  EXPECT_EQ(got[0].destination, "a");
  EXPECT_EQ(got[0].source, "cms");
  EXPECT_EQ(got[0].key, "rdv:1");
  EXPECT_EQ(got[0].mapping, "m");
  EXPECT_EQ(got[0].due, kT0 + 42);
  EXPECT_EQ(got[0].received_at, kT0);
  EXPECT_EQ(got[0].message_seq, 1);
  ASSERT_TRUE(got[0].message);
  EXPECT_EQ(got[0].message->id, id1);
  EXPECT_EQ(got[1].id, 2);
  EXPECT_EQ(got[1].destination, "b");
  EXPECT_EQ(got[2].id, 3);
  EXPECT_EQ(got[2].key, "rdv:2");
  EXPECT_EQ(got[2].message_seq, 3);
  store_->set_commit_listener(nullptr);
}

TEST_P(StoreConformance, ConcurrentAcceptsAreGroupCommitted) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 500;
  std::atomic<int> listener_calls{0};
  std::atomic<int> listener_rows{0};
  store_->set_commit_listener([&](std::vector<QueuedDelivery>&& fresh) {
    listener_calls.fetch_add(1);
    listener_rows.fetch_add(static_cast<int>(fresh.size()));
  });
  std::atomic<int> created{0}, other{0};
  std::mutex ids_mu;
  std::set<std::string> all_ids;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::string> mine;
      for (int i = 0; i < kPerThread; ++i) {
        std::vector<Incoming> one;
        one.push_back(make_incoming(ids_, "cms", "t", "k" + std::to_string(t),
                                    "t" + std::to_string(t) + "-" + std::to_string(i), kT0,
                                    {to_dest("a")}));
        auto r = store_->accept(std::move(one));
        if (r.size() == 1 && r[0].kind == AcceptResult::Kind::Created) {
          created.fetch_add(1);
          mine.push_back(r[0].id);
        } else {
          other.fetch_add(1);
        }
      }
      std::lock_guard<std::mutex> lock(ids_mu);
      all_ids.insert(mine.begin(), mine.end());
    });
  }
  for (auto& th : threads) th.join();
  constexpr int kTotal = kThreads * kPerThread;
  EXPECT_EQ(created.load(), kTotal);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(all_ids.size(), static_cast<size_t>(kTotal));
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM messages"), kTotal);
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM deliveries"), kTotal);
  EXPECT_EQ(scalar("SELECT COUNT(DISTINCT seq) FROM messages"), kTotal);
  EXPECT_EQ(scalar("SELECT MAX(seq) FROM messages"), kTotal);
  ASSERT_TRUE(relais::testing::wait_until([&] { return listener_rows.load() == kTotal; }));
  // Many callers shared commits: fewer commits (listener calls) than accepts.
  EXPECT_LT(listener_calls.load(), kTotal);
  store_->set_commit_listener(nullptr);
}

TEST_P(StoreConformance, WritesAfterCloseFail) {
  store_->close();
  std::vector<Incoming> one;
  one.push_back(make_incoming(ids_, "cms", "t", "", "", kT0, {to_dest("a")}));
  auto r = store_->accept(std::move(one));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].kind, AcceptResult::Kind::Failed);
  EXPECT_FALSE(r[0].error.empty());
  DeliveryUpdate u;
  u.id = 1;
  EXPECT_EQ(store_->apply(u).http_status, 503);
  store_->flush();  // returns at once
  store_->close();  // idempotent
}

// --- erasure -----------------------------------------------------------------------------------

// A message with one delivery that went through an attempt: body, mapped payload, the partner's
// excerpt and the texts all carry the person's values.
std::string accept_attempted(IdGenerator& ids, Store& store, const std::string& correlation,
                             const std::string& personal, DeliveryState final_state) {
  std::vector<Incoming> batch;
  batch.push_back(make_incoming(ids, "cms", "rdv", correlation, "", kT0, {to_dest("sms")},
                                "{\"nom\":\"" + personal + "\"}"));
  auto r = store.accept(std::move(batch));
  EXPECT_EQ(r.at(0).kind, AcceptResult::Kind::Created);
  auto rec = store.message(r.at(0).id, false);
  DeliveryUpdate u;
  u.id = rec->deliveries.at(0).id;
  u.state = final_state;
  u.attempts = 1;
  u.now = kT0 + 1;
  u.payload = "{\"to\":\"" + personal + "\"}";
  u.attempt = Attempt{kT0 + 1,
                      5,
                      "failed",
                      "rejected",
                      400,
                      "refused for " + personal,
                      "{\"echo\":\"" + personal + "\"}"};
  EXPECT_TRUE(store.apply(u).ok);
  return r.at(0).id;
}

TEST_P(StoreConformance, ErasureReplacesEveryPayloadOfTheKeyInBatches) {
  std::vector<std::string> erased;
  for (int i = 0; i < 5; ++i) {
    erased.push_back(accept_attempted(ids_, *store_, "individu:58123",
                                      "MARTIN-" + std::to_string(i), DeliveryState::Dead));
  }
  std::string kept =
      accept_attempted(ids_, *store_, "individu:77001", "LEROUX", DeliveryState::Dead);
  ErasureRequest req{"individu:58123", "alice", "demande d'effacement n°12", kT0 + 10, false, 2};
  ErasureResult res;
  Status s = store_->erase(req, res);
  ASSERT_TRUE(s.ok) << s.detail;
  EXPECT_EQ(res.messages, 5);
  EXPECT_EQ(res.deliveries, 5);
  EXPECT_EQ(res.attempts, 5);
  EXPECT_TRUE(res.checkpointed);
  const std::string tomb = erasure_tombstone(req);
  for (const auto& id : erased) {
    auto rec = store_->message(id, true);
    ASSERT_TRUE(rec);
    EXPECT_EQ(rec->message->body, tomb);
    EXPECT_FALSE(erased_tombstone(rec->message->body).is_null());
    EXPECT_EQ(erased_tombstone(rec->message->body).value("par", ""), "alice");
    const auto& d = rec->deliveries.at(0);
    EXPECT_EQ(d.payload.value_or(""), tomb);
    EXPECT_EQ(d.last_text.find("MARTIN"), std::string::npos) << d.last_text;
    ASSERT_EQ(d.history.size(), 1u);
    EXPECT_EQ(d.history[0].excerpt, tomb);
    EXPECT_EQ(d.history[0].text.find("MARTIN"), std::string::npos);
    EXPECT_EQ(d.history[0].error_class, "rejected");  // metadata kept
  }
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM messages WHERE body LIKE '%MARTIN%'"), 0);
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM deliveries WHERE payload LIKE '%MARTIN%' OR "
                   "last_text LIKE '%MARTIN%'"),
            0);
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM attempts WHERE excerpt LIKE '%MARTIN%' OR text LIKE "
                   "'%MARTIN%'"),
            0);
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM messages WHERE erased_at = " + std::to_string(kT0 + 10)),
            5);
  // The other person's payloads are intact.
  auto other = store_->message(kept, true);
  EXPECT_EQ(other->message->body, "{\"nom\":\"LEROUX\"}");
  EXPECT_EQ(other->deliveries.at(0).payload.value_or(""), "{\"to\":\"LEROUX\"}");
  EXPECT_TRUE(erased_tombstone(other->message->body).is_null());
  // Again: nothing left to erase, the first tombstone stays.
  ErasureRequest again = req;
  again.at = kT0 + 20;
  ASSERT_TRUE(store_->erase(again, res).ok);
  EXPECT_EQ(res.messages, 0);
  EXPECT_EQ(store_->message(erased[0], false)->message->body, tomb);
}

TEST_P(StoreConformance, ErasureIsRefusedWhileADeliveryOfTheKeyIsActiveUnlessForced) {
  std::string done =
      accept_attempted(ids_, *store_, "individu:9", "BERNARD", DeliveryState::Delivered);
  std::string waiting =
      accept_attempted(ids_, *store_, "individu:9", "BERNARD", DeliveryState::Retrying);
  ErasureRequest req{"individu:9", "alice", "demande", kT0 + 10, false, 100};
  ErasureResult res;
  Status s = store_->erase(req, res);
  EXPECT_EQ(s.http_status, 409);
  ASSERT_EQ(res.active.size(), 1u);
  EXPECT_EQ(res.active[0], delivery_ids(waiting).at(0));
  EXPECT_EQ(res.messages, 0);
  EXPECT_EQ(store_->message(done, false)->message->body, "{\"nom\":\"BERNARD\"}");
  req.force = true;
  ASSERT_TRUE(store_->erase(req, res).ok);
  EXPECT_EQ(res.messages, 2);
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM messages WHERE body LIKE '%BERNARD%'"), 0);
}

// --- idempotency -------------------------------------------------------------------------------

// Keys remembered a minute, expired keys purged at every group.
class IdempotencyConformance : public StoreConformance {
 protected:
  void SetUp() override {
    options_.idempotency_retention_ms = 60'000;
    options_.purge_every_ms = 0;
    StoreConformance::SetUp();
  }

  AcceptResult send(const std::string& key, const std::string& body, Millis at) {
    std::vector<Incoming> batch;
    batch.push_back(make_incoming(ids_, "cms", "t", "", key, at, {to_dest("a")}, body));
    batch.back().body_digest = body == "" ? "" : "digest:" + body;
    return store_->accept(std::move(batch)).at(0);
  }

  int64_t keys() { return scalar("SELECT COUNT(*) FROM idempotency_keys"); }
};

TEST_P(IdempotencyConformance, SameKeyOtherBodyIsAConflictNamingTheFirstMessage) {
  Millis t = 1'700'000'000'000;
  AcceptResult first = send("demande-1", "{\"a\":1}", t);
  ASSERT_EQ(first.kind, AcceptResult::Kind::Created);
  AcceptResult same = send("demande-1", "{\"a\":1}", t + 10);
  EXPECT_EQ(same.kind, AcceptResult::Kind::Duplicate);
  EXPECT_EQ(same.id, first.id);
  AcceptResult other = send("demande-1", "{\"a\":2}", t + 20);
  EXPECT_EQ(other.kind, AcceptResult::Kind::Conflict);
  EXPECT_EQ(other.id, first.id);
  // Within one batch too.
  std::vector<Incoming> batch;
  batch.push_back(make_incoming(ids_, "cms", "t", "", "k2", t, {to_dest("a")}, "{\"b\":1}"));
  batch.back().body_digest = "x";
  batch.push_back(make_incoming(ids_, "cms", "t", "", "k2", t, {to_dest("a")}, "{\"b\":2}"));
  batch.back().body_digest = "y";
  auto r = store_->accept(std::move(batch));
  EXPECT_EQ(r[0].kind, AcceptResult::Kind::Created);
  EXPECT_EQ(r[1].kind, AcceptResult::Kind::Conflict);
  EXPECT_EQ(r[1].id, r[0].id);
}

TEST_P(IdempotencyConformance, AKeyIsForgottenAfterItsRetention) {
  Millis t = 1'700'000'000'000;
  AcceptResult first = send("demande-9", "{\"a\":1}", t);
  ASSERT_EQ(first.kind, AcceptResult::Kind::Created);
  EXPECT_EQ(send("demande-9", "{\"a\":1}", t + 59'000).kind, AcceptResult::Kind::Duplicate);
  AcceptResult later = send("demande-9", "{\"a\":1}", t + 61'000);
  EXPECT_EQ(later.kind, AcceptResult::Kind::Created);
  EXPECT_NE(later.id, first.id);
  // And remembered again from then on.
  EXPECT_EQ(send("demande-9", "{\"a\":1}", t + 62'000).kind, AcceptResult::Kind::Duplicate);
}

// Within one batch, a key's later messages follow its first one whatever their reception times
// (both engines): further apart than the retention, the later one is still its duplicate.
TEST_P(IdempotencyConformance, WithinOneBatchAKeyFollowsItsFirstMessage) {
  Millis t = 1'700'000'000'000;
  std::vector<Incoming> batch;
  batch.push_back(make_incoming(ids_, "cms", "t", "", "k", t, {to_dest("a")}, "{}"));
  batch.back().body_digest = "d";
  batch.push_back(make_incoming(ids_, "cms", "t", "", "k", t + 61'000, {to_dest("a")}, "{}"));
  batch.back().body_digest = "d";
  batch.push_back(make_incoming(ids_, "cms", "t", "", "k", t + 62'000, {to_dest("a")}, "{}"));
  batch.back().body_digest = "other";
  auto r = store_->accept(std::move(batch));
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].kind, AcceptResult::Kind::Created);
  EXPECT_EQ(r[1].kind, AcceptResult::Kind::Duplicate);
  EXPECT_EQ(r[1].id, r[0].id);
  EXPECT_EQ(r[2].kind, AcceptResult::Kind::Conflict);
  EXPECT_EQ(r[2].id, r[0].id);
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM messages"), 1);
}

// Expired keys are purged, so the table (and its index) stays bounded by the retention.
TEST_P(IdempotencyConformance, ExpiredKeysArePurged) {
  Millis t = 1'700'000'000'000;
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(send("old-" + std::to_string(i), "{}", t).kind, AcceptResult::Kind::Created);
  }
  EXPECT_EQ(keys(), 50);
  ASSERT_EQ(send("new-1", "{}", t + 120'000).kind, AcceptResult::Kind::Created);
  store_->flush();
  EXPECT_EQ(keys(), 1);
}

// --- polling sources ---------------------------------------------------------------------------

// A polled record whose idempotency key was used before with another body (409) is kept as the
// source's reject at its position, in the batch's transaction; the others of the batch and the
// checkpoint are committed; a resubmission with the same body stays a plain duplicate.
TEST_P(StoreConformance, APolledRecordRefusedForItsKeyIsKeptAsARejectAtItsPosition) {
  std::vector<Incoming> first;
  first.push_back(
      make_incoming(ids_, "cms76-db", "demande", "d:7", "id 7", kT0, {to_dest("a")}, "{\"v\":1}"));
  first.back().body_digest = "digest-1";
  auto r = store_->accept_polled(std::move(first), SourceCheckpoint{"cms76-db", "7", {}, {"id 7"}},
                                 kT0 + 1);
  ASSERT_EQ(r.size(), 2u);
  ASSERT_EQ(r[0].kind, AcceptResult::Kind::Created);
  const std::string first_id = r[0].id;
  std::vector<Incoming> next;
  next.push_back(
      make_incoming(ids_, "cms76-db", "demande", "d:7", "id 7", kT0, {to_dest("a")}, "{\"v\":2}"));
  next.back().body_digest = "digest-2";  // same key, another body
  next.push_back(make_incoming(ids_, "cms76-db", "demande", "d:8", "id 8", kT0, {to_dest("a")}));
  next.push_back(
      make_incoming(ids_, "cms76-db", "demande", "d:7", "id 7", kT0, {to_dest("a")}, "{\"v\":1}"));
  next.back().body_digest = "digest-1";  // same key, same body
  r = store_->accept_polled(
      std::move(next), SourceCheckpoint{"cms76-db", "9", {}, {"ligne 2", "ligne 3", "ligne 4"}},
      kT0 + 2);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].kind, AcceptResult::Kind::Conflict);
  EXPECT_EQ(r[0].id, first_id);
  EXPECT_EQ(r[1].kind, AcceptResult::Kind::Created);
  EXPECT_EQ(r[2].kind, AcceptResult::Kind::Duplicate);
  EXPECT_EQ(r[3].kind, AcceptResult::Kind::Created);  // the checkpoint
  EXPECT_EQ(store_->checkpoint("cms76-db").value_or("?"), "9");
  auto rejects = store_->rejects("cms76-db", 0, 10);
  ASSERT_EQ(rejects.size(), 1u);
  EXPECT_EQ(rejects[0].reject.position, "ligne 2");
  EXPECT_EQ(rejects[0].reject.status, 409);
  EXPECT_NE(rejects[0].reject.detail.find(first_id), std::string::npos);
  EXPECT_EQ(rejects[0].reject.detail.find("{\"v\""), std::string::npos);  // never the content
  EXPECT_EQ(rejects[0].at, kT0 + 2);
}

// A polled batch's messages, its checkpoint and its refused records are committed together; the
// checkpoint reads back, the rejects list newest first, by source and with a cursor.
TEST_P(StoreConformance, APolledBatchCommitsItsCheckpointAndRejects) {
  EXPECT_EQ(store_->checkpoint("cms76-db").value_or("?"), "");
  std::vector<Incoming> batch;
  batch.push_back(make_incoming(ids_, "cms76-db", "demande", "d:1", "id 1", kT0, {to_dest("a")}));
  batch.push_back(make_incoming(ids_, "cms76-db", "demande", "d:2", "id 2", kT0, {to_dest("a")}));
  SourceCheckpoint cp{"cms76-db", "{\"id\":3}", {{"id 3", 422, "invalid", "no date"}}};
  auto r = store_->accept_polled(std::move(batch), cp, kT0 + 5);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].kind, AcceptResult::Kind::Created);
  EXPECT_EQ(r[1].kind, AcceptResult::Kind::Created);
  EXPECT_EQ(r[2].kind, AcceptResult::Kind::Created);
  EXPECT_EQ(store_->checkpoint("cms76-db").value_or("?"), "{\"id\":3}");
  // The next batch: one duplicate (same key), a new checkpoint, two rejects.
  std::vector<Incoming> next;
  next.push_back(make_incoming(ids_, "cms76-db", "demande", "d:2", "id 2", kT0, {to_dest("a")}));
  SourceCheckpoint cp2{
      "cms76-db", "{\"id\":9}", {{"id 4", 422, "invalid", "a"}, {"id 5", 400, "unreadable", "b"}}};
  r = store_->accept_polled(std::move(next), cp2, kT0 + 9);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].kind, AcceptResult::Kind::Duplicate);
  EXPECT_EQ(r[1].kind, AcceptResult::Kind::Created);
  EXPECT_EQ(store_->checkpoint("cms76-db").value_or("?"), "{\"id\":9}");
  store_->accept_polled({}, SourceCheckpoint{"other", "x", {{"l 1", 422, "e", "d"}}}, kT0 + 10);
  auto all = store_->rejects("", 0, 10);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].source, "other");
  EXPECT_EQ(all[1].reject.position, "id 5");
  EXPECT_EQ(all[1].reject.status, 400);
  EXPECT_EQ(all[1].at, kT0 + 9);
  EXPECT_EQ(all[3].reject.position, "id 3");
  EXPECT_EQ(all[3].reject.detail, "no date");
  auto mine = store_->rejects("cms76-db", 0, 2);
  ASSERT_EQ(mine.size(), 2u);
  EXPECT_EQ(mine[0].reject.position, "id 5");
  auto older = store_->rejects("cms76-db", mine[1].id, 10);
  ASSERT_EQ(older.size(), 1u);
  EXPECT_EQ(older[0].reject.position, "id 3");
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM messages"), 2);
}

// --- retention ---------------------------------------------------------------------------------

// The retention purge (Store::purge): payloads replaced by the retention tombstone exactly when
// every delivery of a message is past its (route, state) retention — the longest wins, an active
// delivery keeps its message —, an unrouted message from its reception; a dry run changes
// nothing; the rows go after `metadata`, the active ones never.
TEST_P(StoreConformance, RetentionPurgesWhatIsDueThenDeletesTheRows) {
  constexpr Millis kHour = 3600 * 1000;
  RetentionPolicy p;
  p.routes["fast"] = {{"delivered", 7 * kDay}};
  p.unrouted_ms = 10 * kDay;
  p.metadata_ms = 400 * kDay;
  p.batch = 2;  // several batches
  auto add = [&](const std::vector<std::pair<std::string, DeliveryState>>& routes) {
    std::vector<NewDelivery> ds;
    for (const auto& [route, state] : routes) ds.push_back(to_dest("d", 0, route));
    std::string id = accept_one("src", "t", "rdv:1", kT0, ds);
    auto rec = store_->message(id, false);
    for (size_t i = 0; i < routes.size(); ++i) {
      if (routes[i].second == DeliveryState::Pending) continue;
      DeliveryUpdate u;
      u.id = rec->deliveries.at(i).id;
      u.state = routes[i].second;
      u.attempts = 1;
      u.now = kT0 + kHour;
      u.payload = "{\"to\":\"Dupont\"}";
      u.attempt = Attempt{u.now, 3, "delivered", "", 200, "texte Dupont", "{\"echo\":\"Dupont\"}"};
      EXPECT_TRUE(store_->apply(u).ok);
    }
    return id;
  };
  auto purged = [&](const std::string& id) {
    auto rec = store_->message(id, true);
    if (!rec) return false;
    nlohmann::json t = erased_view(rec->message->body);
    if (t.is_null() || t.value("par", "") != "retention") return false;
    for (const auto& d : rec->deliveries) {
      if (d.payload && d.payload != rec->message->body) return false;
      for (const auto& a : d.history) {
        if (a.excerpt.find("Dupont") != std::string::npos) return false;
        if (a.text.find("Dupont") != std::string::npos) return false;
      }
    }
    return true;
  };
  auto intact = [&](const std::string& id) {
    auto rec = store_->message(id, false);
    return rec && erased_tombstone(rec->message->body).is_null();
  };
  auto run = [&](Millis at, bool dry = false) {
    RetentionRun r;
    r.now = at;
    r.dry_run = dry;
    RetentionResult out;
    Status s = store_->purge(p, r, out);
    EXPECT_TRUE(s.ok) << s.error << " " << s.detail;
    return out;
  };
  using S = DeliveryState;
  const std::string fast = add({{"fast", S::Delivered}});
  const std::string slow = add({{"slow", S::Delivered}});
  const std::string both = add({{"fast", S::Delivered}, {"slow", S::Delivered}});
  const std::string active = add({{"fast", S::Delivered}, {"slow", S::Retrying}});
  const std::string pending = add({{"fast", S::Pending}});
  const std::string unrouted = add({});

  EXPECT_EQ(run(kT0 + 6 * kDay).purged_messages, 0);
  RetentionResult dry = run(kT0 + 8 * kDay, true);
  EXPECT_EQ(dry.purged_messages, 1);
  EXPECT_EQ(dry.purge_sample, std::vector<std::string>{fast});
  EXPECT_TRUE(intact(fast)) << "a dry run changes nothing";
  RetentionResult r = run(kT0 + 8 * kDay);
  EXPECT_EQ(r.purged_messages, 1);
  EXPECT_EQ(r.purged_deliveries, 1);
  EXPECT_EQ(r.purged_attempts, 1);
  EXPECT_GE(r.batches, 3);
  EXPECT_TRUE(purged(fast));
  EXPECT_TRUE(intact(both)) << "its slow delivery keeps it 30 days";
  EXPECT_TRUE(intact(unrouted));
  EXPECT_EQ(run(kT0 + 11 * kDay).purged_messages, 1);
  EXPECT_TRUE(purged(unrouted));
  EXPECT_EQ(run(kT0 + 31 * kDay).purged_messages, 2);
  EXPECT_TRUE(purged(slow));
  EXPECT_TRUE(purged(both));
  EXPECT_TRUE(intact(active)) << "an active delivery's message is never touched";
  EXPECT_TRUE(intact(pending));
  EXPECT_EQ(run(kT0 + 399 * kDay).deleted_messages, 0);
  r = run(kT0 + 401 * kDay);
  EXPECT_EQ(r.deleted_messages, 4);
  EXPECT_EQ(r.deleted_deliveries, 4);
  EXPECT_EQ(r.deleted_attempts, 4);
  for (const auto& id : {fast, slow, both, unrouted}) {
    EXPECT_FALSE(store_->message(id, false).has_value()) << id;
  }
  EXPECT_TRUE(intact(active));
  EXPECT_TRUE(intact(pending));
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM messages"), 2);
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM messages WHERE body LIKE '%Dupont%'"), 0);
}

// --- encryption at rest ------------------------------------------------------------------------

// The store with a cipher (core/at_rest.h); what is stored read back raw through the backend.
class AtRestConformance : public StoreConformance {
 protected:
  void SetUp() override { backend_ = StoreBackend::make(GetParam()); }
  void open(std::shared_ptr<const AtRestCipher> c) {
    if (store_) store_->close();
    store_.reset();
    options_.cipher = std::move(c);
    StoreConformance::open();
  }

  std::string add(const std::string& person, const std::string& correlation = "individu:1") {
    return relais::testing::add_personal(ids_, *store_, kT0, person, correlation);
  }
  void expect_clear(const std::string& id, const std::string& person) {
    relais::testing::expect_clear(*store_, id, person);
  }
  // Every stored value of the three encrypted columns, raw.
  std::vector<std::string> stored_values() {
    auto out = backend_->column("SELECT body FROM messages");
    for (auto& v : backend_->column("SELECT payload FROM deliveries WHERE payload IS NOT NULL"))
      out.push_back(v);
    for (auto& v : backend_->column("SELECT excerpt FROM attempts WHERE excerpt <> ''"))
      out.push_back(v);
    return out;
  }
};

// Every value of the three columns is stored encrypted and reads back clear, after a reopen
// too; without a cipher the same values are stored plain (the test can fail).
TEST_P(AtRestConformance, EncryptedColumnsAreStoredEncryptedAndReadBackClear) {
  open(cipher({"A"}, "A"));
  std::string id = add("ZOLTAN-BRUCKNER");
  store_->flush();
  expect_clear(id, "ZOLTAN-BRUCKNER");
  auto values = stored_values();
  EXPECT_EQ(values.size(), 3u);
  for (const auto& v : values) EXPECT_EQ(v.rfind("enc1:A:", 0), 0u) << v;
  open(cipher({"A"}, "A"));
  expect_clear(id, "ZOLTAN-BRUCKNER");
  open(nullptr);
  add("ZOLTAN-PLAIN");
  store_->flush();
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM messages WHERE body LIKE '%ZOLTAN-PLAIN%'"), 1);
  EXPECT_EQ(scalar("SELECT COUNT(*) FROM messages WHERE body LIKE '%ZOLTAN-BRUCKNER%'"), 0);
}

TEST_P(AtRestConformance, ATamperedOrMovedValueIsAnErrorNotACrash) {
  open(cipher({"A"}, "A"));
  std::string a = add("ALICE-MARTIN");
  std::string b = add("BRUNO-MARTIN");
  store_->flush();
  // a: one base64 character of its body changed; b: a's payload copied onto b's delivery.
  auto body = backend_->column("SELECT body FROM messages WHERE id = '" + a + "'").at(0);
  body[body.size() - 6] = body[body.size() - 6] == 'Q' ? 'R' : 'Q';
  backend_->exec("UPDATE messages SET body = '" + body + "' WHERE id = '" + a + "'");
  backend_->exec(
      "UPDATE deliveries SET payload = (SELECT payload FROM deliveries WHERE id = 1) "
      "WHERE id = 2");
  auto ra = store_->message(a, true);
  ASSERT_TRUE(ra);
  EXPECT_NE(ra->message->unreadable.find("tag mismatch"), std::string::npos)
      << ra->message->unreadable;
  EXPECT_NE(ra->message->body.find("illisible"), std::string::npos) << "the console's placeholder";
  EXPECT_EQ(ra->deliveries.at(0).payload.value_or(""), "{\"to\":\"ALICE-MARTIN\"}");
  auto rb = store_->message(b, true);
  ASSERT_TRUE(rb);
  EXPECT_TRUE(rb->message->unreadable.empty());
  const std::string moved = rb->deliveries.at(0).payload.value_or("");
  EXPECT_EQ(moved.find("ALICE"), std::string::npos) << "a value moved to another row never opens";
  EXPECT_NE(moved.find("contenu chiffré illisible"), std::string::npos) << moved;
  EXPECT_NE(store_->message_by_seq(1)->unreadable.find("payload cannot be decrypted"),
            std::string::npos);
}

TEST_P(AtRestConformance, AValueUnderAKeyThatIsNotConfiguredSaysWhichKey) {
  open(cipher({"A"}, "A"));
  std::string id = add("CLARA-DUVAL");
  store_->flush();
  open(cipher({"B"}, "B"));
  auto rec = store_->message(id, true);
  ASSERT_TRUE(rec);
  EXPECT_NE(rec->message->unreadable.find("key A unknown"), std::string::npos)
      << rec->message->unreadable;
  EXPECT_EQ(rec->message->body.find("CLARA"), std::string::npos);
  EXPECT_NE(rec->deliveries.at(0).history.at(0).excerpt.find("[contenu chiffré illisible"),
            std::string::npos);
  // Without any key the same.
  open(nullptr);
  EXPECT_NE(store_->message(id, false)->message->unreadable.find("key A unknown"),
            std::string::npos);
}

TEST_P(AtRestConformance, RekeyInterruptedThenResumedLeavesNothingOnTheOldKey) {
  open(cipher({"A"}, "A"));
  std::vector<std::string> ids;
  for (int i = 0; i < 1500; ++i) ids.push_back(add("PERSONNE-" + std::to_string(i)));
  store_->flush();
  // Rotation: B active, A still configured.
  open(cipher({"A", "B"}, "B"));
  std::string late = add("APRES-ROTATION");  // written on B at once
  store_->flush();
  EXPECT_EQ(store_->rekey_remaining(), 3 * 1500);
  RekeyRequest req;
  req.batch = 200;
  RekeyProgress p;
  int batches = 0;
  Status s = store_->rekey(req, p, [&](const RekeyProgress&) { return ++batches < 5; });
  ASSERT_TRUE(s.ok) << s.detail;
  EXPECT_FALSE(p.finished) << "stopped after 5 batches";
  EXPECT_EQ(p.to_do, 3 * 1500);
  EXPECT_EQ(p.done, 5 * 200);
  EXPECT_EQ(store_->rekey_remaining(), 3 * 1500 - 5 * 200);
  // Resumed (after a restart): it finds what is left.
  open(cipher({"A", "B"}, "B"));
  std::vector<RekeyProgress> seen;
  s = store_->rekey(req, p, [&](const RekeyProgress& now) {
    seen.push_back(now);
    return true;
  });
  ASSERT_TRUE(s.ok) << s.detail;
  EXPECT_TRUE(p.finished);
  EXPECT_EQ(p.to_do, 3 * 1500 - 5 * 200);
  EXPECT_EQ(p.done, p.to_do);
  EXPECT_EQ(p.unreadable, 0);
  EXPECT_EQ(p.remaining, 0);
  ASSERT_GT(seen.size(), 3u);
  EXPECT_LT(seen.front().done, seen.back().done) << "progress after each batch";
  // Only B now.
  for (const auto& v : stored_values()) EXPECT_EQ(v.rfind("enc1:B:", 0), 0u) << v;
  open(cipher({"B"}, "B"));
  for (size_t i = 0; i < ids.size(); i += 97) expect_clear(ids[i], "PERSONNE-" + std::to_string(i));
  expect_clear(ids.back(), "PERSONNE-1499");
  expect_clear(late, "APRES-ROTATION");
  EXPECT_EQ(store_->rekey_remaining(), 0);
}

TEST_P(AtRestConformance, RekeyRunsWhileMessagesKeepComing) {
  open(cipher({"A"}, "A"));
  for (int i = 0; i < 400; ++i) add("AVANT-" + std::to_string(i));
  store_->flush();
  open(cipher({"A", "B"}, "B"));
  RekeyProgress p;
  Status s;
  std::thread rekey([&] {
    RekeyRequest r;
    r.batch = 25;  // many small jobs, interleaved with the accepts and outcomes
    s = store_->rekey(r, p, nullptr);
  });
  std::vector<std::string> during;
  for (int i = 0; i < 200; ++i) during.push_back(add("PENDANT-" + std::to_string(i)));
  rekey.join();
  store_->flush();
  ASSERT_TRUE(s.ok) << s.detail;
  EXPECT_TRUE(p.finished);
  EXPECT_EQ(p.done, 3 * 400);
  EXPECT_EQ(store_->rekey_remaining(), 0);
  open(cipher({"B"}, "B"));
  expect_clear(during.back(), "PENDANT-199");
  for (const auto& v : stored_values()) EXPECT_EQ(v.rfind("enc1:B:", 0), 0u) << v;
}

TEST_P(AtRestConformance, ErasureWorksOnEncryptedRowsAndKeepsThemEncrypted) {
  open(cipher({"A"}, "A"));
  std::string gone = add("EFFACE-MOI", "individu:58123");
  std::string kept = add("GARDE-MOI", "individu:77001");
  store_->flush();
  ErasureRequest req{"individu:58123", "alice", "demande n°12", kT0 + 10, false, 100};
  ErasureResult res;
  Status s = store_->erase(req, res);
  ASSERT_TRUE(s.ok) << s.detail;
  EXPECT_EQ(res.messages, 1);
  EXPECT_EQ(res.deliveries, 1);
  EXPECT_EQ(res.attempts, 1);
  auto rec = store_->message(gone, true);
  ASSERT_TRUE(rec);
  const std::string tomb = erasure_tombstone(req);
  EXPECT_EQ(rec->message->body, tomb);
  EXPECT_EQ(rec->deliveries.at(0).payload.value_or(""), tomb);
  EXPECT_EQ(rec->deliveries.at(0).history.at(0).excerpt, tomb);
  expect_clear(kept, "GARDE-MOI");
  for (const auto& v : stored_values()) EXPECT_EQ(v.rfind("enc1:A:", 0), 0u) << v;
  EXPECT_EQ(store_->rekey_remaining(), 0);
}

// --- cross-references ---------------------------------------------------------------------------

// The cross-references (core/xref_store.h) of a store the backend created and migrated.
class XrefConformance : public StoreConformance {
 protected:
  void SetUp() override {
    StoreConformance::SetUp();
    xrefs_ = backend_->open_xrefs(clock_);
  }
  void TearDown() override {
    xrefs_.reset();
    StoreConformance::TearDown();
  }
  // Rows in the table for (destination, key), counted behind the store's back.
  int64_t raw_rows(const std::string& destination, const std::string& key) {
    return scalar("SELECT COUNT(*) FROM xrefs WHERE destination = '" + destination +
                  "' AND key = '" + key + "'");
  }

  std::unique_ptr<XrefStore> xrefs_;
};

TEST_P(XrefConformance, PutThenGetReturnsTheRecordStampedByTheClock) {
  auto in = xref("outlook", "rdv-1", "AAMkAD=", "DwAAABYA", "01HMSG1");
  in.updated_at = 42;  // ignored: the store stamps the time
  xrefs_->put(in);

  auto got = xrefs_->get("outlook", "rdv-1");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->destination, "outlook");
  EXPECT_EQ(got->key, "rdv-1");
  EXPECT_EQ(got->external_id, "AAMkAD=");
  EXPECT_EQ(got->version, "DwAAABYA");
  EXPECT_EQ(got->message_id, "01HMSG1");
  EXPECT_EQ(got->updated_at, kT0);
  EXPECT_EQ(xrefs_->count("outlook"), 1u);
}

TEST_P(XrefConformance, EmptyVersionAndDigitsOnlyTextRoundTripAsText) {
  xrefs_->put(xref("graph", "rdv-1", "0042", ""));
  xrefs_->put(xref("graph", "rdv-2", "id with spaces, 'quotes' and é", "007"));
  auto a = xrefs_->get("graph", "rdv-1");
  auto b = xrefs_->get("graph", "rdv-2");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->external_id, "0042");
  EXPECT_EQ(a->version, "");
  EXPECT_EQ(b->external_id, "id with spaces, 'quotes' and é");
  EXPECT_EQ(b->version, "007");
}

TEST_P(XrefConformance, UpsertKeepsOneRowAndUpdatesVersionTimeAndMessage) {
  xrefs_->put(xref("outlook", "rdv-1", "item-1", "ck-1", "01MSGA"));
  clock_.advance(5'000);
  xrefs_->put(xref("outlook", "rdv-1", "item-1", "ck-2", "01MSGB"));

  auto got = xrefs_->get("outlook", "rdv-1");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->external_id, "item-1");
  EXPECT_EQ(got->version, "ck-2");
  EXPECT_EQ(got->message_id, "01MSGB");
  EXPECT_EQ(got->updated_at, kT0 + 5'000);
  EXPECT_EQ(xrefs_->count("outlook"), 1u);
  EXPECT_EQ(raw_rows("outlook", "rdv-1"), 1);

  // A recreate (the item was gone) replaces the external id too.
  xrefs_->put(xref("outlook", "rdv-1", "item-2", "ck-1", "01MSGC"));
  EXPECT_EQ(xrefs_->get("outlook", "rdv-1")->external_id, "item-2");
  EXPECT_EQ(raw_rows("outlook", "rdv-1"), 1);
}

TEST_P(XrefConformance, RemoveDeletesAndSaysWhetherThereWasAReference) {
  xrefs_->put(xref("outlook", "rdv-1", "item-1", "ck-1"));
  xrefs_->put(xref("outlook", "rdv-2", "item-2", "ck-1"));

  EXPECT_TRUE(xrefs_->remove("outlook", "rdv-1"));
  EXPECT_FALSE(xrefs_->get("outlook", "rdv-1").has_value());
  EXPECT_EQ(raw_rows("outlook", "rdv-1"), 0);
  EXPECT_FALSE(xrefs_->remove("outlook", "rdv-1"));  // already gone
  EXPECT_FALSE(xrefs_->remove("outlook", "never"));
  EXPECT_TRUE(xrefs_->get("outlook", "rdv-2").has_value());
  EXPECT_EQ(xrefs_->count("outlook"), 1u);

  // After a removal, a put creates again.
  xrefs_->put(xref("outlook", "rdv-1", "item-3", "ck-1"));
  EXPECT_EQ(xrefs_->get("outlook", "rdv-1")->external_id, "item-3");
}

TEST_P(XrefConformance, GetOfAMissingKeyIsEmpty) {
  EXPECT_FALSE(xrefs_->get("outlook", "rdv-1").has_value());
  EXPECT_EQ(xrefs_->count("outlook"), 0u);
  xrefs_->put(xref("outlook", "rdv-1", "item-1", "ck-1"));
  EXPECT_FALSE(xrefs_->get("outlook", "rdv-10").has_value());
  EXPECT_FALSE(xrefs_->get("outlook", "RDV-1").has_value());  // keys are case-sensitive
  EXPECT_FALSE(xrefs_->get("outlook", "").has_value());
}

TEST_P(XrefConformance, PutRejectsMissingDestinationKeyOrExternalId) {
  EXPECT_THROW(xrefs_->put(xref("", "rdv-1", "item-1", "ck")), std::invalid_argument);
  EXPECT_THROW(xrefs_->put(xref("outlook", "", "item-1", "ck")), std::invalid_argument);
  EXPECT_THROW(xrefs_->put(xref("outlook", "rdv-1", "", "ck")), std::invalid_argument);
  EXPECT_EQ(xrefs_->count("outlook"), 0u);
  EXPECT_EQ(xrefs_->count(""), 0u);
}

TEST_P(XrefConformance, ListsByDestinationAndPeriodOldestFirstWithLimit) {
  // Written out of time order; two share a time (ordered by key then).
  clock_.set(kT0 + 300);
  xrefs_->put(xref("outlook", "c", "id-c", "v"));
  clock_.set(kT0 + 100);
  xrefs_->put(xref("outlook", "b", "id-b", "v"));
  clock_.set(kT0 + 100);
  xrefs_->put(xref("outlook", "a", "id-a", "v"));
  clock_.set(kT0 + 200);
  xrefs_->put(xref("outlook", "d", "id-d", "v"));
  xrefs_->put(xref("graph", "g", "id-g", "v"));  // another destination, same time
  clock_.set(kT0 + 400);
  xrefs_->put(xref("outlook", "e", "id-e", "v"));

  using V = std::vector<std::string>;
  EXPECT_EQ(keys_of(xrefs_->list("outlook", kT0, kT0 + 1'000, 100)), (V{"a", "b", "d", "c", "e"}));
  // from is inclusive, to exclusive.
  EXPECT_EQ(keys_of(xrefs_->list("outlook", kT0 + 100, kT0 + 300, 100)), (V{"a", "b", "d"}));
  EXPECT_EQ(keys_of(xrefs_->list("outlook", kT0 + 101, kT0 + 301, 100)), (V{"d", "c"}));
  // limit keeps the oldest.
  EXPECT_EQ(keys_of(xrefs_->list("outlook", kT0, kT0 + 1'000, 3)), (V{"a", "b", "d"}));
  EXPECT_TRUE(xrefs_->list("outlook", kT0, kT0 + 1'000, 0).empty());
  // Empty or inverted periods.
  EXPECT_TRUE(xrefs_->list("outlook", kT0 + 200, kT0 + 200, 100).empty());
  EXPECT_TRUE(xrefs_->list("outlook", kT0 + 300, kT0 + 100, 100).empty());
  EXPECT_TRUE(xrefs_->list("outlook", kT0 + 500, kT0 + 1'000, 100).empty());
  // A huge limit is no limit.
  EXPECT_EQ(xrefs_->list("outlook", kT0, kT0 + 1'000, static_cast<size_t>(-1)).size(), 5u);

  // Records come back whole.
  auto one = xrefs_->list("graph", kT0, kT0 + 1'000, 10);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0], (CrossReference{"graph", "g", "id-g", "v", kT0 + 200, "01MSG"}));

  // An update moves a reference to its new time.
  clock_.set(kT0 + 500);
  xrefs_->put(xref("outlook", "a", "id-a", "v2"));
  EXPECT_EQ(keys_of(xrefs_->list("outlook", kT0, kT0 + 1'000, 100)), (V{"b", "d", "c", "e", "a"}));
}

TEST_P(XrefConformance, KeysOfOtherDestinationsNeverLeak) {
  xrefs_->put(xref("outlook", "rdv-1", "ews-item", "ck-1"));
  xrefs_->put(xref("graph", "rdv-1", "graph-event", "etag-1"));
  xrefs_->put(xref("graph", "rdv-2", "graph-event-2", "etag-1"));

  EXPECT_EQ(xrefs_->get("outlook", "rdv-1")->external_id, "ews-item");
  EXPECT_EQ(xrefs_->get("graph", "rdv-1")->external_id, "graph-event");
  EXPECT_FALSE(xrefs_->get("outlook", "rdv-2").has_value());
  EXPECT_FALSE(xrefs_->get("outlook2", "rdv-1").has_value());
  EXPECT_FALSE(xrefs_->get("outloo", "rdv-1").has_value());
  EXPECT_EQ(xrefs_->count("outlook"), 1u);
  EXPECT_EQ(xrefs_->count("graph"), 2u);
  EXPECT_EQ(xrefs_->count("other"), 0u);
  EXPECT_EQ(keys_of(xrefs_->list("outlook", kT0, kT0 + 1, 10)), std::vector<std::string>{"rdv-1"});

  // Updating or removing in one destination leaves the other alone.
  xrefs_->put(xref("outlook", "rdv-1", "ews-item", "ck-2"));
  EXPECT_EQ(xrefs_->get("graph", "rdv-1")->version, "etag-1");
  EXPECT_FALSE(xrefs_->remove("outlook", "rdv-2"));
  EXPECT_TRUE(xrefs_->remove("graph", "rdv-1"));
  EXPECT_EQ(xrefs_->get("outlook", "rdv-1")->version, "ck-2");
  EXPECT_EQ(xrefs_->count("graph"), 1u);
}

// Each thread owns some keys (checks it reads back exactly what it wrote) and all fight over one
// shared key (which must end as a single row holding one thread's last write).
void hammer(XrefStore& xrefs, int threads, int rounds, int keys_per_thread,
            const std::function<XrefStore&(int)>& store_for) {
  std::atomic<int> mismatches{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      XrefStore& s = store_for(t);
      try {
        for (int i = 0; i < rounds; ++i) {
          std::string key = "t" + std::to_string(t) + "-k" + std::to_string(i % keys_per_thread);
          std::string version = std::to_string(i);
          s.put(xref("outlook", key, "item-" + key, version));
          auto got = s.get("outlook", key);
          if (!got || got->version != version || got->external_id != "item-" + key) ++mismatches;
          s.put(xref("outlook", "shared", "item-shared", "t" + std::to_string(t) + "-" + version));
          if (!s.get("outlook", "shared")) ++mismatches;
        }
      } catch (const std::exception&) {
        ++errors;
      }
    });
  }
  for (auto& th : pool) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(xrefs.count("outlook"), static_cast<size_t>(threads * keys_per_thread + 1));
  for (int t = 0; t < threads; ++t) {
    for (int k = 0; k < keys_per_thread; ++k) {
      std::string key = "t" + std::to_string(t) + "-k" + std::to_string(k);
      auto got = xrefs.get("outlook", key);
      ASSERT_TRUE(got.has_value()) << key;
      // The last round that wrote key k.
      int last = ((rounds - 1 - k) / keys_per_thread) * keys_per_thread + k;
      EXPECT_EQ(got->version, std::to_string(last)) << key;
    }
  }
  auto shared = xrefs.get("outlook", "shared");
  ASSERT_TRUE(shared.has_value());
  EXPECT_EQ(shared->version.substr(shared->version.find('-') + 1), std::to_string(rounds - 1));
}

TEST_P(XrefConformance, ConcurrentPutAndGetFromEightThreads) {
  hammer(*xrefs_, 8, 120, 10, [this](int) -> XrefStore& { return *xrefs_; });
}

TEST_P(XrefConformance, TwoConnectionsOnTheSameFileWorkTogether) {
  // As relais and `relais calendar reconcile` would.
  auto second = backend_->open_xrefs(clock_);
  hammer(*xrefs_, 8, 100, 5, [&](int t) -> XrefStore& { return t % 2 == 0 ? *xrefs_ : *second; });
  EXPECT_EQ(second->count("outlook"), xrefs_->count("outlook"));
}

TEST_P(XrefConformance, SurvivesReopen) {
  xrefs_->put(xref("outlook", "rdv-1", "item-1", "ck-1", "01MSGA"));
  clock_.advance(1'000);
  xrefs_->put(xref("graph", "rdv-2", "event-2", "", "01MSGB"));
  xrefs_->put(xref("outlook", "rdv-3", "item-3", "ck-1"));
  EXPECT_TRUE(xrefs_->remove("outlook", "rdv-3"));
  xrefs_.reset();

  xrefs_ = backend_->open_xrefs(clock_);
  EXPECT_EQ(xrefs_->get("outlook", "rdv-1"),
            (CrossReference{"outlook", "rdv-1", "item-1", "ck-1", kT0, "01MSGA"}));
  EXPECT_EQ(xrefs_->get("graph", "rdv-2"),
            (CrossReference{"graph", "rdv-2", "event-2", "", kT0 + 1'000, "01MSGB"}));
  EXPECT_FALSE(xrefs_->get("outlook", "rdv-3").has_value());
  EXPECT_EQ(xrefs_->count("outlook"), 1u);
}

INSTANTIATE_TEST_SUITE_P(Engines, StoreConformance, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });
INSTANTIATE_TEST_SUITE_P(Engines, XrefConformance, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });
INSTANTIATE_TEST_SUITE_P(Engines, AtRestConformance, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });
INSTANTIATE_TEST_SUITE_P(Engines, IdempotencyConformance, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace relais

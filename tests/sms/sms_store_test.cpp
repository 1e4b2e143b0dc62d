// The SMS store on a real SQLite file: send references, and every write guarded by the state
// order (the gateway's answer, delivery reports in any order, unknown results, new sends), so a
// record never goes back and its created_at never changes.

#include "core/sms_store.h"

#include <gtest/gtest.h>

#include "core/store.h"
#include "store/sqlite/sqlite_backend.h"
#include "tests/support/relais_process.h"

namespace relais::sms {
namespace {

TEST(SmsReference, EachSendHasItsOwnAndNamesItsDelivery) {
  EXPECT_EQ(send_reference(42, 1), "d42");
  EXPECT_EQ(send_reference(42, 3), "d42.3");
  int64_t id = 0;
  int n = 0;
  ASSERT_TRUE(parse_send_reference("d42", id, n));
  EXPECT_EQ(id, 42);
  EXPECT_EQ(n, 1);
  ASSERT_TRUE(parse_send_reference("d42.3", id, n));
  EXPECT_EQ(n, 3);
  for (const char* bad : {"", "d", "probe", "d4x", "d42.", "x42", "d42.0", "d.2", "d42.2.1"}) {
    EXPECT_FALSE(parse_send_reference(bad, id, n)) << bad;
  }
}

class SmsStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions so;
    so.path = dir_.path() + "/relais.db";
    so.synchronous_full = false;
    open_sqlite_store(so)->close();  // creates the tables (migration 5)
    store_ = open_sqlite_sms_store(so.path, clock_);
  }
  SmsRecord fresh(int64_t id) {
    SmsRecord r;
    r.delivery_id = id;
    r.destination = "sms";
    r.driver = "kannel";
    r.number_hash = "hash";
    r.encoding = "GSM-7";
    r.segments = 1;
    return r;
  }
  std::string state(int64_t id) { return store_->by_delivery(id).value_or(SmsRecord{}).state; }

  testing::TempDir dir_{"relais-sms-store-"};
  ManualClock clock_{1'800'000'000'000};
  std::shared_ptr<SmsStore> store_;
};

TEST_F(SmsStoreTest, TheAnswerNeverMovesBackWhatAReportMovedForward) {
  SmsRecord r = fresh(1);
  ASSERT_EQ(store_->begin_attempt(r, ""), SmsStore::Begin::Started);
  EXPECT_EQ(r.reference, "d1");
  Millis created = clock_.now_ms();
  clock_.advance(1000);
  ASSERT_TRUE(store_->report("d1", "", "smsc", 8, "").has_value());
  clock_.advance(1000);
  EXPECT_TRUE(store_->answer(1, "d1", "accepted", "k-77", ""));
  auto rec = store_->by_delivery(1);
  EXPECT_EQ(rec->state, "smsc");
  EXPECT_EQ(rec->gateway_ref, "k-77");  // the answer's id is kept all the same
  EXPECT_EQ(rec->dlr_status, 8);
  EXPECT_TRUE(store_->answer(1, "d1", "retry", "", "503"));
  EXPECT_EQ(state(1), "smsc");
  EXPECT_EQ(store_->report("d1", "", "delivered", 1, "")->state, "delivered");
  EXPECT_EQ(store_->report("d1", "", "smsc", 8, "")->state, "delivered");    // late
  EXPECT_EQ(store_->report("d1", "", "failed", 2, "")->state, "delivered");  // final
  EXPECT_TRUE(store_->answer(1, "d1", "failed", "", "late refusal"));
  EXPECT_EQ(state(1), "delivered");
  // A new send starts only from the state the connector read.
  SmsRecord again = fresh(1);
  again.reference = "d1";
  EXPECT_EQ(store_->begin_attempt(again, "retry"), SmsStore::Begin::Changed);
  EXPECT_EQ(store_->begin_attempt(again, "submitting"), SmsStore::Begin::Changed);
  EXPECT_EQ(store_->by_delivery(1)->created_at, created);
}

TEST_F(SmsStoreTest, AnUnknownSendIsSettledByItsReportOrSentAgainWithANewReference) {
  SmsRecord r = fresh(2);
  ASSERT_EQ(store_->begin_attempt(r, ""), SmsStore::Begin::Started);
  Millis created = clock_.now_ms();
  EXPECT_FALSE(store_->mark_unknown(2, "d2.2", "wrong send"));
  clock_.advance(5000);
  EXPECT_TRUE(store_->mark_unknown(2, "d2", "timeout"));
  EXPECT_FALSE(store_->mark_unknown(2, "d2", "twice"));  // only out of submitting
  auto rec = store_->by_delivery(2);
  EXPECT_EQ(rec->state, "unknown");
  EXPECT_EQ(rec->updated_at, created + 5000);  // the wait starts here
  // No report: a second send, with its own reference and the same created_at.
  clock_.advance(300000);
  SmsRecord second = fresh(2);
  second.reference = rec->reference;
  ASSERT_EQ(store_->begin_attempt(second, "unknown"), SmsStore::Begin::Started);
  EXPECT_EQ(second.reference, "d2.2");
  EXPECT_FALSE(store_->answer(2, "d2", "accepted", "", ""));  // not the current send
  EXPECT_TRUE(store_->answer(2, "d2.2", "accepted", "", ""));
  // Reports about the first send: only "delivered" counts.
  EXPECT_EQ(store_->report("d2", "", "failed", 16, "")->state, "accepted");
  EXPECT_EQ(store_->report("d2", "", "smsc", 8, "")->state, "accepted");
  EXPECT_EQ(store_->report("d2.2", "", "smsc", 8, "")->state, "smsc");
  EXPECT_EQ(store_->report("d2", "", "delivered", 1, "")->state, "delivered");
  EXPECT_EQ(store_->by_delivery(2)->created_at, created);
  // A report settles an unknown send too.
  SmsRecord third = fresh(3);
  ASSERT_EQ(store_->begin_attempt(third, ""), SmsStore::Begin::Started);
  ASSERT_TRUE(store_->mark_unknown(3, "d3", "cut"));
  EXPECT_EQ(store_->report("d3", "", "failed", 16, "")->state, "failed");
  SmsRecord resend = fresh(3);
  resend.reference = "d3";
  ASSERT_EQ(store_->begin_attempt(resend, "failed"), SmsStore::Begin::Started);
  EXPECT_EQ(resend.reference, "d3.2");
  EXPECT_EQ(store_->by_delivery(3)->dlr_status, 0);
  // Unknown references and gateway ids find nothing.
  EXPECT_FALSE(store_->report("d404", "", "delivered", 1, "").has_value());
  EXPECT_FALSE(store_->report("probe", "", "delivered", 1, "").has_value());
  EXPECT_FALSE(store_->report("", "nope", "delivered", 1, "").has_value());
}

TEST_F(SmsStoreTest, AGatewaysIdFindsTheCurrentSendOnly) {
  SmsRecord r = fresh(4);
  ASSERT_EQ(store_->begin_attempt(r, ""), SmsStore::Begin::Started);
  ASSERT_TRUE(store_->answer(4, "d4", "accepted", "ovh-1", ""));
  EXPECT_EQ(store_->report("", "ovh-1", "failed", 2, "")->state, "failed");
  SmsRecord again = fresh(4);
  again.reference = "d4";
  ASSERT_EQ(store_->begin_attempt(again, "failed"), SmsStore::Begin::Started);
  // The first send's id is forgotten: its late reports cannot fail the second send.
  EXPECT_FALSE(store_->report("", "ovh-1", "failed", 2, "").has_value());
  ASSERT_TRUE(store_->answer(4, "d4.2", "accepted", "ovh-2", ""));
  EXPECT_EQ(store_->report("", "ovh-2", "delivered", 1, "")->state, "delivered");
}

}  // namespace
}  // namespace relais::sms

// The SMS records' send references. The store's guarded writes (the gateway's answer, delivery
// reports in any order, unknown results, new sends) are tested on every engine by the
// conformance suite (tests/core/store_backend_conformance_test.cpp).

#include "core/sms_store.h"

#include <gtest/gtest.h>

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

// The SMS store's guarded writes are tested on every engine in
// tests/core/store_backend_conformance_test.cpp (SmsStores).

}  // namespace
}  // namespace relais::sms

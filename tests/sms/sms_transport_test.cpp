// The SMS drivers' transport (sms::submit_sms): a submission is never re-sent by libcurl when
// the gateway saved it and the connection died before its answer — Kannel's GET goes on a
// connection of its own, OVH's POST on a reused one with a body libcurl may not rewind — and
// such a loss reads as "unknown_outcome"; the gateway's "slow down" (429, 503 + Retry-After) is
// a throttle of the destination (through the SMS destination: sms_deliver_test.cpp).

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <atomic>

#include "connectors/sms/sms_drivers.h"
#include "tests/sms/ovh_simulator.h"
#include "tests/support/saves_then_resets.h"

namespace relais {
namespace {

using testing::SavedRequest;
using testing::SavesThenResets;

constexpr Millis kNow = 1'764'583'200'000;  // 2025-12-01T10:00:00Z

ConfigView driver_view(const std::string& yaml) {
  return ConfigView(YAML::Load(yaml), {&sms::sms_driver_spec()}, "connectors.sms");
}

sms::SmsToSend sample(const std::string& text) {
  sms::SmsToSend s;
  s.to = "+33600000000";
  s.text = text;
  s.reference = "d1";
  s.client_ref = "d1";
  return s;
}

// One slot's handle, kept between submissions like the SMS destination's.
class Slot {
 public:
  Slot() : h_(curl_easy_init()) {}
  ~Slot() { curl_easy_cleanup(h_); }
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;
  sms::Submission submit(const sms::SmsDriver& d, const std::string& text) {
    return sms::submit_sms(h_, d, sample(text), CurlTransfer{5000, 2000, true, ""}, clock_, 600000);
  }

 private:
  CURL* h_;
  ManualClock clock_{kNow};
};

// A Kannel smsbox stand-in: "0: Accepted for delivery" (202), as Kannel answers.
SavesThenResets::Backend smsbox() {
  return
      [](const SavedRequest&) { return SavesThenResets::answer(202, "0: Accepted for delivery"); };
}

bool sendsms(const SavedRequest& r) {
  return r.target.rfind("/cgi-bin/sendsms", 0) == 0;
}

TEST(SmsTransport, KannelSubmissionsNeverShareAConnection) {
  SavesThenResets kannel(smsbox());
  auto d = sms::make_sms_driver(driver_view("driver: kannel\nurl: " + kannel.base() +
                                            "/cgi-bin/sendsms\nusername: u\npassword: p\n"));
  Slot slot;
  for (int i = 0; i < 3; ++i) {
    sms::Submission s = slot.submit(*d, "Rappel " + std::to_string(i));
    ASSERT_TRUE(s.answered);
    EXPECT_EQ(s.answer.state, "accepted");
  }
  EXPECT_EQ(kannel.connections(), 3);  // a reused connection is never offered to libcurl
  for (const auto& r : kannel.requests()) EXPECT_EQ(r.on_connection, 1);
}

TEST(SmsTransport, KannelSubmissionLostAfterSavingIsUnknownAndSentOnce) {
  SavesThenResets kannel(smsbox());
  auto d = sms::make_sms_driver(driver_view("driver: kannel\nurl: " + kannel.base() +
                                            "/cgi-bin/sendsms\nusername: u\npassword: p\n"));
  Slot slot;
  ASSERT_TRUE(slot.submit(*d, "Rappel 1").answered);
  kannel.arm_any(sendsms);
  sms::Submission s = slot.submit(*d, "Rappel 2");
  ASSERT_TRUE(kannel.fired());
  EXPECT_FALSE(s.answered);
  EXPECT_FALSE(s.not_sent);
  EXPECT_EQ(s.outcome.kind, Outcome::Kind::Retry);
  EXPECT_EQ(s.outcome.error_class, "unknown_outcome");
  EXPECT_EQ(kannel.count(sendsms), 2u);  // "Rappel 1" and "Rappel 2", once each
}

class OvhTransport : public ::testing::Test {
 protected:
  OvhTransport()
      : ovh_("sms-ab12345-1", "ak-1", "as-secret", "ck-1"),
        net_(std::stoi(ovh_.endpoint().substr(ovh_.endpoint().rfind(':') + 1))) {}
  std::unique_ptr<sms::SmsDriver> driver() {
    // ovh_time_sync: GET /auth/time first, so the POST goes on a reused connection.
    return sms::make_sms_driver(driver_view(
        "driver: ovh\nurl: " + net_.base() +
        "/1.0\novh_service: sms-ab12345-1\novh_application_key: ak-1\n"
        "ovh_application_secret: as-secret\novh_consumer_key: ck-1\novh_time_sync: true\n"));
  }
  static bool job(const SavedRequest& r) { return r.method == "POST"; }
  testing::OvhSimulator ovh_;
  SavesThenResets net_;
};

TEST_F(OvhTransport, JobLostOnAReusedConnectionIsNotSentTwice) {
  auto d = driver();
  Slot slot;
  net_.arm(job);
  sms::Submission s = slot.submit(*d, "Rappel RDV");
  ASSERT_TRUE(net_.fired());
  auto reqs = net_.requests();
  ASSERT_EQ(reqs.size(), 2u) << "the job was sent again";
  EXPECT_EQ(reqs[0].method, "GET");  // /auth/time
  EXPECT_EQ(reqs[1].on_connection, 2);
  EXPECT_EQ(ovh_.jobs().size(), 1u);  // OVH took it (the signature was good)
  EXPECT_EQ(ovh_.refused(), 0);
  EXPECT_FALSE(s.answered);
  EXPECT_EQ(s.outcome.kind, Outcome::Kind::Retry);
  EXPECT_EQ(s.outcome.error_class, "unknown_outcome");
  EXPECT_NE(s.outcome.text.find("peut-être"), std::string::npos) << s.outcome.text;
  // The next submission goes through on a new connection.
  sms::Submission next = slot.submit(*d, "Rappel RDV");
  ASSERT_TRUE(next.answered);
  EXPECT_EQ(next.answer.state, "accepted");
  EXPECT_EQ(ovh_.jobs().size(), 2u);
}

TEST(SmsTransport, TooManyRequestsAndBusyWithADelayThrottle) {
  std::atomic<int> status{429};
  std::atomic<bool> with_delay{true};
  SavesThenResets gw([&](const SavedRequest&) {
    return SavesThenResets::answer(status, "{}", with_delay ? "Retry-After: 30\r\n" : "");
  });
  auto d = sms::make_sms_driver(
      driver_view("driver: http\nurl: " + gw.base() + "/send\nhttp_body: '{\"to\":\"{{to}}\"}'\n"));
  Slot slot;
  sms::Submission a = slot.submit(*d, "x");
  ASSERT_TRUE(a.answered);
  EXPECT_EQ(a.outcome.kind, Outcome::Kind::Throttle);
  EXPECT_EQ(a.outcome.code, 429);
  EXPECT_EQ(a.outcome.retry_after_ms, 30000);
  status = 503;
  EXPECT_EQ(slot.submit(*d, "x").outcome.kind, Outcome::Kind::Throttle);
  with_delay = false;
  sms::Submission c = slot.submit(*d, "x");
  EXPECT_EQ(c.outcome.kind, Outcome::Kind::Retry);  // 503 without a delay: a failed attempt
  EXPECT_EQ(c.outcome.error_class, "http");
}

}  // namespace
}  // namespace relais

// The Kannel driver's transport against a real Kannel smsbox: a submission whose answer is
// lost after Kannel took it (the connection reset before a byte of answer) is not sent a second
// time by libcurl, reads as "unknown_outcome", and the fake SMSC receives each SMS once.

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>

#include "connectors/sms/sms_drivers.h"
#include "core/clock.h"
#include "tests/sms/kannel_gateway.h"
#include "tests/support/relais_process.h"
#include "tests/support/saves_then_resets.h"

namespace relais::testing {
namespace {

TEST(KannelTransport, SubmissionLostAfterKannelTookItIsNotSentTwice) {
  KannelOptions ko;
  KannelGateway kannel(ko);
  kannel.start();
  SavesThenResets net(kannel.sendsms_port());
  ConfigView view(YAML::Load("driver: kannel\nurl: " + net.base() + "/cgi-bin/sendsms\nusername: " +
                             ko.sendsms_user + "\npassword: " + ko.sendsms_password + "\n"),
                  {&sms::sms_driver_spec()}, "connectors.sms");
  auto driver = sms::make_sms_driver(view);
  CURL* h = curl_easy_init();
  ManualClock clock(1'764'583'200'000);
  auto submit = [&](const std::string& text) {
    sms::SmsToSend s;
    s.to = "+33600000000";
    s.text = text;
    s.sender = "CD76";
    s.reference = s.client_ref = "d1";
    return sms::submit_sms(h, *driver, s, CurlTransfer{10000, 2000, true, ""}, clock, 60000);
  };
  sms::Submission first = submit("Rappel un");
  ASSERT_TRUE(first.answered) << first.outcome.text;
  EXPECT_EQ(first.answer.state, "accepted") << first.answer.text;
  net.arm_any([](const SavedRequest& r) { return r.target.find("Rappel") != std::string::npos; });
  sms::Submission lost = submit("Rappel deux");
  curl_easy_cleanup(h);
  ASSERT_TRUE(net.fired());
  EXPECT_FALSE(lost.answered);
  EXPECT_EQ(lost.outcome.error_class, "unknown_outcome") << lost.outcome.text;
  EXPECT_EQ(net.requests().size(), 2u);  // no copy on another connection
  EXPECT_EQ(net.connections(), 2);       // each submission on its own connection
  ASSERT_TRUE(wait_until([&] { return kannel.received() >= 2; }, std::chrono::seconds(15)))
      << kannel.fakesmsc_output();
  auto got = kannel.messages();
  EXPECT_EQ(std::count(got.begin(), got.end(), "Rappel deux"), 1) << kannel.fakesmsc_output();
}

}  // namespace
}  // namespace relais::testing

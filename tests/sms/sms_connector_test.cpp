// SMS destination pieces without a gateway: numbers (libphonenumber, overseas regions from the
// postcode), STOP keywords, the drivers' requests and answers (Kannel, OVH signature, HTTP
// templates).

#include <gtest/gtest.h>

#include <algorithm>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "connectors/sms/sms_drivers.h"
#include "connectors/sms/sms_phone.h"

namespace relais::sms {
namespace {

TEST(SmsPhone, FrenchMobileGoesOutAsE164) {
  auto c = check_mobile("06.00.00.00.00", "76000", "FR");
  ASSERT_TRUE(c.ok) << c.reason;
  EXPECT_EQ(c.e164, "+33600000000");
  EXPECT_EQ(c.region, "FR");
  EXPECT_TRUE(check_mobile("+33 6 12 34 56 78", "", "FR").ok);
}

TEST(SmsPhone, LandlineAndGarbageAreRefusedWithAReasonButNoNumber) {
  auto fixed = check_mobile("02.35.00.00.00", "76000", "FR");
  EXPECT_FALSE(fixed.ok);
  EXPECT_EQ(fixed.reason, "pas un numéro de portable");
  auto bad = check_mobile("06 00 00", "", "FR");
  EXPECT_FALSE(bad.ok);
  EXPECT_EQ(bad.reason.find("06"), std::string::npos);
  auto none = check_mobile("", "", "FR");
  EXPECT_FALSE(none.ok);
  EXPECT_EQ(none.reason, "pas de numéro de téléphone");
}

TEST(SmsPhone, OverseasRegionComesFromThePostcode) {
  EXPECT_EQ(region_from_postcode("97400"), "RE");
  EXPECT_EQ(region_from_postcode("97100"), "GP");
  EXPECT_EQ(region_from_postcode("97200"), "MQ");
  EXPECT_EQ(region_from_postcode("97300"), "GF");
  EXPECT_EQ(region_from_postcode("97600"), "YT");
  EXPECT_EQ(region_from_postcode("76000"), "");
  // A Réunion mobile written nationally is only valid read as RE.
  EXPECT_FALSE(check_mobile("0692 12 34 56", "76000", "FR").ok);
  auto re = check_mobile("0692 12 34 56", "97400", "FR");
  ASSERT_TRUE(re.ok) << re.reason;
  EXPECT_EQ(re.e164, "+262692123456");
  auto gp = check_mobile("0690 12 34 56", "97110", "FR");
  ASSERT_TRUE(gp.ok) << gp.reason;
  EXPECT_EQ(gp.e164, "+590690123456");
}

TEST(SmsPhone, OptOutHashIsStableAndHidesTheNumber) {
  std::string h = optout_hash("+33600000000");
  EXPECT_EQ(h.size(), 64u);
  EXPECT_EQ(h, optout_hash("+33600000000"));
  EXPECT_NE(h, optout_hash("+33600000001"));
  EXPECT_EQ(h.find("33600000000"), std::string::npos);
}

TEST(SmsPhone, StopAndItsUsualVariants) {
  for (const char* t :
       {"STOP", "stop", "Stop SMS", "STOP.", " stop!", "ARRET", "Arrêt", "arrêter", "désabonner",
        "Me désabonner", "DESINSCRIRE", "unsubscribe", "StopSMS", "\"STOP\""}) {
    EXPECT_TRUE(is_stop_request(t)) << t;
  }
  EXPECT_EQ(stop_keyword("Arrêt."), "ARRET");
  EXPECT_EQ(stop_keyword("me désabonner"), "DESABONNER");
  EXPECT_EQ(stop_keyword("Stop SMS"), "STOP");
  for (const char* t : {"", "merci", "je serai en retard", "stopover demain ?", "OK", "arrive"}) {
    EXPECT_FALSE(is_stop_request(t)) << t;
  }
}

ConfigView view(const std::string& yaml) {
  return ConfigView(YAML::Load(yaml), {&sms_driver_spec()}, "connectors.sms");
}

SmsToSend sample() {
  SmsToSend s;
  s.to = "+33600000000";
  s.text = "Département 76 : rappel";
  s.sender = "CD76";
  s.reference = "d42";
  s.client_ref = "uuid-1";
  return s;
}

TEST(SmsKannel, RequestCarriesTheNumberTheTextAndTheDeliveryReportUrl) {
  auto d = make_sms_driver(
      view("driver: kannel\nurl: http://127.0.0.1:13013/cgi-bin/sendsms\nusername: u\npassword: p\n"
           "dlr_url: http://relais/api/v1/connectors/sms/inbound/dlr?token=t\n"));
  HttpCall c = d->build(sample(), 0);
  EXPECT_EQ(c.method, "GET");
  EXPECT_NE(c.url.find("to=%2B33600000000"), std::string::npos) << c.url;
  EXPECT_NE(c.url.find("text=D%C3%A9partement%2076"), std::string::npos) << c.url;
  EXPECT_NE(c.url.find("from=CD76"), std::string::npos);
  EXPECT_NE(c.url.find("dlr-mask=31"), std::string::npos);
  EXPECT_NE(c.url.find("charset=UTF-8&coding=0"), std::string::npos);
  // The dlr-url is encoded once; Kannel fills %d in it.
  EXPECT_NE(c.url.find("token%3Dt%26ref%3Dd42%26status%3D%25d"), std::string::npos) << c.url;
}

TEST(SmsKannel, AnswersAreClassifiedLikeTheUserGuideSays) {
  auto d = make_sms_driver(view("driver: kannel\nurl: http://k/cgi-bin/sendsms\n"));
  auto a = d->classify(202, "0: Accepted for delivery");
  EXPECT_EQ(a.kind, Outcome::Kind::Delivered);
  EXPECT_EQ(a.state, "accepted");
  a = d->classify(202, "3: Queued for later delivery");
  EXPECT_EQ(a.kind, Outcome::Kind::Delivered);
  EXPECT_EQ(a.state, "queued");
  EXPECT_EQ(d->classify(503, "Temporal failure, try again later.").kind, Outcome::Kind::Retry);
  EXPECT_EQ(d->classify(403, "Not routable. Do not try again.").kind, Outcome::Kind::Reject);
  EXPECT_EQ(d->classify(400, "Missing receiver number").kind, Outcome::Kind::Reject);
  EXPECT_EQ(d->classify(500, "").kind, Outcome::Kind::Retry);
}

TEST(SmsOvh, SignatureIsSha1OfTheJoinedParts) {
  // echo -n 'AS+CK+GET+https://eu.api.ovh.com/1.0/me++1366560945' | sha1sum
  EXPECT_EQ(ovh_signature("AS", "CK", "GET", "https://eu.api.ovh.com/1.0/me", "", 1366560945),
            "$1$302a5fe8c63712cdc1af50a6ff18f5b370d7b4c1");
}

TEST(SmsOvh, RequestIsSignedAndAnswersClassified) {
  auto d = make_sms_driver(
      view("driver: ovh\nurl: https://eu.api.ovh.com/1.0/\novh_service: sms-xx11111-1\n"
           "ovh_application_key: AK\novh_application_secret: AS\novh_consumer_key: CK\n"));
  HttpCall c = d->build(sample(), 1'700'000'000'000);
  EXPECT_EQ(c.method, "POST");
  EXPECT_EQ(c.url, "https://eu.api.ovh.com/1.0/sms/sms-xx11111-1/jobs");
  auto body = nlohmann::json::parse(c.body);
  EXPECT_EQ(body["receivers"], nlohmann::json::array({"+33600000000"}));
  EXPECT_EQ(body["message"], "Département 76 : rappel");
  EXPECT_EQ(body["sender"], "CD76");
  EXPECT_EQ(body["tag"], "uuid-1");
  std::string sig = ovh_signature("AS", "CK", "POST", c.url, c.body, 1'700'000'000);
  EXPECT_NE(std::find(c.headers.begin(), c.headers.end(), "X-Ovh-Signature: " + sig),
            c.headers.end());
  EXPECT_NE(std::find(c.headers.begin(), c.headers.end(), "X-Ovh-Timestamp: 1700000000"),
            c.headers.end());
  // OVH's clock: asked once, then used for an hour.
  auto tc = d->time_call(1'700'000'000'000);
  ASSERT_TRUE(tc.has_value());
  EXPECT_EQ(tc->url, "https://eu.api.ovh.com/1.0/auth/time");
  d->on_time_answer(200, "1700000100", 1'700'000'000'000);
  EXPECT_FALSE(d->time_call(1'700'000'060'000).has_value());
  EXPECT_TRUE(d->time_call(1'700'003'700'000).has_value());
  HttpCall synced = d->build(sample(), 1'700'000'000'000);
  EXPECT_NE(std::find(synced.headers.begin(), synced.headers.end(), "X-Ovh-Timestamp: 1700000100"),
            synced.headers.end());
  auto ok = d->classify(200, R"({"ids":[123456],"invalidReceivers":[],"totalCreditsRemoved":1,)"
                             R"("validReceivers":["+33600000000"]})");
  EXPECT_EQ(ok.kind, Outcome::Kind::Delivered);
  EXPECT_EQ(ok.gateway_ref, "123456");
  auto invalid = d->classify(200, R"({"ids":[],"invalidReceivers":["+33600000000"]})");
  EXPECT_EQ(invalid.kind, Outcome::Kind::Reject);
  auto sig_bad =
      d->classify(400, R"({"errorCode":"INVALID_SIGNATURE","message":"Invalid signature"})");
  EXPECT_EQ(sig_bad.kind, Outcome::Kind::Reject);
  EXPECT_NE(sig_bad.text.find("INVALID_SIGNATURE"), std::string::npos);
  EXPECT_EQ(d->classify(429, "{}").kind, Outcome::Kind::Retry);
  EXPECT_EQ(d->classify(503, "").kind, Outcome::Kind::Retry);
}

TEST(SmsHttp, TemplatesFillTheRequest) {
  auto d = make_sms_driver(
      view("driver: http\nurl: https://sms.example/v1/messages?id={{client_ref}}\n"
           "http_body: '{\"to\":\"{{to}}\",\"message\":\"{{text}}\",\"coding\":\"{{coding}}\"}'\n"
           "http_headers: {Idempotency-Key: '{{client_ref}}'}\nhttp_ref_path: $.messageId\n"));
  SmsToSend s = sample();
  s.text = "dit \"oui\"";
  HttpCall c = d->build(s, 0);
  EXPECT_EQ(c.url, "https://sms.example/v1/messages?id=uuid-1");
  auto body = nlohmann::json::parse(c.body);
  EXPECT_EQ(body["message"], "dit \"oui\"");
  EXPECT_EQ(body["coding"], "gsm7");
  EXPECT_NE(std::find(c.headers.begin(), c.headers.end(), "Idempotency-Key: uuid-1"),
            c.headers.end());
  auto a = d->classify(201, R"({"messageId":"m-9"})");
  EXPECT_EQ(a.kind, Outcome::Kind::Delivered);
  EXPECT_EQ(a.gateway_ref, "m-9");
  EXPECT_EQ(d->classify(422, "{}").kind, Outcome::Kind::Reject);
  EXPECT_EQ(d->classify(429, "{}").kind, Outcome::Kind::Retry);
}

}  // namespace
}  // namespace relais::sms

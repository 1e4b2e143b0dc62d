// Fuzz target: what the SMS destination reads from outside: a reply from a phone (STOP
// keywords), a number as typed (libphonenumber, postcode), and the gateways' answers (Kannel
// text, OVH JSON, a provider's JSON through a path).

#include <yaml-cpp/yaml.h>

#include "connectors/sms/sms_drivers.h"
#include "connectors/sms/sms_phone.h"
#include "connectors/sms/sms_text.h"
#include "tests/fuzz/fuzz_targets.h"

namespace {

struct Fixture {
  std::vector<std::unique_ptr<relais::sms::SmsDriver>> drivers;
  Fixture() {
    for (const char* y :
         {"driver: kannel\nurl: http://k/cgi-bin/sendsms\n",
          "driver: ovh\nurl: https://eu.api.ovh.com/1.0\novh_service: s\n"
          "ovh_application_key: a\novh_application_secret: b\novh_consumer_key: c\n",
          "driver: http\nurl: http://p/send\nhttp_body: '{\"to\":\"{{to}}\"}'\n"
          "http_ref_path: $.data.id\n"}) {
      relais::ConfigView v(YAML::Load(y), {&relais::sms::sms_driver_spec()}, "fuzz");
      drivers.push_back(relais::sms::make_sms_driver(v));
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Fixture f;
  std::string text(reinterpret_cast<const char*>(data), size);
  (void)relais::sms::stop_keyword(text);
  auto c = relais::sms::check_mobile(text, text.substr(0, 5), "FR");
  if (c.ok && (c.e164.empty() || c.e164[0] != '+')) __builtin_trap();
  auto info = relais::sms::analyse_sms_text(text);
  if (!text.empty() && info.segments == 0) __builtin_trap();
  long status = size > 0 ? 200 + static_cast<long>(data[0] % 4) * 100 : 200;
  for (const auto& d : f.drivers) {
    (void)d->classify(status, text);
    relais::sms::SmsToSend s;
    s.to = c.e164;
    s.text = text;
    (void)d->build(s, 0);
  }
  return 0;
}

// Trusted proxies (api/proxy.h): which X-Forwarded-For is believed and which hop is the client;
// secrets in URLs masked for display (api/http_util.h redact_url).

#include <gtest/gtest.h>

#include "api/http_util.h"
#include "api/proxy.h"

namespace relais::api {
namespace {

TrustedProxies make(const std::vector<std::string>& entries) {
  std::vector<std::string> errors;
  TrustedProxies p(entries, errors);
  EXPECT_TRUE(errors.empty()) << errors.front();
  return p;
}

TEST(TrustedProxies, AddressesAndRanges) {
  auto p = make({"127.0.0.1", "10.0.0.0/8", "fd00::/8"});
  EXPECT_TRUE(p.trusts("127.0.0.1"));
  EXPECT_FALSE(p.trusts("127.0.0.2"));
  EXPECT_TRUE(p.trusts("10.1.2.3"));
  EXPECT_FALSE(p.trusts("11.0.0.1"));
  EXPECT_TRUE(p.trusts("fd12::1"));
  EXPECT_TRUE(p.trusts("::ffff:10.0.0.7"));  // IPv4 through an IPv6 socket
  EXPECT_FALSE(p.trusts("::1"));
  EXPECT_FALSE(p.trusts("not an address"));
}

TEST(TrustedProxies, BadEntriesAreNamed) {
  std::vector<std::string> errors;
  TrustedProxies p({"10.0.0.0/33", "proxy.example", "10.0.0.0/"}, errors);
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_NE(errors[0].find("0 to 32"), std::string::npos) << errors[0];
  EXPECT_TRUE(p.empty());
}

TEST(TrustedProxies, TheClientIsTheRightmostUntrustedHop) {
  auto p = make({"127.0.0.1", "10.0.0.0/8"});
  // From a trusted peer: the last hop it appended.
  EXPECT_EQ(p.client("127.0.0.1", "203.0.113.7"), "203.0.113.7");
  // A client that writes its own X-Forwarded-For cannot choose its address: the proxies append
  // the real one on the right.
  EXPECT_EQ(p.client("127.0.0.1", "1.2.3.4, 203.0.113.7"), "203.0.113.7");
  EXPECT_EQ(p.client("127.0.0.1", "1.2.3.4, 203.0.113.7, 10.0.0.5"), "203.0.113.7");
  // Every hop trusted: the leftmost.
  EXPECT_EQ(p.client("127.0.0.1", "10.0.0.9,10.0.0.5"), "10.0.0.9");
  // Garbage: the last hop that could be read.
  EXPECT_EQ(p.client("127.0.0.1", "203.0.113.7, garbage"), "127.0.0.1");
  EXPECT_EQ(p.client("127.0.0.1", ",10.0.0.5"), "10.0.0.5");
  EXPECT_EQ(p.client("127.0.0.1", ""), "127.0.0.1");
  // From an untrusted peer the header is ignored.
  EXPECT_EQ(p.client("198.51.100.1", "203.0.113.7"), "198.51.100.1");
  EXPECT_EQ(make({}).client("127.0.0.1", "203.0.113.7"), "127.0.0.1");
}

TEST(RedactUrl, SecretsInUserinfoAndQueryAreMasked) {
  EXPECT_EQ(redact_url("https://u:p4ss@h.example:8443/x?token=abc&page=2"),
            "https://u:•••@h.example:8443/x?token=•••&page=2");
  EXPECT_EQ(redact_url("http://h/x?Password=a;apiKey=b&client_secret=c&sig=d#frag"),
            "http://h/x?Password=•••;apiKey=•••&client_secret=•••&sig=•••#frag");
  EXPECT_EQ(redact_url("http://user@h/x?q=1"), "http://user@h/x?q=1");  // no password
  EXPECT_EQ(redact_url("http://h/a@b?x=1"), "http://h/a@b?x=1");        // '@' in the path
  EXPECT_EQ(redact_url("http://h/{$.rdv.id}?key={$.k}"), "http://h/{$.rdv.id}?key=•••");
  EXPECT_EQ(redact_url("plain text"), "plain text");
  EXPECT_EQ(redact_url("http://h/?token="), "http://h/?token=");
}

}  // namespace
}  // namespace relais::api

// Signed webhooks (core/signature.h): the HMAC itself against RFC 4231, the signed text, and
// every way a check fails.

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "core/crypto.h"
#include "core/pseudonym.h"
#include "core/signature.h"

namespace relais {
namespace {

TEST(HmacSha256, MatchesRfc4231) {
  // RFC 4231, test case 2.
  EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_NE(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            hmac_sha256_hex("Jeff", "what do ya want for nothing?"));
  EXPECT_EQ(hmac_sha256_hex("", "").size(), 64u);
}

TEST(Sha256, ByPiecesEqualsInOneGo) {
  // FIPS 180-2, "abc"; then a text fed in uneven pieces.
  Sha256 abc;
  abc.update("a");
  abc.update("");
  abc.update("bc");
  EXPECT_EQ(abc.hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::string text(100000, 'x');
  for (size_t i = 0; i < text.size(); ++i) text[i] = char('a' + i * 7 % 26);
  Sha256 pieces;
  for (size_t at = 0, n = 1; at < text.size(); at += n, n = n * 3 % 4097 + 1) {
    pieces.update(std::string_view(text).substr(at, n));
  }
  EXPECT_EQ(pieces.hex(), sha256_hex(text));
}

class SignatureTest : public ::testing::Test {
 protected:
  SignatureScheme s_;
  const int64_t now_ms_ = 1796000000000;  // a fixed "now"
  const std::string ts_ = "1796000000";
  const std::string body_ = "{\"event\":\"rdv.planned\"}";
  void SetUp() override { s_.secret = "a-shared-secret-of-32-characters"; }
  SignatureCheck check(const std::string& sig, const std::string& ts, const std::string& body) {
    return verify_signature(s_, sig, ts, body, now_ms_);
  }
};

TEST_F(SignatureTest, TheSignedTextIsTimestampDotBody) {
  EXPECT_EQ(signed_text("1796000000", "{}"), "1796000000.{}");
  EXPECT_EQ(signature_value(s_.secret, ts_, body_),
            "sha256=" + hmac_sha256_hex(s_.secret, ts_ + "." + body_));
}

TEST_F(SignatureTest, AGoodSignatureIsAcceptedWithOrWithoutPrefixInAnyCase) {
  std::string sig = signature_value(s_.secret, ts_, body_);
  EXPECT_EQ(check(sig, ts_, body_), SignatureCheck::Ok);
  EXPECT_EQ(check(sig.substr(7), ts_, body_), SignatureCheck::Ok);
  std::string upper = sig;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(check(upper, ts_, body_), SignatureCheck::Ok);
}

TEST_F(SignatureTest, EveryFailureIsNamed) {
  std::string sig = signature_value(s_.secret, ts_, body_);
  EXPECT_EQ(check("", ts_, body_), SignatureCheck::MissingSignature);
  EXPECT_EQ(check(sig, "", body_), SignatureCheck::MissingTimestamp);
  EXPECT_EQ(check(sig, "yesterday", body_), SignatureCheck::BadTimestamp);
  EXPECT_EQ(check(sig, "99999999999999999999", body_), SignatureCheck::BadTimestamp);
  // The body, the timestamp or the secret changed.
  EXPECT_EQ(check(sig, ts_, body_ + " "), SignatureCheck::BadSignature);
  EXPECT_EQ(check(sig, "1796000001", body_), SignatureCheck::BadSignature);
  EXPECT_EQ(check(signature_value("another-secret-of-some-length", ts_, body_), ts_, body_),
            SignatureCheck::BadSignature);
  EXPECT_EQ(check("sha256=", ts_, body_), SignatureCheck::BadSignature);
  EXPECT_STREQ(to_string(SignatureCheck::Stale), "stale_timestamp");
  EXPECT_NE(explain(SignatureCheck::MissingSignature, s_).find("X-Signature"), std::string::npos);
  EXPECT_EQ(explain(SignatureCheck::BadSignature, s_).find(s_.secret), std::string::npos);
}

TEST_F(SignatureTest, TheToleranceBoundsReplaysBothWays) {
  s_.tolerance_ms = 300000;
  auto at = [&](int64_t offset_s) {
    std::string ts = std::to_string(now_ms_ / 1000 + offset_s);
    return check(signature_value(s_.secret, ts, body_), ts, body_);
  };
  EXPECT_EQ(at(-300), SignatureCheck::Ok);
  EXPECT_EQ(at(300), SignatureCheck::Ok);
  EXPECT_EQ(at(-301), SignatureCheck::Stale);  // a captured request replayed later
  EXPECT_EQ(at(301), SignatureCheck::Stale);   // a clock far ahead
  EXPECT_EQ(at(-86400), SignatureCheck::Stale);
}

// Keyed pseudonyms (core/pseudonym.h).
TEST(Pseudonym, KeyedIsHmacAndWithoutAKeyStaysTheFormerSha256) {
  struct KeyGuard {
    ~KeyGuard() { set_pseudonym_key(""); }
  } guard;
  const std::string value = "cms76|DUPONT|MARIE|1984-03-12";
  set_pseudonym_key("");
  EXPECT_FALSE(has_pseudonym_key());
  EXPECT_EQ(pseudonym_hex(value), sha256_hex(value));
  EXPECT_EQ(legacy_pseudonym_hex(value), sha256_hex(value));
  const std::string key(40, 'z');
  set_pseudonym_key(key);
  EXPECT_TRUE(has_pseudonym_key());
  EXPECT_EQ(pseudonym_hex(value), hmac_sha256_hex(key, value));
  EXPECT_NE(pseudonym_hex(value), sha256_hex(value));
  EXPECT_EQ(legacy_pseudonym_hex(value), sha256_hex(value));
  EXPECT_THROW(set_pseudonym_key("too-short"), std::invalid_argument);
}

TEST(Pseudonym, TheKeyComesFromTheFileElseTheEnvironment) {
  std::string path = ::testing::TempDir() + "/pseudonym.key";
  std::ofstream(path) << std::string(32, 'f') << "\n";
  ::setenv("RELAIS_PSEUDONYM_KEY", std::string(33, 'e').c_str(), 1);
  EXPECT_EQ(load_pseudonym_key(path), std::string(32, 'f'));
  EXPECT_EQ(load_pseudonym_key(""), std::string(33, 'e'));
  ::unsetenv("RELAIS_PSEUDONYM_KEY");
  EXPECT_EQ(load_pseudonym_key(""), "");
  EXPECT_THROW(load_pseudonym_key(path + ".missing"), std::runtime_error);
}

}  // namespace
}  // namespace relais

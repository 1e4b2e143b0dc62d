// GSM-7 / UCS-2 detection, segment counting, cost, maximum of segments and the GSM-7-safe
// rewrite; the built-in GSM table is checked against the Unicode Consortium's GSM0338.TXT.
#include "connectors/sms/sms_text.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace relais::sms {
namespace {

using ::testing::HasSubstr;

std::string repeat(std::string_view s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

// (code, unicode) pairs of GSM0338.TXT in file order, without commented lines.
std::vector<std::pair<unsigned, unsigned>> read_fixture_table() {
  const std::string path = std::string(RELAIS_SHARED_DIR) + "/fixtures/sms/GSM0338.TXT";
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::vector<std::pair<unsigned, unsigned>> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string code, unicode;
    fields >> code >> unicode;
    rows.emplace_back(std::stoul(code, nullptr, 16), std::stoul(unicode, nullptr, 16));
  }
  return rows;
}

TEST(Gsm7Table, MatchesTheUnicodeFixture) {
  auto rows = read_fixture_table();
  ASSERT_EQ(rows.size(), 138u);  // 128 basic (escape included) + 10 extension
  // The escape code is not a character: its "displayed as NBSP" mapping is left out.
  auto esc = std::find_if(rows.begin(), rows.end(), [](auto& r) { return r.first == 0x1B; });
  ASSERT_NE(esc, rows.end());
  EXPECT_EQ(esc->second, 0xA0u);
  rows.erase(esc);

  std::vector<std::pair<unsigned, unsigned>> ours;
  for (const Gsm7Entry& e : gsm7_table())
    ours.emplace_back(e.code, static_cast<unsigned>(e.unicode));
  EXPECT_EQ(ours, rows);
  EXPECT_EQ(std::count_if(ours.begin(), ours.end(), [](auto& r) { return r.first > 0x7F; }), 10);
}

TEST(Gsm7Table, SeptetsPerCharacter) {
  for (const Gsm7Entry& e : gsm7_table())
    EXPECT_EQ(gsm7_septets(e.unicode), e.code > 0x7F ? 2 : 1)
        << std::hex << static_cast<unsigned>(e.unicode);
  EXPECT_EQ(gsm7_septets(U'a'), 1);
  EXPECT_EQ(gsm7_septets(U'@'), 1);
  EXPECT_EQ(gsm7_septets(U'\n'), 1);
  EXPECT_EQ(gsm7_septets(U'€'), 2);
  EXPECT_EQ(gsm7_septets(U'['), 2);
  EXPECT_EQ(gsm7_septets(U'^'), 2);
  EXPECT_EQ(gsm7_septets(U'\f'), 2);
  for (char32_t c : std::u32string(U"é è à ù ì ò Ç É ñ Ñ ü Ü ö Ö ä Ä Å å Æ æ ø Ø ß"))
    EXPECT_GT(gsm7_septets(c), 0) << std::hex << static_cast<unsigned>(c);
  for (char32_t c : std::u32string(U"âêîôûëïçœŒÀÈ`\t\u00A0\u202F’«»…–😀"))
    EXPECT_EQ(gsm7_septets(c), 0) << std::hex << static_cast<unsigned>(c);
}

TEST(SmsText, EmptyTextHasNoSegment) {
  const SmsTextInfo i = analyse_sms_text("");
  EXPECT_EQ(i.encoding, SmsEncoding::Gsm7);
  EXPECT_EQ(i.units, 0u);
  EXPECT_EQ(i.segments, 0u);
  EXPECT_TRUE(split_sms_parts("").empty());
}

TEST(SmsText, Gsm7Boundaries) {
  struct Case {
    size_t n;
    size_t segments;
  };
  for (const Case& c : {Case{1, 1}, Case{160, 1}, Case{161, 2}, Case{306, 2}, Case{307, 3},
                        Case{459, 3}, Case{460, 4}}) {
    const SmsTextInfo i = analyse_sms_text(repeat("a", c.n));
    EXPECT_EQ(i.encoding, SmsEncoding::Gsm7) << c.n;
    EXPECT_EQ(i.units, c.n);
    EXPECT_EQ(i.characters, c.n);
    EXPECT_EQ(i.segments, c.segments) << c.n;
    EXPECT_EQ(split_sms_parts(repeat("a", c.n)).size(), c.segments) << c.n;
  }
  // Accented GSM letters take one septet, like ASCII.
  const SmsTextInfo e = analyse_sms_text(repeat("é", 160));
  EXPECT_EQ(e.encoding, SmsEncoding::Gsm7);
  EXPECT_EQ(e.units, 160u);
  EXPECT_EQ(e.segments, 1u);
  EXPECT_EQ(analyse_sms_text(repeat("é", 161)).segments, 2u);
}

TEST(SmsText, Ucs2Boundaries) {
  struct Case {
    size_t n;
    size_t segments;
  };
  for (const Case& c :
       {Case{1, 1}, Case{70, 1}, Case{71, 2}, Case{134, 2}, Case{135, 3}, Case{201, 3}}) {
    const SmsTextInfo i = analyse_sms_text(repeat("ê", c.n));
    EXPECT_EQ(i.encoding, SmsEncoding::Ucs2) << c.n;
    EXPECT_EQ(i.units, c.n);
    EXPECT_EQ(i.segments, c.segments) << c.n;
  }
  // One character outside GSM-7 makes the whole text UCS-2.
  const SmsTextInfo mixed = analyse_sms_text(repeat("a", 100) + "ç");
  EXPECT_EQ(mixed.encoding, SmsEncoding::Ucs2);
  EXPECT_EQ(mixed.units, 101u);
  EXPECT_EQ(mixed.segments, 2u);
  EXPECT_EQ(to_string(mixed.encoding), "UCS-2");
  EXPECT_EQ(to_string(SmsEncoding::Gsm7), "GSM-7");
}

TEST(SmsText, ExtensionCharacterCountsTwoSeptets) {
  const SmsTextInfo single = analyse_sms_text(repeat("a", 158) + "€");
  EXPECT_EQ(single.units, 160u);
  EXPECT_EQ(single.characters, 159u);
  EXPECT_EQ(single.segments, 1u);
  const SmsTextInfo over = analyse_sms_text(repeat("a", 159) + "€");
  EXPECT_EQ(over.units, 161u);
  EXPECT_EQ(over.segments, 2u);
}

TEST(SmsText, ExtensionCharacterIsNeverSplitAcrossParts) {
  // 152 septets, then a 2-septet "€": it does not fit the 153rd septet, so it opens part 2.
  const std::string text = repeat("a", 152) + "€" + repeat("b", 8);
  auto parts = split_sms_parts(text);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0], repeat("a", 152));
  EXPECT_EQ(parts[1], "€" + repeat("b", 8));
  // Exactly filling part 1 with the escape sequence is fine.
  parts = split_sms_parts(repeat("a", 151) + "€" + repeat("b", 8));
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0], repeat("a", 151) + "€");
  // 306 septets would fit 2 x 153, but the moved "€" pushes one septet into a third part.
  const std::string tight = repeat("a", 152) + "{" + repeat("b", 152);
  const SmsTextInfo i = analyse_sms_text(tight);
  EXPECT_EQ(i.units, 306u);
  EXPECT_EQ(i.segments, 3u);
  parts = split_sms_parts(tight);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[1], "{" + repeat("b", 151));
  EXPECT_EQ(parts[2], "b");
}

TEST(SmsText, SurrogatePairsCountTwoAndAreNeverSplit) {
  const SmsTextInfo one = analyse_sms_text("😀");
  EXPECT_EQ(one.encoding, SmsEncoding::Ucs2);
  EXPECT_EQ(one.units, 2u);
  EXPECT_EQ(one.characters, 1u);
  EXPECT_EQ(analyse_sms_text(repeat("ê", 68) + "😀").segments, 1u);  // 70 units
  EXPECT_EQ(analyse_sms_text(repeat("ê", 69) + "😀").segments, 2u);  // 71 units
  auto parts = split_sms_parts(repeat("ê", 66) + "😀" + repeat("ê", 10));
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0], repeat("ê", 66));
  EXPECT_EQ(parts[1], "😀" + repeat("ê", 10));
}

TEST(SmsText, InvalidUtf8IsReportedAndSentAsUcs2) {
  for (const std::string& bad :
       {std::string("abc\xFF"), std::string("abc\xC3"), std::string("\xC0\xAF"),
        std::string("\xED\xA0\x80"), std::string("\xF4\x90\x80\x80"), std::string("\xE2\x82")}) {
    const SmsTextInfo i = analyse_sms_text(bad);
    EXPECT_FALSE(i.valid_utf8) << bad;
    EXPECT_EQ(i.encoding, SmsEncoding::Ucs2) << bad;
  }
  EXPECT_TRUE(analyse_sms_text("Département €").valid_utf8);
  EXPECT_EQ(to_gsm7_safe("a\xFF"), "a\xEF\xBF\xBD");
}

TEST(SmsText, CostEstimate) {
  EXPECT_DOUBLE_EQ(cost_estimate(3, 4.5), 13.5);
  EXPECT_DOUBLE_EQ(cost_estimate(0, 4.5), 0.0);
  EXPECT_DOUBLE_EQ(cost_estimate(2, 0.0), 0.0);
  EXPECT_THROW(cost_estimate(1, -1.0), std::invalid_argument);
  EXPECT_THROW(cost_estimate(1, std::nan("")), std::invalid_argument);
  EXPECT_THROW(cost_estimate(1, std::numeric_limits<double>::infinity()), std::invalid_argument);
}

TEST(SmsText, MaxSegments) {
  EXPECT_EQ(check_max_segments(analyse_sms_text(repeat("a", 306)), 2), std::nullopt);
  auto reason = check_max_segments(analyse_sms_text(repeat("a", 307)), 2);
  ASSERT_TRUE(reason);
  EXPECT_EQ(*reason, "texte trop long : 3 segments SMS (GSM-7, 307 septets) pour un maximum de 2");
  reason = check_max_segments(analyse_sms_text(repeat("ê", 250)), 3);
  ASSERT_TRUE(reason);
  EXPECT_EQ(*reason, "texte trop long : 4 segments SMS (UCS-2, 250 unités) pour un maximum de 3");
  reason = check_max_segments(analyse_sms_text(""), 3);
  ASSERT_TRUE(reason);
  EXPECT_EQ(*reason, "texte du SMS vide");
  EXPECT_THROW(check_max_segments(analyse_sms_text("a"), 0), std::invalid_argument);
}

TEST(Gsm7Safe, ReplacesTypography) {
  EXPECT_EQ(to_gsm7_safe("l’heure ‘x’ “oui” «\u00A0non\u00A0» a – b — c… d\u202F: e"),
            "l'heure 'x' \"oui\" \" non \" a - b - c... d : e");
  EXPECT_EQ(analyse_sms_text("l’heure").encoding, SmsEncoding::Ucs2);
  EXPECT_EQ(analyse_sms_text(to_gsm7_safe("l’heure «\u00A0x\u00A0» – …")).encoding,
            SmsEncoding::Gsm7);
}

TEST(Gsm7Safe, KeepsGsmLettersAndOnlyTransliteratesWhenAsked) {
  const std::string gsm = "é è à ù ì ò Ç É ñ Ñ ü Ü ö Ö ä Ä Å å Æ æ ø Ø ß € [ ]";
  EXPECT_EQ(to_gsm7_safe(gsm), gsm);
  EXPECT_EQ(to_gsm7_safe(gsm, true), gsm);
  EXPECT_EQ(analyse_sms_text(gsm).encoding, SmsEncoding::Gsm7);

  const std::string lacking = "â ê î ô û ë ï ç œ Œ Ê À n°";
  EXPECT_EQ(to_gsm7_safe(lacking), lacking);  // kept: the text goes as UCS-2
  EXPECT_EQ(analyse_sms_text(to_gsm7_safe(lacking)).encoding, SmsEncoding::Ucs2);
  EXPECT_EQ(to_gsm7_safe(lacking, true), "a e i o u e i c oe OE E A no");
  EXPECT_EQ(analyse_sms_text(to_gsm7_safe(lacking, true)).encoding, SmsEncoding::Gsm7);

  // "En cas d'empêchement" - with and without transliteration.
  EXPECT_EQ(to_gsm7_safe("d’empêchement", true), "d'empechement");
  EXPECT_EQ(to_gsm7_safe("d’empêchement"), "d'empêchement");
  // Emoji and other scripts stay (UCS-2), even when transliterating.
  EXPECT_EQ(to_gsm7_safe("ok 😀 日本", true), "ok 😀 日本");
  // Idempotent.
  const std::string once = to_gsm7_safe("« Ça » – l’été… ê", true);
  EXPECT_EQ(to_gsm7_safe(once, true), once);
}

// Every SMS text the shipped rdv-sms mappings are tested to produce.
std::vector<std::string> mapping_sms_texts() {
  std::vector<std::string> texts;
  const std::filesystem::path dir = std::filesystem::path(RELAIS_SOURCE_DIR) / "config/mappings";
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("rdv-sms-", 0) != 0 || name.find(".test.yaml") == std::string::npos) continue;
    const YAML::Node doc = YAML::LoadFile(entry.path().string());
    for (const YAML::Node& c : doc["cases"]) {
      const YAML::Node expect = c["expect"];
      for (const char* key : {"output", "output_includes"}) {
        if (expect[key] && expect[key]["text"])
          texts.push_back(expect[key]["text"].as<std::string>());
      }
    }
  }
  return texts;
}

TEST(Gsm7Safe, MappingSmsTextsAreGsm7) {
  const std::vector<std::string> texts = mapping_sms_texts();
  ASSERT_GE(texts.size(), 5u);
  bool saw_confirmation = false;
  for (const std::string& t : texts) {
    saw_confirmation |=
        t.find("votre rendez-vous est fixé le vendredi 17 mai à 10h00") != std::string::npos;
    const SmsTextInfo i = analyse_sms_text(to_gsm7_safe(t));
    EXPECT_EQ(i.encoding, SmsEncoding::Gsm7) << t;
    EXPECT_LE(i.segments, 2u) << t;
    EXPECT_EQ(check_max_segments(i, 2), std::nullopt) << t;
  }
  EXPECT_TRUE(saw_confirmation);
  // Written with French typography, the same kind of text still ends up GSM-7.
  const std::string typo =
      "Département 76\u202F: votre rendez-vous du lundi 20 mai à 14h30 est déplacé\u00A0– "
      "l’adresse reste «\u00A0CMS de Dieppe\u00A0»…";
  EXPECT_EQ(analyse_sms_text(typo).encoding, SmsEncoding::Ucs2);
  EXPECT_EQ(analyse_sms_text(to_gsm7_safe(typo)).encoding, SmsEncoding::Gsm7);
}

TEST(Gsm7Safe, ConfirmationTextSegments) {
  const std::string text =
      "Département 76 : votre rendez-vous est fixé le vendredi 17 mai à 10h00 au CMS de "
      "Barentin, Place de la Libération, 76360 Barentin. Pour le modifier, appelez le 02 35 00 "
      "00 00.";
  const SmsTextInfo i = analyse_sms_text(to_gsm7_safe(text));
  EXPECT_EQ(i.encoding, SmsEncoding::Gsm7);
  EXPECT_EQ(i.units, i.characters);  // no extension character
  EXPECT_EQ(i.units, 175u);
  EXPECT_EQ(i.segments, 2u);
}

}  // namespace
}  // namespace relais::sms

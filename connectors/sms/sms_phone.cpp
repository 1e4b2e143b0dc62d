#include "connectors/sms/sms_phone.h"

#include <phonenumbers/phonenumberutil.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "core/pseudonym.h"

namespace relais::sms {

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

std::string region_from_postcode(const std::string& postcode) {
  std::string digits;
  for (char c : postcode) {
    if (std::isdigit(static_cast<unsigned char>(c))) digits += c;
  }
  if (digits.size() != 5) return "";
  std::string p = digits.substr(0, 3);
  if (p == "971") return "GP";
  if (p == "972") return "MQ";
  if (p == "973") return "GF";
  if (p == "974") return "RE";
  if (p == "976") return "YT";
  return "";
}

bool known_region(const std::string& region) {
  return PhoneNumberUtil::GetInstance()->GetCountryCodeForRegion(region) != 0;
}

PhoneCheck check_mobile(const std::string& raw, const std::string& postcode,
                        const std::string& default_region) {
  PhoneCheck out;
  bool any_digit =
      std::any_of(raw.begin(), raw.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
  if (!any_digit) {
    out.reason = "pas de numéro de téléphone";
    return out;
  }
  std::string region = region_from_postcode(postcode);
  if (region.empty()) region = default_region;
  out.region = region;
  const PhoneNumberUtil& util = *PhoneNumberUtil::GetInstance();
  PhoneNumber n;
  if (util.Parse(raw, region, &n) != PhoneNumberUtil::NO_PARSING_ERROR) {
    out.reason = "numéro illisible (région " + region + ")";
    return out;
  }
  if (!util.IsValidNumber(n)) {
    out.reason = "numéro invalide (région " + region + ")";
    return out;
  }
  auto type = util.GetNumberType(n);
  if (type != PhoneNumberUtil::MOBILE && type != PhoneNumberUtil::FIXED_LINE_OR_MOBILE) {
    out.reason = "pas un numéro de portable";
    return out;
  }
  util.Format(n, PhoneNumberUtil::E164, &out.e164);
  out.ok = true;
  return out;
}

std::string optout_hash(const std::string& e164) {
  return pseudonym_hex("relais-sms-optout:" + e164);
}

std::string legacy_optout_hash(const std::string& e164) {
  return legacy_pseudonym_hex("relais-sms-optout:" + e164);
}

namespace {
// Lower-case ASCII and strip the French accents that the keywords may carry (UTF-8).
std::string fold(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0xC3 && i + 1 < s.size()) {
      unsigned char d = static_cast<unsigned char>(s[i + 1]);
      char base = 0;
      if ((d >= 0xA8 && d <= 0xAB) || (d >= 0x88 && d <= 0x8B)) base = 'e';
      if ((d >= 0xA0 && d <= 0xA5) || (d >= 0x80 && d <= 0x85)) base = 'a';
      if ((d >= 0xAC && d <= 0xAF) || (d >= 0x8C && d <= 0x8F)) base = 'i';
      if ((d >= 0xB2 && d <= 0xB6) || (d >= 0x92 && d <= 0x96)) base = 'o';
      if ((d >= 0xB9 && d <= 0xBC) || (d >= 0x99 && d <= 0x9C)) base = 'u';
      if (base != 0) {
        out += base;
        ++i;
        continue;
      }
    }
    out += static_cast<char>(std::tolower(c));
  }
  return out;
}
}  // namespace

bool is_stop_request(const std::string& text) {
  return !stop_keyword(text).empty();
}

std::string stop_keyword(const std::string& text) {
  static const std::set<std::string> kWords = {
      "stop",       "arret",         "arreter",     "arrete",         "stopper",
      "desabonner", "desabonnement", "desinscrire", "desinscription", "unsubscribe",
      "stopsms",    "end",           "quit",        "cancel"};
  std::string t = fold(text);
  size_t b = t.find_first_not_of(" \t\r\n\"'");
  if (b == std::string::npos) return "";
  size_t e = b;
  while (e < t.size() && (std::isalpha(static_cast<unsigned char>(t[e])) != 0)) ++e;
  std::string first = t.substr(b, e - b);
  if (first == "se" || first == "me") {  // "me désabonner", "se désinscrire"
    size_t b2 = t.find_first_not_of(" \t", e);
    if (b2 == std::string::npos) return "";
    size_t e2 = b2;
    while (e2 < t.size() && (std::isalpha(static_cast<unsigned char>(t[e2])) != 0)) ++e2;
    first = t.substr(b2, e2 - b2);
  }
  if (kWords.count(first) == 0) return "";
  for (auto& c : first) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return first;
}

}  // namespace relais::sms

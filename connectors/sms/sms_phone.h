// Recipient numbers for SMS: parsed and checked with libphonenumber, E.164 on the wire.
// The region is the one the mapping gives (`region`, e.g. from config/tables/
// region-telephone.yaml), else the postcode's for the French overseas departments (971 GP,
// 972 MQ, 973 GF, 974 RE, 976 YT), else the configured default (FR). Only valid mobile numbers
// pass; every refusal carries a reason in French for support, without the number itself.
//
// Thread-safety: pure functions over libphonenumber's process-wide singleton, which is
// thread-safe for these calls. Ownership: plain values.
#pragma once

#include <string>

namespace relais::sms {

struct PhoneCheck {
  bool ok = false;
  std::string e164;    // "+33600000000" when ok
  std::string region;  // the region used to read a national number ("FR", "RE", …)
  std::string reason;  // when !ok: why the number cannot be sent to
};

// The region of a French postcode's overseas department, or "" (metropolitan or unknown).
std::string region_from_postcode(const std::string& postcode);

// Whether libphonenumber knows `region` ("FR", "RE" …: ISO 3166 codes with a calling code).
bool known_region(const std::string& region);

// Reads `raw` ("06.00.00.00.00", "+262 692 12 34 56", …) as a mobile number.
PhoneCheck check_mobile(const std::string& raw, const std::string& postcode,
                        const std::string& default_region);

// The key of the opt-out list: the pseudonym (core/pseudonym.h: HMAC-SHA256 under the
// installation's pseudonym key, plain SHA-256 without one) of "relais-sms-optout:" + the E.164
// number. Keyed, someone who enumerates every number cannot tell who is on the list; every
// node of one installation shares the key, so they share one list (docs/security.md).
std::string optout_hash(const std::string& e164);
// The unkeyed SHA-256 the list held before keys: entries written then are still found, and
// rewritten to optout_hash() when found (SmsStore::find_optout).
std::string legacy_optout_hash(const std::string& e164);

// True when a reply means "stop sending me SMS": STOP, stop, Stop SMS, STOP., ARRET, ARRÊT,
// arrêter, désabonner, désinscrire, unsubscribe … (first word, case and accents ignored,
// trailing punctuation ignored).
bool is_stop_request(const std::string& text);
// The keyword of a stop request, upper-case ASCII without accents ("STOP", "ARRET",
// "DESABONNER"…), or "" when the text is not one.
std::string stop_keyword(const std::string& text);

}  // namespace relais::sms

#pragma once
// What the SMS stores of every engine (store/sqlite/sqlite_sms.cpp,
// store/postgresql/pg_sms.cpp) compute alike: the rank of the `state` column in SQL (from the
// table of core/sms_store.h's state_rank), and the reference a new send takes. Pure functions.

#include <functional>
#include <optional>
#include <string>

#include "core/sms_store.h"

namespace relais::sms {

// "(CASE state WHEN 'queued' THEN 1 … ELSE 0 END)": standard SQL, the same on every engine.
std::string rank_sql();

// The reference of the send begin_attempt starts from `from_state`: the first ("d<id>") from no
// record, the same from retry (the gateway did not take it), the next from failed or unknown (the
// earlier one may have reached the gateway).
std::string next_reference(const SmsRecord& r, const std::string& from_state);

// The record a delivery report is about: by the delivery id its reference names, else (no
// reference) by the gateway's id; nullopt when neither finds one. The lookups may throw.
std::optional<SmsRecord> report_target(
    const std::string& reference, const std::string& gateway_ref,
    const std::function<std::optional<SmsRecord>(int64_t)>& by_delivery,
    const std::function<std::optional<SmsRecord>(const std::string&)>& by_gateway_ref);

// Whether a report about `reference` saying `state` may move `r`: a report about an earlier send
// than the current one only tells that its SMS reached the phone (delivered).
bool report_counts(const SmsRecord& r, const std::string& reference, const std::string& state);

}  // namespace relais::sms

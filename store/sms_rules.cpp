// The SMS stores' shared rules (store/sms_rules.h).

#include "store/sms_rules.h"

namespace relais::sms {

std::string rank_sql() {
  std::string s = "(CASE state";
  for (const auto& [name, rank] : state_ranks()) {
    if (rank != 0) s += " WHEN '" + name + "' THEN " + std::to_string(rank);
  }
  return s + " ELSE 0 END)";
}

std::string next_reference(const SmsRecord& r, const std::string& from_state) {
  if (from_state.empty()) return send_reference(r.delivery_id, 1);
  if (from_state == "retry") return r.reference;
  int64_t id = 0;
  int n = 1;
  if (!parse_send_reference(r.reference, id, n)) n = 1;
  return send_reference(r.delivery_id, n + 1);
}

std::optional<SmsRecord> report_target(
    const std::string& reference, const std::string& gateway_ref,
    const std::function<std::optional<SmsRecord>(int64_t)>& by_delivery,
    const std::function<std::optional<SmsRecord>(const std::string&)>& by_gateway_ref) {
  int64_t id = 0;
  int n = 0;
  if (parse_send_reference(reference, id, n)) return by_delivery(id);
  if (reference.empty() && !gateway_ref.empty()) return by_gateway_ref(gateway_ref);
  return std::nullopt;
}

bool report_counts(const SmsRecord& r, const std::string& reference, const std::string& state) {
  bool current = reference.empty() || reference == r.reference;
  return current || state == "delivered";
}

}  // namespace relais::sms

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

}  // namespace relais::sms

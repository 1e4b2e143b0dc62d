#include "core/sms_store.h"

#include <algorithm>
#include <cctype>

namespace relais::sms {

const std::map<std::string, int>& state_ranks() {
  static const std::map<std::string, int> r = {{"submitting", 0}, {"unknown", 0},  {"retry", 0},
                                               {"queued", 1},     {"accepted", 2}, {"smsc", 3},
                                               {"delivered", 4},  {"failed", 4}};
  return r;
}

int state_rank(const std::string& state) {
  auto it = state_ranks().find(state);
  return it == state_ranks().end() ? 0 : it->second;
}

std::string send_reference(int64_t delivery_id, int n) {
  // Appended piece by piece: GCC 12 at -O3 sees a false overlap (-Wrestrict) in "d" + text.
  std::string r(1, 'd');
  r += std::to_string(delivery_id);
  if (n > 1) {
    r += '.';
    r += std::to_string(n);
  }
  return r;
}

bool parse_send_reference(const std::string& reference, int64_t& delivery_id, int& n) {
  if (reference.size() < 2 || reference[0] != 'd') return false;
  size_t dot = reference.find('.');
  std::string id = reference.substr(1, dot == std::string::npos ? std::string::npos : dot - 1);
  std::string send = dot == std::string::npos ? "1" : reference.substr(dot + 1);
  auto digits = [](const std::string& t) {
    return !t.empty() && t.size() <= 18 &&
           std::all_of(t.begin(), t.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
  };
  if (!digits(id) || !digits(send) || send.size() > 6) return false;
  delivery_id = std::stoll(id);
  n = std::stoi(send);
  return n >= 1;
}

void SmsStore::set_before_write_for_test(std::function<void(const std::string&, int64_t)> f) {
  std::lock_guard<std::mutex> lock(hook_mu_);
  before_write_ = std::move(f);
}

void SmsStore::before_write(const char* op, int64_t delivery_id) {
  std::function<void(const std::string&, int64_t)> f;
  {
    std::lock_guard<std::mutex> lock(hook_mu_);
    f = before_write_;
  }
  if (f) f(op, delivery_id);
}

}  // namespace relais::sms

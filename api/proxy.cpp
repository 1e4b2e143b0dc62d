#include "api/proxy.h"

#include <algorithm>
#include <cctype>

namespace relais::api {
namespace {

using Poco::Net::IPAddress;

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

// An IPv4 address seen through an IPv6 socket (::ffff:a.b.c.d) compares as IPv4.
bool parse_address(const std::string& text, IPAddress& out) {
  if (!IPAddress::tryParse(text, out)) return false;
  if (out.family() == IPAddress::IPv6 && out.isIPv4Mapped()) {
    std::string s = out.toString();
    return IPAddress::tryParse(s.substr(s.rfind(':') + 1), out);
  }
  return true;
}

}  // namespace

TrustedProxies::TrustedProxies(const std::vector<std::string>& entries,
                               std::vector<std::string>& errors) {
  for (const auto& entry : entries) {
    std::string text = trim(entry);
    std::string addr = text.substr(0, text.find('/'));
    IPAddress network;
    if (!parse_address(addr, network)) {
      errors.push_back(entry + ": not an IP address or CIDR range");
      continue;
    }
    unsigned max_bits = network.family() == IPAddress::IPv4 ? 32 : 128;
    unsigned bits = max_bits;
    if (text.find('/') != std::string::npos) {
      std::string b = text.substr(text.find('/') + 1);
      if (b.empty() || b.size() > 3 ||
          !std::all_of(b.begin(), b.end(), [](unsigned char c) { return std::isdigit(c); }) ||
          static_cast<unsigned>(std::stoi(b)) > max_bits) {
        errors.push_back(entry + ": the prefix length must be 0 to " + std::to_string(max_bits));
        continue;
      }
      bits = static_cast<unsigned>(std::stoi(b));
    }
    IPAddress mask(bits, network.family());
    ranges_.push_back(Range{network & mask, mask});
  }
}

bool TrustedProxies::trusts(const IPAddress& a) const {
  for (const auto& r : ranges_) {
    if (r.network.family() == a.family() && (a & r.mask) == r.network) return true;
  }
  return false;
}

bool TrustedProxies::trusts(const std::string& address) const {
  IPAddress a;
  return parse_address(address, a) && trusts(a);
}

std::string TrustedProxies::client(const std::string& peer,
                                   const std::string& forwarded_for) const {
  if (forwarded_for.empty() || !trusts(peer)) return peer;
  std::vector<std::string> hops;
  for (size_t start = 0;;) {
    size_t comma = forwarded_for.find(',', start);
    hops.push_back(trim(forwarded_for.substr(start, comma - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  // Right to left: each hop was appended by the proxy after it; stop at the first that is not
  // a trusted proxy (what is left of it may have been written by the client itself).
  std::string client = peer;
  for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
    IPAddress a;
    if (!parse_address(*it, a)) return client;  // garbage: the last hop that could be read
    client = a.toString();
    if (!trusts(a)) return client;
  }
  return client;
}

}  // namespace relais::api

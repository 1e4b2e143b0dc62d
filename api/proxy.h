#pragma once
// Behind a reverse proxy: which peers' X-Forwarded-For is believed (`server.trusted_proxies`:
// addresses or CIDR ranges, IPv4 or IPv6). X-Forwarded-Proto: https only ever adds `Secure` to
// the session cookie (stricter, never weaker), so it is honoured from any peer. The client of a
// request is the rightmost address of X-Forwarded-For that is not a trusted proxy, read only when
// the TCP peer itself is trusted; otherwise the TCP peer. Login throttling and the audit trail use
// it. Immutable after construction: thread-safe.

#include <string>
#include <vector>

#include <Poco/Net/IPAddress.h>

namespace relais::api {

class TrustedProxies {
 public:
  TrustedProxies() = default;
  // Parses each entry ("127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"); a bad entry is reported
  // in `errors` ("entry: reason") and skipped.
  TrustedProxies(const std::vector<std::string>& entries, std::vector<std::string>& errors);

  bool empty() const { return ranges_.empty(); }
  bool trusts(const std::string& address) const;
  // The client's address for a request from `peer` carrying `forwarded_for` (the
  // X-Forwarded-For header, "" when absent).
  std::string client(const std::string& peer, const std::string& forwarded_for) const;

 private:
  struct Range {
    Poco::Net::IPAddress network;
    Poco::Net::IPAddress mask;
  };
  bool trusts(const Poco::Net::IPAddress& a) const;
  std::vector<Range> ranges_;
};

}  // namespace relais::api

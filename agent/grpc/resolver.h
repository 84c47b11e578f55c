// Name resolution for gRPC connections with k6's `dns` and `hosts` options
// (issue 16 item 2; k6 applies them to HTTP only, its issue #2758). The
// connection resolves the target's host itself rather than leaving it to
// gRPC's resolver, so that k6's options decide which addresses it dials:
// `hosts` overrides first, then the system resolver (getaddrinfo, so
// /etc/hosts and nsswitch as every program sees them), filtered and ordered
// by `dns.policy`, cached per process for `dns.ttl` as k6's cacheResolver.
#ifndef BARRAGE_AGENT_GRPC_RESOLVER_H_
#define BARRAGE_AGENT_GRPC_RESOLVER_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace barrage::agent::grpc_client {

enum class DnsSelect { kFirst, kRandom, kRoundRobin };
enum class DnsPolicy { kPreferIPv4, kPreferIPv6, kOnlyIPv4, kOnlyIPv6, kAny };

struct DnsSettings {
  absl::Duration ttl = absl::Minutes(5);  // zero: no cache; InfiniteDuration: for ever
  DnsSelect select = DnsSelect::kRandom;
  DnsPolicy policy = DnsPolicy::kPreferIPv4;
  // k6's hosts option: lower-case patterns ("a.test", "a.test:443",
  // "*.test") to "ip" or "ip:port" ("[v6]:port").
  std::map<std::string, std::string> hosts;
};

// k6's names ("roundRobin", "preferIPv4"), already validated by the options;
// an unknown one gives k6's default.
DnsSelect ParseDnsSelect(const std::string& name);
DnsPolicy ParseDnsPolicy(const std::string& name);

// Where "host:port" leads.
struct Resolution {
  // "1.2.3.4:5000" or "[::1]:5000", in the order the policy leaves them.
  std::vector<std::string> addresses;
  // An IP literal or a hosts entry: never looked up again.
  bool fixed = false;
  // The address's host was an IP literal (no hosts entry for it).
  bool literal = false;
  // When the name should be looked up again (the cache entry's end).
  absl::Time expires = absl::InfiniteFuture();
};

// Resolves address ("host:port", as ValidateAddress accepts it) as k6's
// dialer does: a hosts entry for "host:port", then for "host" (keeping the
// port unless the entry has one; wildcard patterns match any name ending in
// their suffix, the longest first); an IP literal as it is; else the system
// resolver through the process-wide cache. kUnavailable
// `lookup <host>: no such host` (k6's text) when nothing is left after the
// policy. Blocks while getaddrinfo runs (microseconds for /etc/hosts).
absl::StatusOr<Resolution> Resolve(const std::string& address, const DnsSettings& settings);

// The gRPC target naming these addresses, for the sockaddr resolver:
// "ipv4:1.2.3.4:5000,1.2.3.5:5000", "ipv6:[::1]:5000"; a mix of families
// goes as ipv6 with IPv4 written as v4-mapped addresses (::ffff:1.2.3.4).
std::string GrpcTarget(const std::vector<std::string>& addresses);

// Picks one address at random (select=random), from a per-thread generator.
size_t RandomIndex(size_t size);

// How many getaddrinfo lookups this process made: for tests.
int64_t SystemLookupCount();

}  // namespace barrage::agent::grpc_client

#endif  // BARRAGE_AGENT_GRPC_RESOLVER_H_

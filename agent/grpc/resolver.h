// Name resolution for gRPC connections with k6's `dns` and `hosts` options
// (issue 16 item 2; k6 applies them to HTTP only, its issue #2758). The
// connection resolves the target's host itself rather than leaving it to
// gRPC's resolver, so that k6's options decide which addresses it dials:
// `hosts` overrides first, then the system resolver (getaddrinfo, so
// /etc/hosts and nsswitch as every program sees them), filtered and ordered
// by `dns.policy`, cached per process for `dns.ttl` as k6's cacheResolver.
#ifndef BARRAGE_AGENT_GRPC_RESOLVER_H_
#define BARRAGE_AGENT_GRPC_RESOLVER_H_

#include <functional>
#include <map>
#include <mutex>
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

// A host's addresses as the system resolver gives them (getaddrinfo), in
// its order, each once; empty when the name is unknown.
using HostLookup = std::function<absl::StatusOr<std::vector<std::string>>(const std::string& host)>;

// k6's cacheResolver with its Dialer's hosts handling. One per process
// (System()); tests make their own with a fake lookup and clock.
class Resolver {
 public:
  Resolver(HostLookup lookup, std::function<absl::Time()> now);

  // getaddrinfo and absl::Now, shared by every connection of the process.
  static Resolver& System();

  // Resolves address ("host:port", as ValidateAddress accepts it) as k6's
  // dialer does: a hosts entry for "host:port", then for "host" (keeping
  // the port unless the entry has one; wildcard patterns match any name
  // ending in their suffix, the longest first); an IP literal as it is;
  // else the lookup, through a cache kept for settings.ttl (the lock is not
  // held while looking up: two threads may look a name up at once, as in
  // k6). kUnavailable `lookup <host>: no such host` (k6's text) when
  // nothing is left after the policy. Blocks while the lookup runs
  // (microseconds for /etc/hosts, a DNS round trip otherwise).
  absl::StatusOr<Resolution> Resolve(const std::string& address, const DnsSettings& settings);

 private:
  struct Entry {
    std::vector<std::string> ips;  // after the policy
    absl::Time looked_up;
  };
  absl::StatusOr<Entry> Lookup(const std::string& host, const DnsSettings& settings);

  const HostLookup lookup_;
  const std::function<absl::Time()> now_;
  std::mutex mu_;
  std::map<std::string, Entry> cache_;  // by policy and host
};

// Resolver::System().Resolve(address, settings).
absl::StatusOr<Resolution> Resolve(const std::string& address, const DnsSettings& settings);

// The gRPC target naming these addresses, for the sockaddr resolver:
// "ipv4:1.2.3.4:5000,1.2.3.5:5000", "ipv6:[::1]:5000"; a mix of families
// goes as ipv6 with IPv4 written as v4-mapped addresses (::ffff:1.2.3.4).
std::string GrpcTarget(const std::vector<std::string>& addresses);

// Picks one address at random (select=random), from a per-thread generator.
size_t RandomIndex(size_t size);

}  // namespace barrage::agent::grpc_client

#endif  // BARRAGE_AGENT_GRPC_RESOLVER_H_

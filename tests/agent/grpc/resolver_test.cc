#include "agent/grpc/resolver.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace barrage::agent::grpc_client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

DnsSettings WithHosts(std::map<std::string, std::string> hosts) {
  DnsSettings s;
  s.hosts = std::move(hosts);
  return s;
}

// k6's Dialer.getConfiguredHost: "host:port" first, then "host" (keeping
// the port unless the entry has one); wildcards by the longest suffix.
TEST(ResolverTest, HostsEntriesAsK6MatchesThem) {
  const DnsSettings s = WithHosts({{"api.test", "127.0.0.2"},
                                   {"api.test:443", "127.0.0.3:8443"},
                                   {"*.test", "127.0.0.4"},
                                   {"*.deep.test", "127.0.0.5"},
                                   {"v6.test", "::1"},
                                   {"v6port.test", "[::1]:7000"}});
  auto addresses = [&](const std::string& address) {
    absl::StatusOr<Resolution> r = Resolve(address, s);
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->fixed);
    return r.ok() ? r->addresses : std::vector<std::string>{};
  };
  EXPECT_THAT(addresses("api.test:5000"), ElementsAre("127.0.0.2:5000"));
  EXPECT_THAT(addresses("API.Test:5000"), ElementsAre("127.0.0.2:5000"));  // names are not case-sensitive
  EXPECT_THAT(addresses("api.test:443"), ElementsAre("127.0.0.3:8443"));
  EXPECT_THAT(addresses("other.test:1"), ElementsAre("127.0.0.4:1"));
  EXPECT_THAT(addresses("a.b.deep.test:1"), ElementsAre("127.0.0.5:1"));
  EXPECT_THAT(addresses("v6.test:9"), ElementsAre("[::1]:9"));
  EXPECT_THAT(addresses("v6port.test:9"), ElementsAre("[::1]:7000"));
  // An IP literal is used as it is.
  absl::StatusOr<Resolution> literal = Resolve("127.0.0.9:1", s);
  ASSERT_TRUE(literal.ok());
  EXPECT_TRUE(literal->literal);
  EXPECT_THAT(literal->addresses, ElementsAre("127.0.0.9:1"));
}

TEST(ResolverTest, PolicyFiltersAndOrdersTheFamilies) {
  // localhost: 127.0.0.1 and ::1 in the usual /etc/hosts (and glibc's
  // built-in answer). Only the families are checked.
  auto families = [](DnsPolicy policy) {
    DnsSettings s;
    s.policy = policy;
    s.ttl = absl::ZeroDuration();
    absl::StatusOr<Resolution> r = Resolve("localhost:80", s);
    std::string out;
    if (!r.ok()) return std::string(r.status().message());
    for (const std::string& a : r->addresses) out += a.front() == '[' ? "6" : "4";
    return out;
  };
  EXPECT_THAT(families(DnsPolicy::kPreferIPv4), ::testing::MatchesRegex("4+"));
  EXPECT_THAT(families(DnsPolicy::kOnlyIPv4), ::testing::MatchesRegex("4+"));
  const std::string any = families(DnsPolicy::kAny);
  EXPECT_THAT(any, HasSubstr("4"));
}

TEST(ResolverTest, ANameThatDoesNotResolveIsK6sLookupError) {
  DnsSettings s;
  absl::StatusOr<Resolution> r = Resolve("nosuch.invalid:80", s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "lookup nosuch.invalid: no such host");
}

TEST(ResolverTest, TheCacheKeepsANameForTtl) {
  DnsSettings s;
  s.ttl = absl::Minutes(5);
  const int64_t before = SystemLookupCount();
  ASSERT_TRUE(Resolve("localhost:1", s).ok());
  absl::StatusOr<Resolution> again = Resolve("localhost:2", s);
  ASSERT_TRUE(again.ok());
  EXPECT_LE(SystemLookupCount() - before, 1);
  EXPECT_FALSE(again->fixed);
  EXPECT_GT(again->expires, absl::Now() + absl::Minutes(4));
  s.ttl = absl::ZeroDuration();  // no cache: every resolve looks up
  const int64_t uncached = SystemLookupCount();
  ASSERT_TRUE(Resolve("localhost:1", s).ok());
  ASSERT_TRUE(Resolve("localhost:1", s).ok());
  EXPECT_EQ(SystemLookupCount() - uncached, 2);
}

TEST(ResolverTest, GrpcTargetsNameEveryAddress) {
  EXPECT_EQ(GrpcTarget({"127.0.0.1:5001", "127.0.0.2:5001"}), "ipv4:127.0.0.1:5001,127.0.0.2:5001");
  EXPECT_EQ(GrpcTarget({"[::1]:5001"}), "ipv6:[::1]:5001");
  EXPECT_EQ(GrpcTarget({"[::1]:5001", "127.0.0.1:5001"}), "ipv6:[::1]:5001,[::ffff:127.0.0.1]:5001");
}

}  // namespace
}  // namespace barrage::agent::grpc_client

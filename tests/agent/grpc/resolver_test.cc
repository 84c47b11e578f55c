#include "agent/grpc/resolver.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace barrage::agent::grpc_client {
namespace {

using ::testing::ElementsAre;

// A resolver whose "system" answers from a map, on a clock the test moves.
class ResolverTest : public ::testing::Test {
 protected:
  Resolver resolver_{[this](const std::string& host) -> absl::StatusOr<std::vector<std::string>> {
                       ++lookups_;
                       auto it = names_.find(host);
                       return it == names_.end() ? std::vector<std::string>{} : it->second;
                     },
                     [this] { return now_; }};
  std::vector<std::string> Addresses(const std::string& address, const DnsSettings& s) {
    absl::StatusOr<Resolution> r = resolver_.Resolve(address, s);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->addresses : std::vector<std::string>{};
  }
  std::map<std::string, std::vector<std::string>> names_ = {
      {"mixed.test", {"::1", "10.0.0.1", "fe80::2", "10.0.0.2"}},
      {"v4.test", {"10.0.0.1", "10.0.0.2"}},
  };
  int lookups_ = 0;
  absl::Time now_ = absl::FromUnixSeconds(1000);
};

// k6's Dialer.getConfiguredHost: "host:port" first, then "host" (keeping
// the port unless the entry has one); wildcards by the longest suffix.
TEST_F(ResolverTest, HostsEntriesAsK6MatchesThem) {
  DnsSettings s;
  s.hosts = {{"api.test", "127.0.0.2"},   {"api.test:443", "127.0.0.3:8443"}, {"*.test", "127.0.0.4"},
             {"*.deep.test", "127.0.0.5"}, {"v6.test", "::1"},                {"v6port.test", "[::1]:7000"}};
  EXPECT_THAT(Addresses("api.test:5000", s), ElementsAre("127.0.0.2:5000"));
  EXPECT_THAT(Addresses("API.Test:5000", s), ElementsAre("127.0.0.2:5000"));  // names are not case-sensitive
  EXPECT_THAT(Addresses("api.test:443", s), ElementsAre("127.0.0.3:8443"));
  EXPECT_THAT(Addresses("other.test:1", s), ElementsAre("127.0.0.4:1"));
  EXPECT_THAT(Addresses("a.b.deep.test:1", s), ElementsAre("127.0.0.5:1"));
  EXPECT_THAT(Addresses("v6.test:9", s), ElementsAre("[::1]:9"));
  EXPECT_THAT(Addresses("v6port.test:9", s), ElementsAre("[::1]:7000"));
  EXPECT_EQ(lookups_, 0);
  // An IP literal is used as it is; a hosts entry is fixed for good.
  absl::StatusOr<Resolution> literal = resolver_.Resolve("127.0.0.9:1", s);
  ASSERT_TRUE(literal.ok());
  EXPECT_TRUE(literal->literal);
  EXPECT_THAT(literal->addresses, ElementsAre("127.0.0.9:1"));
  EXPECT_TRUE(resolver_.Resolve("api.test:1", s)->fixed);
}

// k6's applyPolicy: families grouped, the order within each kept.
TEST_F(ResolverTest, PolicyFiltersAndOrdersTheFamilies) {
  auto with = [&](DnsPolicy policy, const std::string& address) {
    DnsSettings s;
    s.policy = policy;
    return Addresses(address, s);
  };
  EXPECT_THAT(with(DnsPolicy::kPreferIPv4, "mixed.test:1"), ElementsAre("10.0.0.1:1", "10.0.0.2:1"));
  EXPECT_THAT(with(DnsPolicy::kPreferIPv6, "mixed.test:1"), ElementsAre("[::1]:1", "[fe80::2]:1"));
  EXPECT_THAT(with(DnsPolicy::kOnlyIPv4, "mixed.test:1"), ElementsAre("10.0.0.1:1", "10.0.0.2:1"));
  EXPECT_THAT(with(DnsPolicy::kAny, "mixed.test:1"),
              ElementsAre("[::1]:1", "10.0.0.1:1", "[fe80::2]:1", "10.0.0.2:1"));
  EXPECT_THAT(with(DnsPolicy::kPreferIPv6, "v4.test:1"), ElementsAre("10.0.0.1:1", "10.0.0.2:1"));  // falls back
  DnsSettings only6;
  only6.policy = DnsPolicy::kOnlyIPv6;
  absl::StatusOr<Resolution> none = resolver_.Resolve("v4.test:1", only6);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().message(), "lookup v4.test: no such host");
}

TEST_F(ResolverTest, ANameThatDoesNotResolveIsK6sLookupError) {
  absl::StatusOr<Resolution> r = resolver_.Resolve("nosuch.test:80", DnsSettings{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message(), "lookup nosuch.test: no such host");
}

TEST_F(ResolverTest, TheCacheKeepsANameForTtlThenLooksAgain) {
  DnsSettings s;
  s.ttl = absl::Minutes(5);
  absl::StatusOr<Resolution> first = resolver_.Resolve("v4.test:1", s);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->fixed);
  EXPECT_EQ(first->expires, now_ + absl::Minutes(5));
  names_["v4.test"] = {"10.0.0.3"};
  now_ += absl::Minutes(4);
  EXPECT_THAT(Addresses("v4.test:2", s), ElementsAre("10.0.0.1:2", "10.0.0.2:2"));  // cached, other port
  EXPECT_EQ(lookups_, 1);
  now_ += absl::Minutes(1);
  EXPECT_THAT(Addresses("v4.test:2", s), ElementsAre("10.0.0.3:2"));
  EXPECT_EQ(lookups_, 2);
  // ttl 0: no cache; inf: never expires.
  s.ttl = absl::ZeroDuration();
  Addresses("v4.test:1", s);
  Addresses("v4.test:1", s);
  EXPECT_EQ(lookups_, 4);
  s.ttl = absl::InfiniteDuration();
  EXPECT_EQ(resolver_.Resolve("v4.test:1", s)->expires, absl::InfiniteFuture());
}

TEST(GrpcTargetTest, NamesEveryAddress) {
  EXPECT_EQ(GrpcTarget({"127.0.0.1:5001", "127.0.0.2:5001"}), "ipv4:127.0.0.1:5001,127.0.0.2:5001");
  EXPECT_EQ(GrpcTarget({"[::1]:5001"}), "ipv6:[::1]:5001");
  EXPECT_EQ(GrpcTarget({"[::1]:5001", "127.0.0.1:5001"}), "ipv6:[::1]:5001,[::ffff:127.0.0.1]:5001");
}

TEST(DnsNamesTest, K6sNamesAndDefaults) {
  EXPECT_EQ(ParseDnsSelect("roundRobin"), DnsSelect::kRoundRobin);
  EXPECT_EQ(ParseDnsSelect("first"), DnsSelect::kFirst);
  EXPECT_EQ(ParseDnsSelect("random"), DnsSelect::kRandom);
  EXPECT_EQ(ParseDnsPolicy("onlyIPv6"), DnsPolicy::kOnlyIPv6);
  EXPECT_EQ(ParseDnsPolicy("preferIPv4"), DnsPolicy::kPreferIPv4);
}

}  // namespace
}  // namespace barrage::agent::grpc_client

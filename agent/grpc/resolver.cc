#include "agent/grpc/resolver.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <mutex>
#include <random>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace barrage::agent::grpc_client {
namespace {

// "host:port" or "[v6]:port" into host and port (ValidateAddress has
// checked the form).
std::pair<std::string, std::string> SplitHostPort(const std::string& address) {
  if (!address.empty() && address.front() == '[') {
    const size_t close = address.find(']');
    if (close == std::string::npos) return {address, ""};
    return {address.substr(1, close - 1), close + 2 <= address.size() ? address.substr(close + 2) : ""};
  }
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return {address, ""};
  return {address.substr(0, colon), address.substr(colon + 1)};
}

bool IsIPv4(const std::string& ip) {
  unsigned char buf[4];
  return inet_pton(AF_INET, ip.c_str(), buf) == 1;
}

bool IsIPv6(const std::string& ip) {
  unsigned char buf[16];
  return inet_pton(AF_INET6, ip.c_str(), buf) == 1;
}

std::string JoinHostPort(const std::string& ip, const std::string& port) {
  return ip.find(':') != std::string::npos ? absl::StrCat("[", ip, "]:", port) : absl::StrCat(ip, ":", port);
}

// k6's Hosts.Match (a trie over reversed names): the exact key, else the
// wildcard key ("*.test", "*test") with the longest suffix of s.
const std::string* MatchHosts(const std::map<std::string, std::string>& hosts, const std::string& s) {
  auto exact = hosts.find(s);
  if (exact != hosts.end()) return &exact->second;
  const std::string* best = nullptr;
  size_t best_len = 0;
  for (const auto& [key, value] : hosts) {
    if (key.empty() || key.front() != '*') continue;
    const absl::string_view suffix = absl::string_view(key).substr(1);
    if (s.size() >= suffix.size() && absl::EndsWith(s, suffix) && (best == nullptr || suffix.size() > best_len)) {
      best = &value;
      best_len = suffix.size();
    }
  }
  return best;
}

// k6's resolver.applyPolicy: groups by family, keeping the order within.
std::vector<std::string> ApplyPolicy(const std::vector<std::string>& ips, DnsPolicy policy) {
  if (policy == DnsPolicy::kAny) return ips;
  std::vector<std::string> v4, v6;
  for (const std::string& ip : ips) (IsIPv4(ip) ? v4 : v6).push_back(ip);
  switch (policy) {
    case DnsPolicy::kPreferIPv4:
      return v4.empty() ? v6 : v4;
    case DnsPolicy::kPreferIPv6:
      return v6.empty() ? v4 : v6;
    case DnsPolicy::kOnlyIPv4:
      return v4;
    case DnsPolicy::kOnlyIPv6:
      return v6;
    case DnsPolicy::kAny:
      break;
  }
  return ips;
}

// getaddrinfo's addresses for host, each once, in its order (which follows
// /etc/hosts and RFC 6724 sorting, as Go's resolver gives k6).
absl::StatusOr<std::vector<std::string>> SystemLookup(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &list);
  std::vector<std::string> out;
  if (rc == 0) {
    for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
      char buf[INET6_ADDRSTRLEN] = {0};
      if (ai->ai_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(ai->ai_addr)->sin_addr, buf, sizeof(buf));
      } else if (ai->ai_family == AF_INET6) {
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(ai->ai_addr)->sin6_addr, buf, sizeof(buf));
      } else {
        continue;
      }
      if (std::find(out.begin(), out.end(), buf) == out.end()) out.emplace_back(buf);
    }
    freeaddrinfo(list);
  }
  if (rc != 0 && rc != EAI_NONAME && rc != EAI_NODATA && rc != EAI_FAIL) {
    return absl::UnavailableError(absl::StrCat("lookup ", host, ": ", gai_strerror(rc)));
  }
  return out;
}

}  // namespace

DnsSelect ParseDnsSelect(const std::string& name) {
  if (name == "first") return DnsSelect::kFirst;
  if (name == "roundRobin") return DnsSelect::kRoundRobin;
  return DnsSelect::kRandom;
}

DnsPolicy ParseDnsPolicy(const std::string& name) {
  if (name == "preferIPv6") return DnsPolicy::kPreferIPv6;
  if (name == "onlyIPv4") return DnsPolicy::kOnlyIPv4;
  if (name == "onlyIPv6") return DnsPolicy::kOnlyIPv6;
  if (name == "any") return DnsPolicy::kAny;
  return DnsPolicy::kPreferIPv4;
}

Resolver::Resolver(HostLookup lookup, std::function<absl::Time()> now)
    : lookup_(std::move(lookup)), now_(std::move(now)) {}

Resolver& Resolver::System() {
  static auto* resolver = new Resolver(SystemLookup, [] { return absl::Now(); });  // never destroyed: VUs may resolve during exit
  return *resolver;
}

absl::StatusOr<Resolution> Resolve(const std::string& address, const DnsSettings& settings) {
  return Resolver::System().Resolve(address, settings);
}

absl::StatusOr<Resolver::Entry> Resolver::Lookup(const std::string& host, const DnsSettings& s) {
  const absl::Time now = now_();
  const std::string key = absl::StrCat(static_cast<int>(s.policy), "/", host);
  if (s.ttl > absl::ZeroDuration()) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end() && now < it->second.looked_up + s.ttl) return it->second;
  }
  absl::StatusOr<std::vector<std::string>> ips = lookup_(host);
  if (!ips.ok()) return ips.status();
  Entry entry{ApplyPolicy(*ips, s.policy), now};
  if (s.ttl > absl::ZeroDuration()) {
    std::lock_guard<std::mutex> lock(mu_);
    cache_[key] = entry;
  }
  return entry;
}

absl::StatusOr<Resolution> Resolver::Resolve(const std::string& address, const DnsSettings& settings) {
  auto [host, port] = SplitHostPort(address);
  Resolution out;
  out.fixed = true;
  // k6's Dialer.getConfiguredHost: "host:port" first, then "host".
  if (!settings.hosts.empty()) {
    const std::string lower = absl::AsciiStrToLower(address);
    const std::string* to = MatchHosts(settings.hosts, lower);
    if (to == nullptr) to = MatchHosts(settings.hosts, absl::AsciiStrToLower(host));
    if (to != nullptr) {
      // An entry without a port keeps the address's port, as in k6.
      if (IsIPv4(*to) || IsIPv6(*to)) {
        out.addresses.push_back(JoinHostPort(*to, port));
      } else {
        auto [ip, own_port] = SplitHostPort(*to);
        out.addresses.push_back(JoinHostPort(ip, own_port));
      }
      return out;
    }
  }
  if (IsIPv4(host) || IsIPv6(host)) {
    out.literal = true;
    out.addresses.push_back(JoinHostPort(host, port));
    return out;
  }
  absl::StatusOr<Entry> entry = Lookup(host, settings);
  if (!entry.ok()) return entry.status();
  if (entry->ips.empty()) return absl::UnavailableError(absl::StrCat("lookup ", host, ": no such host"));
  out.fixed = false;
  for (const std::string& ip : entry->ips) out.addresses.push_back(JoinHostPort(ip, port));
  out.expires = settings.ttl == absl::InfiniteDuration() ? absl::InfiniteFuture() : entry->looked_up + settings.ttl;
  return out;
}

std::string GrpcTarget(const std::vector<std::string>& addresses) {
  bool v6 = false;
  for (const std::string& a : addresses) v6 = v6 || a.front() == '[';
  if (!v6) return absl::StrCat("ipv4:", absl::StrJoin(addresses, ","));
  std::vector<std::string> six;
  for (const std::string& a : addresses) six.push_back(a.front() == '[' ? a : absl::StrCat("[::ffff:", a.substr(0, a.rfind(':')), "]", a.substr(a.rfind(':'))));
  return absl::StrCat("ipv6:", absl::StrJoin(six, ","));
}

size_t RandomIndex(size_t size) {
  thread_local std::mt19937_64 gen{std::random_device{}()};
  return std::uniform_int_distribution<size_t>(0, size - 1)(gen);
}

}  // namespace barrage::agent::grpc_client

#include "common/options.h"

#include <limits>

#include <arpa/inet.h>

#include <algorithm>
#include <cmath>
#include <regex>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/numbers.h"
#include "absl/strings/ascii.h"
#include "common/duration.h"
#include "common/execution_segment.h"
#include "nlohmann/json.hpp"

namespace barrage {
namespace {

using nlohmann::json;

// Collects every problem so that one run reports them all.
class Problems {
 public:
  void Add(std::string p) { list_.push_back(std::move(p)); }
  bool empty() const { return list_.empty(); }
  absl::Status ToStatus() const { return absl::InvalidArgumentError(absl::StrJoin(list_, "\n")); }

 private:
  std::vector<std::string> list_;
};

std::optional<absl::Duration> ReadDuration(const json& v, const std::string& where, Problems& p) {
  if (v.is_number()) return DurationFromMillis(v.get<double>());
  if (v.is_string()) {
    absl::StatusOr<absl::Duration> d = ParseDuration(v.get<std::string>());
    if (d.ok()) return *d;
    p.Add(absl::StrCat(where, ": ", d.status().message()));
    return std::nullopt;
  }
  p.Add(absl::StrCat(where, ": expected a duration (a string like \"30s\" or a number of ms), got ", v.dump()));
  return std::nullopt;
}

std::optional<int64_t> ReadInt(const json& v, const std::string& where, Problems& p) {
  // Integers past int64 (18446744073709551615, 1e300) are refused, never
  // wrapped into negative or arbitrary values (found by tests/fuzz).
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return v.get<int64_t>();
  } else if (v.is_number_integer()) {
    return v.get<int64_t>();
  } else if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && std::trunc(d) == d && d >= -9.2e18 && d <= 9.2e18) return static_cast<int64_t>(d);
  }
  p.Add(absl::StrCat(where, ": expected an integer, got ", v.dump()));
  return std::nullopt;
}

std::optional<bool> ReadBool(const json& v, const std::string& where, Problems& p) {
  if (v.is_boolean()) return v.get<bool>();
  p.Add(absl::StrCat(where, ": expected a boolean, got ", v.dump()));
  return std::nullopt;
}

std::optional<std::string> ReadString(const json& v, const std::string& where, Problems& p) {
  if (v.is_string()) return v.get<std::string>();
  p.Add(absl::StrCat(where, ": expected a string, got ", v.dump()));
  return std::nullopt;
}

std::optional<std::vector<std::string>> ReadStringArray(const json& v, const std::string& where, Problems& p) {
  if (!v.is_array()) {
    p.Add(absl::StrCat(where, ": expected an array of strings, got ", v.dump()));
    return std::nullopt;
  }
  std::vector<std::string> out;
  for (const json& s : v) {
    if (!s.is_string()) {
      p.Add(absl::StrCat(where, ": expected an array of strings, got ", v.dump()));
      return std::nullopt;
    }
    out.push_back(s.get<std::string>());
  }
  return out;
}

// dns (k6's DNSConfig.UnmarshalJSON, then its runner's TTL check): fields
// other than ttl, select and policy are ignored, as Go's JSON decoding does.
std::optional<DnsConfig> ReadDns(const json& v, const std::string& where, Problems& p) {
  if (!v.is_object()) {
    p.Add(absl::StrCat(where, ": expected an object like {\"ttl\": \"1m\", \"select\": \"roundRobin\"}, got ", v.dump()));
    return std::nullopt;
  }
  DnsConfig out;
  bool ok = true;
  auto field = [&](const char* key) -> std::optional<std::string> {
    auto it = v.find(key);
    if (it == v.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) {
      // Go's words for a number given where null.String is expected.
      p.Add(absl::StrCat(where, ".", key, ": expected a string, got ", it->dump()));
      ok = false;
      return std::nullopt;
    }
    return it->get<std::string>();
  };
  out.ttl = field("ttl");
  out.select = field("select");
  out.policy = field("policy");
  if (out.ttl) {
    if (absl::Status st = ParseDnsTtl(*out.ttl).status(); !st.ok()) {
      p.Add(absl::StrCat(where, ".ttl: ", st.message()));
      ok = false;
    }
  }
  if (out.select && *out.select != "first" && *out.select != "random" && *out.select != "roundRobin") {
    p.Add(absl::StrCat(where, ".select: ", *out.select, " does not belong to DNSSelect values"));
    ok = false;
  }
  if (out.policy && *out.policy != "preferIPv4" && *out.policy != "preferIPv6" && *out.policy != "onlyIPv4" &&
      *out.policy != "onlyIPv6" && *out.policy != "any") {
    p.Add(absl::StrCat(where, ".policy: ", *out.policy, " does not belong to DNSPolicy values"));
    ok = false;
  }
  if (!ok) return std::nullopt;
  return out;
}

bool IsIpLiteral(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// hosts (k6's NullHosts): an object of strings. Keys follow k6's pattern
// (a name or "*"/"*." and a suffix, each with an optional ":port"), in
// lower case as k6 keeps them. k6 takes a value that is no IP address and
// dials nothing sensible later; here it is an error naming it.
std::optional<std::map<std::string, std::string>> ReadHosts(const json& v, const std::string& where, Problems& p) {
  if (!v.is_object()) {
    p.Add(absl::StrCat(where, ": expected an object of name: address, got ", v.dump()));
    return std::nullopt;
  }
  // k6's validHostPattern (lib/types/hosts.go).
  static const std::regex kPattern(
      R"(^(\*\.?)?((([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9]))?(:[0-9]{1,5})?$)");
  std::map<std::string, std::string> out;
  bool ok = true;
  for (auto it = v.begin(); it != v.end(); ++it) {
    const std::string key = absl::AsciiStrToLower(it.key());
    if (!std::regex_match(key, kPattern)) {
      p.Add(absl::StrCat(where, ": invalid host pattern '", it.key(), "'"));
      ok = false;
      continue;
    }
    if (!it->is_string()) {
      p.Add(absl::StrCat(where, ".", it.key(), ": expected a string like \"1.2.3.4\" or \"1.2.3.4:443\", got ", it->dump()));
      ok = false;
      continue;
    }
    const std::string value = it->get<std::string>();
    std::string ip = value;
    // Go's net.SplitHostPort: "[v6]:port" or "v4:port"; else the whole value.
    if (!value.empty() && value.front() == '[') {
      const size_t close = value.find("]:");
      ip = close == std::string::npos ? "" : value.substr(1, close - 1);
      int port = 0;
      if (close != std::string::npos && (!absl::SimpleAtoi(value.substr(close + 2), &port) || port < 0 || port > 65535)) ip = "";
    } else if (std::count(value.begin(), value.end(), ':') == 1) {
      const size_t colon = value.find(':');
      ip = value.substr(0, colon);
      int port = 0;
      if (!absl::SimpleAtoi(value.substr(colon + 1), &port) || port < 0 || port > 65535) ip = "";
    }
    if (!IsIpLiteral(ip)) {
      p.Add(absl::StrCat(where, ".", it.key(), ": invalid address '", value,
                         "', it needs to be an IP address with an optional port (1.2.3.4, 1.2.3.4:443, [::1]:443)"));
      ok = false;
      continue;
    }
    out[key] = value;
  }
  if (!ok) return std::nullopt;
  return out;
}

// k6's TLSVersions: "tls1.2" (both ends) or {min, max}; "" is no bound.
std::optional<TlsVersions> ReadTlsVersions(const json& v, const std::string& where, Problems& p) {
  auto version = [&](const json& x, const std::string& w) -> std::optional<std::string> {
    if (!x.is_string()) {
      p.Add(absl::StrCat(w, ": expected a TLS version like \"tls1.2\", got ", x.dump()));
      return std::nullopt;
    }
    const std::string s = x.get<std::string>();
    if (!s.empty() && !IsTlsVersionName(s)) {
      p.Add(absl::StrCat(w, ": unknown TLS version '", s, "' (tls1.0, tls1.1, tls1.2, tls1.3)"));
      return std::nullopt;
    }
    return s;
  };
  if (v.is_string()) {
    std::optional<std::string> s = version(v, where);
    if (!s) return std::nullopt;
    return TlsVersions{*s, *s};
  }
  if (!v.is_object()) {
    p.Add(absl::StrCat(where, ": expected a TLS version or {min, max}, got ", v.dump()));
    return std::nullopt;
  }
  TlsVersions out;
  for (auto it = v.begin(); it != v.end(); ++it) {
    const std::string w = absl::StrCat(where, ".", it.key());
    if (it.key() != "min" && it.key() != "max") {
      p.Add(absl::StrCat(where, ": unknown field '", it.key(), "' (min, max)"));
      continue;
    }
    if (it->is_null()) continue;
    std::optional<std::string> s = version(*it, w);
    if (!s) continue;
    (it.key() == "min" ? out.min : out.max) = *s;
  }
  return out;
}

std::optional<std::vector<std::string>> ReadCipherSuites(const json& v, const std::string& where, Problems& p) {
  std::optional<std::vector<std::string>> names = ReadStringArray(v, where, p);
  if (!names) return std::nullopt;
  for (const std::string& name : *names) {
    if (!IsTlsCipherSuiteName(name)) {
      p.Add(absl::StrCat(where, ": unknown cipher suite '", name, "'"));
      return std::nullopt;
    }
  }
  return names;
}

// k6's tlsAuth: [{domains, cert, key, password}], strict keys. The PEM
// blocks are checked where OpenSSL is at hand (the CLI, the agent).
std::optional<std::vector<TlsAuth>> ReadTlsAuth(const json& v, const std::string& where, Problems& p) {
  if (!v.is_array()) {
    p.Add(absl::StrCat(where, ": expected an array of {domains, cert, key, password}, got ", v.dump()));
    return std::nullopt;
  }
  std::vector<TlsAuth> out;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string w = absl::StrCat(where, "[", i, "]");
    const json& e = v[i];
    if (!e.is_object()) {
      p.Add(absl::StrCat(w, ": expected {domains, cert, key, password}, got ", e.dump()));
      continue;
    }
    TlsAuth auth;
    for (auto it = e.begin(); it != e.end(); ++it) {
      const std::string fw = absl::StrCat(w, ".", it.key());
      if (it.key() == "domains") {
        if (it->is_null()) continue;
        if (auto d = ReadStringArray(*it, fw, p)) auth.domains = *d;
      } else if (it.key() == "cert" || it.key() == "key") {
        if (auto s = ReadString(*it, fw, p)) (it.key() == "cert" ? auth.cert : auth.key) = *s;
      } else if (it.key() == "password") {
        if (it->is_null()) continue;
        if (auto s = ReadString(*it, fw, p)) auth.password = *s;
      } else {
        p.Add(absl::StrCat(w, ": unknown field '", it.key(), "' (domains, cert, key, password)"));
      }
    }
    if (auth.cert.empty()) p.Add(w + ".cert: required (a PEM certificate)");
    if (auth.key.empty()) p.Add(w + ".key: required (a PEM key)");
    out.push_back(std::move(auth));
  }
  return out;
}

std::optional<std::map<std::string, std::string>> ReadStringMap(const json& v, const std::string& where,
                                                                Problems& p) {
  if (!v.is_object()) {
    p.Add(absl::StrCat(where, ": expected an object, got ", v.dump()));
    return std::nullopt;
  }
  std::map<std::string, std::string> out;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (it->is_string()) out[it.key()] = it->get<std::string>();
    else if (it->is_number() || it->is_boolean()) out[it.key()] = it->dump();
    else p.Add(absl::StrCat(where, ".", it.key(), ": expected a string, got ", it->dump()));
  }
  return out;
}

std::optional<std::vector<Stage>> ReadStages(const json& v, const std::string& where, Problems& p) {
  if (!v.is_array()) {
    p.Add(absl::StrCat(where, ": expected an array of {duration, target}, got ", v.dump()));
    return std::nullopt;
  }
  std::vector<Stage> out;
  for (size_t i = 0; i < v.size(); ++i) {
    std::string w = absl::StrCat(where, "[", i, "]");
    const json& s = v[i];
    if (!s.is_object()) {
      p.Add(absl::StrCat(w, ": expected {duration, target}, got ", s.dump()));
      continue;
    }
    Stage stage;
    if (s.contains("duration")) {
      if (auto d = ReadDuration(s["duration"], w + ".duration", p)) stage.duration = *d;
    } else {
      p.Add(w + ".duration: required");
    }
    if (s.contains("target")) {
      if (auto t = ReadInt(s["target"], w + ".target", p)) {
        if (*t < 0) p.Add(absl::StrCat(w, ".target: must not be negative, got ", *t));
        stage.target = *t;
      }
    }
    out.push_back(stage);
  }
  return out;
}

const std::set<std::string>& CommonScenarioKeys() {
  static const std::set<std::string> keys = {"executor", "startTime", "gracefulStop", "exec",
                                             "env",      "tags",      "options"};
  return keys;
}

const std::map<std::string, std::set<std::string>>& ExecutorKeys() {
  static const std::map<std::string, std::set<std::string>> keys = {
      {"shared-iterations", {"vus", "iterations", "maxDuration"}},
      {"per-vu-iterations", {"vus", "iterations", "maxDuration"}},
      {"constant-vus", {"vus", "duration"}},
      {"constant-arrival-rate", {"rate", "timeUnit", "duration", "preAllocatedVUs", "maxVUs"}},
      {"ramping-arrival-rate", {"startRate", "timeUnit", "stages", "preAllocatedVUs", "maxVUs"}},
      {"ramping-vus", {"startVUs", "stages", "gracefulRampDown"}},
  };
  return keys;
}

void ReadScenario(const std::string& name, const json& v, Problems& p, std::vector<Scenario>& out) {
  const std::string where = absl::StrCat("options.scenarios.", name);
  static const std::regex kNameRe("^[0-9a-zA-Z_-]+$");
  if (!std::regex_match(name, kNameRe)) {
    p.Add(absl::StrCat(where, ": invalid scenario name '", name, "' (allowed: letters, digits, _ and -)"));
  }
  if (!v.is_object()) {
    p.Add(absl::StrCat(where, ": expected an object, got ", v.dump()));
    return;
  }
  Scenario s;
  s.name = name;
  if (!v.contains("executor") || !v["executor"].is_string()) {
    p.Add(where + ".executor: required (e.g. \"constant-vus\")");
    return;
  }
  s.executor = v["executor"].get<std::string>();
  if (s.executor == "externally-controlled") {
    p.Add(where + ".executor: the externally-controlled executor is not supported");
    return;
  }
  auto keys = ExecutorKeys().find(s.executor);
  if (keys == ExecutorKeys().end()) {
    p.Add(absl::StrCat(where, ".executor: unknown executor '", s.executor,
                       "' (known: shared-iterations, per-vu-iterations, constant-vus, ramping-vus, "
                       "constant-arrival-rate, ramping-arrival-rate)"));
    return;
  }
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!CommonScenarioKeys().count(it.key()) && !keys->second.count(it.key())) {
      p.Add(absl::StrCat(where, ": unknown field '", it.key(), "' for executor ", s.executor));
    }
  }
  auto get = [&](const char* key) -> const json* { return v.contains(key) ? &v[key] : nullptr; };
  if (auto* x = get("vus")) if (auto n = ReadInt(*x, where + ".vus", p)) s.vus = *n;
  if (auto* x = get("iterations")) if (auto n = ReadInt(*x, where + ".iterations", p)) s.iterations = *n;
  if (auto* x = get("duration")) if (auto d = ReadDuration(*x, where + ".duration", p)) s.duration = *d;
  if (auto* x = get("maxDuration")) if (auto d = ReadDuration(*x, where + ".maxDuration", p)) s.max_duration = *d;
  if (auto* x = get("startTime")) if (auto d = ReadDuration(*x, where + ".startTime", p)) s.start_time = *d;
  if (auto* x = get("gracefulStop")) if (auto d = ReadDuration(*x, where + ".gracefulStop", p)) s.graceful_stop = *d;
  if (auto* x = get("exec")) if (auto e = ReadString(*x, where + ".exec", p)) s.exec = *e;
  if (auto* x = get("env")) if (auto e = ReadStringMap(*x, where + ".env", p)) s.env = *e;
  if (auto* x = get("tags")) if (auto t = ReadStringMap(*x, where + ".tags", p)) s.tags = *t;
  if (auto* x = get("rate")) if (auto n = ReadInt(*x, where + ".rate", p)) s.rate = *n;
  if (auto* x = get("timeUnit")) if (auto d = ReadDuration(*x, where + ".timeUnit", p)) s.time_unit = *d;
  if (auto* x = get("preAllocatedVUs")) if (auto n = ReadInt(*x, where + ".preAllocatedVUs", p)) s.pre_allocated_vus = *n;
  s.max_vus = s.pre_allocated_vus;
  if (auto* x = get("maxVUs")) if (auto n = ReadInt(*x, where + ".maxVUs", p)) s.max_vus = *n;
  if (auto* x = get("startVUs")) if (auto n = ReadInt(*x, where + ".startVUs", p)) s.start_vus = *n;
  if (auto* x = get("startRate")) if (auto n = ReadInt(*x, where + ".startRate", p)) s.start_rate = *n;
  if (auto* x = get("stages")) if (auto st = ReadStages(*x, where + ".stages", p)) s.stages = *st;
  if (auto* x = get("gracefulRampDown")) if (auto d = ReadDuration(*x, where + ".gracefulRampDown", p)) s.graceful_ramp_down = *d;
  if ((s.IsRampingVus() || s.IsRampingArrivalRate()) && !get("stages")) {
    p.Add(absl::StrCat(where, ".stages: required for ", s.executor));
  }
  if ((s.executor == "constant-vus" || s.IsConstantArrivalRate()) && !get("duration")) {
    p.Add(absl::StrCat(where, ".duration: required for ", s.executor));
  }
  if (s.IsConstantArrivalRate() && !get("rate")) p.Add(where + ".rate: required for constant-arrival-rate");
  if (s.IsArrivalRate() && !get("preAllocatedVUs")) {
    p.Add(absl::StrCat(where, ".preAllocatedVUs: required for ", s.executor));
  }
  out.push_back(std::move(s));
}

// Every problem of one scenario, each naming the scenario and the field.
void ValidateScenario(const Scenario& s, Problems& p) {
  const std::string where = absl::StrCat("scenario '", s.name, "'");
  auto non_negative = [&](absl::Duration d, const char* field) {
    if (d < absl::ZeroDuration()) p.Add(absl::StrCat(where, ": ", field, " must not be negative, got ", FormatGoDuration(d)));
  };
  auto at_least_1s = [&](absl::Duration d, const char* field) {
    if (d < absl::Seconds(1)) p.Add(absl::StrCat(where, ": ", field, " must be at least 1s, got ", FormatGoDuration(d)));
  };
  auto stages = [&](const char* what) {
    if (s.stages.empty()) p.Add(absl::StrCat(where, ": stages must not be empty"));
    for (size_t i = 0; i < s.stages.size(); ++i) {
      if (s.stages[i].duration < absl::ZeroDuration()) {
        p.Add(absl::StrCat(where, ": stages[", i, "].duration must not be negative, got ",
                           FormatGoDuration(s.stages[i].duration)));
      }
      if (s.stages[i].target < 0) {
        p.Add(absl::StrCat(where, ": stages[", i, "].target must not be negative (it is a ", what, "), got ",
                           s.stages[i].target));
      }
    }
  };
  non_negative(s.start_time, "startTime");
  non_negative(s.graceful_stop, "gracefulStop");
  if (s.IsArrivalRate()) {
    if (s.time_unit <= absl::ZeroDuration()) {
      p.Add(absl::StrCat(where, ": timeUnit must be greater than 0, got ", FormatGoDuration(s.time_unit)));
    }
    if (s.pre_allocated_vus < 0) {
      p.Add(absl::StrCat(where, ": preAllocatedVUs must not be negative, got ", s.pre_allocated_vus));
    }
    if (s.max_vus < s.pre_allocated_vus) {
      p.Add(absl::StrCat(where, ": maxVUs (", s.max_vus, ") must not be less than preAllocatedVUs (",
                         s.pre_allocated_vus, ")"));
    } else if (s.max_vus <= 0) {
      p.Add(absl::StrCat(where, ": maxVUs must be greater than 0"));
    }
    if (s.IsConstantArrivalRate()) {
      if (s.rate <= 0) p.Add(absl::StrCat(where, ": rate must be greater than 0, got ", s.rate));
      at_least_1s(s.duration, "duration");
    } else {
      if (s.start_rate < 0) p.Add(absl::StrCat(where, ": startRate must not be negative, got ", s.start_rate));
      stages("rate per timeUnit");
      int64_t most = s.start_rate;
      for (const Stage& st : s.stages) most = std::max(most, st.target);
      if (!s.stages.empty() && most <= 0) {
        p.Add(where + ": either startRate or one of the stages' targets must be greater than 0");
      }
      if (!s.stages.empty() && s.StagesDuration() <= absl::ZeroDuration()) {
        p.Add(where + ": the stages' durations must add up to more than 0");
      }
    }
    return;
  }
  if (s.IsRampingVus()) {
    if (s.start_vus < 0) p.Add(absl::StrCat(where, ": startVUs must not be negative, got ", s.start_vus));
    stages("number of VUs");
    if (!s.stages.empty() && s.InitialVus() <= 0) {
      p.Add(where + ": either startVUs or one of the stages' targets must be greater than 0");
    }
    non_negative(s.graceful_ramp_down, "gracefulRampDown");
    return;
  }
  if (s.vus <= 0) p.Add(absl::StrCat(where, ": vus must be greater than 0, got ", s.vus));
  if (s.executor == "constant-vus") {
    at_least_1s(s.duration, "duration");
    return;
  }
  if (s.iterations <= 0) {
    p.Add(absl::StrCat(where, ": iterations must be greater than 0, got ", s.iterations));
  } else if (s.executor == "shared-iterations" && s.iterations < s.vus) {
    p.Add(absl::StrCat(where, ": the number of iterations (", s.iterations, ") can't be less than the number of VUs (",
                       s.vus, ")"));
  }
  at_least_1s(s.max_duration, "maxDuration");
}

}  // namespace

int64_t Scenario::InitialVus() const {
  if (IsArrivalRate()) return pre_allocated_vus;
  if (IsRampingVus()) {
    int64_t most = start_vus;
    for (const Stage& st : stages) most = std::max(most, st.target);
    return most;
  }
  return vus;
}

absl::Duration Scenario::StagesDuration() const {
  absl::Duration total;
  for (const Stage& st : stages) total += st.duration;
  return total;
}

int64_t Scenario::PlannedVus(absl::Duration t) const {
  int64_t from = start_vus;
  absl::Duration stage_start;
  for (const Stage& st : stages) {
    const absl::Duration end = stage_start + st.duration;
    if (t < end) {
      const double fraction = absl::FDivDuration(t - stage_start, st.duration);
      return from + static_cast<int64_t>(static_cast<double>(st.target - from) * fraction);  // trunc toward 0
    }
    from = st.target;
    stage_start = end;
  }
  return from;
}

absl::Duration Scenario::RegularDuration() const {
  if (IsRampingVus() || IsRampingArrivalRate()) return StagesDuration();
  if (executor == "constant-vus" || IsConstantArrivalRate()) return duration;
  return max_duration;
}

absl::Duration Scenario::MaxTotalDuration() const {
  return start_time + RegularDuration() + graceful_stop;
}

absl::Duration Scenario::ArrivalOffset(int64_t k) const {
  if (IsConstantArrivalRate()) return time_unit * k / rate;
  // Work in units of timeUnit: the rate goes linearly from a to b over D
  // inside a stage, so the iterations due by x into it are
  // a*x + (b - a)*x^2/(2D). n is how many are due before the stage.
  const double want = static_cast<double>(k + 1);  // the (k+1)-th arrival
  double n = 0;
  double a = static_cast<double>(start_rate);
  absl::Duration stage_start;
  for (const Stage& st : stages) {
    const double b = static_cast<double>(st.target);
    const double d = absl::FDivDuration(st.duration, time_unit);
    const double in_stage = (a + b) / 2 * d;
    if (d > 0 && n + in_stage >= want) {
      const double m = want - n;
      double x;
      if (a == b) {
        x = m / a;
      } else {
        x = (a * d - std::sqrt(d * (a * a * d + 2 * m * (b - a)))) / (a - b);
      }
      return stage_start + time_unit * std::clamp(x, 0.0, d);
    }
    n += in_stage;
    stage_start += st.duration;
    a = b;
  }
  return absl::InfiniteDuration();
}

std::string Scenario::Describe() const {
  std::string extra = absl::StrCat("gracefulStop: ", FormatGoDuration(graceful_stop));
  if (exec != "default") extra = absl::StrCat("exec: ", exec, ", ", extra);
  if (start_time > absl::ZeroDuration()) extra = absl::StrCat("startTime: ", FormatGoDuration(start_time), ", ", extra);
  if (executor == "constant-vus") {
    return absl::StrCat(vus, " looping VUs for ", FormatGoDuration(duration), " (", extra, ")");
  }
  if (IsRampingVus()) {
    return absl::StrCat("Up to ", InitialVus(), " looping VUs for ", FormatGoDuration(StagesDuration()), " over ",
                        stages.size(), " stages (gracefulRampDown: ", FormatGoDuration(graceful_ramp_down), ", ",
                        extra, ")");
  }
  if (IsRampingArrivalRate()) {
    int64_t most = start_rate;
    for (const Stage& st : stages) most = std::max(most, st.target);
    const double per_second = static_cast<double>(most) / absl::ToDoubleSeconds(time_unit);
    const std::string vus_text = max_vus > pre_allocated_vus ? absl::StrCat(pre_allocated_vus, "-", max_vus)
                                                             : absl::StrCat(max_vus);
    return absl::StrCat("Up to ", absl::StrFormat("%.2f", per_second), " iterations/s for ",
                        FormatGoDuration(StagesDuration()), " over ", stages.size(), " stages (maxVUs: ", vus_text,
                        ", ", extra, ")");
  }
  if (IsArrivalRate()) {
    const double per_second = static_cast<double>(rate) / absl::ToDoubleSeconds(time_unit);
    const std::string vus_text = max_vus > pre_allocated_vus ? absl::StrCat(pre_allocated_vus, "-", max_vus)
                                                             : absl::StrCat(max_vus);
    return absl::StrCat(absl::StrFormat("%.2f", per_second), " iterations/s for ", FormatGoDuration(duration),
                        " (maxVUs: ", vus_text, ", ", extra, ")");
  }
  if (executor == "per-vu-iterations") {
    return absl::StrCat(iterations, " iterations for each of ", vus, " VUs (maxDuration: ",
                        FormatGoDuration(max_duration), ", ", extra, ")");
  }
  return absl::StrCat(iterations, " iterations shared among ", vus, " VUs (maxDuration: ",
                      FormatGoDuration(max_duration), ", ", extra, ")");
}

std::vector<std::string> Options::TrendStats() const {
  if (summary_trend_stats) return *summary_trend_stats;
  return {"avg", "min", "med", "max", "p(90)", "p(95)"};
}

const std::vector<std::string>& KnownSystemTags() {
  static const std::vector<std::string> tags = {
      "check",  "error",    "error_code", "expected_response", "group",       "iter", "ip",  "method",
      "name",   "ocsp_status", "proto",  "scenario",          "service",     "status", "subproto",
      "tls_version", "url", "vu"};
  return tags;
}

const std::vector<std::string>& DefaultSystemTags() {
  static const std::vector<std::string> tags = {
      "check", "error",    "error_code", "expected_response", "group",    "method", "name",
      "proto", "scenario", "service",    "status",            "subproto", "tls_version", "url"};
  return tags;
}

std::vector<std::string> Options::SystemTags() const {
  if (!system_tags) return DefaultSystemTags();
  std::set<std::string> known;
  for (const std::string& tag : *system_tags) {
    const auto& all = KnownSystemTags();
    if (std::find(all.begin(), all.end(), tag) != all.end()) known.insert(tag);
  }
  return {known.begin(), known.end()};
}

std::string Options::UserAgent(const std::string& version) const {
  return user_agent.value_or(absl::StrCat("Barrage/", version));
}

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    absl::string_view trimmed = absl::StripAsciiWhitespace(part);
    if (!trimmed.empty()) out.emplace_back(trimmed);
  }
  return out;
}

bool IsTlsVersionName(const std::string& name) {
  return name == "tls1.0" || name == "tls1.1" || name == "tls1.2" || name == "tls1.3";
}

bool IsTlsCipherSuiteName(const std::string& name) {
  // k6's lib.SupportedTLSCipherSuites (Go's crypto/tls names).
  static const std::set<std::string> kNames = {
      "TLS_RSA_WITH_RC4_128_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA",
      "TLS_RSA_WITH_AES_256_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA256", "TLS_RSA_WITH_AES_128_GCM_SHA256",
      "TLS_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
      "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_RSA_WITH_RC4_128_SHA", "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
      "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
      "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
      "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
      "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
      "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
      "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"};
  return kNames.count(name) > 0;
}

absl::Status ValidateTrendStats(const std::vector<std::string>& stats) {
  static const std::regex kPercentile(R"(^p\((\d+(\.\d+)?)\)$)");
  for (const std::string& s : stats) {
    if (s == "avg" || s == "min" || s == "med" || s == "max" || s == "count") continue;
    std::smatch m;
    if (std::regex_match(s, m, kPercentile) && std::stod(m[1].str()) <= 100) continue;
    return absl::InvalidArgumentError(absl::StrCat(
        "summaryTrendStats: stat '", s, "' is not supported (use avg, min, med, max, count or p(N) with 0 <= N <= 100)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::Duration> ParseDnsTtl(const std::string& text) {
  // k6's parseTTL (internal/js/runner.go).
  if (text == "inf") return absl::InfiniteDuration();
  if (text == "0") return absl::ZeroDuration();
  absl::StatusOr<absl::Duration> d = ParseDuration(text.empty() ? "5m" : text);
  if (!d.ok() || *d < absl::ZeroDuration()) return absl::InvalidArgumentError(absl::StrCat("invalid DNS TTL: ", text));
  return *d;
}

absl::Duration DnsConfig::Ttl() const {
  absl::StatusOr<absl::Duration> d = ParseDnsTtl(ttl.value_or("5m"));
  return d.ok() ? *d : absl::Minutes(5);  // checked when parsed
}

absl::StatusOr<DnsConfig> ParseDnsText(const std::string& text) {
  // k6's DNSConfig.UnmarshalText (lib/types/dns.go).
  if (text == "ttl=5m,select=random,policy=preferIPv4") return DnsConfig{};
  std::map<std::string, std::string> params;
  for (absl::string_view entry : absl::StrSplit(text, ',')) {
    std::pair<std::string, std::string> kv = absl::StrSplit(entry, absl::MaxSplits('=', 1));
    if (kv.second.empty()) return absl::InvalidArgumentError(absl::StrCat("no value for key ", entry));
    params[kv.first] = kv.second;
  }
  json j = json::object();
  for (const auto& [k, v] : params) {
    if (k != "ttl" && k != "select" && k != "policy") {
      return absl::InvalidArgumentError(absl::StrCat("unknown DNS configuration field: ", k));
    }
    j[k] = v;
  }
  Problems p;
  std::optional<DnsConfig> out = ReadDns(j, "dns", p);
  if (!out) {
    // One problem at a time, as k6 stops at the first; without the
    // "dns.<field>: " prefix, which the caller's flag or variable replaces.
    std::string message(p.ToStatus().message());
    message = message.substr(0, message.find('\n'));
    const size_t colon = message.find(": ");
    return absl::InvalidArgumentError(colon == std::string::npos ? message : message.substr(colon + 2));
  }
  return *out;
}

absl::StatusOr<Options> ParseOptionsJson(const std::string& text, const std::string& where,
                                         std::vector<std::string>* warnings) {
  json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(where, ": not valid JSON"));
  if (root.is_null()) return Options{};
  if (!root.is_object()) return absl::InvalidArgumentError(absl::StrCat(where, ": expected an object, got ", root.dump()));
  Options o;
  Problems p;
  // k6 options that do nothing for gRPC (HTTP-only, cloud, DNS, ...):
  // accepted, kept as given for exec.test.options, not applied.
  static const std::set<std::string> kPassedThrough = {
      "paused", "rps", "maxRedirects", "batch", "batchPerHost", "httpDebug", "blacklistIPs",
      "blockHostnames", "noConnectionReuse", "noVUConnectionReuse", "ext", "cloud",
      "metricSamplesBufferSize", "noCookiesReset", "discardResponseBodies", "localIPs"};
  // Keys of k6's config file beside the options, and Barrage's older
  // spellings: accepted and ignored.
  static const std::set<std::string> kIgnored = {"noUsageReport", "linger", "discardResponseMessage"};
  std::vector<std::string> unknown;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string& k = it.key();
    const json& v = *it;
    const std::string w = absl::StrCat(where, ".", k);
    if (v.is_null()) continue;  // unset, as OptionsToJson writes it
    if (k == "vus") {
      if (auto n = ReadInt(v, w, p)) {
        if (*n < 0) p.Add(absl::StrCat(w, ": must not be negative, got ", *n));
        o.vus = *n;
      }
    } else if (k == "duration") {
      if (auto d = ReadDuration(v, w, p)) o.duration = *d;
    } else if (k == "iterations") {
      if (auto n = ReadInt(v, w, p)) o.iterations = *n;
    } else if (k == "stages") {
      if (auto s = ReadStages(v, w, p)) o.stages = *s;
    } else if (k == "scenarios") {
      if (!v.is_object()) {
        p.Add(absl::StrCat(w, ": expected an object of scenarios, got ", v.dump()));
      } else {
        std::vector<Scenario> list;
        for (auto s = v.begin(); s != v.end(); ++s) ReadScenario(s.key(), *s, p, list);
        o.scenarios = list;
      }
    } else if (k == "thresholds") {
      if (!v.is_object()) {
        p.Add(absl::StrCat(w, ": expected an object, got ", v.dump()));
        continue;
      }
      std::map<std::string, std::vector<ThresholdSpec>> th;
      for (auto t = v.begin(); t != v.end(); ++t) {
        const std::string tw = absl::StrCat(w, ".", t.key());
        std::vector<ThresholdSpec> specs;
        json list = t->is_array() ? *t : json::array({*t});
        for (size_t i = 0; i < list.size(); ++i) {
          const json& e = list[i];
          const std::string ew = absl::StrCat(tw, "[", i, "]");
          ThresholdSpec spec;
          if (e.is_string()) {
            spec.expression = e.get<std::string>();
          } else if (e.is_object()) {
            for (auto f = e.begin(); f != e.end(); ++f) {
              if (f.key() == "threshold") {
                if (auto s = ReadString(*f, ew + ".threshold", p)) spec.expression = *s;
              } else if (f.key() == "abortOnFail") {
                if (auto b = ReadBool(*f, ew + ".abortOnFail", p)) spec.abort_on_fail = *b;
              } else if (f.key() == "delayAbortEval") {
                if (auto d = ReadDuration(*f, ew + ".delayAbortEval", p)) spec.delay_abort_eval = *d;
              } else {
                p.Add(absl::StrCat(ew, ": unknown field '", f.key(), "' (threshold, abortOnFail, delayAbortEval)"));
              }
            }
            if (spec.expression.empty()) p.Add(ew + ".threshold: required");
          } else {
            p.Add(absl::StrCat(ew, ": expected a string or {threshold, abortOnFail, delayAbortEval}, got ", e.dump()));
          }
          specs.push_back(spec);
        }
        th[t.key()] = specs;
      }
      o.thresholds = th;
    } else if (k == "summaryTrendStats") {
      if (!v.is_array()) {
        p.Add(absl::StrCat(w, ": expected an array of strings, got ", v.dump()));
      } else {
        std::vector<std::string> stats;
        for (const json& s : v) {
          if (s.is_string()) stats.push_back(s.get<std::string>());
          else p.Add(absl::StrCat(w, ": expected strings, got ", s.dump()));
        }
        absl::Status st = ValidateTrendStats(stats);
        if (!st.ok()) p.Add(absl::StrCat(where, ".", st.message()));
        o.summary_trend_stats = stats;
      }
    } else if (k == "summaryTimeUnit") {
      if (auto s = ReadString(v, w, p)) {
        if (*s != "" && *s != "s" && *s != "ms" && *s != "us") p.Add(absl::StrCat(w, ": must be s, ms or us, got '", *s, "'"));
        o.summary_time_unit = *s;
      }
    } else if (k == "setupTimeout") {
      if (auto d = ReadDuration(v, w, p)) o.setup_timeout = *d;
    } else if (k == "teardownTimeout") {
      if (auto d = ReadDuration(v, w, p)) o.teardown_timeout = *d;
    } else if (k == "handleSummaryTimeout") {
      if (auto d = ReadDuration(v, w, p)) o.handle_summary_timeout = *d;
    } else if (k == "noSetup") {
      if (auto b = ReadBool(v, w, p)) o.no_setup = *b;
    } else if (k == "noTeardown") {
      if (auto b = ReadBool(v, w, p)) o.no_teardown = *b;
    } else if (k == "throw") {
      if (auto b = ReadBool(v, w, p)) o.throw_errors = *b;
    } else if (k == "insecureSkipTLSVerify") {
      if (auto b = ReadBool(v, w, p)) o.insecure_skip_tls_verify = *b;
    } else if (k == "tlsVersion") {
      if (auto t = ReadTlsVersions(v, w, p)) o.tls_version = *t;
    } else if (k == "tlsCipherSuites") {
      if (auto s = ReadCipherSuites(v, w, p)) o.tls_cipher_suites = *s;
    } else if (k == "tlsAuth") {
      if (auto a = ReadTlsAuth(v, w, p)) o.tls_auth = *a;
    } else if (k == "dns") {
      if (auto d = ReadDns(v, w, p)) o.dns = *d;
    } else if (k == "hosts") {
      if (auto h = ReadHosts(v, w, p)) o.hosts = *h;
    } else if (k == "minIterationDuration") {
      if (auto d = ReadDuration(v, w, p)) o.min_iteration_duration = *d;
    } else if (k == "userAgent") {
      if (auto s = ReadString(v, w, p)) o.user_agent = *s;
    } else if (k == "tags") {
      if (auto t = ReadStringMap(v, w, p)) o.tags = *t;
    } else if (k == "systemTags") {
      // Names k6 does not know are ignored, as k6 does (spec §2.3).
      if (auto tags = ReadStringArray(v, w, p)) o.system_tags = *tags;
    } else if (k == "executionSegment") {
      if (auto t = ReadString(v, w, p)) {
        absl::StatusOr<ExecutionSegment> seg = ParseExecutionSegment(*t);
        if (seg.ok()) o.execution_segment = *t;
        else p.Add(absl::StrCat(w, ": ", seg.status().message()));
      }
    } else if (k == "executionSegmentSequence") {
      if (auto t = ReadString(v, w, p)) {
        absl::StatusOr<std::vector<Rational>> seq = ParseExecutionSegmentSequence(*t);
        if (seq.ok()) o.execution_segment_sequence = *t;
        else p.Add(absl::StrCat(w, ": ", seq.status().message()));
      }
    } else if (kPassedThrough.count(k)) {
      o.passthrough[k] = v.dump();
    } else if (!kIgnored.count(k)) {
      unknown.push_back(k);
    }
  }
  if (!unknown.empty() && warnings != nullptr) {
    warnings->push_back(absl::StrCat("There were unknown fields in the options exported in the script: ",
                                     absl::StrJoin(unknown, ", ")));
  }
  if (!p.empty()) return p.ToStatus();
  return o;
}

std::optional<bool> ParseGoBool(const std::string& s) {
  if (s == "1" || s == "t" || s == "T" || s == "true" || s == "TRUE" || s == "True") return true;
  if (s == "0" || s == "f" || s == "F" || s == "false" || s == "FALSE" || s == "False") return false;
  return std::nullopt;
}

absl::StatusOr<Options> OptionsFromEnvironment(const std::function<const char*(const char*)>& getenv) {
  Options o;
  Problems p;
  auto get = [&](const char* name) -> std::optional<std::string> {
    const char* v = getenv(name);
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
  auto integer = [&](const char* name, std::optional<int64_t>& out) {
    auto v = get(name);
    if (!v) return;
    int64_t n;
    if (!absl::SimpleAtoi(*v, &n)) {
      p.Add(absl::StrCat(name, ": not an integer (or out of range): ", *v));
      return;
    }
    out = n;
  };
  auto duration = [&](const char* name, std::optional<absl::Duration>& out) {
    auto v = get(name);
    if (!v) return;
    absl::StatusOr<absl::Duration> d = ParseDuration(*v);
    if (!d.ok()) {
      p.Add(absl::StrCat(name, ": ", d.status().message()));
      return;
    }
    out = *d;
  };
  auto boolean = [&](const char* name, std::optional<bool>& out) {
    auto v = get(name);
    if (!v) return;
    std::optional<bool> b = ParseGoBool(*v);
    if (!b) {
      p.Add(absl::StrCat(name, ": not a boolean (true or false): ", *v));
      return;
    }
    out = *b;
  };
  integer("K6_VUS", o.vus);
  integer("K6_ITERATIONS", o.iterations);
  if (o.vus && *o.vus < 0) p.Add(absl::StrCat("K6_VUS: must not be negative, got ", *o.vus));
  duration("K6_DURATION", o.duration);
  if (auto v = get("K6_STAGES")) {
    // k6's envconfig: comma-separated DURATION:TARGET entries.
    std::vector<Stage> stages;
    for (const std::string& text : SplitList(*v)) {
      const size_t colon = text.rfind(':');
      int64_t target = 0;
      absl::StatusOr<absl::Duration> d = absl::InvalidArgumentError("no duration");
      if (colon != std::string::npos) d = ParseDuration(text.substr(0, colon));
      if (colon == std::string::npos || !absl::SimpleAtoi(text.substr(colon + 1), &target) || target < 0 || !d.ok()) {
        p.Add(absl::StrCat("K6_STAGES: expected DURATION:TARGET entries like 30s:10, got '", text, "'"));
        break;
      }
      stages.push_back({*d, target});
    }
    o.stages = stages;
  }
  if (auto v = get("K6_SUMMARY_TREND_STATS")) {
    o.summary_trend_stats = SplitList(*v);
    if (absl::Status st = ValidateTrendStats(*o.summary_trend_stats); !st.ok()) {
      p.Add(absl::StrCat("K6_SUMMARY_TREND_STATS: ", st.message()));
    }
  }
  if (auto v = get("K6_SUMMARY_TIME_UNIT")) {
    if (*v != "s" && *v != "ms" && *v != "us") {
      p.Add(absl::StrCat("K6_SUMMARY_TIME_UNIT: must be s, ms or us, got '", *v, "'"));
    }
    o.summary_time_unit = *v;
  }
  if (auto v = get("K6_TAGS")) {
    metrics::TagSet tags;
    for (absl::string_view kv : absl::StrSplit(*v, ',', absl::SkipEmpty())) {
      std::pair<std::string, std::string> pair = absl::StrSplit(kv, absl::MaxSplits(':', 1));
      tags[pair.first] = pair.second;
    }
    o.tags = tags;
  }
  if (auto v = get("K6_SYSTEM_TAGS")) o.system_tags = SplitList(*v);
  boolean("K6_NO_SETUP", o.no_setup);
  boolean("K6_NO_TEARDOWN", o.no_teardown);
  boolean("K6_THROW", o.throw_errors);
  boolean("K6_INSECURE_SKIP_TLS_VERIFY", o.insecure_skip_tls_verify);
  duration("K6_SETUP_TIMEOUT", o.setup_timeout);
  duration("K6_TEARDOWN_TIMEOUT", o.teardown_timeout);
  duration("K6_HANDLE_SUMMARY_TIMEOUT", o.handle_summary_timeout);
  duration("K6_MIN_ITERATION_DURATION", o.min_iteration_duration);
  if (auto v = get("K6_USER_AGENT")) o.user_agent = *v;
  if (auto v = get("K6_DNS")) {
    absl::StatusOr<DnsConfig> dns = ParseDnsText(*v);
    if (dns.ok()) o.dns = *dns;
    else p.Add(absl::StrCat("K6_DNS: ", dns.status().message()));
  }
  if (auto v = get("K6_CONSOLE_OUTPUT")) o.console_output = *v;
  if (auto v = get("K6_TLS_CIPHER_SUITES")) {
    o.tls_cipher_suites = SplitList(*v);
    for (const std::string& name : *o.tls_cipher_suites) {
      if (!IsTlsCipherSuiteName(name)) p.Add(absl::StrCat("K6_TLS_CIPHER_SUITES: unknown cipher suite '", name, "'"));
    }
  }
  if (!p.empty()) return p.ToStatus();
  return o;
}

Options MergeOptions(const Options& lower, const Options& higher, std::vector<std::string>* warnings) {
  Options out = lower;
  const bool shape = higher.duration || higher.iterations || higher.stages || higher.scenarios;
  if (higher.vus && !shape && lower.scenarios && !lower.scenarios->empty()) {
    if (warnings != nullptr) {
      warnings->push_back(absl::StrCat("vus set on its own overrides the scenarios: running ", *higher.vus,
                                       " iterations shared among ", *higher.vus, " VUs instead"));
    }
    out.scenarios.reset();
  }
  if (shape) {
    out.duration.reset();
    out.iterations.reset();
    out.stages.reset();
    out.scenarios.reset();
  }
#define BARRAGE_MERGE(field) if (higher.field) out.field = higher.field
  BARRAGE_MERGE(vus);
  BARRAGE_MERGE(duration);
  BARRAGE_MERGE(iterations);
  BARRAGE_MERGE(stages);
  BARRAGE_MERGE(scenarios);
  BARRAGE_MERGE(thresholds);
  BARRAGE_MERGE(summary_trend_stats);
  BARRAGE_MERGE(summary_time_unit);
  BARRAGE_MERGE(setup_timeout);
  BARRAGE_MERGE(teardown_timeout);
  BARRAGE_MERGE(handle_summary_timeout);
  BARRAGE_MERGE(no_setup);
  BARRAGE_MERGE(no_teardown);
  BARRAGE_MERGE(throw_errors);
  BARRAGE_MERGE(tags);
  BARRAGE_MERGE(system_tags);
  BARRAGE_MERGE(user_agent);
  BARRAGE_MERGE(min_iteration_duration);
  BARRAGE_MERGE(insecure_skip_tls_verify);
  BARRAGE_MERGE(tls_version);
  BARRAGE_MERGE(tls_cipher_suites);
  BARRAGE_MERGE(tls_auth);
  BARRAGE_MERGE(dns.ttl);  // field by field, as k6's Options.Apply
  BARRAGE_MERGE(dns.select);
  BARRAGE_MERGE(dns.policy);
  BARRAGE_MERGE(hosts);
  BARRAGE_MERGE(console_output);
  BARRAGE_MERGE(execution_segment);
  BARRAGE_MERGE(execution_segment_sequence);
#undef BARRAGE_MERGE
  for (const auto& [key, value] : higher.passthrough) out.passthrough[key] = value;
  return out;
}

absl::StatusOr<std::vector<Scenario>> ResolveScenarios(const Options& o, std::vector<std::string>* warnings) {
  std::vector<Scenario> out;
  if (o.vus && *o.vus < 0) return absl::InvalidArgumentError("vus: must not be negative");
  if (o.iterations) {
    if (o.stages || o.scenarios) {
      return absl::InvalidArgumentError("iterations: can't be used together with stages or scenarios");
    }
    Scenario s;
    s.name = "default";
    s.executor = "shared-iterations";
    s.vus = o.vus.value_or(1);
    s.iterations = *o.iterations;
    if (o.duration) s.max_duration = *o.duration;
    out.push_back(s);
  } else if (o.duration) {
    if (o.stages || o.scenarios) {
      return absl::InvalidArgumentError("duration: can't be used together with stages or scenarios");
    }
    if (*o.duration <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(absl::StrCat("duration: must be greater than 0, got ", FormatGoDuration(*o.duration)));
    }
    Scenario s;
    s.name = "default";
    s.executor = "constant-vus";
    s.vus = o.vus.value_or(1);
    s.duration = *o.duration;
    out.push_back(s);
  } else if (o.stages && !o.stages->empty()) {
    if (o.scenarios) return absl::InvalidArgumentError("stages: can't be used together with scenarios");
    Scenario s;
    s.name = "default";
    s.executor = "ramping-vus";
    s.start_vus = o.vus.value_or(1);
    s.stages = *o.stages;
    out.push_back(s);
  } else if (o.scenarios && !o.scenarios->empty()) {
    if (o.vus && warnings) warnings->push_back("the vus option is ignored because scenarios are set");
    out = *o.scenarios;
  } else if (o.vus && *o.vus > 0) {
    Scenario s;
    s.name = "default";
    s.executor = "shared-iterations";
    s.vus = *o.vus;
    s.iterations = *o.vus;
    out.push_back(s);
  } else {
    Scenario s;
    s.name = "default";
    s.executor = "per-vu-iterations";
    out.push_back(s);
  }
  Problems p;
  for (const Scenario& s : out) ValidateScenario(s, p);
  if (!p.empty()) return p.ToStatus();
  return out;
}

namespace {

json DurationJson(absl::Duration d) { return FormatGoDuration(d); }

json StagesJson(const std::vector<Stage>& stages) {
  json out = json::array();
  for (const Stage& st : stages) out.push_back({{"duration", DurationJson(st.duration)}, {"target", st.target}});
  return out;
}

json ScenarioJson(const Scenario& s) {
  json j = {{"executor", s.executor},         {"startTime", DurationJson(s.start_time)},
            {"gracefulStop", DurationJson(s.graceful_stop)}, {"exec", s.exec},
            {"env", s.env},                   {"tags", s.tags}};
  if (s.executor == "shared-iterations" || s.executor == "per-vu-iterations") {
    j["vus"] = s.vus;
    j["iterations"] = s.iterations;
    j["maxDuration"] = DurationJson(s.max_duration);
  } else if (s.executor == "constant-vus") {
    j["vus"] = s.vus;
    j["duration"] = DurationJson(s.duration);
  } else if (s.IsRampingVus()) {
    j["startVUs"] = s.start_vus;
    j["stages"] = StagesJson(s.stages);
    j["gracefulRampDown"] = DurationJson(s.graceful_ramp_down);
  } else if (s.IsArrivalRate()) {
    if (s.IsConstantArrivalRate()) {
      j["rate"] = s.rate;
      j["duration"] = DurationJson(s.duration);
    } else {
      j["startRate"] = s.start_rate;
      j["stages"] = StagesJson(s.stages);
    }
    j["timeUnit"] = DurationJson(s.time_unit);
    j["preAllocatedVUs"] = s.pre_allocated_vus;
    j["maxVUs"] = s.max_vus;
  }
  return j;
}

template <typename T, typename F>
json OrNull(const std::optional<T>& v, F f) {
  return v ? json(f(*v)) : json(nullptr);
}

}  // namespace

std::string OptionsToJson(const Options& o, const std::vector<Scenario>& scenarios) {
  // k6 v1.x's exec.test.options: lib.Options marshalled in its field order,
  // vus/duration/iterations/stages removed, consoleOutput and localIPs
  // last; unset options null, except the defaults k6 fills in
  // (summaryTrendStats, systemTags, the dns object).
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  auto same = [](const auto& v) { return v; };
  auto passthrough = [&](const char* key, nlohmann::ordered_json def = nullptr) {
    auto it = o.passthrough.find(key);
    j[key] = it == o.passthrough.end() ? def : nlohmann::ordered_json::parse(it->second);
  };
  passthrough("paused");
  json sc = json::object();
  for (const Scenario& s : scenarios) sc[s.name] = ScenarioJson(s);
  j["scenarios"] = sc;
  j["executionSegment"] = OrNull(o.execution_segment, same);
  j["executionSegmentSequence"] = OrNull(o.execution_segment_sequence, same);
  j["noSetup"] = OrNull(o.no_setup, same);
  j["setupTimeout"] = OrNull(o.setup_timeout, DurationJson);
  j["noTeardown"] = OrNull(o.no_teardown, same);
  j["teardownTimeout"] = OrNull(o.teardown_timeout, DurationJson);
  passthrough("rps");
  nlohmann::ordered_json dns = nlohmann::ordered_json::object();  // k6's field order
  dns["ttl"] = OrNull(o.dns.ttl, same);
  dns["select"] = OrNull(o.dns.select, same);
  dns["policy"] = OrNull(o.dns.policy, same);
  j["dns"] = dns;
  passthrough("maxRedirects");
  j["userAgent"] = OrNull(o.user_agent, same);
  passthrough("batch");
  passthrough("batchPerHost");
  passthrough("httpDebug");
  j["insecureSkipTLSVerify"] = OrNull(o.insecure_skip_tls_verify, same);
  j["tlsCipherSuites"] = OrNull(o.tls_cipher_suites, same);
  j["tlsVersion"] = OrNull(o.tls_version, [](const TlsVersions& v) {
    json out = json::object();
    out["min"] = v.min;
    out["max"] = v.max;
    return out;
  });
  j["tlsAuth"] = OrNull(o.tls_auth, [](const std::vector<TlsAuth>& list) {
    json out = json::array();
    for (const TlsAuth& a : list) {
      out.push_back({{"domains", a.domains}, {"cert", a.cert}, {"key", a.key},
                     {"password", a.password ? json(*a.password) : json(nullptr)}});
    }
    return out;
  });
  j["throw"] = OrNull(o.throw_errors, same);
  j["thresholds"] = OrNull(o.thresholds, [](const std::map<std::string, std::vector<ThresholdSpec>>& th) {
    json out = json::object();
    for (const auto& [key, specs] : th) {
      json list = json::array();
      for (const ThresholdSpec& spec : specs) {
        if (!spec.abort_on_fail && spec.delay_abort_eval == absl::ZeroDuration()) {
          list.push_back(spec.expression);
        } else {
          list.push_back({{"threshold", spec.expression},
                          {"abortOnFail", spec.abort_on_fail},
                          {"delayAbortEval", FormatGoDuration(spec.delay_abort_eval)}});
        }
      }
      out[key] = list;
    }
    return out;
  });
  passthrough("blacklistIPs");
  passthrough("blockHostnames");
  j["hosts"] = OrNull(o.hosts, same);
  passthrough("noConnectionReuse");
  passthrough("noVUConnectionReuse");
  j["minIterationDuration"] = OrNull(o.min_iteration_duration, DurationJson);
  if (o.passthrough.count("cloud")) passthrough("cloud");  // omitempty in k6
  passthrough("ext");
  // Barrage reads handleSummaryTimeout as an option, as k6 v2.2 does.
  j["handleSummaryTimeout"] = OrNull(o.handle_summary_timeout, DurationJson);
  j["summaryTrendStats"] = o.TrendStats();
  j["summaryTimeUnit"] = OrNull(o.summary_time_unit, same);
  j["systemTags"] = o.SystemTags();
  j["tags"] = OrNull(o.tags, same);
  passthrough("metricSamplesBufferSize");
  passthrough("noCookiesReset");
  passthrough("discardResponseBodies");
  j["consoleOutput"] = OrNull(o.console_output, same);
  passthrough("localIPs");
  return j.dump(2);
}

}  // namespace barrage

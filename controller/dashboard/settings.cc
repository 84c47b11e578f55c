#include "controller/dashboard/settings.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/duration.h"

namespace barrage::dashboard {
namespace {

absl::StatusOr<bool> ParseBool(const std::string& name, const std::string& value) {
  const std::string v = absl::AsciiStrToLower(value);
  if (v == "true" || v == "1") return true;
  if (v == "false" || v == "0") return false;
  return absl::InvalidArgumentError(absl::StrCat(name, ": expected true or false, got '", value, "'"));
}

// HOST:PORT with a port in 0..65535 and a non-empty host.
absl::Status CheckAddress(const std::string& culprit, const std::string& address) {
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 || !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(culprit, ": expected HOST:PORT (e.g. ", kDefaultAddress, "), got '", address, "'"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckReportPath(const std::string& path, const std::string& culprit) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(culprit, ": the report's file name is empty"));
  auto cannot = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(culprit, ": cannot write ", path, ": ", why));
  };
  // Opened for real (permission bits say nothing to root, nor about a
  // read-only file system): an existing file without truncating it, a new
  // one created and removed again.
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode)) return cannot("not a regular file");
    const int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) return cannot(strerror(errno));
    close(fd);
    return absl::OkStatus();
  }
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return cannot(errno == ENOENT ? "its directory does not exist" : strerror(errno));
  close(fd);
  unlink(path.c_str());
  return absl::OkStatus();
}

absl::StatusOr<DashboardSettings> ReadDashboardSettings(const DashboardFlags& flags, const EnvFn& env_fn) {
  const EnvFn env = env_fn ? env_fn : [](const char* name) -> std::optional<std::string> {
    const char* v = getenv(name);
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
  DashboardSettings s;
  // k6: K6_WEB_DASHBOARD=true starts it on K6_WEB_DASHBOARD_HOST (default
  // localhost) and _PORT (default 5665; -1: no server, only the export).
  if (auto v = env("K6_WEB_DASHBOARD")) {
    absl::StatusOr<bool> on = ParseBool("K6_WEB_DASHBOARD", *v);
    if (!on.ok()) return on.status();
    s.serve = *on;
  }
  std::string host = "127.0.0.1";
  std::string port = "5665";
  if (auto v = env("K6_WEB_DASHBOARD_HOST")) host = *v;
  if (auto v = env("K6_WEB_DASHBOARD_PORT")) {
    int p = 0;
    if (!absl::SimpleAtoi(*v, &p) || p < -1 || p > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("K6_WEB_DASHBOARD_PORT: expected a port (0-65535, or -1 for none), got '", *v, "'"));
    }
    if (p == -1) s.serve = false;
    port = *v;
  }
  s.address = absl::StrCat(host, ":", port);
  if (s.serve) {
    if (absl::Status st = CheckAddress("K6_WEB_DASHBOARD_HOST/K6_WEB_DASHBOARD_PORT", s.address); !st.ok()) return st;
  }
  if (flags.dashboard) {
    s.serve = true;
    if (!flags.dashboard->empty()) {
      if (absl::Status st = CheckAddress("--dashboard", *flags.dashboard); !st.ok()) return st;
      s.address = *flags.dashboard;
    } else if (!env("K6_WEB_DASHBOARD_HOST") && !env("K6_WEB_DASHBOARD_PORT")) {
      s.address = kDefaultAddress;
    }
  }
  if (auto v = env("K6_WEB_DASHBOARD_PERIOD")) {
    absl::StatusOr<absl::Duration> d = ParseDuration(*v);
    // Shorter than 100 ms would sample faster than the controller merges.
    if (!d.ok() || *d < absl::Milliseconds(100)) {
      return absl::InvalidArgumentError(
          absl::StrCat("K6_WEB_DASHBOARD_PERIOD: expected a duration of 100ms or more (e.g. 10s), got '", *v, "'"));
    }
    s.period = *d;
  }
  if (auto v = env("K6_WEB_DASHBOARD_OPEN")) {
    absl::StatusOr<bool> open = ParseBool("K6_WEB_DASHBOARD_OPEN", *v);
    if (!open.ok()) return open.status();
    s.open = *open;
  }
  std::string culprit;
  if (flags.report) {
    s.report = *flags.report;
    culprit = "--report";
  } else if (auto v = env("K6_WEB_DASHBOARD_EXPORT")) {
    s.report = *v;
    culprit = "K6_WEB_DASHBOARD_EXPORT";
  }
  if (flags.report || !s.report.empty()) {
    if (absl::Status st = CheckReportPath(s.report, culprit); !st.ok()) return st;
  }
  return s;
}

}  // namespace barrage::dashboard

// Where the web dashboard listens and where its report goes, from the
// flags of `barrage run` (--dashboard[=ADDR], --report FILE) and k6's
// environment variables (K6_WEB_DASHBOARD, _HOST, _PORT, _PERIOD, _OPEN,
// _EXPORT); flags win. Pure apart from reading the environment and
// checking the report's directory; errors are kInvalidArgument naming the
// flag or variable (the CLI exits 104 with them before the test starts).
#ifndef BARRAGE_CONTROLLER_DASHBOARD_SETTINGS_H_
#define BARRAGE_CONTROLLER_DASHBOARD_SETTINGS_H_

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace barrage::dashboard {

inline constexpr char kDefaultAddress[] = "127.0.0.1:5665";

struct DashboardFlags {
  std::optional<std::string> dashboard;  // --dashboard given: "" or ADDR
  std::optional<std::string> report;     // --report FILE
};

struct DashboardSettings {
  bool serve = false;             // the live page on `address`
  std::string address;            // HOST:PORT; port 0 picks a free port
  absl::Duration period = absl::Seconds(10);  // k6's default
  bool open = false;              // K6_WEB_DASHBOARD_OPEN: print the URL prominently
  std::string report;             // the HTML report at the end; empty: none
  bool enabled() const { return serve || !report.empty(); }
};

// getenv by default; tests pass their own.
using EnvFn = std::function<std::optional<std::string>(const char* name)>;
absl::StatusOr<DashboardSettings> ReadDashboardSettings(const DashboardFlags& flags, const EnvFn& env = nullptr);

// The report path can be written: its directory exists and is writable, and
// the file, when it exists, is a writable regular file. Checked before the
// test so that an hour-long run does not end with nowhere to put it.
absl::Status CheckReportPath(const std::string& path, const std::string& culprit);

}  // namespace barrage::dashboard

#endif  // BARRAGE_CONTROLLER_DASHBOARD_SETTINGS_H_

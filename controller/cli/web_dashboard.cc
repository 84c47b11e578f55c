#include "controller/cli/web_dashboard.h"

#include <filesystem>

namespace barrage::cli {

absl::StatusOr<std::unique_ptr<dashboard::Dashboard>> StartWebDashboard(const RunFlags& flags,
                                                                        controller::Coordinator& coordinator,
                                                                        const Prepared& prepared, RunState& state) {
  absl::StatusOr<dashboard::DashboardSettings> settings =
      dashboard::ReadDashboardSettings({flags.dashboard, flags.report});
  if (!settings.ok()) return settings.status();
  if (!settings->enabled()) return nullptr;
  dashboard::DashboardInput input{coordinator};
  input.thresholds = flags.no_thresholds || !prepared.thresholds ? nullptr : &*prepared.thresholds;
  input.phase = [&state] { return std::string(kRunPhases[state.phase.load()]); };
  input.script = std::filesystem::path(flags.script).filename().string();
  input.trend_stats = prepared.options.TrendStats();
  input.time_unit = prepared.options.summary_time_unit.value_or("");
  return dashboard::Dashboard::Start(*settings, std::move(input));
}

}  // namespace barrage::cli

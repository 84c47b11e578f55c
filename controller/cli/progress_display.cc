#include "controller/cli/progress_display.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/duration.h"
#include "common/scenario_share.h"

namespace barrage::cli {

absl::Duration TotalDuration(const std::vector<Scenario>& scenarios) {
  absl::Duration max_duration;
  for (const Scenario& s : scenarios) max_duration = std::max(max_duration, s.MaxTotalDuration());
  return max_duration;
}

void PrintBanner(const std::string& script, const std::vector<Scenario>& scenarios, const ExecutionTuple& tuple,
                 int agents) {
  const absl::Duration max_duration = TotalDuration(scenarios);
  const int64_t max_vus = PeakVus(scenarios, tuple, /*max_possible=*/true);
  const Rational share = tuple.segment().length();
  const std::string percent =
      absl::StrFormat("%.2f%%", 100.0 * static_cast<double>(share.numerator()) / static_cast<double>(share.denominator()));
  std::string out = absl::StrCat(
      "\n"
      "  ____                                  \n"
      " | __ )  __ _ _ __ _ __ __ _  __ _  ___ \n"
      " |  _ \\ / _` | '__| '__/ _` |/ _` |/ _ \\\n"
      " | |_) | (_| | |  | | | (_| | (_| |  __/\n"
      " |____/ \\__,_|_|  |_|  \\__,_|\\__, |\\___|\n"
      "                             |___/  gRPC load testing\n\n",
      "     execution: ", agents == 0 ? std::string("local") : absl::StrCat("distributed over ", agents,
                                                                          agents == 1 ? " agent" : " agents"), "\n",
      "        script: ", script, "\n",
      "        output: -\n\n",
      "     scenarios: (", percent, ") ", scenarios.size(), scenarios.size() == 1 ? " scenario" : " scenarios", ", ",
      max_vus, " max VUs, ", FormatGoDuration(max_duration), " max duration (incl. graceful stop):\n");
  for (const Scenario& s : scenarios) absl::StrAppend(&out, "              * ", s.name, ": ", s.Describe(), "\n");
  out += "\n";
  fputs(out.c_str(), stdout);
  fflush(stdout);
}

std::string ProgressLine(absl::Duration elapsed, const controller::RunProgress& p, int agents) {
  int64_t tenths = absl::ToInt64Milliseconds(elapsed) / 100;
  std::string line = absl::StrFormat("running (%dm%04.1fs), %d/%d VUs, %d complete and %d interrupted iterations",
                                     tenths / 600, static_cast<double>(tenths % 600) / 10.0, p.vus_active, p.vus_max,
                                     p.iterations_completed, p.iterations_interrupted);
  if (agents > 0) absl::StrAppend(&line, absl::StrFormat(", %d/%d agents", p.agents, agents));
  return line;
}

std::vector<std::string> ScenarioLines(const controller::RunProgress& p, const std::vector<Scenario>& scenarios) {
  size_t width = 0;
  for (const auto& sp : p.scenarios) width = std::max(width, sp.name.size());
  std::vector<std::string> out;
  for (const auto& sp : p.scenarios) {
    constexpr int kBar = 40;
    const int filled = static_cast<int>(std::clamp(sp.progress, 0.0, 1.0) * kBar);
    std::string bar(kBar, ' ');
    for (int i = 0; i < filled; ++i) bar[i] = '=';
    if (filled < kBar && filled > 0) bar[filled] = '>';
    // k6's right-hand column: elapsed/total time, or done/total iterations.
    std::string where = absl::StrFormat("%3.0f%%", 100 * std::clamp(sp.progress, 0.0, 1.0));
    for (const Scenario& sc : scenarios) {
      if (sc.name != sp.name) continue;
      if (sc.executor == "shared-iterations" || sc.executor == "per-vu-iterations") {
        const int64_t total = sc.executor == "shared-iterations" ? sc.iterations : sc.iterations * sc.vus;
        where = absl::StrFormat("%d/%d iters", sp.iterations_completed, total);
      } else {
        const absl::Duration length = sc.RegularDuration();
        where = absl::StrCat(FormatGoDuration(absl::Milliseconds(
                                 absl::ToInt64Milliseconds(length * std::clamp(sp.progress, 0.0, 1.0)) / 100 * 100)),
                             "/", FormatGoDuration(length));
      }
    }
    out.push_back(absl::StrFormat("%-*s %s [%s] %d VUs  %d complete  %s", static_cast<int>(width), sp.name,
                                  sp.done ? "✓" : " ", bar, sp.vus_active, sp.iterations_completed, where));
  }
  return out;
}

ProgressDisplay::ProgressDisplay(const std::vector<Scenario>& scenarios, int agents, bool tty, absl::Time now)
    : scenarios_(scenarios), agents_(agents), tty_(tty), last_drawn_(now) {}

std::vector<std::string> ProgressLines(absl::Duration elapsed, const controller::RunProgress& p,
                                       const std::vector<Scenario>& scenarios, int agents) {
  std::vector<std::string> lines = {ProgressLine(elapsed, p, agents)};
  for (std::string& l : ScenarioLines(p, scenarios)) lines.push_back(std::move(l));
  return lines;
}

void PrintFinalProgress(absl::Duration elapsed, const controller::RunProgress& p,
                        const std::vector<Scenario>& scenarios, int agents) {
  for (const std::string& l : ProgressLines(elapsed, p, scenarios, agents)) fputs(absl::StrCat(l, "\n").c_str(), stdout);
}

void ProgressDisplay::Update(absl::Time now, absl::Duration elapsed, const controller::RunProgress& progress) {
  if (now - last_drawn_ < (tty_ ? absl::Seconds(1) : absl::Seconds(5))) return;
  last_drawn_ = now;
  const std::vector<std::string> lines = ProgressLines(elapsed, progress, scenarios_, agents_);
  if (tty_) {
    // Redrawn in place: back to the first line drawn last time.
    if (drawn_lines_ > 1) fprintf(stdout, "\x1b[%dA", drawn_lines_ - 1);
    for (size_t i = 0; i < lines.size(); ++i) {
      fprintf(stdout, "\r\x1b[K%s%s", lines[i].c_str(), i + 1 < lines.size() ? "\n" : "");
    }
    drawn_lines_ = static_cast<int>(lines.size());
  } else {
    for (const std::string& l : lines) fprintf(stdout, "%s\n", l.c_str());
  }
  fflush(stdout);
}

void ProgressDisplay::Clear() {
  if (!tty_) return;
  if (drawn_lines_ > 1) fprintf(stdout, "\x1b[%dA", drawn_lines_ - 1);
  fputs("\r\x1b[J", stdout);  // the live lines go; the final ones follow
}

}  // namespace barrage::cli

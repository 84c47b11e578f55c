// What `barrage run` prints on stdout while the test runs (spec §4.3): the
// banner, then k6's progress line and one bar per scenario, redrawn in
// place on a terminal and printed every 5 s otherwise, and the final
// progress lines after the run. Called from the run loop's thread only.
#ifndef BARRAGE_CONTROLLER_CLI_PROGRESS_DISPLAY_H_
#define BARRAGE_CONTROLLER_CLI_PROGRESS_DISPLAY_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/execution_segment.h"
#include "common/options.h"
#include "controller/coordinator.h"

namespace barrage::cli {

// The longest scenario's MaxTotalDuration (gracefulStop included).
absl::Duration TotalDuration(const std::vector<Scenario>& scenarios);

// The logo, the execution mode, the script and one line per scenario.
// agents: 0 for the embedded agent, else how many agents run the test.
void PrintBanner(const std::string& script, const std::vector<Scenario>& scenarios, const ExecutionTuple& tuple,
                 int agents);

// "running (0m05.0s), 10/10 VUs, 123 complete and 0 interrupted iterations".
std::string ProgressLine(absl::Duration elapsed, const controller::RunProgress& p, int agents);

// One line per scenario under the progress line, as k6 draws them:
// "default   [=====>        ] 10 VUs  1234 complete  45%".
std::vector<std::string> ScenarioLines(const controller::RunProgress& p, const std::vector<Scenario>& scenarios);

// The progress line and the scenario lines, as the display draws them.
std::vector<std::string> ProgressLines(absl::Duration elapsed, const controller::RunProgress& p,
                                       const std::vector<Scenario>& scenarios, int agents);

// The final progress lines after the run, kept on screen above the summary.
void PrintFinalProgress(absl::Duration elapsed, const controller::RunProgress& p,
                        const std::vector<Scenario>& scenarios, int agents);

class ProgressDisplay {
 public:
  // tty: redraw in place once a second; otherwise a block of lines every 5 s.
  ProgressDisplay(const std::vector<Scenario>& scenarios, int agents, bool tty, absl::Time now);

  // Draws the progress when it is due.
  void Update(absl::Time now, absl::Duration elapsed, const controller::RunProgress& progress);
  // On a terminal, removes the live lines so that the final ones replace them.
  void Clear();

 private:
  const std::vector<Scenario>& scenarios_;
  const int agents_;
  const bool tty_;
  absl::Time last_drawn_;
  int drawn_lines_ = 0;  // terminal lines of the last drawing
};

}  // namespace barrage::cli

#endif  // BARRAGE_CONTROLLER_CLI_PROGRESS_DISPLAY_H_

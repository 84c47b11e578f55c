// What `run`, `inspect` and `archive` share before any VU exists: the
// script's first init pass (__VU 0, here in the controller), which records
// every module and file it reads into a bundle and yields the exported
// options; then the options from all their sources (config file < script <
// K6_* env < flags, spec §3.7.1), the scenarios and the thresholds.
#ifndef BARRAGE_CONTROLLER_CLI_PREPARE_H_
#define BARRAGE_CONTROLLER_CLI_PREPARE_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/js/bundle.h"
#include "common/archive.h"
#include "common/execution_segment.h"
#include "common/metrics/metric.h"
#include "common/options.h"
#include "controller/cli/run_settings.h"
#include "controller/thresholds.h"

namespace barrage::cli {

struct Prepared {
  std::shared_ptr<agent::js::Bundle> bundle;
  std::map<std::string, std::string> env;
  std::map<std::string, std::string> cli_env;  // the -e values alone
  std::string script_options_json;            // the script's exported options
  std::vector<std::string> exported;
  Options options;
  std::vector<Scenario> scenarios;
  ExecutionTuple tuple;
  std::map<std::string, metrics::MetricDef> defs;
  std::optional<controller::ThresholdEvaluator> thresholds;
  std::string archive;  // MakeArchive's bytes (WriteArchive): what agents run
};

// 0, or the exit code after logging what is wrong: 107 for the script
// (missing, syntax, an exception in init, a path the archive cannot hold),
// 108 for exec.test.abort() in init, 104 for the options.
int Prepare(const RunFlags& flags, Prepared& out);

// The archive agents run from (`barrage archive` writes the same).
Archive MakeArchive(const Prepared& prepared);

}  // namespace barrage::cli

#endif  // BARRAGE_CONTROLLER_CLI_PREPARE_H_

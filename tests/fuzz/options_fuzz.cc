// Script options and config files come from users: parsing, merging and
// resolving scenarios must report problems, never crash or hang.
#include "common/config_file.h"
#include "common/execution_segment.h"
#include "common/options.h"
#include "common/scenario_share.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto [options_text, config_text] = barrage::fuzz::SplitAtNul(barrage::fuzz::AsView(data, size));
  std::vector<std::string> warnings;
  absl::StatusOr<barrage::Options> options = barrage::ParseOptionsJson(std::string(options_text), "options", &warnings);
  absl::StatusOr<barrage::ConfigFile> config = barrage::ParseConfigFile(std::string(config_text), "config.yaml");
  if (config.ok()) {
    absl::StatusOr<barrage::Options> from_config = barrage::ParseOptionsJson(config->options_json, "config.yaml", &warnings);
    if (from_config.ok() && options.ok()) options = barrage::MergeOptions(*from_config, *options, &warnings);
  }
  if (!options.ok()) return 0;
  absl::StatusOr<std::vector<barrage::Scenario>> scenarios = barrage::ResolveScenarios(*options, &warnings);
  if (!scenarios.ok()) return 0;
  (void)barrage::OptionsToJson(*options, *scenarios);
  absl::StatusOr<barrage::ExecutionTuple> tuple = barrage::ExecutionTupleFromOptions(*options);
  if (tuple.ok()) (void)barrage::PeakVus(*scenarios, *tuple, /*max_possible=*/true);
  return 0;
}

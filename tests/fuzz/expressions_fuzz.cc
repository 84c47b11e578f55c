// The small languages users write: threshold keys and expressions,
// durations, execution segments and sequences.
#include "common/duration.h"
#include "common/execution_segment.h"
#include "common/threshold.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in = barrage::fuzz::AsView(data, size);
  const auto [first, second] = barrage::fuzz::SplitAtNul(in);
  (void)barrage::ParseThresholdKey(first);
  absl::StatusOr<barrage::ThresholdExpr> expr = barrage::ParseThresholdExpression(second);
  if (expr.ok()) {
    for (auto type : {barrage::metrics::MetricType::kCounter, barrage::metrics::MetricType::kGauge,
                      barrage::metrics::MetricType::kRate, barrage::metrics::MetricType::kTrend}) {
      (void)barrage::ValidateAggregation(*expr, type);
    }
  }
  (void)barrage::ParseDuration(in);
  absl::StatusOr<barrage::ExecutionSegment> segment = barrage::ParseExecutionSegment(first);
  absl::StatusOr<std::vector<barrage::Rational>> sequence = barrage::ParseExecutionSegmentSequence(second);
  (void)segment;
  (void)sequence;
  return 0;
}

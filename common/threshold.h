// Threshold keys and expressions (spec §3.7.5): parsing, validation against
// the metric type, and evaluation over an Aggregate.
#ifndef BARRAGE_COMMON_THRESHOLD_H_
#define BARRAGE_COMMON_THRESHOLD_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/metrics/aggregate.h"
#include "common/metrics/metric.h"

namespace barrage {

// "grpc_req_duration{method:SayHello, status:0}" -> metric and filter.
// Spaces trimmed, quotes ' and " around names and values removed. An
// unbalanced brace or text after '}' is kInvalidArgument naming the key.
struct ThresholdKey {
  std::string metric;
  metrics::TagSet filter;
  std::string source;  // the key as written, trimmed
};
absl::StatusOr<ThresholdKey> ParseThresholdKey(std::string_view key);

enum class ThresholdOp { kLess, kLessEqual, kGreater, kGreaterEqual, kEqual, kNotEqual };

// "<agg> <op> <number>", e.g. "p(95)<200", "rate>0.99", "count >= 10".
struct ThresholdExpr {
  std::string source;       // as written
  std::string aggregation;  // "avg", "min", "max", "med", "p(N)", "count", "rate", "value"
  double percentile = 0;    // for p(N): N/100
  ThresholdOp op = ThresholdOp::kLess;
  double value = 0;
};
absl::StatusOr<ThresholdExpr> ParseThresholdExpression(std::string_view text);

// kInvalidArgument when the aggregation does not apply to the metric type,
// listing those that do, as k6: Counter count, rate; Gauge value; Rate
// rate; Trend avg, min, max, med, p(N).
absl::Status ValidateAggregation(const ThresholdExpr& expr, metrics::MetricType type);

// The aggregation's value over agg. Counter rate = count / test_duration.
// Trend values are in the metric's unit (ms for time). nullopt when there
// is no value: a Rate with no samples (its threshold passes), or any empty
// metric during the run (skipped); also when the aggregation does not apply
// to the type (ValidateAggregation first). At the end (final=true) an empty
// Trend, Counter or Gauge gives 0. A Counter's rate is 0 when test_duration
// is not positive.
std::optional<double> AggregationValue(const ThresholdExpr& expr, const metrics::Aggregate* agg,
                                       metrics::MetricType type, absl::Duration test_duration,
                                       bool final);

// true when value satisfies "value <op> expr.value".
bool ThresholdPasses(const ThresholdExpr& expr, double value);

}  // namespace barrage

#endif  // BARRAGE_COMMON_THRESHOLD_H_

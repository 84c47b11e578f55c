// Thresholds over the merged metrics (spec §3.7.5): compiled once from the
// options, validated against the metrics the script defined, evaluated on
// the controller every 2 s during the run (abortOnFail) and once at the end.
#ifndef BARRAGE_CONTROLLER_THRESHOLDS_H_
#define BARRAGE_CONTROLLER_THRESHOLDS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/metrics/metric_store.h"
#include "common/options.h"
#include "common/threshold.h"
#include "controller/summary.h"

namespace barrage::controller {

class ThresholdEvaluator {
 public:
  // Every problem (bad key, unknown metric, bad expression, aggregation
  // that does not fit the metric type) in one kInvalidArgument, a line each,
  // naming options.thresholds["<key>"][i].
  static absl::StatusOr<ThresholdEvaluator> Create(
      const std::map<std::string, std::vector<ThresholdSpec>>& thresholds,
      const std::map<std::string, metrics::MetricDef>& defs);

  struct Result {
    std::vector<ThresholdSet> sets;           // for the summary
    std::vector<std::string> failed_metrics;  // keys with a failing expression
    bool abort = false;  // an abortOnFail expression failed past its delay
  };
  // final: the end-of-test evaluation (empty metrics count as 0).
  Result Evaluate(const metrics::MetricStore& store, absl::Duration elapsed, bool final) const;
  bool empty() const { return entries_.empty(); }

 private:
  struct Entry {
    ThresholdKey key;
    metrics::MetricType type;
    std::vector<ThresholdExpr> exprs;
    std::vector<ThresholdSpec> specs;
  };
  std::vector<Entry> entries_;
};

}  // namespace barrage::controller

#endif  // BARRAGE_CONTROLLER_THRESHOLDS_H_

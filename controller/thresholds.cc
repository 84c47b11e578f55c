#include "controller/thresholds.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace barrage::controller {

absl::StatusOr<ThresholdEvaluator> ThresholdEvaluator::Create(
    const std::map<std::string, std::vector<ThresholdSpec>>& thresholds,
    const std::map<std::string, metrics::MetricDef>& defs) {
  ThresholdEvaluator out;
  std::vector<std::string> problems;
  for (const auto& [raw_key, specs] : thresholds) {
    const std::string where = absl::StrCat("options.thresholds[\"", raw_key, "\"]");
    absl::StatusOr<ThresholdKey> key = ParseThresholdKey(raw_key);
    if (!key.ok()) {
      problems.push_back(absl::StrCat(where, ": ", key.status().message()));
      continue;
    }
    auto def = defs.find(key->metric);
    if (def == defs.end()) {
      problems.push_back(absl::StrCat(where, ": invalid threshold defined on ", key->metric,
                                      "; reason: no metric name \"", key->metric, "\" found"));
      continue;
    }
    Entry entry{*key, def->second.type, {}, specs};
    for (size_t i = 0; i < specs.size(); ++i) {
      const std::string w = absl::StrCat(where, "[", i, "]");
      absl::StatusOr<ThresholdExpr> expr = ParseThresholdExpression(specs[i].expression);
      if (!expr.ok()) {
        problems.push_back(absl::StrCat(w, ": ", expr.status().message()));
        continue;
      }
      absl::Status st = ValidateAggregation(*expr, def->second.type);
      if (!st.ok()) {
        problems.push_back(absl::StrCat(w, ": ", st.message()));
        continue;
      }
      entry.exprs.push_back(*expr);
    }
    if (entry.exprs.size() == specs.size()) out.entries_.push_back(std::move(entry));
  }
  if (!problems.empty()) return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
  return out;
}

ThresholdEvaluator::Result ThresholdEvaluator::Evaluate(const metrics::MetricStore& store,
                                                        absl::Duration elapsed, bool final) const {
  Result result;
  for (const Entry& e : entries_) {
    ThresholdSet set;
    set.key = e.key.source;
    set.metric = e.key.metric;
    set.filter = e.key.filter;
    std::optional<metrics::Aggregate> agg = store.Query(e.key.metric, e.key.filter);
    bool failed = false;
    for (size_t i = 0; i < e.exprs.size(); ++i) {
      const ThresholdExpr& expr = e.exprs[i];
      std::optional<double> value =
          AggregationValue(expr, agg ? &*agg : nullptr, e.type, elapsed, final);
      ThresholdOutcome outcome;
      outcome.source = expr.source;
      outcome.aggregation = expr.aggregation;
      outcome.value = value;
      // No value (an empty Rate, or any empty metric during the run): passes.
      outcome.ok = !value.has_value() || ThresholdPasses(expr, *value);
      if (!outcome.ok) {
        failed = true;
        if (e.specs[i].abort_on_fail && elapsed >= e.specs[i].delay_abort_eval) result.abort = true;
      }
      set.outcomes.push_back(outcome);
    }
    if (failed) result.failed_metrics.push_back(e.key.source);
    result.sets.push_back(std::move(set));
  }
  return result;
}

}  // namespace barrage::controller

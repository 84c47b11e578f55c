#include "common/scenario_share.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace barrage {

ScenarioShare ShareOf(const Scenario& s, const ExecutionTuple& t) {
  const Striping& base = t.striping;
  const size_t j = t.index;
  ScenarioShare share;
  share.iterations_striping = base;
  share.iterations_index = j;
  if (s.IsArrivalRate() || s.executor == "shared-iterations") {
    const int64_t v = s.IsArrivalRate() ? s.max_vus : s.vus;
    std::optional<Striping::Derived> derived = base.Derive(j, v);
    if (!derived) return share;  // no work here
    share.iterations_striping = derived->striping;
    share.iterations_index = derived->index;
  }
  if (s.IsArrivalRate()) {
    share.vus = base.Scale(j, s.pre_allocated_vus);
    share.max_vus = base.Scale(j, s.max_vus);
    share.has_work = share.max_vus > 0;
    return share;
  }
  if (s.IsRampingVus()) {
    const int64_t most = s.InitialVus();
    share.vus = base.Scale(j, most);
    for (int64_t n = 0; n < share.vus; ++n) share.global_vus.push_back(base.GlobalIndex(j, n) + 1);
    share.max_vus = share.vus;
    share.has_work = share.vus > 0;
    return share;
  }
  share.vus = base.Scale(j, s.vus);
  share.max_vus = share.vus;
  if (s.executor == "shared-iterations") {
    share.iterations = share.iterations_striping.Scale(share.iterations_index, s.iterations);
  } else if (s.executor == "per-vu-iterations") {
    share.iterations = s.iterations;
  }
  share.has_work = share.vus > 0;
  return share;
}

absl::StatusOr<ExecutionTuple> ExecutionTupleFromOptions(const Options& o) {
  std::optional<ExecutionSegment> segment;
  std::vector<Rational> sequence;
  if (o.execution_segment) {
    absl::StatusOr<ExecutionSegment> seg = ParseExecutionSegment(*o.execution_segment);
    if (!seg.ok()) return seg.status();
    segment = *seg;
  }
  if (o.execution_segment_sequence) {
    absl::StatusOr<std::vector<Rational>> seq = ParseExecutionSegmentSequence(*o.execution_segment_sequence);
    if (!seq.ok()) return seq.status();
    sequence = *seq;
  }
  absl::StatusOr<ExecutionTuple> t = MakeExecutionTuple(segment, sequence);
  if (!t.ok()) return absl::InvalidArgumentError(absl::StrCat("executionSegment: ", t.status().message()));
  return t;
}

int64_t VuIdInTest(const ExecutionTuple& t, int64_t id_in_instance) {
  return t.striping.GlobalIndex(t.index, id_in_instance - 1) + 1;
}

int64_t PeakVus(const std::vector<Scenario>& scenarios, const ExecutionTuple& t, bool max_possible) {
  // A sweep over the spans' ends: at equal times, ends come before starts
  // (a scenario that ends when another starts hands its VUs over).
  std::vector<std::pair<absl::Duration, int64_t>> events;
  for (const Scenario& s : scenarios) {
    const ScenarioShare share = ShareOf(s, t);
    if (!share.has_work) continue;
    const int64_t n = max_possible ? share.max_vus : share.vus;
    events.emplace_back(s.start_time, n);
    events.emplace_back(s.MaxTotalDuration(), -n);
  }
  std::sort(events.begin(), events.end());
  int64_t now = 0, peak = 0;
  for (const auto& [at, delta] : events) {
    now += delta;
    peak = std::max(peak, now);
  }
  return peak;
}

}  // namespace barrage

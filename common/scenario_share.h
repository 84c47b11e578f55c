// What one instance (agent) runs of each scenario when a test is split by
// execution segments (spec §3.9, the table "What each executor gets on
// instance j"). The engine runs exactly this; the controller uses the same
// function to plan and to report per-agent shares.
#ifndef BARRAGE_COMMON_SCENARIO_SHARE_H_
#define BARRAGE_COMMON_SCENARIO_SHARE_H_

#include <cstdint>
#include <vector>

#include "common/execution_segment.h"
#include "common/options.h"

namespace barrage {

struct ScenarioShare {
  // False when this instance has nothing to do in the scenario (fewer VUs
  // or arrival VUs than instances): it skips it.
  bool has_work = false;
  // The VUs it starts the scenario with: Scale_S(vus) for the VU-based
  // executors, the share of the largest planned count for ramping-vus, the
  // share of preAllocatedVUs for the arrival-rate executors.
  int64_t vus = 0;
  // Arrival-rate executors: the share of maxVUs. Others: == vus.
  int64_t max_vus = 0;
  // shared-iterations: this instance's part of the pool (Scale_D). per-vu-
  // iterations: the full per-VU count. Others: 0.
  int64_t iterations = 0;
  // ramping-vus: the global VU numbers (1-based) this instance runs, in
  // order; local VU i plays global VU global_vus[i].
  std::vector<int64_t> global_vus;
  // The striping that numbers the scenario's iterations (D for
  // shared-iterations and the arrival-rate executors, S for the others)
  // and this instance's segment in it. Arrival-rate executors start the
  // global iterations k this segment owns; iterationInTest of the n-th
  // local iteration is iterations_striping.GlobalIndex(index, n).
  Striping iterations_striping = Striping::Whole();
  size_t iterations_index = 0;

  int64_t IterationInTest(int64_t local) const { return iterations_striping.GlobalIndex(iterations_index, local); }
};

ScenarioShare ShareOf(const Scenario& s, const ExecutionTuple& t);

// The instance's segment from the executionSegment and
// executionSegmentSequence options (either may be unset).
absl::StatusOr<ExecutionTuple> ExecutionTupleFromOptions(const Options& o);

// exec.vu.idInTest of the instance's VU with __VU == id_in_instance (>= 1).
int64_t VuIdInTest(const ExecutionTuple& t, int64_t id_in_instance);

// The most VUs this instance needs at once, over the scenarios' planned
// spans [startTime, startTime + duration + gracefulStop): VUs are reused
// between scenarios that do not overlap. With max_possible the arrival-rate
// executors count their maxVUs, else their preAllocatedVUs.
int64_t PeakVus(const std::vector<Scenario>& scenarios, const ExecutionTuple& t, bool max_possible);

}  // namespace barrage

#endif  // BARRAGE_COMMON_SCENARIO_SHARE_H_

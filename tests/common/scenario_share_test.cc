#include "common/scenario_share.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <set>

namespace barrage {
namespace {

using ::testing::ElementsAre;

Scenario Make(const std::string& executor) {
  Scenario s;
  s.name = "s";
  s.executor = executor;
  return s;
}

ExecutionTuple Tuple(const std::vector<Rational>& points, size_t index) {
  absl::StatusOr<Striping> st = Striping::Make(points);
  EXPECT_TRUE(st.ok()) << st.status();
  return ExecutionTuple{*st, index};
}

// A random filled sequence of 1 to 10 segments with small denominators.
std::vector<Rational> RandomSequence(std::mt19937& rng) {
  std::uniform_int_distribution<int> segments(1, 10);
  std::uniform_int_distribution<int> denominator(1, 12);
  const int n = segments(rng);
  std::set<Rational> cuts;
  int guard = 0;
  while (static_cast<int>(cuts.size()) < n - 1 && ++guard < 1000) {
    const int d = std::max(denominator(rng), n);
    std::uniform_int_distribution<int> numerator(1, d - 1);
    cuts.insert(Rational(numerator(rng), d));
  }
  std::vector<Rational> points = {Rational(0)};
  points.insert(points.end(), cuts.begin(), cuts.end());
  points.push_back(Rational(1));
  return points;
}

TEST(ScenarioShareTest, WholeTestRunsEverything) {
  Scenario s = Make("shared-iterations");
  s.vus = 7;
  s.iterations = 500;
  const ScenarioShare share = ShareOf(s, ExecutionTuple{});
  EXPECT_TRUE(share.has_work);
  EXPECT_EQ(share.vus, 7);
  EXPECT_EQ(share.iterations, 500);
  EXPECT_EQ(share.IterationInTest(42), 42);
  EXPECT_EQ(VuIdInTest(ExecutionTuple{}, 3), 3);
}

TEST(ScenarioShareTest, SharedIterationsInThreeSegmentsAddUpExactly) {
  Scenario s = Make("shared-iterations");
  s.vus = 10;
  s.iterations = 1000;
  const std::vector<Rational> thirds = {Rational(0), Rational(1, 3), Rational(2, 3), Rational(1)};
  int64_t vus = 0, iterations = 0;
  std::set<int64_t> in_test;
  for (size_t j = 0; j < 3; ++j) {
    const ScenarioShare share = ShareOf(s, Tuple(thirds, j));
    vus += share.vus;
    iterations += share.iterations;
    for (int64_t n = 0; n < share.iterations; ++n) EXPECT_TRUE(in_test.insert(share.IterationInTest(n)).second);
  }
  EXPECT_EQ(vus, 10);
  EXPECT_EQ(iterations, 1000);
  // Every global iteration number 0..999 is used exactly once.
  EXPECT_EQ(in_test.size(), 1000u);
  EXPECT_EQ(*in_test.rbegin(), 999);
}

TEST(ScenarioShareTest, FewerVusThanInstancesLeavesSomeWithoutWork) {
  Scenario s = Make("constant-vus");
  s.vus = 1;
  s.duration = absl::Seconds(1);
  const std::vector<Rational> halves = {Rational(0), Rational(1, 2), Rational(1)};
  EXPECT_TRUE(ShareOf(s, Tuple(halves, 0)).has_work);
  EXPECT_FALSE(ShareOf(s, Tuple(halves, 1)).has_work);
}

TEST(ScenarioShareTest, ArrivalRateSplitInterleavesTheGlobalSchedule) {
  // Thirds with maxVUs 10: the derived sequence 0, 2/5, 7/10, 1 (spec §3.9).
  Scenario s = Make("constant-arrival-rate");
  s.rate = 100;
  s.duration = absl::Seconds(1);
  s.pre_allocated_vus = 10;
  s.max_vus = 10;
  const std::vector<Rational> thirds = {Rational(0), Rational(1, 3), Rational(2, 3), Rational(1)};
  std::vector<std::vector<int64_t>> owned(3);
  for (size_t j = 0; j < 3; ++j) {
    const ScenarioShare share = ShareOf(s, Tuple(thirds, j));
    for (int64_t k = 0; k < 10; ++k) {
      if (share.iterations_striping.Owns(share.iterations_index, k)) owned[j].push_back(k);
    }
  }
  EXPECT_THAT(owned[0], ElementsAre(0, 3, 5, 8));
  EXPECT_THAT(owned[1], ElementsAre(1, 4, 7));
  EXPECT_THAT(owned[2], ElementsAre(2, 6, 9));
}

// The property test: for any sequence of 1 to 10 segments, the
// parts of every executor add up exactly to the whole.
TEST(ScenarioShareTest, PartsAddUpToTheWholeForEveryExecutorAndSequence) {
  std::mt19937 rng(20261124);
  std::uniform_int_distribution<int64_t> count(1, 60);
  for (int round = 0; round < 300; ++round) {
    const std::vector<Rational> points = RandomSequence(rng);
    const size_t parts = points.size() - 1;
    SCOPED_TRACE(::testing::Message() << "round " << round << ", " << parts << " segments");

    Scenario cv = Make("constant-vus");
    cv.vus = count(rng);
    Scenario pv = Make("per-vu-iterations");
    pv.vus = count(rng);
    pv.iterations = count(rng);
    Scenario si = Make("shared-iterations");
    si.vus = count(rng);
    si.iterations = si.vus + count(rng) * 7;
    Scenario rv = Make("ramping-vus");
    rv.start_vus = count(rng) % 5;
    rv.stages = {{absl::Seconds(10), count(rng)}, {absl::Seconds(5), count(rng)}};
    Scenario car = Make("constant-arrival-rate");
    car.rate = 50;
    car.duration = absl::Seconds(2);
    car.pre_allocated_vus = count(rng);
    car.max_vus = car.pre_allocated_vus + count(rng) % 10;
    Scenario rar = car;
    rar.executor = "ramping-arrival-rate";

    int64_t cv_vus = 0, pv_vus = 0, si_vus = 0, si_iterations = 0, car_pre = 0, car_max = 0;
    std::set<int64_t> ramping_vus, shared_numbers, vu_ids;
    std::vector<int> arrival_owners(1000, 0);
    for (size_t j = 0; j < parts; ++j) {
      const ExecutionTuple t = Tuple(points, j);
      cv_vus += ShareOf(cv, t).vus;
      const ScenarioShare p = ShareOf(pv, t);
      pv_vus += p.vus;
      if (p.has_work) EXPECT_EQ(p.iterations, pv.iterations);
      const ScenarioShare sh = ShareOf(si, t);
      si_vus += sh.vus;
      si_iterations += sh.iterations;
      for (int64_t n = 0; n < sh.iterations; ++n) shared_numbers.insert(sh.IterationInTest(n));
      for (int64_t g : ShareOf(rv, t).global_vus) EXPECT_TRUE(ramping_vus.insert(g).second) << "VU " << g << " twice";
      for (const Scenario* ar : {&car, &rar}) {
        const ScenarioShare a = ShareOf(*ar, t);
        if (ar == &car) {
          car_pre += a.vus;
          car_max += a.max_vus;
        }
        if (!a.has_work) continue;
        for (int64_t k = 0; k < 1000; ++k) {
          if (ar == &car && a.iterations_striping.Owns(a.iterations_index, k)) arrival_owners[k]++;
        }
      }
      for (int64_t id = 1; id <= t.striping.Scale(j, 100); ++id) {
        EXPECT_TRUE(vu_ids.insert(VuIdInTest(t, id)).second);
      }
    }
    EXPECT_EQ(cv_vus, cv.vus);
    EXPECT_EQ(pv_vus, pv.vus);
    EXPECT_EQ(si_vus, si.vus);
    EXPECT_EQ(si_iterations, si.iterations);
    EXPECT_EQ(static_cast<int64_t>(shared_numbers.size()), si.iterations);
    EXPECT_EQ(*shared_numbers.rbegin(), si.iterations - 1);
    EXPECT_EQ(static_cast<int64_t>(ramping_vus.size()), rv.InitialVus());
    EXPECT_EQ(*ramping_vus.rbegin(), rv.InitialVus());
    EXPECT_EQ(car_pre, car.pre_allocated_vus);
    EXPECT_EQ(car_max, car.max_vus);
    for (int64_t k = 0; k < 1000; ++k) ASSERT_EQ(arrival_owners[k], 1) << "arrival " << k;
    EXPECT_EQ(vu_ids.size(), 100u);
    EXPECT_EQ(*vu_ids.rbegin(), 100);
  }
}

TEST(ScenarioShareTest, RampingVusSplitTracesTheWholeCurve) {
  // Each instance runs the global VUs it owns while the global plan is at
  // least their number, so at any time the instances' active VUs add up to
  // the unsplit plan.
  Scenario rv = Make("ramping-vus");
  rv.start_vus = 0;
  rv.stages = {{absl::Seconds(10), 13}, {absl::Seconds(10), 2}};
  const std::vector<Rational> points = {Rational(0), Rational(1, 4), Rational(1, 2), Rational(1)};
  for (int tenths = 0; tenths <= 200; ++tenths) {
    const absl::Duration t = absl::Milliseconds(100) * tenths;
    const int64_t planned = rv.PlannedVus(t);
    int64_t active = 0;
    for (size_t j = 0; j < 3; ++j) {
      for (int64_t g : ShareOf(rv, Tuple(points, j)).global_vus) active += g <= planned ? 1 : 0;
    }
    ASSERT_EQ(active, planned) << "at " << t;
  }
}

TEST(ScenarioShareTest, PeakVusReusesVusBetweenScenariosThatDoNotOverlap) {
  Scenario a = Make("constant-vus");
  a.name = "a";
  a.vus = 5;
  a.duration = absl::Seconds(10);
  a.graceful_stop = absl::Seconds(2);
  Scenario b = a;
  b.name = "b";
  b.vus = 3;
  b.start_time = absl::Seconds(12);  // right after a's gracefulStop
  EXPECT_EQ(PeakVus({a, b}, ExecutionTuple{}, false), 5);
  b.start_time = absl::Seconds(11);  // overlaps a's gracefulStop
  EXPECT_EQ(PeakVus({a, b}, ExecutionTuple{}, false), 8);
  Scenario c = Make("constant-arrival-rate");
  c.rate = 1;
  c.duration = absl::Seconds(5);
  c.pre_allocated_vus = 2;
  c.max_vus = 9;
  EXPECT_EQ(PeakVus({a, c}, ExecutionTuple{}, false), 7);
  EXPECT_EQ(PeakVus({a, c}, ExecutionTuple{}, true), 14);
}

}  // namespace
}  // namespace barrage

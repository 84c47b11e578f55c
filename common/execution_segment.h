// Execution segments (spec §3.9): how one test is split across instances
// (agents) so that the parts add up exactly to the whole.
//
// A sequence 0 = r0 < r1 < ... < rn = 1 cuts [0,1] into segments. Striping
// assigns each index k of a global list of items (VUs, iterations) to one
// segment: with L = lcm of the segments' length denominators and weights
// w_j = length_j * L, segment j owns w_j of every L consecutive indices,
// spread out as evenly as k6 spreads them. Everything is computed with exact
// rationals (boost::rational over int64), as the spec requires.
#ifndef BARRAGE_COMMON_EXECUTION_SEGMENT_H_
#define BARRAGE_COMMON_EXECUTION_SEGMENT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "boost/rational.hpp"

namespace barrage {

using Rational = boost::rational<int64_t>;

// "1/3", "0.25", "25%", "1", "0". kInvalidArgument naming the text otherwise
// (and for values outside [0, 1]).
absl::StatusOr<Rational> ParseRational(std::string_view text);
// "1/3" for a fraction, "0" and "1" for the ends.
std::string FormatRational(const Rational& r);

struct ExecutionSegment {
  Rational from{0};
  Rational to{1};
  bool operator==(const ExecutionSegment&) const = default;
  Rational length() const { return to - from; }
  // "0:1/3"
  std::string ToString() const;
};

// "from:to", a lone "v" meaning "0:v", or "" meaning "0:1". Requires
// 0 <= from < to <= 1.
absl::StatusOr<ExecutionSegment> ParseExecutionSegment(std::string_view text);

// "r0,r1,...,rn" with n >= 1, strictly increasing, each in [0, 1]. The
// points are returned as written (not yet filled to 0 and 1). "" gives an
// empty vector (no sequence).
absl::StatusOr<std::vector<Rational>> ParseExecutionSegmentSequence(std::string_view text);

// A filled sequence and its striping.
class Striping {
 public:
  // points: strictly increasing, points.front() == 0, points.back() == 1,
  // at least two points. L above kMaxLcm is refused (the residue table has
  // L entries).
  static absl::StatusOr<Striping> Make(std::vector<Rational> points);
  static constexpr int64_t kMaxLcm = 1'000'000;

  // The whole test as one segment: L = 1.
  static Striping Whole();

  size_t size() const { return weights_.size(); }  // number of segments
  const std::vector<Rational>& points() const { return points_; }
  ExecutionSegment segment(size_t j) const { return {points_[j], points_[j + 1]}; }
  // The index of `seg` in this sequence, or nullopt when it is not one of
  // its segments.
  std::optional<size_t> IndexOf(const ExecutionSegment& seg) const;

  int64_t lcm() const { return lcm_; }                // L
  int64_t weight(size_t j) const { return weights_[j]; }  // w_j
  // The residues (0 <= r < L) owned by segment j, ascending; size w_j.
  const std::vector<int64_t>& residues(size_t j) const { return residues_[j]; }
  // The segment that owns global index k (k >= 0).
  size_t Owner(int64_t k) const { return owner_[static_cast<size_t>(k % lcm_)]; }
  bool Owns(size_t j, int64_t k) const { return Owner(k) == j; }

  // How many of the first v global items segment j gets:
  // floor(v / L) * w_j + |{r in residues(j) : r < v mod L}|. Over all j it
  // adds up to v; it never decreases as v grows.
  int64_t Scale(size_t j, int64_t v) const;
  // The global index (0-based) of the n-th (0-based) item owned by j:
  // (n / w_j) * L + residues(j)[n mod w_j].
  int64_t GlobalIndex(size_t j, int64_t n) const;

  // The derived sequence for base count v (shared-iterations: vus;
  // arrival-rate executors: maxVUs). If v mod L == 0 this striping is kept.
  // Otherwise s_j = Scale(j, v); segments with s_j == 0 are dropped and the
  // rest form a new sequence, in the original order, whose points are the
  // running sums of s_j divided by v; it is striped again. Returns that
  // striping and the index of segment j in it, or nullopt when s_j == 0
  // (the instance has no work in that scenario).
  struct Derived;  // defined below: it holds a Striping, complete only there
  std::optional<Derived> Derive(size_t j, int64_t v) const;

 private:
  Striping() = default;
  std::vector<Rational> points_;
  int64_t lcm_ = 1;
  std::vector<int64_t> weights_;
  std::vector<std::vector<int64_t>> residues_;
  std::vector<uint32_t> owner_;  // residue -> segment
};

struct Striping::Derived {
  Striping striping;
  size_t index = 0;
};

// The instance's place in the split: its segment within the filled sequence.
struct ExecutionTuple {
  Striping striping = Striping::Whole();
  size_t index = 0;
  ExecutionSegment segment() const { return striping.segment(index); }
  bool IsWhole() const { return striping.size() == 1; }
};

// Builds the tuple from the options (either may be empty). Without a
// sequence the gaps around the segment are filled ([0,from],[from,to],
// [to,1]); a sequence not starting at 0 or not ending at 1 is extended at
// that end. A segment that is not one of the sequence's segments is an
// error naming both.
absl::StatusOr<ExecutionTuple> MakeExecutionTuple(const std::optional<ExecutionSegment>& segment,
                                                  const std::vector<Rational>& sequence);

}  // namespace barrage

#endif  // BARRAGE_COMMON_EXECUTION_SEGMENT_H_

#include "common/metrics/histogram.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>

namespace barrage::metrics {
namespace {

// Bucket() must be ceil(ln(v) / ln(gamma)), but std::log costs more than the
// rest of Add. So: log2(v) = exponent + log2(mantissa), with log2 of the
// mantissa read from a table of 2^kTableBits entries and interpolated
// linearly. Interpolation errs by at most (h^2 / 8) / ln 2 = 2.8e-6 (h =
// 1/256) in log2, i.e. 1.9e-4 bucket widths; when the estimate lies within
// kExactMargin (5x that) of a bucket boundary, the exact formula decides.
// That happens for ~0.2 % of values, so the mapping equals the exact one.
constexpr int kTableBits = 8;
constexpr int kTableSize = 1 << kTableBits;
constexpr double kExactMargin = 1e-3;
constexpr int kMantissaBits = 52;
constexpr uint64_t kMantissaMask = (uint64_t{1} << kMantissaBits) - 1;
constexpr int kLowBits = kMantissaBits - kTableBits;
constexpr uint64_t kLowMask = (uint64_t{1} << kLowBits) - 1;
constexpr double kLowScale = 1.0 / static_cast<double>(uint64_t{1} << kLowBits);

struct LogTable {
  std::array<double, kTableSize> base;   // log2(1 + j / kTableSize)
  std::array<double, kTableSize> slope;  // base[j + 1] - base[j]
  double ln_gamma;
  double buckets_per_octave;  // 1 / log2(gamma)
};

const LogTable& Table() {
  static const LogTable table = [] {
    LogTable t;
    for (int j = 0; j < kTableSize; ++j) {
      const double lo = std::log2(1.0 + static_cast<double>(j) / kTableSize);
      const double hi = std::log2(1.0 + static_cast<double>(j + 1) / kTableSize);
      t.base[j] = lo;
      t.slope[j] = hi - lo;
    }
    t.ln_gamma = std::log(Histogram::kGamma);
    t.buckets_per_octave = std::log(2.0) / t.ln_gamma;
    return t;
  }();
  return table;
}

int32_t ExactBucket(double magnitude) {
  return static_cast<int32_t>(std::ceil(std::log(magnitude) / Table().ln_gamma));
}

double Clamp(double v, double lo, double hi) { return std::min(std::max(v, lo), hi); }

}  // namespace

int32_t Histogram::Bucket(double magnitude) {
  if (!(magnitude <= std::numeric_limits<double>::max())) {
    magnitude = std::numeric_limits<double>::max();  // +inf (NaN is never passed)
  }
  uint64_t bits = std::bit_cast<uint64_t>(magnitude);
  int64_t exponent = static_cast<int64_t>((bits >> kMantissaBits) & 0x7ff);
  if (exponent == 0) return ExactBucket(magnitude);  // subnormal: rare, keep it simple
  exponent -= 1023;
  const LogTable& table = Table();
  const uint64_t mantissa = bits & kMantissaMask;
  const uint64_t j = mantissa >> kLowBits;
  const double frac = static_cast<double>(mantissa & kLowMask) * kLowScale;
  const double log2v = static_cast<double>(exponent) + table.base[j] + table.slope[j] * frac;
  const double x = log2v * table.buckets_per_octave;
  // |x| < 75000 for every double, so the truncating cast is safe.
  const int32_t whole = static_cast<int32_t>(x);
  const double rest = x - whole;  // in (-1, 1)
  const double distance = std::fabs(rest);
  if (distance < kExactMargin || distance > 1 - kExactMargin) return ExactBucket(magnitude);
  return whole + (rest > 0 ? 1 : 0);
}

double Histogram::BucketValue(int32_t bucket) {
  return 2 * std::pow(kGamma, bucket) / (kGamma + 1);
}

int32_t Histogram::MinBucket() { return Bucket(std::numeric_limits<double>::denorm_min()); }
int32_t Histogram::MaxBucket() { return Bucket(std::numeric_limits<double>::max()); }

void Histogram::Add(double value) {
  if (std::isnan(value)) return;
  if (count_ == 0) {
    min_ = max_ = value;
  } else {
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
  }
  ++count_;
  sum_ += value;
  if (value > 0) {
    positive_.Increment(Bucket(value));
  } else if (value < 0) {
    negative_.Increment(Bucket(-value));
  } else {
    ++zero_count_;
  }
}

void Histogram::Merge(const Histogram& other) {
  if (other.count_ == 0) return;
  if (count_ == 0) {
    min_ = other.min_;
    max_ = other.max_;
  } else {
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }
  count_ += other.count_;
  sum_ += other.sum_;
  zero_count_ += other.zero_count_;
  positive_.Merge(other.positive_);
  negative_.Merge(other.negative_);
}

double Histogram::ValueAtRank(uint64_t k) const {
  // The extremes are known exactly; use them rather than a representative.
  if (k == 0) return min_;
  if (k + 1 >= count_) return max_;
  int32_t index = 0;
  // Sorted order: the most negative values (largest magnitude, highest
  // index) first, then zeros, then positives by ascending index.
  if (negative_.FindRank(/*ascending=*/false, &k, &index)) {
    return Clamp(-BucketValue(index), min_, max_);
  }
  if (k < zero_count_) return Clamp(0, min_, max_);
  k -= zero_count_;
  if (positive_.FindRank(/*ascending=*/true, &k, &index)) {
    return Clamp(BucketValue(index), min_, max_);
  }
  return max_;  // only when count_ exceeds the buckets' total (bad wire data)
}

double Histogram::Quantile(double p) const {
  if (count_ == 0) return 0;
  if (count_ == 1) return min_;
  if (!(p > 0)) p = 0;  // also NaN
  if (p > 1) p = 1;
  // k6's TrendSink.P: rank p*(n-1), linear between floor and ceil neighbours.
  const double rank = p * static_cast<double>(count_ - 1);
  const double floor_rank = std::floor(rank);
  const uint64_t lo = static_cast<uint64_t>(floor_rank);
  const uint64_t hi = std::min(static_cast<uint64_t>(std::ceil(rank)), count_ - 1);
  const double frac = rank - floor_rank;
  const double a = ValueAtRank(lo);
  if (hi == lo || frac == 0) return a;
  const double b = ValueAtRank(hi);
  return Clamp(a + (b - a) * frac, min_, max_);
}

void Histogram::Quantiles(std::span<const double> ps, std::span<double> out) const {
  QuantilesAndCounts(ps, out, {}, {});
}

void Histogram::QuantilesAndCounts(std::span<const double> ps, std::span<double> out, std::span<const int32_t> limits,
                                   std::span<uint64_t> counts) const {
  // The ranks Quantile() would read (two per p at most), resolved in
  // ascending order by one walk over the sorted order of ValueAtRank().
  struct Need {
    uint64_t rank;
    double value;
  };
  std::vector<Need> needs;
  std::vector<Need*> order;
  const bool interpolate = count_ > 1;
  if (interpolate) {
    needs.reserve(2 * ps.size());
    for (double p : ps) {
      if (!(p > 0)) p = 0;
      if (p > 1) p = 1;
      const double rank = p * static_cast<double>(count_ - 1);
      needs.push_back({static_cast<uint64_t>(std::floor(rank)), 0});
      needs.push_back({std::min(static_cast<uint64_t>(std::ceil(rank)), count_ - 1), 0});
    }
    order.reserve(needs.size());
    for (Need& n : needs) order.push_back(&n);
    std::sort(order.begin(), order.end(), [](const Need* a, const Need* b) { return a->rank < b->rank; });
  }
  size_t next = 0;
  uint64_t base = 0;  // samples before the current bucket
  // value() is a pow(): computed only for the buckets a rank falls in.
  auto resolve = [&](uint64_t c, auto value) {
    for (; next < order.size() && order[next]->rank < base + c; ++next) {
      const uint64_t k = order[next]->rank;
      order[next]->value = k == 0 ? min_ : k + 1 >= count_ ? max_ : Clamp(value(), min_, max_);
    }
    base += c;
  };
  const BucketSpan neg = negative_buckets();
  for (size_t j = neg.counts.size(); j-- > 0;) {
    if (neg.counts[j]) resolve(neg.counts[j], [&] { return -BucketValue(neg.offset + static_cast<int32_t>(j)); });
  }
  if (zero_count_) resolve(zero_count_, [] { return 0.0; });
  const BucketSpan pos = positive_buckets();
  // The hot loop of a Prometheus scrape (600 buckets a latency trend, four
  // quantiles and 18 bounds): per bucket only two compares against the
  // next rank and the next bound, which change rarely.
  constexpr uint64_t kNoRank = std::numeric_limits<uint64_t>::max();
  constexpr int64_t kNoLimit = std::numeric_limits<int64_t>::max();
  size_t limit = 0;
  uint64_t next_rank = next < order.size() ? order[next]->rank : kNoRank;
  int64_t next_limit = limit < limits.size() ? limits[limit] : kNoLimit;
  const size_t n = pos.counts.size();
  constexpr size_t kBlock = 16;
  for (size_t j = 0; j < n; ++j) {
    // Whole blocks that hold neither the next rank nor the next bound are
    // summed at once (the compiler vectorises the sum).
    while (j + kBlock <= n && pos.offset + static_cast<int64_t>(j + kBlock - 1) <= next_limit) {
      uint64_t sum = 0;
      for (size_t k = 0; k < kBlock; ++k) sum += pos.counts[j + k];
      if (next_rank < base + sum) break;
      base += sum;
      j += kBlock;
    }
    if (j >= n) break;
    const int64_t index = pos.offset + static_cast<int64_t>(j);
    if (index > next_limit) {
      while (limit < limits.size() && index > limits[limit]) counts[limit++] = base;
      next_limit = limit < limits.size() ? limits[limit] : kNoLimit;
    }
    const uint64_t c = pos.counts[j];
    if (next_rank < base + c) {
      resolve(c, [&] { return BucketValue(static_cast<int32_t>(index)); });
      next_rank = next < order.size() ? order[next]->rank : kNoRank;
    } else {
      base += c;
    }
    if (next_rank == kNoRank && next_limit == kNoLimit) break;
  }
  while (limit < limits.size()) counts[limit++] = base;
  for (; next < order.size(); ++next) order[next]->value = order[next]->rank == 0 ? min_ : max_;
  for (size_t i = 0; i < ps.size(); ++i) {
    if (!interpolate) {
      out[i] = Quantile(ps[i]);
      continue;
    }
    double p = ps[i];
    if (!(p > 0)) p = 0;
    if (p > 1) p = 1;
    const double rank = p * static_cast<double>(count_ - 1);
    const double frac = rank - std::floor(rank);
    const Need& lo = needs[2 * i];
    const Need& hi = needs[2 * i + 1];
    out[i] = hi.rank == lo.rank || frac == 0 ? lo.value : Clamp(lo.value + (hi.value - lo.value) * frac, min_, max_);
  }
}

Histogram Histogram::FromParts(BucketSpan positive, BucketSpan negative, uint64_t zero_count,
                               uint64_t count, double sum, double min, double max) {
  Histogram h;
  // Indices no double can map to are dropped rather than allocated for (a
  // bad peer could ask for gigabytes); Consistent() then reports the loss.
  const int64_t min_bucket = MinBucket();
  const int64_t max_bucket = MaxBucket();
  auto fill = [&](BucketSpan span, DenseBuckets& buckets) {
    for (size_t k = 0; k < span.counts.size(); ++k) {
      const int64_t index = span.offset + static_cast<int64_t>(k);
      if (index < min_bucket || index > max_bucket) continue;
      buckets.Add(static_cast<int32_t>(index), span.counts[k]);
    }
  };
  fill(positive, h.positive_);
  fill(negative, h.negative_);
  h.zero_count_ = zero_count;
  h.count_ = count;
  h.sum_ = sum;
  h.min_ = count ? min : 0;
  h.max_ = count ? max : 0;
  return h;
}

bool Histogram::Consistent() const {
  if (positive_.Total() + negative_.Total() + zero_count_ != count_) return false;
  if (count_ != 0 && !(min_ <= max_)) return false;
  for (const BucketSpan& span : {positive_buckets(), negative_buckets()}) {
    if (span.counts.empty()) continue;
    const int64_t last = span.offset + static_cast<int64_t>(span.counts.size()) - 1;
    if (span.offset < MinBucket() || last > MaxBucket()) return false;
  }
  return true;
}

bool operator==(const Histogram& a, const Histogram& b) {
  auto same = [](Histogram::BucketSpan x, Histogram::BucketSpan y) {
    return x.counts.empty() == y.counts.empty() && (x.counts.empty() || x.offset == y.offset) &&
           std::ranges::equal(x.counts, y.counts);
  };
  return a.count_ == b.count_ && a.sum_ == b.sum_ && a.min() == b.min() && a.max() == b.max() &&
         a.zero_count_ == b.zero_count_ && same(a.positive_buckets(), b.positive_buckets()) &&
         same(a.negative_buckets(), b.negative_buckets());
}

// --- DenseBuckets ---

void Histogram::DenseBuckets::Grow(int32_t lo, int32_t hi) {
  // Slack on the side that grew: enough that a range widening one bucket at
  // a time reallocates O(log n) times, not n.
  constexpr int64_t kMinSlack = 32;
  if (counts_.empty()) {
    offset_ = static_cast<int64_t>(lo) - kMinSlack;
    counts_.assign(static_cast<size_t>(hi - lo + 1 + 2 * kMinSlack), 0);
    return;
  }
  const int64_t old_lo = offset_;
  const int64_t old_hi = offset_ + static_cast<int64_t>(counts_.size()) - 1;
  int64_t new_lo = std::min<int64_t>(old_lo, lo);
  int64_t new_hi = std::max<int64_t>(old_hi, hi);
  const int64_t slack = std::max<int64_t>(kMinSlack, (new_hi - new_lo + 1) / 2);
  if (new_lo < old_lo) new_lo -= slack;
  if (new_hi > old_hi) new_hi += slack;
  if (new_lo == old_lo && new_hi == old_hi) return;
  std::vector<uint64_t> grown(static_cast<size_t>(new_hi - new_lo + 1), 0);
  std::copy(counts_.begin(), counts_.end(), grown.begin() + (old_lo - new_lo));
  counts_ = std::move(grown);
  offset_ = new_lo;
}

void Histogram::DenseBuckets::Add(int32_t index, uint64_t n) {
  if (n == 0) return;
  const uint64_t k = static_cast<uint64_t>(static_cast<int64_t>(index) - offset_);
  if (k >= counts_.size()) Grow(index, index);
  counts_[static_cast<size_t>(index - offset_)] += n;
}

void Histogram::DenseBuckets::Merge(const DenseBuckets& other) {
  const BucketSpan span = other.Trimmed();
  if (span.counts.empty()) return;
  const int64_t last = span.offset + static_cast<int64_t>(span.counts.size()) - 1;
  Grow(span.offset, static_cast<int32_t>(last));
  const int64_t shift = span.offset - offset_;
  for (size_t k = 0; k < span.counts.size(); ++k) counts_[shift + k] += span.counts[k];
}

Histogram::BucketSpan Histogram::DenseBuckets::Trimmed() const {
  size_t first = 0;
  size_t end = counts_.size();
  while (first < end && counts_[first] == 0) ++first;
  while (end > first && counts_[end - 1] == 0) --end;
  if (first == end) return {};
  return {static_cast<int32_t>(offset_ + static_cast<int64_t>(first)),
          std::span<const uint64_t>(counts_.data() + first, end - first)};
}

uint64_t Histogram::DenseBuckets::Total() const {
  uint64_t total = 0;
  for (uint64_t c : counts_) total += c;
  return total;
}

bool Histogram::DenseBuckets::FindRank(bool ascending, uint64_t* rank, int32_t* index) const {
  const size_t n = counts_.size();
  for (size_t i = 0; i < n; ++i) {
    const size_t j = ascending ? i : n - 1 - i;
    const uint64_t c = counts_[j];
    if (*rank < c) {
      *index = static_cast<int32_t>(offset_ + static_cast<int64_t>(j));
      return true;
    }
    *rank -= c;
  }
  return false;
}

}  // namespace barrage::metrics

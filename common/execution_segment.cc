#include "common/execution_segment.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <numeric>
#include <queue>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace barrage {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
// 10^15 < 2^63 / 1000: a decimal's numerator (integer part <= 100, scaled by
// 10^15) and a percentage's denominator (10^15 * 100) both fit in int64.
constexpr int kMaxFractionDigits = 15;

// Comparisons stay Rational against Rational: under C++20's rewritten
// comparison rules boost 1.74's mixed `rational != int` calls itself
// through `int == rational` until the stack runs out.
const Rational kZero(0);
const Rational kOne(1);

// Debian's abseil has its own string_view, so absl::StrCat takes no
// std::string_view; everything handed to abseil goes through std::string.
std::string Str(std::string_view s) { return std::string(s); }

// Our bugs only (never user input): print and abort, as BARRAGE_CHECK does.
void Check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "BARRAGE_CHECK failed: %s\n", what);
  std::abort();
}

std::string_view Trim(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Parses a non-empty run of digits. false if not all digits or above int64.
bool ParseDigits(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  int64_t v = 0;
  for (char c : s) {
    if (!IsDigit(c)) return false;
    const int64_t d = c - '0';
    if (v > (kInt64Max - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

bool AllDigits(std::string_view s) { return std::all_of(s.begin(), s.end(), IsDigit); }

absl::Status RationalError(std::string_view text, std::string_view reason) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid rational \"", Str(text), "\": ", Str(reason)));
}
absl::Status BadRationalSyntax(std::string_view text) {
  return RationalError(
      text, "expected a fraction like 1/3, a decimal like 0.25 or a percentage like 25%");
}
absl::Status RationalOutOfRange(std::string_view text) {
  return RationalError(text, "must be between 0 and 1");
}

std::string FormatPoints(const std::vector<Rational>& points) {
  if (points.empty()) return "(empty)";
  return absl::StrJoin(points, ",", [](std::string* out, const Rational& r) {
    out->append(FormatRational(r));
  });
}

absl::Status SequenceError(const std::vector<Rational>& points, std::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat("invalid execution segment sequence ",
                                                 FormatPoints(points), ": ", Str(reason)));
}

// The striping tables of a validated sequence (see Striping's members).
struct Table {
  int64_t lcm = 1;
  std::vector<int64_t> weights;
  std::vector<std::vector<int64_t>> residues;
  std::vector<uint32_t> owner;
};

// Validates `points` and stripes them as spec §3.9 says. `max_lcm` bounds L,
// which is also the size of the owner table.
absl::StatusOr<Table> BuildTable(const std::vector<Rational>& points, int64_t max_lcm) {
  if (points.size() < 2) return SequenceError(points, "needs at least 2 points");
  if (points.front() != kZero) return SequenceError(points, "must start at 0");
  if (points.back() != kOne) return SequenceError(points, "must end at 1");
  for (size_t i = 1; i < points.size(); ++i) {
    if (!(points[i - 1] < points[i])) {
      return SequenceError(points, absl::StrCat("the points must be strictly increasing, but ",
                                                FormatRational(points[i]), " follows ",
                                                FormatRational(points[i - 1])));
    }
  }
  // L is the lcm of the lengths' denominators. That equals the lcm of the
  // points' denominators (each length is a difference of two points, each
  // point a sum of lengths from 0), which lets every step below stay in
  // integers no larger than L, instead of subtracting rationals whose
  // int64 arithmetic could overflow unseen on huge denominators.
  Table t;
  for (const Rational& p : points) {
    const int64_t d = p.denominator();
    const int64_t g = std::gcd(t.lcm, d);
    const __int128 next = static_cast<__int128>(t.lcm / g) * d;
    if (next > max_lcm) {
      return SequenceError(points, absl::StrCat("the sequence's least common denominator is too "
                                                "large (more than ", max_lcm, ")"));
    }
    t.lcm = static_cast<int64_t>(next);
  }
  const int64_t L = t.lcm;
  const size_t n = points.size() - 1;
  t.weights.resize(n);
  for (size_t j = 0; j < n; ++j) {
    const Rational& a = points[j];
    const Rational& b = points[j + 1];
    t.weights[j] = b.numerator() * (L / b.denominator()) - a.numerator() * (L / a.denominator());
  }

  // Step 2: by weight, largest first; ties keep sequence order.
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t x, size_t y) { return t.weights[x] > t.weights[y]; });

  // Step 3: index i goes to the first segment in that order with
  // i * w_j >= c_j * L. The literal walk costs O(L * segments); this is the
  // same rule in O(L log segments): segment j becomes eligible at
  // next_j = ceil(c_j * L / w_j) and stays eligible until it takes an index,
  // so each i goes to the eligible segment with the smallest rank. Some
  // segment is always eligible (if i * w_j < c_j * L for all j, summing gives
  // i * L < i * L), and none takes more than w_j (that would need i >= L).
  auto next_eligible = [&](size_t j, int64_t c) {
    const __int128 num = static_cast<__int128>(c) * L;
    return static_cast<int64_t>((num + t.weights[j] - 1) / t.weights[j]);
  };
  using Entry = std::pair<int64_t, size_t>;  // (index it waits for, rank)
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> waiting;
  std::priority_queue<size_t, std::vector<size_t>, std::greater<>> eligible;  // ranks
  for (size_t rank = 0; rank < n; ++rank) waiting.push({0, rank});
  std::vector<int64_t> taken(n, 0);
  t.residues.assign(n, {});
  for (size_t j = 0; j < n; ++j) t.residues[j].reserve(static_cast<size_t>(t.weights[j]));
  t.owner.resize(static_cast<size_t>(L));
  for (int64_t i = 0; i < L; ++i) {
    while (!waiting.empty() && waiting.top().first <= i) {
      eligible.push(waiting.top().second);
      waiting.pop();
    }
    Check(!eligible.empty(), "striping: no segment may take an index");
    const size_t rank = eligible.top();
    eligible.pop();
    const size_t j = order[rank];
    t.owner[static_cast<size_t>(i)] = static_cast<uint32_t>(j);
    t.residues[j].push_back(i);
    if (++taken[j] < t.weights[j]) waiting.push({next_eligible(j, taken[j]), rank});
  }
  for (size_t j = 0; j < n; ++j) {
    Check(static_cast<int64_t>(t.residues[j].size()) == t.weights[j],
          "striping: a segment did not get exactly its weight");
  }
  return t;
}

}  // namespace

absl::StatusOr<Rational> ParseRational(std::string_view text) {
  std::string_view s = Trim(text);
  // A sign is accepted only to say that a negative value is out of range.
  bool negative = false;
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  bool percent = false;
  if (!s.empty() && s.back() == '%') {
    percent = true;
    s.remove_suffix(1);
  }

  int64_t num = 0;
  int64_t den = 1;
  if (const size_t slash = s.find('/'); slash != std::string_view::npos) {
    if (percent) return BadRationalSyntax(text);
    const std::string_view a = s.substr(0, slash);
    const std::string_view b = s.substr(slash + 1);
    if (a.empty() || b.empty() || !AllDigits(a) || !AllDigits(b)) return BadRationalSyntax(text);
    if (!ParseDigits(a, &num) || !ParseDigits(b, &den)) {
      return RationalError(text, "number too large");
    }
    if (den == 0) return RationalError(text, "zero denominator");
  } else {
    // A decimal, parsed exactly: integer part and fraction digits over 10^d.
    const size_t dot = s.find('.');
    const std::string_view int_part = s.substr(0, dot);
    const std::string_view frac_part =
        dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
    if (int_part.empty() && frac_part.empty()) return BadRationalSyntax(text);
    if (!AllDigits(int_part) || !AllDigits(frac_part)) return BadRationalSyntax(text);
    if (frac_part.size() > kMaxFractionDigits) {
      return RationalError(text, absl::StrCat("more than ", kMaxFractionDigits,
                                              " digits after the decimal point"));
    }
    int64_t whole = 0;
    if (!int_part.empty() && !ParseDigits(int_part, &whole)) {
      return RationalOutOfRange(text);  // beyond int64, so far above 1
    }
    if (whole > 100) return RationalOutOfRange(text);  // above 1 even as a percentage
    int64_t frac = 0;
    if (!frac_part.empty()) ParseDigits(frac_part, &frac);  // at most 15 digits: fits
    for (size_t k = 0; k < frac_part.size(); ++k) den *= 10;
    num = whole * den + frac;
    if (percent) den *= 100;
  }
  const Rational r(num, den);  // den > 0 here, so boost does not throw
  if (r > kOne || (negative && r != kZero)) return RationalOutOfRange(text);
  return r;
}

std::string FormatRational(const Rational& r) {
  if (r.denominator() == 1) return absl::StrCat(r.numerator());
  return absl::StrCat(r.numerator(), "/", r.denominator());
}

std::string ExecutionSegment::ToString() const {
  return absl::StrCat(FormatRational(from), ":", FormatRational(to));
}

absl::StatusOr<ExecutionSegment> ParseExecutionSegment(std::string_view text) {
  const std::string_view s = Trim(text);
  const auto where = absl::StrCat("invalid execution segment \"", Str(text), "\"");
  ExecutionSegment seg;
  if (s.empty()) return seg;  // the whole test
  if (const size_t colon = s.find(':'); colon != std::string_view::npos) {
    absl::StatusOr<Rational> from = ParseRational(s.substr(0, colon));
    if (!from.ok()) return Annotate(from.status(), where);
    seg.from = *from;
    absl::StatusOr<Rational> to = ParseRational(s.substr(colon + 1));
    if (!to.ok()) return Annotate(to.status(), where);
    seg.to = *to;
  } else {
    absl::StatusOr<Rational> to = ParseRational(s);
    if (!to.ok()) return Annotate(to.status(), where);
    seg.to = *to;
  }
  if (!(seg.from < seg.to)) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": the start (", FormatRational(seg.from),
                                                   ") must be less than the end (",
                                                   FormatRational(seg.to), ")"));
  }
  return seg;
}

absl::StatusOr<std::vector<Rational>> ParseExecutionSegmentSequence(std::string_view text) {
  std::vector<Rational> points;
  if (Trim(text).empty()) return points;
  const auto where = absl::StrCat("invalid execution segment sequence \"", Str(text), "\"");
  std::string_view rest = text;
  for (size_t entry = 1;; ++entry) {
    const size_t comma = rest.find(',');
    const std::string_view item = Trim(rest.substr(0, comma));
    const auto at = absl::StrCat(where, ": entry ", entry);
    if (item.empty()) return absl::InvalidArgumentError(absl::StrCat(at, " is empty"));
    absl::StatusOr<Rational> r = ParseRational(item);
    if (!r.ok()) return Annotate(r.status(), at);
    if (!points.empty() && !(points.back() < *r)) {
      return absl::InvalidArgumentError(absl::StrCat(at, " (", Str(item),
                                                     ") must be greater than the one before (",
                                                     FormatRational(points.back()), ")"));
    }
    points.push_back(*r);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (points.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": needs at least 2 points"));
  }
  return points;
}

absl::StatusOr<Striping> Striping::Make(std::vector<Rational> points) {
  BARRAGE_ASSIGN_OR_RETURN(Table t, BuildTable(points, kMaxLcm));
  Striping s;
  s.points_ = std::move(points);
  s.lcm_ = t.lcm;
  s.weights_ = std::move(t.weights);
  s.residues_ = std::move(t.residues);
  s.owner_ = std::move(t.owner);
  return s;
}

Striping Striping::Whole() {
  Striping s;
  s.points_ = {kZero, kOne};
  s.lcm_ = 1;
  s.weights_ = {1};
  s.residues_ = {{0}};
  s.owner_ = {0};
  return s;
}

std::optional<size_t> Striping::IndexOf(const ExecutionSegment& seg) const {
  for (size_t j = 0; j < size(); ++j) {
    if (points_[j] == seg.from && points_[j + 1] == seg.to) return j;
  }
  return std::nullopt;
}

int64_t Striping::Scale(size_t j, int64_t v) const {
  Check(v >= 0, "Striping::Scale of a negative count");
  const std::vector<int64_t>& r = residues_[j];
  const auto below = std::lower_bound(r.begin(), r.end(), v % lcm_) - r.begin();
  return (v / lcm_) * weights_[j] + below;
}

int64_t Striping::GlobalIndex(size_t j, int64_t n) const {
  Check(n >= 0, "Striping::GlobalIndex of a negative position");
  const int64_t w = weights_[j];
  return (n / w) * lcm_ + residues_[j][static_cast<size_t>(n % w)];
}

std::optional<Striping::Derived> Striping::Derive(size_t j, int64_t v) const {
  Check(v >= 0, "Striping::Derive of a negative count");
  if (v % lcm_ == 0) return Derived{*this, j};
  if (Scale(j, v) == 0) return std::nullopt;
  std::vector<Rational> points = {kZero};
  size_t index = 0;
  int64_t sum = 0;
  for (size_t k = 0; k < size(); ++k) {
    const int64_t s = Scale(k, v);
    if (s == 0) continue;
    if (k == j) index = points.size() - 1;
    sum += s;
    points.push_back(Rational(sum, v));
  }
  // The derived L divides v, so unlike a user's sequence it is allowed up to
  // v: the caller already plans for v VUs, and refusing here would leave the
  // scenario with no split at all.
  absl::StatusOr<Table> t = BuildTable(points, std::max(kMaxLcm, v));
  Check(t.ok(), "Striping::Derive: the derived sequence is invalid");
  Derived d{Striping(), index};
  d.striping.points_ = std::move(points);
  d.striping.lcm_ = t->lcm;
  d.striping.weights_ = std::move(t->weights);
  d.striping.residues_ = std::move(t->residues);
  d.striping.owner_ = std::move(t->owner);
  return d;
}

absl::StatusOr<ExecutionTuple> MakeExecutionTuple(const std::optional<ExecutionSegment>& segment,
                                                  const std::vector<Rational>& sequence) {
  std::vector<Rational> points;
  if (sequence.empty()) {
    if (!segment.has_value()) return ExecutionTuple{};
    // Fill the gaps around the segment: [0,from], [from,to], [to,1].
    if (segment->from != kZero) points.push_back(kZero);
    points.push_back(segment->from);
    points.push_back(segment->to);
    if (segment->to != kOne) points.push_back(kOne);
  } else {
    // Extend a sequence that stops short of 0 or 1 with a segment at that end.
    if (sequence.front() != kZero) points.push_back(kZero);
    points.insert(points.end(), sequence.begin(), sequence.end());
    if (sequence.back() != kOne) points.push_back(kOne);
  }
  absl::StatusOr<Striping> striping = Striping::Make(std::move(points));
  if (!striping.ok()) {
    return segment.has_value()
               ? Annotate(striping.status(), absl::StrCat("execution segment ", segment->ToString()))
               : striping.status();
  }
  // No segment means the whole test, 0:1, which a split sequence lacks.
  const ExecutionSegment wanted = segment.value_or(ExecutionSegment{});
  const std::optional<size_t> index = striping->IndexOf(wanted);
  if (!index.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("execution segment ", wanted.ToString(),
                     " is not one of the segments of the sequence ",
                     FormatPoints(striping->points())));
  }
  return ExecutionTuple{*std::move(striping), *index};
}

}  // namespace barrage

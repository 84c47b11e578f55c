#include "common/execution_segment.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <ostream>
#include <random>
#include <string>
#include <vector>

namespace barrage {

// Readable failures. (A Rational prints through boost's operator<<.)
void PrintTo(const ExecutionSegment& s, std::ostream* os) { *os << s.ToString(); }

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

Rational Q(int64_t num, int64_t den = 1) { return Rational(num, den); }

std::string Points(const std::vector<Rational>& points) {
  std::string out;
  for (const Rational& p : points) {
    if (!out.empty()) out += ",";
    out += FormatRational(p);
  }
  return out;
}

// Parses and stripes a sequence written as in the spec; fails the test if
// either step fails.
Striping MustStripe(const std::string& sequence) {
  absl::StatusOr<std::vector<Rational>> points = ParseExecutionSegmentSequence(sequence);
  EXPECT_TRUE(points.ok()) << points.status();
  if (!points.ok()) return Striping::Whole();
  absl::StatusOr<Striping> s = Striping::Make(*points);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : Striping::Whole();
}

std::vector<int64_t> ScaleAll(const Striping& s, int64_t v) {
  std::vector<int64_t> out;
  for (size_t j = 0; j < s.size(); ++j) out.push_back(s.Scale(j, v));
  return out;
}

std::string ErrorOf(const absl::Status& status) {
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  return std::string(status.message());
}

// ---------------------------------------------------------------- rationals

struct GoodRational {
  std::string text;
  Rational want;
};
void PrintTo(const GoodRational& g, std::ostream* os) { *os << '"' << g.text << '"'; }

class ParseRationalGoodTest : public ::testing::TestWithParam<GoodRational> {};

TEST_P(ParseRationalGoodTest, ParsesExactly) {
  absl::StatusOr<Rational> got = ParseRational(GetParam().text);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, GetParam().want) << FormatRational(*got);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseRationalGoodTest,
    ::testing::Values(
        GoodRational{"1/3", Q(1, 3)}, GoodRational{"2/6", Q(1, 3)}, GoodRational{"0/7", Q(0)},
        GoodRational{"3/3", Q(1)}, GoodRational{"0.25", Q(1, 4)}, GoodRational{".5", Q(1, 2)},
        GoodRational{"0.5000", Q(1, 2)}, GoodRational{"000.75", Q(3, 4)},
        GoodRational{"1.", Q(1)}, GoodRational{"1.000", Q(1)}, GoodRational{"25%", Q(1, 4)},
        GoodRational{"12.5%", Q(1, 8)}, GoodRational{"100%", Q(1)}, GoodRational{"0%", Q(0)},
        GoodRational{"1", Q(1)}, GoodRational{"0", Q(0)}, GoodRational{" 1/2 ", Q(1, 2)},
        GoodRational{"-0", Q(0)},
        // 0.1 is exact here, not the double nearest to it.
        GoodRational{"0.1", Q(1, 10)},
        // 15 fractional digits is the limit, and exact.
        GoodRational{"0.333333333333333", Q(333333333333333, 1000000000000000)},
        GoodRational{"99.999999999999999%", Q(99999999999999999, 1000000000000000) / 100},
        GoodRational{"9223372036854775806/9223372036854775807",
                     Q(9223372036854775806, 9223372036854775807)}));

struct BadRational {
  std::string text;
  std::string want;  // the whole message
};
void PrintTo(const BadRational& b, std::ostream* os) { *os << '"' << b.text << '"'; }

class ParseRationalBadTest : public ::testing::TestWithParam<BadRational> {};

TEST_P(ParseRationalBadTest, RefusesNamingTheText) {
  absl::StatusOr<Rational> got = ParseRational(GetParam().text);
  EXPECT_EQ(ErrorOf(got.status()), GetParam().want);
}

constexpr char kSyntax[] =
    "expected a fraction like 1/3, a decimal like 0.25 or a percentage like 25%";

BadRational Syntax(const std::string& text) {
  return {text, "invalid rational \"" + text + "\": " + kSyntax};
}
BadRational Range(const std::string& text) {
  return {text, "invalid rational \"" + text + "\": must be between 0 and 1"};
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseRationalBadTest,
    ::testing::Values(
        Syntax("abc"), Syntax(""), Syntax(" "), Syntax("."), Syntax("%"), Syntax("-"),
        Syntax("1/"), Syntax("/2"), Syntax("1/-2"), Syntax("1//2"), Syntax("1/3%"),
        Syntax("1e-1"), Syntax("0..5"), Syntax("0.5.0"), Syntax("0x1"), Syntax("1 /2"),
        Syntax("25%%"), Syntax("0.2.5%"), Range("3/2"), Range("1.5"), Range("1.0000001"),
        Range("150%"), Range("100.5%"), Range("2"), Range("-0.5"), Range("-1/2"),
        Range("99999999999999999999999"), Range("101"),
        BadRational{"1/0", "invalid rational \"1/0\": zero denominator"},
        BadRational{"0/0", "invalid rational \"0/0\": zero denominator"},
        BadRational{"0.1234567890123456",
                    "invalid rational \"0.1234567890123456\": more than 15 digits after the "
                    "decimal point"},
        BadRational{"1/99999999999999999999",
                    "invalid rational \"1/99999999999999999999\": number too large"}));

TEST(FormatRationalTest, WritesLowestTermsAndBareEnds) {
  EXPECT_EQ(FormatRational(Q(0)), "0");
  EXPECT_EQ(FormatRational(Q(1)), "1");
  EXPECT_EQ(FormatRational(Q(1, 3)), "1/3");
  EXPECT_EQ(FormatRational(Q(2, 6)), "1/3");
  EXPECT_EQ(FormatRational(Q(7, 10)), "7/10");
  EXPECT_EQ((ExecutionSegment{Q(0), Q(1, 3)}.ToString()), "0:1/3");
  EXPECT_EQ((ExecutionSegment{Q(1, 2), Q(1)}.ToString()), "1/2:1");
  EXPECT_EQ(ExecutionSegment{}.ToString(), "0:1");
}

TEST(FormatRationalTest, ParsesBackToTheSameValue) {
  for (int64_t den = 1; den <= 30; ++den) {
    for (int64_t num = 0; num <= den; ++num) {
      absl::StatusOr<Rational> back = ParseRational(FormatRational(Q(num, den)));
      ASSERT_TRUE(back.ok()) << back.status();
      EXPECT_EQ(*back, Q(num, den));
    }
  }
}

// ----------------------------------------------------------------- segments

TEST(ParseExecutionSegmentTest, ParsesFullLoneAndEmptyForms) {
  struct Case {
    std::string text;
    ExecutionSegment want;
  };
  for (const Case& c : std::vector<Case>{
           {"", {Q(0), Q(1)}},
           {"1/2", {Q(0), Q(1, 2)}},
           {"25%", {Q(0), Q(1, 4)}},
           {"0.75", {Q(0), Q(3, 4)}},
           {"1", {Q(0), Q(1)}},
           {"1/4:3/4", {Q(1, 4), Q(3, 4)}},
           {"50%:0.75", {Q(1, 2), Q(3, 4)}},
           {"2/4:75%", {Q(1, 2), Q(3, 4)}},
           {"0:1", {Q(0), Q(1)}},
           {"2/3:1", {Q(2, 3), Q(1)}},
           {" 1/3 : 2/3 ", {Q(1, 3), Q(2, 3)}},
       }) {
    absl::StatusOr<ExecutionSegment> got = ParseExecutionSegment(c.text);
    ASSERT_TRUE(got.ok()) << c.text << ": " << got.status();
    EXPECT_EQ(*got, c.want) << c.text << " gave " << got->ToString();
  }
}

TEST(ParseExecutionSegmentTest, RefusesNamingTheSegmentAndTheReason) {
  EXPECT_EQ(ErrorOf(ParseExecutionSegment("1/2:1/3").status()),
            "invalid execution segment \"1/2:1/3\": the start (1/2) must be less than the end "
            "(1/3)");
  EXPECT_EQ(ErrorOf(ParseExecutionSegment("1/2:1/2").status()),
            "invalid execution segment \"1/2:1/2\": the start (1/2) must be less than the end "
            "(1/2)");
  EXPECT_EQ(ErrorOf(ParseExecutionSegment("0").status()),
            "invalid execution segment \"0\": the start (0) must be less than the end (0)");
  EXPECT_EQ(ErrorOf(ParseExecutionSegment("x:1").status()),
            std::string("invalid execution segment \"x:1\": invalid rational \"x\": ") + kSyntax);
  EXPECT_EQ(ErrorOf(ParseExecutionSegment("0:2").status()),
            "invalid execution segment \"0:2\": invalid rational \"2\": must be between 0 and 1");
  EXPECT_THAT(ErrorOf(ParseExecutionSegment("0:1:2").status()),
              HasSubstr("invalid execution segment \"0:1:2\": invalid rational \"1:2\""));
  EXPECT_THAT(ErrorOf(ParseExecutionSegment(":1").status()),
              HasSubstr("invalid execution segment \":1\": invalid rational \"\""));
  EXPECT_THAT(ErrorOf(ParseExecutionSegment("-1/2:1/2").status()),
              HasSubstr("must be between 0 and 1"));
}

TEST(ParseExecutionSegmentSequenceTest, ParsesPointsAsWritten) {
  absl::StatusOr<std::vector<Rational>> got = ParseExecutionSegmentSequence("0,1/3,2/3,1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, ElementsAre(Q(0), Q(1, 3), Q(2, 3), Q(1)));

  got = ParseExecutionSegmentSequence(" 0 , 25% ,\t0.5 ,1 ");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, ElementsAre(Q(0), Q(1, 4), Q(1, 2), Q(1)));

  // Not filled to 0 and 1 here: MakeExecutionTuple does that.
  got = ParseExecutionSegmentSequence("1/4,1/2");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, ElementsAre(Q(1, 4), Q(1, 2)));

  got = ParseExecutionSegmentSequence("");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, IsEmpty());
}

TEST(ParseExecutionSegmentSequenceTest, RefusesNamingTheOffendingEntry) {
  EXPECT_EQ(ErrorOf(ParseExecutionSegmentSequence("0").status()),
            "invalid execution segment sequence \"0\": needs at least 2 points");
  EXPECT_EQ(ErrorOf(ParseExecutionSegmentSequence("0,1/2,1/2,1").status()),
            "invalid execution segment sequence \"0,1/2,1/2,1\": entry 3 (1/2) must be greater "
            "than the one before (1/2)");
  EXPECT_EQ(ErrorOf(ParseExecutionSegmentSequence("1/2,1/3").status()),
            "invalid execution segment sequence \"1/2,1/3\": entry 2 (1/3) must be greater than "
            "the one before (1/2)");
  EXPECT_EQ(ErrorOf(ParseExecutionSegmentSequence("0,,1").status()),
            "invalid execution segment sequence \"0,,1\": entry 2 is empty");
  EXPECT_EQ(ErrorOf(ParseExecutionSegmentSequence("0,1,").status()),
            "invalid execution segment sequence \"0,1,\": entry 3 is empty");
  EXPECT_EQ(ErrorOf(ParseExecutionSegmentSequence("0,x,1").status()),
            std::string("invalid execution segment sequence \"0,x,1\": entry 2: invalid rational "
                        "\"x\": ") +
                kSyntax);
  EXPECT_EQ(ErrorOf(ParseExecutionSegmentSequence("0,1/2,3/2").status()),
            "invalid execution segment sequence \"0,1/2,3/2\": entry 3: invalid rational "
            "\"3/2\": must be between 0 and 1");
}

// ----------------------------------------------------------------- striping

TEST(StripingTest, MakeRefusesBadSequences) {
  EXPECT_THAT(ErrorOf(Striping::Make({}).status()), HasSubstr("needs at least 2 points"));
  EXPECT_EQ(ErrorOf(Striping::Make({Q(0)}).status()),
            "invalid execution segment sequence 0: needs at least 2 points");
  EXPECT_EQ(ErrorOf(Striping::Make({Q(1, 4), Q(1)}).status()),
            "invalid execution segment sequence 1/4,1: must start at 0");
  EXPECT_EQ(ErrorOf(Striping::Make({Q(0), Q(1, 2)}).status()),
            "invalid execution segment sequence 0,1/2: must end at 1");
  EXPECT_EQ(ErrorOf(Striping::Make({Q(0), Q(1, 2), Q(1, 3), Q(1)}).status()),
            "invalid execution segment sequence 0,1/2,1/3,1: the points must be strictly "
            "increasing, but 1/3 follows 1/2");
  EXPECT_THAT(ErrorOf(Striping::Make({Q(0), Q(1, 2), Q(1, 2), Q(1)}).status()),
              HasSubstr("strictly increasing"));
}

TEST(StripingTest, MakeRefusesTooLargeLeastCommonDenominator) {
  // Exactly at the limit is fine.
  absl::StatusOr<Striping> at_limit = Striping::Make({Q(0), Q(1, Striping::kMaxLcm), Q(1)});
  ASSERT_TRUE(at_limit.ok()) << at_limit.status();
  EXPECT_EQ(at_limit->lcm(), Striping::kMaxLcm);

  EXPECT_EQ(ErrorOf(Striping::Make({Q(0), Q(1, 1000003), Q(1)}).status()),
            "invalid execution segment sequence 0,1/1000003,1: the sequence's least common "
            "denominator is too large (more than 1000000)");
  // Each denominator is small, their lcm (1001000) is not.
  EXPECT_THAT(ErrorOf(Striping::Make({Q(0), Q(1, 1001), Q(1, 1000), Q(1)}).status()),
              HasSubstr("least common denominator is too large"));
  // Products of these would overflow int64 if not stopped early.
  constexpr int64_t kBig = std::numeric_limits<int64_t>::max();
  EXPECT_THAT(ErrorOf(Striping::Make({Q(0), Q(1, kBig), Q(1, kBig - 1), Q(1)}).status()),
              HasSubstr("least common denominator is too large"));
}

TEST(StripingTest, WholeIsOneSegmentOwningEverything) {
  const Striping s = Striping::Whole();
  EXPECT_EQ(s.size(), 1u);
  EXPECT_EQ(s.lcm(), 1);
  EXPECT_EQ(s.weight(0), 1);
  EXPECT_THAT(s.points(), ElementsAre(Q(0), Q(1)));
  EXPECT_THAT(s.residues(0), ElementsAre(0));
  EXPECT_EQ(s.segment(0), (ExecutionSegment{Q(0), Q(1)}));
  for (int64_t v : {0, 1, 7, 1000}) EXPECT_EQ(s.Scale(0, v), v);
  for (int64_t k : {0, 1, 5, 999}) {
    EXPECT_EQ(s.Owner(k), 0u);
    EXPECT_EQ(s.GlobalIndex(0, k), k);
  }
}

// Spec §3.9: 0,1/2,3/4,1.
TEST(StripingTest, SpecExampleHalfQuarterQuarter) {
  const Striping s = MustStripe("0,1/2,3/4,1");
  EXPECT_EQ(s.lcm(), 4);
  EXPECT_EQ(s.weight(0), 2);
  EXPECT_EQ(s.weight(1), 1);
  EXPECT_EQ(s.weight(2), 1);
  EXPECT_THAT(s.residues(0), ElementsAre(0, 2));
  EXPECT_THAT(s.residues(1), ElementsAre(1));
  EXPECT_THAT(s.residues(2), ElementsAre(3));
  EXPECT_THAT(ScaleAll(s, 1), ElementsAre(1, 0, 0));
  EXPECT_THAT(ScaleAll(s, 2), ElementsAre(1, 1, 0));
  EXPECT_THAT(ScaleAll(s, 3), ElementsAre(2, 1, 0));
  EXPECT_THAT(ScaleAll(s, 5), ElementsAre(3, 1, 1));
  EXPECT_THAT(ScaleAll(s, 10), ElementsAre(5, 3, 2));
  // The pattern repeats every L items.
  EXPECT_EQ(s.Owner(4), 0u);
  EXPECT_EQ(s.Owner(5), 1u);
  EXPECT_EQ(s.Owner(6), 0u);
  EXPECT_EQ(s.Owner(7), 2u);
  EXPECT_TRUE(s.Owns(2, 11));
  EXPECT_FALSE(s.Owns(0, 11));
  // The n-th owned item of segment 0 is 0, 2, 4, 6, ...; of segment 2: 3, 7, 11.
  EXPECT_EQ(s.GlobalIndex(0, 0), 0);
  EXPECT_EQ(s.GlobalIndex(0, 1), 2);
  EXPECT_EQ(s.GlobalIndex(0, 3), 6);
  EXPECT_EQ(s.GlobalIndex(2, 2), 11);
  EXPECT_EQ(s.segment(1), (ExecutionSegment{Q(1, 2), Q(3, 4)}));
}

// Spec §3.9: 0,1/4,1/2,1 - the largest segment comes first although it is last.
TEST(StripingTest, SpecExampleQuarterQuarterHalf) {
  const Striping s = MustStripe("0,1/4,1/2,1");
  EXPECT_EQ(s.lcm(), 4);
  EXPECT_THAT(s.residues(2), ElementsAre(0, 2));
  EXPECT_THAT(s.residues(0), ElementsAre(1));
  EXPECT_THAT(s.residues(1), ElementsAre(3));
  EXPECT_THAT(ScaleAll(s, 1), ElementsAre(0, 0, 1));
}

// Spec §3.9: three equal thirds with V = 10.
TEST(StripingTest, SpecExampleThirds) {
  const Striping s = MustStripe("0,1/3,2/3,1");
  EXPECT_EQ(s.lcm(), 3);
  EXPECT_THAT(s.residues(0), ElementsAre(0));
  EXPECT_THAT(s.residues(1), ElementsAre(1));
  EXPECT_THAT(s.residues(2), ElementsAre(2));
  EXPECT_THAT(ScaleAll(s, 10), ElementsAre(4, 3, 3));
  // Fewer items than instances: some get nothing.
  EXPECT_THAT(ScaleAll(s, 2), ElementsAre(1, 1, 0));
}

TEST(StripingTest, IndexOfFindsOnlyTheSequencesOwnSegments) {
  const Striping s = MustStripe("0,1/4,1/2,1");
  EXPECT_EQ(s.IndexOf({Q(0), Q(1, 4)}), 0u);
  EXPECT_EQ(s.IndexOf({Q(1, 4), Q(1, 2)}), 1u);
  EXPECT_EQ(s.IndexOf({Q(1, 2), Q(1)}), 2u);
  EXPECT_EQ(s.IndexOf({Q(0), Q(1, 2)}), std::nullopt);  // two segments together
  EXPECT_EQ(s.IndexOf({Q(0), Q(1)}), std::nullopt);
  EXPECT_EQ(s.IndexOf({Q(1, 4), Q(1, 3)}), std::nullopt);
}

// Spec §3.9: thirds derived with maxVUs = 10.
TEST(StripingTest, SpecExampleDerivedThirds) {
  const Striping s = MustStripe("0,1/3,2/3,1");
  for (size_t j = 0; j < 3; ++j) {
    std::optional<Striping::Derived> d = s.Derive(j, 10);
    ASSERT_TRUE(d.has_value()) << j;
    EXPECT_EQ(d->index, j);
    EXPECT_EQ(Points(d->striping.points()), "0,2/5,7/10,1");
    EXPECT_EQ(d->striping.lcm(), 10);
    EXPECT_THAT(d->striping.residues(0), ElementsAre(0, 3, 5, 8));
    EXPECT_THAT(d->striping.residues(1), ElementsAre(1, 4, 7));
    EXPECT_THAT(d->striping.residues(2), ElementsAre(2, 6, 9));
  }
}

TEST(StripingTest, DeriveKeepsTheStripingWhenLDividesV) {
  const Striping s = MustStripe("0,1/3,2/3,1");
  for (int64_t v : {0, 3, 9}) {
    std::optional<Striping::Derived> d = s.Derive(2, v);
    ASSERT_TRUE(d.has_value()) << v;
    EXPECT_EQ(d->index, 2u);
    EXPECT_EQ(d->striping.points(), s.points());
    EXPECT_EQ(d->striping.lcm(), 3);
  }
}

TEST(StripingTest, DeriveDropsSegmentsWithNothing) {
  // 0,1/2,3/4,1 with V = 1 gives (1,0,0): only the first has work.
  const Striping s = MustStripe("0,1/2,3/4,1");
  EXPECT_FALSE(s.Derive(1, 1).has_value());
  EXPECT_FALSE(s.Derive(2, 1).has_value());
  std::optional<Striping::Derived> d = s.Derive(0, 1);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->index, 0u);
  EXPECT_EQ(Points(d->striping.points()), "0,1");

  // 0,1/4,1/2,1 with V = 1 gives (0,0,1): the last becomes the first and only.
  const Striping quarters = MustStripe("0,1/4,1/2,1");
  EXPECT_FALSE(quarters.Derive(0, 1).has_value());
  EXPECT_FALSE(quarters.Derive(1, 1).has_value());
  d = quarters.Derive(2, 1);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->index, 0u);
  EXPECT_EQ(Points(d->striping.points()), "0,1");

  // Thirds with V = 2 give (1,1,0): the second is now the second of two halves.
  const Striping thirds = MustStripe("0,1/3,2/3,1");
  EXPECT_FALSE(thirds.Derive(2, 2).has_value());
  d = thirds.Derive(1, 2);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->index, 1u);
  EXPECT_EQ(Points(d->striping.points()), "0,1/2,1");
  EXPECT_THAT(d->striping.residues(1), ElementsAre(1));
}

TEST(StripingTest, DeriveAllowsDerivedLBeyondTheUserLimit) {
  // v above kMaxLcm: the derived L is v itself (a VU count), not refused.
  const Striping s = MustStripe("0,1/3,2/3,1");
  const int64_t v = Striping::kMaxLcm + 1;  // 1000001 = 101 * 9901, coprime to 3
  std::optional<Striping::Derived> d = s.Derive(0, v);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->striping.lcm(), v);
  int64_t sum = 0;
  for (size_t j = 0; j < 3; ++j) {
    EXPECT_EQ(d->striping.Scale(j, v), s.Scale(j, v));
    sum += d->striping.Scale(j, v + 17);
  }
  EXPECT_EQ(sum, v + 17);
}

// ------------------------------------------------------------------ tuples

TEST(ExecutionSegmentTupleTest, NothingGivenIsTheWholeTest) {
  absl::StatusOr<ExecutionTuple> t = MakeExecutionTuple(std::nullopt, {});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(t->IsWhole());
  EXPECT_EQ(t->index, 0u);
  EXPECT_EQ(t->segment(), (ExecutionSegment{Q(0), Q(1)}));
  EXPECT_TRUE(ExecutionTuple{}.IsWhole());
}

TEST(ExecutionSegmentTupleTest, SegmentAloneFillsTheGaps) {
  struct Case {
    ExecutionSegment segment;
    std::string points;
    size_t index;
  };
  for (const Case& c : std::vector<Case>{
           {{Q(1, 4), Q(1, 2)}, "0,1/4,1/2,1", 1},
           {{Q(0), Q(1, 2)}, "0,1/2,1", 0},
           {{Q(1, 2), Q(1)}, "0,1/2,1", 1},
           {{Q(0), Q(1)}, "0,1", 0},
       }) {
    absl::StatusOr<ExecutionTuple> t = MakeExecutionTuple(c.segment, {});
    ASSERT_TRUE(t.ok()) << c.segment.ToString() << ": " << t.status();
    EXPECT_EQ(Points(t->striping.points()), c.points) << c.segment.ToString();
    EXPECT_EQ(t->index, c.index) << c.segment.ToString();
    EXPECT_EQ(t->segment(), c.segment);
  }
}

TEST(ExecutionSegmentTupleTest, SequenceIsExtendedToZeroAndOne) {
  absl::StatusOr<ExecutionTuple> t =
      MakeExecutionTuple(ExecutionSegment{Q(1, 4), Q(1, 2)}, {Q(1, 4), Q(1, 2)});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(Points(t->striping.points()), "0,1/4,1/2,1");
  EXPECT_EQ(t->index, 1u);

  t = MakeExecutionTuple(ExecutionSegment{Q(3, 4), Q(1)}, {Q(0), Q(1, 2), Q(3, 4)});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(Points(t->striping.points()), "0,1/2,3/4,1");
  EXPECT_EQ(t->index, 2u);
  EXPECT_FALSE(t->IsWhole());

  // A segment of the sequence keeps the sequence's striping, not its own.
  t = MakeExecutionTuple(ExecutionSegment{Q(1, 2), Q(3, 4)}, {Q(0), Q(1, 2), Q(3, 4), Q(1)});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->striping.lcm(), 4);
  EXPECT_THAT(t->striping.residues(t->index), ElementsAre(1));
}

TEST(ExecutionSegmentTupleTest, SegmentMustBeOneOfTheSequences) {
  EXPECT_EQ(ErrorOf(MakeExecutionTuple(ExecutionSegment{Q(0), Q(1, 3)},
                                       {Q(0), Q(1, 2), Q(1)})
                        .status()),
            "execution segment 0:1/3 is not one of the segments of the sequence 0,1/2,1");
  // Without a segment the instance runs 0:1, which a split sequence lacks.
  EXPECT_EQ(ErrorOf(MakeExecutionTuple(std::nullopt, {Q(0), Q(1, 2), Q(1)}).status()),
            "execution segment 0:1 is not one of the segments of the sequence 0,1/2,1");
  absl::StatusOr<ExecutionTuple> t = MakeExecutionTuple(std::nullopt, {Q(0), Q(1)});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(t->IsWhole());
}

TEST(ExecutionSegmentTupleTest, PassesOnStripingErrorsNamingTheSegment) {
  EXPECT_EQ(ErrorOf(MakeExecutionTuple(ExecutionSegment{Q(0), Q(1, 1000003)}, {}).status()),
            "execution segment 0:1/1000003: invalid execution segment sequence 0,1/1000003,1: "
            "the sequence's least common denominator is too large (more than 1000000)");
  EXPECT_THAT(ErrorOf(MakeExecutionTuple(std::nullopt, {Q(0), Q(1, 2), Q(1, 3), Q(1)}).status()),
              HasSubstr("strictly increasing"));
}

// --------------------------------------------------------------- properties

// Spec §3.9 steps 1-3 written out literally, with exact rational comparisons
// and the O(L * segments) walk, to check the implementation against.
std::vector<std::vector<int64_t>> ReferenceResidues(const std::vector<Rational>& points) {
  const size_t n = points.size() - 1;
  int64_t lcm = 1;
  std::vector<Rational> lengths;
  for (size_t j = 0; j < n; ++j) {
    lengths.push_back(points[j + 1] - points[j]);
    lcm = std::lcm(lcm, lengths.back().denominator());
  }
  std::vector<int64_t> weights;
  for (const Rational& l : lengths) weights.push_back(boost::rational_cast<int64_t>(l * lcm));
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return weights[a] > weights[b]; });
  std::vector<int64_t> taken(n, 0);
  std::vector<std::vector<int64_t>> residues(n);
  for (int64_t i = 0; i < lcm; ++i) {
    for (size_t j : order) {
      if (taken[j] < weights[j] && Q(i) >= Q(taken[j] * lcm, weights[j])) {
        residues[j].push_back(i);
        ++taken[j];
        break;
      }
    }
  }
  return residues;
}

// Random sequences of 1..10 segments whose points have denominators up to 10
// (so L <= 2520), from a fixed seed.
std::vector<std::vector<Rational>> RandomSequences(int count) {
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<int> segments(1, 10);
  std::uniform_int_distribution<int64_t> denominators(2, 10);
  std::vector<std::vector<Rational>> out;
  while (static_cast<int>(out.size()) < count) {
    std::vector<Rational> points = {Q(0), Q(1)};
    const int want = segments(rng);
    for (int tries = 0; static_cast<int>(points.size()) < want + 1 && tries < 100; ++tries) {
      const int64_t den = denominators(rng);
      const int64_t num = std::uniform_int_distribution<int64_t>(1, den - 1)(rng);
      points.push_back(Q(num, den));
      std::sort(points.begin(), points.end());
      points.erase(std::unique(points.begin(), points.end()), points.end());
    }
    out.push_back(points);
  }
  // Always include the spec's own examples.
  out.push_back({Q(0), Q(1, 2), Q(3, 4), Q(1)});
  out.push_back({Q(0), Q(1, 4), Q(1, 2), Q(1)});
  out.push_back({Q(0), Q(1, 3), Q(2, 3), Q(1)});
  return out;
}

class StripingPropertyTest : public ::testing::Test {
 protected:
  static constexpr int kSequences = 300;
  static constexpr int64_t kMaxV = 200;
  std::vector<std::vector<Rational>> sequences_ = RandomSequences(kSequences);
};

TEST_F(StripingPropertyTest, MatchesTheLiteralAlgorithmOfTheSpec) {
  for (const std::vector<Rational>& points : sequences_) {
    SCOPED_TRACE(Points(points));
    absl::StatusOr<Striping> s = Striping::Make(points);
    ASSERT_TRUE(s.ok()) << s.status();
    const std::vector<std::vector<int64_t>> want = ReferenceResidues(points);
    ASSERT_EQ(s->size(), want.size());
    int64_t weight_sum = 0;
    for (size_t j = 0; j < s->size(); ++j) {
      EXPECT_EQ(s->residues(j), want[j]) << "segment " << j;
      EXPECT_EQ(Q(s->weight(j), s->lcm()), points[j + 1] - points[j]) << "segment " << j;
      weight_sum += s->weight(j);
    }
    EXPECT_EQ(weight_sum, s->lcm());
  }
}

TEST_F(StripingPropertyTest, ScaleAddsUpAndNeverDecreases) {
  for (const std::vector<Rational>& points : sequences_) {
    SCOPED_TRACE(Points(points));
    absl::StatusOr<Striping> s = Striping::Make(points);
    ASSERT_TRUE(s.ok()) << s.status();
    std::vector<int64_t> previous(s->size(), 0);
    for (int64_t v = 0; v <= kMaxV; ++v) {
      int64_t sum = 0;
      for (size_t j = 0; j < s->size(); ++j) {
        const int64_t got = s->Scale(j, v);
        EXPECT_GE(got, previous[j]) << "segment " << j << " at V=" << v;
        // Straight from the definition: the owned indices below v.
        int64_t owned = 0;
        for (int64_t k = 0; k < v; ++k) owned += s->Owns(j, k) ? 1 : 0;
        EXPECT_EQ(got, owned) << "segment " << j << " at V=" << v;
        previous[j] = got;
        sum += got;
      }
      ASSERT_EQ(sum, v) << "V=" << v;
    }
  }
}

TEST_F(StripingPropertyTest, EachIndexHasOneOwnerAndGlobalIndexEnumeratesThem) {
  for (const std::vector<Rational>& points : sequences_) {
    SCOPED_TRACE(Points(points));
    absl::StatusOr<Striping> s = Striping::Make(points);
    ASSERT_TRUE(s.ok()) << s.status();
    const int64_t bound = 2 * s->lcm() + 50;
    std::vector<std::vector<int64_t>> owned(s->size());
    for (int64_t k = 0; k < bound; ++k) {
      int owners = 0;
      for (size_t j = 0; j < s->size(); ++j) {
        if (s->Owns(j, k)) {
          ++owners;
          owned[j].push_back(k);
        }
      }
      ASSERT_EQ(owners, 1) << "k=" << k;
    }
    for (size_t j = 0; j < s->size(); ++j) {
      std::vector<int64_t> enumerated;
      for (int64_t n = 0; static_cast<size_t>(n) < owned[j].size(); ++n) {
        enumerated.push_back(s->GlobalIndex(j, n));
      }
      EXPECT_EQ(enumerated, owned[j]) << "segment " << j;
      // And the next one lies beyond the bound.
      EXPECT_GE(s->GlobalIndex(j, static_cast<int64_t>(owned[j].size())), bound);
    }
  }
}

TEST_F(StripingPropertyTest, SpreadsEachSegmentEvenly) {
  for (const std::vector<Rational>& points : sequences_) {
    SCOPED_TRACE(Points(points));
    absl::StatusOr<Striping> s = Striping::Make(points);
    ASSERT_TRUE(s.ok()) << s.status();
    const int64_t L = s->lcm();
    for (size_t j = 0; j < s->size(); ++j) {
      const int64_t w = s->weight(j);
      ASSERT_EQ(static_cast<int64_t>(s->residues(j).size()), w);
      // prefix[k] = owned indices below k, over two periods.
      std::vector<int64_t> prefix(2 * L + 1, 0);
      for (int64_t k = 0; k < 2 * L; ++k) prefix[k + 1] = prefix[k] + (s->Owns(j, k) ? 1 : 0);
      for (int64_t start = 0; start < L; ++start) {
        ASSERT_EQ(prefix[start + L] - prefix[start], w) << "segment " << j << " start " << start;
      }
      // Never ahead of its share: the c-th residue is at least c * L / w
      // (step 3's rule), so Scale(j, V) <= ceil(V * w / L).
      for (int64_t c = 0; c < w; ++c) {
        EXPECT_GE(s->residues(j)[c] * w, c * L) << "segment " << j << " residue " << c;
      }
      for (int64_t v = 0; v <= kMaxV; ++v) {
        EXPECT_LE(s->Scale(j, v), (v * w + L - 1) / L) << "segment " << j << " V=" << v;
      }
    }
  }
}

TEST_F(StripingPropertyTest, DerivedStripingsAddUpForEveryBase) {
  for (const std::vector<Rational>& points : sequences_) {
    SCOPED_TRACE(Points(points));
    absl::StatusOr<Striping> s = Striping::Make(points);
    ASSERT_TRUE(s.ok()) << s.status();
    for (int64_t v = 1; v <= 60; ++v) {
      SCOPED_TRACE(::testing::Message() << "V=" << v);
      std::vector<Striping::Derived> derived;
      std::vector<size_t> original;
      for (size_t j = 0; j < s->size(); ++j) {
        std::optional<Striping::Derived> d = s->Derive(j, v);
        // Only the segments with nothing of the first v are dropped.
        ASSERT_EQ(d.has_value(), s->Scale(j, v) > 0 || v % s->lcm() == 0) << "segment " << j;
        if (!d.has_value()) continue;
        // All survivors agree on one derived sequence, in the original order:
        // the index is the number of survivors before this one.
        ASSERT_EQ(d->index, derived.size()) << "segment " << j;
        ASSERT_LT(d->index, d->striping.size()) << "segment " << j;
        if (!derived.empty()) {
          ASSERT_EQ(d->striping.points(), derived.front().striping.points());
        }
        // The derived share of the first v items is the original share.
        EXPECT_EQ(d->striping.Scale(d->index, v), s->Scale(j, v)) << "segment " << j;
        derived.push_back(*std::move(d));
        original.push_back(j);
      }
      ASSERT_FALSE(derived.empty());
      ASSERT_EQ(derived.size(), derived.front().striping.size());
      for (int64_t iterations = v; iterations <= v + kMaxV; ++iterations) {
        int64_t sum = 0;
        for (const Striping::Derived& d : derived) sum += d.striping.Scale(d.index, iterations);
        ASSERT_EQ(sum, iterations) << "iterations=" << iterations;
      }
    }
  }
}

}  // namespace
}  // namespace barrage

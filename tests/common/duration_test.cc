#include "common/duration.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>

namespace barrage {
namespace {

struct GoodDuration {
  std::string text;
  absl::Duration want;
};

void PrintTo(const GoodDuration& d, std::ostream* os) { *os << '"' << d.text << '"'; }

class ParseDurationGoodTest : public ::testing::TestWithParam<GoodDuration> {};

TEST_P(ParseDurationGoodTest, Parses) {
  const absl::StatusOr<absl::Duration> got = ParseDuration(GetParam().text);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, GetParam().want) << absl::FormatDuration(*got);
}

using absl::Hours;
using absl::Microseconds;
using absl::Milliseconds;
using absl::Minutes;
using absl::Nanoseconds;
using absl::Seconds;

INSTANTIATE_TEST_SUITE_P(
    Table, ParseDurationGoodTest,
    ::testing::Values(
        // Bare numbers are milliseconds (k6), fractions allowed.
        GoodDuration{"500", Milliseconds(500)}, GoodDuration{"0", absl::ZeroDuration()},
        GoodDuration{"400.5", Microseconds(400500)}, GoodDuration{".5", Microseconds(500)},
        GoodDuration{"-250", Milliseconds(-250)}, GoodDuration{"+7", Milliseconds(7)},
        // Go units.
        GoodDuration{"10s", Seconds(10)}, GoodDuration{"1.5s", Milliseconds(1500)},
        GoodDuration{"300ms", Milliseconds(300)}, GoodDuration{"2us", Microseconds(2)},
        GoodDuration{"2µs", Microseconds(2)}, GoodDuration{"2\xCE\xBCs", Microseconds(2)},
        GoodDuration{"42ns", Nanoseconds(42)}, GoodDuration{"3m", Minutes(3)},
        GoodDuration{"2h", Hours(2)}, GoodDuration{"1h3s", Hours(1) + Seconds(3)},
        GoodDuration{"1h3m0.5s", Hours(1) + Minutes(3) + Milliseconds(500)},
        GoodDuration{"1.5h", Minutes(90)}, GoodDuration{".5s", Milliseconds(500)},
        GoodDuration{"5.s", Seconds(5)}, GoodDuration{"1s1s", Seconds(2)},
        GoodDuration{"-1m30s", -Seconds(90)}, GoodDuration{"+3s", Seconds(3)},
        GoodDuration{"0s", absl::ZeroDuration()}, GoodDuration{"1.0000000001s", Seconds(1)},
        // Leading days.
        GoodDuration{"1d", Hours(24)}, GoodDuration{"2d12h", Hours(60)},
        GoodDuration{"1d0.5h", Hours(24) + Minutes(30)}, GoodDuration{"-2d12h", -Hours(60)}));

class ParseDurationBadTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ParseDurationBadTest, FailsNamingTheText) {
  const absl::StatusOr<absl::Duration> got = ParseDuration(GetParam());
  ASSERT_FALSE(got.ok()) << absl::FormatDuration(*got);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(got.status().message(), "invalid duration \"" + GetParam() + "\"");
}

INSTANTIATE_TEST_SUITE_P(Table, ParseDurationBadTest,
                         ::testing::Values("", "-", "+", ".", ".s", "s", "10x", "10 s", " 10s",
                                           "10s ", "1.5.3s", "1sec", "1h-3m", "ms10", "1e3",
                                           "1e3ms", "d", "1.5d", "1dd", "1h2d", "2d-12h", "2d 3h",
                                           "abc", "0x10s", "1,5s", "10S", "10000000000h",
                                           "9223372036854775808ns", "106752d"));

TEST(ParseDurationTest, LimitsAreGoDurations) {
  EXPECT_EQ(*ParseDuration("9223372036854775807ns"), Nanoseconds(INT64_MAX));
  EXPECT_EQ(*ParseDuration("-9223372036854775808ns"), Nanoseconds(INT64_MIN));
}

TEST(DurationFromMillisTest, KeepsFractions) {
  EXPECT_EQ(DurationFromMillis(400.5), Microseconds(400500));
  EXPECT_EQ(DurationFromMillis(0), absl::ZeroDuration());
  EXPECT_EQ(DurationFromMillis(-2), Milliseconds(-2));
}

TEST(FormatGoDurationTest, MatchesGoString) {
  EXPECT_EQ(FormatGoDuration(absl::ZeroDuration()), "0s");
  EXPECT_EQ(FormatGoDuration(Seconds(10)), "10s");
  EXPECT_EQ(FormatGoDuration(Milliseconds(1500)), "1.5s");
  EXPECT_EQ(FormatGoDuration(Milliseconds(500)), "500ms");
  EXPECT_EQ(FormatGoDuration(Microseconds(1200)), "1.2ms");
  EXPECT_EQ(FormatGoDuration(Seconds(90)), "1m30s");
  EXPECT_EQ(FormatGoDuration(Hours(1)), "1h0m0s");
  EXPECT_EQ(FormatGoDuration(Minutes(10)), "10m0s");
  EXPECT_EQ(FormatGoDuration(Microseconds(2)), "2µs");
  EXPECT_EQ(FormatGoDuration(Nanoseconds(5)), "5ns");
  EXPECT_EQ(FormatGoDuration(Nanoseconds(1500)), "1.5µs");
  EXPECT_EQ(FormatGoDuration(Hours(60)), "60h0m0s");
  EXPECT_EQ(FormatGoDuration(Hours(1) + Nanoseconds(1)), "1h0m0.000000001s");
  EXPECT_EQ(FormatGoDuration(-Seconds(90)), "-1m30s");
  EXPECT_EQ(FormatGoDuration(-Milliseconds(5)), "-5ms");
  EXPECT_EQ(FormatGoDuration(Nanoseconds(INT64_MIN)), "-2562047h47m16.854775808s");
}

TEST(FormatGoDurationTest, RoundTripsThroughParse) {
  for (absl::Duration d : {Seconds(10), Milliseconds(1500), Seconds(3723), Nanoseconds(999),
                           Microseconds(17), -Minutes(5)}) {
    EXPECT_EQ(*ParseDuration(FormatGoDuration(d)), d) << FormatGoDuration(d);
  }
}

}  // namespace
}  // namespace barrage

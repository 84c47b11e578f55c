#include "controller/format.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace barrage::controller {
namespace {

using metrics::MetricType;
using metrics::ValueType;

struct DurationCase {
  double ms;
  const char* unit;
  const char* want;
};

TEST(FormatDurationMsTest, FollowsK6RulesForEveryUnitRange) {
  const DurationCase cases[] = {
      {0, "", "0s"},
      {0.0005, "", "500ns"},
      {0.0000015, "", "1ns"},          // nanoseconds are truncated
      {0.512, "", "512µs"},
      {0.0123456, "", "12.34µs"},      // truncated, not rounded to 12.35
      {0.5, "", "500µs"},
      {1.0899, "", "1.08ms"},          // truncated, not rounded to 1.09
      {501.3, "", "501.3ms"},          // trailing zero removed
      {500.61, "", "500.61ms"},
      {999.999, "", "999.99ms"},
      {1000, "", "1s"},
      {2500, "", "2.5s"},
      {59999, "", "59.99s"},
      {60000, "", "1m0s"},
      {90500, "", "1m30s"},            // whole seconds past a minute
      {3599999, "", "59m59s"},
      {3600000, "", "1h0m0s"},
      {3725000, "", "1h2m5s"},
      {90000000, "", "25h0m0s"},
      {1, "ms", "1.00ms"},
      {1500, "s", "1.50s"},
      {0.5, "us", "500.00µs"},
      {0.125, "ms", "0.13ms"},         // JS toFixed rounds an exact tie up
      {1.005, "ms", "1.00ms"},         // 1.005 is 1.00499999... in binary
      {2.14, "bogus", "2.14ms"},       // unknown unit: the generic form
  };
  for (const DurationCase& c : cases) {
    EXPECT_EQ(FormatDurationMs(c.ms, c.unit), c.want) << c.ms << " unit '" << c.unit << "'";
  }
}

TEST(FormatDataTest, UsesBase1000WithOneDecimalUnderTen) {
  EXPECT_EQ(FormatData(0), "0 B");
  EXPECT_EQ(FormatData(5), "5 B");
  EXPECT_EQ(FormatData(9.5), "9.5 B");
  EXPECT_EQ(FormatData(10), "10 B");
  EXPECT_EQ(FormatData(999), "999 B");
  EXPECT_EQ(FormatData(1000), "1.0 kB");
  EXPECT_EQ(FormatData(4900), "4.9 kB");
  EXPECT_EQ(FormatData(4949), "4.9 kB");
  EXPECT_EQ(FormatData(4950), "5.0 kB");  // rounded half up
  EXPECT_EQ(FormatData(61000), "61 kB");
  EXPECT_EQ(FormatData(6069.37), "6.1 kB");
  EXPECT_EQ(FormatData(519000), "519 kB");
  EXPECT_EQ(FormatData(999999), "1000 kB");  // as k6: the unit is chosen before rounding
  EXPECT_EQ(FormatData(1e6), "1.0 MB");
  EXPECT_EQ(FormatData(61e6), "61 MB");
  EXPECT_EQ(FormatData(2.5e9), "2.5 GB");
}

TEST(FormatNumberTest, AtMostSixDecimalsWithoutTrailingZeros) {
  EXPECT_EQ(FormatNumber(200), "200");
  EXPECT_EQ(FormatNumber(12.5), "12.5");
  EXPECT_EQ(FormatNumber(200 / 10.05047), "19.899567");
  EXPECT_EQ(FormatNumber(0.1 + 0.2), "0.3");
  EXPECT_EQ(FormatNumber(1234567.1234567), "1234567.123457");
  EXPECT_EQ(FormatNumber(1e-7), "0");
  EXPECT_EQ(FormatNumber(-1e-7), "0");  // "-0.000000" reads back as -0, written "0"
  EXPECT_EQ(FormatNumber(-2.25), "-2.25");
  EXPECT_EQ(FormatNumber(0.0000015), "0.000002");
}

TEST(FormatPercentTest, TruncatesToTwoDecimals) {
  EXPECT_EQ(FormatPercent(0.995), "99.50%");
  EXPECT_EQ(FormatPercent(0.99999), "99.99%");  // never rounds up to 100.00%
  EXPECT_EQ(FormatPercent(1), "100.00%");
  EXPECT_EQ(FormatPercent(0), "0.00%");
  EXPECT_EQ(FormatPercent(0.005), "0.50%");
  EXPECT_EQ(FormatPercent(2.0 / 3), "66.66%");
}

TEST(HumanizeValueTest, PicksTheFormatFromTypeAndContents) {
  EXPECT_EQ(HumanizeValue(0.5, MetricType::kRate, ValueType::kDefault, ""), "50.00%");
  EXPECT_EQ(HumanizeValue(1.5, MetricType::kTrend, ValueType::kTime, ""), "1.5ms");
  EXPECT_EQ(HumanizeValue(1.5, MetricType::kTrend, ValueType::kTime, "s"), "0.00s");
  EXPECT_EQ(HumanizeValue(4900, MetricType::kCounter, ValueType::kData, "ms"), "4.9 kB");
  EXPECT_EQ(HumanizeValue(4900, MetricType::kGauge, ValueType::kDefault, ""), "4900");
}

TEST(JsToFixedTest, MatchesJavaScript) {
  EXPECT_EQ(JsToFixed(2.5, 0), "3");  // printf's "%.0f" gives "2"
  EXPECT_EQ(JsToFixed(0.5, 0), "1");
  EXPECT_EQ(JsToFixed(1.45, 1), "1.4");  // 1.45 is 1.4499999... in binary
  EXPECT_EQ(JsToFixed(9.995, 2), "9.99");
  EXPECT_EQ(JsToFixed(9.999, 2), "10.00");
  EXPECT_EQ(JsToFixed(0.0078125, 6), "0.007813");  // exact tie
  EXPECT_EQ(JsToFixed(-0.001, 2), "-0.00");
  EXPECT_EQ(JsToFixed(-0.0, 2), "0.00");
  EXPECT_EQ(JsToFixed(-1.5, 0), "-2");
  EXPECT_EQ(JsToFixed(123, 2), "123.00");
}

TEST(JsNumberToStringTest, MatchesJavaScript) {
  EXPECT_EQ(JsNumberToString(0), "0");
  EXPECT_EQ(JsNumberToString(-0.0), "0");
  EXPECT_EQ(JsNumberToString(100), "100");
  EXPECT_EQ(JsNumberToString(-1.5), "-1.5");
  EXPECT_EQ(JsNumberToString(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(JsNumberToString(0.000001), "0.000001");
  EXPECT_EQ(JsNumberToString(1e-7), "1e-7");
  EXPECT_EQ(JsNumberToString(1.5e-7), "1.5e-7");
  EXPECT_EQ(JsNumberToString(1e21), "1e+21");
  EXPECT_EQ(JsNumberToString(123456789012345680000.0), "123456789012345680000");
}

TEST(DisplayWidthTest, CountsCodePointsAndSkipsEscapes) {
  EXPECT_EQ(DisplayWidth("abc"), 3u);
  EXPECT_EQ(DisplayWidth("512µs"), 5u);
  EXPECT_EQ(DisplayWidth("✓ █ ↳"), 5u);
  EXPECT_EQ(DisplayWidth("\x1b[36mab\x1b[0m"), 2u);
  EXPECT_EQ(DisplayWidth("\x1b[2;37m...:\x1b[0m"), 4u);
}

TEST(LocaleLessTest, SortsLikeJavaScriptLocaleCompare) {
  std::vector<std::string> names = {"vus_max", "Zeta", "a1", "a_b", "vus", "alpha",
                                    "data_sent", "data_received", "Abc", "abc"};
  std::sort(names.begin(), names.end(),
            [](const std::string& a, const std::string& b) { return LocaleLess(a, b); });
  EXPECT_EQ(names, (std::vector<std::string>{"a_b", "a1", "abc", "Abc", "alpha", "data_received",
                                             "data_sent", "vus", "vus_max", "Zeta"}));
}

}  // namespace
}  // namespace barrage::controller

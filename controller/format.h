// Value formatting for what people read: the end-of-test summary (spec
// §4.4), progress lines and threshold messages. Each function reproduces
// the JavaScript k6 runs for its summary, number for number, including its
// quirks (truncation where k6 truncates, rounding half up where JS's
// toFixed rounds), because users compare our output with k6's.
#ifndef BARRAGE_CONTROLLER_FORMAT_H_
#define BARRAGE_CONTROLLER_FORMAT_H_

#include <string>
#include <string_view>

#include "common/metrics/metric.h"

namespace barrage::controller {

// A duration given in milliseconds. With time_unit "" (or an unknown
// unit): 0 -> "0s"; under 1 µs "Nns" (truncated); under 1 ms "µs" and under
// 1 s "ms", both truncated to 2 decimals without trailing zeros
// ("512µs", "1.08ms"); under a minute "s" the same way ("2.5s"); then
// "XmYs" / "XhYmZs" in whole seconds ("1m30s", "2h0m5s"). With time_unit
// "s", "ms" or "us" the value is written in that unit with exactly 2
// decimals, rounded ("1.00ms", "0.50s", "1500.00µs").
std::string FormatDurationMs(double ms, const std::string& time_unit);

// Bytes, base 1000: under 10 bytes "N B" (the number as JS prints it);
// otherwise one decimal under 10 units and none above, rounded ("4.9 kB",
// "519 kB", "61 MB").
std::string FormatData(double bytes);

// A plain number: at most 6 decimals, rounded, trailing zeros removed
// ("12.5", "19.899567", "200").
std::string FormatNumber(double value);

// A Rate (fraction of non-zero samples) as a percentage truncated, not
// rounded, to 2 decimals: 0.99999 -> "99.99%", 0.995 -> "99.50%".
std::string FormatPercent(double fraction);

// A metric value as k6's humanizeValue: a Rate as FormatPercent, else by
// what the metric contains (time: FormatDurationMs, data: FormatData,
// default: FormatNumber).
std::string HumanizeValue(double value, metrics::MetricType type, metrics::ValueType contains,
                          const std::string& time_unit);

// JavaScript's Number.prototype.toFixed(digits) for |value| < 1e21:
// rounds half up on the exact binary value (2.5 -> "3", where printf gives
// "2"), and "-0.00" stays as JS writes it.
std::string JsToFixed(double value, int digits);

// JavaScript's String(number) for the numbers summaries print (shortest
// digits that read back the same, no exponent between 1e-6 and 1e21).
std::string JsNumberToString(double value);

// Columns a string takes on a terminal: code points, ANSI escapes skipped.
// ("µ", "✓" and "█" take one column, as in k6's strWidth.)
size_t DisplayWidth(std::string_view text);

// k6 sorts names with JavaScript's localeCompare (ICU root collation).
// This is that order for the characters metric, group and scenario names
// use: whitespace, then punctuation, then digits, then letters without
// regard to case; on a tie, lower case first; then byte order.
bool LocaleLess(std::string_view a, std::string_view b);

}  // namespace barrage::controller

#endif  // BARRAGE_CONTROLLER_FORMAT_H_

#include "controller/format.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace barrage::controller {
namespace {

// k6's toFixedNoTrailingZeros: parseFloat(val.toFixed(prec)).toString().
std::string FixedNoTrailingZeros(double value, int digits) {
  return JsNumberToString(std::strtod(JsToFixed(value, digits).c_str(), nullptr));
}

// k6's toFixedNoTrailingZerosTrunc: truncates first, so 1.999 ms is 1.99ms,
// never 2ms.
std::string TruncNoTrailingZeros(double value, int digits) {
  const double mult = std::pow(10.0, digits);
  return FixedNoTrailingZeros(std::trunc(mult * value) / mult, digits);
}

std::string GenericDuration(double ms) {
  if (ms == 0) return "0s";
  if (ms < 0.001) return JsNumberToString(std::trunc(ms * 1000000)) + "ns";
  if (ms < 1) return TruncNoTrailingZeros(ms * 1000, 2) + "µs";
  if (ms < 1000) return TruncNoTrailingZeros(ms, 2) + "ms";
  std::string out = TruncNoTrailingZeros(std::fmod(ms, 60000) / 1000, ms > 60000 ? 0 : 2) + "s";
  double rem = std::trunc(ms / 60000);
  if (rem < 1) return out;
  out = JsNumberToString(std::fmod(rem, 60)) + "m" + out;
  rem = std::trunc(rem / 60);
  if (rem < 1) return out;
  return JsNumberToString(rem) + "h" + out;
}

// Collation classes in ICU root order; see LocaleLess.
int PrimaryWeight(unsigned char c) {
  static constexpr std::string_view kPunctuation = "_-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$";
  if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') return c;
  if (size_t pos = kPunctuation.find(static_cast<char>(c)); pos != std::string_view::npos) {
    return 100 + static_cast<int>(pos);
  }
  if (c >= '0' && c <= '9') return 200 + (c - '0');
  if (c >= 'a' && c <= 'z') return 300 + (c - 'a');
  if (c >= 'A' && c <= 'Z') return 300 + (c - 'A');
  return 400 + c;  // other ASCII controls and UTF-8 bytes: after letters, by byte
}

}  // namespace

std::string JsToFixed(double value, int digits) {
  if (std::isnan(value)) return "NaN";
  if (std::abs(value) >= 1e21 || std::isinf(value)) return JsNumberToString(value);
  // glibc prints the exact decimal expansion of a double given enough
  // digits (a double has at most 1074 fractional digits), so the digit
  // after the last one kept decides the rounding exactly: half up, as JS.
  std::vector<char> buf(1200);
  std::snprintf(buf.data(), buf.size(), "%.1100f", std::abs(value));
  std::string text(buf.data());
  const size_t point = text.find('.');
  std::string kept = text.substr(0, point + 1 + digits);
  const bool round_up = text[point + 1 + digits] >= '5';
  if (digits == 0) kept.pop_back();  // the point
  if (round_up) {
    int i = static_cast<int>(kept.size()) - 1;
    for (; i >= 0; --i) {
      if (kept[i] == '.') continue;
      if (kept[i] == '9') {
        kept[i] = '0';
      } else {
        ++kept[i];
        break;
      }
    }
    if (i < 0) kept.insert(kept.begin(), '1');
  }
  // JS keeps the sign of anything below zero, even when it rounds to zero
  // ((-0.001).toFixed(2) is "-0.00"), but not of -0.
  return value < 0 ? "-" + kept : kept;
}

std::string JsNumberToString(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  if (value == 0) return "0";
  // Shortest round-trip digits and exponent, then laid out by ECMAScript's
  // Number::toString rules.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), std::abs(value), std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  const size_t e_pos = sci.find('e');
  std::string digits;
  for (size_t i = 0; i < e_pos; ++i) {
    if (sci[i] != '.') digits.push_back(sci[i]);
  }
  const int k = static_cast<int>(digits.size());
  const int n = std::atoi(sci.c_str() + e_pos + 1) + 1;  // value = 0.digits * 10^n
  std::string out = value < 0 ? "-" : "";
  if (k <= n && n <= 21) {
    out += digits + std::string(n - k, '0');
  } else if (0 < n && n <= 21) {
    out += digits.substr(0, n) + "." + digits.substr(n);
  } else if (-6 < n && n <= 0) {
    out += "0." + std::string(-n, '0') + digits;
  } else {
    const int exp = n - 1;
    out += digits.substr(0, 1);
    if (k > 1) out += "." + digits.substr(1);
    out += exp < 0 ? "e-" : "e+";
    out += std::to_string(std::abs(exp));
  }
  return out;
}

std::string FormatDurationMs(double ms, const std::string& time_unit) {
  if (time_unit == "s") return JsToFixed(ms * 0.001, 2) + "s";
  if (time_unit == "ms") return JsToFixed(ms, 2) + "ms";
  if (time_unit == "us") return JsToFixed(ms * 1000, 2) + "µs";
  return GenericDuration(ms);
}

std::string FormatData(double bytes) {
  static constexpr const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
  if (bytes < 10) return JsNumberToString(bytes) + " B";
  // The same floating-point steps as k6's humanizeBytes (a log ratio, not
  // a loop of divisions), so that values at a unit's edge land where k6
  // puts them: 999999 bytes is "1000 kB" in k6, not "1.0 MB".
  int e = static_cast<int>(std::floor(std::log(bytes) / std::log(1000.0)));
  if (e > 8) e = 8;
  const double val = std::floor(bytes / std::pow(1000.0, e) * 10 + 0.5) / 10;
  return JsToFixed(val, val < 10 ? 1 : 0) + " " + kUnits[e];
}

std::string FormatNumber(double value) { return FixedNoTrailingZeros(value, 6); }

std::string FormatPercent(double fraction) {
  return JsToFixed(std::trunc(fraction * 100 * 100) / 100, 2) + "%";
}

std::string HumanizeValue(double value, metrics::MetricType type, metrics::ValueType contains,
                          const std::string& time_unit) {
  if (type == metrics::MetricType::kRate) return FormatPercent(value);
  switch (contains) {
    case metrics::ValueType::kData:
      return FormatData(value);
    case metrics::ValueType::kTime:
      return FormatDurationMs(value, time_unit);
    case metrics::ValueType::kDefault:
      break;
  }
  return FormatNumber(value);
}

size_t DisplayWidth(std::string_view text) {
  size_t width = 0;
  bool in_escape = false;
  bool in_csi = false;
  for (unsigned char c : text) {
    if (c == 0x1b) {
      in_escape = true;
      continue;
    }
    if (in_escape) {
      if (!in_csi && c == '[') {
        in_csi = true;
      } else if ((in_csi && c >= 0x40 && c <= 0x7e) || (!in_csi && c >= 0x40 && c <= 0x5f)) {
        in_escape = in_csi = false;
      }
      continue;
    }
    if ((c & 0xC0) != 0x80) ++width;  // count lead bytes only
  }
  return width;
}

bool LocaleLess(std::string_view a, std::string_view b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const int wa = PrimaryWeight(a[i]);
    const int wb = PrimaryWeight(b[i]);
    if (wa != wb) return wa < wb;
  }
  if (a.size() != b.size()) return a.size() < b.size();
  for (size_t i = 0; i < n; ++i) {
    const bool lower_a = a[i] >= 'a' && a[i] <= 'z';
    const bool lower_b = b[i] >= 'a' && b[i] <= 'z';
    if (lower_a != lower_b) return lower_a;
  }
  return a < b;
}

}  // namespace barrage::controller

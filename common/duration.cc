#include "common/duration.h"

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string_view>

namespace barrage {
namespace {

// Debian's abseil has its own string_view, so absl::StrCat takes no
// std::string_view; this joins them instead.
std::string Cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view part : parts) out.append(part);
  return out;
}

constexpr uint64_t kMaxNanos = uint64_t{1} << 63;  // |int64 min|

absl::Status InvalidDuration(std::string_view text) {
  return absl::InvalidArgumentError(Cat({"invalid duration \"", text, "\""}));
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

uint64_t UnitNanos(std::string_view unit) {
  if (unit == "ns") return 1;
  // "µs" as U+00B5 (micro sign) or U+03BC (Greek mu), as Go accepts both.
  if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") return 1'000;
  if (unit == "ms") return 1'000'000;
  if (unit == "s") return 1'000'000'000;
  if (unit == "m") return 60'000'000'000;
  if (unit == "h") return 3'600'000'000'000;
  return 0;
}

// Go's time.ParseDuration on an unsigned body ("1h3m0.5s"), in nanoseconds,
// with Go's arithmetic: integer parts exact, a fraction scaled through a
// double and truncated. false on bad syntax or overflow past 2^63 ns.
bool ParseGoBody(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  uint64_t total = 0;
  while (!s.empty()) {
    // [0-9]*
    uint64_t whole = 0;
    size_t i = 0;
    for (; i < s.size() && IsDigit(s[i]); ++i) {
      if (whole > (kMaxNanos - 1) / 10) return false;
      whole = whole * 10 + static_cast<uint64_t>(s[i] - '0');
      if (whole > kMaxNanos) return false;
    }
    const bool pre = i > 0;
    s.remove_prefix(i);
    // (\.[0-9]*)?  Digits beyond uint64 precision are read and ignored.
    uint64_t frac = 0;
    double scale = 1;
    bool post = false;
    if (!s.empty() && s[0] == '.') {
      s.remove_prefix(1);
      bool overflow = false;
      for (i = 0; i < s.size() && IsDigit(s[i]); ++i) {
        if (overflow) continue;
        if (frac > (kMaxNanos - 1) / 10) {
          overflow = true;
          continue;
        }
        frac = frac * 10 + static_cast<uint64_t>(s[i] - '0');
        scale *= 10;
      }
      post = i > 0;
      s.remove_prefix(i);
    }
    if (!pre && !post) return false;
    // The unit: everything up to the next digit or '.'.
    for (i = 0; i < s.size() && s[i] != '.' && !IsDigit(s[i]); ++i) {
    }
    const uint64_t unit = UnitNanos(s.substr(0, i));
    if (unit == 0) return false;  // missing or unknown unit
    s.remove_prefix(i);
    if (whole > kMaxNanos / unit) return false;
    uint64_t v = whole * unit;
    if (frac > 0) {
      v += static_cast<uint64_t>(static_cast<double>(frac) * (static_cast<double>(unit) / scale));
      if (v > kMaxNanos) return false;
    }
    total += v;
    if (total > kMaxNanos) return false;
  }
  *out = total;
  return true;
}

// [+-]? digits with at most one '.', at least one digit: a bare number,
// which k6 reads as milliseconds.
bool IsBareNumber(std::string_view s) {
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) s.remove_prefix(1);
  bool digit = false;
  bool dot = false;
  for (char c : s) {
    if (IsDigit(c)) {
      digit = true;
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      return false;
    }
  }
  return digit;
}

absl::StatusOr<absl::Duration> Signed(bool negative, uint64_t nanos, std::string_view text) {
  if (negative) {
    if (nanos == kMaxNanos) return absl::Nanoseconds(INT64_MIN);
    return absl::Nanoseconds(-static_cast<int64_t>(nanos));
  }
  if (nanos >= kMaxNanos) return InvalidDuration(text);
  return absl::Nanoseconds(static_cast<int64_t>(nanos));
}

}  // namespace

absl::StatusOr<absl::Duration> ParseDuration(std::string_view text) {
  std::string_view s = text;
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  uint64_t nanos = 0;
  if (IsBareNumber(s)) {
    // "500" and "400.5" are milliseconds (k6), read with the same
    // arithmetic as "500ms".
    if (!ParseGoBody(Cat({s, "ms"}), &nanos)) return InvalidDuration(text);
    return Signed(negative, nanos, text);
  }
  // k6's extension: a whole number of days first, "2d12h".
  if (size_t d = s.find('d'); d != std::string_view::npos) {
    std::string_view days_text = s.substr(0, d);
    if (days_text.empty()) return InvalidDuration(text);
    uint64_t days = 0;
    for (char c : days_text) {
      if (!IsDigit(c)) return InvalidDuration(text);
      days = days * 10 + static_cast<uint64_t>(c - '0');
      if (days > kMaxNanos / 86'400'000'000'000) return InvalidDuration(text);
    }
    nanos = days * 86'400'000'000'000;
    s.remove_prefix(d + 1);
    if (s.empty()) return Signed(negative, nanos, text);
  }
  uint64_t rest = 0;
  if (!ParseGoBody(s, &rest)) return InvalidDuration(text);
  nanos += rest;
  if (nanos > kMaxNanos) return InvalidDuration(text);
  return Signed(negative, nanos, text);
}

absl::Duration DurationFromMillis(double ms) {
  if (std::isnan(ms)) return absl::ZeroDuration();
  return absl::Milliseconds(ms);
}

namespace {

// Go's fmtFrac: v / 10^prec's fraction, trailing zeros and a bare '.' left
// out. Prepends to out; returns v / 10^prec.
uint64_t PrependFraction(uint64_t v, int prec, std::string& out) {
  std::string digits;
  bool print = false;
  for (int i = 0; i < prec; ++i) {
    const char digit = static_cast<char>('0' + v % 10);
    print = print || digit != '0';
    if (print) digits.insert(digits.begin(), digit);
    v /= 10;
  }
  if (print) out.insert(0, "." + digits);
  return v;
}

}  // namespace

std::string FormatGoDuration(absl::Duration d) {
  // Go's Duration is int64 nanoseconds; absl saturates to that range.
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  const bool negative = ns < 0;
  uint64_t u = negative ? uint64_t{0} - static_cast<uint64_t>(ns) : static_cast<uint64_t>(ns);
  std::string out;
  if (u < 1'000'000'000) {
    // Under a second Go switches unit: "1.2ms", "2µs", "5ns".
    if (u == 0) return "0s";
    int prec;
    if (u < 1'000) {
      prec = 0;
      out = "ns";
    } else if (u < 1'000'000) {
      prec = 3;
      out = "\xC2\xB5s";  // U+00B5, as Go prints it
    } else {
      prec = 6;
      out = "ms";
    }
    u = PrependFraction(u, prec, out);
    out.insert(0, std::to_string(u));
  } else {
    out = "s";
    u = PrependFraction(u, 9, out);  // u is now whole seconds
    out.insert(0, std::to_string(u % 60));
    u /= 60;  // minutes
    if (u > 0) {
      out.insert(0, "m");
      out.insert(0, std::to_string(u % 60));
      u /= 60;  // hours
      if (u > 0) {
        out.insert(0, "h");
        out.insert(0, std::to_string(u));
      }
    }
  }
  if (negative) out.insert(0, "-");
  return out;
}

}  // namespace barrage

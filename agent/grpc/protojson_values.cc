#include "agent/grpc/protojson_values.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace barrage::agent::grpc_client {
namespace {

// "123", "123.500", "123.000500", "123.000000500": protojson trims the
// nanoseconds to 0, 3, 6 or 9 digits.
void AppendNanos(int32_t nanos, std::string* out) {
  if (nanos == 0) return;
  char buf[16];
  int digits = 9;
  if (nanos % 1000000 == 0) {
    nanos /= 1000000;
    digits = 3;
  } else if (nanos % 1000 == 0) {
    nanos /= 1000;
    digits = 6;
  }
  std::snprintf(buf, sizeof(buf), ".%0*d", digits, nanos);
  out->append(buf);
}

template <typename T>
void AppendFloat(T v, std::string* out) {
  if (std::isnan(v)) {
    out->append("\"NaN\"");
    return;
  }
  if (std::isinf(v)) {
    out->append(v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    return;
  }
  char buf[64];
  T abs = std::fabs(v);
  bool exp = abs != 0 && (abs < static_cast<T>(1e-6) || abs >= static_cast<T>(1e21));
  auto res = std::to_chars(buf, buf + sizeof(buf), v, exp ? std::chars_format::scientific : std::chars_format::fixed);
  size_t n = res.ptr - buf;
  if (exp && n >= 4 && buf[n - 4] == 'e' && buf[n - 3] == '-' && buf[n - 2] == '0') {
    buf[n - 2] = buf[n - 1];
    --n;
  }
  out->append(buf, n);
}

}  // namespace

bool IsJsonNumber(std::string_view s) {
  size_t i = 0;
  auto digit = [&](size_t j) { return j < s.size() && s[j] >= '0' && s[j] <= '9'; };
  if (i < s.size() && s[i] == '-') ++i;
  if (!digit(i)) return false;
  if (s[i] == '0') {
    ++i;
  } else {
    while (digit(i)) ++i;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  return i == s.size();
}

absl::Status ParseJsonInteger(std::string_view text, bool* negative, uint64_t* magnitude) {
  if (!IsJsonNumber(text)) return absl::InvalidArgumentError("invalid number");
  size_t i = 0;
  *negative = text[0] == '-';
  if (*negative) ++i;
  std::string digits;
  int64_t exp = 0;
  for (; i < text.size() && absl::ascii_isdigit(text[i]); ++i) digits.push_back(text[i]);
  if (i < text.size() && text[i] == '.') {
    for (++i; i < text.size() && absl::ascii_isdigit(text[i]); ++i, --exp) digits.push_back(text[i]);
  }
  if (i < text.size()) {  // the exponent
    ++i;
    bool eneg = text[i] == '-';
    if (text[i] == '+' || text[i] == '-') ++i;
    int64_t e = 0;
    for (; i < text.size(); ++i) e = std::min<int64_t>(e * 10 + (text[i] - '0'), 100000);
    exp += eneg ? -e : e;
  }
  size_t nz = digits.find_first_not_of('0');
  if (nz == std::string::npos) {
    *magnitude = 0;
    return absl::OkStatus();
  }
  digits.erase(0, nz);
  if (exp < 0) {
    if (static_cast<uint64_t>(-exp) >= digits.size() + 1 ||
        digits.find_first_not_of('0', digits.size() - static_cast<size_t>(-exp)) != std::string::npos) {
      return absl::InvalidArgumentError("not an integer");
    }
    digits.resize(digits.size() - static_cast<size_t>(-exp));
  } else if (exp > 0) {
    if (digits.size() + exp > 20) return absl::OutOfRangeError("out of range");
    digits.append(static_cast<size_t>(exp), '0');
  }
  if (digits.size() > 20) return absl::OutOfRangeError("out of range");
  auto res = std::from_chars(digits.data(), digits.data() + digits.size(), *magnitude);
  if (res.ec != std::errc()) return absl::OutOfRangeError("out of range");
  return absl::OkStatus();
}

void AppendJsonFloat(float v, std::string* out) { AppendFloat(v, out); }
void AppendJsonFloat(double v, std::string* out) { AppendFloat(v, out); }

absl::Status FormatTimestamp(int64_t seconds, int32_t nanos, std::string* out) {
  if (seconds < kMinTimestampSeconds || seconds > kMaxTimestampSeconds || nanos < 0 || nanos > 999999999) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid google.protobuf.Timestamp value {seconds:", seconds, " nanos:", nanos, "}"));
  }
  out->append(absl::FormatTime("%Y-%m-%dT%H:%M:%S", absl::FromUnixSeconds(seconds), absl::UTCTimeZone()));
  AppendNanos(nanos, out);
  out->push_back('Z');
  return absl::OkStatus();
}

absl::Status FormatDuration(int64_t seconds, int32_t nanos, std::string* out) {
  if (seconds < -kMaxDurationSeconds || seconds > kMaxDurationSeconds || nanos <= -1000000000 ||
      nanos >= 1000000000 || (seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid google.protobuf.Duration value {seconds:", seconds, " nanos:", nanos, "}"));
  }
  if (seconds < 0 || nanos < 0) out->push_back('-');
  absl::StrAppend(out, static_cast<uint64_t>(seconds < 0 ? -seconds : seconds));
  AppendNanos(nanos < 0 ? -nanos : nanos, out);
  out->push_back('s');
  return absl::OkStatus();
}

bool ParseTimestamp(std::string_view text, int64_t* seconds, int32_t* nanos, std::string* why) {
  absl::Time t;
  if (!absl::ParseTime(absl::RFC3339_full, absl::string_view(text.data(), text.size()), &t, why)) return false;
  *seconds = absl::ToUnixSeconds(t);
  *nanos = static_cast<int32_t>(absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(*seconds)));
  if (*seconds < kMinTimestampSeconds || *seconds > kMaxTimestampSeconds) {
    *why = "out of range";
    return false;
  }
  return true;
}

bool ParseDuration(std::string_view s, int64_t* seconds_out, int32_t* nanos_out, std::string* why) {
  auto fail = [why](const char* reason) {
    *why = reason;
    return false;
  };
  if (s.empty() || s.back() != 's') return fail("expected a string like \"1.5s\"");
  s.remove_suffix(1);
  bool neg = !s.empty() && s[0] == '-';
  if (neg) s.remove_prefix(1);
  std::string_view whole = s, frac;
  if (size_t dot = s.find('.'); dot != std::string_view::npos) {
    whole = s.substr(0, dot);
    frac = s.substr(dot + 1);
    if (frac.empty() || frac.size() > 9) return fail("invalid fraction");
  }
  if (whole.empty() && frac.empty()) return fail("no number");
  int64_t seconds = 0;
  if (!whole.empty()) {
    auto res = std::from_chars(whole.data(), whole.data() + whole.size(), seconds);
    if (res.ec != std::errc() || res.ptr != whole.data() + whole.size()) return fail("invalid seconds");
  }
  int32_t nanos = 0;
  for (size_t i = 0; i < 9; ++i) {
    char c = i < frac.size() ? frac[i] : '0';
    if (!absl::ascii_isdigit(c)) return fail("invalid fraction");
    nanos = nanos * 10 + (c - '0');
  }
  if (seconds > kMaxDurationSeconds) return fail("out of range");
  *seconds_out = neg ? -seconds : seconds;
  *nanos_out = neg ? -nanos : nanos;
  return true;
}

std::string FieldMaskPathToJson(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  bool upper = false;
  for (char c : path) {
    if (c == '_') {
      upper = true;
    } else if (upper) {
      out.push_back(absl::ascii_toupper(static_cast<unsigned char>(c)));
      upper = false;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool FieldMaskPathFromJson(std::string_view path, std::string* out) {
  out->clear();
  for (char c : path) {
    if (c == '_') return false;
    if (absl::ascii_isupper(static_cast<unsigned char>(c))) {
      out->push_back('_');
      out->push_back(absl::ascii_tolower(static_cast<unsigned char>(c)));
    } else {
      out->push_back(c);
    }
  }
  return true;
}

}  // namespace barrage::agent::grpc_client

#include "common/threshold.h"

#include <array>
#include <charconv>
#include <initializer_list>
#include <string>
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

using metrics::MetricType;

std::string_view TrimSpaces(std::string_view s) {
  const char* kSpace = " \t\r\n";
  const size_t first = s.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  const size_t last = s.find_last_not_of(kSpace);
  return s.substr(first, last - first + 1);
}

// Spaces, then any quotes around the text (k6: strings.Trim(s, `"'`)),
// then the spaces that were inside the quotes.
std::string_view TrimName(std::string_view s) {
  s = TrimSpaces(s);
  while (!s.empty() && (s.front() == '"' || s.front() == '\'')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == '"' || s.back() == '\'')) s.remove_suffix(1);
  return TrimSpaces(s);
}

absl::Status BadKey(std::string_view key, std::string_view why) {
  return absl::InvalidArgumentError(Cat({"invalid threshold key \"", key, "\": ", why}));
}

absl::Status BadExpression(std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(Cat({"invalid threshold expression \"", text, "\": ", why}));
}

// A decimal float: [+-]? (d+ [. d*] | . d+) ([eE] [+-]? d+)?. No inf, nan
// or hex, which strtod would take. Sets *out on success.
bool ParseDecimal(std::string_view s, double* out) {
  size_t i = 0;
  const size_t n = s.size();
  auto digits = [&] {
    const size_t start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') ++i;
    return i - start;
  };
  if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
  size_t mantissa_digits = digits();
  if (i < n && s[i] == '.') {
    ++i;
    mantissa_digits += digits();
  }
  if (mantissa_digits == 0) return false;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (digits() == 0) return false;
  }
  if (i != n) return false;
  // from_chars takes no leading '+'.
  std::string_view body = s;
  if (!body.empty() && body[0] == '+') body.remove_prefix(1);
  const auto result = std::from_chars(body.data(), body.data() + body.size(), *out);
  // Out of range (1e999) is an error too: k6's ParseFloat would fail.
  return result.ec == std::errc() && result.ptr == body.data() + body.size();
}

std::string_view SupportedAggregations(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "count, rate";
    case MetricType::kGauge:
      return "value";
    case MetricType::kRate:
      return "rate";
    case MetricType::kTrend:
      return "avg, min, max, med, p(N)";
  }
  return "";
}

bool IsPercentile(const std::string& aggregation) { return aggregation.rfind("p(", 0) == 0; }

}  // namespace

absl::StatusOr<ThresholdKey> ParseThresholdKey(std::string_view key) {
  // k6's metrics.ParseMetricName for the shape (the first '{' and the last
  // '}' delimit the tags, so values may hold braces, '$' or ':', as in
  // "name:http://${}.com"), then Metric.AddSubmetric for the tags.
  ThresholdKey result;
  const std::string_view trimmed = TrimSpaces(key);
  result.source = std::string(trimmed);
  const size_t open = trimmed.find('{');
  const size_t close = trimmed.rfind('}');
  if (open == std::string_view::npos && close == std::string_view::npos) {
    result.metric = std::string(TrimName(trimmed));
    if (result.metric.empty()) return BadKey(key, "no metric name");
    return result;
  }
  if (open == std::string_view::npos || close == std::string_view::npos) {
    return BadKey(trimmed, "unmatched opening/close curly brace");
  }
  if (close < open) return BadKey(trimmed, "closing curly brace appears before opening one");
  if (close != trimmed.size() - 1) {
    return BadKey(trimmed, Cat({"text after the closing curly brace: \"", trimmed.substr(close + 1), "\""}));
  }
  result.metric = std::string(TrimName(trimmed.substr(0, open)));
  if (result.metric.empty()) return BadKey(trimmed, "no metric name");
  std::string_view tags = trimmed.substr(open + 1, close - open - 1);
  // Each "key:value", split at the first ':' (values may hold more, as in
  // url:127.0.0.1:50051/...); a part without a value is malformed, as in k6.
  while (true) {
    const size_t comma = tags.find(',');
    const std::string_view part = tags.substr(0, comma);
    const size_t colon = part.find(':');
    if (colon == std::string_view::npos || colon + 1 == part.size()) {
      return BadKey(trimmed, Cat({"tag expression \"", TrimSpaces(part), "\" is malformed (expected key:value)"}));
    }
    const std::string_view tag_key = TrimName(part.substr(0, colon));
    if (tag_key.empty()) {
      return BadKey(trimmed, Cat({"tag expression \"", TrimSpaces(part), "\" is malformed (expected key:value)"}));
    }
    result.filter[std::string(tag_key)] = std::string(TrimName(part.substr(colon + 1)));
    if (comma == std::string_view::npos) break;
    tags.remove_prefix(comma + 1);
  }
  return result;
}

absl::StatusOr<ThresholdExpr> ParseThresholdExpression(std::string_view text) {
  // k6 tries the operators in this order and splits at the first match, so
  // "<=" wins over "<" and "===" over "==".
  static constexpr std::array<std::pair<std::string_view, ThresholdOp>, 7> kOps = {{
      {">=", ThresholdOp::kGreaterEqual},
      {"<=", ThresholdOp::kLessEqual},
      {">", ThresholdOp::kGreater},
      {"<", ThresholdOp::kLess},
      {"===", ThresholdOp::kEqual},
      {"!=", ThresholdOp::kNotEqual},
      {"==", ThresholdOp::kEqual},
  }};
  ThresholdExpr expr;
  expr.source = std::string(text);
  std::string_view lhs;
  std::string_view rhs;
  bool found = false;
  for (const auto& [token, op] : kOps) {
    const size_t at = text.find(token);
    if (at == std::string_view::npos) continue;
    lhs = TrimSpaces(text.substr(0, at));
    rhs = TrimSpaces(text.substr(at + token.size()));
    expr.op = op;
    found = true;
    break;
  }
  if (!found) {
    return BadExpression(text,
                         "expected \"<aggregation> <op> <number>\" with op one of "
                         "<, <=, >, >=, ==, ===, !=");
  }
  if (lhs == "avg" || lhs == "min" || lhs == "max" || lhs == "med" || lhs == "count" ||
      lhs == "rate" || lhs == "value") {
    expr.aggregation = std::string(lhs);
  } else if (lhs.size() > 3 && lhs.substr(0, 2) == "p(" && lhs.back() == ')') {
    double percent = 0;
    const std::string_view number = lhs.substr(2, lhs.size() - 3);
    if (!ParseDecimal(number, &percent) || percent < 0 || percent > 100) {
      return BadExpression(text,
                           Cat({"percentile \"", number, "\" is not a number from 0 to 100"}));
    }
    expr.aggregation = std::string(lhs);
    expr.percentile = percent / 100;
  } else {
    return BadExpression(text, Cat({"unknown aggregation method \"", lhs, "\""}));
  }
  if (!ParseDecimal(rhs, &expr.value)) {
    return BadExpression(text, Cat({"\"", rhs, "\" is not a number"}));
  }
  return expr;
}

absl::Status ValidateAggregation(const ThresholdExpr& expr, MetricType type) {
  const std::string& a = expr.aggregation;
  bool ok = false;
  switch (type) {
    case MetricType::kCounter:
      ok = a == "count" || a == "rate";
      break;
    case MetricType::kGauge:
      ok = a == "value";
      break;
    case MetricType::kRate:
      ok = a == "rate";
      break;
    case MetricType::kTrend:
      ok = a == "avg" || a == "min" || a == "max" || a == "med" || IsPercentile(a);
      break;
  }
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      Cat({"aggregation method '", a, "' is not supported for metric type '",
           metrics::MetricTypeName(type), "', supported: ", SupportedAggregations(type)}));
}

std::optional<double> AggregationValue(const ThresholdExpr& expr, const metrics::Aggregate* agg,
                                       MetricType type, absl::Duration test_duration, bool final) {
  if (ValidateAggregation(expr, type).ok() == false) return std::nullopt;
  const bool empty = agg == nullptr || agg->count() == 0;
  if (empty) {
    // §3.7.5: a Rate without samples has no value (its threshold passes);
    // other empty metrics are skipped during the run and read as 0 at the
    // end, so "p(95)<200" passes on a Trend that never got a sample.
    if (type == MetricType::kRate || !final) return std::nullopt;
    return 0.0;
  }
  const std::string& a = expr.aggregation;
  switch (type) {
    case MetricType::kCounter: {
      if (a == "count") return agg->sum();
      const double seconds = absl::ToDoubleSeconds(test_duration);
      return seconds > 0 ? agg->sum() / seconds : 0.0;
    }
    case MetricType::kGauge:
      return agg->last();
    case MetricType::kRate:
      return static_cast<double>(agg->passes()) / static_cast<double>(agg->count());
    case MetricType::kTrend: {
      const metrics::Histogram& h = agg->histogram();
      if (a == "avg") return h.Mean();
      if (a == "min") return h.min();
      if (a == "max") return h.max();
      if (a == "med") return h.Quantile(0.5);
      return h.Quantile(expr.percentile);
    }
  }
  return std::nullopt;
}

bool ThresholdPasses(const ThresholdExpr& expr, double value) {
  switch (expr.op) {
    case ThresholdOp::kLess:
      return value < expr.value;
    case ThresholdOp::kLessEqual:
      return value <= expr.value;
    case ThresholdOp::kGreater:
      return value > expr.value;
    case ThresholdOp::kGreaterEqual:
      return value >= expr.value;
    case ThresholdOp::kEqual:
      return value == expr.value;
    case ThresholdOp::kNotEqual:
      return value != expr.value;
  }
  return false;
}

}  // namespace barrage

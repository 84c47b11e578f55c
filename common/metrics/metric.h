// The metric model shared by agents and the controller: what a metric is
// (k6's four types and what its values contain) and the tag set of a series.
#ifndef BARRAGE_COMMON_METRICS_METRIC_H_
#define BARRAGE_COMMON_METRICS_METRIC_H_

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace barrage::metrics {

enum class MetricType { kCounter, kGauge, kRate, kTrend };
// What the values mean, as k6's "contains": plain numbers, milliseconds, bytes.
enum class ValueType { kDefault, kTime, kData };

std::string_view MetricTypeName(MetricType type);   // "counter", "gauge", "rate", "trend"
std::string_view ValueTypeName(ValueType type);     // "default", "time", "data"

struct MetricDef {
  std::string name;
  MetricType type = MetricType::kCounter;
  ValueType contains = ValueType::kDefault;
  friend bool operator==(const MetricDef&, const MetricDef&) = default;
};

// A series' tags, sorted by key so that equal sets compare and hash equal.
// Values are strings, as in k6 (numbers and booleans are stringified by the
// JS side before they get here).
using TagSet = std::map<std::string, std::string>;

// "k=v,k2=v2" with ',' '=' and '\\' escaped: a compact, unique key for maps
// keyed by tag set, and the wire form in control.proto.
std::string EncodeTagSet(const TagSet& tags);
TagSet DecodeTagSet(std::string_view encoded);

}  // namespace barrage::metrics

#endif  // BARRAGE_COMMON_METRICS_METRIC_H_

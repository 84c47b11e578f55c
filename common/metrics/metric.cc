#include "common/metrics/metric.h"

namespace barrage::metrics {

std::string_view MetricTypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kRate:
      return "rate";
    case MetricType::kTrend:
      return "trend";
  }
  return "unknown";
}

std::string_view ValueTypeName(ValueType type) {
  switch (type) {
    case ValueType::kDefault:
      return "default";
    case ValueType::kTime:
      return "time";
    case ValueType::kData:
      return "data";
  }
  return "unknown";
}

namespace {

void AppendEscaped(std::string_view text, std::string& out) {
  for (char c : text) {
    if (c == ',' || c == '=' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
}

}  // namespace

std::string EncodeTagSet(const TagSet& tags) {
  std::string out;
  bool first = true;
  for (const auto& [key, value] : tags) {
    if (!first) out.push_back(',');
    first = false;
    AppendEscaped(key, out);
    out.push_back('=');
    AppendEscaped(value, out);
  }
  return out;
}

TagSet DecodeTagSet(std::string_view encoded) {
  TagSet tags;
  if (encoded.empty()) return tags;
  // Every pair has an '=' (even {"": ""} encodes as "="), so an empty input
  // is the only empty set. Malformed input (from a peer, never from
  // EncodeTagSet) is read leniently: a trailing '\' is dropped and a pair
  // without '=' gets an empty value.
  std::string key;
  std::string value;
  std::string* current = &key;
  auto flush = [&] {
    tags[std::move(key)] = std::move(value);
    key.clear();
    value.clear();
    current = &key;
  };
  for (size_t i = 0; i < encoded.size(); ++i) {
    char c = encoded[i];
    if (c == '\\') {
      if (i + 1 < encoded.size()) current->push_back(encoded[++i]);
    } else if (c == '=' && current == &key) {
      current = &value;
    } else if (c == ',') {
      flush();
    } else {
      current->push_back(c);
    }
  }
  flush();
  return tags;
}

}  // namespace barrage::metrics

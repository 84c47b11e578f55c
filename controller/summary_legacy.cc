// k6 v1.x's `--summary-mode=legacy` text: a port of k6's
// internal/js/summary-legacy.js (the pre-1.0 layout), line for line, over
// the same data handleSummary() gets. Kept apart from summary.cc's
// renderer because the two layouts share nothing but value formatting.
#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "controller/format.h"
#include "controller/summary.h"

namespace barrage::controller {
namespace {

using Json = nlohmann::json;

constexpr char kGroupPrefix[] = "█";
constexpr char kDetailsPrefix[] = "↳";
constexpr char kSuccMark[] = "✓";
constexpr char kFailMark[] = "✗";
constexpr const char* kGreen = "32";
constexpr const char* kRed = "31";
constexpr const char* kCyan = "36";
constexpr const char* kFaint = "2";

class LegacyRenderer {
 public:
  LegacyRenderer(const Json& data, bool color) : data_(data), color_(color) {
    const Json& options = data.value("options", Json::object());
    if (options.contains("summaryTrendStats") && options["summaryTrendStats"].is_array()) {
      for (const Json& s : options["summaryTrendStats"]) trend_stats_.push_back(s.get<std::string>());
    }
    if (options.contains("summaryTimeUnit") && options["summaryTimeUnit"].is_string()) {
      time_unit_ = options["summaryTimeUnit"].get<std::string>();
    }
  }

  std::string Render() {
    std::vector<std::string> lines;
    // generateTextSummary: indent ' ' (k6's default option), groups at
    // indent + 4, metrics at indent + 2.
    SummarizeGroup("     ", data_.value("root_group", Json::object()), lines);
    SummarizeMetrics("   ", lines);
    std::string out;
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i > 0) out += '\n';
      out += lines[i];
    }
    return out;
  }

 private:
  std::string Decorate(const std::string& text, const char* color, const char* extra = nullptr) const {
    if (!color_) return text;
    std::string out = std::string("\x1b[") + color;
    if (extra != nullptr) out += std::string(";") + extra;
    return out + "m" + text + "\x1b[0m";
  }

  static double Num(const Json& v) { return v.is_number() ? v.get<double>() : 0; }

  std::string SummarizeCheck(const std::string& indent, const Json& check) const {
    const double passes = Num(check.value("passes", Json(0)));
    const double fails = Num(check.value("fails", Json(0)));
    const std::string name = check.value("name", "");
    if (fails == 0) return Decorate(indent + kSuccMark + " " + name, kGreen);
    const double percent = std::floor((100 * passes) / (passes + fails));
    return Decorate(indent + kFailMark + " " + name + "\n" + indent + " " + kDetailsPrefix + "  " +
                        JsNumberToString(percent) + "% — " + kSuccMark + " " + JsNumberToString(passes) + " / " +
                        kFailMark + " " + JsNumberToString(fails),
                    kRed);
  }

  void SummarizeGroup(std::string indent, const Json& group, std::vector<std::string>& out) const {
    const std::string name = group.value("name", "");
    if (!name.empty()) {
      out.push_back(indent + kGroupPrefix + " " + name + "\n");
      indent += "  ";
    }
    const Json& checks = group.value("checks", Json::array());
    for (const Json& check : checks) out.push_back(SummarizeCheck(indent, check));
    if (!checks.empty()) out.push_back("");
    for (const Json& sub : group.value("groups", Json::array())) SummarizeGroup(indent, sub, out);
  }

  static std::string DisplayName(const std::string& name) {
    const size_t brace = name.find('{');
    if (brace == std::string::npos) return name;
    return "{ " + name.substr(brace + 1, name.size() - brace - 2) + " }";
  }
  static std::string IndentFor(const std::string& name) { return name.find('{') != std::string::npos ? "  " : ""; }

  std::string Humanize(double value, const Json& metric) const {
    return HumanizeValue(value, TypeOf(metric), ContainsOf(metric), time_unit_);
  }
  static metrics::MetricType TypeOf(const Json& metric) {
    const std::string t = metric.value("type", "");
    if (t == "counter") return metrics::MetricType::kCounter;
    if (t == "gauge") return metrics::MetricType::kGauge;
    if (t == "rate") return metrics::MetricType::kRate;
    return metrics::MetricType::kTrend;
  }
  static metrics::ValueType ContainsOf(const Json& metric) {
    const std::string c = metric.value("contains", "");
    if (c == "time") return metrics::ValueType::kTime;
    if (c == "data") return metrics::ValueType::kData;
    return metrics::ValueType::kDefault;
  }

  // nonTrendMetricValueForSum: the main value, then the extras.
  std::vector<std::string> NonTrendValues(const Json& metric) const {
    const Json& v = metric.value("values", Json::object());
    auto get = [&](const char* key) { return Num(v.value(key, Json(0))); };
    const std::string type = metric.value("type", "");
    if (type == "counter") return {Humanize(get("count"), metric), Humanize(get("rate"), metric) + "/s"};
    if (type == "gauge") {
      return {Humanize(get("value"), metric), "min=" + Humanize(get("min"), metric),
              "max=" + Humanize(get("max"), metric)};
    }
    if (type == "rate") {
      return {Humanize(get("rate"), metric),
              JsNumberToString(get("passes")) + " out of " + JsNumberToString(get("passes") + get("fails"))};
    }
    return {"[no data]"};
  }

  void SummarizeMetrics(const std::string& indent, std::vector<std::string>& out) const {
    const Json& metrics = data_.value("metrics", Json::object());
    std::vector<std::string> names;
    size_t name_len_max = 0;
    std::map<std::string, std::vector<std::string>> trend_cols;
    std::vector<size_t> trend_col_max(trend_stats_.size(), 0);
    std::map<std::string, std::string> values;
    size_t value_max = 0;
    std::map<std::string, std::vector<std::string>> extras;
    std::vector<size_t> extra_max(2, 0);
    for (auto it = metrics.begin(); it != metrics.end(); ++it) {
      const std::string& name = it.key();
      const Json& metric = *it;
      names.push_back(name);
      name_len_max = std::max(name_len_max, DisplayWidth(IndentFor(name) + DisplayName(name)));
      if (metric.value("type", "") == "trend") {
        std::vector<std::string> cols;
        const Json& v = metric.value("values", Json::object());
        for (size_t i = 0; i < trend_stats_.size(); ++i) {
          const double value = Num(v.value(trend_stats_[i], Json(0)));
          std::string text = trend_stats_[i] == "count" ? JsNumberToString(value) : Humanize(value, metric);
          trend_col_max[i] = std::max(trend_col_max[i], DisplayWidth(text));
          cols.push_back(std::move(text));
        }
        trend_cols[name] = std::move(cols);
        continue;
      }
      std::vector<std::string> parts = NonTrendValues(metric);
      values[name] = parts[0];
      value_max = std::max(value_max, DisplayWidth(parts[0]));
      for (size_t i = 1; i < parts.size(); ++i) {
        if (extra_max.size() < i) extra_max.resize(i, 0);
        extra_max[i - 1] = std::max(extra_max[i - 1], DisplayWidth(parts[i]));
      }
      extras[name] = std::vector<std::string>(parts.begin() + 1, parts.end());
    }
    // Sorted by parent name, sub-metrics right after their parent.
    std::stable_sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
      const std::string pa = a.substr(0, a.find('{'));
      const std::string pb = b.substr(0, b.find('{'));
      if (pa != pb) return LocaleLess(pa, pb);
      return LocaleLess(a.substr(pa.size()), b.substr(pb.size()));
    });
    auto pad = [](size_t n) { return std::string(n, ' '); };
    for (const std::string& name : names) {
      const Json& metric = metrics[name];
      std::string data;
      if (auto t = trend_cols.find(name); t != trend_cols.end()) {
        for (size_t i = 0; i < t->second.size(); ++i) {
          if (i > 0) data += ' ';
          data += trend_stats_[i] + "=" + Decorate(t->second[i], kCyan) +
                  pad(trend_col_max[i] - DisplayWidth(t->second[i]));
        }
      } else {
        data = Decorate(values[name], kCyan) + pad(value_max - DisplayWidth(values[name]));
        const std::vector<std::string>& ex = extras[name];
        if (ex.size() == 1) {
          data += " " + Decorate(ex[0], kCyan, kFaint);
        } else if (ex.size() > 1) {
          for (size_t i = 0; i < ex.size(); ++i) {
            data += " " + Decorate(ex[i], kCyan, kFaint) + pad(extra_max[i] - DisplayWidth(ex[i]));
          }
        }
      }
      std::string mark = " ";
      const char* mark_color = nullptr;
      if (metric.contains("thresholds")) {
        mark = kSuccMark;
        mark_color = kGreen;
        for (const auto& [source, threshold] : metric["thresholds"].items()) {
          if (!threshold.value("ok", true)) {
            mark = kFailMark;
            mark_color = kRed;
            break;
          }
        }
      }
      const std::string fmt_indent = IndentFor(name);
      const std::string display = DisplayName(name);
      const size_t dots = name_len_max + 3 - DisplayWidth(display) - DisplayWidth(fmt_indent);
      out.push_back(indent + fmt_indent + (mark_color ? Decorate(mark, mark_color) : mark) + " " + display +
                    Decorate(std::string(dots, '.') + ":", kFaint) + " " + data);
    }
  }

  const Json& data_;
  const bool color_;
  std::vector<std::string> trend_stats_;
  std::string time_unit_;
};

}  // namespace

std::string RenderLegacySummary(const nlohmann::json& data, bool color) {
  return LegacyRenderer(data, color).Render();
}

}  // namespace barrage::controller

#include "controller/summary.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <memory>
#include <set>
#include <utility>

namespace barrage::controller {
namespace {

using metrics::Aggregate;
using metrics::MetricType;
using metrics::ValueType;

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
constexpr char kChecks[] = "checks";
constexpr char kGroupDuration[] = "group_duration";

// ---------------------------------------------------------------- values

std::string TagOr(const metrics::TagSet& tags, const std::string& key, const std::string& def) {
  auto it = tags.find(key);
  return it == tags.end() ? def : it->second;
}

// "::a::b" -> {"a", "b"}; "" -> {}.
std::vector<std::string> SplitGroupPath(const std::string& path) {
  std::vector<std::string> names;
  if (path.empty()) return names;
  size_t start = path.rfind("::", 0) == 0 ? 2 : 0;
  while (true) {
    size_t end = path.find("::", start);
    names.push_back(path.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 2;
  }
  return names;
}

// The value of one trend stat, as k6's resolvers compute it. Unknown stats
// (the options were validated before) read as 0.
double TrendStat(const Aggregate& agg, const std::string& stat) {
  const metrics::Histogram& h = agg.histogram();
  if (stat == "avg") return h.Mean();
  if (stat == "min") return agg.min();
  if (stat == "max") return agg.max();
  if (stat == "med") return h.Quantile(0.5);
  if (stat == "count") return static_cast<double>(agg.count());
  if (stat.size() > 3 && stat.rfind("p(", 0) == 0 && stat.back() == ')') {
    const std::string number = stat.substr(2, stat.size() - 3);
    char* end = nullptr;
    const double p = std::strtod(number.c_str(), &end);
    if (end != number.c_str() && *end == '\0') return h.Quantile(p / 100);
  }
  return 0;
}

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

double PerSecond(double count, absl::Duration d) {
  const double s = Seconds(d);
  return s > 0 ? count / s : 0;
}

MetricSummary Summarize(const std::string& name, const metrics::MetricDef& def,
                        const Aggregate& agg, const std::vector<std::string>& trend_stats,
                        absl::Duration duration) {
  MetricSummary m;
  m.name = name;
  m.type = def.type;
  m.contains = def.contains;
  switch (def.type) {
    case MetricType::kCounter:
      m.values["count"] = agg.sum();
      m.values["rate"] = PerSecond(agg.sum(), duration);
      break;
    case MetricType::kGauge:
      m.values["value"] = agg.last();
      m.values["min"] = agg.min();
      m.values["max"] = agg.max();
      break;
    case MetricType::kRate:
      m.values["rate"] =
          agg.count() ? static_cast<double>(agg.passes()) / static_cast<double>(agg.count()) : 0;
      m.values["passes"] = static_cast<double>(agg.passes());
      m.values["fails"] = static_cast<double>(agg.count() - agg.passes());
      break;
    case MetricType::kTrend:
      for (const std::string& stat : trend_stats) m.values[stat] = TrendStat(agg, stat);
      break;
  }
  return m;
}

// What a key names, its aggregate over the whole run (empty when nothing
// matched), and its definition. nullopt when the metric is not defined.
struct Resolved {
  const metrics::MetricDef* def;
  Aggregate agg;
};
std::optional<Resolved> Resolve(const metrics::MetricStore& store, const std::string& metric,
                                const metrics::TagSet& filter) {
  const metrics::MetricDef* def = store.Find(metric);
  if (def == nullptr) return std::nullopt;
  std::optional<Aggregate> agg = store.Query(metric, filter);
  return Resolved{def, agg ? *agg : Aggregate(def->type)};
}

// The metrics both the summary and the JSON list, by name: those with a
// sample, then those named by thresholds (sub-metrics keep their key).
std::map<std::string, MetricSummary> ListedMetrics(const SummaryInput& in) {
  std::map<std::string, MetricSummary> out;
  const metrics::MetricStore& store = *in.store;
  for (const auto& [name, def] : store.defs()) {
    std::optional<Aggregate> agg = store.Query(name);
    if (agg && agg->count() > 0) {
      out.emplace(name, Summarize(name, def, *agg, in.trend_stats, in.test_run_duration));
    }
  }
  for (const ThresholdSet& set : in.thresholds) {
    // A sub-metric's threshold lists its parent too, even without samples,
    // as k6's metrics engine marks both observed.
    for (const bool sub : {false, true}) {
      if (sub && set.filter.empty()) continue;
      const std::string name = sub ? set.key : set.metric;
      if (out.count(name)) continue;
      if (std::optional<Resolved> r = Resolve(store, set.metric, sub ? set.filter : metrics::TagSet{})) {
        out.emplace(name, Summarize(name, *r->def, r->agg, in.trend_stats, in.test_run_duration));
      }
    }
  }
  return out;
}

// ------------------------------------------------------- checks and groups

// Passes and fails of checks by name, ordered by first use.
class CheckTally {
 public:
  void Add(const std::string& name, const Aggregate& agg) {
    Entry& e = entries_[name];
    e.passes += agg.passes();
    e.fails += agg.count() - agg.passes();
    e.first_seen = std::min(e.first_seen, agg.first_seen_ns());
  }
  bool empty() const { return entries_.empty(); }
  std::vector<CheckSummary> Ordered() const {
    std::vector<std::pair<int64_t, CheckSummary>> rows;
    for (const auto& [name, e] : entries_) rows.push_back({e.first_seen, {name, e.passes, e.fails}});
    // Ties (one interval's aggregates share a timestamp granularity) fall
    // back to the name so the order never depends on hashing.
    std::stable_sort(rows.begin(), rows.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<CheckSummary> out;
    for (auto& row : rows) out.push_back(std::move(row.second));
    return out;
  }

 private:
  struct Entry {
    uint64_t passes = 0;
    uint64_t fails = 0;
    int64_t first_seen = kNever;
  };
  std::map<std::string, Entry> entries_;
};

// A group or scenario of the full-mode summary, filled from series.
struct SectionNode {
  std::map<std::string, Aggregate> metrics;
  CheckTally checks;
  std::map<std::string, SectionNode> groups;

  void Add(const std::string& metric, const metrics::TagSet& tags, const Aggregate& agg) {
    auto [it, inserted] = metrics.try_emplace(metric, agg);
    if (!inserted) it->second.Merge(agg);
    if (metric == kChecks) {
      auto check = tags.find("check");
      if (check != tags.end()) checks.Add(check->second, agg);
    }
  }
};

SummaryGroup ToSummaryGroup(const SectionNode& node, const metrics::MetricStore& store,
                            const SummaryInput& in) {
  SummaryGroup g;
  for (const auto& [name, agg] : node.metrics) {
    const metrics::MetricDef* def = store.Find(name);
    if (def == nullptr) continue;
    g.metrics.push_back(Summarize(name, *def, agg, in.trend_stats, in.test_run_duration));
    if (name == kChecks) {
      ChecksSummary c;
      c.total = agg.count();
      c.passes = agg.passes();
      c.total_rate = PerSecond(static_cast<double>(agg.count()), in.test_run_duration);
      c.checks = node.checks.Ordered();
      g.checks = std::move(c);
    }
  }
  for (const auto& [name, child] : node.groups) g.groups.emplace(name, ToSummaryGroup(child, store, in));
  return g;
}

// The group tree of the JSON outputs: groups seen on `checks` and
// `group_duration`, children and checks in order of first use.
struct GroupNode {
  std::string name;
  std::string path;
  int64_t first_seen = kNever;
  std::map<std::string, std::unique_ptr<GroupNode>> children;
  CheckTally checks;

  GroupNode* Child(const std::string& child_name) {
    auto& slot = children[child_name];
    if (!slot) {
      slot = std::make_unique<GroupNode>();
      slot->name = child_name;
      slot->path = path + "::" + child_name;
    }
    return slot.get();
  }
  std::vector<const GroupNode*> OrderedChildren() const {
    std::vector<const GroupNode*> out;
    for (const auto& [name, child] : children) out.push_back(child.get());
    std::stable_sort(out.begin(), out.end(), [](const GroupNode* a, const GroupNode* b) {
      return a->first_seen < b->first_seen;
    });
    return out;
  }
};

GroupNode BuildGroupTree(const metrics::MetricStore& store) {
  GroupNode root;
  auto visit = [&root](const std::string& metric, const metrics::TagSet& tags,
                       const Aggregate& agg) {
    GroupNode* node = &root;
    root.first_seen = std::min(root.first_seen, agg.first_seen_ns());
    for (const std::string& name : SplitGroupPath(TagOr(tags, "group", ""))) {
      node = node->Child(name);
      node->first_seen = std::min(node->first_seen, agg.first_seen_ns());
    }
    if (metric == kChecks) {
      auto check = tags.find("check");
      if (check != tags.end()) node->checks.Add(check->second, agg);
    }
  };
  store.ForEachSeries(kChecks, visit);
  store.ForEachSeries(kGroupDuration, visit);
  return root;
}

// ----------------------------------------------------------------- render

constexpr char kTitlePrefix[] = "█";
constexpr char kSubtitlePrefix[] = "↳";
constexpr char kSuccessMark[] = "✓";
constexpr char kFailMark[] = "✗";

enum class Category { kCustom, kHttp, kExecution, kNetwork, kBrowser, kWebVitals, kGrpc, kWebSocket };
constexpr const char* kCategoryTitles[] = {"CUSTOM",  "HTTP",       "EXECUTION", "NETWORK",
                                           "BROWSER", "WEB_VITALS", "GRPC",      "WEBSOCKET"};

bool StartsWith(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

std::string ParentName(const std::string& name) { return name.substr(0, name.find('{')); }

// nullopt: never listed (checks, group_duration, and in compact mode the
// HTTP timing breakdown, as k6).
std::optional<Category> CategoryOf(const std::string& name, SummaryMode mode) {
  static const std::set<std::string> kHttp = {
      "http_reqs",          "http_req_failed",          "http_req_duration",
      "http_req_blocked",   "http_req_connecting",      "http_req_tls_handshaking",
      "http_req_sending",   "http_req_waiting",         "http_req_receiving"};
  static const std::set<std::string> kHttpBreakdown = {
      "http_req_blocked", "http_req_connecting", "http_req_tls_handshaking",
      "http_req_sending", "http_req_waiting",    "http_req_receiving"};
  static const std::set<std::string> kExecution = {"iteration_duration", "iterations", "vus",
                                                   "vus_max", "dropped_iterations"};
  const std::string parent = ParentName(name);
  if (parent == kChecks || parent == kGroupDuration) return std::nullopt;
  if (mode == SummaryMode::kCompact && kHttpBreakdown.count(parent)) return std::nullopt;
  if (kHttp.count(parent)) return Category::kHttp;
  if (kExecution.count(parent)) return Category::kExecution;
  if (parent == "data_received" || parent == "data_sent") return Category::kNetwork;
  if (StartsWith(parent, "browser_web_vital_")) return Category::kWebVitals;
  if (StartsWith(parent, "browser_")) return Category::kBrowser;
  if (StartsWith(parent, "grpc_")) return Category::kGrpc;
  if (StartsWith(parent, "ws_")) return Category::kWebSocket;
  return Category::kCustom;
}

// k6's sortMetricsByName: by parent name, a sub-metric right after it.
bool MetricNameLess(const std::string& a, const std::string& b) {
  const std::string pa = ParentName(a);
  const std::string pb = ParentName(b);
  if (pa != pb) return LocaleLess(pa, pb);
  return LocaleLess(a.substr(pa.size()), b.substr(pb.size()));
}

std::string Spaces(size_t n) { return std::string(n, ' '); }
std::string Indent(int level) { return Spaces(static_cast<size_t>(level) * 2); }

// One metric line before layout: its widths are only known once every line
// of its section (and every name of the report) has been seen.
struct MetricLine {
  std::string indent;
  std::string display_name;
  bool trend = false;
  std::vector<std::string> cells;  // trend: one per stat; else main value then extras
  int column_group = 0;  // lines sharing value column widths (a section, or one checks block)
  int name_group = 0;    // lines sharing the name width (0: the whole report; a checks block)
};

// An output element: text, a metric line, or a break (k6's '\n' marker,
// which ends the previous line without starting a new one).
struct Item {
  enum Kind { kText, kMetric, kBreak } kind;
  std::string text;
  MetricLine line;
};

class Renderer {
 public:
  explicit Renderer(const RenderOptions& options) : options_(options) {}

  std::string Render(const SummaryReport& report) {
    if (!report.thresholds.empty()) {
      StartSection("THRESHOLDS");
      RenderThresholds(report.thresholds);
      EndSection();
    }
    StartSection("TOTAL RESULTS");
    RenderGroupContent(report.total, 0);
    EndSection();
    if (options_.mode == SummaryMode::kFull) {
      for (const auto& [name, group] : Sorted(report.groups)) {
        StartSection("GROUP: " + name);
        RenderGroupContent(*group, 0);
        EndSection();
      }
      for (const auto& [name, scenario] : Sorted(report.scenarios)) {
        StartSection("SCENARIO: " + name);
        RenderGroupContent(*scenario, 0);
        EndSection();
      }
    }
    return Layout();
  }

 private:
  std::string Decorate(const std::string& text, const char* codes) const {
    if (!options_.color) return text;
    return std::string("\x1b[") + codes + "m" + text + "\x1b[0m";
  }
  std::string Bold(const std::string& text) const { return Decorate(text, "1"); }

  static std::vector<std::pair<std::string, const SummaryGroup*>> Sorted(
      const std::map<std::string, SummaryGroup>& groups) {
    std::vector<std::pair<std::string, const SummaryGroup*>> out;
    for (const auto& [name, group] : groups) out.push_back({name, &group});
    std::stable_sort(out.begin(), out.end(),
                     [](const auto& a, const auto& b) { return LocaleLess(a.first, b.first); });
    return out;
  }

  void Text(std::string text) { items_.push_back({Item::kText, std::move(text), {}}); }
  void Break() { items_.push_back({Item::kBreak, {}, {}}); }

  void StartSection(const std::string& title) {
    ++section_;
    Text(Indent(1) + kTitlePrefix + " " + Bold(title) + " \n");
  }
  void EndSection() { Break(); }

  // ---- THRESHOLDS
  void RenderThresholds(const std::vector<SummaryThresholds>& all) {
    std::vector<const SummaryThresholds*> sorted;
    std::set<std::string> names;
    for (const SummaryThresholds& t : all) {
      sorted.push_back(&t);
      names.insert(t.metric.name);
    }
    std::stable_sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) {
      return MetricNameLess(a->metric.name, b->metric.name);
    });
    for (const SummaryThresholds* t : sorted) {
      const std::string& name = t->metric.name;
      const std::string parent = ParentName(name);
      const bool nested = parent.size() < name.size() && names.count(parent) > 0;
      const std::string indent = Indent(nested ? 3 : 2);
      Text(indent + (nested ? name.substr(parent.size()) : name));
      for (const ThresholdOutcome& o : t->outcomes) {
        const std::string mark = o.ok ? Decorate(kSuccessMark, "32") : Decorate(kFailMark, "31");
        Text(indent + mark + " " + Decorate("'" + o.source + "'", "37") + " " +
             Decorate(o.aggregation, "37") + "=" + Decorate(ThresholdValue(t->metric, o), "36"));
      }
      Break();
    }
  }

  std::string ThresholdValue(const MetricSummary& m, const ThresholdOutcome& o) const {
    double value = 0;
    if (o.value) {
      value = *o.value;
    } else if (auto it = m.values.find(o.aggregation); it != m.values.end()) {
      value = it->second;
    } else if (m.type == MetricType::kGauge) {
      value = m.values.count("value") ? m.values.at("value") : 0;
    }
    if (m.type == MetricType::kTrend && o.aggregation == "count") return JsNumberToString(value);
    std::string text = HumanizeValue(value, m.type, m.contains, options_.time_unit);
    if (m.type == MetricType::kCounter && o.aggregation == "rate") text += "/s";
    return text;
  }

  // ---- groups, scenarios and the totals
  // `level` is k6's base indentation level of the content's context.
  void RenderGroupContent(const SummaryGroup& group, int level) {
    if (group.checks) RenderChecks(*group.checks, level + 1);
    RenderMetrics(group.metrics, level + 1);
    if (!group.groups.empty()) {
      const int nested = level + 1;
      for (const auto& [name, child] : Sorted(group.groups)) {
        Text(Indent(nested + 1) + kSubtitlePrefix + " " + Bold("GROUP: " + name) + " ");
        RenderGroupContent(*child, nested);
      }
    }
  }

  void RenderChecks(const ChecksSummary& checks, int level) {
    const int block = --checks_block_;  // negative ids: never the report's name group
    const std::string indent = Indent(level + 1);
    const double total = static_cast<double>(checks.total);
    const double fails = static_cast<double>(checks.total - checks.passes);
    auto line = [&](const char* name, std::vector<std::string> cells) {
      MetricLine l;
      l.indent = indent;
      l.display_name = name;
      l.cells = std::move(cells);
      l.column_group = block;
      l.name_group = block;
      items_.push_back({Item::kMetric, {}, std::move(l)});
    };
    line("checks_total", {FormatNumber(total), FormatNumber(checks.total_rate) + "/s"});
    line("checks_succeeded",
         {FormatPercent(total > 0 ? static_cast<double>(checks.passes) / total : 0),
          std::to_string(checks.passes) + " out of " + std::to_string(checks.total)});
    line("checks_failed", {FormatPercent(total > 0 ? fails / total : 0),
                           std::to_string(checks.total - checks.passes) + " out of " +
                               std::to_string(checks.total)});
    Break();
    for (const CheckSummary& c : checks.checks) {
      if (c.fails == 0) {
        Text(indent + Decorate(std::string(kSuccessMark) + " " + c.name, "32"));
        continue;
      }
      const uint64_t pct = (100 * c.passes) / (c.passes + c.fails);  // floor, as k6
      Text(indent + Decorate(std::string(kFailMark) + " " + c.name, "31") + "\n" + Indent(level + 2) +
           Decorate(std::string(kSubtitlePrefix) + "  " + std::to_string(pct) + "% — " + kSuccessMark +
                        " " + std::to_string(c.passes) + " / " + kFailMark + " " +
                        std::to_string(c.fails),
                    "31"));
    }
    Break();
  }

  void RenderMetrics(const std::vector<MetricSummary>& all, int level) {
    std::map<Category, std::vector<const MetricSummary*>> by_category;
    for (const MetricSummary& m : all) {
      if (std::optional<Category> c = CategoryOf(m.name, options_.mode)) by_category[*c].push_back(&m);
    }
    const std::string indent = Indent(level + 1);
    for (auto& [category, list] : by_category) {  // enum order: CUSTOM first
      std::stable_sort(list.begin(), list.end(), [](const auto* a, const auto* b) {
        return MetricNameLess(a->name, b->name);
      });
      Text(indent + Bold(kCategoryTitles[static_cast<int>(category)]));
      for (const MetricSummary* m : list) items_.push_back({Item::kMetric, {}, MakeLine(*m, indent)});
      Break();
    }
  }

  MetricLine MakeLine(const MetricSummary& m, const std::string& indent) const {
    MetricLine l;
    l.indent = indent;
    const size_t brace = m.name.find('{');
    l.display_name = brace == std::string::npos
                         ? m.name
                         : "  { " + m.name.substr(brace + 1, m.name.size() - brace - 2) + " }";
    l.column_group = section_;
    l.name_group = 0;
    auto value = [&m](const char* key) {
      auto it = m.values.find(key);
      return it == m.values.end() ? 0.0 : it->second;
    };
    auto human = [&](double v) { return HumanizeValue(v, m.type, m.contains, options_.time_unit); };
    switch (m.type) {
      case MetricType::kTrend:
        l.trend = true;
        for (const std::string& stat : options_.trend_stats) {
          auto it = m.values.find(stat);
          const double v = it == m.values.end() ? 0 : it->second;
          l.cells.push_back(stat == "count" ? JsNumberToString(v) : human(v));
        }
        break;
      case MetricType::kCounter:
        l.cells = {human(value("count")), human(value("rate")) + "/s"};
        break;
      case MetricType::kGauge:
        l.cells = {human(value("value")), "min=" + human(value("min")), "max=" + human(value("max"))};
        break;
      case MetricType::kRate: {
        const double passes = value("passes");
        l.cells = {human(value("rate")),
                   JsNumberToString(passes) + " out of " + JsNumberToString(passes + value("fails"))};
        break;
      }
    }
    return l;
  }

  // ---- layout: widths first, then text
  struct Columns {
    std::vector<size_t> trend;
    size_t main = 0;
    std::vector<size_t> extras;
  };

  std::string Layout() const {
    std::map<int, size_t> name_width;
    std::map<int, Columns> columns;
    for (const Item& item : items_) {
      if (item.kind != Item::kMetric) continue;
      const MetricLine& l = item.line;
      size_t& w = name_width[l.name_group];
      w = std::max(w, DisplayWidth(l.indent) + DisplayWidth(l.display_name));
      Columns& c = columns[l.column_group];
      if (l.trend) {
        if (c.trend.size() < l.cells.size()) c.trend.resize(l.cells.size(), 0);
        for (size_t i = 0; i < l.cells.size(); ++i) c.trend[i] = std::max(c.trend[i], DisplayWidth(l.cells[i]));
      } else {
        c.main = std::max(c.main, DisplayWidth(l.cells[0]));
        if (c.extras.size() < l.cells.size() - 1) c.extras.resize(l.cells.size() - 1, 0);
        for (size_t i = 1; i < l.cells.size(); ++i) {
          c.extras[i - 1] = std::max(c.extras[i - 1], DisplayWidth(l.cells[i]));
        }
      }
    }
    std::string out;
    for (const Item& item : items_) {
      switch (item.kind) {
        case Item::kBreak:
          out += "\n";
          break;
        case Item::kText:
          out += "\n" + item.text;
          break;
        case Item::kMetric:
          out += "\n" + FormatLine(item.line, name_width.at(item.line.name_group),
                                   columns.at(item.line.column_group));
          break;
      }
    }
    return out;
  }

  std::string FormatLine(const MetricLine& l, size_t name_width, const Columns& c) const {
    const size_t used = DisplayWidth(l.indent) + DisplayWidth(l.display_name);
    const size_t dots = std::max<size_t>(3, name_width + 3 - used);
    std::string out = l.indent + l.display_name + Decorate(std::string(dots, '.') + ":", "2;37") + " ";
    auto pad = [](const std::string& s, size_t width) {
      const size_t w = DisplayWidth(s);
      return w < width ? Spaces(width - w) : std::string();
    };
    if (l.trend) {
      for (size_t i = 0; i < l.cells.size(); ++i) {
        if (i > 0) out += " ";
        out += options_.trend_stats[i] + "=" + Decorate(l.cells[i], "36") + pad(l.cells[i], c.trend[i]);
      }
      return out;
    }
    out += Decorate(l.cells[0], "36") + pad(l.cells[0], c.main);
    // A lone extra is not padded; several are, each to its column (k6).
    if (l.cells.size() == 2) {
      out += " " + Decorate(l.cells[1], "2;36");
    } else {
      for (size_t i = 1; i < l.cells.size(); ++i) {
        out += " " + Decorate(l.cells[i], "2;36") + pad(l.cells[i], c.extras[i - 1]);
      }
    }
    return out;
  }

  const RenderOptions& options_;
  std::vector<Item> items_;
  int section_ = 0;
  int checks_block_ = 0;
};

// ------------------------------------------------------------------- JSON

// JS has one number type and JSON.stringify writes 200, never 200.0.
nlohmann::json Number(double v) {
  if (std::isfinite(v) && v == std::trunc(v) && std::abs(v) < 9007199254740992.0) {
    return static_cast<int64_t>(v);
  }
  return v;  // non-finite values dump as null, as JSON.stringify writes them
}

template <typename Json>
Json CheckJson(const std::string& group_path, const CheckSummary& c) {
  Json j;
  const std::string path = group_path + "::" + c.name;
  j["name"] = c.name;
  j["path"] = path;
  j["id"] = PathId(path);
  j["passes"] = c.passes;
  j["fails"] = c.fails;
  return j;
}

// keyed: the export's objects keyed by name; else handleSummary's arrays.
template <typename Json>
Json GroupJson(const GroupNode& node, bool keyed) {
  Json j;
  j["name"] = node.name;
  j["path"] = node.path;
  j["id"] = PathId(node.path);
  Json groups = keyed ? Json::object() : Json::array();
  for (const GroupNode* child : node.OrderedChildren()) {
    if (keyed) {
      groups[child->name] = GroupJson<Json>(*child, keyed);
    } else {
      groups.push_back(GroupJson<Json>(*child, keyed));
    }
  }
  j["groups"] = std::move(groups);
  Json checks = keyed ? Json::object() : Json::array();
  for (const CheckSummary& c : node.checks.Ordered()) {
    if (keyed) {
      checks[c.name] = CheckJson<Json>(node.path, c);
    } else {
      checks.push_back(CheckJson<Json>(node.path, c));
    }
  }
  j["checks"] = std::move(checks);
  return j;
}

// The keys in the order k6's own example shows them.
std::vector<std::string> ValueKeys(const MetricSummary& m, const std::vector<std::string>& stats) {
  switch (m.type) {
    case MetricType::kCounter:
      return {"count", "rate"};
    case MetricType::kGauge:
      return {"value", "min", "max"};
    case MetricType::kRate:
      return {"rate", "passes", "fails"};
    case MetricType::kTrend:
      break;
  }
  return stats;
}

// Threshold outcomes by listed metric name.
std::map<std::string, std::vector<ThresholdOutcome>> OutcomesByName(const SummaryInput& in) {
  std::map<std::string, std::vector<ThresholdOutcome>> out;
  for (const ThresholdSet& set : in.thresholds) {
    auto& list = out[set.filter.empty() ? set.metric : set.key];
    list.insert(list.end(), set.outcomes.begin(), set.outcomes.end());
  }
  return out;
}

template <typename Json>
std::optional<Json> SetupData(const SummaryInput& in) {
  if (!in.setup_data_json) return std::nullopt;
  Json parsed = Json::parse(*in.setup_data_json, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return std::nullopt;
  return parsed;
}

}  // namespace

std::string PathId(const std::string& path) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(path.data(), path.size(), digest, &size, EVP_md5(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < size; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0xf]);
  }
  return hex;
}

SummaryReport BuildSummaryReport(const SummaryInput& in) {
  SummaryReport report;
  const metrics::MetricStore& store = *in.store;

  std::map<std::string, MetricSummary> listed = ListedMetrics(in);
  for (auto& [name, metric] : listed) report.total.metrics.push_back(metric);

  for (const auto& [name, outcomes] : OutcomesByName(in)) {
    auto it = listed.find(name);
    if (it == listed.end()) continue;  // an undefined metric: validation let nothing through
    report.thresholds.push_back({it->second, outcomes});
  }

  if (std::optional<Aggregate> checks = store.Query(kChecks); checks && checks->count() > 0) {
    ChecksSummary c;
    c.total = checks->count();
    c.passes = checks->passes();
    c.total_rate = PerSecond(static_cast<double>(c.total), in.test_run_duration);
    CheckTally tally;
    store.ForEachSeries(kChecks, [&tally](const std::string&, const metrics::TagSet& tags,
                                          const Aggregate& agg) {
      auto check = tags.find("check");
      if (check != tags.end()) tally.Add(check->second, agg);
    });
    c.checks = tally.Ordered();
    report.total.checks = std::move(c);
  }

  if (in.mode == SummaryMode::kFull) {
    SectionNode root;  // holds the top-level groups only
    std::map<std::string, SectionNode> scenarios;
    store.ForEachSeries("", [&](const std::string& metric, const metrics::TagSet& tags,
                                const Aggregate& agg) {
      SectionNode* base = &root;
      auto scenario = tags.find("scenario");
      if (scenario != tags.end() && scenario->second != "default") {
        base = &scenarios[scenario->second];
        base->Add(metric, tags, agg);
      }
      std::vector<std::string> path = SplitGroupPath(TagOr(tags, "group", ""));
      if (path.empty()) return;
      for (const std::string& name : path) base = &base->groups[name];
      base->Add(metric, tags, agg);
    });
    for (const auto& [name, node] : root.groups) report.groups.emplace(name, ToSummaryGroup(node, store, in));
    for (const auto& [name, node] : scenarios) {
      report.scenarios.emplace(name, ToSummaryGroup(node, store, in));
    }
  }
  return report;
}

std::string RenderSummaryReport(const SummaryReport& report, const RenderOptions& options) {
  return Renderer(options).Render(report);
}

std::string RenderSummaryText(const SummaryInput& input) {
  if (input.mode == SummaryMode::kLegacy) {
    return RenderLegacySummary(BuildHandleSummaryData(input, false, false), input.color);
  }
  RenderOptions options;
  options.trend_stats = input.trend_stats;
  options.time_unit = input.time_unit;
  options.mode = input.mode;
  options.color = input.color;
  return RenderSummaryReport(BuildSummaryReport(input), options);
}

std::string RenderSummaryExport(const SummaryInput& in) {
  using Json = nlohmann::ordered_json;
  Json root;
  root["root_group"] = GroupJson<Json>(BuildGroupTree(*in.store), /*keyed=*/true);
  const auto outcomes = OutcomesByName(in);
  Json metrics_json = Json::object();
  for (const auto& [name, m] : ListedMetrics(in)) {
    Json values = Json::object();
    for (const std::string& key : ValueKeys(m, in.trend_stats)) {
      auto it = m.values.find(key);
      // A Rate's "rate" is "value" in this format (k6's old schema).
      const std::string out_key = m.type == MetricType::kRate && key == "rate" ? "value" : key;
      values[out_key] = Number(it == m.values.end() ? 0 : it->second);
    }
    if (auto it = outcomes.find(name); it != outcomes.end() && !it->second.empty()) {
      Json thresholds = Json::object();
      for (const ThresholdOutcome& o : it->second) thresholds[o.source] = !o.ok;  // true: FAILED
      values["thresholds"] = std::move(thresholds);
    }
    metrics_json[name] = std::move(values);
  }
  root["metrics"] = std::move(metrics_json);
  if (std::optional<Json> setup = SetupData<Json>(in)) root["setup_data"] = *setup;
  return root.dump(4);
}

nlohmann::json BuildHandleSummaryData(const SummaryInput& in, bool stdout_tty, bool stderr_tty) {
  using Json = nlohmann::json;
  Json data;
  data["root_group"] = GroupJson<Json>(BuildGroupTree(*in.store), /*keyed=*/false);
  data["options"] = {{"summaryTrendStats", in.trend_stats},
                     {"summaryTimeUnit", in.time_unit},
                     {"noColor", in.no_color}};
  data["state"] = {{"isStdOutTTY", stdout_tty},
                   {"isStdErrTTY", stderr_tty},
                   {"testRunDurationMs", Number(absl::ToDoubleMilliseconds(in.test_run_duration))}};
  const auto outcomes = OutcomesByName(in);
  Json metrics_json = Json::object();
  for (const auto& [name, m] : ListedMetrics(in)) {
    Json metric;
    metric["type"] = std::string(metrics::MetricTypeName(m.type));
    metric["contains"] = std::string(metrics::ValueTypeName(m.contains));
    Json values = Json::object();
    for (const std::string& key : ValueKeys(m, in.trend_stats)) {
      auto it = m.values.find(key);
      values[key] = Number(it == m.values.end() ? 0 : it->second);
    }
    metric["values"] = std::move(values);
    if (auto it = outcomes.find(name); it != outcomes.end() && !it->second.empty()) {
      Json thresholds = Json::object();
      for (const ThresholdOutcome& o : it->second) thresholds[o.source] = {{"ok", o.ok}};
      metric["thresholds"] = std::move(thresholds);
    }
    metrics_json[name] = std::move(metric);
  }
  data["metrics"] = std::move(metrics_json);
  if (std::optional<Json> setup = SetupData<Json>(in)) data["setup_data"] = *setup;
  return data;
}

}  // namespace barrage::controller

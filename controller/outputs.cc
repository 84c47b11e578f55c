#include "controller/outputs.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"

namespace barrage::controller {
namespace {

// k6's CSV columns: the system tags it knows, then the rest.
const std::vector<std::string>& CsvTagColumns() {
  static const std::vector<std::string> columns = {"check",  "error",    "error_code", "expected_response",
                                                   "group",  "method",   "name",       "proto",
                                                   "scenario", "service", "status",    "subproto",
                                                   "tls_version", "url"};
  return columns;
}

double PointValue(const metrics::MetricDef& def, const metrics::Aggregate& agg) {
  switch (def.type) {
    case metrics::MetricType::kCounter:
      return agg.sum();
    case metrics::MetricType::kGauge:
      return agg.last();
    case metrics::MetricType::kRate:
      return agg.count() ? static_cast<double>(agg.passes()) / static_cast<double>(agg.count()) : 0;
    case metrics::MetricType::kTrend:
      return agg.count() ? agg.sum() / static_cast<double>(agg.count()) : 0;
  }
  return 0;
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

absl::StatusOr<std::unique_ptr<Output>> Output::Open(const std::string& spec) {
  const size_t eq = spec.find('=');
  const std::string kind = spec.substr(0, eq);
  const std::string path = eq == std::string::npos ? "" : spec.substr(eq + 1);
  if (kind != "json" && kind != "csv") {
    return absl::InvalidArgumentError(absl::StrCat("--out: unknown output '", kind, "' (json=FILE or csv=FILE)"));
  }
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat("--out ", kind, ": a file is required, as ", kind, "=FILE"));
  auto out = std::unique_ptr<Output>(new Output(kind == "json" ? Kind::kJson : Kind::kCsv, path));
  absl::StatusOr<std::unique_ptr<OutputFile>> file = OutputFile::Create(path);
  if (!file.ok()) return absl::InvalidArgumentError(absl::StrCat("--out ", kind, ": cannot write ", file.status().message()));
  out->out_ = *std::move(file);
  if (out->kind_ == Kind::kCsv) {
    absl::Status st = out->out_->Append(absl::StrCat("metric_name,timestamp,metric_value,",
                                                     absl::StrJoin(CsvTagColumns(), ","), ",extra_tags,metadata\n"));
    if (st.ok()) st = out->out_->Flush();
    if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat("--out ", kind, ": cannot write ", st.message()));
  }
  return out;
}

absl::Status Output::Write(const metrics::MetricStore& interval, absl::Time at) {
  if (failed_) return absl::OkStatus();
  std::string text;
  const std::string time = absl::FormatTime("%Y-%m-%dT%H:%M:%E6S%Ez", at, absl::UTCTimeZone());
  interval.ForEachSeries("", [&](const std::string& metric, const metrics::TagSet& tags, const metrics::Aggregate& agg) {
    const metrics::MetricDef* def = interval.Find(metric);
    if (def == nullptr || agg.count() == 0) return;
    const double value = PointValue(*def, agg);
    if (kind_ == Kind::kJson) {
      if (described_.insert(metric).second) {
        // ordered_json: fields in k6's order.
        nlohmann::ordered_json m = {{"type", "Metric"},
                            {"data",
                             {{"name", metric},
                              {"type", std::string(metrics::MetricTypeName(def->type))},
                              {"contains", std::string(metrics::ValueTypeName(def->contains))},
                              {"thresholds", nlohmann::json::array()},
                              {"submetrics", nullptr}}},
                            {"metric", metric}};
        absl::StrAppend(&text, m.dump(), "\n");
      }
      nlohmann::ordered_json point = {{"type", "Point"},
                              {"data",
                               {{"time", time},
                                {"value", value},
                                {"tags", tags},
                                {"aggregate",
                                 {{"count", agg.count()}, {"sum", agg.sum()}, {"min", agg.min()}, {"max", agg.max()}}}}},
                              {"metric", metric}};
      absl::StrAppend(&text, point.dump(), "\n");
      return;
    }
    std::vector<std::string> row = {CsvField(metric), absl::StrCat(absl::ToUnixSeconds(at)), absl::StrCat(value)};
    std::vector<std::string> extra;
    for (const std::string& column : CsvTagColumns()) {
      auto it = tags.find(column);
      row.push_back(it == tags.end() ? "" : CsvField(it->second));
    }
    for (const auto& [k, v] : tags) {
      if (std::find(CsvTagColumns().begin(), CsvTagColumns().end(), k) == CsvTagColumns().end()) {
        extra.push_back(absl::StrCat(k, "=", v));
      }
    }
    row.push_back(CsvField(absl::StrJoin(extra, "&")));
    row.push_back("");
    absl::StrAppend(&text, absl::StrJoin(row, ","), "\n");
  });
  absl::Status st = out_->Append(text);
  if (st.ok()) st = out_->Flush();
  if (!st.ok()) {
    failed_ = true;
    return absl::DataLossError(absl::StrCat("--out: writing ", st.message(), "; this output stops here"));
  }
  return absl::OkStatus();
}

absl::Status Output::Close() {
  absl::Status st = out_->Close();
  if (failed_) return absl::OkStatus();
  if (!st.ok()) return absl::DataLossError(absl::StrCat("--out: writing ", st.message()));
  return absl::OkStatus();
}

}  // namespace barrage::controller

#include "common/metrics/metric_store.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string_view>
#include <utility>

namespace barrage::metrics {
namespace {

// Debian's abseil has its own string_view, so absl::StrCat takes no
// std::string_view; this joins them instead.
std::string Cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view part : parts) out.append(part);
  return out;
}

bool Contains(const TagSet& tags, const TagSet& filter) {
  for (const auto& [key, value] : filter) {
    auto it = tags.find(key);
    if (it == tags.end() || it->second != value) return false;
  }
  return true;
}

absl::Status ConflictError(const MetricDef& existing) {
  return absl::AlreadyExistsError(
      Cat({"metric '", existing.name, "' already exists but with type ",
           MetricTypeName(existing.type), ", contains ", ValueTypeName(existing.contains)}));
}

}  // namespace

absl::Status MetricStore::Define(const MetricDef& def) {
  auto [it, inserted] = defs_.try_emplace(def.name, def);
  if (inserted || it->second == def) return absl::OkStatus();
  return ConflictError(it->second);
}

const MetricDef* MetricStore::Find(const std::string& name) const {
  auto it = defs_.find(name);
  return it == defs_.end() ? nullptr : &it->second;
}

void MetricStore::Add(const std::string& metric, const TagSet& tags, double value,
                      int64_t time_ns) {
  AddEncoded(metric, EncodeTagSet(tags), value, time_ns);
}

uint64_t MetricStore::NextGeneration() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

void MetricStore::ResolveSlow(SeriesRef& ref) {
  ref.agg = &FindOrCreate(ref.metric, ref.encoded_tags).agg;
  ref.store = this;
  ref.generation = generation_;
}

void MetricStore::AddEncoded(const std::string& metric, const std::string& encoded_tags,
                             double value, int64_t time_ns) {
  FindOrCreate(metric, encoded_tags).agg.Add(value, time_ns);
}

MetricStore::Series& MetricStore::FindOrCreate(const std::string& metric, const std::string& encoded_tags) {
  // Two hash lookups when the series exists; the definition is consulted
  // only when a series is created.
  auto& by_tags = series_[metric];
  auto it = by_tags.find(encoded_tags);
  if (it == by_tags.end()) {
    const MetricDef* def = Find(metric);
    if (def == nullptr) {
      std::fprintf(stderr, "BARRAGE_CHECK failed: sample for undefined metric '%s'\n",
                   metric.c_str());
      std::abort();
    }
    it = by_tags.emplace(encoded_tags, Series{DecodeTagSet(encoded_tags), Aggregate(def->type)})
             .first;
    tag_bytes_ += encoded_tags.size();
  }
  return it->second;
}

absl::Status MetricStore::Merge(const MetricStore& other) {
  // All conflicts are found before anything changes: a half-merged store
  // would count some samples and lose others.
  for (const auto& [name, def] : other.defs_) {
    auto it = defs_.find(name);
    if (it != defs_.end() && !(it->second == def)) return ConflictError(it->second);
  }
  for (const auto& [name, def] : other.defs_) defs_.try_emplace(name, def);
  for (const auto& [metric, other_by_tags] : other.series_) {
    if (other_by_tags.empty()) continue;
    auto& by_tags = series_[metric];
    for (const auto& [encoded, series] : other_by_tags) {
      auto it = by_tags.find(encoded);
      if (it == by_tags.end()) {
        by_tags.emplace(encoded, series);
        tag_bytes_ += encoded.size();
      } else {
        it->second.agg.Merge(series.agg);
      }
    }
  }
  return absl::OkStatus();
}

void MetricStore::MergeEncoded(const std::string& metric, const std::string& encoded_tags,
                               const Aggregate& agg) {
  const MetricDef* def = Find(metric);
  if (def == nullptr || def->type != agg.type()) {
    std::fprintf(stderr, "BARRAGE_CHECK failed: merge of a %s into metric '%s' (%s)\n",
                 std::string(MetricTypeName(agg.type())).c_str(), metric.c_str(),
                 def == nullptr ? "undefined" : std::string(MetricTypeName(def->type)).c_str());
    std::abort();
  }
  auto& by_tags = series_[metric];
  auto it = by_tags.find(encoded_tags);
  if (it == by_tags.end()) {
    // Merged into an empty one rather than copied: an empty aggregate from
    // a peer then leaves the same series as one made here.
    it = by_tags.emplace(encoded_tags, Series{DecodeTagSet(encoded_tags), Aggregate(def->type)})
             .first;
    tag_bytes_ += encoded_tags.size();
  }
  it->second.agg.Merge(agg);
}

bool MetricStore::HasSeries(const std::string& metric, const std::string& encoded_tags) const {
  auto it = series_.find(metric);
  return it != series_.end() && it->second.contains(encoded_tags);
}

const Aggregate* MetricStore::FindSeries(const std::string& metric, const std::string& encoded_tags) const {
  auto it = series_.find(metric);
  if (it == series_.end()) return nullptr;
  auto found = it->second.find(encoded_tags);
  return found == it->second.end() ? nullptr : &found->second.agg;
}

std::optional<Aggregate> MetricStore::Query(const std::string& metric, const TagSet& filter) const {
  const MetricDef* def = Find(metric);
  if (def == nullptr) return std::nullopt;
  auto it = series_.find(metric);
  if (it == series_.end()) return std::nullopt;
  std::optional<Aggregate> result;
  for (const auto& [encoded, series] : it->second) {
    if (!Contains(series.tags, filter)) continue;
    if (!result) result.emplace(def->type);
    result->Merge(series.agg);
  }
  return result;
}

void MetricStore::ForEachSeries(
    const std::string& metric,
    const std::function<void(const std::string& metric, const TagSet& tags, const Aggregate& agg)>&
        fn) const {
  auto visit = [&fn](const std::string& name, const auto& by_tags) {
    for (const auto& [encoded, series] : by_tags) fn(name, series.tags, series.agg);
  };
  if (metric.empty()) {
    for (const auto& [name, by_tags] : series_) visit(name, by_tags);
    return;
  }
  auto it = series_.find(metric);
  if (it != series_.end()) visit(it->first, it->second);
}

size_t MetricStore::series_count() const {
  size_t n = 0;
  for (const auto& [name, by_tags] : series_) n += by_tags.size();
  return n;
}

}  // namespace barrage::metrics

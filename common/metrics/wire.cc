#include "common/metrics/wire.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/metrics/aggregate.h"
#include "common/metrics/histogram.h"
#include "common/metrics/metric.h"

namespace barrage::metrics {
namespace {

namespace pb = ::barrage::v1;

// Debian's abseil has its own string_view; StrCat takes no std::string_view.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

pb::MetricType ToProto(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return pb::METRIC_TYPE_COUNTER;
    case MetricType::kGauge:
      return pb::METRIC_TYPE_GAUGE;
    case MetricType::kRate:
      return pb::METRIC_TYPE_RATE;
    case MetricType::kTrend:
      return pb::METRIC_TYPE_TREND;
  }
  return pb::METRIC_TYPE_UNSPECIFIED;
}

pb::ValueType ToProto(ValueType type) {
  switch (type) {
    case ValueType::kDefault:
      return pb::VALUE_TYPE_DEFAULT;
    case ValueType::kTime:
      return pb::VALUE_TYPE_TIME;
    case ValueType::kData:
      return pb::VALUE_TYPE_DATA;
  }
  return pb::VALUE_TYPE_UNSPECIFIED;
}

// proto3 enums are open: any int32 may arrive, so these take the raw value.
std::optional<MetricType> FromProto(pb::MetricType type) {
  switch (static_cast<int>(type)) {
    case pb::METRIC_TYPE_COUNTER:
      return MetricType::kCounter;
    case pb::METRIC_TYPE_GAUGE:
      return MetricType::kGauge;
    case pb::METRIC_TYPE_RATE:
      return MetricType::kRate;
    case pb::METRIC_TYPE_TREND:
      return MetricType::kTrend;
    default:
      return std::nullopt;
  }
}

std::optional<ValueType> FromProto(pb::ValueType type) {
  switch (static_cast<int>(type)) {
    case pb::VALUE_TYPE_DEFAULT:
      return ValueType::kDefault;
    case pb::VALUE_TYPE_TIME:
      return ValueType::kTime;
    case pb::VALUE_TYPE_DATA:
      return ValueType::kData;
    default:
      return std::nullopt;
  }
}

void SpanToProto(Histogram::BucketSpan span, pb::BucketSpan* out) {
  if (span.counts.empty()) return;
  out->set_offset(span.offset);
  out->mutable_counts()->Add(span.counts.begin(), span.counts.end());
}

Histogram::BucketSpan SpanFromProto(const pb::BucketSpan& span) {
  return {span.offset(), std::span<const uint64_t>(span.counts().data(), span.counts().size())};
}

// A series' name for a warning: tag sets may be 64 KiB.
std::string Shorten(std::string text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  text.resize(max_bytes);
  text += "...}";
  return text;
}

std::string SeriesName(const std::string& metric, const std::string& encoded_tags) {
  return absl::StrCat("metric '", metric, "' {", encoded_tags, "}");
}

bool HasControlCharacter(const std::string& text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

std::string DefText(const MetricDef& def) {
  return absl::StrCat(Sv(MetricTypeName(def.type)), " (", Sv(ValueTypeName(def.contains)), ")");
}

// Checks one series and rebuilds its aggregate. `name` is the series as
// messages show it ("metric 'x' {k=v}"); errors come back without `where`.
absl::StatusOr<Aggregate> SeriesFromProto(const pb::MetricSeries& s, MetricType type,
                                          const std::string& name, const WireLimits& limits) {
  auto bad = [&name](auto&&... what) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", what...));
  };
  const uint64_t count = s.count();
  if (count > limits.max_delta_count) {
    return bad("count ", count, " in one delta, more than the limit of ", limits.max_delta_count);
  }
  if (std::isnan(s.min())) return bad("min is NaN");
  if (std::isnan(s.max())) return bad("max is NaN");
  if (std::isnan(s.last())) return bad("last is NaN");
  // inf + -inf is the one way samples give a NaN sum, and it takes both signs.
  if (std::isnan(s.sum()) && !(s.min() < 0 && s.max() > 0)) {
    return bad("sum is NaN, though no samples of both signs could make it so");
  }
  if (count == 0 && s.sum() != 0) return bad("sum ", s.sum(), " without samples");
  if (count > 0) {
    if (!(s.min() <= s.max())) return bad("min ", s.min(), " > max ", s.max());
    if (!(s.min() <= s.last() && s.last() <= s.max())) {
      return bad("last ", s.last(), " outside [min ", s.min(), ", max ", s.max(), "]");
    }
    if (s.last_time_ns() < s.first_seen_ns()) {
      return bad("last_time_ns ", s.last_time_ns(), " < first_seen_ns ", s.first_seen_ns());
    }
  }
  if (type == MetricType::kRate) {
    if (s.passes() > count) return bad("passes ", s.passes(), " > count ", count);
  } else if (s.passes() != 0) {
    return bad("passes ", s.passes(), " on a ", Sv(MetricTypeName(type)));
  }
  if ((type == MetricType::kGauge || type == MetricType::kRate) && s.sum() != 0) {
    return bad("sum ", s.sum(), " on a ", Sv(MetricTypeName(type)));
  }
  if ((type == MetricType::kCounter || type == MetricType::kTrend) && count > 0 && !std::isnan(s.sum())) {
    // count samples in [min, max] sum to within count x [min, max]. The
    // room is for rounding: naive summation errs by at most about count x
    // 2^-53 of the sum of magnitudes, far below 1e-6 of it.
    const double n = static_cast<double>(count);
    const double lo = n * s.min();
    const double hi = n * s.max();
    const double room = 1e-6 * std::max(std::fabs(lo), std::fabs(hi));
    if (s.sum() < lo - room || s.sum() > hi + room) {
      return bad("sum ", s.sum(), " outside count x [min, max] = [", lo, ", ", hi, "]");
    }
  }

  Histogram histogram;
  const pb::Histogram& h = s.histogram();
  if (type != MetricType::kTrend) {
    if (h.positive().counts_size() != 0 || h.negative().counts_size() != 0 || h.zero_count() != 0) {
      return bad("histogram on a ", Sv(MetricTypeName(type)));
    }
  } else {
    const size_t buckets =
        static_cast<size_t>(h.positive().counts_size()) + h.negative().counts_size();
    if (buckets > limits.max_buckets_per_histogram) {
      return bad("histogram of ", buckets, " buckets, more than the limit of ",
                 limits.max_buckets_per_histogram);
    }
    const int64_t min_bucket = Histogram::MinBucket();
    const int64_t max_bucket = Histogram::MaxBucket();
    // Histogram::FromParts drops what lies outside, so the check is here,
    // and the total is summed here too: Consistent() would let it wrap.
    uint64_t total = h.zero_count();
    uint64_t signed_totals[2] = {0, 0};  // positive, negative
    for (int side = 0; side < 2; ++side) {
      const pb::BucketSpan& span = side == 0 ? h.positive() : h.negative();
      const char* label = side == 0 ? "positive" : "negative";
      if (span.counts_size() == 0) continue;
      const int64_t first = span.offset();
      const int64_t last = first + span.counts_size() - 1;
      if (first < min_bucket || last > max_bucket) {
        return bad(label, " buckets [", first, ", ", last, "] beyond the histogram's range [",
                   min_bucket, ", ", max_bucket, "]");
      }
      for (uint64_t c : span.counts()) {
        if (c > std::numeric_limits<uint64_t>::max() - total) {
          return bad("bucket counts overflow");
        }
        total += c;
        signed_totals[side] += c;
      }
    }
    if (total != count) {
      return bad("buckets and zero_count hold ", total, " samples, count is ", count);
    }
    // Real data: a negative sample is the min's sign and has a negative
    // bucket, and so on. Quantiles read from disagreeing parts would be
    // clamped into nonsense.
    if (count > 0 &&
        ((signed_totals[0] > 0) != (s.max() > 0) || (signed_totals[1] > 0) != (s.min() < 0) ||
         (h.zero_count() > 0 && !(s.min() <= 0 && s.max() >= 0)))) {
      return bad("buckets (", signed_totals[1], " negative, ", h.zero_count(), " zero, ",
                 signed_totals[0], " positive) disagree with min ", s.min(), " and max ", s.max());
    }
    histogram = Histogram::FromParts(SpanFromProto(h.positive()), SpanFromProto(h.negative()),
                                     h.zero_count(), count, s.sum(), s.min(), s.max());
  }
  return Aggregate::FromParts(type, count, s.sum(), s.last(), s.last_time_ns(), s.min(), s.max(),
                              s.passes(), std::move(histogram), s.first_seen_ns());
}

// A series of `in`, checked and ready to merge.
struct Staged {
  const std::string* metric;
  std::string encoded_tags;
  Aggregate agg;
};

}  // namespace

void StoreToProto(const MetricStore& store, pb::MetricsDelta* out) {
  out->Clear();
  for (const auto& [name, def] : store.defs()) {
    pb::MetricDefinition* d = out->add_definitions();
    d->set_name(name);
    d->set_type(ToProto(def.type));
    d->set_contains(ToProto(def.contains));
  }
  out->mutable_series()->Reserve(static_cast<int>(store.series_count()));
  store.ForEachSeries("",
                      [out](const std::string& metric, const TagSet& tags, const Aggregate& agg) {
                        pb::MetricSeries* s = out->add_series();
                        s->set_metric(metric);
                        for (const auto& [key, value] : tags) (*s->mutable_tags())[key] = value;
                        s->set_count(agg.count());
                        s->set_sum(agg.sum());
                        s->set_last(agg.last());
                        s->set_last_time_ns(agg.last_time_ns());
                        s->set_min(agg.min());
                        s->set_max(agg.max());
                        s->set_passes(agg.passes());
                        s->set_first_seen_ns(agg.first_seen_ns());
                        if (agg.type() == MetricType::kTrend) {
                          const Histogram& h = agg.histogram();
                          pb::Histogram* wire = s->mutable_histogram();
                          SpanToProto(h.positive_buckets(), wire->mutable_positive());
                          SpanToProto(h.negative_buckets(), wire->mutable_negative());
                          wire->set_zero_count(h.zero_count());
                        }
                      });
}

std::vector<pb::MetricsDelta> StoreToProtos(const MetricStore& store, size_t max_message_bytes,
                                            size_t max_tag_bytes) {
  std::vector<pb::MetricsDelta> out(1);
  auto define = [&store](pb::MetricsDelta& delta, const std::string& name) {
    const MetricDef* def = store.Find(name);
    pb::MetricDefinition* d = delta.add_definitions();
    d->set_name(name);
    d->set_type(ToProto(def->type));
    d->set_contains(ToProto(def->contains));
  };
  // Room for the definitions a message may carry: every one, at most.
  size_t definitions_bytes = 0;
  for (const auto& [name, def] : store.defs()) definitions_bytes += name.size() + 16;
  const size_t budget = max_message_bytes > definitions_bytes ? max_message_bytes - definitions_bytes : 0;
  std::set<std::string> named;  // metrics the last message's series name
  size_t bytes = 0;
  uint64_t dropped_series = 0, dropped_samples = 0;
  std::string first_dropped;
  auto close = [&] {
    if (out.size() == 1) {
      for (const auto& [name, def] : store.defs()) define(out.back(), name);
    } else {
      for (const std::string& name : named) define(out.back(), name);
    }
    named.clear();
    bytes = 0;
  };
  store.ForEachSeries("", [&](const std::string& metric, const TagSet& tags, const Aggregate& agg) {
    const std::string encoded = EncodeTagSet(tags);
    if (encoded.size() > max_tag_bytes) {
      if (dropped_series++ == 0) first_dropped = Shorten(SeriesName(metric, encoded), 120);
      dropped_samples += agg.count();
      return;
    }
    pb::MetricSeries s;
    s.set_metric(metric);
    for (const auto& [key, value] : tags) (*s.mutable_tags())[key] = value;
    s.set_count(agg.count());
    s.set_sum(agg.sum());
    s.set_last(agg.last());
    s.set_last_time_ns(agg.last_time_ns());
    s.set_min(agg.min());
    s.set_max(agg.max());
    s.set_passes(agg.passes());
    s.set_first_seen_ns(agg.first_seen_ns());
    if (agg.type() == MetricType::kTrend) {
      const Histogram& h = agg.histogram();
      pb::Histogram* wire = s.mutable_histogram();
      SpanToProto(h.positive_buckets(), wire->mutable_positive());
      SpanToProto(h.negative_buckets(), wire->mutable_negative());
      wire->set_zero_count(h.zero_count());
    }
    const size_t size = s.ByteSizeLong() + 6;  // field tag and length
    if (bytes > 0 && bytes + size > budget) {
      close();
      out.emplace_back();
    }
    bytes += size;
    named.insert(metric);
    *out.back().add_series() = std::move(s);
  });
  close();
  out.front().set_dropped_series(dropped_series);
  out.front().set_dropped_samples(dropped_samples);
  out.front().set_first_dropped(first_dropped);
  return out;
}

namespace {

// The order in which a delta's series are admitted: metric by metric, the
// metrics with the fewest series in the delta first (stable otherwise).
// When one metric's tags explode past the series limit, the built-in
// metrics' few series (iterations, vus, grpc_req_duration) still get in and
// stay exact; the exploding metric is the one cut short.
std::vector<const pb::MetricSeries*> AdmissionOrder(const pb::MetricsDelta& in) {
  absl::flat_hash_map<std::string_view, size_t> per_metric;
  for (const pb::MetricSeries& s : in.series()) ++per_metric[s.metric()];
  std::vector<const pb::MetricSeries*> order;
  order.reserve(in.series_size());
  for (const pb::MetricSeries& s : in.series()) order.push_back(&s);
  std::stable_sort(order.begin(), order.end(), [&per_metric](const pb::MetricSeries* a, const pb::MetricSeries* b) {
    return per_metric.at(a->metric()) < per_metric.at(b->metric());
  });
  return order;
}

}  // namespace

absl::Status MergeFromProto(const pb::MetricsDelta& in, MetricStore& into, const WireLimits& limits,
                            const std::string& where, MergeReport* report) {
  auto invalid = [&where](absl::string_view what) {
    return absl::InvalidArgumentError(where.empty() ? std::string(what)
                                                    : absl::StrCat(where, ": ", what));
  };

  // Definitions: each valid, and agreeing with `into` and with each other.
  std::map<std::string, MetricDef> new_defs;
  for (int i = 0; i < in.definitions_size(); ++i) {
    const pb::MetricDefinition& d = in.definitions(i);
    if (d.name().empty()) return invalid(absl::StrCat("definition #", i, " has no name"));
    // k6's own limit on metric names; and the names reach terminals.
    if (d.name().size() > 128) {
      return invalid(absl::StrCat("definition #", i, ": a name of ", d.name().size(), " bytes, more than 128"));
    }
    if (HasControlCharacter(d.name())) {
      return invalid(absl::StrCat("definition #", i, ": the name holds a control character"));
    }
    const std::string metric = absl::StrCat("metric '", d.name(), "'");
    const std::optional<MetricType> type = FromProto(d.type());
    if (!type) return invalid(absl::StrCat(metric, ": unknown type ", static_cast<int>(d.type())));
    const std::optional<ValueType> contains = FromProto(d.contains());
    if (!contains)
      return invalid(absl::StrCat(metric, ": unknown value type ", static_cast<int>(d.contains())));
    const MetricDef def{d.name(), *type, *contains};
    if (const MetricDef* known = into.Find(def.name); known != nullptr) {
      if (!(*known == def)) {
        return invalid(absl::StrCat(metric, " is a ", DefText(*known),
                                    " here, but the delta defines it as a ", DefText(def)));
      }
      continue;
    }
    auto [it, inserted] = new_defs.try_emplace(def.name, def);
    if (!inserted && !(it->second == def)) {
      return invalid(absl::StrCat(metric, " is defined twice, as a ", DefText(it->second),
                                  " and as a ", DefText(def)));
    }
    if (inserted && into.defs().size() + new_defs.size() > limits.max_metrics) {
      return invalid(absl::StrCat(metric, ": a new metric beyond the limit of ", limits.max_metrics, " metrics"));
    }
  }
  for (const auto& [field, value] : {std::pair<const char*, uint64_t>{"dropped_series", in.dropped_series()},
                                     std::pair<const char*, uint64_t>{"dropped_samples", in.dropped_samples()}}) {
    if (value > limits.max_delta_count) {
      return invalid(absl::StrCat(field, " ", value, ", more than the limit of ", limits.max_delta_count));
    }
  }

  // Series: each of a defined metric, checked and rebuilt; new ones within
  // the limits, or left out and counted.
  if (static_cast<size_t>(in.series_size()) > limits.max_series) {
    return invalid(absl::StrCat(in.series_size(), " series in one delta, more than the limit of ",
                                limits.max_series));
  }
  std::vector<Staged> staged;
  staged.reserve(in.series_size());
  std::set<std::pair<std::string, std::string>> added;    // series `into` does not have yet
  std::set<std::pair<std::string, std::string>> dropped;  // new ones beyond the limits
  size_t added_tag_bytes = 0;
  MergeReport local;
  const size_t existing = into.series_count();
  for (const pb::MetricSeries* series : AdmissionOrder(in)) {
    const pb::MetricSeries& s = *series;
    TagSet tags;
    for (const auto& [key, value] : s.tags()) tags.emplace(key, value);
    std::string encoded = EncodeTagSet(tags);
    const std::string name = SeriesName(s.metric(), encoded);
    const MetricDef* def = into.Find(s.metric());
    if (def == nullptr) {
      auto it = new_defs.find(s.metric());
      if (it == new_defs.end()) return invalid(absl::StrCat(name, ": the metric is not defined"));
      def = &it->second;
    }
    absl::StatusOr<Aggregate> agg = SeriesFromProto(s, def->type, name, limits);
    if (!agg.ok()) return invalid(agg.status().message());
    if (const Aggregate* known = into.FindSeries(s.metric(), encoded); known != nullptr) {
      // The count of a series that appears twice in one delta is bounded
      // by max_series x max_delta_count, far from a wrap.
      if (known->count() + s.count() > limits.max_count) {
        return invalid(absl::StrCat(name, ": the count would reach ", known->count() + s.count(),
                                    ", more than the limit of ", limits.max_count));
      }
    } else {
      auto key = std::make_pair(s.metric(), encoded);
      std::string why;
      if (dropped.contains(key)) {
        why = "again";
      } else if (!added.contains(key)) {
        if (encoded.size() > limits.max_tag_bytes) {
          why = absl::StrCat("the limit of ", limits.max_tag_bytes, " tag bytes per series");
        } else if (existing + added.size() + 1 > limits.max_series) {
          why = absl::StrCat("the limit of ", limits.max_series, " series");
        } else if (into.tag_bytes() + added_tag_bytes + encoded.size() > limits.max_total_tag_bytes) {
          why = absl::StrCat("the limit of ", limits.max_total_tag_bytes, " tag bytes in all series");
        } else {
          added_tag_bytes += encoded.size();
          added.insert(key);
        }
      }
      if (!why.empty()) {
        if (why != "again") {
          local.dropped_series++;
          if (local.first_dropped.empty()) {
            local.first_dropped = Shorten(name, 120);
            local.why = why;
          }
          dropped.insert(std::move(key));
        }
        local.dropped_samples += s.count();
        continue;
      }
    }
    staged.push_back({&s.metric(), std::move(encoded), *std::move(agg)});
  }

  // Nothing below can fail: the checks above saw to it.
  for (const auto& [name, def] : new_defs) into.Define(def).IgnoreError();
  for (const Staged& s : staged) into.MergeEncoded(*s.metric, s.encoded_tags, s.agg);
  if (report != nullptr) {
    // Saturating: the counts only feed a message.
    auto add = [](uint64_t& to, uint64_t n) { to = n > UINT64_MAX - to ? UINT64_MAX : to + n; };
    add(report->dropped_series, in.dropped_series());
    add(report->dropped_samples, in.dropped_samples());
    add(report->dropped_series, local.dropped_series);
    add(report->dropped_samples, local.dropped_samples);
    if (report->first_dropped.empty() && !in.first_dropped().empty()) {
      report->first_dropped = Shorten(in.first_dropped(), 120);
      report->why = "the sender's limit of tag bytes per series";
    }
    if (report->first_dropped.empty()) {
      report->first_dropped = local.first_dropped;
      report->why = local.why;
    }
  }
  return absl::OkStatus();
}

}  // namespace barrage::metrics

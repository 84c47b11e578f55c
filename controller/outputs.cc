#include "controller/outputs.h"

#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/duration.h"
#include "common/log.h"
#include "common/output_file.h"
#include "common/status_macros.h"

namespace barrage::controller {

// A file, gzipped when its name ends in .gz (as k6 decides). Why zlib by
// hand: it is what gRPC already links, and the stream must be flushed
// (Z_SYNC_FLUSH) each period so that a file cut short by a second Ctrl-C
// still decompresses up to its last flush.
class Output::File {
 public:
  static absl::StatusOr<std::unique_ptr<File>> Create(const std::string& path) {
    absl::StatusOr<std::unique_ptr<OutputFile>> f = OutputFile::Create(path);
    if (!f.ok()) return f.status();
    auto file = std::unique_ptr<File>(new File(*std::move(f)));
    if (absl::EndsWith(path, ".gz")) {
      file->gzip_ = true;
      // windowBits 15 + 16: a gzip header and trailer rather than zlib's.
      // Level 1, not k6's 6: a load generator's CPU is better spent on the
      // load. Measured (tests/bench/README.md, raw_output.sh): level 6 cost
      // 1.99x the instructions per request of a run without --out, level 1
      // 1.63x; the file is 17x smaller than the plain text instead of 25x.
      if (deflateInit2(&file->z_, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        return absl::InternalError(absl::StrCat(path, ": zlib could not start"));
      }
    }
    return file;
  }
  ~File() {
    if (gzip_) deflateEnd(&z_);
  }
  absl::Status Write(std::string_view data, bool flush) {
    if (!gzip_) {
      BARRAGE_RETURN_IF_ERROR(out_->Append(data));
      return flush ? out_->Flush() : absl::OkStatus();
    }
    BARRAGE_RETURN_IF_ERROR(Deflate(data, flush ? Z_SYNC_FLUSH : Z_NO_FLUSH));
    return flush ? out_->Flush() : absl::OkStatus();
  }
  absl::Status Close() {
    if (gzip_ && !finished_) {
      finished_ = true;
      absl::Status st = Deflate("", Z_FINISH);
      if (!st.ok()) {
        (void)out_->Close();
        return st;
      }
    }
    return out_->Close();
  }
  const std::string& path() const { return out_->path(); }

 private:
  explicit File(std::unique_ptr<OutputFile> out) : out_(std::move(out)) {}
  absl::Status Deflate(std::string_view data, int mode) {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    z_.avail_in = static_cast<uInt>(data.size());
    char buf[64 << 10];
    do {
      z_.next_out = reinterpret_cast<Bytef*>(buf);
      z_.avail_out = sizeof(buf);
      const int r = deflate(&z_, mode);
      if (r == Z_STREAM_ERROR) return absl::InternalError(absl::StrCat(path(), ": zlib failed"));
      BARRAGE_RETURN_IF_ERROR(out_->Append(std::string_view(buf, sizeof(buf) - z_.avail_out)));
    } while (z_.avail_out == 0 || (mode == Z_FINISH && z_.avail_in > 0));
    return absl::OkStatus();
  }
  std::unique_ptr<OutputFile> out_;
  bool gzip_ = false;
  bool finished_ = false;
  z_stream z_{};
};

namespace {

constexpr char kHex[] = "0123456789abcdef";

// A tag set's or metadata's JSON object, keys sorted as Go sorts map keys.
std::string JsonObject(const std::map<std::string, std::string>& kv) {
  std::string out = "{";
  for (const auto& [k, v] : kv) {
    if (out.size() > 1) out.push_back(',');
    AppendGoJsonString(out, k);
    out.push_back(':');
    AppendGoJsonString(out, v);
  }
  out.push_back('}');
  return out;
}

metrics::MetricDef DefFromProto(const v1::MetricDefinition& d) {
  metrics::MetricDef def;
  def.name = d.name();
  def.type = static_cast<metrics::MetricType>(std::clamp(static_cast<int>(d.type()), 1, 4) - 1);
  def.contains = static_cast<metrics::ValueType>(std::clamp(static_cast<int>(d.contains()), 1, 3) - 1);
  return def;
}

// Formats each sample's time as it comes, reusing the text up to the
// second: samples of one second share it, and absl::FormatTime per sample
// would be most of the writer's time.
class TimeText {
 public:
  explicit TimeText(absl::TimeZone tz) : tz_(tz) {}
  // "2006-01-02T15:04:05" and the zone ("Z", "+02:00") of this second.
  void Set(int64_t unix_ns) {
    const int64_t sec = unix_ns >= 0 ? unix_ns / 1000000000 : -((-unix_ns + 999999999) / 1000000000);
    nanos_ = unix_ns - sec * 1000000000;
    if (sec == sec_) return;
    sec_ = sec;
    const absl::Time t = absl::FromUnixSeconds(sec);
    seconds_ = absl::FormatTime("%Y-%m-%dT%H:%M:%S", t, tz_);
    const int offset = tz_.At(t).offset;
    zone_ = offset == 0 ? "Z" : absl::FormatTime("%Ez", t, tz_);
  }
  void AppendRfc3339Nano(std::string& out) const {
    out += seconds_;
    if (nanos_ != 0) {
      char frac[10];
      int64_t n = nanos_;
      for (int i = 8; i >= 0; --i, n /= 10) frac[i] = static_cast<char>('0' + n % 10);
      int len = 9;
      while (len > 0 && frac[len - 1] == '0') --len;
      out.push_back('.');
      out.append(frac, len);
    }
    out += zone_;
  }
  void AppendRfc3339(std::string& out) const { out += seconds_ + zone_; }
  int64_t seconds() const { return sec_; }
  int64_t nanos() const { return nanos_; }

 private:
  absl::TimeZone tz_;
  int64_t sec_ = INT64_MIN;
  int64_t nanos_ = 0;
  std::string seconds_, zone_;
};

// The decoded tag sets of the messages seen, by their encoded form: the
// same few come in every message. Bounded: scripts with unique tag values
// just miss it.
template <typename T>
class TagCache {
 public:
  template <typename Make>
  const T& Get(const std::string& encoded, Make make) {
    auto it = cache_.find(encoded);
    if (it != cache_.end()) return it->second;
    if (cache_.size() >= 65536) cache_.clear();
    return cache_.emplace(encoded, make(metrics::DecodeTagSet(encoded))).first->second;
  }

 private:
  std::unordered_map<std::string, T> cache_;
};

// k6's output/json: a Metric line when a metric is first seen, then one
// Point line per sample (wrapper.go's envelopes, field order included).
class JsonOutput final : public Output {
 public:
  JsonOutput(std::unique_ptr<File> file, const OutputSettings& settings)
      : Output(std::move(file), absl::Milliseconds(200)), settings_(settings), time_(settings.time_zone) {
    // Sub-metrics come from thresholds, as in k6 (metric.go AddSubmetric):
    // "name{a:1, b:'2'}" gives suffix "a:1, b:'2'" and tags {a:1, b:2}.
    for (const auto& [key, specs] : settings.thresholds) {
      const size_t brace = key.find('{');
      if (brace == std::string::npos || key.back() != '}') continue;
      const std::string parent = key.substr(0, brace);
      const std::string suffix(absl::StripAsciiWhitespace(key.substr(brace + 1, key.size() - brace - 2)));
      metrics::TagSet tags;
      for (absl::string_view kv : absl::StrSplit(suffix, ',')) {
        if (kv.empty()) continue;
        const size_t colon = kv.find(':');
        auto trim = [](absl::string_view s) {
          s = absl::StripAsciiWhitespace(s);
          while (!s.empty() && (s.front() == '"' || s.front() == '\'')) s.remove_prefix(1);
          while (!s.empty() && (s.back() == '"' || s.back() == '\'')) s.remove_suffix(1);
          return std::string(s);
        };
        tags[trim(kv.substr(0, colon))] = colon == absl::string_view::npos ? "" : trim(kv.substr(colon + 1));
      }
      std::vector<Submetric>& list = submetrics_[parent];
      if (std::none_of(list.begin(), list.end(), [&](const Submetric& s) { return s.tags == tags; })) {
        list.push_back({absl::StrCat(parent, "{", suffix, "}"), suffix, tags});
      }
    }
  }

  void Add(const v1::RawSamples& batch) override {
    // Each Point line's start, up to its time, once per metric and message:
    // escaping the name for every sample was a fifth of the writer's time.
    std::vector<std::string> heads(batch.metrics_size());
    // As in k6, a metric's Metric line comes right before its first Point.
    std::vector<bool> described(batch.metrics_size());
    for (int i = 0; i < batch.metrics_size(); ++i) {
      const std::string& name = batch.metrics(i).name();
      heads[i] = "{\"metric\":";
      AppendGoJsonString(heads[i], name);
      heads[i] += ",\"type\":\"Point\",\"data\":{\"time\":\"";
      described[i] = seen_.contains(name);
    }
    std::vector<const std::string*> tags(batch.tag_sets_size());
    for (int i = 0; i < batch.tag_sets_size(); ++i) {
      tags[i] = &tags_.Get(batch.tag_sets(i), [](const metrics::TagSet& t) { return JsonObject(t); });
    }
    for (const v1::RawSample& s : batch.samples()) {
      // k6 cannot marshal NaN or ±Inf either: it logs and skips the sample.
      if (!std::isfinite(s.value())) {
        ++skipped_;
        continue;
      }
      if (!described[s.metric()]) {
        described[s.metric()] = true;
        const v1::MetricDefinition& d = batch.metrics(s.metric());
        if (seen_.insert(d.name()).second) AppendMetricLine(DefFromProto(d));
      }
      time_.Set(s.time_unix_ns());
      pending_ += heads[s.metric()];
      time_.AppendRfc3339Nano(pending_);
      pending_ += "\",\"value\":";
      AppendGoJsonNumber(pending_, s.value());
      pending_ += ",\"tags\":";
      pending_ += *tags[s.tag_set()];
      if (s.has_vu() || s.has_iter()) {
        // Go writes map keys sorted: iter before vu.
        pending_ += ",\"metadata\":{";
        if (s.has_iter()) absl::StrAppend(&pending_, "\"iter\":\"", s.iter(), "\"");
        if (s.has_vu()) absl::StrAppend(&pending_, s.has_iter() ? "," : "", "\"vu\":\"", s.vu(), "\"");
        pending_ += "}";
      }
      pending_ += "}}\n";
    }
  }

 private:
  struct Submetric {
    std::string name, suffix;
    metrics::TagSet tags;
  };

  void AppendMetricLine(const metrics::MetricDef& def) {
    pending_ += "{\"type\":\"Metric\",\"data\":{\"name\":";
    AppendGoJsonString(pending_, def.name);
    absl::StrAppend(&pending_, ",\"type\":\"", std::string(metrics::MetricTypeName(def.type)), "\",\"contains\":\"",
                    std::string(metrics::ValueTypeName(def.contains)), "\",\"thresholds\":[");
    auto it = settings_.thresholds.find(def.name);
    if (it != settings_.thresholds.end()) {
      for (size_t i = 0; i < it->second.size(); ++i) {
        const ThresholdSpec& t = it->second[i];
        if (i > 0) pending_ += ",";
        if (!t.abort_on_fail) {
          AppendGoJsonString(pending_, t.expression);
          continue;
        }
        // thresholds.go: the object form only with abortOnFail; an unset
        // delayAbortEval is null.
        pending_ += "{\"threshold\":";
        AppendGoJsonString(pending_, t.expression);
        pending_ += ",\"abortOnFail\":true,\"delayAbortEval\":";
        if (t.delay_abort_eval == absl::ZeroDuration()) {
          pending_ += "null";
        } else {
          AppendGoJsonString(pending_, FormatGoDuration(t.delay_abort_eval));
        }
        pending_ += "}";
      }
    }
    pending_ += "],\"submetrics\":";
    auto sub = submetrics_.find(def.name);
    if (sub == submetrics_.end()) {
      pending_ += "null";
    } else {
      pending_ += "[";
      for (size_t i = 0; i < sub->second.size(); ++i) {
        const Submetric& s = sub->second[i];
        if (i > 0) pending_ += ",";
        pending_ += "{\"name\":";
        AppendGoJsonString(pending_, s.name);
        pending_ += ",\"suffix\":";
        AppendGoJsonString(pending_, s.suffix);
        absl::StrAppend(&pending_, ",\"tags\":", JsonObject(s.tags), "}");
      }
      pending_ += "]";
    }
    pending_ += "},\"metric\":";
    AppendGoJsonString(pending_, def.name);
    pending_ += "}\n";
  }

  const OutputSettings settings_;
  TimeText time_;
  std::set<std::string> seen_;
  std::map<std::string, std::vector<Submetric>> submetrics_;
  TagCache<std::string> tags_;
  uint64_t skipped_ = 0;
};

// Go's encoding/csv: quoted when a field holds the separator, a quote, a
// line break, or starts with a space.
void AppendCsvField(std::string& out, std::string_view s) {
  const bool quote = !s.empty() && (s.find_first_of(",\"\r\n") != std::string_view::npos || s.front() == ' ' ||
                                    s.front() == '\t' || s == "\\.");
  if (!quote) {
    out.append(s);
    return;
  }
  out.push_back('"');
  for (char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

enum class CsvTime { kUnix, kUnixMilli, kUnixMicro, kUnixNano, kRfc3339, kRfc3339Nano };

// k6's output/csv: a header, then one row per sample. The columns are the
// enabled system tags but vu and iter (metadata), sorted; the other tags go
// to extra_tags and vu/iter to metadata as "k=v&k=v" (k6 writes them in
// Go's random map order; here sorted).
class CsvOutput final : public Output {
 public:
  CsvOutput(std::unique_ptr<File> file, const OutputSettings& settings, CsvTime format, absl::Duration every)
      : Output(std::move(file), every), format_(format), time_(settings.time_zone) {
    for (const std::string& t : settings.system_tags) {
      if (t != "vu" && t != "iter") columns_.push_back(t);
    }
    std::sort(columns_.begin(), columns_.end());
    columns_.erase(std::unique(columns_.begin(), columns_.end()), columns_.end());
    pending_ = absl::StrCat("metric_name,timestamp,metric_value,", absl::StrJoin(columns_, ","),
                            columns_.empty() ? "" : ",", "extra_tags,metadata\n");
  }

  void Add(const v1::RawSamples& batch) override {
    std::vector<std::string> tags(batch.tag_sets_size());
    for (int i = 0; i < batch.tag_sets_size(); ++i) tags[i] = Columns(batch.tag_sets(i));
    for (const v1::RawSample& s : batch.samples()) {
      AppendCsvField(pending_, batch.metrics(s.metric()).name());
      pending_.push_back(',');
      time_.Set(s.time_unix_ns());
      const int64_t ns = s.time_unix_ns();
      switch (format_) {
        case CsvTime::kUnix: absl::StrAppend(&pending_, time_.seconds()); break;
        case CsvTime::kUnixMilli: absl::StrAppend(&pending_, FloorDiv(ns, 1000000)); break;
        case CsvTime::kUnixMicro: absl::StrAppend(&pending_, FloorDiv(ns, 1000)); break;
        case CsvTime::kUnixNano: absl::StrAppend(&pending_, ns); break;
        case CsvTime::kRfc3339: time_.AppendRfc3339(pending_); break;
        case CsvTime::kRfc3339Nano: time_.AppendRfc3339Nano(pending_); break;
      }
      // Go's %f: six decimals.
      absl::StrAppend(&pending_, ",", absl::StrFormat("%f", s.value()), ",", tags[s.tag_set()], ",");
      if (s.has_vu() || s.has_iter()) {
        std::string meta;
        if (s.has_iter()) absl::StrAppend(&meta, "iter=", s.iter());
        if (s.has_vu()) absl::StrAppend(&meta, meta.empty() ? "" : "&", "vu=", s.vu());
        AppendCsvField(pending_, meta);
      }
      pending_.push_back('\n');
    }
  }

 private:
  static int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

  // The tag columns and extra_tags of a tag set, with their commas.
  const std::string& Columns(const std::string& encoded) {
    return tags_.Get(encoded, [this](const metrics::TagSet& t) {
      std::string out;
      std::string extra;
      for (const std::string& c : columns_) {
        auto it = t.find(c);
        if (it != t.end()) AppendCsvField(out, it->second);
        out.push_back(',');
      }
      for (const auto& [k, v] : t) {
        if (std::binary_search(columns_.begin(), columns_.end(), k)) continue;
        absl::StrAppend(&extra, extra.empty() ? "" : "&", k, "=", v);
      }
      AppendCsvField(out, extra);
      return out;
    });
  }

  const CsvTime format_;
  TimeText time_;
  std::vector<std::string> columns_;
  TagCache<std::string> tags_;
};

absl::StatusOr<std::unique_ptr<Output>> OpenCsv(const std::string& arg, const OutputSettings& settings) {
  // output/csv config.go: defaults, then K6_CSV_*, then the argument.
  std::string file_name = "file.csv", time_format = "unix", save_interval = "1s";
  auto env = [&](const char* k, std::string& v) {
    auto it = settings.env.find(k);
    if (it != settings.env.end() && !it->second.empty()) v = it->second;
  };
  env("K6_CSV_FILENAME", file_name);
  env("K6_CSV_TIME_FORMAT", time_format);
  env("K6_CSV_SAVE_INTERVAL", save_interval);
  if (arg.find('=') == std::string::npos) {
    if (!arg.empty()) file_name = arg;
  } else {
    for (absl::string_view pair : absl::StrSplit(arg, ',')) {
      const size_t eq = pair.find('=');
      const std::string k(pair.substr(0, eq));
      const std::string v(eq == absl::string_view::npos ? "" : pair.substr(eq + 1));
      if (v.empty()) return absl::InvalidArgumentError(absl::StrCat("--out csv: cannot parse '", arg, "'"));
      if (k == "fileName") {
        file_name = v;
      } else if (k == "timeFormat") {
        time_format = v;
      } else if (k == "saveInterval") {
        save_interval = v;
      } else {
        return absl::InvalidArgumentError(absl::StrCat("--out csv: unknown key '", k,
                                                       "' (fileName, timeFormat, saveInterval)"));
      }
    }
  }
  static const std::map<std::string, CsvTime> kFormats = {
      {"unix", CsvTime::kUnix},       {"unix_milli", CsvTime::kUnixMilli}, {"unix_micro", CsvTime::kUnixMicro},
      {"unix_nano", CsvTime::kUnixNano}, {"rfc3339", CsvTime::kRfc3339},   {"rfc3339_nano", CsvTime::kRfc3339Nano}};
  auto format = kFormats.find(time_format);
  if (format == kFormats.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--out csv: timeFormat '", time_format, "' is not one of unix, unix_milli, unix_micro, unix_nano, rfc3339, rfc3339_nano"));
  }
  absl::StatusOr<absl::Duration> every = ParseDuration(save_interval);
  if (!every.ok() || *every <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("--out csv: saveInterval '", save_interval, "' is not a duration"));
  }
  absl::StatusOr<std::unique_ptr<Output::File>> file = Output::File::Create(file_name);
  if (!file.ok()) return absl::InvalidArgumentError(absl::StrCat("--out csv: cannot write ", file.status().message()));
  auto out = std::make_unique<CsvOutput>(*std::move(file), settings, format->second, *every);
  // The header goes out at once, as k6's Start writes it.
  if (absl::Status st = out->Flush(absl::Now(), true); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--out csv: cannot write ", st.message()));
  }
  return out;
}

}  // namespace

void AppendGoJsonNumber(std::string& out, double v) {
  const double abs = std::fabs(v);
  const bool exp = abs != 0 && (abs < 1e-6 || abs >= 1e21);
  char buf[64];
  char* end = std::to_chars(buf, buf + sizeof(buf), v, exp ? std::chars_format::scientific : std::chars_format::fixed).ptr;
  // Go's encoding/json writes e-07 as e-7 (strconv gives at least two
  // exponent digits, as to_chars does; only that one case is trimmed).
  if (exp && end - buf >= 4 && end[-4] == 'e' && end[-3] == '-' && end[-2] == '0') {
    end[-2] = end[-1];
    --end;
  }
  out.append(buf, end);
}

std::string GoJsonNumber(double v) {
  std::string out;
  AppendGoJsonNumber(out, v);
  return out;
}

void AppendGoJsonString(std::string& out, std::string_view s) {
  out.push_back('"');
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          if (c < 0x20) {
            out += "\\u00";
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 0xf]);
          } else {
            out.push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    // UTF-8 as Go's utf8.DecodeRuneInString accepts it; anything else is
    // one byte of U+FFFD.
    size_t len = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
    bool ok = len > 0 && i + len <= s.size();
    uint32_t cp = 0;
    if (ok) {
      cp = c & (len == 2 ? 0x1f : len == 3 ? 0x0f : 0x07);
      for (size_t k = 1; k < len; ++k) {
        const unsigned char cc = static_cast<unsigned char>(s[i + k]);
        if ((cc & 0xc0) != 0x80) ok = false;
        cp = (cp << 6) | (cc & 0x3f);
      }
      if (ok && ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))) {
        ok = false;
      }
    }
    if (!ok) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    if (cp == 0x2028 || cp == 0x2029) {
      out += cp == 0x2028 ? "\\u2028" : "\\u2029";
    } else {
      out.append(s.substr(i, len));
    }
    i += len;
  }
  out.push_back('"');
}

std::string GoRfc3339Nano(int64_t unix_ns, absl::TimeZone tz) {
  TimeText t(tz);
  t.Set(unix_ns);
  std::string out;
  t.AppendRfc3339Nano(out);
  return out;
}

Output::Output(std::unique_ptr<File> file, absl::Duration flush_every)
    : file_(std::move(file)), flush_every_(flush_every) {}

Output::~Output() = default;

const std::string& Output::path() const { return file_->path(); }

absl::StatusOr<std::unique_ptr<Output>> Output::Open(const std::string& spec, const OutputSettings& settings) {
  const size_t eq = spec.find('=');
  const std::string kind = spec.substr(0, eq);
  const std::string arg = eq == std::string::npos ? "" : spec.substr(eq + 1);
  if (kind == "csv") return OpenCsv(arg, settings);
  if (kind != "json") {
    return absl::InvalidArgumentError(absl::StrCat("--out: unknown output '", kind, "' (json=FILE or csv=FILE)"));
  }
  if (arg.empty()) return absl::InvalidArgumentError("--out json: a file is required, as json=FILE");
  absl::StatusOr<std::unique_ptr<File>> file = File::Create(arg);
  if (!file.ok()) return absl::InvalidArgumentError(absl::StrCat("--out json: cannot write ", file.status().message()));
  return std::unique_ptr<Output>(new JsonOutput(*std::move(file), settings));
}

absl::Status Output::Flush(absl::Time now, bool force) {
  if (failed_) {
    pending_.clear();
    return absl::OkStatus();
  }
  if (!force && now - last_flush_ < flush_every_) return absl::OkStatus();
  last_flush_ = now;
  absl::Status st = file_->Write(pending_, /*flush=*/true);
  pending_.clear();
  if (!st.ok()) {
    failed_ = true;
    return absl::DataLossError(absl::StrCat("--out: writing ", st.message(), "; this output stops here"));
  }
  return absl::OkStatus();
}

absl::Status Output::Close() {
  absl::Status st = Flush(absl::InfiniteFuture(), true);
  absl::Status closed = file_->Close();
  if (!st.ok()) return st;
  if (failed_) return absl::OkStatus();  // said already
  if (!closed.ok()) return absl::DataLossError(absl::StrCat("--out: writing ", closed.message()));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SampleOutputs>> SampleOutputs::Open(const std::vector<std::string>& specs,
                                                                   const OutputSettings& settings,
                                                                   size_t max_queued_bytes) {
  std::unique_ptr<SampleOutputs> out(new SampleOutputs(max_queued_bytes));
  for (const std::string& spec : specs) {
    absl::StatusOr<std::unique_ptr<Output>> o = Output::Open(spec, settings);
    if (!o.ok()) return o.status();
    out->outputs_.push_back(*std::move(o));
  }
  if (!out->empty()) out->writer_ = std::thread([p = out.get()] { p->WriterLoop(); });
  return out;
}

SampleOutputs::~SampleOutputs() { Close(); }

absl::Status SampleOutputs::Check(const v1::RawSamples& batch) {
  // The same bounds as the deltas' (common/metrics/wire.h).
  for (const v1::MetricDefinition& d : batch.metrics()) {
    const std::string& n = d.name();
    if (n.empty() || n.size() > 128 ||
        std::any_of(n.begin(), n.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
      return absl::InvalidArgumentError(absl::StrCat("a metric name that is empty, over 128 bytes or holds a control "
                                                     "character ('", absl::CHexEscape(n.substr(0, 64)), "')"));
    }
    if (!v1::MetricType_IsValid(d.type()) || !v1::ValueType_IsValid(d.contains()) ||
        d.type() == v1::METRIC_TYPE_UNSPECIFIED || d.contains() == v1::VALUE_TYPE_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat("metric '", absl::CHexEscape(n), "' without a known type"));
    }
  }
  for (const std::string& t : batch.tag_sets()) {
    if (t.size() > (64 << 10)) return absl::InvalidArgumentError("a tag set over 64 KiB");
  }
  const uint32_t metrics = static_cast<uint32_t>(batch.metrics_size());
  const uint32_t tags = static_cast<uint32_t>(batch.tag_sets_size());
  for (const v1::RawSample& s : batch.samples()) {
    if (s.metric() >= metrics || s.tag_set() >= tags) {
      return absl::InvalidArgumentError(absl::StrCat("a sample refers to metric ", s.metric(), " of ", metrics,
                                                     " or tag set ", s.tag_set(), " of ", tags));
    }
  }
  if (batch.dropped() > (uint64_t{1} << 40)) return absl::InvalidArgumentError("a dropped count beyond 2^40");
  return absl::OkStatus();
}

void SampleOutputs::NoteDrop() {
  if (drop_logged_.exchange(true)) return;
  barrage::Log(Severity::kWarning,
               absl::StrCat("--out: samples are being dropped (", dropped(),
                            " so far): the outputs cannot keep up with the agents; the total is reported at the end"));
}

absl::Status SampleOutputs::Accept(const v1::RawSamples& batch) {
  BARRAGE_RETURN_IF_ERROR(Check(batch));
  if (batch.dropped() > 0) {
    dropped_agents_ += batch.dropped();
    NoteDrop();
  }
  if (batch.samples_size() == 0) return absl::OkStatus();
  {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t bytes = batch.ByteSizeLong();
    if (closed_ || empty() || queued_bytes_ + bytes > max_queued_bytes_) {
      dropped_queue_ += batch.samples_size();
    } else {
      queued_bytes_ += bytes;
      queue_.push_back(batch);
      cv_.notify_one();
      return absl::OkStatus();
    }
  }
  NoteDrop();
  return absl::OkStatus();
}

void SampleOutputs::AddVus(const metrics::TagSet& tags, int64_t vus, int64_t vus_max, absl::Time at) {
  if (empty()) return;
  v1::RawSamples batch;
  for (const char* name : {"vus", "vus_max"}) {
    v1::MetricDefinition* d = batch.add_metrics();
    d->set_name(name);
    d->set_type(v1::METRIC_TYPE_GAUGE);
    d->set_contains(v1::VALUE_TYPE_DEFAULT);
  }
  batch.add_tag_sets(metrics::EncodeTagSet(tags));
  for (int i = 0; i < 2; ++i) {
    v1::RawSample* s = batch.add_samples();
    s->set_metric(i);
    s->set_tag_set(0);
    s->set_value(static_cast<double>(i == 0 ? vus : vus_max));
    s->set_time_unix_ns(absl::ToUnixNanos(at));
  }
  (void)Accept(batch);
}

void SampleOutputs::WriterLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return closing_ || !queue_.empty(); });
    std::deque<v1::RawSamples> batches;
    batches.swap(queue_);
    queued_bytes_ = 0;
    const bool closing = closing_;
    lock.unlock();
    for (const v1::RawSamples& b : batches) {
      for (auto& out : outputs_) out->Add(b);
    }
    const absl::Time now = absl::Now();
    for (auto& out : outputs_) {
      if (absl::Status st = out->Flush(now, closing); !st.ok()) barrage::Log(Severity::kError, st.message());
    }
    lock.lock();
    if (closing && queue_.empty()) return;
  }
}

void SampleOutputs::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = closing_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  for (auto& out : outputs_) {
    if (absl::Status st = out->Close(); !st.ok()) barrage::Log(Severity::kError, st.message());
  }
  if (const uint64_t n = dropped(); n > 0) {
    std::vector<std::string> paths;
    for (const auto& out : outputs_) paths.push_back(out->path());
    barrage::Log(Severity::kError,
                 absl::StrCat("--out: ", n, " samples were dropped and are missing from ", absl::StrJoin(paths, ", "),
                              " (", dropped_agents_.load(), " by the agents, whose buffers were full; ",
                              dropped_queue_.load(), " by the controller, whose queue was full)"));
  }
}

}  // namespace barrage::controller

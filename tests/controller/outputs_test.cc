// --out json and csv: k6's own test cases (grafana/k6 internal/output/json/
// json_test.go and internal/output/csv/output_test.go) with k6's expected
// texts. Where k6's samples carry arbitrary metadata keys, these carry the
// only metadata Barrage has, vu and iter; the texts change accordingly.
#include "controller/outputs.h"

#include <unistd.h>
#include <zlib.h>

#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace barrage::controller {
namespace {

using ::testing::HasSubstr;

struct TestSample {
  std::string metric;
  metrics::TagSet tags;
  int64_t time_ns;
  double value;
  int64_t vu = -1, iter = -1;
};

// One message as an agent would send it (names and tag sets interned).
v1::RawSamples Batch(const std::vector<TestSample>& samples, const std::map<std::string, metrics::MetricDef>& defs) {
  v1::RawSamples b;
  std::map<std::string, int> metric_at, tags_at;
  for (const TestSample& s : samples) {
    if (!metric_at.contains(s.metric)) {
      metric_at[s.metric] = b.metrics_size();
      v1::MetricDefinition* d = b.add_metrics();
      d->set_name(s.metric);
      d->set_type(static_cast<v1::MetricType>(static_cast<int>(defs.at(s.metric).type) + 1));
      d->set_contains(static_cast<v1::ValueType>(static_cast<int>(defs.at(s.metric).contains) + 1));
    }
    const std::string enc = metrics::EncodeTagSet(s.tags);
    if (!tags_at.contains(enc)) {
      tags_at[enc] = b.tag_sets_size();
      b.add_tag_sets(enc);
    }
    v1::RawSample* r = b.add_samples();
    r->set_metric(metric_at[s.metric]);
    r->set_tag_set(tags_at[enc]);
    r->set_value(s.value);
    r->set_time_unix_ns(s.time_ns);
    if (s.vu >= 0) r->set_vu(s.vu);
    if (s.iter >= 0) r->set_iter(s.iter);
  }
  return b;
}

std::string ReadFile(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files as they are
  std::string out;
  char buf[4096];
  for (int n; (n = gzread(f, buf, sizeof(buf))) > 0;) out.append(buf, n);
  gzclose(f);
  return out;
}

bool IsGzip(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[2] = {};
  in.read(magic, 2);
  return static_cast<unsigned char>(magic[0]) == 0x1f && static_cast<unsigned char>(magic[1]) == 0x8b;
}

class OutputsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/barrage_outputs_test_XXXXXX";
    dir_ = mkdtemp(tmpl);
    settings_.time_zone = absl::UTCTimeZone();
  }
  void TearDown() override { (void)system(("rm -rf " + dir_).c_str()); }

  std::string WriteAll(const std::string& spec, const std::vector<v1::RawSamples>& batches) {
    absl::StatusOr<std::unique_ptr<Output>> out = Output::Open(spec, settings_);
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) return "";
    for (const auto& b : batches) {
      EXPECT_TRUE(SampleOutputs::Check(b).ok());
      (*out)->Add(b);
    }
    EXPECT_TRUE((*out)->Close().ok());
    return (*out)->path();
  }

  std::string dir_;
  OutputSettings settings_;
};

constexpr int64_t kTime1 = 1614173830LL * 1000000000;  // 2021-02-24T13:37:10Z
constexpr int64_t kTime2 = kTime1 + 10LL * 1000000000;
constexpr int64_t kTime3 = kTime2 + 10LL * 1000000000;

// json_test.go generateTestMetricSamples, in two AddMetricSamples calls.
std::vector<v1::RawSamples> K6JsonSamples() {
  const std::map<std::string, metrics::MetricDef> defs = {
      {"my_metric1", {"my_metric1", metrics::MetricType::kGauge, metrics::ValueType::kDefault}},
      {"my_metric2", {"my_metric2", metrics::MetricType::kCounter, metrics::ValueType::kData}}};
  return {Batch({{"my_metric1", {{"tag1", "val1"}}, kTime1, 1, /*vu=*/1, /*iter=*/7},
                 {"my_metric1", {{"tag2", "val2"}}, kTime1, 2}},
                defs),
          Batch({{"my_metric2", {{"key", "val"}}, kTime2, 3},
                 {"my_metric1", {{"key", "val"}}, kTime2, 4},
                 {"my_metric2", {{"tag3", "val3"}, {"tag4", "val4"}}, kTime3, 5, /*vu=*/3}},
                defs)};
}

// k6's expected lines, byte for byte (k6 compares them as JSON; Barrage
// writes its envelopes' field order: wrapper.go's structs).
const char* const kK6JsonLines[] = {
    R"({"type":"Metric","data":{"name":"my_metric1","type":"gauge","contains":"default","thresholds":["rate<0.01","p(99)<250"],"submetrics":[{"name":"my_metric1{a:1,b:2}","suffix":"a:1,b:2","tags":{"a":"1","b":"2"}}]},"metric":"my_metric1"})",
    R"({"metric":"my_metric1","type":"Point","data":{"time":"2021-02-24T13:37:10Z","value":1,"tags":{"tag1":"val1"},"metadata":{"iter":"7","vu":"1"}}})",
    R"({"metric":"my_metric1","type":"Point","data":{"time":"2021-02-24T13:37:10Z","value":2,"tags":{"tag2":"val2"}}})",
    R"({"type":"Metric","data":{"name":"my_metric2","type":"counter","contains":"data","thresholds":[],"submetrics":null},"metric":"my_metric2"})",
    R"({"metric":"my_metric2","type":"Point","data":{"time":"2021-02-24T13:37:20Z","value":3,"tags":{"key":"val"}}})",
    R"({"metric":"my_metric1","type":"Point","data":{"time":"2021-02-24T13:37:20Z","value":4,"tags":{"key":"val"}}})",
    R"({"metric":"my_metric2","type":"Point","data":{"time":"2021-02-24T13:37:30Z","value":5,"tags":{"tag3":"val3","tag4":"val4"},"metadata":{"vu":"3"}}})",
};

std::string K6JsonText() {
  std::string out;
  for (const char* line : kK6JsonLines) out += std::string(line) + "\n";
  return out;
}

TEST_F(OutputsTest, JsonOutputFileWritesK6sLines) {
  // json_test.go setThresholds, and the sub-metric its registry holds.
  settings_.thresholds["my_metric1"] = {{"rate<0.01"}, {"p(99)<250"}};
  settings_.thresholds["my_metric1{a:1,b:2}"] = {{"max<1"}};
  const std::string path = WriteAll("json=" + dir_ + "/json-output", K6JsonSamples());
  EXPECT_FALSE(IsGzip(path));
  EXPECT_EQ(ReadFile(path), K6JsonText());
}

TEST_F(OutputsTest, JsonOutputFileGzipped) {
  settings_.thresholds["my_metric1"] = {{"rate<0.01"}, {"p(99)<250"}};
  settings_.thresholds["my_metric1{a:1,b:2}"] = {{"max<1"}};
  const std::string path = WriteAll("json=" + dir_ + "/json-output.gz", K6JsonSamples());
  EXPECT_TRUE(IsGzip(path));
  EXPECT_EQ(ReadFile(path), K6JsonText());
}

TEST_F(OutputsTest, JsonOutputFileError) {
  absl::StatusOr<std::unique_ptr<Output>> out = Output::Open("json=" + dir_ + "/missing/json-output", settings_);
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), HasSubstr("--out json: cannot write " + dir_ + "/missing/json-output"));
}

TEST_F(OutputsTest, AbortOnFailThresholdsAreObjectsAsInK6) {
  settings_.thresholds["grpc_req_duration"] = {{"p(95)<200", false, absl::ZeroDuration()},
                                               {"p(99)<300", true, absl::ZeroDuration()},
                                               {"max<1000", true, absl::Seconds(10)}};
  const std::map<std::string, metrics::MetricDef> defs = {
      {"grpc_req_duration", {"grpc_req_duration", metrics::MetricType::kTrend, metrics::ValueType::kTime}}};
  const std::string path =
      WriteAll("json=" + dir_ + "/t.json", {Batch({{"grpc_req_duration", {}, kTime1 + 1500, 1.25}}, defs)});
  EXPECT_EQ(ReadFile(path),
            R"({"type":"Metric","data":{"name":"grpc_req_duration","type":"trend","contains":"time","thresholds":)"
            R"(["p(95)<200",{"threshold":"p(99)<300","abortOnFail":true,"delayAbortEval":null},)"
            R"({"threshold":"max<1000","abortOnFail":true,"delayAbortEval":"10s"}],"submetrics":null},)"
            R"("metric":"grpc_req_duration"})"
            "\n"
            R"({"metric":"grpc_req_duration","type":"Point","data":{"time":"2021-02-24T13:37:10.0000015Z",)"
            R"("value":1.25,"tags":{}}})"
            "\n");
}

TEST(GoJsonTest, NumbersAreWrittenAsEncodingJsonWritesThem) {
  EXPECT_EQ(GoJsonNumber(1), "1");
  EXPECT_EQ(GoJsonNumber(0), "0");
  EXPECT_EQ(GoJsonNumber(-2.5), "-2.5");
  EXPECT_EQ(GoJsonNumber(0.1), "0.1");
  EXPECT_EQ(GoJsonNumber(123456789.125), "123456789.125");
  EXPECT_EQ(GoJsonNumber(1e20), "100000000000000000000");
  EXPECT_EQ(GoJsonNumber(1e21), "1e+21");
  EXPECT_EQ(GoJsonNumber(0.000001), "0.000001");
  EXPECT_EQ(GoJsonNumber(1e-7), "1e-7");
  EXPECT_EQ(GoJsonNumber(1.5e-10), "1.5e-10");
}

TEST(GoJsonTest, StringsAreEscapedAsEncodingJsonEscapesThem) {
  std::string out;
  AppendGoJsonString(out, std::string("a\"b\\c\n\t\x01<&>\xe2\x80\xa8\xff\xc3\xa9", 17));
  EXPECT_EQ(out, R"("a\"b\\c\n\t\u0001<&>\u2028\ufffdé")");
}

TEST(GoJsonTest, TimesAreRfc3339Nano) {
  EXPECT_EQ(GoRfc3339Nano(kTime1, absl::UTCTimeZone()), "2021-02-24T13:37:10Z");
  EXPECT_EQ(GoRfc3339Nano(kTime1 + 25, absl::UTCTimeZone()), "2021-02-24T13:37:10.000000025Z");
  EXPECT_EQ(GoRfc3339Nano(kTime1 + 120000000, absl::FixedTimeZone(2 * 3600)), "2021-02-24T15:37:10.12+02:00");
}

// output_test.go TestRun: system tags check and error are the columns.
TEST_F(OutputsTest, CsvOutputWritesK6sRows) {
  settings_.system_tags = {"error", "check", "vu", "iter"};  // vu, iter: metadata, no columns
  const std::map<std::string, metrics::MetricDef> defs = {
      {"my_metric", {"my_metric", metrics::MetricType::kGauge, metrics::ValueType::kDefault}}};
  const metrics::TagSet base = {{"check", "val1"}, {"url", "val2"}, {"error", "val3"}};
  metrics::TagSet more = base;
  more["tag4"] = "val4";
  metrics::TagSet named = base;
  named["name"] = "val4";
  const int64_t t1 = 1562324643LL * 1000000000, t2 = 1562324644LL * 1000000000;
  std::string path = WriteAll("csv=" + dir_ + "/test", {Batch({{"my_metric", base, t1, 1}, {"my_metric", more, t2, 1}}, defs)});
  EXPECT_EQ(ReadFile(path),
            "metric_name,timestamp,metric_value,check,error,extra_tags,metadata\n"
            "my_metric,1562324643,1.000000,val1,val3,url=val2,\n"
            "my_metric,1562324644,1.000000,val1,val3,tag4=val4&url=val2,\n");
  path = WriteAll("csv=fileName=" + dir_ + "/test.gz,timeFormat=unix",
                  {Batch({{"my_metric", base, t1, 1, 1, 0}, {"my_metric", named, t2, 1}}, defs)});
  EXPECT_TRUE(IsGzip(path));
  EXPECT_EQ(ReadFile(path),
            "metric_name,timestamp,metric_value,check,error,extra_tags,metadata\n"
            "my_metric,1562324643,1.000000,val1,val3,url=val2,iter=0&vu=1\n"
            "my_metric,1562324644,1.000000,val1,val3,name=val4&url=val2,\n");
  path = WriteAll("csv=fileName=" + dir_ + "/t3,timeFormat=rfc3339",
                  {Batch({{"my_metric", base, t2, 1}, {"my_metric", named, t2, 1, 2, 3}}, defs)});
  EXPECT_EQ(ReadFile(path),
            "metric_name,timestamp,metric_value,check,error,extra_tags,metadata\n"
            "my_metric,2019-07-05T11:04:04Z,1.000000,val1,val3,url=val2,\n"
            "my_metric,2019-07-05T11:04:04Z,1.000000,val1,val3,name=val4&url=val2,iter=3&vu=2\n");
}

// output_test.go TestSampleToRow: the time formats.
TEST_F(OutputsTest, CsvTimeFormats) {
  settings_.system_tags = {"tag1", "tag3"};
  const std::map<std::string, metrics::MetricDef> defs = {
      {"my_metric", {"my_metric", metrics::MetricType::kGauge, metrics::ValueType::kDefault}}};
  const metrics::TagSet tags = {{"tag1", "val1"}, {"tag2", "val2"}, {"tag3", "val3"}};
  const int64_t base = 1562324644LL * 1000000000;
  const std::vector<std::pair<std::string, std::pair<int64_t, std::string>>> cases = {
      {"unix_nano", {base + 25, "1562324644000000025"}},
      {"unix_micro", {base + 2125, "1562324644000002"}},
      {"unix_milli", {base + 6482125, "1562324644006"}},
      {"rfc3339_nano", {base, "2019-07-05T11:04:04Z"}},
      {"rfc3339_nano", {base + 25, "2019-07-05T11:04:04.000000025Z"}},
  };
  for (const auto& [format, c] : cases) {
    const std::string path = WriteAll("csv=fileName=" + dir_ + "/" + format + ",timeFormat=" + format,
                                      {Batch({{"my_metric", tags, c.first, 1}}, defs)});
    EXPECT_EQ(ReadFile(path), "metric_name,timestamp,metric_value,tag1,tag3,extra_tags,metadata\n"
                              "my_metric," + c.second + ",1.000000,val1,val3,tag2=val2,\n")
        << format;
  }
  absl::StatusOr<std::unique_ptr<Output>> bad = Output::Open("csv=fileName=x.csv,timeFormat=iso", settings_);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("timeFormat 'iso'"));
  bad = Output::Open("csv=fileName=x.csv,color=red", settings_);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("unknown key 'color'"));
}

TEST_F(OutputsTest, CsvQuotesAsGoDoes) {
  settings_.system_tags = {"check"};
  const std::map<std::string, metrics::MetricDef> defs = {
      {"checks", {"checks", metrics::MetricType::kRate, metrics::ValueType::kDefault}}};
  const std::string path = WriteAll(
      "csv=" + dir_ + "/q.csv", {Batch({{"checks", {{"check", "a, \"b\""}, {"x", " y"}}, 1562324644LL * 1000000000, 0.5}}, defs)});
  EXPECT_EQ(ReadFile(path), "metric_name,timestamp,metric_value,check,extra_tags,metadata\n"
                            "checks,1562324644,0.500000,\"a, \"\"b\"\"\",x= y,\n");
}

TEST_F(OutputsTest, MalformedMessagesAreRefused) {
  const std::map<std::string, metrics::MetricDef> defs = {
      {"m", {"m", metrics::MetricType::kCounter, metrics::ValueType::kDefault}}};
  v1::RawSamples b = Batch({{"m", {}, 1, 1}}, defs);
  EXPECT_TRUE(SampleOutputs::Check(b).ok());
  b.mutable_samples(0)->set_tag_set(5);
  EXPECT_THAT(SampleOutputs::Check(b).message(), HasSubstr("tag set 5 of 1"));
  b = Batch({{"m", {}, 1, 1}}, defs);
  b.mutable_metrics(0)->set_type(v1::METRIC_TYPE_UNSPECIFIED);
  EXPECT_FALSE(SampleOutputs::Check(b).ok());
  b = Batch({{"m", {}, 1, 1}}, defs);
  b.mutable_metrics(0)->set_name(std::string("a\x1b[2J", 5));
  EXPECT_THAT(SampleOutputs::Check(b).message(), HasSubstr("control character"));
}

// The queue is bounded: what does not fit is counted, never silently lost,
// and what was queued is in the finished file.
TEST_F(OutputsTest, AFullQueueDropsAndCountsAndTheFileStaysValid) {
  const std::map<std::string, metrics::MetricDef> defs = {
      {"m", {"m", metrics::MetricType::kCounter, metrics::ValueType::kDefault}}};
  std::vector<TestSample> many;
  for (int i = 0; i < 1000; ++i) many.push_back({"m", {{"k", "v"}}, kTime1 + i, 1});
  const v1::RawSamples batch = Batch(many, defs);
  absl::StatusOr<std::unique_ptr<SampleOutputs>> outs =
      SampleOutputs::Open({"json=" + dir_ + "/q.json.gz"}, settings_, /*max_queued_bytes=*/batch.ByteSizeLong() * 3);
  ASSERT_TRUE(outs.ok()) << outs.status();
  v1::RawSamples reported = batch;
  reported.set_dropped(7);  // an agent's own drops
  uint64_t accepted = 0;
  // Faster than any writer can keep up with: some must be dropped.
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE((*outs)->Accept(i == 0 ? reported : batch).ok());
    accepted += 1000;
  }
  (*outs)->Close();
  const uint64_t dropped = (*outs)->dropped();
  EXPECT_GT(dropped, 7u);
  std::istringstream lines(ReadFile(dir_ + "/q.json.gz"));
  uint64_t points = 0;
  for (std::string line; std::getline(lines, line);) points += line.find("\"Point\"") != std::string::npos;
  EXPECT_EQ(points + dropped - 7, accepted);
  // After Close, samples are counted as dropped too.
  ASSERT_TRUE((*outs)->Accept(batch).ok());
  EXPECT_EQ((*outs)->dropped(), dropped + 1000);
}

}  // namespace
}  // namespace barrage::controller

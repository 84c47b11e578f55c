// --out json / csv end to end (spec §4.6): every sample the agents measure
// reaches the files, the embedded agent and remote agents alike, as k6's
// lines; the counts equal the summary's; Ctrl-C leaves finished files.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <zlib.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "tests/integration/fixture.h"

namespace barrage {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// Each VU tags its calls with its id in the whole test (a VU's __VU is
// only unique within its agent), so order can be checked per VU.
const char kScript[] = R"(
import grpc from 'k6/net/grpc';
import { check } from 'k6';
import exec from 'k6/execution';
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
export const options = __OPTIONS__;
export default () => {
  if (exec.vu.iterationInScenario === 0) client.connect(__ENV.TARGET, { plaintext: true });
  const tags = { vid: String(exec.vu.idInTest) };
  check(client.invoke('hello.HelloService/SayHello', { greeting: 'raw' }, { tags }), { ok: (r) => r.status === grpc.StatusOK });
  client.invoke('hello.HelloService/SayHello', { greeting: 'raw' }, { tags });
};
)";

// The whole file; gzip when it is one. *complete: the gzip stream ended
// with its trailer (a file cut short reads as far as it goes, but not so).
std::string ReadMaybeGzip(const std::string& path, bool* complete = nullptr) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return "";
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) out.append(buf, n);
  int err = Z_OK;
  gzerror(f, &err);
  if (complete != nullptr) *complete = n == 0 && err == Z_OK;
  gzclose(f);
  return out;
}

struct JsonFile {
  std::map<std::string, int> points;                 // by metric
  std::set<std::string> request_tag_keys;            // of grpc_req_duration points
  std::set<std::string> request_metadata_keys;
  std::map<std::string, std::vector<int64_t>> iter_by_vid;  // iterations' iter metadata
  bool ordered = true;                               // per VU, times never go back
  std::string first_unordered;
  int lines = 0;
};

// Parses every line (a failure fails the test), as k6's readers would.
JsonFile ParseJson(const std::string& text) {
  JsonFile f;
  std::set<std::string> described;
  std::map<std::string, std::string> last_time_by_vid;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    ++f.lines;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(j.is_discarded()) << "line " << f.lines << " is not JSON: " << line;
    if (j.is_discarded()) continue;
    const std::string metric = j.value("metric", "");
    if (j["type"] == "Metric") {
      EXPECT_EQ(j["data"]["name"], metric);
      EXPECT_TRUE(j["data"]["thresholds"].is_array());
      described.insert(metric);
      continue;
    }
    EXPECT_EQ(j["type"], "Point") << line;
    EXPECT_TRUE(described.contains(metric)) << metric << " has a point before its Metric line";
    f.points[metric]++;
    const nlohmann::json& data = j["data"];
    EXPECT_TRUE(data["value"].is_number()) << line;
    const std::string time = data["time"];
    // RFC 3339 with nanoseconds at most, "Z" or the local offset.
    EXPECT_TRUE(time.size() >= 20 && time[10] == 'T' &&
                (time.back() == 'Z' || time[time.size() - 6] == '+' || time[time.size() - 6] == '-'))
        << time;
    if (metric == "grpc_req_duration") {
      for (const auto& [k, v] : data["tags"].items()) f.request_tag_keys.insert(k);
      if (data.contains("metadata")) {
        for (const auto& [k, v] : data["metadata"].items()) f.request_metadata_keys.insert(k);
      }
      // The same width (fraction trimmed by Go's rule), so compared as
      // numbers: seconds then fraction.
      const std::string vid = data["tags"].value("vid", "");
      auto padded = [](const std::string& t) {
        std::string s = t.substr(0, t.size() - 1);  // no Z
        const size_t dot = s.find('.');
        std::string frac = dot == std::string::npos ? "" : s.substr(dot + 1);
        frac.resize(9, '0');
        return s.substr(0, std::min(s.size(), dot)) + "." + frac;
      };
      const std::string t = padded(time);
      if (t < last_time_by_vid[vid] && f.ordered) {
        f.ordered = false;
        f.first_unordered = vid + ": " + time + " after " + last_time_by_vid[vid];
      }
      last_time_by_vid[vid] = t;
    }
  }
  return f;
}

class RawOutputTest : public testutil::TargetFixture {
 protected:
  std::string Script(const std::string& options) {
    std::string s = kScript;
    s.replace(s.find("__OPTIONS__"), 11, options);
    return Write("raw.js", s);
  }
  nlohmann::json Export() { return nlohmann::json::parse(std::ifstream(dir_ + "/summary.json")); }
  int Count(const nlohmann::json& e, const std::string& metric) {
    return e["metrics"][metric].value("count", 0);
  }

  // Every output of one run agrees with the summary's counts.
  void CheckOutputs(int vus) {
    const nlohmann::json e = Export();
    const int reqs = Count(e, "grpc_reqs"), iterations = Count(e, "iterations");
    ASSERT_GT(iterations, 0);
    EXPECT_EQ(reqs, 2 * iterations);
    const std::string plain = ReadMaybeGzip(dir_ + "/f.json");
    bool complete = false;
    const std::string unzipped = ReadMaybeGzip(dir_ + "/f.json.gz", &complete);
    EXPECT_TRUE(complete) << "the gzip stream is not finished";
    EXPECT_EQ(plain, unzipped);
    const JsonFile f = ParseJson(plain);
    EXPECT_EQ(f.points.at("grpc_reqs"), reqs);
    EXPECT_EQ(f.points.at("grpc_req_duration"), Count(e, "grpc_req_duration"));
    EXPECT_EQ(f.points.at("iterations"), iterations);
    EXPECT_EQ(f.points.at("checks"), e["metrics"]["checks"].value("passes", 0) + e["metrics"]["checks"].value("fails", 0));
    // The series' tags: the default system tags a unary call carries, the
    // test-wide tag and the call's own; vu and iter as metadata.
    for (const char* key : {"group", "method", "name", "scenario", "service", "status", "team", "url", "vid"}) {
      EXPECT_TRUE(f.request_tag_keys.contains(key)) << key;
    }
    EXPECT_FALSE(f.request_tag_keys.contains("vu") || f.request_tag_keys.contains("iter"));  // metadata
    EXPECT_EQ(f.request_metadata_keys, (std::set<std::string>{"iter", "vu"}));
    EXPECT_TRUE(f.ordered) << f.first_unordered;

    // csv: the same samples, k6's columns.
    std::istringstream csv(ReadMaybeGzip(dir_ + "/f.csv"));
    std::string header;
    std::getline(csv, header);
    EXPECT_EQ(header,
              "metric_name,timestamp,metric_value,check,error,error_code,expected_response,group,method,name,proto,"
              "scenario,service,status,subproto,tls_version,url,extra_tags,metadata");
    std::map<std::string, int> rows;
    for (std::string line; std::getline(csv, line);) {
      const std::vector<std::string> cells = absl::StrSplit(line, ',');
      ASSERT_EQ(cells.size(), 19u) << line;
      rows[cells[0]]++;
      if (cells[0] == "grpc_reqs") {
        EXPECT_EQ(cells[2], "1.000000");
        EXPECT_EQ(cells[8], "SayHello");
        EXPECT_THAT(cells[17], ::testing::StartsWith("team=a&vid="));
        EXPECT_THAT(cells[18], ::testing::MatchesRegex("iter=[0-9]+&vu=[0-9]+"));
      }
    }
    EXPECT_EQ(rows["grpc_reqs"], reqs);
    EXPECT_EQ(rows["iterations"], iterations);
    (void)vus;
  }

  std::vector<std::string> Outputs() {
    return {"--out", "json=" + dir_ + "/f.json", "--out", "json=" + dir_ + "/f.json.gz", "--out", "csv=" + dir_ + "/f.csv",
            "--summary-export", dir_ + "/summary.json", "--tag", "team=a", "--summary-trend-stats", "avg,count"};
  }
  static constexpr char kOptions[] =
      "{ vus: 4, iterations: 200, systemTags: ['check','error','error_code','expected_response','group','method',"
      "'name','proto','scenario','service','status','subproto','tls_version','url','vu','iter'] }";
};

TEST_F(RawOutputTest, EmbeddedRunWritesEverySampleAsK6Does) {
  std::vector<std::string> args = Outputs();
  args.insert(args.end(), {"-q", "-e", "TARGET=" + address_, Script(kOptions)});
  testutil::RunResult run = testutil::Run(testutil::BinaryPath("barrage"), [&] {
    args.insert(args.begin(), "run");
    return args;
  }(), 60s, {{"TZ", "UTC"}});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  CheckOutputs(4);
  // One VU's iterations carry iter 0, 1, 2, ... in order (k6's __ITER).
  std::istringstream in(ReadMaybeGzip(dir_ + "/f.json"));
  std::map<std::string, int64_t> next_iter;
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j["type"] != "Point" || j["metric"] != "iterations") continue;
    const std::string vu = j["data"]["metadata"]["vu"];
    EXPECT_EQ(std::stoll(j["data"]["metadata"]["iter"].get<std::string>()), next_iter[vu]++) << line;
  }
  EXPECT_EQ(next_iter.size(), 4u);
}

TEST_F(RawOutputTest, TwoAgentsForwardEverySample) {
  std::vector<std::string> args = Outputs();
  args.insert(args.end(), {"--agents", "2", "-q", "-e", "TARGET=" + address_, Script(kOptions)});
  args.insert(args.begin(), "run");
  testutil::RunResult run = testutil::Run(testutil::BinaryPath("barrage"), args, 90s, {{"TZ", "UTC"}});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  CheckOutputs(4);
}

TEST_F(RawOutputTest, WithoutVuAndIterThereIsNoMetadata) {
  const std::string script = Script("{ vus: 2, iterations: 10 }");
  testutil::RunResult run = Barrage({"-q", "-e", "TARGET=" + address_, "--out", "json=" + dir_ + "/f.json", script});
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  const std::string text = ReadMaybeGzip(dir_ + "/f.json");
  EXPECT_EQ(ParseJson(text).points["grpc_reqs"], 20);  // one per call
  EXPECT_THAT(text, ::testing::Not(HasSubstr("metadata")));
}

// What a lost agent sent is kept and written; the files are finished.
TEST_F(RawOutputTest, AKilledAgentLeavesFinishedFilesWithWhatItSent) {
  const std::string script = Script(
      "{ scenarios: { s: { executor: 'constant-vus', vus: 2, duration: '30s', gracefulStop: '1s' } } }");
  auto controller = testutil::ChildProcess::Start(
      testutil::BinaryPath("barrage"),
      {"run", "--listen", "127.0.0.1:0", "--expect-agents", "2", "--agent-timeout", "20s", "-e", "TARGET=" + address_,
       "--out", "json=" + dir_ + "/f.json.gz", "--summary-export", dir_ + "/summary.json", script});
  absl::StatusOr<std::string> line = controller->WaitForLine("control plane listening on ([0-9.:]+)", 20s);
  ASSERT_TRUE(line.ok()) << line.status();
  const size_t at = line->find("listening on ") + 13;
  const std::string address = line->substr(at, line->find_first_of(", ", at) - at);
  auto a1 = testutil::ChildProcess::Start(testutil::BinaryPath("barrage-agent"),
                                          {"--controller", address, "--once", "--name", "a-1"});
  auto a2 = testutil::ChildProcess::Start(testutil::BinaryPath("barrage-agent"),
                                          {"--controller", address, "--once", "--name", "a-2"});
  ASSERT_TRUE(controller->WaitForLine("running \\(", 30s).ok()) << controller->stderr_text();
  std::this_thread::sleep_for(2500ms);
  a2->Signal(SIGKILL);
  EXPECT_EQ(controller->Wait(30s), 111) << controller->stderr_text();
  EXPECT_EQ(a1->Wait(15s), 0);
  bool complete = false;
  const JsonFile f = ParseJson(ReadMaybeGzip(dir_ + "/f.json.gz", &complete));
  EXPECT_TRUE(complete) << "the gzip stream is not finished";
  const int reqs = Count(Export(), "grpc_reqs");
  EXPECT_GT(f.points.at("grpc_reqs"), 0);
  // The killed agent's last batch may have gone out with or without its
  // delta; everything else matches.
  EXPECT_LE(std::abs(f.points.at("grpc_reqs") - reqs), reqs / 10 + 1) << reqs;
}

TEST_F(RawOutputTest, CtrlCMidRunLeavesFinishedFilesWithEverySampleSoFar) {
  const std::string script = Script(
      "{ scenarios: { s: { executor: 'constant-vus', vus: 2, duration: '60s' } }, systemTags: ['vu','iter','status'] }");
  auto barrage = testutil::ChildProcess::Start(
      testutil::BinaryPath("barrage"),
      {"run", "--agents", "2", "-e", "TARGET=" + address_, "--out", "json=" + dir_ + "/f.json.gz", "--out",
       "csv=" + dir_ + "/f.csv.gz", "--summary-export", dir_ + "/summary.json", script});
  ASSERT_TRUE(barrage->WaitForLine("running \\(", 30s).ok()) << barrage->stderr_text();
  std::this_thread::sleep_for(1500ms);
  barrage->Signal(SIGINT);
  ASSERT_EQ(barrage->Wait(30s), 105) << barrage->stderr_text();
  bool complete = false;
  const JsonFile f = ParseJson(ReadMaybeGzip(dir_ + "/f.json.gz", &complete));
  EXPECT_TRUE(complete) << "the gzip stream of f.json.gz is not finished";
  const nlohmann::json e = Export();
  EXPECT_GT(Count(e, "grpc_reqs"), 0);
  EXPECT_EQ(f.points.at("grpc_reqs"), Count(e, "grpc_reqs"));
  const std::string csv = ReadMaybeGzip(dir_ + "/f.csv.gz", &complete);
  EXPECT_TRUE(complete) << "the gzip stream of f.csv.gz is not finished";
  int rows = 0;
  std::istringstream in(csv);
  for (std::string line; std::getline(in, line);) rows += line.rfind("grpc_reqs,", 0) == 0;
  EXPECT_EQ(rows, Count(e, "grpc_reqs"));
}

TEST_F(RawOutputTest, AnUnwritableFileIsAConfigurationErrorNamingIt) {
  const std::string script = Script("{ iterations: 1 }");
  for (const std::string spec : {"json=" + dir_ + "/none/f.json.gz", "csv=" + dir_ + "/none/f.csv",
                                 "csv=fileName=" + dir_ + "/none/g.csv,timeFormat=unix"}) {
    testutil::RunResult run = Barrage({"-q", "--out", spec, script});
    EXPECT_EQ(run.exit_code, 104) << spec;
    EXPECT_THAT(run.stderr_text, HasSubstr(dir_ + "/none/")) << spec;
    EXPECT_THAT(run.stderr_text, HasSubstr("No such file or directory")) << spec;
  }
  testutil::RunResult run = Barrage({"-q", "--out", "csv=fileName=x.csv,timeFormat=iso", script});
  EXPECT_EQ(run.exit_code, 104);
  EXPECT_THAT(run.stderr_text, HasSubstr("timeFormat 'iso'"));
}

}  // namespace
}  // namespace barrage

// The Prometheus exporter against a real Prometheus server (Debian's
// `prometheus`), all on loopback: the controller serves /metrics, Prometheus
// scrapes it with the scrape configuration from deploy/prometheus/, and the
// test asks Prometheus' HTTP API for the request rate, the error ratio and a
// latency quantile, comparing them with the end-of-test summary.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"
#include "tests/integration/fixture.h"

namespace barrage {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class PrometheusTest : public testutil::TargetFixture {
 protected:
  // One instant query; its single value.
  double Query(const std::string& promql, double at) {
    testutil::RunResult r = testutil::Run(
        "/usr/bin/curl", {"-sf", "--get", "http://" + prometheus_ + "/api/v1/query", "--data-urlencode",
                          "query=" + promql, "--data-urlencode", "time=" + std::to_string(at)},
        20s);
    EXPECT_EQ(r.exit_code, 0) << promql;
    nlohmann::json j = nlohmann::json::parse(r.stdout_text, nullptr, false);
    if (j.is_discarded() || j["data"]["result"].empty()) {
      ADD_FAILURE() << "no result for " << promql << ": " << r.stdout_text;
      return std::nan("");
    }
    return std::stod(j["data"]["result"][0]["value"][1].get<std::string>());
  }
  std::string prometheus_;
};

TEST_F(PrometheusTest, ARealPrometheusSeesWhatTheSummarySays) {
  if (!std::filesystem::exists("/usr/bin/prometheus") || !std::filesystem::exists("/usr/bin/curl")) {
    GTEST_SKIP() << "prometheus or curl is not installed (scripts/setup.sh installs both)";
  }
  // A target that fails 20 % of calls and answers in 20-30 ms.
  auto target = testutil::ChildProcess::Start(
      testutil::BinaryPath("barrage-target"),
      {"--listen", "127.0.0.1:0", "--error-rate", "0.2", "--seed", "7", "--latency", "20ms", "--latency-spread", "10ms"});
  absl::StatusOr<std::string> target_address = target->WaitForAddress(10s);
  ASSERT_TRUE(target_address.ok());
  const std::string script = Write("prom.js", R"(
import grpc from 'k6/net/grpc';
import exec from 'k6/execution';
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
export const options = {
  scenarios: { steady: { executor: 'constant-arrival-rate', rate: 100, timeUnit: '1s', duration: '8s',
                         preAllocatedVUs: 10, maxVUs: 20 } },
  thresholds: { 'grpc_req_duration{status:0}': ['p(95)<10000'] },
};
export default () => {
  if (exec.vu.iterationInScenario === 0) client.connect(__ENV.TARGET, { plaintext: true });
  client.invoke('hello.HelloService/SayHello', { greeting: 'prom' });
};
)");
  const std::string export_path = dir_ + "/summary.json";
  auto controller = testutil::ChildProcess::Start(
      testutil::BinaryPath("barrage"),
      {"run", "-q", "--prometheus", "127.0.0.1:0", "--linger", "5s", "-e", "TARGET=" + *target_address,
       "--summary-trend-stats", "count,p(95)", "--summary-export", export_path, script});
  absl::StatusOr<std::string> line = controller->WaitForLine("Prometheus metrics on http://([0-9.:]+)/metrics", 20s);
  ASSERT_TRUE(line.ok()) << line.status();
  const size_t at = line->find("http://") + 7;
  const std::string metrics_address = line->substr(at, line->find("/metrics", at) - at);

  // deploy/prometheus/prometheus.yml, pointed at this controller.
  const std::string config = absl::StrReplaceAll(ReadAll(testutil::SourcePath("deploy/prometheus/prometheus.yml")),
                                                 {{"barrage-controller:9464", metrics_address}});
  ASSERT_NE(config.find(metrics_address), std::string::npos);
  std::ofstream(dir_ + "/prometheus.yml") << config;
  prometheus_ = "127.0.0.1:" + std::to_string(FreePort());
  auto server = testutil::ChildProcess::Start(
      "/usr/bin/prometheus", {"--config.file=" + dir_ + "/prometheus.yml", "--storage.tsdb.path=" + dir_ + "/tsdb",
                              "--web.listen-address=" + prometheus_});
  ASSERT_TRUE(server->WaitForLine("Server is ready to receive web requests", 30s).ok()) << server->stderr_text();

  ASSERT_TRUE(controller->WaitForLine("serving the final metrics", 60s).ok()) << controller->stderr_text();
  const double end = static_cast<double>(absl::ToUnixMillis(absl::Now())) / 1000.0;
  std::this_thread::sleep_for(3s);  // a few scrapes of the final numbers
  EXPECT_EQ(controller->Wait(20s), 0) << controller->stderr_text();
  nlohmann::json summary = nlohmann::json::parse(std::ifstream(export_path));
  const double requests = summary["metrics"]["grpc_req_duration"]["count"].get<double>();
  const double ok_p95_ms = summary["metrics"]["grpc_req_duration{status:0}"]["p(95)"].get<double>();
  ASSERT_GT(requests, 700);

  // Request count and rate.
  const double seen = Query("sum(barrage_grpc_req_duration_seconds_count)", end + 2);
  EXPECT_EQ(seen, requests);
  const double peak_rate =
      Query("max_over_time(sum(rate(barrage_grpc_req_duration_seconds_count[3s]))[20s:1s])", end + 2);
  EXPECT_NEAR(peak_rate, 100, 25) << "requests per second as Prometheus computes them";
  // Error ratio (status != OK) against the summary's per-status counts.
  const double ratio = Query(
      "sum(barrage_grpc_req_duration_seconds_count{status!=\"0\"}) / sum(barrage_grpc_req_duration_seconds_count)",
      end + 2);
  const double errors = requests - summary["metrics"]["grpc_req_duration{status:0}"]["count"].get<double>();
  EXPECT_NEAR(ratio, errors / requests, 0.001);
  EXPECT_NEAR(ratio, 0.2, 0.06);
  // A latency quantile from the merged histogram.
  const double p95 = Query("barrage_grpc_req_duration_quantile_seconds{status=\"0\",quantile=\"0.95\"}", end + 2);
  EXPECT_NEAR(p95 * 1000, ok_p95_ms, ok_p95_ms * 0.01);
  // Run state.
  EXPECT_EQ(Query("barrage_run_phase{phase=\"done\"}", end + 2), 1);
  EXPECT_EQ(Query("barrage_thresholds_passing", end + 2), 1);
}

TEST_F(PrometheusTest, SeriesBeyondTheLimitAreDroppedWithOneWarningAndCounted) {
  // 30 values of a user-named label: more series than the limit of 20.
  const std::string script = Write("many.js", R"(
import { Counter } from 'k6/metrics';
const hits = new Counter('hits');
export const options = { iterations: 60 };
export default () => { hits.add(1, { shard: 'shard-' + (__ITER % 30) + '-' + __VU }); };
)");
  auto controller = testutil::ChildProcess::Start(
      testutil::BinaryPath("barrage"), {"run", "-q", "--prometheus", "127.0.0.1:0", "--prometheus-label", "shard",
                                        "--prometheus-max-series", "20", "--linger", "10s", script});
  absl::StatusOr<std::string> line = controller->WaitForLine("Prometheus metrics on (http://[0-9.:]+/metrics)", 20s);
  ASSERT_TRUE(line.ok()) << line.status();
  const std::string url = line->substr(line->find("http://"), line->find("/metrics") + 8 - line->find("http://"));
  ASSERT_TRUE(controller->WaitForLine("serving the final metrics", 60s).ok()) << controller->stderr_text();
  testutil::RunResult first = testutil::Run("/usr/bin/curl", {"-sf", url}, 10s);
  testutil::RunResult second = testutil::Run("/usr/bin/curl", {"-sf", url}, 10s);
  ASSERT_EQ(second.exit_code, 0);
  int series = 0;
  std::istringstream in(second.stdout_text);
  for (std::string l; std::getline(in, l);) {
    if (l.rfind("barrage_", 0) == 0 && l.rfind("barrage_exporter", 0) != 0 && l.rfind("barrage_run_phase", 0) != 0 &&
        l.find("_bucket{") == std::string::npos && l.find("_quantile") == std::string::npos &&
        l.find("_sum{") == std::string::npos && l.find("_count{") == std::string::npos) {
      ++series;
    }
  }
  EXPECT_LE(series, 24) << second.stdout_text;  // 20 series (+ a few unlabelled run-state lines)
  EXPECT_THAT(second.stdout_text, HasSubstr("barrage_exporter_series_dropped_scrapes_total 2"));
  controller->Signal(SIGINT);
  controller->Wait(20s);
  const std::string log = controller->stderr_text();
  const std::string warning = "prometheus: metric 'hits' has more label combinations than the limit of 20 series";
  ASSERT_THAT(log, HasSubstr(warning));
  EXPECT_EQ(log.find(warning), log.rfind(warning)) << "warned once";
}

TEST_F(PrometheusTest, AnAgentServesItsOwnMetrics) {
  const std::string script = Write("agent.js", R"(
export const options = { scenarios: { s: { executor: 'constant-vus', vus: 1, duration: '4s' } } };
export default () => {};
)");
  auto controller = testutil::ChildProcess::Start(
      testutil::BinaryPath("barrage"), {"run", "-q", "--listen", "127.0.0.1:0", "--expect-agents", "1", script});
  absl::StatusOr<std::string> line = controller->WaitForLine("control plane listening on ([0-9.:]+)", 20s);
  ASSERT_TRUE(line.ok()) << line.status();
  const size_t at = line->find("listening on ") + 13;
  const std::string control = line->substr(at, line->find_first_of(", ", at) - at);
  auto agent = testutil::ChildProcess::Start(testutil::BinaryPath("barrage-agent"),
                                             {"--controller", control, "--once", "--prometheus", "127.0.0.1:0"});
  absl::StatusOr<std::string> metrics = agent->WaitForLine("Prometheus metrics on (http://[0-9.:]+/metrics)", 20s);
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  const std::string url = metrics->substr(metrics->find("http://"), metrics->find("/metrics") + 8 - metrics->find("http://"));
  std::this_thread::sleep_for(3s);
  testutil::RunResult scrape = testutil::Run("/usr/bin/curl", {"-sf", url}, 10s);
  ASSERT_EQ(scrape.exit_code, 0);
  EXPECT_THAT(scrape.stdout_text, HasSubstr("barrage_iterations_total{scenario=\"s\"}"));
  EXPECT_THAT(scrape.stdout_text, HasSubstr("barrage_agents_connected 1"));
  EXPECT_EQ(controller->Wait(30s), 0);
  EXPECT_EQ(agent->Wait(10s), 0);
}

TEST_F(PrometheusTest, AnAddressInUseOrInvalidIsAnErrorBeforeTheTest) {
  const std::string script = Write("t.js", "export default () => {};\n");
  const int port = FreePort();
  auto holder = testutil::ChildProcess::Start(
      testutil::BinaryPath("barrage"), {"run", "--prometheus", "127.0.0.1:" + std::to_string(port), "--linger", "20s",
                                        "-q", script});
  ASSERT_TRUE(holder->WaitForLine("Prometheus metrics on", 20s).ok());
  testutil::RunResult run = Barrage({"--prometheus", "127.0.0.1:" + std::to_string(port), script}, 30s);
  EXPECT_EQ(run.exit_code, 104);
  EXPECT_THAT(run.stderr_text, HasSubstr("--prometheus: cannot listen on 127.0.0.1:" + std::to_string(port)));
  EXPECT_THAT(run.stdout_text, ::testing::Not(HasSubstr("TOTAL RESULTS")));
  run = Barrage({"--prometheus", "nowhere", script}, 30s);
  EXPECT_EQ(run.exit_code, 104);
  EXPECT_THAT(run.stderr_text, HasSubstr("--prometheus: expected HOST:PORT, got 'nowhere'"));
  run = Barrage({"--prometheus", "127.0.0.1:0", "--prometheus-label", "bad-label", script}, 30s);
  EXPECT_EQ(run.exit_code, 104);
  EXPECT_THAT(run.stderr_text, HasSubstr("'bad-label' is not a usable Prometheus label name"));
  holder->Signal(SIGINT);
}

}  // namespace
}  // namespace barrage

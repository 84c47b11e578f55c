// deploy/grafana/barrage-dashboard.json against what the exporter really
// emits: every metric a panel queries, and every label it groups, filters or
// names in a legend, must be on the /metrics page of a real run.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "nlohmann/json.hpp"
#include "tests/integration/fixture.h"

namespace barrage {
namespace {

using namespace std::chrono_literals;

class DashboardTest : public testutil::TargetFixture {};

// metric name -> label names seen on it, from the text exposition.
std::map<std::string, std::set<std::string>> ParseExposition(const std::string& text) {
  std::map<std::string, std::set<std::string>> out;
  static const std::regex kLine(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? )");
  static const std::regex kLabel(R"(([a-zA-Z_][a-zA-Z0-9_]*)=")");
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (line.empty() || line[0] == '#' || !std::regex_search(line, m, kLine)) continue;
    auto& labels = out[m[1].str()];
    const std::string body = m[3].str();
    for (auto it = std::sregex_iterator(body.begin(), body.end(), kLabel); it != std::sregex_iterator(); ++it) {
      labels.insert((*it)[1].str());
    }
  }
  return out;
}

TEST_F(DashboardTest, EveryQueryUsesNamesTheExporterEmits) {
  // A run that produces every kind of series the dashboard shows: requests
  // with OK and failed statuses, checks, dropped iterations, data.
  auto failing = testutil::ChildProcess::Start(testutil::BinaryPath("barrage-target"),
                                               {"--listen", "127.0.0.1:0", "--error-rate", "0.3", "--latency", "5ms"});
  absl::StatusOr<std::string> failing_address = failing->WaitForAddress(10s);
  ASSERT_TRUE(failing_address.ok());
  const std::string script = Write("dash.js", R"(
import grpc from 'k6/net/grpc';
import { check } from 'k6';
import exec from 'k6/execution';
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
export const options = {
  scenarios: { starved: { executor: 'constant-arrival-rate', rate: 200, timeUnit: '1s', duration: '2s',
                          preAllocatedVUs: 1, maxVUs: 1 } },
  thresholds: { checks: ['rate>0'] },
};
export default () => {
  if (exec.vu.iterationInScenario === 0) client.connect(__ENV.TARGET, { plaintext: true });
  check(client.invoke('hello.HelloService/SayHello', { greeting: 'dash' }), { 'ok': (r) => r.status === grpc.StatusOK });
};
)");
  auto controller = testutil::ChildProcess::Start(
      testutil::BinaryPath("barrage"),
      {"run", "-q", "--prometheus", "127.0.0.1:0", "--linger", "10s", "-e", "TARGET=" + *failing_address, script});
  absl::StatusOr<std::string> line = controller->WaitForLine("Prometheus metrics on (http://[0-9.:]+/metrics)", 20s);
  ASSERT_TRUE(line.ok()) << line.status();
  const std::string url = line->substr(line->find("http://"), line->find("/metrics") + 8 - line->find("http://"));
  ASSERT_TRUE(controller->WaitForLine("serving the final metrics", 60s).ok()) << controller->stderr_text();
  testutil::RunResult scrape = testutil::Run("/usr/bin/curl", {"-sf", url}, 10s);
  ASSERT_EQ(scrape.exit_code, 0);
  controller->Signal(SIGINT);
  const auto exposed = ParseExposition(scrape.stdout_text);
  ASSERT_FALSE(exposed.empty());

  nlohmann::json dashboard =
      nlohmann::json::parse(std::ifstream(testutil::SourcePath("deploy/grafana/barrage-dashboard.json")));
  static const std::regex kMetric(R"(barrage_[a-z0-9_]+)");
  static const std::regex kBy(R"(by \(([^)]*)\))");
  static const std::regex kMatcher(R"(([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|!~|=)\s*")");
  static const std::regex kLegend(R"(\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\})");
  // Labels Prometheus itself adds to every scraped series.
  const std::set<std::string> target_labels = {"job", "instance"};
  int queries = 0;
  for (const auto& panel : dashboard["panels"]) {
    for (const auto& t : panel["targets"]) {
      const std::string expr = t["expr"].get<std::string>();
      const std::string legend = t.value("legendFormat", "");
      SCOPED_TRACE(panel["title"].get<std::string>() + ": " + expr);
      ++queries;
      std::set<std::string> labels_here;
      for (auto it = std::sregex_iterator(expr.begin(), expr.end(), kMetric); it != std::sregex_iterator(); ++it) {
        const std::string name = (*it).str();
        ASSERT_TRUE(exposed.count(name)) << "the exporter emits no " << name;
        labels_here.insert(exposed.at(name).begin(), exposed.at(name).end());
      }
      std::set<std::string> used;
      for (auto it = std::sregex_iterator(expr.begin(), expr.end(), kBy); it != std::sregex_iterator(); ++it) {
        std::stringstream list((*it)[1].str());
        for (std::string l; std::getline(list, l, ',');) {
          l.erase(0, l.find_first_not_of(' '));
          l.erase(l.find_last_not_of(' ') + 1);
          used.insert(l);
        }
      }
      for (auto it = std::sregex_iterator(expr.begin(), expr.end(), kMatcher); it != std::sregex_iterator(); ++it) {
        used.insert((*it)[1].str());
      }
      for (auto it = std::sregex_iterator(legend.begin(), legend.end(), kLegend); it != std::sregex_iterator(); ++it) {
        used.insert((*it)[1].str());
      }
      for (const std::string& l : used) {
        if (target_labels.count(l)) continue;
        EXPECT_TRUE(labels_here.count(l)) << "label '" << l << "' is on none of the queried metrics";
      }
    }
  }
  EXPECT_GE(queries, 15);
}

}  // namespace
}  // namespace barrage

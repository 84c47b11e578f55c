// controller/dashboard's pure parts: the time series (rates, interval
// quantiles from histogram differences, the bound), the settings from flags
// and K6_WEB_DASHBOARD*, and the page's assembly. The browser tests
// (tests/browser) run the whole thing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <utility>
#include <vector>

#include "controller/dashboard/dashboard.h"
#include "controller/dashboard/history.h"
#include "controller/dashboard/settings.h"

namespace barrage::dashboard {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(HistogramDifference, QuantilesAreThoseOfTheNewSamplesOnly) {
  metrics::Histogram before, now, only_new;
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> fast(1, 2), slow(100, 200);
  for (int i = 0; i < 5000; ++i) {
    const double v = fast(rng);
    before.Add(v);
    now.Add(v);
  }
  for (int i = 0; i < 1000; ++i) {
    const double v = slow(rng);
    now.Add(v);
    only_new.Add(v);
  }
  const metrics::Histogram d = HistogramDifference(now, before);
  EXPECT_EQ(d.count(), 1000u);
  EXPECT_NEAR(d.sum(), only_new.sum(), 1e-6 * only_new.sum());
  for (double q : {0.0, 0.5, 0.9, 0.99, 1.0}) {
    // Within the histogram's error of the new samples' own quantile; the
    // whole run's p50 would be ~1.6.
    EXPECT_NEAR(d.Quantile(q), only_new.Quantile(q), 2 * metrics::Histogram::kRelativeError * only_new.Quantile(q))
        << "q=" << q;
  }
  EXPECT_EQ(HistogramDifference(now, now).count(), 0u);
  EXPECT_EQ(HistogramDifference(now, metrics::Histogram()).count(), now.count());
}

Totals MakeTotals(uint64_t ok, uint64_t failed, double iterations) {
  Totals t;
  t.requests_by["SayHello 0"] = ok;
  if (failed) t.requests_by["SayHello 13"] = failed;
  t.requests = ok + failed;
  t.failed = failed;
  for (uint64_t i = 0; i < ok + failed; ++i) t.duration.Add(10);
  t.iterations = iterations;
  return t;
}

TEST(History, PointsAreRatesOverTheirInterval) {
  History h;
  const absl::Time start = absl::FromUnixSeconds(1000);
  h.SetStart(start);
  h.Add(MakeTotals(100, 0, 100), {4, 4, 2}, start + absl::Seconds(1));
  h.Add(MakeTotals(300, 100, 400), {4, 4, 2}, start + absl::Seconds(3));
  ASSERT_EQ(h.points().size(), 2u);
  const Point& p = h.points()[1];
  EXPECT_DOUBLE_EQ(p.dt, 2);
  EXPECT_DOUBLE_EQ(p.rps, 150);  // 300 requests in 2 s
  EXPECT_DOUBLE_EQ(p.rps_by.at("SayHello 0"), 100);
  EXPECT_DOUBLE_EQ(p.rps_by.at("SayHello 13"), 50);
  EXPECT_DOUBLE_EQ(*p.error_share, 100.0 / 300.0);
  EXPECT_DOUBLE_EQ(p.iterations, 150);
  EXPECT_NEAR(*p.p95, 10, 0.1);
  EXPECT_EQ(p.agents, 2);
  EXPECT_EQ(h.totals().requests, 400u);
  EXPECT_EQ(h.TotalsJson()["requests"], 400);
  // An interval without requests has no quantiles or error share (null in
  // JSON: a gap in the chart, not a zero latency).
  h.Add(MakeTotals(300, 100, 400), {0, 4, 2}, start + absl::Seconds(4));
  EXPECT_FALSE(h.points().back().p50.has_value());
  EXPECT_TRUE(PointToJson(h.points().back())["p50"].is_null());
}

TEST(History, StaysBoundedAndKeepsTheWholeSpan) {
  History h(16);
  const absl::Time start = absl::FromUnixSeconds(1000);
  h.SetStart(start);
  for (int i = 1; i <= 1000; ++i) h.Add(MakeTotals(10u * i, 0, 10.0 * i), {1, 1, 1}, start + absl::Seconds(i));
  EXPECT_LE(h.points().size(), 16u);
  EXPECT_GT(h.generation(), 0u);
  double span = 0, requests = 0;
  for (const Point& p : h.points()) {
    span += p.dt;
    requests += p.rps * p.dt;
    EXPECT_NEAR(p.rps, 10, 1e-9);  // merged rates are still rates
  }
  EXPECT_NEAR(span, 1000, 1e-6);
  EXPECT_NEAR(requests, 10000, 1e-6);
}

std::map<std::string, std::string> env;
absl::StatusOr<DashboardSettings> Read(const DashboardFlags& flags) {
  return ReadDashboardSettings(flags, [](const char* name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
}

TEST(DashboardSettings, FlagsAndK6Variables) {
  env.clear();
  absl::StatusOr<DashboardSettings> s = Read({});
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->enabled());
  s = Read({std::string(), std::nullopt});
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->serve);
  EXPECT_EQ(s->address, "127.0.0.1:5665");
  EXPECT_EQ(s->period, absl::Seconds(10));
  s = Read({std::string("0.0.0.0:7000"), std::nullopt});
  EXPECT_EQ(s->address, "0.0.0.0:7000");

  env = {{"K6_WEB_DASHBOARD", "true"}, {"K6_WEB_DASHBOARD_HOST", "localhost"}, {"K6_WEB_DASHBOARD_PORT", "6000"},
         {"K6_WEB_DASHBOARD_PERIOD", "1s"}, {"K6_WEB_DASHBOARD_OPEN", "false"}};
  s = Read({});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->serve);
  EXPECT_EQ(s->address, "localhost:6000");
  EXPECT_EQ(s->period, absl::Seconds(1));
  s = Read({std::string("127.0.0.1:0"), std::nullopt});  // the flag wins
  EXPECT_EQ(s->address, "127.0.0.1:0");

  env = {{"K6_WEB_DASHBOARD", "true"}, {"K6_WEB_DASHBOARD_PORT", "-1"}};  // k6: no server
  s = Read({});
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->serve);

  const std::vector<std::pair<std::string, std::string>> bad_env = {{"K6_WEB_DASHBOARD", "yes please"},
                                                                    {"K6_WEB_DASHBOARD_PORT", "70000"},
                                                                    {"K6_WEB_DASHBOARD_PERIOD", "10"},
                                                                    {"K6_WEB_DASHBOARD_PERIOD", "1ms"},
                                                                    {"K6_WEB_DASHBOARD_OPEN", "sometimes"}};
  for (const auto& [name, value] : bad_env) {
    env = {{"K6_WEB_DASHBOARD", "true"}};
    env[name] = value;
    s = Read({});
    ASSERT_FALSE(s.ok()) << name << "=" << value;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(name));
  }
  env.clear();
  for (const std::string bad : {"nohost", ":80", "host:port", "host:65536", "host:-1"}) {
    s = Read({bad, std::nullopt});
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr("--dashboard"));
  }
}

TEST(DashboardSettings, ReportPathIsCheckedBeforehand) {
  env.clear();
  const std::string dir = testing::TempDir();
  absl::StatusOr<DashboardSettings> s = Read({std::nullopt, dir + "/report.html"});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(s->serve);
  EXPECT_TRUE(s->enabled());
  EXPECT_EQ(s->report, dir + "/report.html");
  EXPECT_NE(access((dir + "/report.html").c_str(), F_OK), 0) << "the check left a file behind";
  s = Read({std::nullopt, dir + "/no/such/dir/report.html"});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("--report: cannot write " + dir + "/no/such/dir/report.html"));
  s = Read({std::nullopt, dir});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("not a regular file"));
  env = {{"K6_WEB_DASHBOARD_EXPORT", dir + "/missing/r.html"}};
  s = Read({});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("K6_WEB_DASHBOARD_EXPORT"));
  env.clear();
}

TEST(RenderPage, SelfContainedAndScriptSafe) {
  const std::string live = RenderPage(nullptr);
  EXPECT_THAT(live, HasSubstr("uPlot"));
  EXPECT_THAT(live, HasSubstr("EventSource"));
  EXPECT_THAT(live, Not(HasSubstr("BARRAGE_REPORT =")));
  // Nothing from elsewhere: no external script, style or image.
  EXPECT_THAT(live, Not(HasSubstr("src=\"http")));
  EXPECT_THAT(live, Not(HasSubstr("href=\"http")));
  const nlohmann::json report = {{"state", {{"agents", {{{"name", "</script><script>alert(1)</script>"}}}}}}};
  const std::string page = RenderPage(&report);
  EXPECT_THAT(page, HasSubstr("window.BARRAGE_REPORT = "));
  EXPECT_THAT(page, Not(HasSubstr("</script><script>alert(1)")));
  EXPECT_THAT(page, HasSubstr("<\\/script><script>alert(1)<\\/script>"));
}

}  // namespace
}  // namespace barrage::dashboard

#include "controller/dashboard/dashboard.h"

#include <pthread.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/log.h"
#include "common/output_file.h"
#include "controller/dashboard/history.h"
#include "common/http_server.h"
#include "common/incbin.h"
#include "controller/summary.h"

// The page's files, pulled in at assembly time (as agent/js embeds Babel):
// no file is read at run time. The paths come from CMake.

BARRAGE_INCBIN(barrage_dash_html, BARRAGE_DASHBOARD_HTML)
BARRAGE_INCBIN(barrage_dash_app_js, BARRAGE_DASHBOARD_APP_JS)
BARRAGE_INCBIN(barrage_dash_app_css, BARRAGE_DASHBOARD_APP_CSS)
BARRAGE_INCBIN(barrage_dash_uplot_js, BARRAGE_UPLOT_JS)
BARRAGE_INCBIN(barrage_dash_uplot_css, BARRAGE_UPLOT_CSS)

namespace barrage::dashboard {
namespace {

#define BARRAGE_EMBEDDED(name) absl::string_view(name##_start, static_cast<size_t>(name##_end - name##_start))

// JSON inside a <script> element: "</script>" or "<!--" in a string (a
// check's name, an agent's) must not end or comment out the element.
std::string ScriptSafeJson(const nlohmann::json& j) {
  return absl::StrReplaceAll(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                             {{"</", "<\\/"}, {"<!--", "<\\!--"}});
}

std::string Dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

}  // namespace

std::string RenderPage(const nlohmann::json* report) {
  const std::string data = report ? absl::StrCat("window.BARRAGE_REPORT = ", ScriptSafeJson(*report), ";") : "";
  const std::vector<std::pair<absl::string_view, absl::string_view>> parts = {
      {"/*BARRAGE_UPLOT_CSS*/", BARRAGE_EMBEDDED(barrage_dash_uplot_css)},
      {"/*BARRAGE_APP_CSS*/", BARRAGE_EMBEDDED(barrage_dash_app_css)},
      {"//BARRAGE_DATA", data},
      {"//BARRAGE_UPLOT_JS", BARRAGE_EMBEDDED(barrage_dash_uplot_js)},
      {"//BARRAGE_APP_JS", BARRAGE_EMBEDDED(barrage_dash_app_js)}};
  return absl::StrReplaceAll(BARRAGE_EMBEDDED(barrage_dash_html), parts);
}

class Dashboard::Impl {
 public:
  Impl(const DashboardSettings& settings, DashboardInput input)
      : settings_(settings), in_(std::move(input)), start_(absl::Now()) {
    history_.SetStart(start_);
  }

  absl::Status Listen() {
    if (!settings_.serve) return absl::OkStatus();
    const std::string live_page = RenderPage(nullptr);
    absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(
        settings_.address,
        [this, live_page](const std::string& target) -> HttpResponse {
          const std::string path = target.substr(0, target.find('?'));
          if (path == "/" || path == "/index.html") return {200, "text/html; charset=utf-8", live_page};
          if (path == "/api/snapshot") return {200, "application/json", Dump(Snapshot())};
          if (path == "/report") {
            const nlohmann::json report = Snapshot();
            return {200, "text/html; charset=utf-8", RenderPage(&report)};
          }
          return {404, "text/plain; charset=utf-8", "not found\n"};
        },
        [this] { return Dump(Snapshot()); }, "dash-http");
    if (!server.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--dashboard/K6_WEB_DASHBOARD: ", server.status().message()));
    }
    server_ = *std::move(server);
    return absl::OkStatus();
  }

  void RunSampler() {
    sampler_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "dash-sample");
      std::unique_lock<std::mutex> lock(wake_mu_);
      while (!stop_) {
        if (wake_cv_.wait_for(lock, absl::ToChronoMilliseconds(settings_.period), [this] { return stop_; })) break;
        lock.unlock();
        Sample(/*final=*/false, absl::ZeroDuration());
        lock.lock();
      }
    });
  }

  void StopSampler() {
    {
      std::lock_guard<std::mutex> lock(wake_mu_);
      stop_ = true;
    }
    wake_cv_.notify_all();
    if (sampler_.joinable()) sampler_.join();
  }

  // One reading of the coordinator: a point, the state, an event.
  void Sample(bool final, absl::Duration test_duration) {
    const absl::Time now = absl::Now();
    const controller::RunProgress progress = in_.coordinator.Progress();
    const std::vector<controller::AgentSummary> agents = in_.coordinator.Agents();
    Totals totals;
    controller::ThresholdEvaluator::Result eval;
    const bool thresholds = in_.thresholds != nullptr && !in_.thresholds->empty();
    in_.coordinator.WithMetrics([&](metrics::MetricStore& store) {
      totals = ReadTotals(store);
      if (thresholds) eval = in_.thresholds->Evaluate(store, final ? test_duration : now - start_, final);
      if (final) (void)final_store_.Merge(store);
    });
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t generation = history_.generation();
    const size_t before = history_.points().size();
    history_.Add(std::move(totals), {progress.vus_active, progress.vus_max, progress.agents}, now);
    const std::deque<Point>& points = history_.points();
    if (final && points.size() >= 2 && points.back().dt < 0.5 * absl::ToDoubleSeconds(settings_.period)) {
      history_.MergeLast();
    }
    state_ = BuildState(now, progress, agents, eval.sets, final);
    if (server_ == nullptr) return;
    nlohmann::json update = {{"state", state_}};
    if (history_.generation() != generation) {
      update["reset"] = true;
      update["points"] = history_.PointsJson();
    } else {
      update["points"] = history_.PointsJson(before);
    }
    server_->Broadcast("update", Dump(update));
  }

  nlohmann::json BuildState(absl::Time now, const controller::RunProgress& progress,
                            const std::vector<controller::AgentSummary>& agents,
                            const std::vector<controller::ThresholdSet>& sets, bool final) {
    nlohmann::json scenarios = nlohmann::json::array();
    for (const controller::ScenarioRunProgress& s : progress.scenarios) {
      scenarios.push_back({{"name", s.name}, {"vus", s.vus_active}, {"iterations", s.iterations_completed},
                           {"progress", s.progress}, {"done", s.done}});
    }
    nlohmann::json agent_rows = nlohmann::json::array();
    for (const controller::AgentSummary& a : agents) {
      agent_rows.push_back({{"name", a.name}, {"vus", a.vus}, {"iterations", a.iterations_completed},
                            {"interrupted", a.iterations_interrupted}, {"state", a.state}, {"segment", a.segment}});
    }
    nlohmann::json thresholds = nlohmann::json::array();
    for (const controller::ThresholdSet& set : sets) {
      for (const controller::ThresholdOutcome& o : set.outcomes) {
        thresholds.push_back({{"key", set.key}, {"source", o.source}, {"ok", o.ok},
                              {"value", o.value ? nlohmann::json(*o.value) : nlohmann::json(nullptr)}});
      }
    }
    return {{"phase", final ? std::string("done") : in_.phase ? in_.phase() : std::string("running")},
            {"elapsed", absl::ToDoubleSeconds(now - start_)},
            {"started", absl::ToDoubleSeconds(start_ - absl::UnixEpoch())},
            {"vus", progress.vus_active},
            {"vus_max", progress.vus_max},
            {"scenarios", std::move(scenarios)},
            {"agents", std::move(agent_rows)},
            {"thresholds", std::move(thresholds)},
            {"totals", history_.TotalsJson()}};
  }

  nlohmann::json Snapshot() {
    std::lock_guard<std::mutex> lock(mu_);
    return SnapshotLocked();
  }

  nlohmann::json SnapshotLocked() {
    return {{"config", {{"script", in_.script}, {"period", absl::ToDoubleSeconds(settings_.period)}}},
            {"points", history_.PointsJson()},
            {"state", state_.is_null() ? nlohmann::json::object() : state_}};
  }

  void Finish(absl::Duration test_duration, const std::optional<std::string>& setup_data) {
    if (finished_) return;
    finished_ = true;
    StopSampler();
    Sample(/*final=*/true, test_duration);
    if (!settings_.report.empty()) WriteReport(test_duration, setup_data);
    if (server_ != nullptr) {
      server_->Broadcast("end", "{}");
      server_->Stop(absl::Seconds(2));
    }
  }

  void WriteReport(absl::Duration test_duration, const std::optional<std::string>& setup_data) {
    controller::SummaryInput summary;
    summary.store = &final_store_;
    if (in_.thresholds != nullptr) summary.thresholds = in_.thresholds->Evaluate(final_store_, test_duration, true).sets;
    if (!in_.trend_stats.empty()) summary.trend_stats = in_.trend_stats;
    summary.time_unit = in_.time_unit;
    summary.test_run_duration = test_duration;
    summary.setup_data_json = setup_data;
    summary.no_color = true;
    nlohmann::json report = Snapshot();
    nlohmann::json exported = nlohmann::json::parse(controller::RenderSummaryExport(summary), nullptr, false);
    report["summary"] = exported.is_discarded() ? nlohmann::json::object() : exported;
    report["summary"]["text"] = controller::RenderSummaryText(summary);
    if (absl::Status st = WriteWholeFile(settings_.report, RenderPage(&report)); !st.ok()) {
      barrage::Log(Severity::kError, absl::StrCat("--report: cannot write ", st.message()));
      return;
    }
    barrage::Log(Severity::kInfo, absl::StrCat("web dashboard report written to ", settings_.report));
  }

  ~Impl() {
    StopSampler();
    if (server_ != nullptr) server_->Stop(absl::ZeroDuration());
  }

  DashboardSettings settings_;
  DashboardInput in_;
  absl::Time start_;
  std::unique_ptr<HttpServer> server_;
  std::mutex mu_;  // history_, state_
  History history_;
  nlohmann::json state_;
  metrics::MetricStore final_store_;
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  bool stop_ = false;
  bool finished_ = false;
  std::thread sampler_;
};

absl::StatusOr<std::unique_ptr<Dashboard>> Dashboard::Start(const DashboardSettings& settings, DashboardInput input) {
  auto impl = std::make_unique<Impl>(settings, std::move(input));
  if (absl::Status st = impl->Listen(); !st.ok()) return st;
  impl->RunSampler();
  if (impl->server_ != nullptr) {
    barrage::Log(Severity::kInfo, absl::StrCat("web dashboard on http://", impl->server_->address(), "/"));
    // k6 opens a browser here; a load generator on a server or in CI has
    // none to open, so the address is repeated where it stands out.
    if (settings.open) {
      barrage::Log(Severity::kWarning, absl::StrCat("K6_WEB_DASHBOARD_OPEN: open http://", impl->server_->address(),
                                                    "/ in a browser (barrage does not start one)"));
    }
  }
  return std::unique_ptr<Dashboard>(new Dashboard(std::move(impl)));
}

Dashboard::Dashboard(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Dashboard::~Dashboard() = default;

std::string Dashboard::url() const {
  return impl_->server_ ? absl::StrCat("http://", impl_->server_->address(), "/") : std::string();
}

void Dashboard::Finish(absl::Duration test_duration, const std::optional<std::string>& setup_data) {
  impl_->Finish(test_duration, setup_data);
}

nlohmann::json Dashboard::Snapshot() { return impl_->Snapshot(); }

}  // namespace barrage::dashboard

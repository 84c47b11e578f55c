// agent_swarm: many simulated agents speaking the real control protocol to
// one controller, for the controller's merge benchmark (distributed.sh).
//
// Each simulated agent is a thread with its own session: hello, the archive
// and assignment (ignored), ready, then on start one MetricsDelta per
// interval with --series series (counters, rates, gauges and trends with a
// realistic histogram of --samples samples each), then Done. It prints what
// it sent, so the controller's merged totals can be checked against it, and
// how long its writes took (a controller that falls behind makes them block).
#include <grpcpp/create_channel.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cmath>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "barrage/v1/control.grpc.pb.h"
#include "common/metrics/histogram.h"
#include "common/metrics/metric_store.h"
#include "common/metrics/wire.h"

namespace {

struct Totals {
  std::atomic<int64_t> deltas{0};
  std::atomic<int64_t> counter_sum{0};
  std::atomic<int64_t> trend_samples{0};
  std::atomic<int64_t> failures{0};
  std::mutex mu;
  std::vector<double> write_ms;  // guarded by mu
};

void RunAgent(int index, const std::string& controller, int series, int samples, absl::Duration interval,
              absl::Duration duration, bool distinct, bool k6_names, Totals& totals) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  // A connection of its own, as each real agent (a process) has: the
  // controller takes at most 256 sessions on one connection.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto channel = grpc::CreateCustomChannel(controller, grpc::InsecureChannelCredentials(), args);
  auto stub = barrage::v1::Control::NewStub(channel);
  grpc::ClientContext context;
  auto stream = stub->Session(&context);
  barrage::v1::AgentMessage hello;
  hello.mutable_hello()->set_protocol_version(1);
  hello.mutable_hello()->set_name(absl::StrCat("sim-", index));
  hello.mutable_hello()->set_capacity(1);
  if (!stream->Write(hello)) {
    totals.failures++;
    return;
  }
  barrage::v1::ControllerMessage m;
  std::mt19937_64 rng(index);
  std::lognormal_distribution<double> latency(0.0, 0.6);
  while (stream->Read(&m)) {
    if (m.has_reject()) {
      std::cerr << "sim-" << index << " refused: " << m.reject().reason() << "\n";
      totals.failures++;
      return;
    }
    if (m.has_assignment()) {
      barrage::v1::AgentMessage ready;
      ready.mutable_ready()->set_vus(1);
      stream->Write(ready);
    }
    if (m.has_start()) break;
  }
  const absl::Time start = absl::FromUnixNanos(m.start().start_unix_ns());
  absl::SleepFor(start - absl::Now());
  const absl::Time end = start + duration;
  // Tags as a gRPC test has them: method x status x scenario.
  const int kinds = 4;
  for (absl::Time next = start + interval; next <= end; next += interval) {
    absl::SleepFor(next - absl::Now());
    barrage::metrics::MetricStore delta;
    const int64_t now = absl::ToUnixNanos(absl::Now());
    for (int s = 0; s < series; ++s) {
      const int kind = s % kinds;
      // --k6-names: the built-in metrics the web dashboard reads (its cost
      // benchmark); otherwise names of their own.
      static const char* kSimNames[] = {"sim_requests", "sim_checks", "sim_latency", "sim_gauge"};
      static const char* kK6Names[] = {"iterations", "checks", "grpc_req_duration", "sim_gauge"};
      const char* const* kNames = k6_names ? kK6Names : kSimNames;
      static const barrage::metrics::MetricType kTypes[] = {
          barrage::metrics::MetricType::kCounter, barrage::metrics::MetricType::kRate,
          barrage::metrics::MetricType::kTrend, barrage::metrics::MetricType::kGauge};
      (void)delta.Define({kNames[kind], kTypes[kind], kind == 2 ? barrage::metrics::ValueType::kTime
                                                                : barrage::metrics::ValueType::kDefault});
      // --distinct: every agent's methods are its own, so the controller
      // holds agents x series distinct series (the exporter benchmark).
      const barrage::metrics::TagSet tags = {{"method", distinct ? absl::StrCat("A", index, "Method", s / kinds)
                                                                 : absl::StrCat("Method", s / kinds)},
                                             {"status", "0"},
                                             {"scenario", "default"}};
      if (kind == 0) {
        delta.Add(kNames[kind], tags, 100, now);
        totals.counter_sum += 100;
      } else if (kind == 1) {
        for (int i = 0; i < 10; ++i) delta.Add(kNames[kind], tags, i % 10 != 0, now);
      } else if (kind == 2) {
        for (int i = 0; i < samples; ++i) delta.Add(kNames[kind], tags, latency(rng), now);
        totals.trend_samples += samples;
      } else {
        delta.Add(kNames[kind], tags, static_cast<double>(index), now);
      }
    }
    barrage::v1::AgentMessage msg;
    barrage::metrics::StoreToProto(delta, msg.mutable_metrics());
    const absl::Time t0 = absl::Now();
    if (!stream->Write(msg)) {
      totals.failures++;
      return;
    }
    const double ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
    totals.deltas++;
    std::lock_guard<std::mutex> lock(totals.mu);
    totals.write_ms.push_back(ms);
  }
  barrage::v1::AgentMessage done;
  done.mutable_done();
  stream->Write(done);
  while (stream->Read(&m)) {
    if (m.has_end()) break;
  }
  stream->WritesDone();
  (void)stream->Finish();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"agent_swarm: simulated agents for the controller merge benchmark", "agent_swarm"};
  std::string controller;
  int agents = 200, series = 50, samples = 200;
  double interval_s = 1, duration_s = 20;
  bool distinct = false;
  bool k6_names = false;
  app.add_option("--controller", controller, "the controller's control address")->required();
  app.add_option("--agents", agents, "simulated agents");
  app.add_option("--series", series, "series per agent per interval");
  app.add_option("--samples", samples, "samples per trend series per interval");
  app.add_option("--interval", interval_s, "seconds between deltas");
  app.add_option("--duration", duration_s, "seconds of metrics after the start");
  app.add_flag("--distinct", distinct, "every agent reports series of its own (no two agents share one)");
  app.add_flag("--k6-names", k6_names, "name the series iterations, checks and grpc_req_duration (as the web dashboard reads them)");
  CLI11_PARSE(app, argc, argv);
  Totals totals;
  std::vector<std::thread> threads;
  for (int i = 0; i < agents; ++i) {
    threads.emplace_back(RunAgent, i + 1, controller, series, samples, absl::Seconds(interval_s),
                         absl::Seconds(duration_s), distinct, k6_names, std::ref(totals));
  }
  for (auto& t : threads) t.join();
  std::vector<double> w = totals.write_ms;
  std::sort(w.begin(), w.end());
  auto q = [&](double p) { return w.empty() ? 0.0 : w[static_cast<size_t>(p * static_cast<double>(w.size() - 1))]; };
  std::cout << absl::StrFormat(
      "swarm agents=%d deltas=%d counter_sum=%d trend_samples=%d failures=%d write_ms_p50=%.3f p99=%.3f max=%.3f\n",
      agents, totals.deltas.load(), totals.counter_sum.load(), totals.trend_samples.load(), totals.failures.load(),
      q(0.5), q(0.99), w.empty() ? 0.0 : w.back());
  return totals.failures > 0 ? 1 : 0;
}

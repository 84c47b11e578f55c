// The floor of the client-CPU comparison: the least a gRPC C++ client can
// spend per SayHello. One channel, one completion queue drained by this
// thread, --concurrency calls kept in flight, nothing else (no scripting, no
// metrics). Prints one parsable line:
//   bare_grpc_client requests=N errors=E seconds=S rps=R cpu_seconds=C cpu_us_per_req=U
// CPU is getrusage(RUSAGE_SELF) user+sys over the measured span, so it
// includes gRPC's own threads.
#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "CLI/CLI.hpp"
#include "absl/time/time.h"
#include "common/duration.h"
#include "hello/hello.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

struct Call {
  grpc::ClientContext context;
  hello::HelloResponse response;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<hello::HelloResponse>> reader;
};

class Driver {
 public:
  Driver(std::vector<std::unique_ptr<hello::HelloService::Stub>>& stubs, int64_t max_requests,
         Clock::time_point end)
      : stubs_(stubs), max_requests_(max_requests), end_(end) {
    request_.set_greeting("Bert");
  }

  // Returns false when the budget (count or time) says stop.
  bool StartOne() {
    if (started_ >= max_requests_ || Clock::now() >= end_) return false;
    ++started_;
    auto* call = new Call();
    call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto& stub = *stubs_[static_cast<size_t>(started_) % stubs_.size()];
    call->reader = stub.PrepareAsyncSayHello(&call->context, request_, &cq_);
    call->reader->StartCall();
    call->reader->Finish(&call->response, &call->status, call);
    ++in_flight_;
    return true;
  }

  void Run(int concurrency) {
    for (int i = 0; i < concurrency; ++i) {
      if (!StartOne()) break;
    }
    void* tag = nullptr;
    bool ok = false;
    while (in_flight_ > 0 && cq_.Next(&tag, &ok)) {
      auto* call = static_cast<Call*>(tag);
      --in_flight_;
      ++done_;
      if (!call->status.ok()) ++errors_;
      delete call;
      StartOne();
    }
    cq_.Shutdown();
    while (cq_.Next(&tag, &ok)) {
    }
  }

  int64_t done() const { return done_; }
  int64_t errors() const { return errors_; }

 private:
  std::vector<std::unique_ptr<hello::HelloService::Stub>>& stubs_;
  const int64_t max_requests_;
  const Clock::time_point end_;
  hello::HelloRequest request_;
  grpc::CompletionQueue cq_;
  int64_t started_ = 0;
  int64_t in_flight_ = 0;
  int64_t done_ = 0;
  int64_t errors_ = 0;
};

bool IsLoopback(const std::string& target) {
  return target.rfind("127.", 0) == 0 || target.rfind("localhost:", 0) == 0 ||
         target.rfind("[::1]:", 0) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string target = "127.0.0.1:9001";
  int concurrency = 32;
  int64_t requests = 0;
  std::string duration_text;
  CLI::App app("bare_grpc_client: minimal async gRPC C++ SayHello load, for client-CPU baselines");
  app.add_option("--target", target, "HOST:PORT of barrage-target (loopback only)")
      ->capture_default_str();
  app.add_option("--concurrency", concurrency, "calls in flight")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  int channels = 1;
  app.add_option("--channels", channels,
                 "channels (each its own TCP connection), used round-robin; --channels equal to "
                 "--concurrency is k6's model, one connection per VU")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--requests", requests, "stop after N requests")->check(CLI::PositiveNumber);
  app.add_option("--duration", duration_text, "stop after D (Go duration, e.g. 10s)");
  CLI11_PARSE(app, argc, argv);

  if (!IsLoopback(target)) {
    std::cerr << "bare_grpc_client: --target must be a loopback address, got " << target << "\n";
    return 2;
  }
  absl::Duration duration = absl::InfiniteDuration();
  if (!duration_text.empty()) {
    absl::StatusOr<absl::Duration> parsed = barrage::ParseDuration(duration_text);
    if (!parsed.ok() || *parsed <= absl::ZeroDuration()) {
      std::cerr << "bare_grpc_client: --duration: invalid duration \"" << duration_text << "\"\n";
      return 2;
    }
    duration = *parsed;
  }
  if (requests == 0 && duration == absl::InfiniteDuration()) duration = absl::Seconds(5);
  if (requests == 0) requests = INT64_MAX;

  std::vector<std::unique_ptr<hello::HelloService::Stub>> stubs;
  for (int i = 0; i < channels; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a TCP connection of its own
    auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      std::cerr << "bare_grpc_client: cannot connect to " << target << "\n";
      return 1;
    }
    stubs.push_back(hello::HelloService::NewStub(channel));
  }

  const Clock::time_point start = Clock::now();
  const Clock::time_point end = duration == absl::InfiniteDuration()
                                    ? Clock::time_point::max()
                                    : start + absl::ToChronoNanoseconds(duration);
  const double cpu_start = CpuSeconds();
  Driver driver(stubs, requests, end);
  driver.Run(concurrency);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = CpuSeconds() - cpu_start;

  const int64_t done = driver.done();
  std::printf(
      "bare_grpc_client requests=%lld errors=%lld seconds=%.3f rps=%.1f cpu_seconds=%.3f "
      "cpu_us_per_req=%.2f\n",
      static_cast<long long>(done), static_cast<long long>(driver.errors()), seconds,
      seconds > 0 ? done / seconds : 0.0, cpu, done > 0 ? cpu * 1e6 / done : 0.0);
  return driver.errors() == done && done > 0 ? 1 : 0;
}

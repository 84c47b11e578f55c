// The floor of the streaming comparison (stream_echo.sh): the least a gRPC
// C++ client can spend per message on hello.HelloService/BidiHello. --streams
// streams, each on a channel of its own (a TCP connection each, as k6 gives
// every VU its own connection; --shared-channel puts them all on one), each
// ping-ponging: it writes one HelloRequest and, on each reply, the next, until
// --duration has passed; then it half-closes and waits for the server's OK.
// One completion queue drained by this thread, one operation in flight per
// stream, nothing else (no scripting, no metrics). Prints one parsable line:
//   bare_stream_client streams=N channels=C messages=M sent=S errors=E seconds=W
//     msgs_per_s=R cpu_seconds=C msgs_per_cpu_s=P
// messages counts replies received. CPU is getrusage(RUSAGE_SELF) user+sys
// over the measured span (connecting excluded), so it includes gRPC's own
// threads. Exit status: 0, or 1 when a stream failed or no reply arrived.
#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

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

// One BidiHello stream. Its operations run one at a time, so the stream
// itself is the completion-queue tag and its state says which one finished.
struct Stream {
  enum class State { kStarting, kWriting, kReading, kClosing, kFinishing };
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<hello::HelloRequest, hello::HelloResponse>> call;
  hello::HelloResponse response;
  grpc::Status status;
  State state = State::kStarting;
};

class Driver {
 public:
  Driver(std::vector<std::unique_ptr<hello::HelloService::Stub>>& stubs, int streams,
         Clock::time_point end)
      : stubs_(stubs), end_(end), streams_(static_cast<size_t>(streams)) {
    // What stream_echo.js writes.
    request_.set_greeting("x");
  }

  void Run() {
    for (size_t i = 0; i < streams_.size(); ++i) {
      auto stream = std::make_unique<Stream>();
      // No deadline by default on a k6 stream either; this one only bounds a hung server.
      stream->context.set_deadline(std::chrono::system_clock::now() +
                                   (end_ - Clock::now()) + std::chrono::seconds(60));
      stream->call = stubs_[i % stubs_.size()]->PrepareAsyncBidiHello(&stream->context, &cq_);
      stream->call->StartCall(stream.get());
      streams_[i] = std::move(stream);
    }
    size_t open = streams_.size();
    void* tag = nullptr;
    bool ok = false;
    while (open > 0 && cq_.Next(&tag, &ok)) {
      if (!Step(*static_cast<Stream*>(tag), ok)) --open;
    }
    cq_.Shutdown();
    while (cq_.Next(&tag, &ok)) {
    }
  }

  int64_t received() const { return received_; }
  int64_t sent() const { return sent_; }
  int64_t errors() const { return errors_; }

 private:
  // Takes the stream one step on; false once it has finished.
  bool Step(Stream& s, bool ok) {
    if (s.state == Stream::State::kFinishing) {
      if (!s.status.ok()) {
        ++errors_;
        if (errors_ == 1) {
          std::cerr << "bare_stream_client: stream failed: " << s.status.error_code() << " "
                    << s.status.error_message() << "\n";
        }
      }
      return false;
    }
    if (!ok) {  // the stream broke: Finish says why
      s.state = Stream::State::kFinishing;
      s.call->Finish(&s.status, &s);
      return true;
    }
    switch (s.state) {
      case Stream::State::kStarting:
        Write(s);
        break;
      case Stream::State::kWriting:
        ++sent_;
        s.state = Stream::State::kReading;
        s.call->Read(&s.response, &s);
        break;
      case Stream::State::kReading:
        ++received_;
        if (Clock::now() < end_) {
          Write(s);
        } else {
          s.state = Stream::State::kClosing;
          s.call->WritesDone(&s);
        }
        break;
      case Stream::State::kClosing:
        s.state = Stream::State::kFinishing;
        s.call->Finish(&s.status, &s);
        break;
      case Stream::State::kFinishing:
        break;
    }
    return true;
  }

  void Write(Stream& s) {
    s.state = Stream::State::kWriting;
    s.call->Write(request_, &s);
  }

  std::vector<std::unique_ptr<hello::HelloService::Stub>>& stubs_;
  const Clock::time_point end_;
  hello::HelloRequest request_;
  grpc::CompletionQueue cq_;
  std::vector<std::unique_ptr<Stream>> streams_;
  int64_t received_ = 0;
  int64_t sent_ = 0;
  int64_t errors_ = 0;
};

bool IsLoopback(const std::string& target) {
  return target.rfind("127.", 0) == 0 || target.rfind("localhost:", 0) == 0 ||
         target.rfind("[::1]:", 0) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string target = "127.0.0.1:9001";
  int streams = 32;
  bool shared_channel = false;
  std::string duration_text = "10s";
  CLI::App app(
      "bare_stream_client: minimal async gRPC C++ BidiHello ping-pong, the floor of stream_echo.sh");
  app.add_option("--target", target, "HOST:PORT of barrage-target (loopback only)")
      ->capture_default_str();
  app.add_option("--streams", streams, "streams, each ping-ponging one message at a time")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_flag("--shared-channel", shared_channel,
               "all streams on one channel (one TCP connection), instead of a channel each "
               "(k6's model, where every VU connects on its own)");
  app.add_option("--duration", duration_text, "stop writing after D (Go duration, e.g. 10s)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (!IsLoopback(target)) {
    std::cerr << "bare_stream_client: --target must be a loopback address, got " << target << "\n";
    return 2;
  }
  absl::StatusOr<absl::Duration> duration = barrage::ParseDuration(duration_text);
  if (!duration.ok() || *duration <= absl::ZeroDuration()) {
    std::cerr << "bare_stream_client: --duration: invalid duration \"" << duration_text << "\"\n";
    return 2;
  }

  std::vector<std::unique_ptr<hello::HelloService::Stub>> stubs;
  const int channels = shared_channel ? 1 : streams;
  for (int i = 0; i < channels; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a TCP connection of its own
    auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      std::cerr << "bare_stream_client: cannot connect to " << target << "\n";
      return 1;
    }
    stubs.push_back(hello::HelloService::NewStub(channel));
  }

  const Clock::time_point start = Clock::now();
  const double cpu_start = CpuSeconds();
  Driver driver(stubs, streams, start + absl::ToChronoNanoseconds(*duration));
  driver.Run();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = CpuSeconds() - cpu_start;

  const int64_t received = driver.received();
  std::printf(
      "bare_stream_client streams=%d channels=%d messages=%lld sent=%lld errors=%lld seconds=%.3f "
      "msgs_per_s=%.1f cpu_seconds=%.3f msgs_per_cpu_s=%.1f\n",
      streams, channels, static_cast<long long>(received), static_cast<long long>(driver.sent()),
      static_cast<long long>(driver.errors()), seconds, seconds > 0 ? received / seconds : 0.0, cpu,
      cpu > 0 ? received / cpu : 0.0);
  return driver.errors() > 0 || received == 0 ? 1 : 0;
}

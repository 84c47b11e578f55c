// A real barrage-agent against a fake controller in this process that speaks
// control.proto out of turn: the agent must hold its side of the protocol
// whatever the controller sends. Every wait is bounded.
#include <gmock/gmock.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "barrage/v1/control.grpc.pb.h"
#include "tests/integration/fixture.h"

namespace barrage {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What the agent sent, in order, as the fake controller saw it.
struct Transcript {
  std::mutex mu;
  std::condition_variable done_cv;
  bool done = false;
  std::vector<v1::AgentMessage::MsgCase> kinds;
  uint64_t iterations = 0;  // summed over the deltas
  std::string error;        // the fake's own failure, if any
};

// A controller that sends Start right after the Assignment, before the
// agent can have initialised its VUs, then, once Ready came, the Start a
// real controller would send, and End after Done.
class StartBeforeReadyController final : public v1::Control::Service {
 public:
  StartBeforeReadyController(std::string archive, std::string options_json, Transcript& out)
      : archive_(std::move(archive)), options_json_(std::move(options_json)), out_(out) {}

  grpc::Status Session(grpc::ServerContext*,
                       grpc::ServerReaderWriter<v1::ControllerMessage, v1::AgentMessage>* stream) override {
    std::string error = Converse(*stream);
    std::lock_guard<std::mutex> lock(out_.mu);
    out_.error = error;
    out_.done = true;
    out_.done_cv.notify_all();
    return grpc::Status::OK;
  }

 private:
  using Stream = grpc::ServerReaderWriter<v1::ControllerMessage, v1::AgentMessage>;

  // Reads one message and notes it; false when the stream ended.
  bool Read(Stream& stream, v1::AgentMessage& m) {
    if (!stream.Read(&m)) return false;
    std::lock_guard<std::mutex> lock(out_.mu);
    out_.kinds.push_back(m.msg_case());
    if (m.has_metrics()) {
      for (const v1::MetricSeries& s : m.metrics().series()) {
        if (s.metric() == "iterations") out_.iterations += s.count();
      }
    }
    return true;
  }

  // The whole exchange; an empty string when it went as planned.
  std::string Converse(Stream& stream) {
    v1::AgentMessage in;
    if (!Read(stream, in) || !in.has_hello()) return "no Hello";
    v1::ControllerMessage welcome;
    welcome.mutable_welcome()->set_name(in.hello().name());
    stream.Write(welcome);
    v1::ControllerMessage chunk;
    chunk.mutable_archive_chunk()->set_data(archive_);
    stream.Write(chunk);
    v1::ControllerMessage assignment;
    v1::Assignment* a = assignment.mutable_assignment();
    a->set_run_id("1");
    a->set_archive_size(archive_.size());
    a->set_execution_segment("0:1");
    a->set_options_json(options_json_);
    a->set_metrics_interval_ms(200);
    a->set_threads(1);
    stream.Write(assignment);
    // Out of turn: a second into the VU's init context of 2.5 s, when the
    // agent has made its engine and is initialising the VU. (Sent at once,
    // it would come before the engine exists, a case the agent also ignores.)
    std::this_thread::sleep_for(1s);
    stream.Write(StartNow());
    while (Read(stream, in)) {
      if (in.has_failure()) return "Failure: " + in.failure().message();
      if (in.has_ready()) break;
    }
    if (!in.has_ready()) return "the stream ended before Ready";
    stream.Write(StartNow());
    while (Read(stream, in) && !in.has_done()) {
    }
    if (!in.has_done()) return "the stream ended before Done";
    v1::ControllerMessage end;
    end.mutable_end();
    stream.Write(end);
    while (Read(stream, in)) {  // the agent's last words, until it hangs up
    }
    return "";
  }

  static v1::ControllerMessage StartNow() {
    v1::ControllerMessage m;
    m.mutable_start()->set_start_unix_ns(NowNs());
    return m;
  }

  std::string archive_;
  std::string options_json_;
  Transcript& out_;
};

class AgentProtocolTest : public testutil::TargetFixture {};

TEST_F(AgentProtocolTest, AStartBeforeReadyIsIgnoredAndTheRunHappensAfterReady) {
  // An init context that takes 2.5 s: the first Start arrives inside it.
  const std::string script = Write("slow_init.js", R"(
export const options = { vus: 1, iterations: 3 };
const until = Date.now() + 2500;
while (Date.now() < until) {}
export default function () {}
)");
  const std::string archive_path = dir_ + "/slow_init.tar";
  const std::string barrage = testutil::BinaryPath("barrage");
  testutil::RunResult archived = testutil::Run(barrage, {"archive", "-O", archive_path, script}, 60s);
  ASSERT_EQ(archived.exit_code, 0) << archived.stderr_text;
  testutil::RunResult inspected = testutil::Run(barrage, {"inspect", script}, 60s);
  ASSERT_EQ(inspected.exit_code, 0) << inspected.stderr_text;
  std::ifstream in(archive_path, std::ios::binary);
  const std::string archive((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());

  Transcript transcript;
  StartBeforeReadyController service(archive, inspected.stdout_text, transcript);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(port, 0);

  auto agent = testutil::ChildProcess::Start(testutil::BinaryPath("barrage-agent"),
                                             {"--controller", absl::StrCat("127.0.0.1:", port), "--once"});
  {
    std::unique_lock<std::mutex> lock(transcript.mu);
    ASSERT_TRUE(transcript.done_cv.wait_for(lock, 30s, [&] { return transcript.done; }))
        << "the exchange did not end within 30 s; agent stderr:\n"
        << agent->stderr_text();
  }
  const int rc = agent->Wait(10s);
  server->Shutdown(std::chrono::system_clock::now() + 2s);

  std::lock_guard<std::mutex> lock(transcript.mu);
  EXPECT_EQ(transcript.error, "") << agent->stderr_text();
  EXPECT_EQ(rc, 0) << agent->stderr_text();
  EXPECT_THAT(agent->stderr_text(), HasSubstr("the controller sent Start before this agent was ready: ignored"));
  // Nothing of a run before Ready: no progress, no Done.
  bool ready_seen = false;
  for (v1::AgentMessage::MsgCase kind : transcript.kinds) {
    if (kind == v1::AgentMessage::kReady) ready_seen = true;
    if (!ready_seen) {
      EXPECT_NE(kind, v1::AgentMessage::kProgress) << "progress before Ready";
      EXPECT_NE(kind, v1::AgentMessage::kDone) << "Done before Ready";
    }
  }
  // The run after Ready did the script's iterations, once.
  EXPECT_EQ(transcript.iterations, 3u);
}

}  // namespace
}  // namespace barrage

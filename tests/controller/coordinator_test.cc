// The Coordinator's threads (tests/README: scripts/sanitize.sh thread runs
// these under ThreadSanitizer): gRPC's callback threads run the sessions,
// this test's thread drives the steps as the CLI does, and fake agents in
// this process speak control.proto over loopback, each on a thread of its
// own. Every wait is bounded.
#include "controller/coordinator.h"

#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "barrage/v1/control.grpc.pb.h"
#include "tests/testing/control_messages.h"

namespace barrage::controller {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

using testutil::IterationsDelta;

// An agent in this process, on the synchronous client API, bounded by its
// deadline. Its own connection, so that one agent's cancel is no other's.
class FakeAgent {
 public:
  FakeAgent(const std::string& address, const std::string& name) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channel_ = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
    stub_ = v1::Control::NewStub(channel_);
    context_.set_deadline(std::chrono::system_clock::now() + 60s);
    stream_ = stub_->Session(&context_);
    v1::AgentMessage hello;
    hello.mutable_hello()->set_protocol_version(kProtocolVersion);
    hello.mutable_hello()->set_name(name);
    hello.mutable_hello()->set_capacity(1);
    (void)stream_->Write(hello);
  }
  ~FakeAgent() {
    if (thread_.joinable()) thread_.join();
    context_.TryCancel();
    (void)stream_->Finish();
  }

  // Plays an agent on a thread of its own: ready on the assignment,
  // `deltas` metric deltas of one iteration each on start, done on stop,
  // gone on end. leave_after_start: cancels its stream after the deltas
  // instead (a process that died mid-run).
  void Play(int deltas, bool leave_after_start) {
    thread_ = std::thread([this, deltas, leave_after_start] {
      v1::ControllerMessage m;
      while (stream_->Read(&m)) {
        if (m.has_assignment()) {
          v1::AgentMessage ready;
          ready.mutable_ready()->set_vus(1);
          if (!stream_->Write(ready)) return;
        } else if (m.has_start()) {
          for (int i = 0; i < deltas; ++i) {
            if (!stream_->Write(IterationsDelta(1))) return;
            v1::AgentMessage progress;
            progress.mutable_progress()->set_vus_max(1);
            progress.mutable_progress()->set_vus_active(1);
            progress.mutable_progress()->set_iterations_completed(i + 1);
            if (!stream_->Write(progress)) return;
          }
          if (leave_after_start) {
            context_.TryCancel();
            return;
          }
        } else if (m.has_stop()) {
          v1::AgentMessage done;
          done.mutable_done();
          if (!stream_->Write(done)) return;
        } else if (m.has_end()) {
          (void)stream_->WritesDone();
        }
      }
    });
  }
 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Control::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::ControllerMessage>> stream_;
  std::thread thread_;
};

class CoordinatorTest : public ::testing::Test {
 protected:
  void Start(CoordinatorConfig config) {
    coordinator_ = std::make_unique<Coordinator>(std::move(config));
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(coordinator_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port, 0);
    address_ = absl::StrCat("127.0.0.1:", port);
  }
  void TearDown() override {
    agents_.clear();  // their destructors cancel and finish their streams
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + 5s);
    server_.reset();
    coordinator_.reset();
  }

  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::vector<std::unique_ptr<FakeAgent>> agents_;
};

// An agent that reads nothing: Send waits send_timeout for room in its
// queue, then counts it lost with that reason and cancels its stream. The
// reason must survive: Send used to cancel first, and OnDone (on gRPC's
// executor) then often called the agent lost first, as "the connection was
// closed or reset" (3 of 11 runs under ThreadSanitizer failed so).
// The cancel happens under the agent's out_mu (the lock keeps the reactor
// alive: OnDone clears Agent::reactor under it before deleting itself);
// gRPC runs the reactions a cancel completes (OnWriteDone, OnDone, which
// take out_mu) on its own threads, never inside TryCancel, so this cannot
// deadlock: under scripts/sanitize.sh thread a lock-order cycle would be a
// report and a deadlock a timeout.
TEST_F(CoordinatorTest, AnAgentThatReadsNothingIsLostAfterTheSendTimeout) {
  CoordinatorConfig config;
  config.expected_agents = 1;
  // Far more than what the HTTP/2 windows and gRPC's buffers hold while the
  // agent reads nothing: the queue fills up and stays full.
  config.archive = std::string(32 << 20, 'x');
  config.archive_chunk_bytes = 256 << 10;
  config.max_queued_bytes = 1 << 20;
  config.send_timeout = absl::Milliseconds(500);
  Start(std::move(config));
  agents_.push_back(std::make_unique<FakeAgent>(address_, "mute"));
  // It said hello and reads nothing more: what it is sent piles up.
  ASSERT_TRUE(coordinator_->WaitForAgents(absl::Seconds(20)));
  v1::Failure failure;
  const auto started = std::chrono::steady_clock::now();
  const absl::Status st = coordinator_->Assign(absl::Seconds(20), &failure);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 15s);
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  EXPECT_THAT(st.message(), HasSubstr("agent mute was lost while getting ready: it read nothing of what it was sent"));
  const std::vector<std::string> lost = coordinator_->TakeLost();
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_THAT(lost[0], HasSubstr("mute"));
}

// A run over several agents with everything at once: deltas merged on
// gRPC's threads while this thread reads progress and metrics, one agent
// dying mid-run, more agents knocking after the test is full, then Stop
// and End as the CLI sends them (Ctrl-C's path).
TEST_F(CoordinatorTest, AgentsJoiningLeavingAndStoppingWhileTheRunMerges) {
  constexpr int kAgents = 4;
  constexpr int kDeltas = 50;
  CoordinatorConfig config;
  config.expected_agents = kAgents;
  config.archive = std::string(100 << 10, 'a');
  config.archive_chunk_bytes = 16 << 10;
  config.log_joins = false;
  Start(std::move(config));
  for (int i = 0; i < kAgents; ++i) {
    agents_.push_back(std::make_unique<FakeAgent>(address_, absl::StrCat("a", i)));
    agents_.back()->Play(kDeltas, /*leave_after_start=*/i == 0);
  }
  ASSERT_TRUE(coordinator_->WaitForAgents(absl::Seconds(20)));
  v1::Failure failure;
  ASSERT_TRUE(coordinator_->Assign(absl::Seconds(20), &failure).ok());

  std::atomic<bool> reading{true};
  std::thread reader([&] {
    while (reading) {
      (void)coordinator_->Progress();
      (void)coordinator_->Agents();
      (void)coordinator_->LiveAgents();
      (void)coordinator_->AllDone();
      coordinator_->WithMetrics([](metrics::MetricStore&) {});
      std::this_thread::sleep_for(1ms);
    }
  });
  // Latecomers, turned away (the test has its agents) while it runs.
  std::vector<std::unique_ptr<FakeAgent>> late;
  for (int i = 0; i < 3; ++i) late.push_back(std::make_unique<FakeAgent>(address_, absl::StrCat("late", i)));

  coordinator_->Start(std::nullopt, absl::Now());
  // Every delta of the agents that stay is merged before they are stopped.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (coordinator_->Progress().iterations_completed < (kAgents - 1) * kDeltas &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  coordinator_->Stop("stopped by the test");
  while (!coordinator_->AllDone() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(coordinator_->AllDone());
  coordinator_->End();
  reading = false;
  reader.join();
  late.clear();

  EXPECT_GE(coordinator_->Progress().iterations_completed, (kAgents - 1) * kDeltas);
  const std::vector<std::string> lost = coordinator_->TakeLost();
  ASSERT_EQ(lost.size(), 1u) << absl::StrJoin(lost, "; ");
  EXPECT_THAT(lost[0], HasSubstr("a0"));
}

}  // namespace
}  // namespace barrage::controller

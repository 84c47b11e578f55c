// barrage-target, the real binary, checked with real generated clients: the
// other integration tests and the benchmarks trust what it answers.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/grpcpp.h>

#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "hello/hello.grpc.pb.h"
#include "tests/testing/child_process.h"
#include "tests/testing/paths.h"
#include "tests/testing/status_matchers.h"

namespace barrage {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using ::testing::StartsWith;
using namespace std::chrono_literals;

constexpr auto kStartTimeout = 10s;

// A running barrage-target and a channel to it.
struct Target {
  std::unique_ptr<testutil::ChildProcess> process;
  std::string address;
  std::shared_ptr<grpc::Channel> channel;
};

// Starts barrage-target on a free loopback port with the given extra flags.
// Port 0 and the printed address: parallel ctest runs never fight over a port.
Target StartTarget(std::vector<std::string> flags = {}) {
  Target target;
  std::vector<std::string> args = {"--listen", "127.0.0.1:0"};
  // Two queues unless the test says otherwise: fewer threads than cores, as
  // ctest runs tests side by side.
  if (std::find(flags.begin(), flags.end(), "--threads") == flags.end()) {
    args.insert(args.end(), {"--threads", "2"});
  }
  args.insert(args.end(), flags.begin(), flags.end());
  target.process = testutil::ChildProcess::Start(testutil::BinaryPath("barrage-target"), args);
  absl::StatusOr<std::string> address = target.process->WaitForAddress(kStartTimeout);
  EXPECT_THAT(address, testutil::IsOk());
  if (address.ok()) {
    target.address = *address;
    target.channel = grpc::CreateChannel(target.address, grpc::InsecureChannelCredentials());
  }
  return target;
}

// Every call is bounded, so a hung server fails the test instead of the timeout.
std::unique_ptr<grpc::ClientContext> Context(std::chrono::milliseconds timeout = 10s) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + timeout);
  return context;
}

hello::HelloRequest Greeting(const std::string& greeting) {
  hello::HelloRequest request;
  request.set_greeting(greeting);
  return request;
}

TEST(TargetTest, PrintsTheRealPortAndServesSayHello) {
  Target target = StartTarget();
  ASSERT_THAT(target.address, StartsWith("127.0.0.1:"));
  EXPECT_NE(target.address, "127.0.0.1:0");
  auto stub = hello::HelloService::NewStub(target.channel);
  hello::HelloResponse response;
  grpc::Status status = stub->SayHello(Context().get(), Greeting("Bert"), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.reply(), "hello Bert");
  // Exactly one line on stdout, as scripts parse it.
  EXPECT_EQ(target.process->stdout_text(), "barrage-target listening on " + target.address + "\n");
}

TEST(TargetTest, LotsOfRepliesSendsStreamCountReplies) {
  Target target = StartTarget({"--stream-count", "3"});
  auto stub = hello::HelloService::NewStub(target.channel);
  auto context = Context();
  auto reader = stub->LotsOfReplies(context.get(), Greeting("Bert"));
  std::vector<std::string> replies;
  hello::HelloResponse response;
  while (reader->Read(&response)) replies.push_back(response.reply());
  grpc::Status status = reader->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(replies, ElementsAre("hello Bert", "hello Bert", "hello Bert"));
}

TEST(TargetTest, LotsOfRepliesWaitsStreamIntervalBetweenReplies) {
  Target target = StartTarget({"--stream-count", "3", "--stream-interval", "100ms"});
  auto stub = hello::HelloService::NewStub(target.channel);
  auto context = Context();
  const auto start = std::chrono::steady_clock::now();
  auto reader = stub->LotsOfReplies(context.get(), Greeting("Bert"));
  hello::HelloResponse response;
  int count = 0;
  while (reader->Read(&response)) ++count;
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(count, 3);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 200ms);  // two pauses
}

TEST(TargetTest, LotsOfGreetingsJoinsAllGreetings) {
  Target target = StartTarget();
  auto stub = hello::HelloService::NewStub(target.channel);
  auto context = Context();
  hello::HelloResponse response;
  auto writer = stub->LotsOfGreetings(context.get(), &response);
  for (const char* greeting : {"Ann", "Bert", "Cleo"}) ASSERT_TRUE(writer->Write(Greeting(greeting)));
  ASSERT_TRUE(writer->WritesDone());
  grpc::Status status = writer->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.reply(), "hello Ann, Bert, Cleo");
}

TEST(TargetTest, BidiHelloAnswersEveryMessageAndEndsOnHalfClose) {
  Target target = StartTarget();
  auto stub = hello::HelloService::NewStub(target.channel);
  auto context = Context();
  auto stream = stub->BidiHello(context.get());
  hello::HelloResponse response;
  for (const char* greeting : {"Ann", "Bert"}) {
    ASSERT_TRUE(stream->Write(Greeting(greeting)));
    ASSERT_TRUE(stream->Read(&response));
    EXPECT_EQ(response.reply(), std::string("hello ") + greeting);
  }
  ASSERT_TRUE(stream->WritesDone());
  EXPECT_FALSE(stream->Read(&response));
  grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST(TargetTest, HealthReportsServing) {
  Target target = StartTarget();
  auto stub = grpc::health::v1::Health::NewStub(target.channel);
  for (const char* service : {"", "hello.HelloService"}) {
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status status = stub->Check(Context().get(), request, &response);
    ASSERT_TRUE(status.ok()) << service << ": " << status.error_message();
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
}

TEST(TargetTest, ReflectionListsAndDescribesHelloService) {
  Target target = StartTarget();
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(target.channel);
  auto context = Context();
  auto stream = stub->ServerReflectionInfo(context.get());

  grpc::reflection::v1alpha::ServerReflectionRequest list;
  list.set_list_services("");
  ASSERT_TRUE(stream->Write(list));
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  std::vector<std::string> services;
  for (const auto& service : response.list_services_response().service()) {
    services.push_back(service.name());
  }
  EXPECT_THAT(services, Contains("hello.HelloService"));

  // What k6's `reflect: true` asks next: the file defining the service.
  grpc::reflection::v1alpha::ServerReflectionRequest describe;
  describe.set_file_containing_symbol("hello.HelloService");
  ASSERT_TRUE(stream->Write(describe));
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_THAT(response.file_descriptor_response().file_descriptor_proto(), SizeIs(1));
  google::protobuf::FileDescriptorProto file;
  ASSERT_TRUE(file.ParseFromString(response.file_descriptor_response().file_descriptor_proto(0)));
  EXPECT_EQ(file.package(), "hello");
  ASSERT_THAT(file.service(), SizeIs(1));
  EXPECT_THAT(file.service(0).method(), SizeIs(4));

  ASSERT_TRUE(stream->WritesDone());
  EXPECT_TRUE(stream->Finish().ok());
}

TEST(TargetTest, ErrorRateOneFailsEveryUnaryCallWithTheConfiguredStatus) {
  Target target = StartTarget({"--error-rate", "1", "--error-status", "14"});
  auto stub = hello::HelloService::NewStub(target.channel);
  for (int i = 0; i < 5; ++i) {
    hello::HelloResponse response;
    grpc::Status status = stub->SayHello(Context().get(), Greeting("Bert"), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_EQ(status.error_message(), "injected error");
  }
}

TEST(TargetTest, ErrorStatusDefaultsToInternal) {
  Target target = StartTarget({"--error-rate", "1"});
  auto stub = hello::HelloService::NewStub(target.channel);
  hello::HelloResponse response;
  grpc::Status status = stub->SayHello(Context().get(), Greeting("Bert"), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
}

TEST(TargetTest, ReplySizePadsReplies) {
  Target target = StartTarget({"--reply-size", "1000"});
  auto stub = hello::HelloService::NewStub(target.channel);
  hello::HelloResponse response;
  ASSERT_TRUE(stub->SayHello(Context().get(), Greeting("Bert"), &response).ok());
  EXPECT_EQ(response.reply().size(), 1000u);
  EXPECT_EQ(response.reply(), "hello Bert" + std::string(990, 'x'));
}

TEST(TargetTest, LatencyDelaysUnaryReplies) {
  Target target = StartTarget({"--latency", "300ms"});
  auto stub = hello::HelloService::NewStub(target.channel);
  hello::HelloResponse response;
  // The first call also connects; time the second.
  ASSERT_TRUE(stub->SayHello(Context().get(), Greeting("warm"), &response).ok());
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(stub->SayHello(Context().get(), Greeting("Bert"), &response).ok());
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, 300ms);
  EXPECT_LT(elapsed, 5s);
  EXPECT_EQ(response.reply(), "hello Bert");
}

TEST(TargetTest, DelayedCallsDoNotHoldAThread) {
  // 20 calls of 300 ms on one server thread: served together, not in turn.
  Target target = StartTarget({"--latency", "300ms", "--threads", "1"});
  auto stub = hello::HelloService::NewStub(target.channel);
  hello::HelloResponse warm;
  ASSERT_TRUE(stub->SayHello(Context().get(), Greeting("warm"), &warm).ok());
  grpc::CompletionQueue cq;
  constexpr int kCalls = 20;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<hello::HelloResponse> responses(kCalls);
  std::vector<grpc::Status> statuses(kCalls);
  std::vector<std::unique_ptr<grpc::ClientAsyncResponseReader<hello::HelloResponse>>> calls;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kCalls; ++i) {
    contexts.push_back(Context());
    calls.push_back(stub->AsyncSayHello(contexts.back().get(), Greeting("Bert"), &cq));
    calls.back()->Finish(&responses[i], &statuses[i], reinterpret_cast<void*>(intptr_t{i}));
  }
  for (int i = 0; i < kCalls; ++i) {
    void* tag;
    bool ok;
    ASSERT_TRUE(cq.Next(&tag, &ok));
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  for (const grpc::Status& status : statuses) EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_LT(elapsed, 3s);  // serially it would be 6 s
  cq.Shutdown();
}

TEST(TargetTest, SigtermShutsDownCleanly) {
  Target target = StartTarget();
  target.process->Signal(SIGTERM);
  EXPECT_EQ(target.process->Wait(10s), 0) << target.process->stderr_text();
}

TEST(TargetTest, BadFlagsFailWithAClearMessage) {
  struct Case {
    std::vector<std::string> flags;
    std::string culprit;
  };
  for (const Case& c : std::vector<Case>{{{"--latency", "soon"}, "--latency"},
                                         {{"--error-rate", "1.5"}, "--error-rate"},
                                         {{"--error-status", "0"}, "--error-status"},
                                         {{"--threads", "0"}, "--threads"},
                                         {{"--listen", "nocolon"}, "--listen"},
                                         {{"--no-such-flag"}, "--no-such-flag"}}) {
    testutil::RunResult run =
        testutil::Run(testutil::BinaryPath("barrage-target"), c.flags, 10s);
    EXPECT_NE(run.exit_code, 0) << c.culprit;
    EXPECT_FALSE(run.timed_out) << c.culprit;
    EXPECT_THAT(run.stderr_text, HasSubstr(c.culprit));
    EXPECT_EQ(run.stdout_text, "") << c.culprit;
  }
}

TEST(TargetTest, BusyPortFailsInsteadOfSharingIt) {
  Target first = StartTarget();
  testutil::RunResult second = testutil::Run(testutil::BinaryPath("barrage-target"),
                                             {"--listen", first.address}, 10s);
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_THAT(second.stderr_text, HasSubstr(first.address));
}

}  // namespace
}  // namespace barrage

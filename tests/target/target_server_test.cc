// The knobs the streaming, health, reflection and TLS tests of clients rely
// on, checked in-process on 127.0.0.1:0 with generated hello clients. The
// health and reflection services are called with raw bytes: this binary links
// grpc++_reflection, whose descriptors a second generated copy would clash with.
#include "tests/target/target_server.h"

#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hello/hello.grpc.pb.h"
#include "tests/testing/child_process.h"
#include "tests/testing/paths.h"
#include "tests/testing/status_matchers.h"

namespace barrage::target {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;
using namespace std::chrono_literals;

hello::HelloRequest Greeting(const std::string& greeting) {
  hello::HelloRequest request;
  request.set_greeting(greeting);
  return request;
}

std::unique_ptr<grpc::ClientContext> Context(std::chrono::milliseconds timeout = 10s) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + timeout);
  return context;
}

// A started server and a plaintext stub to it.
struct Served {
  std::unique_ptr<TargetServer> server;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<hello::HelloService::Stub> stub;
};

Served Serve(TargetOptions options,
             std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials()) {
  options.listen = "127.0.0.1:0";
  options.threads = 1;
  Served served;
  absl::StatusOr<std::unique_ptr<TargetServer>> server = TargetServer::Start(options);
  EXPECT_THAT(server, testutil::IsOk());
  if (!server.ok()) return served;
  served.server = std::move(*server);
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  served.channel = grpc::CreateCustomChannel(served.server->address(), credentials, args);
  served.stub = hello::HelloService::NewStub(served.channel);
  return served;
}

// A unary call with raw protobuf bytes both ways.
grpc::Status RawUnary(grpc::Channel* channel, const std::string& method, const std::string& request,
                      std::string* response) {
  grpc::GenericStub stub(channel->shared_from_this());
  grpc::CompletionQueue cq;
  auto context = Context();
  grpc::Slice slice(request);
  grpc::ByteBuffer request_buffer(&slice, 1), response_buffer;
  grpc::Status status;
  auto call = stub.PrepareUnaryCall(context.get(), method, request_buffer, &cq);
  call->StartCall();
  call->Finish(&response_buffer, &status, nullptr);
  void* tag;
  bool ok;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  std::vector<grpc::Slice> slices;
  response->clear();
  if (status.ok() && response_buffer.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) response->append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return status;
}

// grpc.health.v1.Health/Check: the status number, or the RPC's error.
absl::StatusOr<int> HealthStatus(grpc::Channel* channel, const std::string& service) {
  std::string request = std::string("\x0a", 1) + static_cast<char>(service.size()) + service;
  std::string response;
  grpc::Status status = RawUnary(channel, "/grpc.health.v1.Health/Check", request, &response);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  }
  return response.size() == 2 && response[0] == '\x08' ? response[1] : 0;  // field 1, a varint
}

// What a stream's reads gave, and how it ended.
struct StreamEnd {
  std::vector<std::string> replies;
  grpc::StatusCode code;
  std::string message;
};

template <typename Reader>
StreamEnd ReadToEnd(Reader& reader) {
  StreamEnd end;
  hello::HelloResponse response;
  while (reader.Read(&response)) end.replies.push_back(response.reply());
  grpc::Status status = reader.Finish();
  end.code = status.error_code();
  end.message = status.error_message();
  return end;
}

StreamEnd Bidi(hello::HelloService::Stub& stub, const std::vector<std::string>& greetings) {
  auto context = Context();
  auto stream = stub.BidiHello(context.get());
  for (const std::string& greeting : greetings) {
    if (!stream->Write(Greeting(greeting))) break;
  }
  stream->WritesDone();
  return ReadToEnd(*stream);
}

grpc::Status Greetings(hello::HelloService::Stub& stub, int count) {
  auto context = Context();
  hello::HelloResponse response;
  auto writer = stub.LotsOfGreetings(context.get(), &response);
  for (int i = 0; i < count; ++i) {
    if (!writer->Write(Greeting("g"))) break;
  }
  writer->WritesDone();
  return writer->Finish();
}

TEST(TargetServerTest, EchoesXEchoMetadataAsHeadersAndTrailers) {
  Served served = Serve(TargetOptions{});
  const std::string bytes("\x00\xff\x01", 3);
  auto context = Context();
  context->AddMetadata("x-echo-a", "1");
  context->AddMetadata("x-echo-b-bin", bytes);
  context->AddMetadata("x-other", "no");
  hello::HelloResponse response;
  ASSERT_TRUE(served.stub->SayHello(context.get(), Greeting("Bert"), &response).ok());
  EXPECT_EQ(response.reply(), "hello Bert");
  auto texts = [](const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [k, v] : metadata) {
      std::string key(k.data(), k.size());
      if (key.rfind("x-echo-", 0) == 0) out.emplace_back(key, std::string(v.data(), v.size()));
    }
    return out;
  };
  EXPECT_THAT(texts(context->GetServerInitialMetadata()),
              UnorderedElementsAre(Pair("x-echo-a", "1"), Pair("x-echo-b-bin", bytes)));
  EXPECT_THAT(texts(context->GetServerTrailingMetadata()),
              UnorderedElementsAre(Pair("x-echo-a", "1"), Pair("x-echo-b-bin", bytes)));
  // And the user-agent the request came with, for the userAgent option's tests.
  auto ua = context->GetServerInitialMetadata().find("x-user-agent");
  ASSERT_NE(ua, context->GetServerInitialMetadata().end());
  EXPECT_THAT(std::string(ua->second.data(), ua->second.size()), ::testing::HasSubstr("grpc-c++/"));

  // A bidi stream sends the echoed headers before any message.
  auto stream_context = Context();
  stream_context->AddMetadata("x-echo-s", "yes");
  auto stream = served.stub->BidiHello(stream_context.get());
  stream->WaitForInitialMetadata();
  EXPECT_THAT(texts(stream_context->GetServerInitialMetadata()), ElementsAre(Pair("x-echo-s", "yes")));
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_THAT(texts(stream_context->GetServerTrailingMetadata()), ElementsAre(Pair("x-echo-s", "yes")));
}

TEST(TargetServerTest, StreamErrorAfterFailsEachStreamingMethodAfterNMessages) {
  TargetOptions options;
  options.stream_error_after = 2;
  Served served = Serve(options);

  auto context = Context();
  auto replies = served.stub->LotsOfReplies(context.get(), Greeting("a"));
  StreamEnd end = ReadToEnd(*replies);
  EXPECT_THAT(end.replies, ElementsAre("hello a", "hello a"));
  EXPECT_EQ(end.code, grpc::StatusCode::INTERNAL);
  EXPECT_EQ(end.message, "injected stream error");

  end = Bidi(*served.stub, {"a", "b", "c", "d"});
  EXPECT_THAT(end.replies, ElementsAre("hello a", "hello b"));
  EXPECT_EQ(end.code, grpc::StatusCode::INTERNAL);

  EXPECT_EQ(Greetings(*served.stub, 1).error_code(), grpc::StatusCode::OK);  // ended before N
  EXPECT_EQ(Greetings(*served.stub, 5).error_code(), grpc::StatusCode::INTERNAL);

  hello::HelloResponse response;
  EXPECT_TRUE(served.stub->SayHello(Context().get(), Greeting("u"), &response).ok());
}

TEST(TargetServerTest, StreamErrorAfterZeroFailsAtOnceWithErrorStatus) {
  TargetOptions options;
  options.stream_error_after = 0;
  options.error_status = 14;
  Served served = Serve(options);
  auto context = Context();
  auto replies = served.stub->LotsOfReplies(context.get(), Greeting("a"));
  StreamEnd end = ReadToEnd(*replies);
  EXPECT_THAT(end.replies, IsEmpty());
  EXPECT_EQ(end.code, grpc::StatusCode::UNAVAILABLE);
  end = Bidi(*served.stub, {});
  EXPECT_EQ(end.code, grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Greetings(*served.stub, 0).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST(TargetServerTest, ErrorRatePicksFailingStreams) {
  TargetOptions options;
  options.error_rate = 0.5;
  Served served = Serve(options);
  int failed = 0;
  for (int i = 0; i < 100; ++i) {
    StreamEnd end = Bidi(*served.stub, {"a"});
    if (end.code != grpc::StatusCode::OK) {
      ++failed;
      EXPECT_THAT(end.replies, IsEmpty());  // at once, with no --stream-error-after
      EXPECT_EQ(end.message, "injected stream error");
    }
  }
  // Binomial(100, 0.5): outside [20, 80] about once in 10^9 seeds.
  EXPECT_GT(failed, 20);
  EXPECT_LT(failed, 80);
}

TEST(TargetServerTest, BidiRepliesRepliesNTimesPerMessage) {
  TargetOptions options;
  options.bidi_replies = 2;
  Served served = Serve(options);
  StreamEnd end = Bidi(*served.stub, {"a", "b"});
  EXPECT_THAT(end.replies, ElementsAre("hello a", "hello a", "hello b", "hello b"));
  EXPECT_EQ(end.code, grpc::StatusCode::OK);

  options.bidi_replies = 0;
  Served sink = Serve(options);
  end = Bidi(*sink.stub, {"a", "b"});
  EXPECT_THAT(end.replies, IsEmpty());
  EXPECT_EQ(end.code, grpc::StatusCode::OK);
}

TEST(TargetServerTest, HealthReportsNotServingForNamedServices) {
  TargetOptions options;
  options.not_serving = {"down"};
  Served served = Serve(options);
  EXPECT_THAT(HealthStatus(served.channel.get(), ""), testutil::IsOk());
  EXPECT_EQ(*HealthStatus(served.channel.get(), ""), 1);
  EXPECT_EQ(*HealthStatus(served.channel.get(), "hello.HelloService"), 1);
  EXPECT_EQ(*HealthStatus(served.channel.get(), "down"), 2);
  EXPECT_THAT(HealthStatus(served.channel.get(), "unknown"), testutil::StatusIs(absl::StatusCode::kNotFound));
}

TEST(TargetServerTest, ServicesCanBeLeftOut) {
  const std::string kReflection = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
  const std::string kListServices("\x3a\x00", 2);  // list_services: ""
  std::string response;

  Served full = Serve(TargetOptions{});
  ASSERT_TRUE(RawUnary(full.channel.get(), kReflection, kListServices, &response).ok());
  EXPECT_THAT(response, HasSubstr("hello.HelloService"));

  TargetOptions options;
  options.reflection = false;
  Served no_reflection = Serve(options);
  EXPECT_EQ(RawUnary(no_reflection.channel.get(), kReflection, kListServices, &response).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(*HealthStatus(no_reflection.channel.get(), ""), 1);

  options = TargetOptions{};
  options.health = false;
  Served no_health = Serve(options);
  EXPECT_THAT(HealthStatus(no_health.channel.get(), ""),
              testutil::StatusIs(absl::StatusCode::kUnimplemented));
  ASSERT_TRUE(RawUnary(no_health.channel.get(), kReflection, kListServices, &response).ok());
  EXPECT_THAT(response, HasSubstr("hello.HelloService"));
}

// Certificates made at run time with the openssl command (never committed).
class TargetTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testutil::TempDir();
    const std::string script = "set -e; cd '" + dir_ + R"(' || exit 1
command -v openssl >/dev/null || exit 77
mk() { openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$1.key" -out "$1.csr" 2>/dev/null; }
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ca -keyout ca.key -out ca.pem 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=rogue -keyout rogue.key -out rogue.pem 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.ext
mk localhost; openssl x509 -req -in localhost.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out localhost.pem 2>/dev/null
mk client; openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out client.pem 2>/dev/null
)";
    testutil::RunResult run = testutil::Run("/bin/bash", {"-c", script}, 60s);
    if (run.exit_code == 77) GTEST_SKIP() << "no openssl command";
    ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  }
  std::string Read(const std::string& name) {
    std::ifstream in(dir_ + "/" + name);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  TargetOptions Tls(bool mutual) {
    TargetOptions options;
    options.tls = TargetTls{"", "", "", Read("localhost.pem"), Read("localhost.key"),
                            mutual ? Read("ca.pem") : ""};
    return options;
  }
  std::shared_ptr<grpc::ChannelCredentials> Client(const std::string& cert = "") {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = Read("ca.pem");
    if (!cert.empty()) {
      ssl.pem_cert_chain = Read(cert + ".pem");
      ssl.pem_private_key = Read(cert + ".key");
    }
    return grpc::SslCredentials(ssl);
  }
  grpc::StatusCode SayHello(hello::HelloService::Stub& stub) {
    hello::HelloResponse response;
    return stub.SayHello(Context(5s).get(), Greeting("tls"), &response).error_code();
  }
  std::string dir_;
};

TEST_F(TargetTlsTest, ServesTlsAndRefusesPlaintext) {
  Served served = Serve(Tls(false), Client());
  EXPECT_EQ(SayHello(*served.stub), grpc::StatusCode::OK);
  auto plaintext = hello::HelloService::NewStub(
      grpc::CreateChannel(served.server->address(), grpc::InsecureChannelCredentials()));
  EXPECT_EQ(SayHello(*plaintext), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TargetTlsTest, MutualTlsNeedsAClientCertificateFromTheCa) {
  Served no_cert = Serve(Tls(true), Client());
  EXPECT_EQ(SayHello(*no_cert.stub), grpc::StatusCode::UNAVAILABLE);
  Served rogue = Serve(Tls(true), Client("rogue"));
  EXPECT_EQ(SayHello(*rogue.stub), grpc::StatusCode::UNAVAILABLE);
  Served good = Serve(Tls(true), Client("client"));
  EXPECT_EQ(SayHello(*good.stub), grpc::StatusCode::OK);
}

}  // namespace
}  // namespace barrage::target

// Calls against an in-process hello.HelloService on 127.0.0.1:0.
#include "agent/grpc/connection.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "agent/grpc/proto_registry.h"
#include "agent/grpc/stream_call.h"
#include "grpcpp/alarm.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "hello/hello.grpc.pb.h"
#include "tests/agent/grpc/test_reader.h"
#include "tests/testing/status_matchers.h"

namespace barrage::agent::grpc_client {
namespace {

using ::barrage::testutil::IsOk;
using ::barrage::testutil::StatusIs;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;
using namespace std::chrono_literals;

constexpr auto kWait = 20s;  // bound on every wait; a pass takes milliseconds

// Behaviour chosen by the greeting:
//   "fail": INVALID_ARGUMENT with a google.rpc.Status holding the request
//   "big":  a 64 KiB reply
//   "hold": waits for the test to release it (or for cancellation)
//   else:   "hello <greeting>", echoing x-token and x-data-bin as headers
class HelloServer final : public hello::HelloService::Service {
 public:
  grpc::Status SayHello(grpc::ServerContext* context, const hello::HelloRequest* request,
                        hello::HelloResponse* reply) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      peers_.insert(context->peer());
    }
    const auto& md = context->client_metadata();
    if (auto it = md.find("x-token"); it != md.end()) {
      context->AddInitialMetadata("x-echo", std::string(it->second.data(), it->second.size()));
    }
    if (auto it = md.find("x-data-bin"); it != md.end()) {
      context->AddInitialMetadata("x-echo-bin", std::string(it->second.data(), it->second.size()));
    }
    context->AddTrailingMetadata("x-trailer", "t1");
    if (request->greeting() == "fail") {
      // google.rpc.Status{code: 3, message, details: [Any(hello.HelloRequest)]}
      std::string req = request->SerializeAsString();
      auto len = [](int field, const std::string& bytes) {
        return std::string(1, static_cast<char>((field << 3) | 2)) + static_cast<char>(bytes.size()) + bytes;
      };
      std::string any = len(1, "type.googleapis.com/hello.HelloRequest") + len(2, request->SerializeAsString());
      std::string status = std::string("\x08\x03", 2) + len(2, "bad greeting") + len(3, any);
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad greeting", status);
    }
    if (request->greeting() == "big") {
      reply->set_reply(std::string(64 * 1024, 'x'));
      return grpc::Status::OK;
    }
    if (request->greeting() == "hold") {
      std::future<void> f = release_.get_future();
      while (f.wait_for(10ms) != std::future_status::ready && !context->IsCancelled()) {
      }
      return grpc::Status(grpc::StatusCode::ABORTED, "released");
    }
    reply->set_reply("hello " + request->greeting());
    return grpc::Status::OK;
  }

  // BidiHello: "hello <greeting>" per message; "fail" ends the call with
  // INTERNAL "failing as asked".
  grpc::Status BidiHello(grpc::ServerContext*,
                         grpc::ServerReaderWriter<hello::HelloResponse, hello::HelloRequest>* stream) override {
    hello::HelloRequest request;
    while (stream->Read(&request)) {
      if (request.greeting() == "fail") return grpc::Status(grpc::StatusCode::INTERNAL, "failing as asked");
      hello::HelloResponse reply;
      reply.set_reply("hello " + request.greeting());
      stream->Write(reply);
    }
    return grpc::Status::OK;
  }
  // LotsOfReplies: three replies.
  grpc::Status LotsOfReplies(grpc::ServerContext*, const hello::HelloRequest* request,
                             grpc::ServerWriter<hello::HelloResponse>* writer) override {
    for (int i = 0; i < 3; ++i) {
      hello::HelloResponse reply;
      reply.set_reply(absl::StrCat(request->greeting(), " ", i));
      writer->Write(reply);
    }
    return grpc::Status::OK;
  }

  void Release() { release_.set_value(); }
  std::set<std::string> peers() {
    std::lock_guard<std::mutex> lock(mu_);
    return peers_;
  }

 private:
  std::mutex mu_;
  std::set<std::string> peers_;
  std::promise<void> release_;
};

class ConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    address_ = absl::StrCat("127.0.0.1:", port);
    ASSERT_THAT(registry_.Load({BARRAGE_PROTO_DIR}, {"hello/hello.proto"}, ReadDisk), IsOk());
    method_ = registry_.FindMethod("/hello.HelloService/SayHello");
    ASSERT_NE(method_, nullptr);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + 1s);
  }

  absl::StatusOr<std::shared_ptr<Connection>> Connect(ConnectParams params) {
    auto promise = std::make_shared<std::promise<absl::StatusOr<std::shared_ptr<Connection>>>>();
    auto future = promise->get_future();
    Connection::Connect(params, [promise](absl::StatusOr<Connection::Connected> r) {
      if (r.ok()) promise->set_value(std::move(r->connection));
      else promise->set_value(r.status());
    });
    if (future.wait_for(kWait) != std::future_status::ready) return absl::DeadlineExceededError("test wait ran out");
    return future.get();
  }

  std::shared_ptr<Connection> MustConnect(ConnectParams params = {}) {
    if (params.address.empty()) params.address = address_;
    params.plaintext = true;
    absl::StatusOr<std::shared_ptr<Connection>> c = Connect(params);
    EXPECT_THAT(c, IsOk());
    return c.ok() ? *c : nullptr;
  }

  CallResult Call(Connection& connection, const std::string& json, CallOptions options = {}) {
    absl::StatusOr<std::string> request = JsonToBinary(registry_, method_->descriptor->input_type(), json);
    EXPECT_THAT(request, IsOk());
    std::promise<CallResult> promise;
    auto future = promise.get_future();
    connection.UnaryCall(*method_, *request, std::move(options),
                         [&promise](CallResult r) { promise.set_value(std::move(r)); });
    EXPECT_EQ(future.wait_for(kWait), std::future_status::ready);
    return future.get();
  }

  HelloServer service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  ProtoRegistry registry_;
  const MethodInfo* method_ = nullptr;
};

TEST_F(ConnectionTest, UnaryCallReturnsReplyHeadersAndTrailers) {
  std::shared_ptr<Connection> connection = MustConnect();
  ASSERT_NE(connection, nullptr);
  CallOptions options;
  options.metadata = {{"x-token", "abc"}, {"x-data-bin", std::string("\x00\xff\x01", 3)}};
  CallResult result = Call(*connection, R"({"greeting":"world"})", options);
  ASSERT_EQ(result.code, 0) << result.message;
  EXPECT_EQ(*BinaryToJson(registry_, method_->descriptor->output_type(), result.response_bytes),
            R"({"reply":"hello world"})");
  EXPECT_THAT(result.headers, Contains(Pair("content-type", "application/grpc")));
  EXPECT_THAT(result.headers, Contains(Pair("x-echo", "abc")));
  EXPECT_THAT(result.headers, Contains(Pair("x-echo-bin", std::string("\x00\xff\x01", 3))));
  EXPECT_THAT(result.trailers, Contains(Pair("x-trailer", "t1")));
  EXPECT_THAT(result.trailers, Not(Contains(Pair("grpc-status", ::testing::_))));
  EXPECT_EQ(result.bytes_sent, 7 + 5);       // field 1, length 5, "world"; frame header
  EXPECT_EQ(result.bytes_received, 13 + 5);  // "hello world"
  EXPECT_GT(result.elapsed, absl::ZeroDuration());
}

TEST_F(ConnectionTest, NonOkStatusCarriesDetails) {
  std::shared_ptr<Connection> connection = MustConnect();
  ASSERT_NE(connection, nullptr);
  CallResult result = Call(*connection, R"({"greeting":"fail"})");
  EXPECT_EQ(result.code, 3);
  EXPECT_EQ(result.message, "bad greeting");
  EXPECT_THAT(result.trailers, Not(Contains(Pair("grpc-status-details-bin", ::testing::_))));
  EXPECT_EQ(StatusErrorJson(registry_, result.code, result.message, result.status_details_bin),
            R"({"code":3,"message":"bad greeting","details":[)"
            R"({"@type":"type.googleapis.com/hello.HelloRequest","greeting":"fail"}]})");
  EXPECT_EQ(*DefaultJson(registry_, method_->descriptor->output_type()), R"({"reply":null})");
}

TEST_F(ConnectionTest, DeadlineGivesCode4) {
  std::shared_ptr<Connection> connection = MustConnect();
  ASSERT_NE(connection, nullptr);
  CallOptions options;
  options.timeout = absl::Milliseconds(50);
  CallResult result = Call(*connection, R"({"greeting":"hold"})", options);
  service_.Release();
  EXPECT_EQ(result.code, 4) << result.message;
}

TEST_F(ConnectionTest, MaxReceiveSizeGivesCode8AsAResult) {
  ConnectParams params;
  params.max_receive_size = 1024;
  std::shared_ptr<Connection> connection = MustConnect(params);
  ASSERT_NE(connection, nullptr);
  CallResult result = Call(*connection, R"({"greeting":"big"})");
  EXPECT_EQ(result.code, 8) << result.message;
  EXPECT_EQ(Call(*connection, R"({"greeting":"small"})").code, 0);
}

TEST_F(ConnectionTest, MaxSendSizeGivesCode8) {
  ConnectParams params;
  params.max_send_size = 16;
  std::shared_ptr<Connection> connection = MustConnect(params);
  ASSERT_NE(connection, nullptr);
  EXPECT_EQ(Call(*connection, R"({"greeting":"a greeting longer than sixteen bytes"})").code, 8);
}

TEST_F(ConnectionTest, EachConnectHasItsOwnTcpConnection) {
  std::shared_ptr<Connection> a = MustConnect();
  std::shared_ptr<Connection> b = MustConnect();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(Call(*a, R"({"greeting":"a"})").code, 0);
  EXPECT_EQ(Call(*b, R"({"greeting":"b"})").code, 0);
  EXPECT_EQ(service_.peers().size(), 2u);
}

TEST_F(ConnectionTest, CallAfterCloseIsUnavailable) {
  std::shared_ptr<Connection> connection = MustConnect();
  ASSERT_NE(connection, nullptr);
  connection->Close();
  connection->Close();
  EXPECT_EQ(Call(*connection, R"({"greeting":"x"})").code, 14);
}

TEST_F(ConnectionTest, RefusedConnectionFailsAtOnceNamingTheAddress) {
  // A port that was just free: nothing listens there.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  const std::string address = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));

  ConnectParams params;
  params.address = address;
  params.plaintext = true;
  params.timeout = absl::Seconds(600);  // far beyond kWait: an answer in time means it did not wait
  EXPECT_THAT(Connect(params), StatusIs(absl::StatusCode::kUnavailable,
                                        AllOf(HasSubstr(address), HasSubstr("connection refused"))));
}

TEST_F(ConnectionTest, ConnectTimesOutNamingTheAddress) {
  // A socket that listens but never speaks HTTP/2: the channel never gets READY.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 4), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string address = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));

  ConnectParams params;
  params.address = address;
  params.plaintext = true;
  params.timeout = absl::Milliseconds(200);
  EXPECT_THAT(Connect(params), StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr(address)));
  close(fd);
}

TEST_F(ConnectionTest, MalformedAddressesFailBeforeDialing) {
  ConnectParams params;
  params.plaintext = true;
  for (const char* bad : {"127.0.0.1", "localhost:https", "::1:50051", "[::1]", "host:", "host:70000"}) {
    params.address = bad;
    EXPECT_THAT(Connect(params), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(bad))) << bad;
  }
  EXPECT_THAT(ValidateAddress("[::1]:50051"), IsOk());
  EXPECT_THAT(ValidateAddress("localhost:50051"), IsOk());
  EXPECT_THAT(ValidateAddress("127.0.0.1"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("missing port")));
}

// ---- streams on a completion queue the test polls, as an agent worker does ----

// A completion queue polled by a thread of the test, completing QueueTags.
class PolledQueue {
 public:
  PolledQueue() : thread_([this] {
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) static_cast<QueueTag*>(tag)->Complete(ok);
  }) {}
  ~PolledQueue() {
    cq_.Shutdown();
    thread_.join();
  }
  grpc::CompletionQueue* cq() { return &cq_; }

 private:
  grpc::CompletionQueue cq_;
  std::thread thread_;
};

// What a stream reported; filled on the queue's thread.
struct StreamLog {
  std::mutex mu;
  std::vector<std::string> messages;
  int sent = 0;
  std::promise<CallResult> finished;
};

StreamCallHandlers LogTo(const std::shared_ptr<StreamLog>& log) {
  StreamCallHandlers h;
  h.on_message = [log](std::string bytes) {
    hello::HelloResponse reply;
    reply.ParseFromString(bytes);
    std::lock_guard<std::mutex> lock(log->mu);
    log->messages.push_back(reply.reply());
  };
  h.on_sent = [log] {
    std::lock_guard<std::mutex> lock(log->mu);
    log->sent++;
  };
  h.on_finish = [log](CallResult r) { log->finished.set_value(std::move(r)); };
  return h;
}

std::string Greeting(const std::string& text) {
  hello::HelloRequest request;
  request.set_greeting(text);
  return request.SerializeAsString();
}

class StreamCallTest : public ConnectionTest {
 protected:
  // Runs fn on the queue's thread (where the agent's VUs use a stream) and waits.
  void OnQueue(const std::function<void()>& fn) {
    struct Post : QueueTag {
      std::function<void()> fn;
      std::promise<void> done;
      grpc::Alarm alarm;
      void Complete(bool) override {
        fn();
        done.set_value();
      }
    } post;
    post.fn = fn;
    post.alarm.Set(queue_.cq(), std::chrono::system_clock::now(), static_cast<QueueTag*>(&post));
    ASSERT_EQ(post.done.get_future().wait_for(kWait), std::future_status::ready);
  }
  CallResult Finished(StreamLog& log) {
    auto future = log.finished.get_future();
    EXPECT_EQ(future.wait_for(kWait), std::future_status::ready);
    return future.get();
  }
  const MethodInfo* Method(const std::string& name) { return registry_.FindMethod("/hello.HelloService/" + name); }

  PolledQueue queue_;
};

TEST_F(StreamCallTest, BidiWritesInOrderHalfClosesAndCountsEverything) {
  std::shared_ptr<Connection> connection = MustConnect();
  auto log = std::make_shared<StreamLog>();
  OnQueue([&] {
    StreamCall* call = connection->StartStream(*Method("BidiHello"), {}, std::nullopt, queue_.cq(), LogTo(log));
    ASSERT_NE(call, nullptr);
    for (const char* g : {"a", "b", "c"}) call->Write(Greeting(g));
    call->WritesDone();
    call->Write(Greeting("after half-close: ignored"));
  });
  CallResult result = Finished(*log);
  EXPECT_EQ(result.code, 0) << result.message;
  EXPECT_THAT(log->messages, ::testing::ElementsAre("hello a", "hello b", "hello c"));
  EXPECT_EQ(log->sent, 3);
  EXPECT_EQ(result.bytes_sent, 3 * (Greeting("a").size() + 5));
  EXPECT_GT(result.elapsed, absl::ZeroDuration());
}

TEST_F(StreamCallTest, ServerStreamingTakesOneMessageAndFailsASecondWith13) {
  std::shared_ptr<Connection> connection = MustConnect();
  auto ok_log = std::make_shared<StreamLog>();
  OnQueue([&] {
    connection->StartStream(*Method("LotsOfReplies"), {}, std::nullopt, queue_.cq(), LogTo(ok_log))->Write(Greeting("r"));
  });
  EXPECT_EQ(Finished(*ok_log).code, 0);
  EXPECT_THAT(ok_log->messages, ::testing::ElementsAre("r 0", "r 1", "r 2"));

  auto log = std::make_shared<StreamLog>();
  OnQueue([&] {
    StreamCall* call = connection->StartStream(*Method("LotsOfReplies"), {}, std::nullopt, queue_.cq(), LogTo(log));
    call->Write(Greeting("one"));
    call->Write(Greeting("two"));
  });
  CallResult result = Finished(*log);
  EXPECT_EQ(result.code, 13);
  EXPECT_EQ(result.message, "SendMsg called after CloseSend");
}

TEST_F(StreamCallTest, ServerErrorsFailAndCancelStopTheStream) {
  std::shared_ptr<Connection> connection = MustConnect();
  auto failed = std::make_shared<StreamLog>();
  OnQueue([&] {
    StreamCall* call = connection->StartStream(*Method("BidiHello"), {}, std::nullopt, queue_.cq(), LogTo(failed));
    call->Write(Greeting("x"));
    call->Write(Greeting("fail"));
  });
  CallResult result = Finished(*failed);
  EXPECT_EQ(result.code, 13);
  EXPECT_EQ(result.message, "failing as asked");

  auto cancelled = std::make_shared<StreamLog>();
  StreamCall* open = nullptr;
  OnQueue([&] {
    open = connection->StartStream(*Method("BidiHello"), {}, std::nullopt, queue_.cq(), LogTo(cancelled));
    open->Write(Greeting("x"));
  });
  OnQueue([&] { open->Cancel(); });
  EXPECT_EQ(Finished(*cancelled).code, 1);

  auto bad = std::make_shared<StreamLog>();
  OnQueue([&] {
    StreamCall* call = connection->StartStream(*Method("BidiHello"), {}, std::nullopt, queue_.cq(), LogTo(bad));
    call->Fail(2, "can't serialise request object to protocol buffer: x");
  });
  result = Finished(*bad);
  EXPECT_EQ(result.code, 2);
  EXPECT_THAT(result.message, HasSubstr("can't serialise"));
}

TEST_F(StreamCallTest, DeadlineEndsAStreamTheServerKeepsOpen) {
  std::shared_ptr<Connection> connection = MustConnect();
  auto log = std::make_shared<StreamLog>();
  OnQueue([&] {
    connection->StartStream(*Method("BidiHello"), {}, absl::Milliseconds(200), queue_.cq(), LogTo(log))
        ->Write(Greeting("x"));
  });
  EXPECT_EQ(Finished(*log).code, 4);
  EXPECT_THAT(log->messages, ::testing::ElementsAre("hello x"));
}

TEST_F(StreamCallTest, ConnectOnTheCallersQueueCompletesThere) {
  ConnectParams params;
  params.address = address_;
  params.plaintext = true;
  params.cq = queue_.cq();
  std::promise<std::thread::id> on;
  auto connected = std::make_shared<absl::StatusOr<Connection::Connected>>(absl::UnknownError("none"));
  Connection::Connect(params, [&on, connected](absl::StatusOr<Connection::Connected> r) {
    *connected = std::move(r);
    on.set_value(std::this_thread::get_id());
  });
  auto future = on.get_future();
  ASSERT_EQ(future.wait_for(kWait), std::future_status::ready);
  std::thread::id queue_thread;
  OnQueue([&] { queue_thread = std::this_thread::get_id(); });
  EXPECT_EQ(future.get(), queue_thread);
  ASSERT_THAT(connected->status(), IsOk());
  EXPECT_EQ(Call(*(*connected)->connection, R"({"greeting":"q"})").code, 0);
}

}  // namespace
}  // namespace barrage::agent::grpc_client

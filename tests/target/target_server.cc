#include "tests/target/target_server.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <grpc/compression.h>
#include <grpc/grpc.h>
#include <grpc/support/time.h>
#include <grpcpp/alarm.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/security/server_credentials.h>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/tsan_annotations.h"
#include "hello/hello.grpc.pb.h"
#include "tests/target/route_guide_service.h"

namespace barrage::target {
namespace {

using hello::HelloRequest;
using hello::HelloResponse;

// SayHello on async queues, the streaming methods on the callback API; see the header.
using HybridService = hello::HelloService::WithAsyncMethod_SayHello<
    hello::HelloService::WithCallbackMethod_LotsOfReplies<
        hello::HelloService::WithCallbackMethod_LotsOfGreetings<
            hello::HelloService::WithCallbackMethod_BidiHello<hello::HelloService::Service>>>>;

// Requests posted per queue ahead of time, so a burst of new calls never
// waits for a handler to re-post (gRPC's QPS server does the same).
constexpr int kPostedPerQueue = 64;

// grpcbin's answer, padded for --reply-size.
std::string MakeReply(std::string_view body, int reply_size) {
  std::string reply = "hello ";
  reply.append(body);
  if (reply.size() < static_cast<size_t>(reply_size)) {
    reply.append(static_cast<size_t>(reply_size) - reply.size(), 'x');
  }
  return reply;
}

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past
// U+10FFFF. Hand-written: protobuf's validator is internal API.
bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? b : b & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

gpr_timespec DeadlineAfter(absl::Duration d) {
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                      gpr_time_from_nanos(absl::ToInt64Nanoseconds(d), GPR_TIMESPAN));
}

// Request metadata whose key starts with this comes back as response header
// and trailer, values untouched ("-bin" values are bytes both ways), so
// clients can check what they sent and how they read headers and trailers.
constexpr std::string_view kEchoPrefix = "x-echo-";

// The address the process's (last started) server listens on, for header
// x-served-by: tests that put several targets behind one name count the
// calls each got (client-side load balancing).
std::mutex served_by_mu;
std::string& ServedBy() {
  static auto* address = new std::string;
  return *address;
}

}  // namespace
}  // namespace barrage::target

// gRPC C++ consumes a request's grpc-encoding header and decompresses its
// messages before the service sees them, and its API has no way to ask how
// they came. This does, and is what gRPC's own compression tests use
// (src/core/lib/surface/call_test_only.h, exported by libgrpc): the
// algorithm the request's messages were sent with. Only the test server
// uses it, only when a request asks (x-report-encoding). (Whether a message
// really came compressed shows in the bytes the server reads: gRPC sends
// a message compressed whenever that makes it smaller.)
grpc_compression_algorithm grpc_call_test_only_get_compression_algorithm(grpc_call* call);

namespace barrage::target {
namespace {


// Adds the x-echo- metadata of the request to the response's headers and
// trailers; true if there was any. Such a request also gets the user-agent
// it came with back, as header x-user-agent (what the userAgent option did).
// Compression: a request with metadata x-report-encoding gets header
// x-request-encoding, the algorithm its messages were sent with ("gzip");
// one with x-reply-encoding: gzip|deflate gets its replies compressed so.
// x-report-target: header x-served-by, the address this server listens on.
bool EchoMetadata(grpc::ServerContextBase& context) {
  bool any = false;
  std::string user_agent;
  for (const auto& [key, value] : context.client_metadata()) {
    if (key == "x-report-encoding") {
      const char* name = "unknown";
      grpc_compression_algorithm_name(grpc_call_test_only_get_compression_algorithm(context.c_call()), &name);
      context.AddInitialMetadata("x-request-encoding", name);
      any = true;
    }
    if (key == "x-reply-encoding") {
      if (value == "gzip") context.set_compression_algorithm(GRPC_COMPRESS_GZIP);
      if (value == "deflate") context.set_compression_algorithm(GRPC_COMPRESS_DEFLATE);
    }
    if (key == "user-agent") user_agent.assign(value.data(), value.size());
    if (key == "x-report-target") {
      std::lock_guard<std::mutex> lock(served_by_mu);
      context.AddInitialMetadata("x-served-by", ServedBy());
      any = true;
    }
    if (!key.starts_with(grpc::string_ref(kEchoPrefix.data(), kEchoPrefix.size()))) continue;
    std::string k(key.data(), key.size());
    std::string v(value.data(), value.size());
    context.AddInitialMetadata(k, v);
    context.AddTrailingMetadata(k, v);
    any = true;
  }
  if (any) {
    context.AddInitialMetadata("x-user-agent", user_agent);
    grpc::string_ref authority = context.ExperimentalGetAuthority();
    context.AddInitialMetadata("x-authority", std::string(authority.data(), authority.size()));
  }
  return any;
}

// A request asks for its call to end with a chosen status: metadata
// x-fail-status (a code, 1..16) and x-fail-message (its text, optional).
// SayHello fails with it at once; LotsOfReplies sends its replies first.
// k6's tests script their server's answers; this lets theirs be ported.
grpc::Status RequestedStatus(const grpc::ServerContextBase& context) {
  const auto& md = context.client_metadata();
  auto code = md.find("x-fail-status");
  int value = 0;
  if (code == md.end() || !absl::SimpleAtoi(std::string(code->second.data(), code->second.size()), &value) ||
      value < 1 || value > 16) {
    return grpc::Status::OK;
  }
  auto message = md.find("x-fail-message");
  std::string text;
  if (message != md.end()) text.assign(message->second.data(), message->second.size());
  return grpc::Status(static_cast<grpc::StatusCode>(value), text);
}

grpc::Status InjectedStreamError(int code) {
  return grpc::Status(static_cast<grpc::StatusCode>(code), "injected stream error");
}

// How a streaming call misbehaves, drawn when it starts: it fails after
// fail_after messages (never when negative).
struct StreamFault {
  int fail_after = -1;
  int error_status = 13;
};

// LotsOfReplies: stream_count replies, stream_interval apart (the first at once).
class RepliesReactor : public grpc::ServerWriteReactor<HelloResponse> {
 public:
  RepliesReactor(const TargetOptions& options, const HelloRequest& request, StreamFault fault,
                 grpc::Status final_status)
      : remaining_(options.stream_count), interval_(options.stream_interval), fault_(fault),
        final_status_(std::move(final_status)) {
    reply_.set_reply(MakeReply(request.greeting(), options.reply_size));
    if (fault_.fail_after == 0) {
      HappensBefore(this);
      Finish(InjectedStreamError(fault_.error_status));
      return;
    }
    WriteNext();
  }

  void OnWriteDone(bool ok) override {
    HappensAfter(this);  // the operation's start (common/tsan_annotations.h)
    if (!ok) {
      HappensBefore(this);
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
      return;
    }
    if (++sent_ == fault_.fail_after) {
      HappensBefore(this);
      Finish(InjectedStreamError(fault_.error_status));
      return;
    }
    if (interval_ <= absl::ZeroDuration() || remaining_ == 0) {
      WriteNext();
      return;
    }
    // A fresh alarm per pause: replacing the one whose callback may still be
    // returning is safe, as gRPC keeps its state alive until it has run.
    alarm_ = std::make_unique<grpc::Alarm>();
    grpc::Alarm* alarm = alarm_.get();  // read before the release: the next OnWriteDone replaces it
    HappensBefore(this);
    alarm->Set(DeadlineAfter(interval_), [this](bool) {
      HappensAfter(this);
      WriteNext();
    });
  }

  void OnDone() override {
    HappensAfter(this);
    delete this;
  }

 private:
  void WriteNext() {
    if (remaining_ == 0) {
      HappensBefore(this);
      Finish(final_status_);
      return;
    }
    --remaining_;
    HappensBefore(this);
    StartWrite(&reply_);
  }

  int remaining_;
  const absl::Duration interval_;
  const StreamFault fault_;
  const grpc::Status final_status_;
  int sent_ = 0;
  HelloResponse reply_;
  std::unique_ptr<grpc::Alarm> alarm_;
};

// LotsOfGreetings: "hello g1, g2, ..." once the client half-closes.
class GreetingsReactor : public grpc::ServerReadReactor<HelloRequest> {
 public:
  GreetingsReactor(const TargetOptions& options, HelloResponse* response, StreamFault fault,
                   bool send_headers)
      : reply_size_(options.reply_size), response_(response), fault_(fault) {
    if (fault_.fail_after == 0) {
      HappensBefore(this);
      Finish(InjectedStreamError(fault_.error_status));
      return;
    }
    // Echoed headers go out at once, not with the reply at the very end.
    if (send_headers) {
      HappensBefore(this);
      StartSendInitialMetadata();
    }
    HappensBefore(this);
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    HappensAfter(this);  // the operation's start (common/tsan_annotations.h)
    if (ok) {
      if (count_++ > 0) greetings_.append(", ");
      greetings_.append(request_.greeting());
      if (count_ == fault_.fail_after) {
        HappensBefore(this);
        Finish(InjectedStreamError(fault_.error_status));
        return;
      }
      HappensBefore(this);
      StartRead(&request_);
      return;
    }
    response_->set_reply(MakeReply(greetings_, reply_size_));
    HappensBefore(this);
    Finish(grpc::Status::OK);
  }

  void OnDone() override {
    HappensAfter(this);
    delete this;
  }

 private:
  const int reply_size_;
  HelloResponse* const response_;
  const StreamFault fault_;
  HelloRequest request_;
  std::string greetings_;
  int count_ = 0;
};

// BidiHello: an echo, bidi_replies replies per message (one by default), each
// sent before the next message is read; ends with OK when the client half-closes.
class BidiReactor : public grpc::ServerBidiReactor<HelloRequest, HelloResponse> {
 public:
  BidiReactor(const TargetOptions& options, StreamFault fault, bool send_headers)
      : reply_size_(options.reply_size), replies_per_message_(options.bidi_replies), fault_(fault) {
    if (fault_.fail_after == 0) {
      HappensBefore(this);
      Finish(InjectedStreamError(fault_.error_status));
      return;
    }
    // Echoed headers go out at once, before the first message arrives.
    if (send_headers) {
      HappensBefore(this);
      StartSendInitialMetadata();
    }
    HappensBefore(this);
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    HappensAfter(this);  // the operation's start (common/tsan_annotations.h)
    if (!ok) {
      HappensBefore(this);
      Finish(grpc::Status::OK);
      return;
    }
    reply_.set_reply(MakeReply(request_.greeting(), reply_size_));
    pending_ = replies_per_message_;
    WriteOrRead();
  }

  void OnWriteDone(bool ok) override {
    HappensAfter(this);  // the operation's start (common/tsan_annotations.h)
    if (!ok) {
      HappensBefore(this);
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
      return;
    }
    if (++sent_ == fault_.fail_after) {
      HappensBefore(this);
      Finish(InjectedStreamError(fault_.error_status));
      return;
    }
    WriteOrRead();
  }

  void OnDone() override {
    HappensAfter(this);
    delete this;
  }

 private:
  // One operation each way at a time: the replies to a message, then the next read.
  void WriteOrRead() {
    if (pending_ > 0) {
      --pending_;
      HappensBefore(this);
      StartWrite(&reply_);
      return;
    }
    HappensBefore(this);
    StartRead(&request_);
  }

  const int reply_size_;
  const int replies_per_message_;
  const StreamFault fault_;
  int pending_ = 0;
  int sent_ = 0;
  HelloRequest request_;
  HelloResponse reply_;
};

class HelloServiceImpl : public HybridService {
 public:
  // Streams draw from an engine of their own: their handlers run on gRPC's
  // callback threads, not on the unary queues' threads.
  explicit HelloServiceImpl(const TargetOptions& options)
      : options_(options), stream_rng_(options.seed ^ 0x73747265616d73ULL) {}

  grpc::ServerWriteReactor<HelloResponse>* LotsOfReplies(grpc::CallbackServerContext* context,
                                                         const HelloRequest* request) override {
    EchoMetadata(*context);  // the first write carries the headers
    return new RepliesReactor(options_, *request, DrawFault(), RequestedStatus(*context));
  }
  grpc::ServerReadReactor<HelloRequest>* LotsOfGreetings(grpc::CallbackServerContext* context,
                                                         HelloResponse* response) override {
    const bool echo = EchoMetadata(*context);
    return new GreetingsReactor(options_, response, DrawFault(), echo);
  }
  grpc::ServerBidiReactor<HelloRequest, HelloResponse>* BidiHello(
      grpc::CallbackServerContext* context) override {
    const bool echo = EchoMetadata(*context);
    return new BidiReactor(options_, DrawFault(), echo);
  }

 private:
  // --error-rate picks the failing streams; without it --stream-error-after
  // fails every stream.
  StreamFault DrawFault() {
    StreamFault fault;
    fault.error_status = options_.error_status;
    if (options_.error_rate > 0) {
      std::lock_guard lock(stream_rng_mu_);
      if (std::uniform_real_distribution<double>(0, 1)(stream_rng_) < options_.error_rate) {
        fault.fail_after = std::max(options_.stream_error_after, 0);
      }
      return fault;
    }
    fault.fail_after = options_.stream_error_after;
    return fault;
  }

  const TargetOptions& options_;
  std::mutex stream_rng_mu_;
  std::mt19937_64 stream_rng_;
};

// Drops the server reflection plugin. grpc++_reflection registers it for
// every ServerBuilder from a static initializer, so not calling
// InitProtoReflectionServerBuilderPlugin() is not enough to go without it.
class WithoutReflection : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    const std::string name = grpc::reflection::ProtoServerReflectionPlugin().name();
    plugins->erase(std::remove_if(plugins->begin(), plugins->end(),
                                  [&](const auto& plugin) { return plugin->name() == name; }),
                   plugins->end());
  }
};

std::shared_ptr<grpc::ServerCredentials> Credentials(const TargetOptions& options) {
  if (!options.tls.has_value()) return grpc::InsecureServerCredentials();
  const TargetTls& tls = *options.tls;
  grpc::SslServerCredentialsOptions ssl(
      tls.client_ca_pem.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = tls.client_ca_pem;
  ssl.pem_key_cert_pairs.push_back({tls.private_key_pem, tls.cert_chain_pem});
  return grpc::SslServerCredentials(ssl);
}

// One completion queue and the thread that polls it. The random engine is
// used only by that thread, so draws need no lock and, per queue, follow the seed.
struct Queue {
  std::unique_ptr<grpc::ServerCompletionQueue> cq;
  std::mt19937_64 rng;
  std::thread thread;
};

}  // namespace

struct TargetServer::Impl {
  explicit Impl(const TargetOptions& o) : options(o), service(options) {}

  const TargetOptions options;
  HelloServiceImpl service;
  FeatureExplorerService feature_explorer;  // k6's examples' services (route_guide_service.h)
  RouteGuideService route_guide;
  std::vector<std::unique_ptr<Queue>> queues;
  // Declared after the queues: destroyed before them.
  std::unique_ptr<grpc::Server> server;
  // Starting an operation on a queue after its Shutdown() aborts the process.
  // Handlers start operations under a shared lock and only while open; the
  // shutdown closes under the exclusive lock before shutting the queues.
  std::shared_mutex ops_mu;
  bool queues_open = true;
  bool shut_down = false;
  std::string address;
  int port = 0;
};

namespace {

// One SayHello call, from posted request to finished reply. Owns itself;
// every step runs on its queue's thread.
class UnaryCall {
 public:
  UnaryCall(TargetServer::Impl* server, Queue* queue)
      : server_(server), queue_(queue), responder_(&ctx_) {
    server_->service.RequestSayHello(&ctx_, &request_, &responder_, queue_->cq.get(),
                                     queue_->cq.get(), this);
  }

  void Proceed(bool ok) {
    if (state_ == State::kFinishing || !ok) {
      // Done, or a posted request drained at shutdown.
      delete this;
      return;
    }
    std::shared_lock lock(server_->ops_mu);
    if (!server_->queues_open) {
      lock.unlock();
      delete this;
      return;
    }
    if (state_ == State::kDelaying) {
      Finish();
      return;
    }
    new UnaryCall(server_, queue_);  // keep the posted count up
    const TargetOptions& options = server_->options;
    fail_ = options.error_rate > 0 &&
            std::uniform_real_distribution<double>(0, 1)(queue_->rng) < options.error_rate;
    absl::Duration delay = options.latency;
    if (options.latency_spread > absl::ZeroDuration()) {
      delay += absl::Nanoseconds(std::uniform_int_distribution<int64_t>(
          0, absl::ToInt64Nanoseconds(options.latency_spread))(queue_->rng));
    }
    if (delay > absl::ZeroDuration()) {
      state_ = State::kDelaying;
      alarm_.Set(queue_->cq.get(), DeadlineAfter(delay), this);
      return;
    }
    Finish();
  }

 private:
  enum class State { kPosted, kDelaying, kFinishing };

  void Finish() {
    state_ = State::kFinishing;
    EchoMetadata(ctx_);
    if (grpc::Status requested = RequestedStatus(ctx_); !requested.ok()) {
      responder_.FinishWithError(requested, this);
      return;
    }
    if (fail_) {
      responder_.FinishWithError(
          grpc::Status(static_cast<grpc::StatusCode>(server_->options.error_status),
                       "injected error"),
          this);
      return;
    }
    if (server_->options.strict_utf8 && !IsValidUtf8(request_.greeting())) {
      responder_.FinishWithError(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "greeting is not valid UTF-8"), this);
      return;
    }
    reply_.set_reply(MakeReply(request_.greeting(), server_->options.reply_size));
    responder_.Finish(reply_, grpc::Status::OK, this);
  }

  TargetServer::Impl* const server_;
  Queue* const queue_;
  grpc::ServerContext ctx_;
  HelloRequest request_;
  HelloResponse reply_;
  grpc::ServerAsyncResponseWriter<HelloResponse> responder_;
  grpc::Alarm alarm_;
  State state_ = State::kPosted;
  bool fail_ = false;
};

void Poll(grpc::ServerCompletionQueue* cq) {
  void* tag = nullptr;
  bool ok = false;
  while (cq->Next(&tag, &ok)) static_cast<UnaryCall*>(tag)->Proceed(ok);
}

}  // namespace

absl::StatusOr<std::unique_ptr<TargetServer>> TargetServer::Start(const TargetOptions& options) {
  const size_t colon = options.listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen: expected HOST:PORT, got \"", options.listen, "\""));
  }
  auto impl = std::make_unique<Impl>(options);

  // Both are read when the builder is made.
  grpc::EnableDefaultHealthCheckService(options.health);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  if (!options.reflection) builder.SetOption(std::make_unique<WithoutReflection>());
  builder.AddListeningPort(options.listen, Credentials(options), &impl->port);
  // gRPC sets SO_REUSEPORT by default; two targets on one fixed port would
  // then share it silently instead of the second one failing.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(&impl->service);
  builder.RegisterService(&impl->feature_explorer);
  builder.RegisterService(&impl->route_guide);
  for (int i = 0; i < options.threads; ++i) {
    auto queue = std::make_unique<Queue>();
    queue->cq = builder.AddCompletionQueue();
    queue->rng.seed(options.seed + static_cast<uint64_t>(i));
    impl->queues.push_back(std::move(queue));
  }
  impl->server = builder.BuildAndStart();
  if (impl->server == nullptr || impl->port == 0) {
    if (impl->server != nullptr) impl->server->Shutdown();
    impl->queues_open = false;
    for (auto& queue : impl->queues) {
      queue->cq->Shutdown();
      Poll(queue->cq.get());
    }
    return absl::UnavailableError(absl::StrCat(options.listen, ": cannot listen"));
  }
  if (options.health) {
    grpc::HealthCheckServiceInterface* health = impl->server->GetHealthCheckService();
    health->SetServingStatus("hello.HelloService", true);
    for (const std::string& name : options.not_serving) health->SetServingStatus(name, false);
  }
  impl->address = absl::StrCat(options.listen.substr(0, colon), ":", impl->port);
  {
    std::lock_guard<std::mutex> lock(served_by_mu);
    ServedBy() = impl->address;
  }

  for (auto& queue : impl->queues) {
    for (int i = 0; i < kPostedPerQueue; ++i) new UnaryCall(impl.get(), queue.get());
    queue->thread = std::thread(Poll, queue->cq.get());
  }
  return std::unique_ptr<TargetServer>(new TargetServer(std::move(impl)));
}

TargetServer::TargetServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TargetServer::~TargetServer() { Shutdown(); }

void TargetServer::Shutdown(absl::Duration grace) {
  if (impl_->shut_down) return;
  impl_->shut_down = true;
  // Calls in flight get the grace period, then are cancelled; the queues keep
  // being polled meanwhile, so delayed calls can still finish.
  impl_->server->Shutdown(DeadlineAfter(grace));
  {
    std::unique_lock lock(impl_->ops_mu);
    impl_->queues_open = false;
  }
  // Pending alarms and finishes still arrive while the queues drain.
  for (auto& queue : impl_->queues) queue->cq->Shutdown();
  for (auto& queue : impl_->queues) queue->thread.join();
}

const std::string& TargetServer::address() const { return impl_->address; }
int TargetServer::port() const { return impl_->port; }

}  // namespace barrage::target

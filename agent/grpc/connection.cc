#include "agent/grpc/connection.h"

#include <chrono>
#include <limits>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/alarm.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"

namespace barrage::agent::grpc_client {
namespace {

using GenericStub = grpc::TemplatedGenericStub<grpc::ByteBuffer, grpc::ByteBuffer>;

// Waits on connectivity changes for every Connect in the process: one thread
// and one completion queue, so a thousand VUs connecting cost one thread.
// Never destroyed: connects may be in flight when static destructors run.
class ConnectPoller {
 public:
  class Tag {
   public:
    virtual ~Tag() = default;
    virtual void Proceed(bool ok) = 0;
  };

  static ConnectPoller& Get() {
    static ConnectPoller* poller = new ConnectPoller();
    return *poller;
  }
  grpc::CompletionQueue* cq() { return &cq_; }

 private:
  ConnectPoller() {
    std::thread([this] {
      void* tag;
      bool ok;
      while (cq_.Next(&tag, &ok)) static_cast<Tag*>(tag)->Proceed(ok);
    }).detach();
  }
  grpc::CompletionQueue cq_;
};

// Drops a channel reference on the poller thread. A channel must not be
// destroyed inside one of its own callbacks, and a call's callback may hold
// the last reference (after Close(), or when the caller drops the
// Connection from its completion callback).
void ReleaseChannel(std::shared_ptr<grpc::Channel> channel) {
  struct Release : ConnectPoller::Tag {
    void Proceed(bool) override { delete this; }
    grpc::Alarm alarm;
    std::shared_ptr<grpc::Channel> channel;
  };
  if (channel == nullptr) return;
  auto* release = new Release;
  release->channel = std::move(channel);
  release->alarm.Set(ConnectPoller::Get().cq(), std::chrono::system_clock::now(), release);
}

std::chrono::system_clock::time_point DeadlineAfter(absl::Duration d) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(absl::ToChronoNanoseconds(d));
}

void CopyMetadata(const std::multimap<grpc::string_ref, grpc::string_ref>& in, Metadata* out, bool trailers) {
  out->reserve(in.size());
  for (const auto& [k, v] : in) {
    // grpc-go keeps these out of the metadata a script sees, so k6 does too.
    if (trailers && (k == "grpc-status" || k == "grpc-message" || k == "grpc-status-details-bin")) continue;
    out->emplace_back(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
  }
}

}  // namespace

// One pending Connect: re-arms on every state change until READY, a
// failure, or the deadline.
class ConnectOp : public ConnectPoller::Tag {
 public:
  ConnectOp(std::string address, std::shared_ptr<grpc::Channel> channel, absl::Duration timeout,
            Connection::ConnectDone done)
      : address_(std::move(address)),
        channel_(std::move(channel)),
        timeout_(timeout),
        deadline_(DeadlineAfter(timeout)),
        done_(std::move(done)) {}

  void Start() {
    // GetState(true) starts the dial; a fresh channel is IDLE.
    grpc_connectivity_state state = channel_->GetState(true);
    if (state == GRPC_CHANNEL_READY) {
      Succeed();
      return;
    }
    channel_->NotifyOnStateChange(state, deadline_, ConnectPoller::Get().cq(), this);
  }

  void Proceed(bool ok) override {
    if (!ok) {  // the deadline passed with no change
      Finish(absl::DeadlineExceededError(absl::StrCat("failed to connect to ", address_, " within ",
                                                      absl::FormatDuration(timeout_), ": context deadline exceeded")));
      return;
    }
    grpc_connectivity_state state = channel_->GetState(true);
    switch (state) {
      case GRPC_CHANNEL_READY:
        Succeed();
        return;
      case GRPC_CHANNEL_TRANSIENT_FAILURE:
        // Refused, unreachable, TLS failure: k6 fails at once, not at the
        // timeout. gRPC keeps the reason to itself; a call that may not wait
        // for the channel fails right away and carries it.
        Probe();
        return;
      case GRPC_CHANNEL_SHUTDOWN:
        Finish(absl::UnavailableError(absl::StrCat("failed to connect to ", address_, ": channel shut down")));
        return;
      default:
        channel_->NotifyOnStateChange(state, deadline_, ConnectPoller::Get().cq(), this);
    }
  }

 private:
  // The probe runs on the poller's queue, not the callback API: its end
  // then comes on the poller thread, where dropping the channel is safe (a
  // channel must not be destroyed inside one of its own callbacks).
  struct ProbeCall : ConnectPoller::Tag {
    explicit ProbeCall(ConnectOp* op) : op(op) {}
    void Proceed(bool) override { op->ProbeDone(); }
    ConnectOp* op;
    grpc::ClientContext context;
    grpc::ByteBuffer request, response;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<grpc::ByteBuffer>> reader;
  };

  void Probe() {
    probe_ = std::make_unique<ProbeCall>(this);
    grpc::Slice empty;  // a default ByteBuffer is no message at all: gRPC aborts on it
    probe_->request = grpc::ByteBuffer(&empty, 1);
    probe_->context.set_deadline(DeadlineAfter(absl::Seconds(5)));
    GenericStub stub(channel_);
    probe_->reader = stub.PrepareUnaryCall(&probe_->context, "/barrage.ConnectProbe/Probe", probe_->request,
                                           ConnectPoller::Get().cq());
    probe_->reader->StartCall();
    probe_->reader->Finish(&probe_->response, &probe_->status, probe_.get());
  }

  void ProbeDone() {
    std::string reason = probe_->status.error_message();
    if (absl::StrContains(absl::AsciiStrToLower(reason), "connection refused")) {
      reason = "connection refused";
    } else if (reason.empty()) {
      reason = "transient failure";
    }
    Finish(absl::UnavailableError(absl::StrCat("failed to connect to ", address_, ": ", reason)));
  }

  void Succeed() {
    Finish(std::shared_ptr<Connection>(new Connection(address_, channel_)));
  }

  void Finish(absl::StatusOr<std::shared_ptr<Connection>> result) {
    Connection::ConnectDone done = std::move(done_);
    delete this;
    done(std::move(result));
  }

  const std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  const absl::Duration timeout_;
  const std::chrono::system_clock::time_point deadline_;
  Connection::ConnectDone done_;
  std::unique_ptr<ProbeCall> probe_;
};

absl::Status ValidateAddress(const std::string& address) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("address ", address, ": ", std::string(why)));
  };
  std::string host, port;
  if (!address.empty() && address[0] == '[') {
    size_t close = address.find(']');
    if (close == std::string::npos) return bad("missing ']' in address");
    if (close + 1 >= address.size() || address[close + 1] != ':') return bad("missing port in address");
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    size_t colon = address.rfind(':');
    if (colon == std::string::npos) return bad("missing port in address");
    host = address.substr(0, colon);
    if (host.find(':') != std::string::npos) return bad("too many colons in address");
    port = address.substr(colon + 1);
  }
  int port_number = 0;
  if (port.empty() || !absl::SimpleAtoi(port, &port_number) || port_number < 0 || port_number > 65535 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return absl::ascii_isdigit(c); })) {
    return bad(absl::StrCat("invalid port \"", port, "\""));
  }
  return absl::OkStatus();
}

void Connection::Connect(const ConnectParams& params, ConnectDone done) {
  if (absl::Status valid = ValidateAddress(params.address); !valid.ok()) {
    done(valid);
    return;
  }
  grpc::ChannelArguments args;
  // Its own subchannel, so its own TCP connection, as every k6 client has.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto clamp = [](int64_t v) { return static_cast<int>(std::min<int64_t>(v, std::numeric_limits<int>::max())); };
  if (params.max_receive_size > 0) args.SetMaxReceiveMessageSize(clamp(params.max_receive_size));
  if (params.max_send_size > 0) args.SetMaxSendMessageSize(clamp(params.max_send_size));
  if (!params.authority.empty()) {
    args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, params.authority);
    if (!params.plaintext) args.SetSslTargetNameOverride(params.authority);
  }
  if (!params.user_agent.empty()) args.SetUserAgentPrefix(params.user_agent);
  std::shared_ptr<grpc::ChannelCredentials> creds =
      params.plaintext ? grpc::InsecureChannelCredentials() : grpc::SslCredentials(grpc::SslCredentialsOptions());
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(params.address, creds, args);
  (new ConnectOp(params.address, std::move(channel), params.timeout, std::move(done)))->Start();
}

Connection::Connection(std::string address, std::shared_ptr<grpc::Channel> channel)
    : address_(std::move(address)), channel_(std::move(channel)), stub_(std::make_unique<GenericStub>(channel_)) {}

Connection::~Connection() { Close(); }

void Connection::Close() {
  stub_.reset();
  ReleaseChannel(std::move(channel_));
  channel_ = nullptr;
}

namespace {

// Everything a call needs until its callback: gRPC requires the context and
// both buffers to outlive the call.
struct UnaryCallState {
  grpc::ClientContext context;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
  std::shared_ptr<grpc::Channel> channel;  // a Close() mid-call must not free it
  std::function<void(CallResult)> done;
  std::chrono::steady_clock::time_point start;
  int64_t request_size = 0;
};

// Large requests are handed to gRPC without a copy; small ones are copied,
// which is one allocation where handing over the string costs two.
constexpr size_t kZeroCopyThreshold = 4096;

void PrepareUnaryCallState(UnaryCallState* call, std::shared_ptr<grpc::Channel> channel, std::string request_bytes,
                           const CallOptions& options, std::function<void(CallResult)> done) {
  call->channel = std::move(channel);
  call->done = std::move(done);
  call->request_size = static_cast<int64_t>(request_bytes.size());
  if (request_bytes.size() >= kZeroCopyThreshold) {
    auto* owned = new std::string(std::move(request_bytes));
    grpc::Slice slice(owned->data(), owned->size(), [](void* p) { delete static_cast<std::string*>(p); }, owned);
    call->request = grpc::ByteBuffer(&slice, 1);
  } else {
    grpc::Slice slice(request_bytes.data(), request_bytes.size());
    call->request = grpc::ByteBuffer(&slice, 1);
  }
  for (const auto& [key, value] : options.metadata) call->context.AddMetadata(key, value);
  call->context.set_deadline(DeadlineAfter(options.timeout));
  call->start = std::chrono::steady_clock::now();
}

// What a call on a closed connection gets (k6 reports Unavailable too).
CallResult ClosedConnectionResult() {
  CallResult result;
  result.code = static_cast<int>(grpc::StatusCode::UNAVAILABLE);
  result.message = "connection closed";
  return result;
}

// Builds the CallResult, frees the call, then calls its done. Inside a
// gRPC callback the channel reference is dropped on the poller thread (see
// ReleaseChannel); from a completion-queue loop of our own it is simply
// dropped: handing it to another thread on every call cost a futex wake-up
// and a context switch per request.
void FinishUnaryCall(UnaryCallState* call, const grpc::Status& status, bool in_grpc_callback) {
  CallResult result;
  result.elapsed = absl::FromChrono(std::chrono::steady_clock::now() - call->start);
  result.code = static_cast<int>(status.error_code());
  result.message = status.error_message();
  result.status_details_bin = status.error_details();
  result.bytes_sent = call->request_size + 5;
  if (status.ok()) {
    std::vector<grpc::Slice> slices;
    if (call->response.Dump(&slices).ok()) {
      size_t total = 0;
      for (const auto& s : slices) total += s.size();
      result.response_bytes.reserve(total);
      for (const auto& s : slices) {
        result.response_bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    }
    result.bytes_received = static_cast<int64_t>(result.response_bytes.size()) + 5;
  }
  CopyMetadata(call->context.GetServerInitialMetadata(), &result.headers, false);
  // gRPC C++ consumes content-type; grpc-go (so k6) shows it. Any
  // header block that arrived had it, and gRPC checked its value.
  if (status.ok() || !result.headers.empty()) {
    result.headers.emplace(result.headers.begin(), "content-type", "application/grpc");
  }
  CopyMetadata(call->context.GetServerTrailingMetadata(), &result.trailers, true);
  std::function<void(CallResult)> done = std::move(call->done);
  std::shared_ptr<grpc::Channel> channel = std::move(call->channel);
  delete call;
  done(std::move(result));
  if (in_grpc_callback) ReleaseChannel(std::move(channel));
}

}  // namespace

void Connection::UnaryCall(const MethodInfo& method, std::string request_bytes, CallOptions options,
                           std::function<void(CallResult)> done) {
  if (stub_ == nullptr) {
    done(ClosedConnectionResult());
    return;
  }
  auto* call = new UnaryCallState;
  PrepareUnaryCallState(call, channel_, std::move(request_bytes), options, std::move(done));
  stub_->UnaryCall(&call->context, method.full_method, grpc::StubOptions(), &call->request, &call->response,
                   [call](grpc::Status status) { FinishUnaryCall(call, status, /*in_grpc_callback=*/true); });
}

namespace {

// The queue flavour's state: the call and its tag in one allocation.
struct QueuedUnaryCall : QueueTag {
  UnaryCallState* call = new UnaryCallState;  // freed by FinishUnaryCall
  grpc::Status status;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
  void Complete(bool) override {
    reader.reset();  // it points into call's context
    UnaryCallState* c = call;
    const grpc::Status s = std::move(status);
    delete this;
    FinishUnaryCall(c, s, /*in_grpc_callback=*/false);
  }
};

}  // namespace

void Connection::UnaryCall(const MethodInfo& method, std::string request_bytes, CallOptions options,
                           grpc::CompletionQueue* cq, std::function<void(CallResult)> done) {
  if (stub_ == nullptr) {
    done(ClosedConnectionResult());
    return;
  }
  auto* op = new QueuedUnaryCall;
  UnaryCallState* call = op->call;
  PrepareUnaryCallState(call, channel_, std::move(request_bytes), options, std::move(done));
  op->reader = stub_->PrepareUnaryCall(&call->context, method.full_method, call->request, cq);
  op->reader->StartCall();
  op->reader->Finish(&call->response, &op->status, static_cast<QueueTag*>(op));
}

}  // namespace barrage::agent::grpc_client

#include "agent/grpc/stream_call.h"

#include <utility>
#include <vector>

namespace barrage::agent::grpc_client {
namespace {

// Messages up to this size are copied into the slice that carries them
// (up to 23 bytes gRPC keeps inside the slice itself, no allocation);
// larger ones hand their string over, copy-free.
constexpr size_t kCopyBelow = 256;

std::string Flatten(grpc::ByteBuffer& buffer) {
  std::string out;
  // A message that came in one slice (most small ones) is copied from it
  // directly, without the vector of slices Dump fills.
  if (grpc::Slice single; buffer.TrySingleSlice(&single).ok()) {
    out.assign(reinterpret_cast<const char*>(single.begin()), single.size());
    buffer.Clear();
    return out;
  }
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return out;
  size_t total = 0;
  for (const auto& s : slices) total += s.size();
  out.reserve(total);
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  buffer.Clear();
  return out;
}

}  // namespace

StreamCall::StreamCall(std::shared_ptr<grpc::Channel> channel, bool client_streams, Handlers handlers)
    : channel_(std::move(channel)), client_streams_(client_streams), handlers_(std::move(handlers)) {
  for (int i = 0; i < kOpCount; ++i) {
    tags_[i].call = this;
    tags_[i].op = static_cast<Op>(i);
  }
}

StreamCall::~StreamCall() = default;

void StreamCall::Start(grpc::TemplatedGenericStub<grpc::ByteBuffer, grpc::ByteBuffer>& stub, const std::string& path,
                       const CallOptions& options, std::optional<absl::Duration> timeout, grpc::CompletionQueue* cq,
                       std::unique_ptr<StreamCall> self) {
  self_ = std::move(self);
  for (const auto& [key, value] : options.metadata) context_.AddMetadata(key, value);
  compression_ = options.compression;
  if (compression_ != Compression::kNone) context_.set_compression_algorithm(ToGrpcAlgorithm(compression_));
  if (timeout.has_value()) {
    context_.set_deadline(std::chrono::system_clock::now() +
                          std::chrono::duration_cast<std::chrono::system_clock::duration>(
                              absl::ToChronoNanoseconds(*timeout)));
  }
  start_ = std::chrono::steady_clock::now();
  rw_ = stub.PrepareCall(&context_, path, cq);
  StartOp(kStart);
  rw_->StartCall(&tags_[kStart]);
}

void StreamCall::Write(std::string bytes) {
  if (finished_ || finishing_ || half_close_wanted_) return;
  if (!client_streams_ && (half_closed_ || !queue_.empty() || writing_)) {
    // grpc-go's answer to a second message on a non-client-streaming method.
    Fail(13, "SendMsg called after CloseSend");
    return;
  }
  if (queue_.empty() && CanWrite()) {  // the common case: nothing waits, so no queueing
    StartWrite(std::move(bytes));
    return;
  }
  queue_.push_back(std::move(bytes));
  MaybeWrite();
}

void StreamCall::WritesDone() {
  if (half_close_wanted_) return;
  half_close_wanted_ = true;
  MaybeWrite();
}

void StreamCall::Fail(int code, std::string message) {
  if (finished_ || failure_.has_value()) return;
  failure_ = std::make_pair(code, std::move(message));
  queue_.clear();
  context_.TryCancel();
}

void StreamCall::StartRead() {
  StartOp(kRead);
  rw_->Read(&read_buffer_, &tags_[kRead]);
}

void StreamCall::SetWriteBuffer(std::string bytes) {
  if (bytes.size() < kCopyBelow) {
    grpc::Slice slice(bytes.data(), bytes.size());
    write_buffer_ = grpc::ByteBuffer(&slice, 1);
    return;
  }
  auto* owned = new std::string(std::move(bytes));
  grpc::Slice slice(owned->data(), owned->size(), [](void* p) { delete static_cast<std::string*>(p); }, owned);
  write_buffer_ = grpc::ByteBuffer(&slice, 1);
}

void StreamCall::StartWrite(std::string bytes) {
  write_size_ = WireMessageSize(bytes, compression_);
  SetWriteBuffer(std::move(bytes));
  writing_ = true;
  StartOp(kWrite);
  if (!client_streams_) {
    // The only message of a unary or server-streaming call: it half-closes.
    half_closed_ = true;
    rw_->WriteLast(write_buffer_, grpc::WriteOptions(), &tags_[kWrite]);
  } else {
    rw_->Write(write_buffer_, &tags_[kWrite]);
  }
}

void StreamCall::MaybeWrite() {
  if (!CanWrite()) return;
  if (!queue_.empty()) {
    std::string bytes = std::move(queue_.front());
    queue_.pop_front();
    StartWrite(std::move(bytes));
    return;
  }
  if (half_close_wanted_ && !half_closed_) {
    half_closed_ = true;
    writing_ = true;  // WritesDone counts as the outstanding write
    StartOp(kWritesDone);
    rw_->WritesDone(&tags_[kWritesDone]);
  }
}

void StreamCall::OnComplete(Op op, bool ok) {
  --outstanding_;
  switch (op) {
    case kStart:
      started_ = true;
      if (ok) {
        StartRead();
        MaybeWrite();
      } else {
        finishing_ = true;
        StartOp(kFinish);
        rw_->Finish(&status_, &tags_[kFinish]);
      }
      break;
    case kRead:
      if (ok) {
        bytes_received_ += static_cast<int64_t>(read_buffer_.Length()) + 5;
        std::string message = Flatten(read_buffer_);
        if (!failure_.has_value() && handlers_.on_message) handlers_.on_message(std::move(message));
        StartRead();
      } else {
        // The server is done (or the call broke): the status comes next.
        finishing_ = true;
        queue_.clear();
        StartOp(kFinish);
        rw_->Finish(&status_, &tags_[kFinish]);
      }
      break;
    case kWrite:
      writing_ = false;
      if (ok) {
        bytes_sent_ += write_size_;
        if (handlers_.on_sent) handlers_.on_sent();
        MaybeWrite();
      } else {
        queue_.clear();  // the stream is broken; the read side reports why
      }
      break;
    case kWritesDone:
      writing_ = false;
      break;
    case kFinish:
      finished_ = true;
      break;
    case kOpCount:
      break;
  }
  if (!finished_ || outstanding_ > 0) return;
  CallResult result;
  result.elapsed = absl::FromChrono(std::chrono::steady_clock::now() - start_);
  if (failure_.has_value()) {
    result.code = failure_->first;
    result.message = failure_->second;
  } else {
    result.code = static_cast<int>(status_.error_code());
    result.message = GoStatusMessage(result.code, status_.error_message());
    result.status_details_bin = status_.error_details();
  }
  result.bytes_sent = bytes_sent_;
  result.bytes_received = bytes_received_;
  // The call frees itself when this function returns: nothing touches it
  // after on_finish, which may drop the caller's pointer to it.
  std::unique_ptr<StreamCall> me = std::move(self_);
  std::function<void(CallResult)> on_finish = std::move(handlers_.on_finish);
  if (on_finish) on_finish(std::move(result));
}

}  // namespace barrage::agent::grpc_client

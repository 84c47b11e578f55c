// One streaming RPC (client-, server- or bidirectional, or a unary method used
// as a stream), on a completion queue that the caller polls: every handler
// runs on the polling thread, with no thread hop, as the unary calls on the
// agent's workers do (agent/worker_pool.h).
//
// Writes queue and go out one at a time, in order. WritesDone half-closes
// after the queued writes. For a method whose client side does not stream,
// the first write is the last message (it half-closes) and a later one fails
// the stream with Internal, as grpc-go does. Reads run until the server
// finishes; then the status arrives and, once no operation of the call is
// outstanding, on_finish runs: nothing runs after it.
#ifndef BARRAGE_AGENT_GRPC_STREAM_CALL_H_
#define BARRAGE_AGENT_GRPC_STREAM_CALL_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "agent/grpc/connection.h"

namespace barrage::agent::grpc_client {

class StreamCall {
 public:
  using Handlers = StreamCallHandlers;

  ~StreamCall();
  StreamCall(const StreamCall&) = delete;
  StreamCall& operator=(const StreamCall&) = delete;

  // Queues a message (serialized). Ignored once the call has finished or was
  // half-closed.
  void Write(std::string bytes);
  // Half-closes after the queued writes. Idempotent.
  void WritesDone();
  // Ends the call with `code`/`message` instead of what the server says
  // (a message that did not serialise, a handler that threw); code 1
  // (Cancelled) for a plain cancel.
  void Fail(int code, std::string message);
  void Cancel() { Fail(1, "context canceled"); }
  bool finished() const { return finished_; }

 private:
  friend class Connection;
  enum Op { kStart, kRead, kWrite, kWritesDone, kFinish, kOpCount };
  struct Tag : QueueTag {
    StreamCall* call = nullptr;
    Op op = kStart;
    void Complete(bool ok) override { call->OnComplete(op, ok); }
  };

  StreamCall(std::shared_ptr<grpc::Channel> channel, bool client_streams, Handlers handlers);
  void Start(grpc::TemplatedGenericStub<grpc::ByteBuffer, grpc::ByteBuffer>& stub, const std::string& path,
             const CallOptions& options, std::optional<absl::Duration> timeout, grpc::CompletionQueue* cq,
             std::unique_ptr<StreamCall> self);
  void OnComplete(Op op, bool ok);
  void StartOp(Op) { ++outstanding_; }
  bool CanWrite() const { return started_ && !writing_ && !finishing_ && !failure_.has_value(); }
  void MaybeWrite();
  void StartWrite(std::string bytes);  // CanWrite() holds
  void SetWriteBuffer(std::string bytes);
  void StartRead();

  std::shared_ptr<grpc::Channel> channel_;  // a Close() mid-stream must not free it
  const bool client_streams_;
  Handlers handlers_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> rw_;
  Tag tags_[kOpCount];
  int outstanding_ = 0;
  std::unique_ptr<StreamCall> self_;  // the call owns itself until on_finish
  std::deque<std::string> queue_;
  grpc::ByteBuffer read_buffer_;
  grpc::ByteBuffer write_buffer_;
  int64_t write_size_ = 0;  // on the wire, frame header included
  Compression compression_ = Compression::kNone;
  grpc::Status status_;
  std::optional<std::pair<int, std::string>> failure_;
  std::chrono::steady_clock::time_point start_;
  int64_t bytes_sent_ = 0;
  int64_t bytes_received_ = 0;
  bool started_ = false;
  bool writing_ = false;
  bool half_close_wanted_ = false;
  bool half_closed_ = false;  // WritesDone or the last message went out (or is going)
  bool finishing_ = false;    // Finish requested
  bool finished_ = false;     // status in
};

}  // namespace barrage::agent::grpc_client

#endif  // BARRAGE_AGENT_GRPC_STREAM_CALL_H_

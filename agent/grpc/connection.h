// One client.connect(): a gRPC channel to the target and the calls made on it
// (spec §1.5, §1.6). Like k6, every connect gets its own channel with its own
// subchannel, hence its own TCP connection, even to the same address.
//
// Nothing here blocks a caller's thread: Connect waits for READY on a
// background thread this library owns, and calls use gRPC's callback API.
// Completion callbacks run on a gRPC or library thread (or, for immediate
// failures, on the caller's thread before the call returns); the caller hops
// them onto its own worker. Callbacks must not throw.
#ifndef BARRAGE_AGENT_GRPC_CONNECTION_H_
#define BARRAGE_AGENT_GRPC_CONNECTION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/grpc/compression.h"
#include "agent/grpc/proto_registry.h"
#include "agent/grpc/resolver.h"

namespace grpc {
class Channel;
class ChannelArguments;
class ChannelCredentials;
class CompletionQueue;
template <class R, class W>
class TemplatedGenericStub;
class ByteBuffer;
class ClientContext;
}  // namespace grpc

namespace barrage::agent::grpc_client {

struct ConnectParams {
  std::string address;  // host:port, IPv6 in brackets; no scheme
  bool plaintext = false;
  absl::Duration timeout = absl::Seconds(60);
  int64_t max_receive_size = 0;  // 0: gRPC's default, 4 MiB
  int64_t max_send_size = 0;     // 0: no limit
  std::string authority;         // empty: the host part of the address
  std::string user_agent;        // prefix of the user-agent header
  // TLS (plaintext == false) verifies the server against the system roots,
  // plus tls_cacerts when given (PEM). A client certificate when both
  // tls_cert and tls_key are given (PEM); tls_password decrypts a legacy
  // encrypted PEM key.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_password;
  std::vector<std::string> tls_cacerts;
  // insecureSkipTLSVerify (spec §1.5.1): the server's certificate is not
  // checked at all (chain and name), as Go's InsecureSkipVerify.
  bool tls_skip_verify = false;
  // Server reflection after the dial (spec §1.5.2): the services' files come
  // back in ConnectResult.reflected. reflect_metadata goes on its calls.
  bool reflect = false;
  std::vector<std::pair<std::string, std::string>> reflect_metadata;
  // connectionSharing (issue 16): 0, the default, gives the connection a
  // channel of its own (k6's behaviour). Otherwise connections made with
  // the same channel-bound parameters (all of the above but timeout,
  // reflect and reflect_metadata, which only the dial uses) and the same
  // cq share one gRPC channel, hence one TCP connection, at most
  // connection_sharing connections on one channel (kShareUnlimited: no
  // limit); a further one opens another. A shared channel closes when the
  // last Connection on it is closed or destroyed; closing one never
  // disturbs the others' calls. Why per cq (per agent worker thread): a
  // channel used from several workers' queues has its socket read by
  // whichever worker polls and its completions handed to the others, which
  // cost 1.7 times the CPU per request of a channel per VU (4 VUs, two
  // workers, tests/bench/sharing.sh); per worker it costs no more.
  static constexpr int kShareUnlimited = -1;
  int connection_sharing = 0;
  // k6's dns and hosts options (resolver.h). Set: a host name in address is
  // resolved here, not by gRPC, and the channel dials what `select` picks
  // from its addresses: the first, one at random (per connection; with
  // connectionSharing per shared channel), or all of them with gRPC's
  // round_robin policy (roundRobin: the calls of the connection are spread
  // over every address). The authority and the TLS name stay the host
  // name. A call made after dns->ttl looks the name up again; when the
  // addresses changed, the connection moves to a new channel (calls in
  // flight finish on the old one). Unset, or an IP literal: gRPC resolves
  // the address itself, as before.
  std::shared_ptr<const DnsSettings> dns;
  // The completion queue the caller polls (an agent worker's): the dial is
  // watched there and `done` runs on its thread. Unset: a queue and thread
  // of this library.
  grpc::CompletionQueue* cq = nullptr;
};

// One reflection stream's outcome, for its grpc_req_duration sample.
struct ReflectionCall {
  int code = 0;
  absl::Duration elapsed;
};

using Metadata = std::vector<std::pair<std::string, std::string>>;

class StreamCall;

// gRPC's rules for metadata a call sends, checked before the call starts
// (gRPC C++ aborts the process on a pair it refuses): a key is non-empty and
// made of [0-9a-z-_.]; a value not under a "-bin" key is printable ASCII
// (0x20-0x7E), so a token read from a file with its trailing newline is
// refused. The error is grpc-go's text, which k6 users see: kInternal
// `header key "k" contains value with non-printable ASCII characters`.
absl::Status ValidateMetadata(const std::vector<std::pair<std::string, std::string>>& metadata);

// A tag on a grpc::CompletionQueue that the queue's poller completes: the
// agent's workers poll their own queue and call Complete(ok) for each tag.
class QueueTag {
 public:
  virtual ~QueueTag() = default;
  virtual void Complete(bool ok) = 0;
};

struct CallOptions {
  // Lower-case keys; values of "-bin" keys are raw bytes (gRPC base64s them).
  Metadata metadata;
  absl::Duration timeout = absl::Minutes(2);
  // The messages this call sends are compressed so (grpc-encoding); replies
  // are decompressed whatever the server chose.
  Compression compression = Compression::kNone;
};

// What a finished call gives back. A failed call is data, not an error:
// every outcome (deadline, size limit, refused, server status) is a code.
struct CallResult {
  int code = 0;          // gRPC status code, 0 for OK
  std::string message;   // the status message
  std::string response_bytes;
  Metadata headers;      // response header metadata, keys lower-case
  Metadata trailers;     // trailer metadata without grpc-status/-message/-status-details-bin
  std::string status_details_bin;  // the grpc-status-details-bin trailer (google.rpc.Status)
  // Message bytes plus the 5-byte gRPC frame header of each message; HTTP/2
  // framing, headers and TLS records are not counted. Sent messages count
  // as they go on the wire, compressed or not (WireMessageSize); received
  // ones as gRPC hands them over, decompressed.
  int64_t bytes_sent = 0;
  int64_t bytes_received = 0;
  absl::Duration elapsed;  // from the start of the call to its final status
  // False when the call was refused before it began (metadata gRPC would
  // not send): k6 emits no sample for it, as grpc-go's stats never saw it.
  bool started = true;
};

// A status's message as grpc-go words it where gRPC C++ differs and k6's
// users match the text: the client's own message size limits
// ("Received message larger than max (26 vs. 1)" reads "grpc: received
// message larger than max (26 vs. 1)", "Sent message larger than max" reads
// "grpc: trying to send message larger than max"). Other messages as given.
std::string GoStatusMessage(int code, const std::string& message);

// What a streaming call reports (StreamCall), on the polling thread.
struct StreamCallHandlers {
  std::function<void(std::string message)> on_message;  // each message received, in order
  std::function<void()> on_sent;                         // each message that made it onto the wire
  std::function<void(CallResult)> on_finish;            // once, last; response_bytes empty
};

// Checks a client certificate and key as connect would use them (tlsAuth
// entries, checked once before the run): kInvalidArgument with k6's texts.
absl::Status CheckClientCertificate(const std::string& cert, const std::string& key, const std::string& password);

// The host a TLS certificate is matched against: the authority when given,
// else the host part of the address ("[::1]:443" -> "::1").
std::string TlsHostName(const std::string& address, const std::string& authority);

// Whether a tlsAuth domain ("example.com", "*.example.com") covers host.
bool TlsDomainMatches(const std::string& domain, const std::string& host);

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  struct Connected {
    std::shared_ptr<Connection> connection;
    std::string reflected;                  // a serialized FileDescriptorSet (reflect only)
    std::vector<ReflectionCall> reflection_calls;
  };
  using ConnectDone = std::function<void(absl::StatusOr<Connected>)>;

  // Dials params.address and calls `done` once: with the connection when the
  // channel is READY (and reflection, if asked, is done); a TLS parameter
  // that does not parse is kInvalidArgument naming it; kInvalidArgument for a malformed address; kUnavailable
  // at once when the dial fails (connection refused, TLS failure), naming the
  // address (`failed to connect to 127.0.0.1:1: connection refused`);
  // kDeadlineExceeded when params.timeout passes first.
  //
  // Returns a canceller, or nullptr when there is none (done already ran, no
  // params.cq, or reflect): calling it on params.cq's thread before done
  // has run makes done run at once with kCancelled. Invalid once done ran.
  static std::function<void()> Connect(const ConnectParams& params, ConnectDone done);

  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts a unary call of `method` with the serialized request and calls
  // `done` once with the outcome. A connection to a resolved name (see
  // ConnectParams::dns) may move to a new channel when a call starts, so
  // its calls, streams and Close() must come from one thread at a time. `method` (and so its registry) must stay
  // alive until `done` runs: the method path is not copied. After Close(),
  // done gets kUnavailable at once. Not to be called concurrently with
  // Close(); concurrent calls are fine.
  void UnaryCall(const MethodInfo& method, std::string request_bytes, CallOptions options,
                 std::function<void(CallResult)> done);

  // Drops the channel. Calls in flight finish normally (they hold the
  // channel); new calls fail. Idempotent.
  // The same call on a completion queue that the caller polls: done runs on
  // the polling thread, with no thread hop. This is the hot path of the
  // agent's workers, which poll their own queue (agent/worker_pool.h).
  // Returns the call's context, valid until done runs, for TryCancel (an
  // asyncInvoke cancelled with its iteration); nullptr when done already ran.
  grpc::ClientContext* UnaryCall(const MethodInfo& method, std::string request_bytes, CallOptions options,
                                 grpc::CompletionQueue* cq, std::function<void(CallResult)> done);
  // Starts a streaming call on cq (see StreamCall); the call owns itself
  // until its on_finish has run. nullptr after Close(). timeout: a deadline
  // for the whole stream, none when unset.
  StreamCall* StartStream(const MethodInfo& method, const CallOptions& options,
                          std::optional<absl::Duration> timeout, grpc::CompletionQueue* cq,
                          StreamCallHandlers handlers);
  void Close();

  const std::string& address() const { return address_; }
  // The addresses the connection's channel dials (ConnectParams::dns),
  // empty when gRPC resolves the address itself: for tests.
  const std::vector<std::string>& resolved_addresses() const { return addresses_; }

  // How many shared channels are open in this process (connectionSharing),
  // and how many connections use them: for tests and benchmarks.
  static std::pair<int, int> SharedChannelCounts();

 private:
  friend class ConnectOp;
  Connection(std::string address, std::shared_ptr<grpc::Channel> channel, std::shared_ptr<void> lease);
  // What a connection to a resolved name needs to make its channel again.
  struct Rebuild;
  // Looks the name up again once its time has come; moves to a new channel
  // when the addresses changed.
  void MaybeRefresh();

  const std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grpc::TemplatedGenericStub<grpc::ByteBuffer, grpc::ByteBuffer>> stub_;
  // This connection's place on a shared channel (nullptr: its own channel);
  // given back by Close().
  std::shared_ptr<void> lease_;
  std::shared_ptr<const Rebuild> rebuild_;  // nullptr: nothing to re-resolve
  std::vector<std::string> addresses_;     // what the name resolved to
  absl::Time next_lookup_ = absl::InfiniteFuture();
};

// grpc-go's name of a status code ("Unimplemented"), for k6's error texts.
const char* CodeName(int code);

// Checks "host:port" as Go's net.SplitHostPort and k6's dialer do. Returns
// kInvalidArgument naming the address, e.g. `address 127.0.0.1: missing port
// in address`. Exposed for tests.
[[nodiscard]] absl::Status ValidateAddress(const std::string& address);

}  // namespace barrage::agent::grpc_client

#endif  // BARRAGE_AGENT_GRPC_CONNECTION_H_

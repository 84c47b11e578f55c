#include "agent/grpc/connection.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/grpc/stream_call.h"
#include "agent/grpc/tls_diagnosis.h"
#include "common/status_macros.h"
#include "common/tsan_annotations.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "grpcpp/alarm.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_certificate_verifier.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace barrage::agent::grpc_client {
namespace {

using GenericStub = grpc::TemplatedGenericStub<grpc::ByteBuffer, grpc::ByteBuffer>;

// A thread of this library waiting on a completion queue of its own. Two
// exist, each made on first use and never destroyed (work may be in flight
// when static destructors run):
// - Releaser(): a queue that does no I/O polling, for alarms only. A polling
//   queue would make its thread one of gRPC's pollers (with the epoll1
//   engine every polling thread reads every socket), reading the VUs'
//   sockets and waking a worker for each completion.
// - Connector(): a polling queue for the connects of callers that have no
//   queue of their own to pass (ConnectParams::cq unset; tests). The agent's
//   VUs pass their worker's queue, so their connects poll there.
class QueueThread {
 public:
  static QueueThread& Releaser() {
    static QueueThread* thread = new QueueThread(GRPC_CQ_NON_POLLING);
    return *thread;
  }
  static QueueThread& Connector() {
    static QueueThread* thread = new QueueThread(GRPC_CQ_DEFAULT_POLLING);
    return *thread;
  }
  grpc::CompletionQueue* cq() { return &cq_; }

 private:
  class Queue : public grpc::CompletionQueue {
   public:
    explicit Queue(grpc_cq_polling_type polling)
        : grpc::CompletionQueue(grpc_completion_queue_attributes{GRPC_CQ_CURRENT_VERSION, GRPC_CQ_NEXT, polling,
                                                                 nullptr}) {}
  };
  explicit QueueThread(grpc_cq_polling_type polling) : cq_(polling) {
    std::thread([this] {
      void* tag;
      bool ok;
      while (cq_.Next(&tag, &ok)) {
        HappensAfter(tag);  // the thread that queued it (common/tsan_annotations.h)
        static_cast<QueueTag*>(tag)->Complete(ok);
      }
    }).detach();
  }
  Queue cq_;
};

// Drops a channel reference on the poller thread. A channel must not be
// destroyed inside one of its own callbacks, and a call's callback may hold
// the last reference (after Close(), or when the caller drops the
// Connection from its completion callback).
void ReleaseChannel(std::shared_ptr<grpc::Channel> channel) {
  struct Release : QueueTag {
    void Complete(bool) override { delete this; }
    grpc::Alarm alarm;
    std::shared_ptr<grpc::Channel> channel;
  };
  if (channel == nullptr) return;
  auto* release = new Release;
  release->channel = std::move(channel);
  HappensBefore(static_cast<QueueTag*>(release));
  release->alarm.Set(QueueThread::Releaser().cq(), std::chrono::system_clock::now(), static_cast<QueueTag*>(release));
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


// ---- TLS (spec §1.5.1) -------------------------------------------------------

std::string OpenSslError() {
  unsigned long e = ERR_get_error();  // NOLINT(runtime/int): OpenSSL's type
  ERR_clear_error();
  if (e == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

// Whether the environment names the system roots, as Go's crypto/x509
// reads them on Linux (and so k6): SSL_CERT_FILE instead of the usual
// bundle, plus every file in each SSL_CERT_DIR folder.
bool RootsFromEnvironment() {
  for (const char* name : {"SSL_CERT_FILE", "SSL_CERT_DIR"}) {
    const char* value = std::getenv(name);
    if (value != nullptr && *value != '\0') return true;
  }
  return false;
}

void AppendFile(const std::string& path, std::string& out) {
  std::ifstream in(path);
  if (!in) return;
  std::stringstream ss;
  ss << in.rdbuf();
  if (!out.empty() && out.back() != '\n') out += '\n';
  out += ss.str();
}

// The roots a client trusts when it adds its own: the system's, as Go's
// x509.SystemCertPool gives k6. gRPC has no "system plus these", so the
// system bundle is read here.
std::string SystemRoots() {
  static const std::string* roots = [] {
    auto* pem = new std::string();
    const char* file = std::getenv("SSL_CERT_FILE");
    if (file != nullptr && *file != '\0') {
      AppendFile(file, *pem);
    } else {
      for (const char* path : {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"}) {
        if (std::ifstream(path)) {
          AppendFile(path, *pem);
          break;
        }
      }
    }
    const char* dirs = std::getenv("SSL_CERT_DIR");
    for (absl::string_view dir : absl::StrSplit(dirs == nullptr ? "" : dirs, ':', absl::SkipEmpty())) {
      std::error_code ec;
      for (const auto& entry : std::filesystem::directory_iterator(std::string(dir), ec)) {
        if (entry.is_regular_file(ec)) AppendFile(entry.path().string(), *pem);
      }
    }
    return pem;
  }();
  return *roots;
}

// Checks that pem holds at least one certificate.
absl::Status CheckCertificates(const std::string& pem, const std::string& what) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (cert == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("invalid tls ", what, " value: failed to find any PEM data in ", what, " input"));
  }
  X509_free(cert);
  return absl::OkStatus();
}

// The client key as unencrypted PEM, for gRPC: a legacy encrypted PEM key is
// decrypted with the password, as Go's x509.DecryptPEMBlock does for k6.
absl::StatusOr<std::string> ClientKey(const std::string& pem, const std::string& password) {
  if (absl::StrContains(pem, "-----BEGIN ENCRYPTED PRIVATE KEY-----")) {
    return absl::InvalidArgumentError("encrypted pkcs8 formatted key is not supported");
  }
  BIO* in = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(in, nullptr, nullptr, const_cast<char*>(password.c_str()));
  BIO_free(in);
  if (key == nullptr) {
    const bool encrypted = absl::StrContains(pem, "ENCRYPTED");
    std::string why = OpenSslError();
    if (encrypted && password.empty()) return absl::InvalidArgumentError("tls key is encrypted and no password was given");
    if (encrypted) return absl::InvalidArgumentError(absl::StrCat("can't decrypt the tls key: x509: decryption password incorrect (", why, ")"));
    return absl::InvalidArgumentError("invalid tls key value: failed to find any PEM data in key input");
  }
  BIO* out = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(out, &data);  // NOLINT(runtime/int): OpenSSL's type
  std::string result(data, static_cast<size_t>(n));
  BIO_free(out);
  EVP_PKEY_free(key);
  return result;
}

// insecureSkipTLSVerify: gRPC's classic SslCredentials always verify, so
// this uses the experimental TLS credentials of gRPC 1.51, which can turn
// chain and name checks off.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeSkipVerifyCredentials(const std::string& cert,
                                                                                   const std::string& key) {
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_verify_server_certs(false);
  options.set_check_call_host(false);
  options.set_certificate_verifier(std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  if (!cert.empty()) {
    std::vector<grpc::experimental::IdentityKeyCertPair> pairs = {{key, cert}};
    options.set_certificate_provider(std::make_shared<grpc::experimental::StaticDataCertificateProvider>(pairs));
    options.watch_identity_key_cert_pairs();
  }
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::experimental::TlsCredentials(options);
  if (creds == nullptr) return absl::InternalError("cannot make TLS credentials that skip verification");
  return creds;
}

// The roots MakeCredentials has the server checked against; empty: the
// system's.
std::string TrustedRoots(const ConnectParams& params) {
  if (params.tls_cacerts.empty()) return "";
  std::string roots = SystemRoots();
  for (const std::string& ca : params.tls_cacerts) {
    if (!roots.empty() && roots.back() != '\n') roots += '\n';
    roots += ca;
  }
  return roots;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeCredentials(const ConnectParams& params) {
  if (params.plaintext) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  // Without cacerts gRPC's own default roots serve, unless SSL_CERT_FILE or
  // SSL_CERT_DIR name others: k6 trusts those (a company CA, a test server).
  if (!params.tls_cacerts.empty() || RootsFromEnvironment()) {
    options.pem_root_certs = SystemRoots();
    for (const std::string& ca : params.tls_cacerts) {
      if (absl::Status st = CheckCertificates(ca, "cacerts"); !st.ok()) return st;
      if (!options.pem_root_certs.empty() && options.pem_root_certs.back() != '\n') options.pem_root_certs += '\n';
      options.pem_root_certs += ca;
    }
  }
  if (!params.tls_cert.empty() && !params.tls_key.empty()) {
    if (absl::Status st = CheckCertificates(params.tls_cert, "cert"); !st.ok()) return st;
    absl::StatusOr<std::string> key = ClientKey(params.tls_key, params.tls_password);
    if (!key.ok()) return key.status();
    options.pem_cert_chain = params.tls_cert;
    options.pem_private_key = *std::move(key);
  }
  if (params.tls_skip_verify) return MakeSkipVerifyCredentials(options.pem_cert_chain, options.pem_private_key);
  return grpc::SslCredentials(options);
}

}  // namespace

absl::Status CheckClientCertificate(const std::string& cert, const std::string& key, const std::string& password) {
  BARRAGE_RETURN_IF_ERROR(CheckCertificates(cert, "cert"));
  return ClientKey(key, password).status();
}

std::string TlsHostName(const std::string& address, const std::string& authority) {
  std::string host = authority.empty() ? address : authority;
  if (!host.empty() && host.front() == '[') {
    const size_t end = host.find(']');
    return end == std::string::npos ? host : host.substr(1, end - 1);
  }
  const size_t colon = host.rfind(':');
  return colon == std::string::npos ? host : host.substr(0, colon);
}

bool TlsDomainMatches(const std::string& domain, const std::string& host) {
  const std::string d = absl::AsciiStrToLower(domain);
  const std::string h = absl::AsciiStrToLower(host);
  if (absl::StartsWith(d, "*.")) {
    // One label, as certificate wildcards match.
    const std::string suffix = d.substr(1);
    return absl::EndsWith(h, suffix) && h.size() > suffix.size() &&
           h.substr(0, h.size() - suffix.size()).find('.') == std::string::npos;
  }
  return d == h;
}

namespace {

// ---- reflection (spec §1.5.2) -------------------------------------------------

// What one reflection stream found: files by name, serialized.
struct Reflected {
  std::map<std::string, std::string> files;
  grpc::Status status;  // non-OK: the listing failed
};

// One ServerReflectionInfo stream of reflection version V (v1 or v1alpha,
// the same messages in two packages): lists the services, then fetches the
// file of each and the files they import, each once. Runs on its own thread
// with the synchronous API: a VU reflects once per connect, and its
// coroutine is suspended meanwhile.
template <typename Service, typename Request, typename Response>
Reflected ReflectWith(const std::shared_ptr<grpc::Channel>& channel, const Metadata& metadata,
                      std::chrono::system_clock::time_point deadline, std::vector<ReflectionCall>* calls) {
  Reflected out;
  if (absl::Status st = ValidateMetadata(metadata); !st.ok()) {
    out.status = grpc::Status(grpc::StatusCode::INTERNAL, std::string(st.message()));
    return out;
  }
  const auto start = std::chrono::steady_clock::now();
  grpc::ClientContext context;
  for (const auto& [k, v] : metadata) context.AddMetadata(k, v);
  context.set_deadline(deadline);
  auto stub = Service::NewStub(channel);
  auto stream = stub->ServerReflectionInfo(&context);
  auto ask = [&](const Request& request, Response* response) {
    return stream->Write(request) && stream->Read(response);
  };
  Request request;
  Response response;
  request.set_list_services("*");
  bool listed = ask(request, &response) && response.has_list_services_response();
  std::vector<std::string> wanted;  // symbols, then file names
  std::set<std::string> asked_files;
  auto add_files = [&](const Response& r) {
    for (const std::string& bytes : r.file_descriptor_response().file_descriptor_proto()) {
      google::protobuf::FileDescriptorProto file;
      if (!file.ParseFromString(bytes) || out.files.count(file.name())) continue;
      out.files.emplace(file.name(), bytes);
      for (const std::string& dep : file.dependency()) {
        if (!out.files.count(dep) && asked_files.insert(dep).second) wanted.push_back(dep);
      }
    }
  };
  if (listed) {
    for (const auto& service : response.list_services_response().service()) {
      Request by_symbol;
      by_symbol.set_file_containing_symbol(service.name());
      Response r;
      if (!ask(by_symbol, &r)) break;
      add_files(r);  // an error response is tolerated: that service's file is missing
    }
    while (!wanted.empty()) {
      std::string name = std::move(wanted.back());
      wanted.pop_back();
      if (out.files.count(name)) continue;
      Request by_name;
      by_name.set_file_by_filename(name);
      Response r;
      if (!ask(by_name, &r)) break;
      add_files(r);
    }
    stream->WritesDone();
  } else {
    if (response.has_error_response()) {
      out.status = grpc::Status(static_cast<grpc::StatusCode>(response.error_response().error_code()),
                                response.error_response().error_message());
    }
    // Half-close, or a server that answered with an error would keep the
    // stream open until the deadline.
    stream->WritesDone();
  }
  grpc::Status finish = stream->Finish();
  if (!listed && out.status.ok()) {
    out.status = finish.ok() ? grpc::Status(grpc::StatusCode::UNKNOWN, "no list of services in the reply") : finish;
  }
  calls->push_back(ReflectionCall{static_cast<int>((listed ? finish : out.status).error_code()),
                                  absl::FromChrono(std::chrono::steady_clock::now() - start)});
  return out;
}

// v1 first, v1alpha when the server has no v1 (spec §1.5.2).
absl::StatusOr<std::string> Reflect(const std::shared_ptr<grpc::Channel>& channel, const Metadata& metadata,
                                    std::chrono::system_clock::time_point deadline,
                                    std::vector<ReflectionCall>* calls) {
  namespace v1 = grpc::reflection::v1;
  namespace v1alpha = grpc::reflection::v1alpha;
  Reflected found = ReflectWith<v1::ServerReflection, v1::ServerReflectionRequest, v1::ServerReflectionResponse>(
      channel, metadata, deadline, calls);
  if (found.status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    found = ReflectWith<v1alpha::ServerReflection, v1alpha::ServerReflectionRequest,
                        v1alpha::ServerReflectionResponse>(channel, metadata, deadline, calls);
  }
  if (!found.status.ok()) {
    return absl::UnavailableError(absl::StrCat("can't list services: rpc error: code = ",
                                               CodeName(static_cast<int>(found.status.error_code())),
                                               " desc = ", found.status.error_message()));
  }
  // Missing descriptors are tolerated (spec §1.5.2): a file whose imports
  // the server could not give is left out, and so, in turn, are the files
  // that import it; the rest loads. Well-known types are built in.
  std::map<std::string, google::protobuf::FileDescriptorProto> files;
  for (const auto& [name, bytes] : found.files) {
    google::protobuf::FileDescriptorProto file;
    if (file.ParseFromString(bytes)) files.emplace(name, std::move(file));
  }
  for (bool dropped = true; dropped;) {
    dropped = false;
    for (auto it = files.begin(); it != files.end();) {
      const bool complete = std::all_of(it->second.dependency().begin(), it->second.dependency().end(),
                                        [&](const std::string& dep) {
                                          return files.count(dep) > 0 || absl::StartsWith(dep, "google/protobuf/");
                                        });
      if (complete) {
        ++it;
      } else {
        it = files.erase(it);
        dropped = true;
      }
    }
  }
  google::protobuf::FileDescriptorSet set;
  for (auto& [name, file] : files) *set.add_file() = std::move(file);
  return set.SerializeAsString();
}

}  // namespace

const char* CodeName(int code) {
  static constexpr const char* kNames[] = {
      "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
      "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted",
      "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"};
  if (code < 0 || code >= static_cast<int>(std::size(kNames))) return "Unknown";
  return kNames[code];
}

// One pending Connect: re-arms on every state change until READY, a
// failure, or the deadline.
// The shared channels of connectionSharing, process-wide: by key (the
// channel-bound parameters), the channels open for it and how many
// connections each has. A Lease is one connection's place on a channel: it
// holds the channel, and gives the place back when it is destroyed (the
// connection closed, or its dial failed), closing the channel with the last
// one. Calls in flight hold the channel themselves, so closing never cuts
// them short.
class ChannelPool {
 public:
  struct Entry {
    std::shared_ptr<grpc::Channel> channel;  // dropped when users falls to 0
    int users = 0;
  };
  class Lease {
   public:
    Lease(ChannelPool& pool, std::string key, std::shared_ptr<Entry> entry)
        : pool_(pool), key_(std::move(key)), entry_(std::move(entry)) {}
    ~Lease() { pool_.Release(key_, entry_); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;

   private:
    ChannelPool& pool_;
    const std::string key_;
    const std::shared_ptr<Entry> entry_;
  };

  static ChannelPool& Get() {
    static auto* pool = new ChannelPool;  // never destroyed: leases may outlive main's statics
    return *pool;
  }

  // A place on a channel of `key` with fewer than `limit` connections
  // (kShareUnlimited: any), or on a new one that `make` creates.
  std::pair<std::shared_ptr<grpc::Channel>, std::shared_ptr<Lease>> Acquire(
      const std::string& key, int limit, const std::function<std::shared_ptr<grpc::Channel>()>& make) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::shared_ptr<Entry>>& entries = entries_[key];
    std::shared_ptr<Entry> chosen;
    for (const std::shared_ptr<Entry>& e : entries) {
      if (limit == ConnectParams::kShareUnlimited || e->users < limit) {
        chosen = e;
        break;
      }
    }
    if (chosen == nullptr) {
      chosen = std::make_shared<Entry>();
      chosen->channel = make();
      entries.push_back(chosen);
    }
    ++chosen->users;
    return {chosen->channel, std::make_shared<Lease>(*this, key, chosen)};
  }

  std::pair<int, int> Counts() {
    std::lock_guard<std::mutex> lock(mu_);
    int channels = 0, users = 0;
    for (const auto& [key, entries] : entries_) {
      channels += static_cast<int>(entries.size());
      for (const auto& e : entries) users += e->users;
    }
    return {channels, users};
  }

 private:
  void Release(const std::string& key, const std::shared_ptr<Entry>& entry) {
    std::shared_ptr<grpc::Channel> last;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--entry->users > 0) return;
      last = std::move(entry->channel);
      auto it = entries_.find(key);
      if (it != entries_.end()) {
        std::erase(it->second, entry);
        if (it->second.empty()) entries_.erase(it);
      }
    }
    ReleaseChannel(std::move(last));  // maybe inside a gRPC callback: not here
  }

  std::mutex mu_;
  std::map<std::string, std::vector<std::shared_ptr<Entry>>> entries_;
};

// The parameters bound to a channel, as one string: connections whose keys
// are equal may share a channel. Lengths before values keep it unambiguous.
std::string SharingKey(const ConnectParams& p) {
  std::string key;
  auto add = [&key](const std::string& v) { absl::StrAppend(&key, v.size(), ":", v, ";"); };
  add(p.address);
  add(p.plaintext ? "plaintext" : "tls");
  add(absl::StrCat(p.max_receive_size, "/", p.max_send_size, "/", p.connection_sharing));
  add(p.authority);
  add(p.user_agent);
  add(p.tls_cert);
  add(p.tls_key);
  add(p.tls_password);
  for (const std::string& ca : p.tls_cacerts) add(ca);
  add(p.tls_skip_verify ? "skip" : "verify");
  add(absl::StrCat(reinterpret_cast<uintptr_t>(p.cq)));
  return key;
}

class ConnectOp : public QueueTag {
 public:
  ConnectOp(const ConnectParams& params, std::shared_ptr<grpc::Channel> channel, std::shared_ptr<void> lease,
            Connection::ConnectDone done)
      : address_(params.address),
        channel_(std::move(channel)),
        lease_(std::move(lease)),
        timeout_(params.timeout),
        deadline_(DeadlineAfter(params.timeout)),
        reflect_(params.reflect),
        reflect_metadata_(params.reflect_metadata),
        tls_(!params.plaintext && !params.tls_skip_verify),
        tls_host_(TlsHostName(params.address, params.authority)),
        tls_roots_(TrustedRoots(params)),
        cq_(params.cq != nullptr ? params.cq : QueueThread::Connector().cq()),
        done_(std::move(done)) {}

  // Returns false when the op already finished (and is gone).
  bool Start() {
    // GetState(true) starts the dial; a fresh channel is IDLE.
    grpc_connectivity_state state = channel_->GetState(true);
    if (state == GRPC_CHANNEL_READY) {
      Succeed();
      return false;
    }
    Watch(state);
    return true;
  }

  // The caller gave up (its VU context ended): done runs now, with
  // Cancelled, and the op frees itself when its pending watch or probe comes
  // back (gRPC cannot cancel a connectivity watch). On the queue's thread
  // only; never while reflecting (the caller gets no canceller then).
  void Cancel() {
    if (!done_) return;
    cancelled_ = true;
    Connection::ConnectDone done = std::move(done_);
    done_ = nullptr;
    done(absl::CancelledError(absl::StrCat("connecting to ", address_, " was cancelled: the VU's context ended")));
  }

  void Complete(bool ok) override {
    if (cancelled_) {
      delete this;
      return;
    }
    if (!ok && std::chrono::system_clock::now() < deadline_) {  // a slice ended with no change
      Watch(watched_);
      return;
    }
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
        Watch(state);
    }
  }

 private:
  // The probe runs on the connect's queue, not the callback API: its end
  // then comes on that queue's thread, where dropping the channel is safe (a
  // channel must not be destroyed inside one of its own callbacks).
  struct ProbeCall : QueueTag {
    explicit ProbeCall(ConnectOp* op) : op(op) {}
    void Complete(bool) override { op->ProbeDone(); }
    ConnectOp* op;
    grpc::ClientContext context;
    grpc::ByteBuffer request, response;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<grpc::ByteBuffer>> reader;
  };

  // Watches for a change from `state` in slices of at most a second, so
  // that a cancelled op is gone within a second (the queue it waits on
  // cannot shut down before) rather than at the connect timeout.
  void Watch(grpc_connectivity_state state) {
    watched_ = state;
    const auto slice = std::min(deadline_, std::chrono::system_clock::now() + std::chrono::seconds(1));
    channel_->NotifyOnStateChange(state, slice, cq_, static_cast<QueueTag*>(this));
  }

  void Probe() {
    probe_ = std::make_unique<ProbeCall>(this);
    grpc::Slice empty;  // a default ByteBuffer is no message at all: gRPC aborts on it
    probe_->request = grpc::ByteBuffer(&empty, 1);
    probe_->context.set_deadline(DeadlineAfter(absl::Seconds(5)));
    GenericStub stub(channel_);
    probe_->reader = stub.PrepareUnaryCall(&probe_->context, "/barrage.ConnectProbe/Probe", probe_->request,
                                           cq_);
    probe_->reader->StartCall();
    probe_->reader->Finish(&probe_->response, &probe_->status, static_cast<QueueTag*>(probe_.get()));
  }

  void ProbeDone() {
    if (cancelled_) {
      delete this;  // probe_ too, whose Complete called this: nothing follows
      return;
    }
    std::string reason = probe_->status.error_message();
    if (tls_ && (absl::StrContains(reason, "certificate verify failed") ||
                 absl::StrContains(reason, "is not in peer certificate"))) {
      Diagnose();
      return;
    }
    if (absl::StrContains(absl::AsciiStrToLower(reason), "connection refused")) {
      reason = "connection refused";
    } else if (reason.empty()) {
      reason = "transient failure";
    }
    Finish(absl::UnavailableError(absl::StrCat("failed to connect to ", address_, ": ", reason)));
  }

  // Go's reason for the refused certificate (tls_diagnosis.h), found on a
  // thread of its own (it dials again); the answer comes back to the queue
  // through an alarm, where a Cancel in the meantime is seen.
  struct DiagnosisTag : QueueTag {
    explicit DiagnosisTag(ConnectOp* op) : op(op) {}
    void Complete(bool) override { op->DiagnosisDone(); }
    ConnectOp* op;
    grpc::Alarm alarm;
  };

  void Diagnose() {
    diagnosis_tag_ = std::make_unique<DiagnosisTag>(this);
    const absl::Duration left =
        std::clamp(absl::FromChrono(deadline_ - std::chrono::system_clock::now()), absl::Seconds(1), absl::Seconds(5));
    std::thread([this, left] {
      diagnosis_ = DiagnoseServerCertificate(address_, tls_host_, tls_roots_, left);
      diagnosis_tag_->alarm.Set(cq_, gpr_now(GPR_CLOCK_REALTIME), static_cast<QueueTag*>(diagnosis_tag_.get()));
    }).detach();
  }

  void DiagnosisDone() {
    if (cancelled_) {
      delete this;
      return;
    }
    // k6 (Go's gRPC) says: transport: authentication handshake failed:
    // tls: failed to verify certificate: x509: ...
    std::string reason = "transport: authentication handshake failed: ";
    absl::StrAppend(&reason, diagnosis_.empty() ? std::string("certificate verify failed")
                                                 : absl::StrCat("tls: failed to verify certificate: ", diagnosis_));
    Finish(absl::UnavailableError(absl::StrCat("failed to connect to ", address_, ": ", reason)));
  }

 public:
  // A connection to a resolved name: what it needs to look it up again.
  void SetResolution(std::shared_ptr<const Connection::Rebuild> rebuild, std::vector<std::string> addresses,
                     absl::Time next_lookup) {
    rebuild_ = std::move(rebuild);
    addresses_ = std::move(addresses);
    next_lookup_ = next_lookup;
  }

 private:
  void Succeed() {
    Connection::Connected connected;
    connected.connection = std::shared_ptr<Connection>(new Connection(address_, channel_, lease_));
    connected.connection->rebuild_ = std::move(rebuild_);
    connected.connection->addresses_ = std::move(addresses_);
    connected.connection->next_lookup_ = next_lookup_;
    if (!reflect_) {
      Finish(std::move(connected));
      return;
    }
    // Reflection blocks: it gets a thread of its own, not the poller's.
    std::thread([this, connected = std::move(connected)]() mutable {
      absl::StatusOr<std::string> set = Reflect(channel_, reflect_metadata_, deadline_, &connected.reflection_calls);
      if (!set.ok()) {
        Finish(absl::Status(set.status().code(), absl::StrCat("failed to connect to ", address_, ": ", set.status().message())));
        return;
      }
      connected.reflected = *std::move(set);
      Finish(std::move(connected));
    }).detach();
  }

  void Finish(absl::StatusOr<Connection::Connected> result) {
    Connection::ConnectDone done = std::move(done_);
    delete this;
    done(std::move(result));
  }

  const std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::shared_ptr<void> lease_;  // a shared channel's place, handed to the Connection
  const absl::Duration timeout_;
  const std::chrono::system_clock::time_point deadline_;
  const bool reflect_;
  const Metadata reflect_metadata_;
  grpc::CompletionQueue* const cq_;  // the watch and the probe complete here
  Connection::ConnectDone done_;
  std::unique_ptr<ProbeCall> probe_;
  const bool tls_;  // the server's certificate is verified
  const std::string tls_host_;
  const std::string tls_roots_;  // empty: the system's
  std::unique_ptr<DiagnosisTag> diagnosis_tag_;
  std::string diagnosis_;
  std::shared_ptr<const Connection::Rebuild> rebuild_;
  std::vector<std::string> addresses_;
  absl::Time next_lookup_ = absl::InfiniteFuture();
  bool cancelled_ = false;
  grpc_connectivity_state watched_ = GRPC_CHANNEL_IDLE;
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

struct Connection::Rebuild {
  ConnectParams params;  // the channel-bound ones; reflection's cleared
  std::shared_ptr<grpc::ChannelCredentials> creds;
  grpc::ChannelArguments args;
};

namespace {

// A channel for params (its own, or a place on a shared one). resolved:
// the addresses a name resolved to (ConnectParams::dns), of which
// dns->select picks; nullptr: gRPC resolves params.address itself.
std::pair<std::shared_ptr<grpc::Channel>, std::shared_ptr<void>> MakeChannel(
    const ConnectParams& params, const std::shared_ptr<grpc::ChannelCredentials>& creds,
    const grpc::ChannelArguments& args, const std::vector<std::string>* resolved) {
  auto create = [&]() {
    if (resolved == nullptr) return grpc::CreateCustomChannel(params.address, creds, args);
    std::vector<std::string> chosen;
    switch (params.dns->select) {
      case DnsSelect::kFirst:
        chosen = {resolved->front()};
        break;
      case DnsSelect::kRandom:
        chosen = {(*resolved)[RandomIndex(resolved->size())]};
        break;
      case DnsSelect::kRoundRobin:
        chosen = *resolved;
        break;
    }
    grpc::ChannelArguments with_policy = args;
    // pick_first, gRPC's default, would send every call to one address.
    if (chosen.size() > 1) with_policy.SetLoadBalancingPolicyName("round_robin");
    return grpc::CreateCustomChannel(GrpcTarget(chosen), creds, with_policy);
  };
  if (params.connection_sharing == 0) return {create(), nullptr};
  // Connections share a channel only when their names resolved alike; a
  // random pick is made once per shared channel (when it is made).
  std::string key = SharingKey(params);
  if (resolved != nullptr) {
    absl::StrAppend(&key, absl::StrJoin(*resolved, ","), ";", static_cast<int>(params.dns->select), ";");
  }
  auto [channel, lease] = ChannelPool::Get().Acquire(key, params.connection_sharing, create);
  return {std::move(channel), std::move(lease)};
}

}  // namespace

std::function<void()> Connection::Connect(const ConnectParams& params, ConnectDone done) {
  if (absl::Status valid = ValidateAddress(params.address); !valid.ok()) {
    done(valid);
    return nullptr;
  }
  // A name with dns settings: resolved here (resolver.h). IP literals go
  // to gRPC as they are, as before.
  std::optional<Resolution> resolution;
  if (params.dns != nullptr) {
    absl::StatusOr<Resolution> r = Resolve(params.address, *params.dns);
    if (!r.ok()) {
      done(absl::UnavailableError(absl::StrCat("failed to connect to ", params.address, ": ", r.status().message())));
      return nullptr;
    }
    if (!r->literal) resolution = *std::move(r);
  }
  grpc::ChannelArguments args;
  // Its own subchannel, so its own TCP connection, as every k6 client has.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // channelz keeps per-channel call counters and a registry entry nobody
  // reads here: one per VU adds up.
  args.SetInt(GRPC_ARG_ENABLE_CHANNELZ, 0);
  auto clamp = [](int64_t v) { return static_cast<int>(std::min<int64_t>(v, std::numeric_limits<int>::max())); };
  if (params.max_receive_size > 0) args.SetMaxReceiveMessageSize(clamp(params.max_receive_size));
  if (params.max_send_size > 0) args.SetMaxSendMessageSize(clamp(params.max_send_size));
  if (!params.authority.empty()) {
    args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, params.authority);
    if (!params.plaintext) args.SetSslTargetNameOverride(params.authority);
  } else if (resolution) {
    // The target is now "ipv4:…": the server still sees, and TLS still
    // verifies, the name the script gave.
    args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, params.address);
  }
  if (!params.user_agent.empty()) args.SetUserAgentPrefix(params.user_agent);
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = MakeCredentials(params);
  if (!creds.ok()) {
    done(creds.status());
    return nullptr;
  }
  // A channel made here has no Connection yet: if this dial fails, the
  // lease goes with the op and the channel with it, unless others joined.
  auto [channel, lease] = MakeChannel(params, *creds, args, resolution ? &resolution->addresses : nullptr);
  auto* op = new ConnectOp(params, std::move(channel), std::move(lease), std::move(done));
  if (resolution && !resolution->fixed) {
    auto rebuild = std::make_shared<Rebuild>();
    rebuild->params = params;
    rebuild->params.reflect = false;
    rebuild->params.reflect_metadata.clear();
    rebuild->creds = *creds;
    rebuild->args = args;
    op->SetResolution(std::move(rebuild), std::move(resolution->addresses), resolution->expires);
  }
  if (!op->Start() || params.cq == nullptr || params.reflect) return nullptr;
  return [op] { op->Cancel(); };
}

void Connection::MaybeRefresh() {
  const absl::Time now = absl::Now();
  if (now < next_lookup_) return;
  // At most one lookup a second per connection, whatever the ttl: ttl 0
  // (k6: no cache, a lookup per dial) must not cost a lookup per call.
  next_lookup_ = now + absl::Seconds(1);
  absl::StatusOr<Resolution> r = Resolve(address_, *rebuild_->params.dns);
  // A name that stopped resolving keeps its channel: its calls go on, or
  // fail on their own, and the name is tried again.
  if (!r.ok()) return;
  next_lookup_ = std::max(r->expires, next_lookup_);
  if (r->addresses == addresses_) return;
  auto [channel, lease] = MakeChannel(rebuild_->params, rebuild_->creds, rebuild_->args, &r->addresses);
  addresses_ = std::move(r->addresses);
  stub_ = std::make_unique<GenericStub>(channel);
  ReleaseChannel(std::move(channel_));  // calls in flight hold it until they end
  channel_ = std::move(channel);
  lease_ = std::move(lease);  // the old place, given back: a shared channel may close
}

Connection::Connection(std::string address, std::shared_ptr<grpc::Channel> channel, std::shared_ptr<void> lease)
    : address_(std::move(address)),
      channel_(std::move(channel)),
      stub_(std::make_unique<GenericStub>(channel_)),
      lease_(std::move(lease)) {}

std::pair<int, int> Connection::SharedChannelCounts() { return ChannelPool::Get().Counts(); }

Connection::~Connection() { Close(); }

void Connection::Close() {
  stub_.reset();
  ReleaseChannel(std::move(channel_));
  channel_ = nullptr;
  lease_.reset();  // a shared channel closes with its last connection
}

std::string GoStatusMessage(int code, const std::string& message) {
  if (code != static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED)) return message;
  constexpr absl::string_view kReceived = "Received message larger than max (";
  constexpr absl::string_view kSent = "Sent message larger than max (";
  if (absl::StartsWith(message, kReceived)) {
    return absl::StrCat("grpc: received message larger than max (", message.substr(kReceived.size()));
  }
  if (absl::StartsWith(message, kSent)) {
    return absl::StrCat("grpc: trying to send message larger than max (", message.substr(kSent.size()));
  }
  return message;
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
  int64_t wire_size = 0;  // the request's bytes on the wire, frame header included
};

// Large requests are handed to gRPC without a copy; small ones are copied,
// which is one allocation where handing over the string costs two.
constexpr size_t kZeroCopyThreshold = 4096;

void PrepareUnaryCallState(UnaryCallState* call, std::shared_ptr<grpc::Channel> channel, std::string request_bytes,
                           const CallOptions& options, std::function<void(CallResult)> done) {
  call->channel = std::move(channel);
  call->done = std::move(done);
  call->wire_size = WireMessageSize(request_bytes, options.compression);
  if (options.compression != Compression::kNone) call->context.set_compression_algorithm(ToGrpcAlgorithm(options.compression));
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

// A call whose metadata gRPC would refuse ends before it starts, with
// grpc-go's status (k6 returns it as the call's status; no sample, as the
// call never began).
CallResult InvalidMetadataResult(const absl::Status& invalid) {
  CallResult result;
  result.code = static_cast<int>(grpc::StatusCode::INTERNAL);
  result.message = std::string(invalid.message());
  result.started = false;
  return result;
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
  result.message = GoStatusMessage(result.code, status.error_message());
  result.status_details_bin = status.error_details();
  result.bytes_sent = call->wire_size;
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
  if (rebuild_ != nullptr) MaybeRefresh();
  if (absl::Status st = ValidateMetadata(options.metadata); !st.ok()) {
    done(InvalidMetadataResult(st));
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

grpc::ClientContext* Connection::UnaryCall(const MethodInfo& method, std::string request_bytes, CallOptions options,
                                           grpc::CompletionQueue* cq, std::function<void(CallResult)> done) {
  if (stub_ == nullptr) {
    done(ClosedConnectionResult());
    return nullptr;
  }
  if (rebuild_ != nullptr) MaybeRefresh();
  if (absl::Status st = ValidateMetadata(options.metadata); !st.ok()) {
    done(InvalidMetadataResult(st));
    return nullptr;
  }
  auto* op = new QueuedUnaryCall;
  UnaryCallState* call = op->call;
  PrepareUnaryCallState(call, channel_, std::move(request_bytes), options, std::move(done));
  op->reader = stub_->PrepareUnaryCall(&call->context, method.full_method, call->request, cq);
  op->reader->StartCall();
  op->reader->Finish(&call->response, &op->status, static_cast<QueueTag*>(op));
  return &call->context;
}

absl::Status ValidateMetadata(const std::vector<std::pair<std::string, std::string>>& metadata) {
  for (const auto& [key, value] : metadata) {
    // grpc-go's ValidatePair, word for word in its messages.
    if (key.empty()) return absl::InternalError("there is an empty key in the header");
    for (char c : key) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_')) {
        return absl::InternalError(absl::StrCat("header key \"", absl::CHexEscape(key),
                                                "\" contains illegal characters not in [0-9a-z-_.]"));
      }
    }
    if (absl::EndsWith(key, "-bin")) continue;
    for (char c : value) {
      if (c < 0x20 || c > 0x7E) {
        return absl::InternalError(
            absl::StrCat("header key \"", key, "\" contains value with non-printable ASCII characters"));
      }
    }
  }
  return absl::OkStatus();
}

StreamCall* Connection::StartStream(const MethodInfo& method, const CallOptions& options,
                                    std::optional<absl::Duration> timeout, grpc::CompletionQueue* cq,
                                    StreamCallHandlers handlers) {
  if (stub_ == nullptr) return nullptr;
  if (rebuild_ != nullptr) MaybeRefresh();
  std::unique_ptr<StreamCall> call(new StreamCall(channel_, method.client_streaming, std::move(handlers)));
  StreamCall* raw = call.get();
  raw->Start(*stub_, method.full_method, options, timeout, cq, std::move(call));
  return raw;
}

}  // namespace barrage::agent::grpc_client

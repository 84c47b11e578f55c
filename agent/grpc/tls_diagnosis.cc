#include "agent/grpc/tls_diagnosis.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace barrage::agent::grpc_client {
namespace {

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};

// host:port or [v6]:port.
bool SplitAddress(const std::string& address, std::string* host, std::string* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  *host = address.substr(0, colon);
  *port = address.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  return !host->empty() && !port->empty();
}

// A TCP connection within the deadline, or -1.
int Dial(const std::string& address, absl::Time deadline) {
  std::string host, port;
  if (!SplitAddress(address, &host, &port)) return -1;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) return -1;
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      const int ms = static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now())));
      int err = 0;
      socklen_t len = sizeof(err);
      if (poll(&p, 1, ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        close(fd);
        fd = -1;
      }
    }
  }
  freeaddrinfo(found);
  if (fd < 0) return -1;
  // Blocking from here, each read and write bounded by what is left.
  const int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  const absl::Duration left = std::max(deadline - absl::Now(), absl::Milliseconds(1));
  timeval tv = absl::ToTimeval(left);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return fd;
}

bool AddRoots(SSL_CTX* ctx, const std::string& pem) {
  if (pem.empty()) return SSL_CTX_set_default_verify_paths(ctx) == 1;
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  int added = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    added += X509_STORE_add_cert(store, cert) == 1;
    X509_free(cert);
  }
  BIO_free(bio);
  ERR_clear_error();  // the end of the PEM text reads as an error
  return added > 0;
}

// The certificate's DNS or IP names (as host is a name or an address), as
// Go's x509.HostnameError lists them.
std::string CertificateNames(X509* cert, bool ip_names) {
  std::vector<std::string> names;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans != nullptr && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, i);
    if (n->type == GEN_DNS && !ip_names) {
      names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.dNSName)),
                         ASN1_STRING_length(n->d.dNSName));
    } else if (n->type == GEN_IPADD && ip_names) {
      const int len = ASN1_STRING_length(n->d.iPAddress);
      char text[INET6_ADDRSTRLEN] = {};
      if (inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(n->d.iPAddress), text, sizeof(text))) {
        names.emplace_back(text);
      }
    }
  }
  GENERAL_NAMES_free(sans);
  return absl::StrJoin(names, ", ");
}

bool IsIp(const std::string& host) {
  in6_addr ip;
  return inet_pton(AF_INET, host.c_str(), &ip) == 1 || inet_pton(AF_INET6, host.c_str(), &ip) == 1;
}

}  // namespace

std::string GoCertificateError(long verify_result, const std::string& host,  // NOLINT(runtime/int)
                               const std::string& certificate_names) {
  switch (verify_result) {
    case X509_V_OK:
      return "";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      return "x509: certificate signed by unknown authority";
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return "x509: certificate has expired or is not yet valid";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      if (certificate_names.empty() && IsIp(host)) {
        return absl::StrCat("x509: cannot validate certificate for ", host, " because it doesn't contain any IP SANs");
      }
      if (certificate_names.empty()) {
        return absl::StrCat("x509: certificate is not valid for any names, but wanted to match ", host);
      }
      return absl::StrCat("x509: certificate is valid for ", certificate_names, ", not ", host);
    default:
      return absl::StrCat("x509: ", X509_verify_cert_error_string(verify_result));
  }
}

std::string DiagnoseServerCertificate(const std::string& address, const std::string& host,
                                      const std::string& roots_pem, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_client_method()));
  if (ctx == nullptr || !AddRoots(ctx.get(), roots_pem)) return "";
  // The handshake goes on whatever the chain: the result is read after.
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
  if (ssl == nullptr) return "";
  const bool is_ip = IsIp(host);
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
  if (is_ip) {
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl.get(), host.c_str());
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
  }
  const int fd = Dial(address, deadline);
  if (fd < 0) return "";
  SSL_set_fd(ssl.get(), fd);
  // A server that wants a client certificate may end the handshake early;
  // the server's certificate has been checked by then.
  (void)SSL_connect(ssl.get());
  std::string out;
  if (X509* cert = SSL_get1_peer_certificate(ssl.get()); cert != nullptr) {
    out = GoCertificateError(SSL_get_verify_result(ssl.get()), host, CertificateNames(cert, is_ip));
    X509_free(cert);
  }
  ERR_clear_error();
  close(fd);
  return out;
}

}  // namespace barrage::agent::grpc_client

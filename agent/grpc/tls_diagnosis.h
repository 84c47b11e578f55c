// Why a TLS server's certificate was refused, in the words k6 users see.
//
// gRPC's handshake error says only what OpenSSL's SSL_connect said
// ("certificate verify failed"); k6 reports Go's crypto/x509 reason
// ("x509: certificate signed by unknown authority"), and scripts and CI
// logs are matched on it. On that failure path only, the connection is
// tried once more with OpenSSL directly, with the same trust roots and
// name, and its verification result is put into Go's words.
#ifndef BARRAGE_AGENT_GRPC_TLS_DIAGNOSIS_H_
#define BARRAGE_AGENT_GRPC_TLS_DIAGNOSIS_H_

#include <string>

#include "absl/time/time.h"

namespace barrage::agent::grpc_client {

// address: host:port (IPv6 in brackets); host: the name the certificate
// must hold (the authority's host, or the address's); roots_pem: the
// trusted certificates, empty for the system's. Blocks up to `timeout`.
// Returns Go's text ("x509: certificate signed by unknown authority"), or
// an empty string when the reason cannot be found (unreachable now, or
// OpenSSL accepts the certificate after all).
std::string DiagnoseServerCertificate(const std::string& address, const std::string& host,
                                      const std::string& roots_pem, absl::Duration timeout);

// Go's text for an OpenSSL verification result (X509_V_ERR_*); host and
// the certificate's DNS names (IP names when host is an address), joined
// with ", ", for a name mismatch. Exposed for tests.
std::string GoCertificateError(long verify_result, const std::string& host,  // NOLINT(runtime/int): OpenSSL's type
                               const std::string& certificate_names);

}  // namespace barrage::agent::grpc_client

#endif  // BARRAGE_AGENT_GRPC_TLS_DIAGNOSIS_H_

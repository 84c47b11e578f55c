// Go's crypto/x509 texts for OpenSSL's verification results (k6 reports
// those; scripts and CI logs match on them). The real handshakes are in
// tests/integration/stream_test.cc (StreamBadInputTest, Tls* cases).
#include "agent/grpc/tls_diagnosis.h"

#include <openssl/x509_vfy.h>

#include "gtest/gtest.h"

namespace barrage::agent::grpc_client {
namespace {

TEST(TlsDiagnosisTest, UnknownAuthorityInGoWords) {
  for (long r : {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT,
                 X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE}) {
    EXPECT_EQ(GoCertificateError(r, "h", ""), "x509: certificate signed by unknown authority") << r;
  }
}

TEST(TlsDiagnosisTest, ExpiryAndNames) {
  EXPECT_EQ(GoCertificateError(X509_V_ERR_CERT_HAS_EXPIRED, "h", ""),
            "x509: certificate has expired or is not yet valid");
  EXPECT_EQ(GoCertificateError(X509_V_ERR_HOSTNAME_MISMATCH, "wrong.example", "localhost, a.example"),
            "x509: certificate is valid for localhost, a.example, not wrong.example");
  EXPECT_EQ(GoCertificateError(X509_V_ERR_HOSTNAME_MISMATCH, "wrong.example", ""),
            "x509: certificate is not valid for any names, but wanted to match wrong.example");
  EXPECT_EQ(GoCertificateError(X509_V_ERR_IP_ADDRESS_MISMATCH, "10.0.0.1", ""),
            "x509: cannot validate certificate for 10.0.0.1 because it doesn't contain any IP SANs");
  EXPECT_EQ(GoCertificateError(X509_V_ERR_IP_ADDRESS_MISMATCH, "10.0.0.1", "127.0.0.1"),
            "x509: certificate is valid for 127.0.0.1, not 10.0.0.1");
  EXPECT_EQ(GoCertificateError(X509_V_OK, "h", ""), "");
  EXPECT_EQ(GoCertificateError(X509_V_ERR_CERT_REVOKED, "h", ""), "x509: certificate revoked");
}

}  // namespace
}  // namespace barrage::agent::grpc_client

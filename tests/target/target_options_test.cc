// barrage-target's flags: each error names the flag (and, for files, the path).
#include "tests/target/target_options.h"

#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/paths.h"
#include "tests/testing/status_matchers.h"

namespace barrage::target {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testutil::IsOk;
using testutil::StatusIs;

absl::StatusOr<TargetOptions> Parse(std::vector<std::string> flags) {
  flags.insert(flags.begin(), "barrage-target");
  return ParseTargetFlags(flags);
}

// PEM-shaped files: the flags check that a file reads and holds a PEM block;
// whether the key fits the certificate is gRPC's business when it serves.
class TargetTlsFlagsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testutil::TempDir();
    Write("cert.pem", "-----BEGIN CERTIFICATE-----\ncert\n-----END CERTIFICATE-----\n");
    Write("key.pem", "-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n");
    Write("ca.pem", "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n");
    Write("notes.txt", "not a certificate\n");
  }
  std::string Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
    return dir_ + "/" + name;
  }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  std::string dir_;
};

TEST(TargetOptionsTest, DefaultsServePlaintextWithHealthAndReflection) {
  absl::StatusOr<TargetOptions> options = Parse({});
  ASSERT_THAT(options, IsOk());
  EXPECT_FALSE(options->tls.has_value());
  EXPECT_TRUE(options->health);
  EXPECT_TRUE(options->reflection);
  EXPECT_TRUE(options->not_serving.empty());
  EXPECT_EQ(options->stream_error_after, -1);
  EXPECT_EQ(options->bidi_replies, 1);
  EXPECT_EQ(DescribeMode(*options).substr(0, 38), "tls=off health=on reflection=on bidi_r");
}

TEST(TargetOptionsTest, ServiceSwitchesAndRepeatedNotServing) {
  absl::StatusOr<TargetOptions> options =
      Parse({"--no-reflection", "--not-serving", "a", "--not-serving", "hello.HelloService"});
  ASSERT_THAT(options, IsOk());
  EXPECT_FALSE(options->reflection);
  EXPECT_TRUE(options->health);
  EXPECT_THAT(options->not_serving, ElementsAre("a", "hello.HelloService"));
  EXPECT_THAT(DescribeMode(*options),
              AllOf(HasSubstr("not_serving=a,hello.HelloService"), HasSubstr("reflection=off")));

  options = Parse({"--no-health"});
  ASSERT_THAT(options, IsOk());
  EXPECT_FALSE(options->health);
}

TEST(TargetOptionsTest, NotServingNeedsTheHealthService) {
  EXPECT_THAT(Parse({"--no-health", "--not-serving", "a"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--not-serving")));
}

TEST(TargetOptionsTest, StreamKnobs) {
  absl::StatusOr<TargetOptions> options =
      Parse({"--stream-error-after", "0", "--bidi-replies", "3", "--error-status", "14"});
  ASSERT_THAT(options, IsOk());
  EXPECT_EQ(options->stream_error_after, 0);
  EXPECT_EQ(options->bidi_replies, 3);
  EXPECT_THAT(DescribeMode(*options), HasSubstr("stream_error_after=0 error_status=14 bidi_replies=3"));

  EXPECT_THAT(Parse({"--stream-error-after", "-1"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--stream-error-after")));
  EXPECT_THAT(Parse({"--bidi-replies", "-1"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--bidi-replies")));
  EXPECT_THAT(Parse({"--bidi-replies", "many"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--bidi-replies")));
}

TEST_F(TargetTlsFlagsTest, CertAndKeyServeTls) {
  absl::StatusOr<TargetOptions> options =
      Parse({"--tls-cert", Path("cert.pem"), "--tls-key", Path("key.pem")});
  ASSERT_THAT(options, IsOk());
  ASSERT_TRUE(options->tls.has_value());
  EXPECT_THAT(options->tls->cert_chain_pem, HasSubstr("cert"));
  EXPECT_THAT(options->tls->private_key_pem, HasSubstr("key"));
  EXPECT_EQ(options->tls->client_ca_pem, "");
  EXPECT_THAT(DescribeMode(*options), HasSubstr("tls=on "));
}

TEST_F(TargetTlsFlagsTest, ClientCaMakesItMutual) {
  absl::StatusOr<TargetOptions> options = Parse(
      {"--tls-cert", Path("cert.pem"), "--tls-key", Path("key.pem"), "--tls-client-ca", Path("ca.pem")});
  ASSERT_THAT(options, IsOk());
  EXPECT_THAT(options->tls->client_ca_pem, HasSubstr("ca"));
  EXPECT_THAT(DescribeMode(*options), HasSubstr("tls=mutual"));
}

TEST_F(TargetTlsFlagsTest, HalfAPairNamesTheMissingFlag) {
  EXPECT_THAT(Parse({"--tls-cert", Path("cert.pem")}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls-key")));
  EXPECT_THAT(Parse({"--tls-key", Path("key.pem")}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls-cert")));
  EXPECT_THAT(Parse({"--tls-client-ca", Path("ca.pem")}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls-client-ca")));
}

TEST_F(TargetTlsFlagsTest, UnreadableFilesNameFlagAndPath) {
  const std::string missing = Path("missing.pem");
  EXPECT_THAT(Parse({"--tls-cert", missing, "--tls-key", Path("key.pem")}),
              StatusIs(absl::StatusCode::kNotFound, AllOf(HasSubstr("--tls-cert"), HasSubstr(missing))));
  EXPECT_THAT(Parse({"--tls-cert", Path("cert.pem"), "--tls-key", missing}),
              StatusIs(absl::StatusCode::kNotFound, AllOf(HasSubstr("--tls-key"), HasSubstr(missing))));
  EXPECT_THAT(Parse({"--tls-cert", Path("cert.pem"), "--tls-key", Path("key.pem"), "--tls-client-ca", missing}),
              StatusIs(absl::StatusCode::kNotFound, AllOf(HasSubstr("--tls-client-ca"), HasSubstr(missing))));
  // A directory opens but does not read.
  EXPECT_THAT(Parse({"--tls-cert", dir_, "--tls-key", Path("key.pem")}),
              StatusIs(absl::StatusCode::kNotFound, AllOf(HasSubstr("--tls-cert"), HasSubstr("directory"))));
}

TEST_F(TargetTlsFlagsTest, AFileWithoutPemIsRefused) {
  EXPECT_THAT(Parse({"--tls-cert", Path("notes.txt"), "--tls-key", Path("key.pem")}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--tls-cert"), HasSubstr("notes.txt"), HasSubstr("not a PEM file"))));
}

}  // namespace
}  // namespace barrage::target

#include "agent/grpc/proto_registry.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/agent/grpc/test_reader.h"
#include "tests/testing/status_matchers.h"

namespace barrage::agent::grpc_client {
namespace {

using ::barrage::testutil::IsOk;
using ::barrage::testutil::StatusIs;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::vector<std::string> FullMethods(const std::vector<MethodInfo>& methods) {
  std::vector<std::string> out;
  for (const auto& m : methods) out.push_back(m.full_method);
  return out;
}

TEST(ProtoRegistryTest, LoadsServicesAndWellKnownTypesWithoutTheDisk) {
  ProtoRegistry registry;
  RecordingReader reader;
  absl::StatusOr<std::vector<MethodInfo>> methods = registry.Load({TestData()}, {"types.proto"}, reader.reader());
  ASSERT_THAT(methods, IsOk());
  EXPECT_THAT(FullMethods(*methods), ::testing::ElementsAre("/test.TypesService/Echo", "/test.TypesService/Hey"));
  const MethodInfo& echo = (*methods)[0];
  EXPECT_EQ(echo.package, "test");
  EXPECT_EQ(echo.service, "TypesService");
  EXPECT_EQ(echo.method, "Echo");
  EXPECT_FALSE(echo.client_streaming);
  EXPECT_FALSE(echo.server_streaming);
  ASSERT_NE(echo.descriptor, nullptr);
  EXPECT_EQ(echo.descriptor->input_type()->full_name(), "test.Scalars");
  // The well-known imports never reached the reader.
  for (const std::string& path : *reader.asked) EXPECT_THAT(path, Not(HasSubstr("google/protobuf"))) << path;
  EXPECT_THAT(registry.files_read(), ::testing::ElementsAre(TestData("types.proto")));
  EXPECT_NE(registry.FindMessageType("google.protobuf.Timestamp"), nullptr);
  EXPECT_NE(registry.FindMessageType("test.Point"), nullptr);
}

TEST(ProtoRegistryTest, FindMethodNormalisesTheLeadingSlashAndIsCaseSensitive) {
  ProtoRegistry registry;
  ASSERT_THAT(registry.Load({TestData()}, {"types.proto"}, ReadDisk), IsOk());
  const MethodInfo* with = registry.FindMethod("/test.TypesService/Echo");
  ASSERT_NE(with, nullptr);
  EXPECT_EQ(registry.FindMethod("test.TypesService/Echo"), with);
  EXPECT_EQ(registry.FindMethod("/test.typesservice/echo"), nullptr);
  EXPECT_EQ(registry.FindMethod("/test.TypesService/Nope"), nullptr);
  EXPECT_EQ(registry.FindMethod(""), nullptr);
}

TEST(ProtoRegistryTest, ImportsAreSearchedUnderEachImportPathInOrder) {
  ProtoRegistry first;
  absl::StatusOr<std::vector<MethodInfo>> methods = first.Load(
      {TestData("imports"), TestData("first"), TestData("second")}, {"main.proto"}, ReadDisk);
  ASSERT_THAT(methods, IsOk());
  // Methods of imported files become invocable too.
  EXPECT_THAT(FullMethods(*methods), Contains("/imp.ImpService/Do"));
  EXPECT_THAT(FullMethods(*methods), Contains("/shared.SharedService/Ping"));
  const auto* common = first.FindMessageType("shared.Common");
  ASSERT_NE(common, nullptr);
  EXPECT_NE(common->FindFieldByName("from_first"), nullptr);

  ProtoRegistry second;
  ASSERT_THAT(second.Load({TestData("imports"), TestData("second"), TestData("first")}, {"main.proto"}, ReadDisk),
              IsOk());
  EXPECT_NE(second.FindMessageType("shared.Common")->FindFieldByName("from_second"), nullptr);
  EXPECT_EQ(second.FindMethod("/shared.SharedService/Ping"), nullptr);
}

TEST(ProtoRegistryTest, MissingFileReadsAsInK6) {
  ProtoRegistry registry;
  // The last path tried, and why (k6: protocompile over the file system).
  absl::StatusOr<std::vector<MethodInfo>> r = registry.Load({TestData("first"), TestData("second")}, {"nope.proto"}, ReadDisk);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kNotFound,
                          ::testing::Eq("stat " + TestData("second") + "/nope.proto: no such file or directory")));
  // A name the path does not end with is named first.
  r = registry.Load({TestData()}, {"sub//../nope.proto"}, ReadDisk);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kNotFound,
                          ::testing::Eq("could not resolve path \"sub//../nope.proto\": stat " + TestData() +
                                        "/nope.proto: no such file or directory")));
}

TEST(ProtoRegistryTest, NamesAreJoinedOntoImportPathsAndCleaned) {
  auto reader = MemoryReader({
      {"/virtual/a.proto", "syntax = \"proto3\"; package a; import \"sub/../b.proto\";"
                           " service S { rpc M(b.B) returns (b.B); }"},
      {"/virtual/b.proto", "syntax = \"proto3\"; package b; message B { int32 x = 1; }"},
  });
  ProtoRegistry registry;
  ASSERT_THAT(registry.Load({"/virtual"}, {"./x//../a.proto"}, reader), IsOk());
  EXPECT_THAT(registry.files_read(), ::testing::ElementsAre("/virtual/a.proto", "/virtual/b.proto"));
  // k6 joins an absolute name onto each import path too: it is not found.
  ProtoRegistry absolute;
  EXPECT_THAT(absolute.Load({"/virtual"}, {"/virtual/a.proto"}, reader),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("stat /virtual/virtual/a.proto: no such file or directory")));
  // Below "/", it is where it says.
  EXPECT_THAT(absolute.Load({"/"}, {"/virtual/b.proto"}, reader), IsOk());
}

TEST(ProtoRegistryTest, MissingImportNamesTheImportAndTheImporter) {
  ProtoRegistry registry;
  absl::StatusOr<std::vector<MethodInfo>> r = registry.Load({TestData()}, {"missing_import.proto"}, ReadDisk);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kNotFound,
                          AllOf(HasSubstr("does/not/exist.proto"), HasSubstr("missing_import.proto"))));
}

TEST(ProtoRegistryTest, SyntaxErrorGivesFileLineAndColumn) {
  ProtoRegistry registry;
  absl::StatusOr<std::vector<MethodInfo>> r = registry.Load({TestData()}, {"syntax_error.proto"}, ReadDisk);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("syntax_error.proto:6:3: Expected \";\"")));
}

TEST(ProtoRegistryTest, UnresolvedTypeGivesFileLineAndColumn) {
  ProtoRegistry registry;
  absl::StatusOr<std::vector<MethodInfo>> r = registry.Load({TestData()}, {"unresolved.proto"}, ReadDisk);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unresolved.proto:5:3: \"Foo\" is not defined.")));
}

TEST(ProtoRegistryTest, LoadsAddUpAndAFailedLoadDropsNothing) {
  ProtoRegistry registry;
  ASSERT_THAT(registry.Load({TestData()}, {"types.proto"}, ReadDisk), IsOk());
  ASSERT_THAT(registry.Load({TestData("imports"), TestData("first")}, {"main.proto"}, ReadDisk), IsOk());
  EXPECT_THAT(registry.Load({TestData()}, {"unresolved.proto"}, ReadDisk), Not(IsOk()));
  EXPECT_NE(registry.FindMethod("/test.TypesService/Echo"), nullptr);
  EXPECT_NE(registry.FindMethod("/imp.ImpService/Do"), nullptr);
  EXPECT_EQ(registry.FindMethod("/test.TypesService/Echo")->descriptor->input_type(),
            registry.FindMessageType("test.Scalars"));
  // Loading the same file again is harmless.
  EXPECT_THAT(registry.Load({TestData()}, {"types.proto"}, ReadDisk), IsOk());
  EXPECT_EQ(registry.methods().size(), 4u);
}

TEST(ProtoRegistryTest, AbsoluteNamesAndInMemoryFiles) {
  ProtoRegistry registry;
  auto reader = MemoryReader({
      {"/virtual/a.proto", "syntax = \"proto3\"; package a; import \"b.proto\";"
                           " service S { rpc M(b.B) returns (b.B); }"},
      {"/virtual/b.proto", "syntax = \"proto3\"; package b; message B { int32 x = 1; }"},
  });
  absl::StatusOr<std::vector<MethodInfo>> r = registry.Load({"/virtual"}, {"a.proto"}, reader);
  ASSERT_THAT(r, IsOk());
  EXPECT_NE(registry.FindMethod("/a.S/M"), nullptr);
  EXPECT_THAT(registry.files_read(), ::testing::ElementsAre("/virtual/a.proto", "/virtual/b.proto"));
}

TEST(ProtoRegistryTest, CopyIsDeepAndLoadingIntoItLeavesTheOriginal) {
  ProtoRegistry original;
  ASSERT_THAT(original.Load({TestData()}, {"types.proto"}, ReadDisk), IsOk());
  ProtoRegistry copy(original);
  ASSERT_THAT(copy.Load({TestData("imports"), TestData("first")}, {"main.proto"}, ReadDisk), IsOk());
  EXPECT_NE(copy.FindMethod("/imp.ImpService/Do"), nullptr);
  EXPECT_EQ(original.FindMethod("/imp.ImpService/Do"), nullptr);
  const MethodInfo* in_copy = copy.FindMethod("/test.TypesService/Echo");
  ASSERT_NE(in_copy, nullptr);
  EXPECT_EQ(in_copy->descriptor->file()->pool(), &copy.pool());
  EXPECT_NE(in_copy->descriptor, original.FindMethod("/test.TypesService/Echo")->descriptor);
  EXPECT_EQ(copy.files_read().size(), 3u);
}

std::string ProtosetOf(const ProtoRegistry& registry, const std::vector<std::string>& files) {
  google::protobuf::FileDescriptorSet set;
  for (const std::string& f : files) registry.pool().FindFileByName(f)->CopyTo(set.add_file());
  return set.SerializeAsString();
}

TEST(ProtoRegistryTest, LoadsAProtoset) {
  ProtoRegistry source;
  ASSERT_THAT(source.Load({TestData("imports"), TestData("first")}, {"main.proto"}, ReadDisk), IsOk());
  ProtoRegistry registry;
  absl::StatusOr<std::vector<MethodInfo>> r =
      registry.LoadProtoset(ProtosetOf(source, {"shared/common.proto", "main.proto"}), "x.protoset");
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(FullMethods(*r), Contains("/imp.ImpService/Do"));
  EXPECT_NE(registry.FindMethod("/shared.SharedService/Ping"), nullptr);
}

TEST(ProtoRegistryTest, ProtosetErrors) {
  ProtoRegistry registry;
  EXPECT_THAT(registry.LoadProtoset("\xff\xff\xff", "bad.protoset"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("couldn't unmarshal protoset file bad.protoset")));
  ProtoRegistry source;
  ASSERT_THAT(source.Load({TestData("imports"), TestData("first")}, {"main.proto"}, ReadDisk), IsOk());
  EXPECT_THAT(registry.LoadProtoset(ProtosetOf(source, {"main.proto"}), "partial.protoset"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("partial.protoset"), HasSubstr("\"shared/common.proto\""))));
  EXPECT_THAT(registry.methods(), IsEmpty());
}

}  // namespace
}  // namespace barrage::agent::grpc_client

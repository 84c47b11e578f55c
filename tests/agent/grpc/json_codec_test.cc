// The JSON mapping, table by table, against what k6 (Go protojson with
// EmitUnpopulated) gives a script.
#include "agent/grpc/json_codec.h"

#include "absl/strings/escaping.h"
#include "agent/grpc/proto_registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/agent/grpc/test_reader.h"
#include "tests/testing/status_matchers.h"

namespace barrage::agent::grpc_client {
namespace {

using ::barrage::testutil::IsOk;
using ::barrage::testutil::StatusIs;
using ::testing::HasSubstr;

class JsonCodecTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = new ProtoRegistry();
    ASSERT_THAT(registry_->Load({TestData()}, {"types.proto", "legacy.proto"}, ReadDisk), IsOk());
  }
  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
  }

  const google::protobuf::Descriptor* Type(const std::string& name) {
    const google::protobuf::Descriptor* t = registry_->FindMessageType(name);
    EXPECT_NE(t, nullptr) << name;
    return t;
  }

  // JSON in, protobuf bytes, JSON out: what a script sends and gets back
  // from an echo server.
  std::string RoundTrip(const std::string& type, const std::string& json) {
    absl::StatusOr<std::string> bytes = JsonToBinary(*registry_, Type(type), json);
    if (!bytes.ok()) return "ERROR: " + std::string(bytes.status().message());
    absl::StatusOr<std::string> out = BinaryToJson(*registry_, Type(type), *bytes);
    if (!out.ok()) return "ERROR: " + std::string(out.status().message());
    return *out;
  }

  absl::Status ParseError(const std::string& type, const std::string& json) {
    return JsonToBinary(*registry_, Type(type), json).status();
  }

  static ProtoRegistry* registry_;
};
ProtoRegistry* JsonCodecTest::registry_ = nullptr;

TEST_F(JsonCodecTest, DefaultsOfEveryScalarKind) {
  EXPECT_EQ(*DefaultJson(*registry_, Type("test.Scalars")),
            R"({"d":0,"f":0,"i32":0,"i64":"0","u32":0,"u64":"0","s32":0,"s64":"0","fx32":0,"fx64":"0",)"
            R"("sfx32":0,"sfx64":"0","b":false,"s":"","by":"","color":"COLOR_UNSPECIFIED","pointCount":"",)"
            R"("myCustomName":""})");
}

TEST_F(JsonCodecTest, DefaultsOfCompositeFields) {
  // Messages null, lists [], maps {}, oneof members and proto3 optional absent.
  EXPECT_EQ(*DefaultJson(*registry_, Type("test.Composite")),
            R"({"point":null,"numbers":[],"points":[],"counts":{},"names":{},"flags":{},"colors":[],"bigs":[]})");
}

TEST_F(JsonCodecTest, DefaultsOfWellKnownFieldsAreNull) {
  EXPECT_EQ(*DefaultJson(*registry_, Type("test.WellKnown")),
            R"({"any":null,"ts":null,"dur":null,"empty":null,"mask":null,"st":null,"val":null,"list":null,)"
            R"("dw":null,"fw":null,"i64w":null,"u64w":null,"i32w":null,"u32w":null,"bw":null,"sw":null,)"
            R"("byw":null,"nv":null})");
}

TEST_F(JsonCodecTest, Proto2UnsetScalarsAreNull) {
  EXPECT_EQ(*DefaultJson(*registry_, Type("legacy.Old")),
            R"({"name":null,"count":null,"id":null,"tags":[],"child":null,"kind":null})");
  EXPECT_EQ(RoundTrip("legacy.Old", R"({"name":"n","count":7,"id":"i","kind":"KIND_B","child":{"id":"c"}})"),
            R"({"name":"n","count":7,"id":"i","tags":[],)"
            R"("child":{"name":null,"count":null,"id":"c","tags":[],"child":null,"kind":null},"kind":"KIND_B"})");
}

TEST_F(JsonCodecTest, EveryScalarKindRoundTrips) {
  EXPECT_EQ(RoundTrip("test.Scalars",
                      R"({"d":1.5,"f":0.1,"i32":-5,"i64":"9007199254740993","u32":"4294967295",)"
                      R"("u64":"18446744073709551615","s32":-1,"s64":"-9223372036854775808","fx32":1e2,)"
                      R"("fx64":"7","sfx32":"-3","sfx64":12,"b":true,"s":"h\u00e9llo \"q\"\n","by":"AQID",)"
                      R"("color":"GREEN","point_count":"pc","myCustomName":"cn"})"),
            R"({"d":1.5,"f":0.1,"i32":-5,"i64":"9007199254740993","u32":4294967295,)"
            R"("u64":"18446744073709551615","s32":-1,"s64":"-9223372036854775808","fx32":100,"fx64":"7",)"
            "\"sfx32\":-3,\"sfx64\":\"12\",\"b\":true,\"s\":\"h\xc3\xa9llo \\\"q\\\"\\n\",\"by\":\"AQID\","
            R"("color":"GREEN","pointCount":"pc","myCustomName":"cn"})");
}

struct Case {
  std::string in;   // members of a test.Scalars
  std::string out;  // what comes back for them
};

TEST_F(JsonCodecTest, ScalarForms) {
  const Case cases[] = {
      {R"("d":"NaN")", R"("d":"NaN")"},
      {R"("d":"Infinity")", R"("d":"Infinity")"},
      {R"("f":"-Infinity")", R"("f":"-Infinity")"},
      {R"("d":"2.5")", R"("d":2.5)"},
      {R"("d":1e-7)", R"("d":1e-7)"},
      {R"("d":1e21)", R"("d":1e+21)"},
      {R"("d":123456789.125)", R"("d":123456789.125)"},
      {R"("i32":"1.0")", R"("i32":1)"},
      {R"("i32":-2147483648)", R"("i32":-2147483648)"},
      {R"("i64":9007199254740993)", R"("i64":"9007199254740993")"},
      {R"("u32":"1e3")", R"("u32":1000)"},
      {R"("by":"-_8")", R"("by":"+/8=")"},
      {R"("by":"AQI")", R"("by":"AQI=")"},
      {R"("color":2)", R"("color":"GREEN")"},
      {R"("color":7)", R"("color":7)"},
      {R"("custom":"proto name")", R"("myCustomName":"proto name")"},
      {R"("s":null)", R"("s":"")"},
      {R"("s":"\ud83d\ude00 \u0001")", "\"s\":\"\xf0\x9f\x98\x80 \\u0001\""},
  };
  for (const Case& c : cases) {
    std::string out = RoundTrip("test.Scalars", "{" + c.in + "}");
    EXPECT_THAT(out, HasSubstr(c.out)) << c.in;
  }
}

TEST_F(JsonCodecTest, ScalarErrors) {
  const std::pair<std::string, std::string> cases[] = {
      {R"({"nope":1})", "unknown field \"nope\""},
      {R"({"i32":1.5})", "\"i32\""},
      {R"({"i32":"2147483648"})", "out of range"},
      {R"({"u32":-1})", "out of range"},
      {R"({"u64":"18446744073709551616"})", "out of range"},
      {R"({"i32":"12abc"})", "\"i32\""},
      {R"({"b":"true"})", "\"b\""},
      {R"({"s":5})", "\"s\""},
      {R"({"by":"!!"})", "base64"},
      {R"({"color":"BLUE"})", "BLUE"},
      {R"({"f":1e39})", "out of range"},
      {R"({"pointCount":"a","point_count":"b"})", "duplicate field"},
      {R"({"d":1,})", "invalid JSON"},
      {R"({"d":01})", "invalid"},
      {R"([1])", "expected an object"},
  };
  for (const auto& [in, want] : cases) {
    EXPECT_THAT(ParseError("test.Scalars", in), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(want))) << in;
  }
}

TEST_F(JsonCodecTest, CompositeFields) {
  EXPECT_EQ(RoundTrip("test.Composite",
                      R"({"point":{"x":1},"numbers":[1,"2"],"points":[{"y":3}],"counts":{"b":2,"a":1},)"
                      R"("names":{"10":"ten","2":"two"},"flags":{"true":{"x":1}},"where":{"x":5},"maybe":0,)"
                      R"("colors":["RED",2],"bigs":["1",2]})"),
            R"({"point":{"x":1,"y":0},"numbers":[1,2],"points":[{"x":0,"y":3}],"counts":{"a":1,"b":2},)"
            R"("names":{"2":"two","10":"ten"},"flags":{"true":{"x":1,"y":0}},"where":{"x":5,"y":0},"maybe":0,)"
            R"("colors":["RED","GREEN"],"bigs":["1","2"]})");
  // A oneof member set to its default is still present; null leaves a field unset.
  EXPECT_EQ(RoundTrip("test.Composite", R"({"text":"","point":null,"numbers":null})"),
            R"({"point":null,"numbers":[],"points":[],"counts":{},"names":{},"flags":{},"text":"","colors":[],"bigs":[]})");
}

TEST_F(JsonCodecTest, CompositeErrors) {
  EXPECT_THAT(ParseError("test.Composite", R"({"text":"a","where":{}})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("oneof test.Composite.choice is already set")));
  EXPECT_THAT(ParseError("test.Composite", R"({"numbers":[1,null]})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
  EXPECT_THAT(ParseError("test.Composite", R"({"names":{"x":"a"}})"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseError("test.Composite", R"({"point":{"z":1}})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown field \"z\"")));
  EXPECT_THAT(ParseError("test.Composite", R"({"numbers":5})"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(JsonCodecTest, EveryWellKnownType) {
  EXPECT_EQ(RoundTrip("test.WellKnown",
                      R"({"any":{"@type":"type.googleapis.com/test.Point","x":1,"y":2},)"
                      R"("ts":"2024-05-01T10:00:00.5Z","dur":"1.000340012s","empty":{},"mask":"pointCount,a.bC",)"
                      R"("st":{"k":[1,"a",null,true,{"z":{}}]},"val":"str","list":[1,{}],"dw":1.5,"fw":"NaN",)"
                      R"("i64w":"123","u64w":5,"i32w":"-7","u32w":8,"bw":true,"sw":"John","byw":"AQID","nv":null})"),
            R"({"any":{"@type":"type.googleapis.com/test.Point","x":1,"y":2},)"
            R"("ts":"2024-05-01T10:00:00.500Z","dur":"1.000340012s","empty":{},"mask":"pointCount,a.bC",)"
            R"("st":{"k":[1,"a",null,true,{"z":{}}]},"val":"str","list":[1,{}],"dw":1.5,"fw":"NaN",)"
            R"("i64w":"123","u64w":"5","i32w":-7,"u32w":8,"bw":true,"sw":"John","byw":"AQID","nv":null})");
}

TEST_F(JsonCodecTest, WellKnownForms) {
  const Case cases[] = {
      {R"("ts":"2024-05-01T10:00:00Z")", R"("ts":"2024-05-01T10:00:00Z")"},
      {R"("ts":"2024-05-01T10:00:00.123456789Z")", R"("ts":"2024-05-01T10:00:00.123456789Z")"},
      {R"("ts":"1970-01-01T00:00:00.000001Z")", R"("ts":"1970-01-01T00:00:00.000001Z")"},
      {R"("ts":"2024-05-01T12:00:00+02:00")", R"("ts":"2024-05-01T10:00:00Z")"},
      {R"("ts":"1969-12-31T23:59:59.5Z")", R"("ts":"1969-12-31T23:59:59.500Z")"},
      {R"("dur":"-1.5s")", R"("dur":"-1.500s")"},
      {R"("dur":"0s")", R"("dur":"0s")"},
      {R"("dur":"-0.000000001s")", R"("dur":"-0.000000001s")"},
      {R"("any":{"@type":"type.googleapis.com/google.protobuf.Duration","value":"2s"})",
       R"("any":{"@type":"type.googleapis.com/google.protobuf.Duration","value":"2s"})"},
      {R"("any":{})", R"("any":{})"},
      {R"("val":null)", R"("val":null)"},
      {R"("val":{"a":[]})", R"("val":{"a":[]})"},
      {R"("val":2.5)", R"("val":2.5)"},
      {R"("mask":"")", R"("mask":"")"},
      {R"("i64w":-9223372036854775808)", R"("i64w":"-9223372036854775808")"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(RoundTrip("test.WellKnown", "{" + c.in + "}"), HasSubstr(c.out)) << c.in;
  }
}

TEST_F(JsonCodecTest, WellKnownErrors) {
  const std::pair<std::string, std::string> cases[] = {
      {R"({"ts":"yesterday"})", "google.protobuf.Timestamp"},
      {R"({"dur":"5m"})", "google.protobuf.Duration"},
      {R"({"dur":"1.0000000001s"})", "google.protobuf.Duration"},
      {R"({"any":{"@type":"type.googleapis.com/nope.Nope"}})", "unable to resolve"},
      {R"({"any":{"x":1}})", "@type"},
      {R"({"any":{"@type":"type.googleapis.com/test.Point","z":1}})", "unknown field \"z\""},
      {R"({"empty":{"a":1}})", "unknown field \"a\""},
      {R"({"mask":"a_b"})", "lowerCamelCase"},
      {R"({"sw":5})", "\"value\""},
  };
  for (const auto& [in, want] : cases) {
    EXPECT_THAT(ParseError("test.WellKnown", in), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(want))) << in;
  }
}

TEST_F(JsonCodecTest, WrapperAtTopLevelIsABarePrimitive) {
  absl::StatusOr<std::string> bytes = JsonToBinary(*registry_, Type("google.protobuf.StringValue"), "\"John\"");
  ASSERT_THAT(bytes, IsOk());
  EXPECT_EQ(*bytes, std::string("\x0a\x04John"));
  EXPECT_EQ(*BinaryToJson(*registry_, Type("google.protobuf.StringValue"), *bytes), "\"John\"");
  EXPECT_EQ(*DefaultJson(*registry_, Type("google.protobuf.StringValue")), "\"\"");
  EXPECT_EQ(RoundTrip("google.protobuf.Int64Value", "42"), "\"42\"");
  EXPECT_EQ(RoundTrip("google.protobuf.Timestamp", "\"2024-05-01T10:00:00Z\""), "\"2024-05-01T10:00:00Z\"");
  EXPECT_EQ(RoundTrip("google.protobuf.Empty", "{}"), "{}");
  EXPECT_EQ(RoundTrip("google.protobuf.Value", "null"), "null");
}

TEST_F(JsonCodecTest, UnknownWireFieldsAreDroppedAndBadBytesFail) {
  // x = 1, then field 99 (varint 5), which test.Point does not know.
  EXPECT_EQ(*BinaryToJson(*registry_, Type("test.Point"), std::string("\x08\x01\x98\x06\x05", 5)), R"({"x":1,"y":0})");
  EXPECT_THAT(BinaryToJson(*registry_, Type("test.Point"), std::string("\x08", 1)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(JsonCodecTest, AnyOfAnUnknownTypeFailsToPrint) {
  // WellKnown.any (field 1) = Any{type_url: "type.googleapis.com/x.Y"}.
  std::string any = std::string("\x0a\x17", 2) + "type.googleapis.com/x.Y";
  std::string msg = std::string("\x0a", 1) + static_cast<char>(any.size()) + any;
  EXPECT_THAT(BinaryToJson(*registry_, Type("test.WellKnown"), msg),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("x.Y")));
}

std::string Len(int field, const std::string& bytes) {
  return std::string(1, static_cast<char>((field << 3) | 2)) + static_cast<char>(bytes.size()) + bytes;
}

TEST_F(JsonCodecTest, StatusErrorKeepsResolvableDetails) {
  std::string point_any = Len(1, "type.googleapis.com/test.Point") + Len(2, std::string("\x08\x01", 2));
  std::string unknown_any = Len(1, "type.googleapis.com/nope.Nope") + Len(2, "zz");
  std::string status = std::string("\x08\x03", 2) + Len(2, "ignored") + Len(3, point_any) + Len(3, unknown_any);
  EXPECT_EQ(StatusErrorJson(*registry_, 3, "bad \"input\"", status),
            R"({"code":3,"message":"bad \"input\"","details":[{"@type":"type.googleapis.com/test.Point","x":1,"y":0}]})");
  EXPECT_EQ(StatusErrorJson(*registry_, 14, "down", ""), R"({"code":14,"message":"down","details":[]})");
  // Garbage details: code and message still come through.
  EXPECT_EQ(StatusErrorJson(*registry_, 2, "x", "\xff\xff"), R"({"code":2,"message":"x","details":[]})");
}

}  // namespace
}  // namespace barrage::agent::grpc_client

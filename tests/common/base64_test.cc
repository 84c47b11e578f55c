#include "common/base64.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace barrage {
namespace {

// The cases of k6's encoding_test.go and Go's encoding/base64 tests.
TEST(Base64Test, EncodesTheFourVariants) {
  EXPECT_EQ(Base64Encode("hello world", Base64Variant::kStd), "aGVsbG8gd29ybGQ=");
  EXPECT_EQ(Base64Encode("hello world", Base64Variant::kRawStd), "aGVsbG8gd29ybGQ");
  EXPECT_EQ(Base64Encode("小飼弾..", Base64Variant::kUrl), "5bCP6aO85by-Li4=");
  EXPECT_EQ(Base64Encode("小飼弾..", Base64Variant::kRawUrl), "5bCP6aO85by-Li4");
  EXPECT_EQ(Base64Encode("こんにちは世界", Base64Variant::kStd), "44GT44KT44Gr44Gh44Gv5LiW55WM");
  EXPECT_EQ(Base64Encode("", Base64Variant::kStd), "");
  EXPECT_EQ(Base64Encode("f", Base64Variant::kStd), "Zg==");
  EXPECT_EQ(Base64Encode("fo", Base64Variant::kStd), "Zm8=");
  EXPECT_EQ(Base64Encode("foo", Base64Variant::kStd), "Zm9v");
  EXPECT_EQ(Base64Encode("\xfb\xff", Base64Variant::kStd), "+/8=");
  EXPECT_EQ(Base64Encode("\xfb\xff", Base64Variant::kRawUrl), "-_8");
}

TEST(Base64Test, DecodesWhatItEncodes) {
  for (std::string data : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\x00\xff\x10"}) {
    for (Base64Variant v : {Base64Variant::kStd, Base64Variant::kRawStd, Base64Variant::kUrl, Base64Variant::kRawUrl}) {
      absl::StatusOr<std::string> back = Base64Decode(Base64Encode(data, v), v);
      ASSERT_TRUE(back.ok()) << back.status();
      EXPECT_EQ(*back, data);
    }
  }
  EXPECT_EQ(*Base64Decode("aGVsbG8gd29y\r\nbGQ=", Base64Variant::kStd), "hello world");
}

TEST(Base64Test, RefusesWhatGoRefuses) {
  auto err = [](std::string_view text, Base64Variant v) {
    absl::StatusOr<std::string> r = Base64Decode(text, v);
    EXPECT_FALSE(r.ok()) << text;
    return std::string(r.status().message());
  };
  EXPECT_EQ(err("aGVsbG8", Base64Variant::kStd), "illegal base64 data at input byte 4");
  EXPECT_EQ(err("aGVsbG8=", Base64Variant::kRawStd), "illegal base64 data at input byte 7");
  EXPECT_EQ(err("5bCP6aO85by-Li4=", Base64Variant::kStd), "illegal base64 data at input byte 11");
  EXPECT_EQ(err("5bCP6aO85by+Li4=", Base64Variant::kUrl), "illegal base64 data at input byte 11");
  EXPECT_EQ(err("Zg=", Base64Variant::kStd), "illegal base64 data at input byte 3");
  EXPECT_EQ(err("Zg==x", Base64Variant::kStd), "illegal base64 data at input byte 4");
  EXPECT_EQ(err("Z===", Base64Variant::kStd), "illegal base64 data at input byte 1");
  EXPECT_EQ(err("Zm9vY", Base64Variant::kRawStd), "illegal base64 data at input byte 4");
  EXPECT_EQ(err("Zg=x", Base64Variant::kStd), "illegal base64 data at input byte 2");
}

}  // namespace
}  // namespace barrage

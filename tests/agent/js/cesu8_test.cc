#include "agent/js/cesu8.h"

#include <gtest/gtest.h>

namespace barrage::agent::js {
namespace {

// U+1F600 GRINNING FACE: UTF-8 f0 9f 98 80; in JS the pair D83D DE00,
// which Duktape stores as ed a0 bd ed b8 80.
constexpr char kEmojiUtf8[] = "\xF0\x9F\x98\x80";
constexpr char kEmojiCesu8[] = "\xED\xA0\xBD\xED\xB8\x80";

TEST(Cesu8Test, SurrogatePairsBecomeFourByteCharacters) {
  EXPECT_EQ(Utf8FromJs(std::string("a") + kEmojiCesu8 + "b"), std::string("a") + kEmojiUtf8 + "b");
  EXPECT_EQ(Utf8FromJs(std::string(kEmojiCesu8) + kEmojiCesu8), std::string(kEmojiUtf8) + kEmojiUtf8);
  // U+10FFFF, the last code point: DBFF DFFF.
  EXPECT_EQ(Utf8FromJs("\xED\xAF\xBF\xED\xBF\xBF"), "\xF4\x8F\xBF\xBF");
  // U+10000, the first: D800 DC00.
  EXPECT_EQ(Utf8FromJs("\xED\xA0\x80\xED\xB0\x80"), "\xF0\x90\x80\x80");
}

TEST(Cesu8Test, FourByteCharactersBecomeSurrogatePairs) {
  EXPECT_EQ(Utf8ToJs(std::string("x") + kEmojiUtf8), std::string("x") + kEmojiCesu8);
  EXPECT_EQ(Utf8ToJs("\xF4\x8F\xBF\xBF"), "\xED\xAF\xBF\xED\xBF\xBF");
  EXPECT_EQ(Utf8ToJs("\xF0\x90\x80\x80"), "\xED\xA0\x80\xED\xB0\x80");
}

TEST(Cesu8Test, RoundTripsEveryPlane) {
  for (uint32_t cp = 0x10000; cp <= 0x10FFFF; cp += 0x1F3) {
    std::string utf8 = {static_cast<char>(0xF0 | (cp >> 18)), static_cast<char>(0x80 | ((cp >> 12) & 0x3F)),
                        static_cast<char>(0x80 | ((cp >> 6) & 0x3F)), static_cast<char>(0x80 | (cp & 0x3F))};
    const std::string js = Utf8ToJs(utf8);
    ASSERT_EQ(js.size(), 6u) << cp;
    EXPECT_EQ(Utf8FromJs(js), utf8) << cp;
  }
}

TEST(Cesu8Test, LoneSurrogatesBecomeReplacementCharacters) {
  // A high surrogate alone, a low one alone, and a pair in the wrong order.
  EXPECT_EQ(Utf8FromJs("a\xED\xA0\xBD" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(Utf8FromJs("\xED\xB8\x80"), "\xEF\xBF\xBD");
  EXPECT_EQ(Utf8FromJs("\xED\xB8\x80\xED\xA0\xBD"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  // Cut short at the end of the string: two invalid bytes.
  EXPECT_EQ(Utf8FromJs("\xED\xA0"), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(Cesu8Test, ValidTextPassesUnchanged) {
  for (const char* s : {"", "plain ascii", "caf\xC3\xA9 \xE2\x82\xAC \xE4\xB8\xAD", "\xED\x9F\xBF" /* U+D7FF */}) {
    EXPECT_EQ(Utf8FromJs(s), s);
    EXPECT_EQ(Utf8ToJs(s), s);
  }
}

// Bytes that are not UTF-8 (a string made from a buffer) leave the heap as
// U+FFFD, one per byte, so JSON writers and protobuf never see them; on the
// way in they are kept as Duktape keeps them.
TEST(Cesu8Test, InvalidBytesLeaveAsReplacementCharacters) {
  EXPECT_EQ(Utf8FromJs("a\xFF\xFE" "b"), "a\xEF\xBF\xBD\xEF\xBF\xBD" "b");
  EXPECT_EQ(Utf8FromJs("\xF0\x9F"), "\xEF\xBF\xBD\xEF\xBF\xBD");               // cut short
  EXPECT_EQ(Utf8FromJs("\xF5\x80\x80\x80"), std::string(12, '\0').replace(0, 12, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"));
  EXPECT_EQ(Utf8FromJs("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");               // overlong '/'
  EXPECT_EQ(Utf8ToJs("\xFF\xFE garbage"), "\xFF\xFE garbage");
}

}  // namespace
}  // namespace barrage::agent::js

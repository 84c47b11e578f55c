#include "agent/js/source_map.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace barrage::agent::js {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Segments are Base64 VLQ: 'A' 0, 'C' 1, 'D' -1, 'E' 2, 'I' 4, 'J' -4, 'gB' 16.
// Fields: generated column, source, original line, original column; all
// but the first relative to the previous segment, across lines.
std::vector<uint32_t> Lines(absl::string_view mappings) {
  absl::StatusOr<LineMap> map = LineMapFromSourceMap(mappings);
  EXPECT_TRUE(map.ok()) << map.status();
  return map.ok() ? map->lines() : std::vector<uint32_t>{};
}

TEST(SourceMapTest, EachGeneratedLineGetsItsOriginalLine) {
  EXPECT_THAT(Lines("AAAA"), ElementsAre(1u));
  EXPECT_THAT(Lines("AAAA;AACA;AACA"), ElementsAre(1u, 2u, 3u));
  // Lines may go back (hoisting): original 5, then 1.
  EXPECT_THAT(Lines("AAIA;AAIA"), ElementsAre(5u, 9u));
  EXPECT_THAT(Lines("AAIA;AAJA"), ElementsAre(5u, 1u));
  // Values of more than one digit: line 17.
  EXPECT_THAT(Lines("AAgBA"), ElementsAre(17u));
}

TEST(SourceMapTest, LinesWithoutSegmentsAreNotTheUsers) {
  // Babel's helpers and "use strict" have no segments; nor does a segment
  // of one field (a generated column with no source).
  EXPECT_THAT(Lines(";;AAEA;"), ElementsAre(0u, 0u, 3u, 0u));
  EXPECT_THAT(Lines("A,CAAC"), ElementsAre(1u));
  EXPECT_THAT(Lines("A"), ElementsAre(0u));
  EXPECT_THAT(Lines(""), ElementsAre(0u));
}

TEST(SourceMapTest, APositionAnEarlierLineUsedIsInheritedAndSkipped) {
  // Line 2 starts at (line 1, col 0) again, as a statement Babel made inside
  // a function that starts there; the user's code on it is line 2.
  EXPECT_THAT(Lines("AAAA;AAAA,IACA"), ElementsAre(1u, 2u));
  // Only inherited positions, (1, 0) and (2, 0): the first one's line.
  EXPECT_THAT(Lines("AAAA,EACA;AADA,EACA"), ElementsAre(1u, 1u));
  // A position used earlier on the same line is not inherited.
  EXPECT_THAT(Lines("AAEA,EAAA,EAAA"), ElementsAre(3u));
}

TEST(SourceMapTest, MalformedMappingsAreErrors) {
  // "+///////////P" is 2^63 - 1, the largest delta a VLQ of 13 digits
  // holds: added to line 1 it overflowed int64 (UBSan: signed integer
  // overflow in source_map.cc) before the delta was bounded.
  for (const char* bad : {"AA!A", "AAA", "AAAAAA", "g", "AA;A*", "AADA", "AACA;AA+///////////PA",
                          "AAAC;AAA+///////////P", "AACA;AA////////////PA"}) {
    absl::StatusOr<LineMap> map = LineMapFromSourceMap(bad);
    EXPECT_FALSE(map.ok()) << bad;
    if (!map.ok()) {
      EXPECT_EQ(map.status().code(), absl::StatusCode::kInternal) << bad;
      EXPECT_THAT(std::string(map.status().message()), HasSubstr("source map: ")) << bad;
    }
  }
}

}  // namespace
}  // namespace barrage::agent::js

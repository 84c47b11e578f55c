#include "common/line_map.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/status_matchers.h"

namespace barrage {
namespace {

using ::testing::ElementsAre;
using testutil::IsOk;

TEST(LineMapTest, OriginalLinesAreOneBasedAndZeroOutsideTheMap) {
  const LineMap map({0, 5, 3});
  EXPECT_EQ(map.Original(0), 0u);  // no line 0
  EXPECT_EQ(map.Original(1), 0u);  // Babel's own
  EXPECT_EQ(map.Original(2), 5u);
  EXPECT_EQ(map.Original(3), 3u);
  EXPECT_EQ(map.Original(4), 0u);  // past the end (the module wrapper's closing line)
  EXPECT_EQ(map.size(), 3u);
}

TEST(LineMapTest, EncodesAsSpaceSeparatedNumbersAndBack) {
  const LineMap map({0, 5, 3, 4294967295u});
  EXPECT_EQ(map.Encode(), "0 5 3 4294967295");
  absl::StatusOr<LineMap> back = LineMap::Decode(map.Encode());
  ASSERT_THAT(back, IsOk());
  EXPECT_EQ(*back, map);
  EXPECT_EQ(LineMap().Encode(), "");
  ASSERT_THAT(LineMap::Decode(""), IsOk());
  EXPECT_TRUE(LineMap::Decode("")->empty());
  EXPECT_THAT(LineMap::Decode("7")->lines(), ElementsAre(7u));
}

TEST(LineMapTest, DecodeRefusesAnythingElse) {
  for (const char* bad : {" 1", "1 ", "1  2", "1,2", "-1", "1\n", "a", "4294967296", "1 2 x"}) {
    EXPECT_FALSE(LineMap::Decode(bad).ok()) << bad;
  }
  EXPECT_EQ(LineMap::Decode("1 2 x").status().message(), "expected a line number at offset 4");
  EXPECT_EQ(LineMap::Decode("1,2").status().message(), "expected a space at offset 1");
  EXPECT_EQ(LineMap::Decode("4294967296").status().message(), "line number too large at offset 0");
}

}  // namespace
}  // namespace barrage

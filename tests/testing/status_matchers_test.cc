#include "tests/testing/status_matchers.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace barrage::testutil {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(StatusMatchersTest, MatchStatusAndStatusOr) {
  EXPECT_THAT(absl::OkStatus(), IsOk());
  EXPECT_THAT(absl::StatusOr<int>(3), IsOk());
  absl::Status bad = absl::NotFoundError("script.js: no such file");
  EXPECT_THAT(bad, Not(IsOk()));
  EXPECT_THAT(bad, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(bad, Not(StatusIs(absl::StatusCode::kInternal)));
  EXPECT_THAT(absl::StatusOr<int>(bad),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("script.js")));
  EXPECT_THAT(bad, Not(StatusIs(absl::StatusCode::kNotFound, HasSubstr("other.js"))));
}

}  // namespace
}  // namespace barrage::testutil

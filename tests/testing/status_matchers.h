// gmock matchers for absl::Status and absl::StatusOr<T>:
//   EXPECT_THAT(LoadRunConfig(path), IsOk());
//   EXPECT_THAT(ParseDuration("x"), StatusIs(absl::StatusCode::kInvalidArgument));
//   EXPECT_THAT(status, StatusIs(absl::StatusCode::kNotFound, HasSubstr("script.js")));
// Debian's abseil ships no such matchers (absl/status/status_matchers.h came later).
#ifndef BARRAGE_TESTS_TESTING_STATUS_MATCHERS_H_
#define BARRAGE_TESTS_TESTING_STATUS_MATCHERS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace barrage::testutil {

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

MATCHER(IsOk, negation ? "is not OK" : "is OK") {
  const absl::Status& status = GetStatus(arg);
  if (!status.ok()) *result_listener << "status: " << status;
  return status.ok();
}

MATCHER_P(StatusIs, code, "has status code " + absl::StatusCodeToString(code)) {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status: " << status;
  return status.code() == code;
}

MATCHER_P2(StatusIs, code, message_matcher,
           "has status code " + absl::StatusCodeToString(code) + " and a message that " +
               ::testing::DescribeMatcher<std::string>(message_matcher)) {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status: " << status;
  return status.code() == code &&
         ::testing::Matcher<std::string>(message_matcher).Matches(std::string(status.message()));
}

}  // namespace barrage::testutil

#endif  // BARRAGE_TESTS_TESTING_STATUS_MATCHERS_H_

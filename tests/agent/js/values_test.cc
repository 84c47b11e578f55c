// CleanStackTrace (values.cc, declared in safe_call.h): the frames a
// script's author sees.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/js/safe_call.h"

namespace barrage::agent::js {
namespace {

TEST(CleanStackTraceTest, KeepsTheUsersFramesWithoutDuktapesFlags) {
  EXPECT_EQ(CleanStackTrace("Error: oops\n"
                            "    at helper (/t/lib/bar.js:6) strict tailcall\n"
                            "    at [anon] (/t/main.js:4) strict\n"
                            "    at forEach () native strict"),
            "Error: oops\n"
            "    at helper (/t/lib/bar.js:6)\n"
            "    at /t/main.js:4\n"
            "    at forEach (native)");
}

TEST(CleanStackTraceTest, DropsFramesThatAreNotTheUsersCode) {
  EXPECT_EQ(CleanStackTrace("TypeError: Invalid attempt to destructure non-iterable instance\n"
                            "    at [anon] (duk_js_call.c:2925) internal\n"
                            "    at [anon] (../../../agent/js/runtime.cc:404) internal\n"
                            "    at tryCatch (barrage:regenerator-runtime.js:62) strict\n"
                            "    at [anon] (/t/lib/util.js:0) strict\n"      // a helper Babel added
                            "    at step (/t/main.js:0) strict tailcall\n"  // _asyncToGenerator's
                            "    at firstOf (/t/lib/util.js:11) strict\n"
                            "    at default (/t/main.js:30) strict"),
            "TypeError: Invalid attempt to destructure non-iterable instance\n"
            "    at firstOf (/t/lib/util.js:11)\n"
            "    at default (/t/main.js:30)");
}

TEST(CleanStackTraceTest, KeepsMessagesOverSeveralLinesAndPlainValues) {
  EXPECT_EQ(CleanStackTrace("Uncaught (in promise) Error: area of 2\n        is too large\n"
                            "    at area (/t/shape.js:10) strict"),
            "Uncaught (in promise) Error: area of 2\n        is too large\n    at area (/t/shape.js:10)");
  EXPECT_EQ(CleanStackTrace("just a string (thrown: 0)"), "just a string (thrown: 0)");
  // Line 10 is not line 0.
  EXPECT_EQ(CleanStackTrace("E\n    at f (/t/a.js:10)"), "E\n    at f (/t/a.js:10)");
}

}  // namespace
}  // namespace barrage::agent::js

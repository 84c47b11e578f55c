// Script errors end to end: `barrage run` of multi-module ES2015+ scripts in
// sub-folders, whose errors must name the user's file and line in every
// frame, whatever Babel did to the module (common/line_map.h): in
// iterations, setup, teardown, a module's top-level code (init), an
// uncaught promise rejection; run from the script, from an archive, and on
// an agent.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/testing/child_process.h"
#include "tests/testing/paths.h"

namespace barrage {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

// The modules. Comments at the ends of lines (`// exported calls`) and a
// few statements' own text mark the lines the frames must name; the tests
// find them by that text. A statement over several lines is at its first. Each module has
// what moved its code under Babel: exported functions hoisted above the
// module's other code, a default export, a class (with a subclass and
// default parameters), destructuring, an async function (regenerator), a
// callback passed to Array.map, template literals over several lines.
constexpr char kBar[] =
    "// comment line 1\n"
    "// comment line 2\n"
    "export function helper(x) {\n"
    "  const y = x + 1;\n"
    "\n"
    "  throw new Error(\"oops \" + y); // helper throws\n"
    "}\n"
    "export default function other() { return helper(1); }\n";

constexpr char kUtil[] = R"JS(import { helper } from './bar.js';

export const double = (xs) => xs.map((v) => {
  if (v > 2) {
    throw new Error('map ' + v); // map throws
  }
  return v * 2;
}); // map called

export function firstOf(v) {
  const [first, second] = v; // firstOf destructures
  return first + second;
}

export default function check(v) {
  const [first, second = 2] = [v];
  if (first === 'deep') {
    const r = helper(second); // deep calls
    return r;
  }
  throw new Error(`default export ${first}
    of util`);
}
)JS";

constexpr char kShape[] = R"JS(// Shapes: a base class and a subclass.
export class Base {
  constructor(size) {
    this.size = size;
  }
}

export class Square extends Base {
  constructor(size) {
    super(size);
  }

  area(scale = 1) {
    const { size } = this;
    if (size > 1) {
      throw new Error(`area of ${size}
        is too large`);
    }
    return size * size * scale;
  }
}
)JS";

constexpr char kFetch[] = R"JS(const later = (v) => new Promise((resolve) => setTimeout(() => resolve(v), 1));

export async function fetchIt(n) {
  const a = await later(n);
  const b = await later(a + 1);
  if (b > 1) {
    throw new Error('after await ' + b); // async throws
  }
  return b;
}
)JS";

constexpr char kMain[] = R"JS(import other, { helper } from './lib/bar.js';
import check, { double, firstOf } from './lib/util.js';
import { Square } from './lib/shapes/shape.js';
import { fetchIt } from './lib/async/fetch.js';

export const options = { iterations: 1 };

export function setup() {
  if (__ENV.CASE === 'setup') {
    helper(1); // setup calls
  }
}

export default function () {
  switch (__ENV.CASE) {
    case 'exported':
      helper(1); // exported calls
      break;
    case 'default':
      check('x'); // default calls
      break;
    case 'deep':
      check('deep'); // deep main calls
      break;
    case 'method':
      new Square(2).area(); // method calls
      break;
    case 'map':
      double([1, 2, 3]); // map main calls
      break;
    case 'promise':
      fetchIt(5);
      break;
    case 'helper':
      firstOf(5); // helper main calls
      break;
    case 'caught':
      for (const f of [() => new Square(2).area(), () => firstOf(5)]) {
        try {
          f();
        } catch (e) {
          console.log(`lineNumber=${e.lineNumber}`);
          console.log(`stack=${e.stack}`);
        }
      }
      break;
  }
}

export function teardown() {
  if (__ENV.CASE === 'teardown') {
    new Square(3).area(2); // teardown calls
  }
}
)JS";

constexpr char kAsyncMain[] = R"JS(import { fetchIt } from './lib/async/fetch.js';

export const options = { iterations: 1 };

export default async function () {
  const n = await fetchIt(0);
  await fetchIt(n);
}
)JS";

constexpr char kBadInit[] = R"JS(export function used() {
  return 1;
}

const settings = { retries: 3 };
if (settings.retries > 2) {
  throw new Error('bad settings ' + settings.retries); // init throws
}
export default settings;
)JS";

constexpr char kInitMain[] = R"JS(import { used } from './lib/init/bad.js'; // init imports

export default function () {
  used();
}
)JS";

struct Module {
  const char* path;
  const char* text;
};
constexpr Module kModules[] = {
    {"lib/bar.js", kBar},           {"lib/util.js", kUtil},  {"lib/shapes/shape.js", kShape},
    {"lib/async/fetch.js", kFetch}, {"main.js", kMain},      {"async_main.js", kAsyncMain},
    {"lib/init/bad.js", kBadInit},  {"init.js", kInitMain},
};

// "path:line" of the line holding `marker` in the module at path.
std::string At(const std::string& path, const std::string& marker) {
  for (const Module& m : kModules) {
    if (m.path != path) continue;
    const std::string text = m.text;
    const size_t at = text.find(marker);
    EXPECT_NE(at, std::string::npos) << marker;
    EXPECT_EQ(text.find(marker, at + 1), std::string::npos) << marker << " is not unique";
    return path + ":" + std::to_string(std::count(text.begin(), text.begin() + at, '\n') + 1);
  }
  ADD_FAILURE() << "no module " << path;
  return "";
}

// The first error logged: its message, and each frame's "path:line" for
// the frames in the test's directory.
struct LoggedError {
  std::string message;
  std::vector<std::string> frames;
  std::string text;  // the whole message, for failures
};

LoggedError FirstError(const std::string& stderr_text, const std::string& dir) {
  LoggedError out;
  const size_t line = stderr_text.find("level=error msg=\"");
  if (line == std::string::npos) return out;
  // logfmt: the value runs to the next unescaped quote.
  std::string msg;
  for (size_t i = line + 17; i < stderr_text.size() && stderr_text[i] != '"'; ++i) {
    if (stderr_text[i] == '\\' && i + 1 < stderr_text.size()) {
      const char c = stderr_text[++i];
      msg.push_back(c == 'n' ? '\n' : c == 't' ? '\t' : c);
    } else {
      msg.push_back(stderr_text[i]);
    }
  }
  out.text = msg;
  out.message = msg.substr(0, msg.find("\n    at "));
  size_t start = 0;
  while (start < msg.size()) {
    size_t end = msg.find('\n', start);
    if (end == std::string::npos) end = msg.size();
    const std::string frame = msg.substr(start, end - start);
    start = end + 1;
    if (frame.rfind("    at ", 0) != 0) continue;
    std::string where = frame.substr(7);
    if (!where.empty() && where.back() == ')') {
      where = where.substr(where.rfind('(') + 1);
      where.pop_back();
    }
    if (where.rfind(dir + "/", 0) == 0) out.frames.push_back(where.substr(dir.size() + 1));
  }
  return out;
}

class ErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The scripts' own folder, and a transform cache of the test's own: the
    // first run transforms, the later runs of a test read Babel's results.
    dir_ = testutil::TempDir();
    scripts_ = dir_ + "/test";
    for (const Module& m : kModules) {
      const std::string path = scripts_ + "/" + m.path;
      std::filesystem::create_directories(std::filesystem::path(path).parent_path());
      std::ofstream(path) << m.text;
    }
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  testutil::RunResult Barrage(std::vector<std::string> args) {
    return testutil::Run(testutil::BinaryPath("barrage"), args, 60s, {{"BARRAGE_CACHE_DIR", dir_ + "/cache"}});
  }
  // `barrage run -q [extra...] -e CASE=<c> <script>`.
  testutil::RunResult Run(const std::string& c, const std::string& script, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"run", "-q"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(), {"-e", "CASE=" + c, script});
    return Barrage(args);
  }

  // The iteration errors of main.js, run as `run(case)` gives them.
  template <typename RunFn>
  void ExpectIterationErrors(RunFn run) {
    struct Case {
      std::string name, message;
      std::vector<std::string> frames;
    };
    const std::vector<Case> cases = {
        {"exported", "Error: oops 2", {At("lib/bar.js", "helper throws"), At("main.js", "exported calls")}},
        {"default",
         "Error: default export x\n    of util",
         {At("lib/util.js", "throw new Error(`default export"), At("main.js", "default calls")}},
        {"deep",
         "Error: oops 3",
         {At("lib/bar.js", "helper throws"), At("lib/util.js", "deep calls"), At("main.js", "deep main calls")}},
        {"method",
         "Error: area of 2\n        is too large",
         {At("lib/shapes/shape.js", "throw new Error(`area of"), At("main.js", "method calls")}},
        // Duktape puts a call on the line where its arguments end (as for a
        // file it runs untouched): `});`.
        {"map",
         "Error: map 3",
         {At("lib/util.js", "map throws"), At("lib/util.js", "map called"), At("main.js", "map main calls")}},
        // Thrown by a helper Babel added (_slicedToArray): not the user's
        // code, so no frame of its own; the user's frames follow.
        {"helper",
         "TypeError: Invalid attempt to destructure non-iterable instance",
         {At("lib/util.js", "firstOf destructures"), At("main.js", "helper main calls")}},
    };
    for (const Case& c : cases) {
      SCOPED_TRACE(c.name);
      testutil::RunResult r = run(c.name);
      EXPECT_EQ(r.exit_code, 0) << r.stderr_text;  // an iteration error fails the iteration, not the test
      LoggedError e = FirstError(r.stderr_text, scripts_);
      EXPECT_EQ(e.message, c.message) << r.stderr_text;
      EXPECT_THAT(e.frames, ElementsAreArray(c.frames)) << e.text;
    }
  }

  std::string dir_;
  std::string scripts_;
};

TEST_F(ErrorsTest, IterationErrorsNameTheUsersLineInEveryFrame) {
  ExpectIterationErrors([&](const std::string& c) { return Run(c, scripts_ + "/main.js"); });
}

// What a script reads of an error it caught: Duktape's own e.stack and
// e.lineNumber, at the user's lines too.
TEST_F(ErrorsTest, ACaughtErrorsStackAndLineNumberAreTheUsers) {
  testutil::RunResult r = Run("caught", scripts_ + "/main.js");
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  const std::string method = At("lib/shapes/shape.js", "throw new Error(`area of");
  const std::string helper = At("lib/util.js", "firstOf destructures");
  EXPECT_THAT(r.stderr_text, HasSubstr("lineNumber=" + method.substr(method.find(':') + 1)));
  EXPECT_THAT(r.stderr_text, HasSubstr("at area (" + scripts_ + "/" + method + ")"));
  // The helper's frame is Duktape's first; lineNumber skips it.
  EXPECT_THAT(r.stderr_text, HasSubstr("lineNumber=" + helper.substr(helper.find(':') + 1)));
  EXPECT_THAT(r.stderr_text, HasSubstr("at firstOf (" + scripts_ + "/" + helper + ")"));
}

TEST_F(ErrorsTest, SetupAndTeardownErrorsNameTheUsersLines) {
  testutil::RunResult r = Run("setup", scripts_ + "/main.js");
  EXPECT_EQ(r.exit_code, 107) << r.stderr_text;
  LoggedError e = FirstError(r.stderr_text, scripts_);
  EXPECT_EQ(e.message, "Error: oops 2");
  EXPECT_THAT(e.frames, ElementsAreArray({At("lib/bar.js", "helper throws"), At("main.js", "setup calls")})) << e.text;

  r = Run("teardown", scripts_ + "/main.js");
  EXPECT_EQ(r.exit_code, 107) << r.stderr_text;
  e = FirstError(r.stderr_text, scripts_);
  EXPECT_EQ(e.message, "Error: area of 3\n        is too large");
  EXPECT_THAT(e.frames, ElementsAreArray({At("lib/shapes/shape.js", "throw new Error(`area of"), At("main.js", "teardown calls")}))
      << e.text;
}

TEST_F(ErrorsTest, AsyncErrorsAndUncaughtRejectionsNameTheUsersLine) {
  // Thrown after an await: the frame is the async function's, resumed by
  // the event loop (no caller frames, as in k6).
  testutil::RunResult r = Run("", scripts_ + "/async_main.js");
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  LoggedError e = FirstError(r.stderr_text, scripts_);
  EXPECT_EQ(e.message, "Uncaught (in promise) Error: after await 2");
  EXPECT_THAT(e.frames, ElementsAreArray({At("lib/async/fetch.js", "async throws")})) << e.text;
  // A promise nobody waits for: the rejection is reported when the
  // iteration's event loop ends.
  r = Run("promise", scripts_ + "/main.js");
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  e = FirstError(r.stderr_text, scripts_);
  EXPECT_EQ(e.message, "Uncaught (in promise) Error: after await 6");
  EXPECT_THAT(e.frames, ElementsAreArray({At("lib/async/fetch.js", "async throws")})) << e.text;
}

TEST_F(ErrorsTest, ErrorInAModulesTopLevelCodeIsAnInitErrorAtItsLine) {
  testutil::RunResult r = Run("", scripts_ + "/init.js");
  EXPECT_EQ(r.exit_code, 107) << r.stderr_text;
  LoggedError e = FirstError(r.stderr_text, scripts_);
  EXPECT_EQ(e.message, "Error: bad settings 3");
  EXPECT_THAT(e.frames, ElementsAreArray({At("lib/init/bad.js", "init throws"), At("init.js", "init imports")}))
      << e.text;
}

TEST_F(ErrorsTest, AnArchiveCarriesTheLinesOfItsModules) {
  const std::string tar = dir_ + "/test.tar";
  testutil::RunResult made = Barrage({"archive", "-o", tar, scripts_ + "/main.js"});
  ASSERT_EQ(made.exit_code, 0) << made.stderr_text;
  // Neither the scripts nor Babel's cache: only the archive.
  std::filesystem::remove_all(scripts_);
  std::filesystem::remove_all(dir_ + "/cache");
  ExpectIterationErrors([&](const std::string& c) { return Run(c, tar); });
  testutil::RunResult r = Run("setup", tar);
  EXPECT_EQ(r.exit_code, 107) << r.stderr_text;
  EXPECT_THAT(FirstError(r.stderr_text, scripts_).frames,
              ElementsAreArray({At("lib/bar.js", "helper throws"), At("main.js", "setup calls")}));
}

TEST_F(ErrorsTest, AnAgentReportsTheUsersLines) {
  ExpectIterationErrors([&](const std::string& c) { return Run(c, scripts_ + "/main.js", {"--agents", "1"}); });
  testutil::RunResult r = Run("", scripts_ + "/async_main.js", {"--agents", "1"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_THAT(FirstError(r.stderr_text, scripts_).frames,
              ElementsAreArray({At("lib/async/fetch.js", "async throws")}));
}

}  // namespace
}  // namespace barrage

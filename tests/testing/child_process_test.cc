#include "tests/testing/child_process.h"

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/paths.h"
#include "tests/testing/status_matchers.h"

namespace barrage::testutil {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

const char kSh[] = "/bin/sh";

TEST(RunTest, CapturesBothStreamsAndExitCode) {
  RunResult run = testutil::Run(kSh, {"-c", "echo out; echo err >&2; exit 3"}, 10s);
  EXPECT_EQ(run.exit_code, 3);
  EXPECT_FALSE(run.timed_out);
  EXPECT_EQ(run.stdout_text, "out\n");
  EXPECT_EQ(run.stderr_text, "err\n");
}

TEST(RunTest, FeedsStdinAndExtraEnvironment) {
  RunResult run = testutil::Run(kSh, {"-c", "read line; echo \"$line $GREETING\""}, 10s,
                                {{"GREETING", "Bert"}}, "hello\n");
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_EQ(run.stdout_text, "hello Bert\n");
}

TEST(RunTest, KillsTheChildOnTimeout) {
  RunResult run = testutil::Run(kSh, {"-c", "echo started; exec sleep 60"}, 300ms);
  EXPECT_TRUE(run.timed_out);
  EXPECT_EQ(run.exit_code, -1);
  EXPECT_EQ(run.stdout_text, "started\n");
}

TEST(RunTest, MissingProgramExits127WithAMessage) {
  RunResult run = testutil::Run("/nonexistent/program", {}, 10s);
  EXPECT_EQ(run.exit_code, 127);
  EXPECT_THAT(run.stderr_text, HasSubstr("cannot execute /nonexistent/program"));
}

TEST(ChildProcessTest, WaitForAddressParsesTheListeningLine) {
  auto child = ChildProcess::Start(
      kSh, {"-c", "echo starting; echo 'x listening on 127.0.0.1:4242'; exec sleep 60"});
  absl::StatusOr<std::string> address = child->WaitForAddress(10s);
  ASSERT_THAT(address, IsOk());
  EXPECT_EQ(*address, "127.0.0.1:4242");
  EXPECT_TRUE(child->Running());
  // The destructor stops it; nothing else to do.
}

TEST(ChildProcessTest, WaitForLineSeesStderrAndEarlierLines) {
  auto child = ChildProcess::Start(kSh, {"-c", "echo 'ready 7' >&2; echo done"});
  EXPECT_EQ(child->Wait(10s), 0);
  absl::StatusOr<std::string> line = child->WaitForLine(R"(ready \d+)", 10s);
  ASSERT_THAT(line, IsOk());
  EXPECT_EQ(*line, "ready 7");
}

TEST(ChildProcessTest, WaitForLineFailsWhenOutputEndsWithoutMatch) {
  auto child = ChildProcess::Start(kSh, {"-c", "echo nothing here"});
  EXPECT_THAT(child->WaitForLine("never", 10s),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("nothing here")));
}

TEST(ChildProcessTest, WaitForLineTimesOut) {
  auto child = ChildProcess::Start(kSh, {"-c", "exec sleep 60"});
  EXPECT_THAT(child->WaitForLine("never", 100ms),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TEST(ChildProcessTest, SignalAndWaitReportTheSignal) {
  auto child = ChildProcess::Start(kSh, {"-c", "echo up; exec sleep 60"});
  ASSERT_THAT(child->WaitForLine("up", 10s), IsOk());
  EXPECT_EQ(child->Wait(10ms), -1);  // still running
  child->Signal(SIGKILL);
  EXPECT_EQ(child->Wait(10s), 128 + SIGKILL);
  EXPECT_EQ(child->Wait(0ms), 128 + SIGKILL);  // the same answer again
  EXPECT_FALSE(child->Running());
}

TEST(ChildProcessTest, DestructorStopsTheWholeProcessGroup) {
  // The shell ignores SIGTERM (so the destructor must escalate to SIGKILL
  // after its grace period) and leaves a grandchild holding the pipes; the
  // destructor must still return, and the grandchild must be gone.
  std::string dir = TempDir();
  std::string pid_file = dir + "/grandchild.pid";
  {
    auto child = ChildProcess::Start(
        kSh, {"-c", "trap '' TERM; sleep 60 & echo $! > " + pid_file + "; echo ready; wait"});
    ASSERT_THAT(child->WaitForLine("ready", 10s), IsOk());
  }
  std::ifstream in(pid_file);
  pid_t grandchild = 0;
  ASSERT_TRUE(in >> grandchild);
  // Reaped by init or a zombie at most: either way, not running sleep.
  // SIGKILL delivery is asynchronous, so allow it a bounded moment; and a
  // reused pid (other tests run in parallel) is some other program.
  std::string pid_text, comm, state;
  for (int i = 0; i < 200; ++i) {
    std::ifstream stat("/proc/" + std::to_string(grandchild) + "/stat");
    if (!(stat >> pid_text >> comm >> state) || comm != "(sleep)" || state == "Z") break;
    std::this_thread::sleep_for(10ms);
  }
  if (comm == "(sleep)") EXPECT_EQ(state, "Z") << comm;
}

TEST(PathsTest, TempDirIsFreshAndEmpty) {
  std::string a = TempDir();
  std::string b = TempDir();
  EXPECT_NE(a, b);
  EXPECT_TRUE(std::filesystem::is_directory(a));
  EXPECT_TRUE(std::filesystem::is_empty(a));
}

TEST(PathsTest, SourcePathFindsTheRepository) {
  EXPECT_TRUE(std::filesystem::exists(SourcePath("proto/hello/hello.proto")));
}

}  // namespace
}  // namespace barrage::testutil

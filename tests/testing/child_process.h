// Real programs under test: start them, read what they print, stop them.
// Integration tests and benchmarks run barrage-target, barrage-agent and
// barrage this way, on loopback, with every wait bounded.
#ifndef BARRAGE_TESTS_TESTING_CHILD_PROCESS_H_
#define BARRAGE_TESTS_TESTING_CHILD_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace barrage::testutil {

// Variables added to (or replacing in) the child's copy of our environment.
using EnvExtra = std::map<std::string, std::string>;

struct RunResult;

// One running program. Its stdout and stderr are captured whole (a reader
// thread drains both pipes, so a chatty child never blocks on a full pipe);
// stdin is /dev/null. The child leads its own process group and gets
// PR_SET_PDEATHSIG(SIGKILL), so nothing outlives the test even when the test
// crashes. Note that the death signal follows the *thread* that called
// Start(): start children from the test's own thread, not a short-lived one.
//
// The destructor sends SIGTERM, waits up to 5 s, then SIGKILLs the whole
// process group (grandchildren included) and reaps the child.
//
// Thread-safety: the text accessors and WaitFor* may be called from any
// thread; Signal, Wait and destruction from the owning thread.
class ChildProcess {
 public:
  // Starts path with args (argv[0] is path). Never null: if the program
  // cannot be executed, the child prints why on stderr and exits with 127.
  static std::unique_ptr<ChildProcess> Start(const std::string& path,
                                             const std::vector<std::string>& args,
                                             const EnvExtra& env_extra = {});

  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Waits until a complete line of stdout or stderr (lines already printed
  // count too) matches the ECMAScript regex (std::regex_search), and returns
  // that line without its newline. kDeadlineExceeded after timeout, and
  // kFailedPrecondition once the child has closed both streams without such
  // a line; either message quotes what the child printed.
  absl::StatusOr<std::string> WaitForLine(const std::string& regex,
                                          std::chrono::milliseconds timeout);

  // WaitForLine("listening on (\S+)") and returns the captured address, as
  // printed by barrage-target ("barrage-target listening on 127.0.0.1:41234").
  absl::StatusOr<std::string> WaitForAddress(std::chrono::milliseconds timeout);

  // Sends sig to the child (not its group). No-op once it has been reaped.
  void Signal(int sig);

  // Waits for the child to exit and returns its exit code, 128 + N when it
  // was killed by signal N (the shell's convention), or -1 if it is still
  // running after timeout (it is left running). Once exited, returns the
  // same code again at once.
  int Wait(std::chrono::milliseconds timeout);

  // True until the child has been reaped by Wait (or exited and been seen to).
  bool Running();

  // Everything captured so far.
  std::string stdout_text() const;
  std::string stderr_text() const;
  pid_t pid() const { return pid_; }

 private:
  ChildProcess() = default;
  // Also used by Run(), which wants stdin fed from a file.
  static std::unique_ptr<ChildProcess> StartWithStdin(const std::string& path,
                                                      const std::vector<std::string>& args,
                                                      const EnvExtra& env_extra,
                                                      const std::string& stdin_path);
  void ReadLoop();
  // Kills what is left of the process group and waits for the reader to
  // collect the rest of the output.
  void Finish();
  bool TryReap(int options);

  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  std::thread reader_;
  bool finished_ = false;

  mutable std::mutex mu_;
  std::condition_variable changed_;  // new output, or both streams closed
  std::string out_;                  // guarded by mu_
  std::string err_;                  // guarded by mu_
  bool streams_closed_ = false;      // guarded by mu_
  bool stop_reading_ = false;        // guarded by mu_

  friend RunResult Run(const std::string&, const std::vector<std::string>&,
                       std::chrono::milliseconds, const EnvExtra&, const std::string&);
};

// The outcome of a program run to completion.
struct RunResult {
  int exit_code = -1;  // as ChildProcess::Wait; -1 with timed_out
  std::string stdout_text;
  std::string stderr_text;
  bool timed_out = false;  // the child was SIGKILLed after timeout
};

// Runs path with args to completion, feeding stdin_text on its stdin. After
// timeout the whole process group is SIGKILLed and timed_out is set.
RunResult Run(const std::string& path, const std::vector<std::string>& args,
              std::chrono::milliseconds timeout, const EnvExtra& env_extra = {},
              const std::string& stdin_text = "");

}  // namespace barrage::testutil

#endif  // BARRAGE_TESTS_TESTING_CHILD_PROCESS_H_

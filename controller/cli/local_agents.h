// The barrage-agent processes of `barrage run --agents N`, on this machine.
//
// Each agent is started with posix_spawn in a process group of its own (a
// terminal's Ctrl-C reaches the controller only, which then stops them
// gracefully over the session) with:
// - the run's token in its environment (BARRAGE_AGENT_TOKEN), never on its
//   command line, which every local user can read (/proc/PID/cmdline);
// - the read end of a pipe whose write end only this process holds
//   (barrage-agent --parent-fd): when the controller ends, however it ends
//   (kill -9 included), the agents read end of file and exit, so none
//   outlives it, joined or not;
// - its stderr in a pipe: the last lines of each are kept, and shown with
//   its exit status when it is lost (its log reaches the controller over
//   the session too, so nothing is printed otherwise).
// Every child is reaped: Wait() on the way out, the destructor (SIGKILL)
// on every other path.
//
// Hand-written over posix_spawn: the project has no process library, and
// this needs only spawn, a pipe, wait with a deadline and kill.
//
// Thread-safety: Describe and FirstExited may be called from any thread;
// Start, Wait and destruction from the owning one.
#ifndef BARRAGE_CONTROLLER_CLI_LOCAL_AGENTS_H_
#define BARRAGE_CONTROLLER_CLI_LOCAL_AGENTS_H_

#include <sys/types.h>

#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace barrage::cli {

struct LocalAgentsOptions {
  std::string binary;      // the barrage-agent executable
  std::string controller;  // the control address, HOST:PORT
  std::string token;       // required: the run's token
  absl::Duration join_timeout = absl::Seconds(60);
  bool verbose = false;
};

class LocalAgents {
 public:
  // Lines of stderr kept per agent.
  static constexpr size_t kKeptLines = 20;

  // The most local agents a run may start: 4 per core. Each agent is a
  // process with its own worker threads and gRPC stack; beyond this they
  // only compete for the same cores (and --agents 100000 would fork until
  // the machine gives out).
  static int MaxAgents();

  // Starts agents named agent-1 .. agent-<count>. On failure, the ones
  // already started are killed and reaped.
  static absl::StatusOr<std::unique_ptr<LocalAgents>> Start(const LocalAgentsOptions& options, int count);

  ~LocalAgents();
  LocalAgents(const LocalAgents&) = delete;
  LocalAgents& operator=(const LocalAgents&) = delete;

  // What is known of agent `name` beyond its session: how its process
  // ended (waiting up to `wait` for it to end) and its last lines on
  // stderr. Empty for a name this run did not start.
  std::string Describe(const std::string& name, absl::Duration wait = absl::Seconds(1));
  // The first agent whose process has ended, as "agent-2: <Describe>";
  // nullopt while all run.
  std::optional<std::string> FirstExited();
  // Waits up to `timeout` for every agent to exit, then kills the rest.
  void Wait(absl::Duration timeout);

 private:
  struct Child {
    std::string name;
    pid_t pid = -1;
    int stderr_fd = -1;             // read end; -1 at end of file
    std::optional<int> status;      // waitpid's, once reaped
    std::deque<std::string> lines;  // the last kKeptLines
    std::string partial;            // a line not ended yet
  };
  LocalAgents() = default;
  // Reaps the child if it has exited (mu_ held). True when it has.
  bool ReapLocked(Child& child);
  void ReadLoop();

  std::mutex mu_;
  std::vector<Child> children_;  // guarded by mu_
  int parent_write_fd_ = -1;     // held until destruction: its closing is the agents' signal
  int wake_read_fd_ = -1, wake_write_fd_ = -1;  // stops the reader
  std::thread reader_;
};

// 32 random bytes from OpenSSL's CSPRNG, as 64 hex digits: the token of a
// run with local agents, so that other local users cannot join it.
absl::StatusOr<std::string> RandomToken();

}  // namespace barrage::cli

#endif  // BARRAGE_CONTROLLER_CLI_LOCAL_AGENTS_H_

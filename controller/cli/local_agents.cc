#include "controller/cli/local_agents.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

extern char** environ;

namespace barrage::cli {
namespace {

// The fd at which each agent finds the parent pipe (--parent-fd).
constexpr int kParentFdInChild = 3;
// Longer stderr lines are cut: they only feed an error message.
constexpr size_t kMaxLineBytes = 300;

// A copy of fd at 10 or above, close-on-exec, and the original closed: the
// fds the children get by dup2 must differ from their targets (dup2 of an
// fd onto itself would leave close-on-exec set).
int MoveHigh(int fd) {
  const int high = fcntl(fd, F_DUPFD_CLOEXEC, 10);
  close(fd);
  return high;
}

std::string ExitText(int status) {
  if (WIFEXITED(status)) return absl::StrCat("the agent process exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* abbrev = sigabbrev_np(sig);
    return absl::StrCat("the agent process was killed by signal ", sig,
                        abbrev != nullptr ? absl::StrCat(" (SIG", abbrev, ")") : std::string());
  }
  return "the agent process ended";
}

}  // namespace

int LocalAgents::MaxAgents() {
  return 4 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

absl::StatusOr<std::string> RandomToken() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return absl::InternalError("cannot make a token for the local agents: OpenSSL's random generator failed");
  }
  std::string out;
  for (unsigned char b : bytes) absl::StrAppend(&out, absl::StrFormat("%02x", b));
  return out;
}

absl::StatusOr<std::unique_ptr<LocalAgents>> LocalAgents::Start(const LocalAgentsOptions& options, int count) {
  std::unique_ptr<LocalAgents> agents(new LocalAgents());
  int parent[2], wake[2];
  if (pipe2(parent, O_CLOEXEC) != 0 || pipe2(wake, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("cannot start the local agents: pipe: ", strerror(errno)));
  }
  const int parent_read = MoveHigh(parent[0]);
  agents->parent_write_fd_ = parent[1];
  agents->wake_read_fd_ = wake[0];
  agents->wake_write_fd_ = wake[1];
  // The environment: ours, with the token.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (strncmp(*e, "BARRAGE_AGENT_TOKEN=", 20) != 0) env_strings.emplace_back(*e);
  }
  env_strings.push_back(absl::StrCat("BARRAGE_AGENT_TOKEN=", options.token));
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string join_timeout = absl::StrCat(absl::ToInt64Seconds(options.join_timeout), "s");
  absl::Status failed;
  for (int i = 1; i <= count && failed.ok(); ++i) {
    const std::string name = absl::StrCat("agent-", i);
    std::vector<std::string> args = {options.binary, "--controller", options.controller, "--once",
                                     "--name",       name,           "--parent-fd",      std::to_string(kParentFdInChild),
                                     "--join-timeout", join_timeout};
    if (options.verbose) args.push_back("-v");
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int err[2];
    if (pipe2(err, O_CLOEXEC) != 0) {
      failed = absl::InternalError(absl::StrCat("cannot start ", name, ": pipe: ", strerror(errno)));
      break;
    }
    const int err_write = MoveHigh(err[1]);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, err_write, STDERR_FILENO);
    posix_spawn_file_actions_adddup2(&actions, parent_read, kParentFdInChild);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // Its own process group; default handling of the signals the
    // controller catches (the agent installs its own).
    sigset_t defaults, none;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGPIPE);
    sigemptyset(&none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setsigmask(&attr, &none);
    pid_t pid = -1;
    const int spawn_error = posix_spawn(&pid, options.binary.c_str(), &actions, &attr, argv.data(), envp.data());
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    close(err_write);
    if (spawn_error != 0) {
      close(err[0]);
      failed = absl::InternalError(absl::StrCat("cannot start ", options.binary, ": ", strerror(spawn_error)));
      break;
    }
    std::lock_guard<std::mutex> lock(agents->mu_);
    Child child;
    child.name = name;
    child.pid = pid;
    child.stderr_fd = err[0];
    agents->children_.push_back(std::move(child));
  }
  close(parent_read);  // the children have theirs
  LocalAgents* raw = agents.get();
  agents->reader_ = std::thread([raw] { raw->ReadLoop(); });
  if (!failed.ok()) return failed;  // the destructor kills and reaps what started
  return agents;
}

LocalAgents::~LocalAgents() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Child& c : children_) {
      if (!ReapLocked(c)) {
        kill(c.pid, SIGKILL);
        int status = 0;
        if (waitpid(c.pid, &status, 0) == c.pid) c.status = status;
      }
    }
  }
  if (wake_write_fd_ >= 0) {
    const char byte = 0;
    (void)write(wake_write_fd_, &byte, 1);
  }
  if (reader_.joinable()) reader_.join();
  for (Child& c : children_) {
    if (c.stderr_fd >= 0) close(c.stderr_fd);
  }
  for (int fd : {parent_write_fd_, wake_read_fd_, wake_write_fd_}) {
    if (fd >= 0) close(fd);
  }
}

bool LocalAgents::ReapLocked(Child& c) {
  if (c.status) return true;
  int status = 0;
  if (waitpid(c.pid, &status, WNOHANG) == c.pid) {
    c.status = status;
    return true;
  }
  return false;
}

void LocalAgents::ReadLoop() {
  for (;;) {
    std::vector<pollfd> fds = {{wake_read_fd_, POLLIN, 0}};
    std::vector<size_t> index;  // fds[k + 1] is children_[index[k]]'s
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < children_.size(); ++i) {
        if (children_[i].stderr_fd < 0) continue;
        fds.push_back({children_[i].stderr_fd, POLLIN, 0});
        index.push_back(i);
      }
    }
    if (fds.size() == 1) return;  // every agent's stderr is closed
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[0].revents != 0) return;
    for (size_t k = 1; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      char buffer[4096];
      const ssize_t n = read(fds[k].fd, buffer, sizeof(buffer));
      std::lock_guard<std::mutex> lock(mu_);
      Child& c = children_[index[k - 1]];
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        close(c.stderr_fd);
        c.stderr_fd = -1;
        if (!c.partial.empty()) c.lines.push_back(std::exchange(c.partial, ""));
      } else {
        for (ssize_t i = 0; i < n; ++i) {
          if (buffer[i] == '\n') {
            c.lines.push_back(std::exchange(c.partial, ""));
          } else if (c.partial.size() < kMaxLineBytes) {
            c.partial.push_back(buffer[i]);
          }
        }
      }
      while (c.lines.size() > kKeptLines) c.lines.pop_front();
    }
  }
}

std::string LocalAgents::Describe(const std::string& name, absl::Duration wait) {
  const absl::Time deadline = absl::Now() + wait;
  std::unique_lock<std::mutex> lock(mu_);
  auto it = std::find_if(children_.begin(), children_.end(), [&](const Child& c) { return c.name == name; });
  if (it == children_.end()) return "";
  const size_t i = it - children_.begin();
  // Until it has exited and its last lines are read, or the wait is over.
  while ((!ReapLocked(children_[i]) || children_[i].stderr_fd >= 0) && absl::Now() < deadline) {
    lock.unlock();
    absl::SleepFor(absl::Milliseconds(20));
    lock.lock();
  }
  const Child& c = children_[i];
  std::string out = c.status ? ExitText(*c.status) : "the agent process is still running";
  std::vector<std::string> lines(c.lines.begin(), c.lines.end());
  if (!c.partial.empty()) lines.push_back(c.partial);
  if (lines.empty()) {
    absl::StrAppend(&out, "; it wrote nothing on stderr");
  } else {
    absl::StrAppend(&out, "; its last lines on stderr:");
    for (const std::string& l : lines) absl::StrAppend(&out, "\n  | ", l);
  }
  return out;
}

std::optional<std::string> LocalAgents::FirstExited() {
  std::string name;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Child& c : children_) {
      if (ReapLocked(c)) {
        name = c.name;
        break;
      }
    }
  }
  if (name.empty()) return std::nullopt;
  return absl::StrCat(name, ": ", Describe(name));
}

void LocalAgents::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    bool all = true;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (Child& c : children_) all = ReapLocked(c) && all;
    }
    if (all || absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (Child& c : children_) {
    if (ReapLocked(c)) continue;
    kill(c.pid, SIGKILL);
    int status = 0;
    if (waitpid(c.pid, &status, 0) == c.pid) c.status = status;
  }
}

}  // namespace barrage::cli

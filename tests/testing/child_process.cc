#include "tests/testing/child_process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <regex>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace barrage::testutil {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How long the destructor lets a SIGTERMed child clean up before SIGKILL.
constexpr milliseconds kTermGrace{5000};
// How long output may keep trickling in after the child is gone (from
// grandchildren that still hold the pipes) before we stop reading.
constexpr milliseconds kDrainGrace{2000};

// Our environment with env_extra laid over it, as "K=V" strings.
std::vector<std::string> BuildEnv(const EnvExtra& env_extra) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string entry(*e);
    const std::string key = entry.substr(0, entry.find('='));
    if (env_extra.count(key) == 0) env.push_back(std::move(entry));
  }
  for (const auto& [key, value] : env_extra) env.push_back(absl::StrCat(key, "=", value));
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// The last part of a long output is what explains a failure.
std::string Tail(const std::string& text) {
  constexpr size_t kMax = 4000;
  if (text.size() <= kMax) return text;
  return absl::StrCat("...", text.substr(text.size() - kMax));
}

}  // namespace

std::unique_ptr<ChildProcess> ChildProcess::Start(const std::string& path,
                                                  const std::vector<std::string>& args,
                                                  const EnvExtra& env_extra) {
  return StartWithStdin(path, args, env_extra, "");
}

std::unique_ptr<ChildProcess> ChildProcess::StartWithStdin(const std::string& path,
                                                           const std::vector<std::string>& args,
                                                           const EnvExtra& env_extra,
                                                           const std::string& stdin_path) {
  std::unique_ptr<ChildProcess> child(new ChildProcess());

  // Everything the child needs is prepared before fork: after it, in a
  // multithreaded parent, only async-signal-safe calls are allowed.
  std::vector<std::string> argv_strings;
  argv_strings.push_back(path);
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<std::string> env_strings = BuildEnv(env_extra);
  std::vector<char*> argv = CStrings(argv_strings);
  std::vector<char*> envp = CStrings(env_strings);
  const std::string exec_error = absl::StrCat("ChildProcess: cannot execute ", path, "\n");

  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    perror("ChildProcess: pipe2");
    abort();  // a test machine out of descriptors: nothing sensible to do
  }
  const int in_fd =
      open(stdin_path.empty() ? "/dev/null" : stdin_path.c_str(), O_RDONLY | O_CLOEXEC);
  const pid_t parent = getpid();

  const pid_t pid = fork();
  if (pid < 0) {
    perror("ChildProcess: fork");
    abort();
  }
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the parent died before prctl
    // Signal masks and ignored signals survive exec; the test process may
    // have either (gRPC ignores SIGPIPE, barrage-target blocks SIGTERM).
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD}) signal(sig, SIG_DFL);
    if (in_fd >= 0) dup2(in_fd, 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    execve(path.c_str(), argv.data(), envp.data());
    ssize_t ignored = write(2, exec_error.data(), exec_error.size());
    (void)ignored;
    _exit(127);
  }
  setpgid(pid, pid);  // also here, so a killpg right after Start cannot miss
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (in_fd >= 0) close(in_fd);
  child->pid_ = pid;
  child->stdout_fd_ = out_pipe[0];
  child->stderr_fd_ = err_pipe[0];
  child->reader_ = std::thread([c = child.get()] { c->ReadLoop(); });
  return child;
}

void ChildProcess::ReadLoop() {
  std::array<int, 2> fds = {stdout_fd_, stderr_fd_};
  char buffer[65536];
  while (fds[0] >= 0 || fds[1] >= 0) {
    bool stop;
    {
      std::lock_guard lock(mu_);
      stop = stop_reading_;
    }
    std::array<pollfd, 2> polled{};
    for (int i = 0; i < 2; ++i) polled[i] = {fds[i], POLLIN, 0};  // fd -1 is skipped
    // A timeout, so a stop request is seen even when nothing is written.
    const int ready = poll(polled.data(), polled.size(), stop ? 0 : 50);
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) {
      if (stop) break;
      continue;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i] < 0 || polled[i].revents == 0) continue;
      const ssize_t n = read(fds[i], buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        close(fds[i]);
        fds[i] = -1;
        continue;
      }
      std::lock_guard lock(mu_);
      (i == 0 ? out_ : err_).append(buffer, static_cast<size_t>(n));
      changed_.notify_all();
    }
  }
  for (int fd : fds) {
    if (fd >= 0) close(fd);
  }
  std::lock_guard lock(mu_);
  streams_closed_ = true;
  changed_.notify_all();
}

absl::StatusOr<std::string> ChildProcess::WaitForLine(const std::string& regex,
                                                      milliseconds timeout) {
  const std::regex pattern(regex, std::regex::ECMAScript);
  const Clock::time_point deadline = Clock::now() + timeout;
  // Complete lines already examined, per stream; output only grows.
  size_t scanned[2] = {0, 0};
  std::unique_lock lock(mu_);
  while (true) {
    const std::string* texts[2] = {&out_, &err_};
    for (int i = 0; i < 2; ++i) {
      const std::string& text = *texts[i];
      size_t end;
      while ((end = text.find('\n', scanned[i])) != std::string::npos) {
        std::string line = text.substr(scanned[i], end - scanned[i]);
        scanned[i] = end + 1;
        if (std::regex_search(line, pattern)) return line;
      }
    }
    const std::string printed =
        absl::StrCat("; stdout: \"", Tail(out_), "\"; stderr: \"", Tail(err_), "\"");
    if (streams_closed_) {
      return absl::FailedPreconditionError(
          absl::StrCat("pid ", pid_, " closed its output without a line matching /", regex, "/",
                       printed));
    }
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout && Clock::now() >= deadline) {
      // One last look: output may have arrived with the timeout.
      bool more = false;
      for (int i = 0; i < 2; ++i) more = more || texts[i]->find('\n', scanned[i]) != std::string::npos;
      if (more) continue;
      return absl::DeadlineExceededError(
          absl::StrCat("no line matching /", regex, "/ from pid ", pid_, " within ",
                       timeout.count(), " ms", printed));
    }
  }
}

absl::StatusOr<std::string> ChildProcess::WaitForAddress(milliseconds timeout) {
  static const std::regex kAddress(R"(listening on (\S+))");
  absl::StatusOr<std::string> line = WaitForLine(R"(listening on \S+)", timeout);
  if (!line.ok()) return line.status();
  std::smatch match;
  std::regex_search(*line, match, kAddress);
  return match[1].str();
}

void ChildProcess::Signal(int sig) {
  if (exit_code_.has_value()) return;
  kill(pid_, sig);
}

bool ChildProcess::TryReap(int options) {
  if (exit_code_.has_value()) return true;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, options);
  } while (r < 0 && errno == EINTR);
  if (r != pid_) return false;
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return true;
}

int ChildProcess::Wait(milliseconds timeout) {
  // Polling keeps this free of SIGCHLD handlers, which would be global to the
  // test process; the step grows to 10 ms, small beside any timeout we use.
  const Clock::time_point deadline = Clock::now() + timeout;
  milliseconds step{1};
  while (!TryReap(WNOHANG)) {
    if (Clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(step);
    step = std::min(step * 2, milliseconds{10});
  }
  return *exit_code_;
}

bool ChildProcess::Running() { return !TryReap(WNOHANG); }

std::string ChildProcess::stdout_text() const {
  std::lock_guard lock(mu_);
  return out_;
}

std::string ChildProcess::stderr_text() const {
  std::lock_guard lock(mu_);
  return err_;
}

void ChildProcess::Finish() {
  if (finished_) return;
  finished_ = true;
  // Grandchildren (agents started by barrage, say) die with the group.
  killpg(pid_, SIGKILL);
  {
    std::unique_lock lock(mu_);
    changed_.wait_for(lock, kDrainGrace, [this] { return streams_closed_; });
    stop_reading_ = true;
  }
  reader_.join();
}

ChildProcess::~ChildProcess() {
  if (!exit_code_.has_value()) {
    kill(pid_, SIGTERM);
    if (Wait(kTermGrace) < 0) {
      killpg(pid_, SIGKILL);
      TryReap(0);
    }
  }
  Finish();
}

RunResult Run(const std::string& path, const std::vector<std::string>& args,
              milliseconds timeout, const EnvExtra& env_extra, const std::string& stdin_text) {
  // stdin comes from a file, not a pipe: no writer thread, and a child that
  // never reads its input cannot block us.
  std::string stdin_path;
  if (!stdin_text.empty()) {
    const char* tmp = getenv("TMPDIR");
    stdin_path = absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/barrage_stdin_XXXXXX");
    const int fd = mkstemp(stdin_path.data());
    if (fd >= 0) {
      size_t written = 0;
      while (written < stdin_text.size()) {
        const ssize_t n = write(fd, stdin_text.data() + written, stdin_text.size() - written);
        if (n <= 0) break;
        written += static_cast<size_t>(n);
      }
      close(fd);
    }
  }
  std::unique_ptr<ChildProcess> child =
      ChildProcess::StartWithStdin(path, args, env_extra, stdin_path);
  RunResult result;
  result.exit_code = child->Wait(timeout);
  if (result.exit_code < 0) {
    result.timed_out = true;
    killpg(child->pid_, SIGKILL);
    child->TryReap(0);
  }
  child->Finish();
  result.stdout_text = child->stdout_text();
  result.stderr_text = child->stderr_text();
  if (!stdin_path.empty()) unlink(stdin_path.c_str());
  return result;
}

}  // namespace barrage::testutil

// barrage-agent: dials a controller, runs its share of each test, and waits
// for the next one (or exits after one with --once, for Kubernetes Jobs).
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <thread>
#include <mutex>
#include <csignal>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/session.h"
#include "agent/worker_pool.h"
#include "common/duration.h"
#include "common/log.h"
#include "common/metrics/prometheus_exporter.h"

namespace {

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Exit codes of barrage-agent (README.md, "Distributed runs").
constexpr int kExitRefused = 3;      // wrong token, protocol version; or not needed (--once)
constexpr int kExitLost = 4;         // the controller went away during the test (--once)
constexpr int kExitJoinTimeout = 5;  // --once: no controller accepted it within --join-timeout

// SIGTERM (Kubernetes' eviction) and SIGINT: the first one ends the session
// gracefully (a running test's VUs interrupted, the last delta and Done
// sent), the second at once. Handled by sigwait on a thread of its own, so
// nothing runs in signal context. Must be called before any thread starts:
// they inherit the mask.
void HandleStopSignals(barrage::agent::SessionInterrupt& interrupt) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set, &interrupt] {
    int count = 0;
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (++count > 1) _exit(128 + sig);
      const std::string name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
      barrage::Log(barrage::Severity::kWarning,
                   absl::StrCat("stopping gracefully (", name, "): a running test's VUs are interrupted and its last "
                                "metrics go to the controller; send it again to stop at once"));
      interrupt.Request(absl::StrCat("received ", name));
    }
  }).detach();
}

// --parent-fd: the read end of a pipe whose write end only the controller
// that started this agent holds (barrage run --agents). When that process
// ends, however it ends (kill -9 included), the pipe reports end of file:
// this agent then ends too, a test under way or not, so that no local
// agent outlives its controller.
void ExitWithParent(int fd) {
  std::thread([fd] {
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, -1) < 0) continue;
      char byte;
      if (read(fd, &byte, 1) <= 0) break;  // end of file (or the fd is bad): the parent is gone
    }
    barrage::Log(barrage::Severity::kError, "the controller process that started this agent is gone; exiting");
    _exit(kExitLost);
  }).detach();
}

}  // namespace

int main(int argc, char** argv) {
  barrage::agent::SessionInterrupt interrupt;
  HandleStopSignals(interrupt);              // before any thread starts
  barrage::agent::ConfigureProcessForVus();  // before any gRPC object
  barrage::RouteGrpcLogs();
  CLI::App app{"barrage-agent: runs the VUs of a Barrage test for a controller", "barrage-agent"};
  std::string controller;
  std::string name;
  bool once = false;
  bool verbose = false;
  std::string token_file, tls_ca, tls_cert, tls_key;
  barrage::agent::SessionOptions options;
  app.add_option("--controller", controller, "the controller's control address, HOST:PORT")->required();
  app.add_option("--name", name, "this agent's name (default: the host name)");
  app.add_flag("--once", once, "exit after one test");
  std::string join_timeout = "5m";
  app.add_option("--join-timeout", join_timeout,
                 "with --once: give up (exit 5) when no controller accepted this agent within this time (default 5m)");
  int parent_fd = -1;
  // For barrage run --agents: see ExitWithParent.
  app.add_option("--parent-fd", parent_fd)->group("");
  app.add_option("--token-file", token_file, "a file holding the shared token");
  app.add_option("--capacity", options.capacity, "relative share of the load, in (0, 1000] (default 1)");
  app.add_option("--threads", options.threads, "VU worker threads (default: the number of cores)");
  app.add_option("--tls-ca", tls_ca, "CA certificate (PEM) to verify the controller");
  app.add_option("--tls-cert", tls_cert, "client certificate (PEM) for mutual TLS");
  app.add_option("--tls-key", tls_key, "client key (PEM) for mutual TLS");
  std::string prometheus;
  app.add_option("--prometheus", prometheus, "serve this agent's own metrics at http://ADDR/metrics (debugging)");
  app.add_option("--max-archive-bytes", options.max_archive_bytes, "refuse test archives larger than this (default 64 MiB)");
  app.add_flag("-v,--verbose", verbose, "debug output");
  // For tests of the version check: claims another protocol version.
  app.add_option("--protocol-version", options.protocol_version)->group("");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  barrage::ConfigureLog({verbose, isatty(STDERR_FILENO) != 0, false});
  if (parent_fd >= 0) ExitWithParent(parent_fd);
  if (!(options.capacity > 0 && options.capacity <= 1000)) {
    barrage::Log(barrage::Severity::kError,
                 absl::StrCat("--capacity: expected a relative weight in (0, 1000], got ", options.capacity));
    return 2;
  }
  absl::StatusOr<absl::Duration> join_limit = barrage::ParseDuration(join_timeout);
  if (!join_limit.ok() || *join_limit <= absl::ZeroDuration()) {
    barrage::Log(barrage::Severity::kError,
                 absl::StrCat("--join-timeout: expected a duration like 5m, got '", join_timeout, "'"));
    return 2;
  }
  if (once) options.join_deadline = absl::Now() + *join_limit;
  options.interrupt = &interrupt;
  if (name.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    name = host;
  }
  options.name = name;
  if (!token_file.empty()) {
    std::optional<std::string> token = ReadFile(token_file);
    if (!token) {
      barrage::Log(barrage::Severity::kError, absl::StrCat("--token-file: cannot read ", token_file));
      return 2;
    }
    options.token = std::string(absl::StripAsciiWhitespace(*token));
  } else if (const char* token = getenv("BARRAGE_AGENT_TOKEN"); token != nullptr) {
    // How barrage run --agents hands its local agents their per-run token:
    // a process's environment is readable by its own user only, its
    // command line by everyone. Not left for anything this process starts.
    options.token = token;
    unsetenv("BARRAGE_AGENT_TOKEN");
  }
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!tls_ca.empty() || !tls_cert.empty()) {
    grpc::SslCredentialsOptions ssl;
    for (auto [flag, path, out] : {std::tuple{"--tls-ca", &tls_ca, &ssl.pem_root_certs},
                                   std::tuple{"--tls-cert", &tls_cert, &ssl.pem_cert_chain},
                                   std::tuple{"--tls-key", &tls_key, &ssl.pem_private_key}}) {
      if (path->empty()) continue;
      std::optional<std::string> pem = ReadFile(*path);
      if (!pem) {
        barrage::Log(barrage::Severity::kError, absl::StrCat(flag, ": cannot read ", *path));
        return 2;
      }
      *out = *pem;
    }
    creds = grpc::SslCredentials(ssl);
  }
  signal(SIGPIPE, SIG_IGN);
  // This agent's own view, summed over its tests: for debugging an agent;
  // the controller's endpoint has the whole test.
  barrage::metrics::MetricStore local_metrics;
  std::mutex local_mu;
  std::atomic<bool> in_test{false};
  std::unique_ptr<barrage::metrics::PrometheusExporter> exporter;
  if (!prometheus.empty()) {
    barrage::metrics::ExporterConfig ec;
    ec.address = prometheus;
    auto started = barrage::metrics::PrometheusExporter::Start(
        ec,
        [&](const std::function<void(barrage::metrics::MetricStore&)>& fn) {
          std::lock_guard<std::mutex> lock(local_mu);
          fn(local_metrics);
        },
        [&] {
          barrage::metrics::RunState st;
          st.agents_connected = in_test ? 1 : 0;
          st.phase = in_test ? "running" : "init";
          return st;
        });
    if (!started.ok()) {
      barrage::Log(barrage::Severity::kError, started.status().message());
      return 2;
    }
    exporter = *std::move(started);
    barrage::Log(barrage::Severity::kInfo, absl::StrCat("Prometheus metrics on http://", exporter->address(), "/metrics"));
    options.local_metrics = &local_metrics;
    options.local_metrics_mu = &local_mu;
  }
  grpc::ChannelArguments args;
  // Keepalive: a controller that vanishes without closing the connection is
  // noticed within seconds, and the VUs stop.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 2000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 3000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 64 << 20);
  absl::Duration backoff = absl::Milliseconds(250);
  std::string last_wait_message;
  bool joined_once = false;
  auto give_up = [&] {
    barrage::Log(barrage::Severity::kError,
                 absl::StrCat("gave up: no controller at ", controller, " accepted this agent within ",
                              barrage::FormatGoDuration(*join_limit), " (--join-timeout)"));
    return kExitJoinTimeout;
  };
  // Sleeps between attempts, cut short by SIGTERM.
  auto wait = [&](absl::Duration d) {
    const absl::Time until = absl::Now() + d;
    while (absl::Now() < until && !interrupt.requested()) absl::SleepFor(absl::Milliseconds(50));
  };
  for (;;) {
    if (auto why = interrupt.requested()) {
      barrage::Log(barrage::Severity::kInfo, absl::StrCat("stopped (", *why, ")"));
      return 0;
    }
    if (once && !joined_once && options.join_deadline && absl::Now() > *options.join_deadline) return give_up();
    auto channel = grpc::CreateCustomChannel(controller, creds, args);
    in_test = true;
    absl::Status st = barrage::agent::RunSession(channel, options);
    in_test = false;
    if (st.ok()) {
      backoff = absl::Milliseconds(250);
      last_wait_message.clear();
      joined_once = true;
      if (once) return 0;
      continue;
    }
    if (st.code() == absl::StatusCode::kCancelled) {  // SIGTERM: what there was to send is sent
      barrage::Log(barrage::Severity::kInfo, st.message());
      return 0;
    }
    if (st.code() == absl::StatusCode::kDeadlineExceeded) return give_up();
    if (st.code() == absl::StatusCode::kPermissionDenied) {  // refused: retrying would not help
      barrage::Log(barrage::Severity::kError, st.message());
      return kExitRefused;
    }
    if (st.code() == absl::StatusCode::kResourceExhausted) {  // not needed now (full, or over)
      barrage::Log(barrage::Severity::kWarning, st.message());
      if (once) return kExitRefused;
      wait(absl::Seconds(2));
      continue;
    }
    const bool lost = st.message().find("lost the controller") != std::string::npos;
    if (lost) {
      barrage::Log(barrage::Severity::kError, st.message());
      if (once) return kExitLost;
    } else if (st.message() != last_wait_message) {
      // Not there yet (or a TLS problem): said once per distinct reason, then retried.
      last_wait_message = std::string(st.message());
      barrage::Log(barrage::Severity::kWarning, absl::StrCat("waiting for the controller at ", controller, ": ", st.message()));
    }
    wait(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

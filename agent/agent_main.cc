// barrage-agent: dials a controller, runs its share of each test, and waits
// for the next one (or exits after one with --once, for Kubernetes Jobs).
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
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

}  // namespace

int main(int argc, char** argv) {
  barrage::agent::ConfigureProcessForVus();  // before any gRPC object
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
  app.add_option("--token-file", token_file, "a file holding the shared token");
  app.add_option("--capacity", options.capacity, "relative share of the load (default 1)")->check(CLI::PositiveNumber);
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
  for (;;) {
    auto channel = grpc::CreateCustomChannel(controller, creds, args);
    in_test = true;
    absl::Status st = barrage::agent::RunSession(channel, options);
    in_test = false;
    if (st.ok()) {
      backoff = absl::Milliseconds(250);
      last_wait_message.clear();
      if (once) return 0;
      continue;
    }
    if (st.code() == absl::StatusCode::kPermissionDenied) {  // refused: retrying would not help
      barrage::Log(barrage::Severity::kError, st.message());
      return 3;
    }
    if (st.code() == absl::StatusCode::kResourceExhausted) {  // not needed now (full, or over)
      barrage::Log(barrage::Severity::kWarning, st.message());
      if (once) return 3;
      absl::SleepFor(absl::Seconds(2));
      continue;
    }
    const bool lost = st.message().find("lost the controller") != std::string::npos;
    if (lost) {
      barrage::Log(barrage::Severity::kError, st.message());
      if (once) return 4;
    } else if (st.message() != last_wait_message) {
      // Not there yet (or a TLS problem): said once per distinct reason, then retried.
      last_wait_message = std::string(st.message());
      barrage::Log(barrage::Severity::kWarning, absl::StrCat("waiting for the controller at ", controller, ": ", st.message()));
    }
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

#include "tests/target/target_main.h"

#include <signal.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tests/target/target_options.h"
#include "tests/target/target_server.h"

namespace barrage::target {

int Main(int argc, char** argv) {
  absl::StatusOr<TargetOptions> options = ParseTargetFlags(std::vector<std::string>(argv, argv + argc));
  if (!options.ok()) {
    if (absl::IsCancelled(options.status())) {  // --help
      std::cout << options.status().message();
      return 0;
    }
    std::cerr << "barrage-target: " << options.status().message() << "\n"
              << "Run with --help for more information.\n";
    return 2;
  }

  // Block the stop signals before gRPC starts its threads, so they inherit
  // the mask and the signal is taken only by sigwait below, in a normal
  // thread where shutting down is allowed.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  absl::StatusOr<std::unique_ptr<TargetServer>> server = TargetServer::Start(*options);
  if (!server.ok()) {
    std::cerr << "barrage-target: " << server.status().message() << "\n";
    return 1;
  }
  // The mode goes to stderr: stdout is exactly one line, the ready line,
  // which tests and scripts read to its end as the address.
  std::cerr << "barrage-target mode: " << DescribeMode(*options) << std::endl;
  // Tests and scripts wait for exactly this line (tests/testing's WaitForAddress).
  std::cout << "barrage-target listening on " << (*server)->address() << std::endl;

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  (*server)->Shutdown();
  return 0;
}

}  // namespace barrage::target

#include "controller/cli/signals.h"

#include <unistd.h>

#include <atomic>
#include <csignal>

#include "controller/cli/exit_codes.h"

namespace barrage::cli {
namespace {

std::atomic<int> g_signals{0};

void OnSignal(int) {
  if (g_signals.fetch_add(1) >= 1) _exit(kExitExternalAbort);  // a second Ctrl-C: at once
}

}  // namespace

void InstallStopSignalHandlers() {
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
}

int StopSignalsReceived() { return g_signals.load(); }

}  // namespace barrage::cli

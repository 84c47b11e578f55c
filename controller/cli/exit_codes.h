// k6's exit codes (spec §4.2); only controller/cli/ maps outcomes to them.
#ifndef BARRAGE_CONTROLLER_CLI_EXIT_CODES_H_
#define BARRAGE_CONTROLLER_CLI_EXIT_CODES_H_

namespace barrage::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitThresholdsFailed = 99,
  kExitSetupTimeout = 100,
  kExitTeardownTimeout = 101,
  kExitInvalidConfig = 104,
  kExitExternalAbort = 105,
  kExitScriptException = 107,
  kExitScriptAborted = 108,
  kExitInternal = 109,
  kExitTestFailed = 110,
  // Barrage's own (k6 has no agents): an agent was lost during the run, or
  // fewer agents than expected joined. The metrics already sent are kept.
  kExitAgentLost = 111,
  // Barrage's own: data were dropped at a limit (new series beyond the
  // controller's 100,000, or tag sets over 64 KiB). Every series that was
  // kept is exact; the summary says what was dropped.
  kExitDataDropped = 112,
};

}  // namespace barrage::cli

#endif  // BARRAGE_CONTROLLER_CLI_EXIT_CODES_H_

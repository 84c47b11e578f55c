// Ctrl-C and SIGTERM during `barrage run`, as k6 handles them: the first
// signal asks for a graceful stop (teardown and the summary still run), a
// second one exits at once with 105.
#ifndef BARRAGE_CONTROLLER_CLI_SIGNALS_H_
#define BARRAGE_CONTROLLER_CLI_SIGNALS_H_

namespace barrage::cli {

// Installs the SIGINT/SIGTERM handlers; from then on every signal is
// counted, and the second one ends the process with kExitExternalAbort.
void InstallStopSignalHandlers();

// How many stop signals arrived since InstallStopSignalHandlers().
// Callers compare it with the count they last saw.
int StopSignalsReceived();

}  // namespace barrage::cli

#endif  // BARRAGE_CONTROLLER_CLI_SIGNALS_H_

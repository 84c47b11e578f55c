// The `barrage` command line: flags to options, the run modes, exit codes.
// The one place that wires the agent side (embedded mode) and the
// controller together (STYLE.md §1).
#ifndef BARRAGE_CONTROLLER_CLI_CLI_H_
#define BARRAGE_CONTROLLER_CLI_CLI_H_

namespace barrage::cli {

int Main(int argc, char** argv);

}  // namespace barrage::cli

#endif  // BARRAGE_CONTROLLER_CLI_CLI_H_

// barrage-target's whole program, so main.cc stays one line.
#ifndef BARRAGE_TESTS_TARGET_TARGET_MAIN_H_
#define BARRAGE_TESTS_TARGET_TARGET_MAIN_H_

namespace barrage::target {

// Parses flags, starts the server, prints "barrage-target mode: <mode>"
// (DescribeMode) on stderr, then "barrage-target listening on <host>:<port>"
// on stdout once ready, and serves until SIGTERM or SIGINT. Returns the exit
// code: 0 after a clean shutdown or --help, 2 for bad flags or unreadable TLS
// files, 1 when it cannot listen.
int Main(int argc, char** argv);

}  // namespace barrage::target

#endif  // BARRAGE_TESTS_TARGET_TARGET_MAIN_H_

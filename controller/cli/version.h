// Barrage's version: `barrage version`, archives, the control plane's hello.
#ifndef BARRAGE_CONTROLLER_CLI_VERSION_H_
#define BARRAGE_CONTROLLER_CLI_VERSION_H_

namespace barrage::cli {

inline constexpr char kVersion[] = "0.1.0";

}  // namespace barrage::cli

#endif  // BARRAGE_CONTROLLER_CLI_VERSION_H_

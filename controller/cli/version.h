// Barrage's version as the CLI names it (common/version.h holds it).
#ifndef BARRAGE_CONTROLLER_CLI_VERSION_H_
#define BARRAGE_CONTROLLER_CLI_VERSION_H_

#include "common/version.h"

namespace barrage::cli {

inline constexpr const char* kVersion = kBarrageVersion;

}  // namespace barrage::cli

#endif  // BARRAGE_CONTROLLER_CLI_VERSION_H_

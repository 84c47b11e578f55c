// Barrage's version, for both sides: `barrage version`, archives, the
// control plane's hello and the default user agent of target connections.
#ifndef BARRAGE_COMMON_VERSION_H_
#define BARRAGE_COMMON_VERSION_H_

namespace barrage {

inline constexpr char kBarrageVersion[] = "0.1.0";

}  // namespace barrage

#endif  // BARRAGE_COMMON_VERSION_H_

// Status propagation helpers. Debian's abseil (20220623) predates
// ABSL_RETURN_IF_ERROR, so we carry our own two macros. Each evaluates its
// expression exactly once.
#ifndef BARRAGE_COMMON_STATUS_MACROS_H_
#define BARRAGE_COMMON_STATUS_MACROS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

#define BARRAGE_RETURN_IF_ERROR(expr)                               \
  do {                                                              \
    if (::absl::Status barrage_st = (expr); !barrage_st.ok()) {     \
      return barrage_st;                                            \
    }                                                               \
  } while (false)
#define BARRAGE_CONCAT_(a, b) a##b
#define BARRAGE_CONCAT(a, b) BARRAGE_CONCAT_(a, b)
#define BARRAGE_ASSIGN_OR_RETURN(lhs, rexpr) \
  BARRAGE_ASSIGN_OR_RETURN_(BARRAGE_CONCAT(barrage_or_, __LINE__), lhs, rexpr)
#define BARRAGE_ASSIGN_OR_RETURN_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                              \
  if (!tmp.ok()) return std::move(tmp).status();   \
  lhs = *std::move(tmp)

namespace barrage {

// Same code, message "<where>: <message>"; an ok status passes through.
absl::Status Annotate(const absl::Status& status, absl::string_view where);

}  // namespace barrage

#endif  // BARRAGE_COMMON_STATUS_MACROS_H_

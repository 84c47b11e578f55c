#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace barrage {

absl::Status Annotate(const absl::Status& status, absl::string_view where) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(where, ": ", status.message()));
}

}  // namespace barrage

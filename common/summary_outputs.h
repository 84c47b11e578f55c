// handleSummary()'s outputs travel from the agent that ran it to the
// controller as JSON (LifecycleResult.data_json), where an ArrayBuffer would
// become {}: the agent sends each binary value as an object with this one
// key and its bytes in base64 (agent/js/runtime.cc), and the controller
// writes the bytes (controller/cli/report.cc).
#ifndef BARRAGE_COMMON_SUMMARY_OUTPUTS_H_
#define BARRAGE_COMMON_SUMMARY_OUTPUTS_H_

namespace barrage {

inline constexpr char kSummaryBytesKey[] = "__barrage_bytes_base64";

}  // namespace barrage

#endif  // BARRAGE_COMMON_SUMMARY_OUTPUTS_H_

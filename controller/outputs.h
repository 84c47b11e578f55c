// `--out json=FILE` and `--out csv=FILE` (spec §4.6): k6's JSON lines and
// CSV layouts. Points are per-interval aggregates of the merged deltas, not
// raw samples (README says so): one point per series per interval, with the
// interval's sum for counters, last value for gauges, fraction of non-zero
// samples for rates and mean for trends; the JSON point also carries the
// aggregate (count, sum, min, max) in "aggregate".
#ifndef BARRAGE_CONTROLLER_OUTPUTS_H_
#define BARRAGE_CONTROLLER_OUTPUTS_H_

#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/metrics/metric_store.h"
#include "common/output_file.h"

namespace barrage::controller {

class Output {
 public:
  // spec: "json=FILE" or "csv=FILE". The file is created (truncated) now;
  // an unknown kind or an unwritable file is an error naming it.
  static absl::StatusOr<std::unique_ptr<Output>> Open(const std::string& spec);

  // Writes one interval's points, stamped `at`, and flushes them: a full
  // disk shows at the interval it happens, naming the file and the reason.
  // After a failure the output is given up: later calls do nothing.
  absl::Status Write(const metrics::MetricStore& interval, absl::Time at);
  absl::Status Close();

 private:
  enum class Kind { kJson, kCsv };
  Output(Kind kind, std::string path) : kind_(kind), path_(std::move(path)) {}
  Kind kind_;
  std::string path_;
  std::unique_ptr<OutputFile> out_;
  std::set<std::string> described_;  // JSON: metrics whose Metric line is out
  bool failed_ = false;  // a write failed (reported once): the rest is skipped
};

}  // namespace barrage::controller

#endif  // BARRAGE_CONTROLLER_OUTPUTS_H_

// `--out json=FILE` and `--out csv=FILE` (spec §4.6): k6's JSON lines and
// CSV layouts. Points are per-interval aggregates of the merged deltas, not
// raw samples (README says so): one point per series per interval, with the
// interval's sum for counters, last value for gauges, fraction of non-zero
// samples for rates and mean for trends; the JSON point also carries the
// aggregate (count, sum, min, max) in "aggregate".
#ifndef BARRAGE_CONTROLLER_OUTPUTS_H_
#define BARRAGE_CONTROLLER_OUTPUTS_H_

#include <fstream>
#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/metrics/metric_store.h"

namespace barrage::controller {

class Output {
 public:
  // spec: "json=FILE" or "csv=FILE". The file is created (truncated) now;
  // an unknown kind or an unwritable file is an error naming it.
  static absl::StatusOr<std::unique_ptr<Output>> Open(const std::string& spec);

  // Writes one interval's points, stamped `at`.
  absl::Status Write(const metrics::MetricStore& interval, absl::Time at);
  absl::Status Close();

 private:
  enum class Kind { kJson, kCsv };
  Output(Kind kind, std::string path) : kind_(kind), path_(std::move(path)) {}
  Kind kind_;
  std::string path_;
  std::ofstream out_;
  std::set<std::string> described_;  // JSON: metrics whose Metric line is out
};

}  // namespace barrage::controller

#endif  // BARRAGE_CONTROLLER_OUTPUTS_H_

// A metrics delta comes from a peer over the control plane: MergeFromProto
// trusts none of it. Whatever it accepts must leave a store that still
// serialises and merges again without failing.
#include "barrage/v1/metrics.pb.h"
#include "common/metrics/metric_store.h"
#include "common/metrics/wire.h"
#include "tests/fuzz/fuzz_util.h"

#include <cstdio>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  barrage::v1::MetricsDelta delta;
  if (!delta.ParseFromArray(data, static_cast<int>(size))) return 0;
  barrage::metrics::MetricStore store;
  (void)store.Define({"iterations", barrage::metrics::MetricType::kCounter, barrage::metrics::ValueType::kDefault});
  (void)store.Define({"grpc_req_duration", barrage::metrics::MetricType::kTrend, barrage::metrics::ValueType::kTime});
  barrage::metrics::WireLimits limits;
  limits.max_series = 1000;
  if (!barrage::metrics::MergeFromProto(delta, store, limits, "fuzz").ok()) return 0;
  barrage::v1::MetricsDelta again;
  barrage::metrics::StoreToProto(store, &again);
  barrage::metrics::MetricStore copy;
  absl::Status st = barrage::metrics::MergeFromProto(again, copy, limits, "round trip");
  if (!st.ok()) {
    std::fprintf(stderr, "an accepted delta did not round-trip: %s\n", std::string(st.message()).c_str());
    std::abort();
  }
  return 0;
}

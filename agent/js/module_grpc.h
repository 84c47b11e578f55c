// k6/net/grpc for one VU: its clients' state. The JS surface (argument
// checks with k6's messages, Response objects) is in module_grpc.cc's
// embedded script; the natives do descriptors, conversion and the calls
// through agent/grpc.
#ifndef BARRAGE_AGENT_JS_MODULE_GRPC_H_
#define BARRAGE_AGENT_JS_MODULE_GRPC_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "agent/grpc/connection.h"
#include "agent/grpc/proto_registry.h"
#include "common/metrics/metric_store.h"

namespace barrage::agent::js {

// grpc.expectedStatuses(...) (issue 16): the status codes a script counts as
// success for grpc_req_failed, as k6's http.expectedStatuses does for HTTP:
// exact codes and inclusive {min, max} ranges (an exact code n is [n, n]).
struct ExpectedStatuses {
  std::vector<std::pair<int, int>> ranges;
  bool Match(int code) const {
    for (const auto& [lo, hi] : ranges) {
      if (lo <= code && code <= hi) return true;
    }
    return false;
  }
};

// The VU's k6/net/grpc state beyond its clients (Runtime::grpc_module()).
struct GrpcModuleState {
  // grpc.setResponseCallback(): nullptr after setResponseCallback(null),
  // which, as in k6's HTTP module, stops grpc_req_failed samples altogether.
  // The default counts only OK (0) as expected.
  std::shared_ptr<const ExpectedStatuses> response_callback =
      std::make_shared<const ExpectedStatuses>(ExpectedStatuses{{{0, 0}}});

  // The series of one call's samples, all with the same tags.
  struct CallSeries {
    explicit CallSeries(const std::string& encoded_tags)
        : duration("grpc_req_duration", encoded_tags), reqs("grpc_reqs", encoded_tags),
          failed("grpc_req_failed", encoded_tags) {}
    uint64_t tags_epoch = 0;  // Runtime::tags_epoch() when made
    metrics::SeriesRef duration, reqs, failed;
  };
  // Unary calls' series by group, address, method, status and the call's
  // own tags (module_grpc.cc RecordCall): after a call site's first call,
  // its samples build no tag set and encode nothing.
  std::unordered_map<std::string, CallSeries> call_series;

  // Open streams by their JS object (Duktape heap pointer), for
  // stream.write(), which runs once per message: the client's index and the
  // stream's id, so that write reads neither from the object. An entry goes
  // when its stream finishes, while the object is still held by async.js's
  // table of open streams, so no other object can have its address then.
  std::unordered_map<const void*, std::pair<int, int64_t>> stream_objects;
};

struct GrpcClientState {
  // Shared, immutable once loaded: every VU runs the same init code, so the
  // registries are cached process-wide by the sequence of load calls.
  std::shared_ptr<const grpc_client::ProtoRegistry> registry;
  std::string load_key;  // the cumulative load calls, the cache key
  std::shared_ptr<grpc_client::Connection> connection;
  std::string address;
  // connect's `compression`: the default of the calls and streams that do
  // not name one.
  grpc_client::Compression compression = grpc_client::Compression::kNone;
  // Open streams by id (module_grpc.cc), until they finish: close() cancels them.
  struct Stream;
  std::map<int64_t, std::shared_ptr<Stream>> streams;
};

}  // namespace barrage::agent::js

#endif  // BARRAGE_AGENT_JS_MODULE_GRPC_H_

// One VU's JavaScript world: a Duktape heap with the prelude, the k6
// modules, the globals (__ENV, __VU, __ITER, open, console) and the user's
// modules loaded from a Bundle.
//
// Two modes. Recording (the first init pass, __VU == 0, on the controller):
// modules and files come from the disk, each module through the Babel
// Transformer, and everything read is recorded into the Bundle being built.
// Bundle (every VU, setup/teardown): modules come as bytecode from a frozen
// Bundle, files from its map; the disk is never read.
//
// Owned and called by one VU coroutine; never shared between threads at the
// same time (a VU may move between calls only while suspended).
#ifndef BARRAGE_AGENT_JS_RUNTIME_H_
#define BARRAGE_AGENT_JS_RUNTIME_H_

#include <duktape.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/js/bundle.h"
#include "agent/js/duktape/heap.h"
#include "agent/js/event_loop.h"
#include "agent/js/vu_host.h"
#include "common/metrics/metric.h"
#include "common/options.h"

namespace barrage::agent::js {

class Transformer;
struct GrpcClientState;  // module_grpc.cc
struct GrpcModuleState;  // module_grpc.h

struct RuntimeConfig {
  int64_t vu_id = 0;  // __VU: 0 for the init pass, setup and teardown
  std::map<std::string, std::string> env;  // __ENV
  VuHost* host = nullptr;                  // not owned; outlives the runtime
  // Recording mode: both set. Bundle mode: bundle set.
  Transformer* transformer = nullptr;
  Bundle* recording = nullptr;
  std::shared_ptr<const Bundle> bundle;
  bool throw_on_bad_metric_value = false;  // the `throw` option
  // exec.test.options: the consolidated options as JSON (OptionsToJson).
  std::string test_options_json = "{}";
  // The consolidated options, for what the modules apply test-wide
  // (systemTags, userAgent, the TLS options). Null: k6's defaults (the
  // first init pass, which emits nothing and dials nothing).
  std::shared_ptr<const Options> options;
  // Recording mode: gets a remote module's source by its URL (an https key,
  // common/paths.h), or an error whose message says why ("not found: URL").
  // Unset: remote modules are an error. Bundle mode never fetches.
  std::function<absl::StatusOr<std::string>(const std::string& url)> fetch_module;
};

class Runtime : public HeapHooks {
 public:
  // Creates the heap and runs the init context (the main module). A script
  // error is kInvalidArgument with the JS stack (file:line:col).
  static absl::StatusOr<std::unique_ptr<Runtime>> Create(RuntimeConfig config);
  ~Runtime() override;
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Compiles bundle->modules into bundle->bytecode (once, before VUs start),
  // with the user's lines where bundle->line_maps has them.
  static absl::Status CompileBundle(Bundle& bundle);

  // JSON.stringify(exports.options), or "{}" when there is none.
  absl::StatusOr<std::string> OptionsJson();
  // Names of exported functions (default, setup, teardown, named scenario fns).
  std::vector<std::string> ExportedFunctions();

  // Calls an exported function. data_json: setup()'s result as JSON, passed
  // as the first argument (decoded once per runtime and reused), or nullopt
  // for undefined. Returns the function's result as JSON when want_result
  // (setup), else "". An exception is kInvalidArgument with its stack trace.
  absl::StatusOr<std::string> Call(const std::string& name,
                                   const std::optional<std::string>& data_json,
                                   bool want_result = false);

  void set_iteration(int64_t iteration);  // __ITER
  void set_vu_tags(metrics::TagSet tags);  // scenario tags and name
  const metrics::TagSet& vu_tags() const { return vu_tags_; }
  // exec.vu.tags: the script's live changes to the VU's tags.
  void SetVuTag(const std::string& key, std::string value);
  void DeleteVuTag(const std::string& key);
  // handleSummary(): the default summary for textSummary().
  void SetSummaryText(const std::string& plain, const std::string& color);
  // A scenario's `env`: laid over __ENV while the scenario runs; the
  // previous overlay's keys get their base values back (or go).
  void set_scenario_env(const std::map<std::string, std::string>& env);
  void set_group(std::string group) { group_ = std::move(group); }  // "::setup" etc.
  // Message bytes this VU sent and received since the last call (data_sent,
  // data_received), reset by the call.
  std::pair<int64_t, int64_t> TakeDataCounters();

  // -- for the modules (module_*.cc), called from native functions ----------
  static Runtime& From(duk_context* ctx);
  duk_context* ctx() const { return ctx_; }
  VuHost& host() const { return *config_.host; }
  const RuntimeConfig& config() const { return config_; }
  bool in_init() const { return in_init_; }
  int64_t vu_id() const { return config_.vu_id; }
  int64_t iteration() const { return iteration_; }
  const std::string& group() const { return group_; }
  // The sample's tags: the VU's tags + group + extra (extra wins).
  metrics::TagSet SampleTags(const metrics::TagSet* extra) const;
  // Whether samples carry the system tag `name` (the systemTags option,
  // spec §2.3): the places that add a system tag ask first, as k6's do;
  // the user's own tags are never filtered.
  bool system_tag(std::string_view name) const { return system_tags_.count(name) > 0; }
  // The options (k6's defaults when the config has none).
  const Options& options() const;
  // The same, encoded (EncodeTagSet), cached.
  std::string EncodeTags(const metrics::TagSet* extra) const;
  // Appends "\0key\0value" for each tag: the flat cache key of a tag set
  // (EncodeTags, SeriesFor and the gRPC module's call series use it).
  static void AppendTagsKey(std::string& key, const metrics::TagSet& tags);
  void EmitSample(const std::string& metric, double value, const metrics::TagSet* extra);
  // The series of `metric` with SampleTags(extra), kept per VU, so that
  // EmitSample encodes a tag set once, not per sample. Valid until the next
  // call.
  metrics::SeriesRef& SeriesFor(const std::string& metric, const metrics::TagSet* extra);
  // Changes (to a value no runtime had before) whenever the VU's tags do:
  // call sites that keep series (metrics::SeriesRef) built from
  // SampleTags() compare it; the group is theirs to compare.
  uint64_t tags_epoch() const { return tags_epoch_; }
  void AddData(int64_t sent, int64_t received) { data_sent_ += sent; data_received_ += received; }
  // Reads a file for open() or client.load(): the disk (recorded) in
  // recording mode, the bundle otherwise. abs_path must be absolute.
  absl::StatusOr<std::string> ReadFile(const std::string& abs_path);
  // The directory of the main script: the base for client.load().
  std::string MainDir() const;
  // k6/data: the run's SharedArrays (the bundle's store on VUs, a private
  // one in the init pass), and the ones this VU holds, by id.
  SharedArrayStore& shared_arrays();
  int HoldSharedArray(std::shared_ptr<const SharedArrayData> array);
  const SharedArrayData* SharedArrayAt(int id) const;
  // The directory of the module whose top level is running (the innermost
  // import in progress), or MainDir(): the base for open(), as in k6.
  std::string CurrentModuleDir() const;
  std::vector<std::unique_ptr<GrpcClientState>>& grpc_clients() { return grpc_clients_; }
  // k6/net/grpc's per-VU settings (module_grpc.cc creates them on first use).
  std::shared_ptr<GrpcModuleState>& grpc_module() { return grpc_module_; }
  const std::map<std::string, metrics::MetricDef>& metric_defs() const { return metric_defs_; }
  EventLoop& event_loop() { return loop_; }
  // Timers of setTimeout/setInterval (module_timers in runtime.cc).
  struct TimerOp;
  std::map<int64_t, std::shared_ptr<TimerOp>>& timers() { return timers_; }
  void set_promises_loaded() { promises_loaded_ = true; }
  // The embedded libraries loaded into this heap (runtime.cc, kLibraries),
  // one bit each: each is loaded once, on first use.
  uint32_t& libraries_loaded() { return libraries_loaded_; }
  // Whether the library of that name ("console", "polyfills", ...) is.
  bool LibraryLoaded(std::string_view name) const;
  absl::Status DefineMetric(const metrics::MetricDef& def);

  // HeapHooks: while the script's code runs (init, an exported function,
  // the event loop's callbacks) and the VU context has ended, the script is
  // stopped wherever it is, busy loops included.
  bool ShouldInterrupt() const override { return script_running_ && config_.host->Interrupted(); }

 private:
  explicit Runtime(RuntimeConfig config);
  absl::Status Init();
  // Pushes module.exports of the module at abs_path (loading it once).
  friend duk_ret_t NativeRequire(duk_context* ctx);
  // Runs the event loop after a call into the script (spec §1.14).
  absl::Status RunEventLoop(absl::Status first);
  absl::Status DrainEventLoop(absl::Status first);
  // A module's code by its key (a clean absolute path or an https URL):
  // its bytecode, or its source and line map (nullptr: none); specifier is
  // what the script wrote, for errors.
  absl::Status LoadModuleCode(const std::string& key, const std::string& specifier,
                              std::string* bytecode_or_empty, std::string* source, const LineMap** lines);

  RuntimeConfig config_;
  duk_context* ctx_ = nullptr;
  EventLoop loop_;
  std::map<int64_t, std::shared_ptr<TimerOp>> timers_;
  bool promises_loaded_ = false;
  uint32_t libraries_loaded_ = 0;
  bool in_init_ = true;
  bool script_running_ = false;  // see ShouldInterrupt()
  int64_t iteration_ = 0;
  metrics::TagSet vu_tags_;
  std::string group_;
  int64_t data_sent_ = 0;
  int64_t data_received_ = 0;
  std::map<std::string, metrics::MetricDef> metric_defs_;
  std::vector<std::unique_ptr<GrpcClientState>> grpc_clients_;
  std::shared_ptr<GrpcModuleState> grpc_module_;
  bool setup_data_decoded_ = false;
  std::map<std::string, std::string> scenario_env_;
  std::set<std::string, std::less<>> system_tags_;
  // Directories of the modules whose top level is running, innermost last.
  std::vector<std::string> module_dirs_;
  std::unique_ptr<SharedArrayStore> own_shared_arrays_;  // recording mode
  std::vector<std::shared_ptr<const SharedArrayData>> shared_arrays_held_;
  // Encoded tag sets by group and extra tags (EncodeTags); cleared when
  // the VU's tags change.
  mutable std::unordered_map<std::string, std::string> encoded_cache_;
  // SeriesFor's, by metric, group and extra tags; cleared with encoded_cache_.
  std::unordered_map<std::string, metrics::SeriesRef> series_cache_;
  void TagsChanged();
  uint64_t tags_epoch_ = 0;
};

// Module installers, each in its own file; they add to the hidden __b object
// (on top of the stack) and to __b.modules.
void InstallGrpcModule(duk_context* ctx);
void InstallExecutionModule(duk_context* ctx);
// Installed on a script's first import of the module (NativeRequire).
void InstallEncodingModule(duk_context* ctx);
void InstallCryptoModule(duk_context* ctx);
void InstallDataModule(duk_context* ctx);
duk_ret_t NativeCheck(duk_context* ctx);  // module_k6.cc
// Validates a tags object (strings, numbers, booleans) into out; errors
// start with `wrap`.
absl::Status ReadMetricTags(duk_context* ctx, duk_idx_t idx, const std::string& wrap, metrics::TagSet& out);

}  // namespace barrage::agent::js

#endif  // BARRAGE_AGENT_JS_RUNTIME_H_

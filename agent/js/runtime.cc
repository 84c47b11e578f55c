#include "agent/js/runtime.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/js/bytecode_lines.h"
#include "agent/js/cesu8.h"
#include "agent/js/embedded_js.h"
#include "agent/js/module_grpc.h"
#include "agent/js/module_wrapper.h"
#include "agent/js/safe_call.h"
#include "agent/js/transform.h"
#include "agent/js/values.h"
#include "common/duration.h"
#include "common/log.h"
#include "common/paths.h"
#include "common/status_macros.h"

namespace barrage::agent::js {
namespace {

// Allocations a VU's init may make before its first voluntary collection
// (Runtime::Init).
constexpr int kInitGcBudget = 50000;


// strerror as Go prints it (lower case): k6's file errors read
// "stat /x: no such file or directory", and users match on them.
std::string ErrnoText(int err) {
  std::string text = std::strerror(err);
  if (!text.empty() && text[0] >= 'A' && text[0] <= 'Z') text[0] = static_cast<char>(text[0] - 'A' + 'a');
  return text;
}

// Reads a local file whole. kNotFound ("stat <path>: no such file or
// directory") when it is not there, which load() takes as "try the next
// import path"; kFailedPrecondition ("read <path>: is a directory") for a
// directory; other failures name the call and the reason.
absl::StatusOr<std::string> ReadDiskFile(const std::string& path) {
  // The OS would stop at a NUL and read another file than the one named.
  if (path.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("path \"", absl::CHexEscape(path), "\" holds a NUL character"));
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    std::string text = absl::StrCat("stat ", path, ": ", ErrnoText(err));
    if (err == ENOENT || err == ENOTDIR) return absl::NotFoundError(text);
    return absl::PermissionDeniedError(text);
  }
  if (S_ISDIR(st.st_mode)) return absl::FailedPreconditionError(absl::StrCat("read ", path, ": is a directory"));
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::PermissionDeniedError(absl::StrCat("open ", path, ": ", ErrnoText(errno)));
  std::string data;
  char buf[65536];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return absl::PermissionDeniedError(absl::StrCat("read ", path, ": ", ErrnoText(err)));
    }
    data.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return data;
}

// Compiles a module's ES5 source to a wrapper function left on the stack.
// When Babel wrote the source, `lines` (else nullptr) puts the user's line
// numbers into the function (bytecode_lines.h): a dump and a load, once
// per module and process, as VUs load the bytecode made here.
absl::Status CompileModule(duk_context* ctx, const std::string& path, const std::string& source,
                           const LineMap* lines) {
  std::string wrapped = absl::StrCat(kModuleWrapperHead, source, kModuleWrapperTail);
  PushUtf8(ctx, path);  // the file name stack traces show
  if (duk_pcompile_lstring_filename(ctx, DUK_COMPILE_FUNCTION, wrapped.data(), wrapped.size()) != 0) {
    std::string text = duk_safe_to_string(ctx, -1);
    duk_pop(ctx);
    // Duktape says "SyntaxError: unterminated statement (line 4)"; people
    // (and editors) look for file:line.
    static const std::regex kLine(R"(^(.*) \(line (\d+)(, [^)]*)?\)$)");
    std::smatch m;
    if (std::regex_match(text, m, kLine)) return absl::InvalidArgumentError(absl::StrCat(path, ":", m[2].str(), ": ", m[1].str()));
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", text));
  }
  if (lines == nullptr || lines->empty()) return absl::OkStatus();
  duk_dump_function(ctx);
  duk_size_t size = 0;
  const char* data = static_cast<const char*>(duk_get_buffer(ctx, -1, &size));
  absl::StatusOr<std::string> remapped = RemapBytecodeLines(absl::string_view(data, size), *lines);
  if (!remapped.ok()) {
    // Our bug or another Duktape: the module still runs, with Babel's lines.
    barrage::Log(Severity::kWarning, absl::StrCat(path, ": stack traces show the transformed code's lines: ",
                                         remapped.status().message()));
    duk_load_function(ctx);
    return absl::OkStatus();
  }
  duk_pop(ctx);
  void* buf = duk_push_fixed_buffer(ctx, remapped->size());
  memcpy(buf, remapped->data(), remapped->size());
  duk_load_function(ctx);
  return absl::OkStatus();
}

// ---- natives on __b -----------------------------------------------------------

absl::StatusOr<int> LogImpl(duk_context* ctx, Runtime& rt) {
  std::string level = duk_safe_to_string(ctx, 0);
  LogLevel l = level == "debug"     ? LogLevel::kDebug
               : level == "warning" ? LogLevel::kWarning
               : level == "error"   ? LogLevel::kError
                                    : LogLevel::kInfo;
  const std::string text = GetUtf8(ctx, 1);
  rt.host().Log(l, text);
  return 0;
}

absl::StatusOr<int> InInitImpl(duk_context* ctx, Runtime& rt) {
  duk_push_boolean(ctx, rt.in_init());
  return 1;
}

absl::StatusOr<int> NowImpl(duk_context* ctx, Runtime&) {
  duk_push_number(ctx, absl::ToDoubleMilliseconds(absl::Now() - absl::UnixEpoch()));
  return 1;
}

absl::StatusOr<int> SleepImpl(duk_context* ctx, Runtime& rt) {
  if (rt.in_init()) return absl::InvalidArgumentError("sleep() is not supported in the init context");
  double secs = duk_get_number_default(ctx, 0, 0);
  if (secs > 0 && secs == secs) rt.host().Sleep(absl::Seconds(secs));
  return 0;
}

absl::StatusOr<int> EmitImpl(duk_context* ctx, Runtime& rt) {
  std::string name = duk_safe_to_string(ctx, 0);
  double value = duk_get_number_default(ctx, 1, 0);
  if (duk_is_object(ctx, 2)) {
    metrics::TagSet tags = ReadStringMap(ctx, 2);
    rt.EmitSample(name, value, &tags);
  } else {
    rt.EmitSample(name, value, nullptr);
  }
  return 0;
}

absl::StatusOr<int> GroupEnterImpl(duk_context* ctx, Runtime& rt) {
  std::string prev = rt.group();
  duk_push_lstring(ctx, prev.data(), prev.size());
  rt.set_group(absl::StrCat(prev, "::", GetUtf8(ctx, 0)));
  return 1;
}

absl::StatusOr<int> GroupExitImpl(duk_context* ctx, Runtime& rt) {
  std::string prev = duk_safe_to_string(ctx, 0);
  rt.EmitSample("group_duration", duk_get_number_default(ctx, 1, 0), nullptr);
  rt.set_group(prev);
  return 0;
}

absl::StatusOr<int> DefineMetricImpl(duk_context* ctx, Runtime& rt) {
  metrics::MetricDef def;
  def.name = duk_safe_to_string(ctx, 0);
  std::string type = duk_safe_to_string(ctx, 1);
  def.type = type == "counter" ? metrics::MetricType::kCounter
             : type == "gauge" ? metrics::MetricType::kGauge
             : type == "rate"  ? metrics::MetricType::kRate
                               : metrics::MetricType::kTrend;
  def.contains = duk_to_boolean(ctx, 2) ? metrics::ValueType::kTime : metrics::ValueType::kDefault;
  absl::Status st = rt.DefineMetric(def);
  if (!st.ok()) return st;
  return 0;
}

absl::StatusOr<int> ThrowOnBadValueImpl(duk_context* ctx, Runtime& rt) {
  duk_push_boolean(ctx, rt.config().throw_on_bad_metric_value);
  return 1;
}

// Math.random replacement after randomSeed(): a per-VU generator.
struct SeededRandom {
  std::mt19937_64 engine;
};
absl::StatusOr<int> RandomImpl(duk_context* ctx, Runtime&) {
  duk_push_current_function(ctx);
  duk_get_prop_string(ctx, -1, "\xff" "rng");
  auto* rng = static_cast<SeededRandom*>(duk_get_buffer(ctx, -1, nullptr));
  duk_pop_2(ctx);
  std::uniform_real_distribution<double> dist(0.0, 1.0);
  duk_push_number(ctx, dist(rng->engine));
  return 1;
}
absl::StatusOr<int> RandomSeedImpl(duk_context* ctx, Runtime&) {
  double seed = duk_get_number_default(ctx, 0, 0);
  duk_get_global_string(ctx, "Math");
  duk_push_c_function(ctx, Native<RandomImpl>, 0);
  // The generator lives in a fixed buffer owned by the function object, so
  // the heap frees it: nothing to track on the C++ side.
  void* mem = duk_push_fixed_buffer(ctx, sizeof(SeededRandom));
  new (mem) SeededRandom{std::mt19937_64(static_cast<uint64_t>(JsNumberToInt64(seed)))};
  duk_put_prop_string(ctx, -2, "\xff" "rng");
  duk_put_prop_string(ctx, -2, "random");
  duk_pop(ctx);
  return 0;
}

absl::StatusOr<int> OpenImpl(duk_context* ctx, Runtime& rt) {
  if (!rt.in_init()) {
    return absl::InvalidArgumentError(
        "The \"open()\" function is only available in the init stage (i.e. the global scope)");
  }
  // With its length: a NUL inside must be refused, not cut the name short.
  duk_size_t path_len = 0;
  const char* path_ptr = duk_is_undefined(ctx, 0) ? "" : duk_safe_to_lstring(ctx, 0, &path_len);
  const std::string path = Utf8FromJs(std::string_view(path_ptr, path_len));  // names on disk are UTF-8
  if (path.empty()) return absl::InvalidArgumentError("open() can't be used with an empty filename");
  // As in k6, relative to the module whose top level is running (the one
  // being imported), not the file the call is written in.
  const std::string base = rt.CurrentModuleDir();
  if (!IsCleanAbsolutePath(base)) {
    return absl::InvalidArgumentError(
        absl::StrCat("open() can't be used from a remote module (", base, "), path: \"", path, "\""));
  }
  BARRAGE_ASSIGN_OR_RETURN(const std::string abs, ResolveFilePath(base, path));
  absl::StatusOr<std::string> data = rt.ReadFile(abs);
  if (absl::IsFailedPrecondition(data.status())) {
    return absl::InvalidArgumentError(absl::StrCat("open() can't be used with directories, path: \"", abs, "\""));
  }
  if (!data.ok()) return data.status();
  bool binary = duk_is_string(ctx, 1) && std::string(duk_get_string(ctx, 1)) == "b";
  if (binary) {
    void* buf = duk_push_fixed_buffer(ctx, data->size());
    if (!data->empty()) memcpy(buf, data->data(), data->size());
    duk_push_buffer_object(ctx, -1, 0, data->size(), DUK_BUFOBJ_ARRAYBUFFER);
    duk_remove(ctx, -2);
  } else {
    PushUtf8(ctx, *data);  // the file's text as JS sees it (surrogate pairs)
  }
  return 1;
}

// ---- timers -------------------------------------------------------------------

}  // namespace

struct Runtime::TimerOp {
  std::unique_ptr<VuHost::Timer> handle;
  int64_t loop_id = 0;
  absl::Duration every;  // setInterval's period; zero for setTimeout
  bool repeat = false;
  bool cleared = false;
};

namespace {

void ArmTimer(Runtime& rt, int64_t id, const std::shared_ptr<Runtime::TimerOp>& op, absl::Duration after) {
  op->handle = rt.host().StartTimer(after, [&rt, id, op](bool fired) {
    // Runs on the VU's thread (its coroutine suspended); may replace or drop
    // the handle it came from (see VuHost::StartTimer).
    if (fired && !op->cleared) {
      if (op->repeat) ArmTimer(rt, id, op, op->every);  // re-armed first: the callback may clear it
      rt.event_loop().Enqueue([id](duk_context* c) {
        duk_get_global_string(c, "__b");
        duk_get_prop_string(c, -1, "timerFire");
        duk_push_number(c, static_cast<double>(id));
        duk_call(c, 1);
        duk_pop_2(c);
      });
      if (op->repeat) return;
    }
    const int64_t loop_id = op->loop_id;
    auto it = rt.timers().find(id);
    if (it != rt.timers().end() && it->second == op) rt.timers().erase(it);
    // The handle holds this callback, which holds op: break the cycle (safe:
    // the callback runs from a copy, see VuHost::StartTimer).
    op->handle.reset();
    rt.event_loop().Release(loop_id);
  });
}

absl::StatusOr<int> TimerStartImpl(duk_context* ctx, Runtime& rt) {
  const int64_t id = JsNumberToInt64(duk_get_number(ctx, 0));
  double ms = duk_get_number_default(ctx, 1, 0);
  if (!(ms > 0)) ms = 0;
  auto op = std::make_shared<Runtime::TimerOp>();
  op->repeat = duk_to_boolean(ctx, 2);
  op->every = DurationFromMillis(ms);
  op->loop_id = rt.event_loop().Register([op, id] {
    // k6's warning for each timer the loop drops (the iteration failed or
    // was interrupted), not for one the script cleared.
    if (!op->cleared) {
      barrage::Log(Severity::kWarning, absl::StrCat(op->repeat ? "setInterval " : "setTimeout ", id,
                                                    " was stopped because the VU iteration was interrupted"));
    }
    op->cleared = true;
    if (op->handle) op->handle->Cancel();
  });
  rt.timers()[id] = op;
  ArmTimer(rt, id, op, op->every);
  if (op->handle == nullptr) {
    rt.timers().erase(id);
    rt.event_loop().Release(op->loop_id);
    return absl::FailedPreconditionError("timers are not available here");
  }
  return 0;
}

absl::StatusOr<int> TimerClearImpl(duk_context* ctx, Runtime& rt) {
  auto it = rt.timers().find(JsNumberToInt64(duk_get_number(ctx, 0)));
  if (it == rt.timers().end()) return 0;
  it->second->cleared = true;
  if (it->second->handle) it->second->handle->Cancel();  // its completion releases it
  return 0;
}

// The embedded npm libraries (scripts/js) and our async.js, loaded on first
// use by the prelude.
absl::StatusOr<int> LoadLibraryImpl(duk_context* ctx, Runtime&) {
  const std::string name = duk_safe_to_string(ctx, 0);
  if (name == "promise-polyfill") {
    // It looks for the global object as `self`, `window` or `global`, none
    // of which a k6 script has: it gets `global` as a wrapper's parameter.
    static const std::string* wrapped = new std::string(
        absl::StrCat("(function (global) {", absl::string_view(PromisePolyfillSource().data(), PromisePolyfillSource().size()), "\n})(this);"));
    PushEmbeddedScript(ctx, "barrage:promise-polyfill.js", *wrapped, 0);
  } else if (name == "regenerator-runtime") {
    PushEmbeddedScript(ctx, "barrage:regenerator-runtime.js", RegeneratorRuntimeSource(), 0);
  } else if (name == "collections") {
    // Map and Set (prelude.js loads them on first use): an installer called
    // with the global object.
    static constexpr char kCollectionsJs[] =
#include "agent/js/collections_js.inc"
        ;
    PushEmbeddedScript(ctx, "barrage:collections.js", kCollectionsJs, 0);
    duk_call(ctx, 0);
    duk_push_global_object(ctx);
    duk_call(ctx, 1);
    duk_pop(ctx);
    return 0;
  } else if (name == "async") {
    // Our own installer (prelude.js loads it on first use): called with the
    // global object and __b.
    static constexpr char kAsyncJs[] =
#include "agent/js/async_js.inc"
        ;
    PushEmbeddedScript(ctx, "barrage:async.js", kAsyncJs, 0);
    duk_call(ctx, 0);
    duk_push_global_object(ctx);
    duk_get_global_string(ctx, "__b");
    duk_call(ctx, 2);
    duk_pop(ctx);
    return 0;
  } else {
    return absl::NotFoundError(absl::StrCat("no embedded library ", name));
  }
  duk_call(ctx, 0);
  duk_pop(ctx);
  return 0;
}

absl::StatusOr<int> PromisesLoadedImpl(duk_context*, Runtime& rt) {
  rt.set_promises_loaded();
  return 0;
}

}  // namespace

// require(name, dir): built-in modules by name, user modules by path or
// https URL, resolved against dir (the importing module's directory) as
// k6's loader resolves them (common/paths.h).
duk_ret_t NativeRequire(duk_context* ctx) {
  Runtime& rt = Runtime::From(ctx);
  bool failed = false;
  {
    duk_size_t name_len = 0;
    const char* name_ptr = duk_safe_to_lstring(ctx, 0, &name_len);
    // Whole (a NUL inside is refused below, not cut off), and in UTF-8:
    // module keys name files on disk and URLs.
    std::string name = Utf8FromJs(std::string_view(name_ptr, name_len));
    std::string dir = duk_safe_to_string(ctx, 1);
    // k6's jslib summary helpers are built in (nothing is fetched).
    if (absl::StartsWith(name, "https://jslib.k6.io/k6-summary/")) name = "k6-summary";
    duk_push_global_object(ctx);
    duk_get_prop_string(ctx, -1, "__b");
    duk_get_prop_string(ctx, -1, "modules");
    if (duk_get_prop_lstring(ctx, -1, name.data(), name.size())) return 1;  // a built-in module
    duk_pop(ctx);  // undefined
    // Modules installed into a heap on their first import only: VUs of
    // scripts that do not use them pay nothing for them.
    using Installer = void (*)(duk_context*);
    static const std::pair<const char*, Installer> kOnDemand[] = {
        {"k6/encoding", InstallEncodingModule}, {"k6/crypto", InstallCryptoModule}, {"k6/data", InstallDataModule},
        {"k6/execution", InstallExecutionModule}};
    for (const auto& [module, install] : kOnDemand) {
      if (name != module) continue;
      duk_dup(ctx, -2);  // __b
      install(ctx);
      duk_pop(ctx);
      if (duk_get_prop_lstring(ctx, -1, name.data(), name.size())) return 1;
      duk_pop(ctx);
    }
    duk_pop(ctx);  // modules; __b stays at -1
    absl::Status st;
    absl::StatusOr<std::string> key = absl::NotFoundError(absl::StrCat("unknown module: ", name));
    if (name != "k6" && !absl::StartsWith(name, "k6/")) key = ResolveModuleSpecifier(dir, name);
    if (!key.ok()) {
      st = key.status();
    } else {
      const std::string& abs = *key;
      duk_get_prop_string(ctx, -1, "cache");
      if (duk_get_prop_lstring(ctx, -1, abs.data(), abs.size())) {
        duk_get_prop_string(ctx, -1, "exports");
        return 1;
      }
      duk_pop(ctx);  // undefined; cache at -1
      std::string bytecode, source;
      const LineMap* lines = nullptr;
      st = rt.LoadModuleCode(abs, name, &bytecode, &source, &lines);
      if (st.ok()) {
        if (!bytecode.empty()) {
          void* buf = duk_push_fixed_buffer(ctx, bytecode.size());
          memcpy(buf, bytecode.data(), bytecode.size());
          duk_load_function(ctx);
        } else {
          st = CompileModule(ctx, abs, source, lines);
        }
      }
      if (st.ok()) {
        // [... cache fn]  module = {exports:{}}; cache[abs] = module (before
        // running it, so that circular imports see the partial exports).
        duk_push_object(ctx);
        duk_push_object(ctx);
        duk_put_prop_string(ctx, -2, "exports");
        duk_dup(ctx, -1);
        duk_put_prop_lstring(ctx, -4, abs.data(), abs.size());
        // call fn(exports, require, module, __filename, __dirname)
        duk_dup(ctx, -2);                              // fn
        duk_get_prop_string(ctx, -2, "exports");       // this: module.exports, as in k6 and Node
        duk_get_prop_string(ctx, -3, "exports");
        duk_get_global_string(ctx, "__b");
        duk_get_prop_string(ctx, -1, "makeRequire");
        duk_remove(ctx, -2);
        const std::string mod_dir = DirOf(abs);
        duk_push_lstring(ctx, mod_dir.data(), mod_dir.size());
        duk_call(ctx, 1);                              // require bound to the module's dir
        duk_dup(ctx, -5);                              // module
        PushUtf8(ctx, abs);                            // __filename
        PushUtf8(ctx, mod_dir);                        // __dirname
        rt.module_dirs_.push_back(mod_dir);  // open()'s base while its top level runs
        const duk_int_t rc = duk_pcall_method(ctx, 5);
        rt.module_dirs_.pop_back();
        if (rc != DUK_EXEC_SUCCESS) {
          // Rethrow the script's own error object: it keeps its stack.
          failed = true;
        } else {
          duk_pop(ctx);
          duk_get_prop_string(ctx, -1, "exports");
          return 1;
        }
      }
    }
    if (!failed) {
      const std::string message(st.message());
      duk_push_error_object(ctx, DUK_ERR_ERROR, "%s", message.c_str());
      failed = true;
    }
  }
  return duk_throw(ctx);
}

Runtime::Runtime(RuntimeConfig config) : config_(std::move(config)), loop_(*config_.host) {
  TagsChanged();
  for (const std::string& tag : options().SystemTags()) system_tags_.insert(tag);
}

const Options& Runtime::options() const {
  static const Options kDefaults;
  return config_.options ? *config_.options : kDefaults;
}

Runtime::~Runtime() {
  // Clients hold gRPC channels whose callbacks must be gone before the heap.
  grpc_clients_.clear();
  if (ctx_ != nullptr) duk_destroy_heap(ctx_);
}

Runtime& Runtime::From(duk_context* ctx) {
  // Every native call comes here: the heap's user data (Init gives
  // CreateHeap `this` as its hooks) is a copy of four pointers, where the
  // global stash's pointer it replaced was a property lookup (about 700
  // instructions).
  // Only a Runtime's heap has natives that call this.
  duk_memory_functions funcs;
  duk_get_memory_functions(ctx, &funcs);
  return *static_cast<Runtime*>(static_cast<HeapHooks*>(funcs.udata));
}

std::string Runtime::MainDir() const {
  const std::string& main = config_.recording ? config_.recording->main_path : config_.bundle->main_path;
  return DirOf(main);
}

SharedArrayStore& Runtime::shared_arrays() {
  // The init pass on the controller builds its own arrays and drops them
  // with the runtime: VUs build theirs once per process from the bundle.
  if (config_.bundle != nullptr) return *config_.bundle->shared_arrays;
  if (own_shared_arrays_ == nullptr) own_shared_arrays_ = std::make_unique<SharedArrayStore>();
  return *own_shared_arrays_;
}

int Runtime::HoldSharedArray(std::shared_ptr<const SharedArrayData> array) {
  shared_arrays_held_.push_back(std::move(array));
  return static_cast<int>(shared_arrays_held_.size() - 1);
}

const SharedArrayData* Runtime::SharedArrayAt(int id) const {
  if (id < 0 || static_cast<size_t>(id) >= shared_arrays_held_.size()) return nullptr;
  return shared_arrays_held_[id].get();
}

std::string Runtime::CurrentModuleDir() const {
  return module_dirs_.empty() ? MainDir() : module_dirs_.back();
}

absl::StatusOr<std::string> Runtime::ReadFile(const std::string& abs_path) {
  if (config_.recording != nullptr) {
    auto it = config_.recording->files.find(abs_path);
    if (it != config_.recording->files.end()) return it->second;
    absl::StatusOr<std::string> data = ReadDiskFile(abs_path);
    if (!data.ok()) return data.status();
    config_.recording->files[abs_path] = *data;
    return data;
  }
  auto it = config_.bundle->files.find(abs_path);
  if (it == config_.bundle->files.end()) {
    return absl::NotFoundError(absl::StrCat(
        "open() can't be used with files that weren't previously opened during initialization "
        "(__VU==0), path: \"",
        abs_path, "\""));
  }
  return it->second;
}

absl::Status Runtime::LoadModuleCode(const std::string& key, const std::string& specifier, std::string* bytecode,
                                     std::string* source, const LineMap** lines) {
  const Bundle& from = config_.recording != nullptr ? *config_.recording : *config_.bundle;
  auto lines_of = [&from, &key]() -> const LineMap* {
    auto it = from.line_maps.find(key);
    return it == from.line_maps.end() ? nullptr : &it->second;
  };
  if (config_.recording != nullptr) {
    auto it = config_.recording->modules.find(key);
    if (it != config_.recording->modules.end()) {
      *source = it->second;
      *lines = lines_of();
      return absl::OkStatus();
    }
    absl::StatusOr<std::string> raw = absl::UnknownError("");
    if (IsRemoteKey(key)) {
      // Fetched once here, on the controller, and carried by the archive:
      // agents never fetch (DESIGN.md, "Script runtime").
      raw = config_.fetch_module ? config_.fetch_module(key)
                                 : absl::UnavailableError("remote modules cannot be fetched here");
      if (!raw.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("The moduleSpecifier \"", specifier,
                                                       "\" couldn't be retrieved from the resolved url \"", key,
                                                       "\". Error : \"", raw.status().message(), "\""));
      }
    } else {
      raw = ReadDiskFile(key);
      if (absl::IsNotFound(raw.status()) || absl::IsFailedPrecondition(raw.status())) {
        return absl::NotFoundError(absl::StrCat("The moduleSpecifier \"", specifier,
                                                "\" couldn't be found on local disk. Make sure that you've "
                                                "specified the right path to the file."));
      }
      if (!raw.ok()) return raw.status();
    }
    // Babel and Duktape read source as JS strings: non-BMP characters in it
    // become surrogate pairs first, as in k6.
    absl::StatusOr<TransformedModule> es5 = config_.transformer->Transform(Utf8ToJs(*raw), key);
    if (!es5.ok()) return es5.status();
    config_.recording->modules[key] = es5->code;
    if (!es5->lines.empty()) config_.recording->line_maps[key] = std::move(es5->lines);
    *source = std::move(es5->code);
    *lines = lines_of();
    return absl::OkStatus();
  }
  auto bc = config_.bundle->bytecode.find(key);
  if (bc != config_.bundle->bytecode.end()) {
    *bytecode = bc->second;
    return absl::OkStatus();
  }
  auto src = config_.bundle->modules.find(key);
  if (src == config_.bundle->modules.end()) {
    return absl::NotFoundError(absl::StrCat("the module \"", specifier,
                                            "\" was not previously resolved during initialization (__VU==0)"));
  }
  *source = src->second;
  *lines = lines_of();
  return absl::OkStatus();
}

absl::Status Runtime::CompileBundle(Bundle& bundle) {
  duk_context* ctx = CreateHeap(nullptr);
  if (ctx == nullptr) return absl::ResourceExhaustedError("cannot create a JS heap");
  absl::Status result;
  for (const auto& [path, source] : bundle.modules) {
    auto lines = bundle.line_maps.find(path);
    result = CompileModule(ctx, path, source, lines == bundle.line_maps.end() ? nullptr : &lines->second);
    if (!result.ok()) break;
    duk_dump_function(ctx);
    duk_size_t size = 0;
    void* data = duk_get_buffer(ctx, -1, &size);
    bundle.bytecode[path].assign(static_cast<const char*>(data), size);
    duk_pop(ctx);
  }
  duk_destroy_heap(ctx);
  return result;
}

absl::StatusOr<std::unique_ptr<Runtime>> Runtime::Create(RuntimeConfig config) {
  std::unique_ptr<Runtime> rt(new Runtime(std::move(config)));
  absl::Status st = rt->Init();
  if (!st.ok()) return st;
  return rt;
}

absl::Status Runtime::DefineMetric(const metrics::MetricDef& def) {
  auto it = metric_defs_.find(def.name);
  if (it != metric_defs_.end()) {
    if (it->second == def) return absl::OkStatus();
    return absl::AlreadyExistsError(absl::StrCat(
        "metric '", def.name, "' already exists but with type ", std::string(metrics::MetricTypeName(it->second.type)),
        it->second.contains == metrics::ValueType::kTime ? ", contains time" : ""));
  }
  absl::Status st = host().DefineMetric(def);
  if (!st.ok()) return st;
  metric_defs_[def.name] = def;
  return absl::OkStatus();
}

absl::Status Runtime::Init() {
  ctx_ = CreateHeap(this);
  if (ctx_ == nullptr) return absl::ResourceExhaustedError("cannot create a JS heap");
  // A VU's init allocates some 3,000 times while it builds the prelude and
  // runs the script's init context, and its heap is compacted by a full
  // collection at the end: the voluntary collections Duktape would make on
  // the way (two or three for a small script) are work done twice. Deferred
  // for up to kInitGcBudget allocations, then the usual countdown again, so
  // an init context that makes much garbage is still collected as it goes.
  SetGcCountdown(ctx_, kInitGcBudget);

  // Built-in metrics every test has (spec §2.1, §2.2).
  using metrics::MetricType;
  using metrics::ValueType;
  for (const metrics::MetricDef& def : std::initializer_list<metrics::MetricDef>{
           {"checks", MetricType::kRate, ValueType::kDefault},
           {"data_received", MetricType::kCounter, ValueType::kData},
           {"data_sent", MetricType::kCounter, ValueType::kData},
           {"group_duration", MetricType::kTrend, ValueType::kTime},
           {"iteration_duration", MetricType::kTrend, ValueType::kTime},
           {"iterations", MetricType::kCounter, ValueType::kDefault},
           {"grpc_req_duration", MetricType::kTrend, ValueType::kTime},
           {"grpc_req_failed", MetricType::kRate, ValueType::kDefault},
           {"grpc_reqs", MetricType::kCounter, ValueType::kDefault},
           {"grpc_streams", MetricType::kCounter, ValueType::kDefault},
           {"grpc_streams_msgs_received", MetricType::kCounter, ValueType::kDefault},
           {"grpc_streams_msgs_sent", MetricType::kCounter, ValueType::kDefault}}) {
    BARRAGE_RETURN_IF_ERROR(DefineMetric(def));
  }


  // Build the globals under protected calls.
  auto globals = [this](duk_context* c) -> duk_ret_t {
    duk_push_global_object(c);
    duk_push_string(c, "__b");
    duk_push_object(c);
    duk_push_object(c);
    duk_put_prop_string(c, -2, "modules");
    duk_push_object(c);
    duk_put_prop_string(c, -2, "cache");
    PutFunction(c, -1, "log", Native<LogImpl>, 2);
    PutFunction(c, -1, "inInit", Native<InInitImpl>, 0);
    PutFunction(c, -1, "now", Native<NowImpl>, 0);
    PutFunction(c, -1, "sleep", Native<SleepImpl>, 1);
    PutFunction(c, -1, "checkNative", NativeCheck, 3);
    PutFunction(c, -1, "emit", Native<EmitImpl>, 3);
    PutFunction(c, -1, "groupEnter", Native<GroupEnterImpl>, 1);
    PutFunction(c, -1, "groupExit", Native<GroupExitImpl>, 2);
    PutFunction(c, -1, "defineMetric", Native<DefineMetricImpl>, 3);
    PutFunction(c, -1, "throwOnBadValue", Native<ThrowOnBadValueImpl>, 0);
    PutFunction(c, -1, "randomSeed", Native<RandomSeedImpl>, 1);
    PutFunction(c, -1, "require", NativeRequire, 2);
    PutFunction(c, -1, "timerStart", Native<TimerStartImpl>, 3);
    PutFunction(c, -1, "timerClear", Native<TimerClearImpl>, 1);
    PutFunction(c, -1, "loadLibrary", Native<LoadLibraryImpl>, 1);
    PutFunction(c, -1, "promisesLoaded", Native<PromisesLoadedImpl>, 0);
    // A program whose completion value is the function.
    PushEmbeddedScript(c, "barrage:require.js",
                       "(function (dir) { return function require(name) { return __b.require(name, dir); }; })", 0);
    duk_call(c, 0);
    duk_put_prop_string(c, -2, "makeRequire");
    InstallGrpcModule(c);
    // __b is hidden from for-in and Object.keys(this).
    duk_def_prop(c, -3, DUK_DEFPROP_HAVE_VALUE | DUK_DEFPROP_CLEAR_ENUMERABLE | DUK_DEFPROP_SET_WRITABLE |
                            DUK_DEFPROP_SET_CONFIGURABLE);
    // __ENV, __VU, __ITER, open
    duk_push_object(c);
    for (const auto& [k, v] : config_.env) {
      PushUtf8(c, v);
      duk_put_prop_lstring(c, -2, k.data(), k.size());
    }
    duk_put_prop_string(c, -2, "__ENV");
    duk_push_number(c, static_cast<double>(config_.vu_id));
    duk_put_prop_string(c, -2, "__VU");
    duk_push_number(c, 0);
    duk_put_prop_string(c, -2, "__ITER");
    PutFunction(c, -1, "open", Native<OpenImpl>, 2);
    duk_pop(c);
    // The prelude: polyfills and the JS halves of the modules.
    PushEmbeddedScript(c, "barrage:prelude.js", PreludeSource(), 0);
    duk_call(c, 0);
    duk_pop(c);
    // The prelude's and k6/net/grpc's functions are not constructors (the
    // ones that are have members on their prototypes and keep them): about
    // 8 KB less in every heap (tests/bench/README.md, "Idle VUs").
    DropUnusedPrototypes(c);
    return 0;
  };
  absl::Status st = SafeCall(ctx_, globals);
  if (!st.ok()) return absl::InternalError(absl::StrCat("runtime prelude: ", st.message()));

  // Run the main module: __b.exports = require(main).
  const std::string main = config_.recording ? config_.recording->main_path : config_.bundle->main_path;
  auto run_main = [&main](duk_context* c) -> duk_ret_t {
    duk_get_global_string(c, "__b");
    duk_get_prop_string(c, -1, "require");
    duk_push_lstring(c, main.data(), main.size());
    duk_push_string(c, "/");
    duk_call(c, 2);
    duk_put_prop_string(c, -2, "exports");
    duk_get_prop_string(c, -1, "nameExports");
    duk_get_prop_string(c, -2, "exports");
    duk_call(c, 1);
    duk_pop_2(c);
    return 0;
  };
  script_running_ = true;
  BARRAGE_RETURN_IF_ERROR(RunEventLoop(SafeCall(ctx_, run_main)));
  // Thousands of VUs hold a heap each: compacting the property tables left
  // over-allocated by init saves memory for the rest of the VU's life.
  duk_gc(ctx_, DUK_GC_COMPACT);
  return absl::OkStatus();
}

absl::StatusOr<std::string> Runtime::OptionsJson() {
  duk_get_global_string(ctx_, "__b");
  duk_get_prop_string(ctx_, -1, "exports");
  duk_get_prop_string(ctx_, -1, "options");
  absl::StatusOr<std::string> json = SafeJsonEncode(ctx_, -1);
  duk_pop_3(ctx_);
  if (!json.ok()) return absl::InvalidArgumentError(absl::StrCat("exported options: ", json.status().message()));
  if (json->empty()) return std::string("{}");
  return json;
}

std::vector<std::string> Runtime::ExportedFunctions() {
  std::vector<std::string> out;
  duk_get_global_string(ctx_, "__b");
  duk_get_prop_string(ctx_, -1, "exports");
  if (duk_is_object(ctx_, -1)) {
    duk_enum(ctx_, -1, DUK_ENUM_OWN_PROPERTIES_ONLY);
    while (duk_next(ctx_, -1, 1)) {
      if (duk_is_function(ctx_, -1)) out.emplace_back(duk_safe_to_string(ctx_, -2));
      duk_pop_2(ctx_);
    }
    duk_pop(ctx_);
  }
  duk_pop_2(ctx_);
  return out;
}

absl::StatusOr<std::string> Runtime::Call(const std::string& name,
                                          const std::optional<std::string>& data_json,
                                          bool want_result) {
  in_init_ = false;
  if (!setup_data_decoded_) {
    // setup()'s data is decoded once per VU, and the same object is passed
    // to every call, as k6 does.
    duk_get_global_string(ctx_, "__b");
    if (data_json.has_value() && !data_json->empty()) {
      absl::Status st = PushJson(ctx_, *data_json);
      if (!st.ok()) {
        duk_pop_2(ctx_);
        return st;
      }
    } else {
      duk_push_undefined(ctx_);
    }
    duk_put_prop_string(ctx_, -2, "setupData");
    duk_pop(ctx_);
    setup_data_decoded_ = true;
  }
  std::string result;
  bool missing = false;
  auto call = [&](duk_context* c) -> duk_ret_t {
    duk_get_global_string(c, "__b");
    duk_get_prop_string(c, -1, "exports");
    duk_get_prop_lstring(c, -1, name.data(), name.size());
    if (!duk_is_function(c, -1)) {
      missing = true;
      duk_pop_3(c);
      return 0;
    }
    duk_get_prop_string(c, -3, "setupData");
    duk_call(c, 1);
    if (want_result && !duk_is_undefined(c, -1)) {
      duk_json_encode(c, -1);
      result = GetUtf8(c, -1);
    }
    duk_pop_3(c);
    return 0;
  };
  script_running_ = true;
  absl::Status st = RunEventLoop(SafeCall(ctx_, call));
  if (!st.ok()) return st;
  if (missing) return absl::NotFoundError(absl::StrCat("exported function '", name, "' not found"));
  return result;
}

absl::Status Runtime::RunEventLoop(absl::Status first) {
  absl::Status result = DrainEventLoop(std::move(first));
  script_running_ = false;
  // Nothing is open now. After a failure or an interrupt, promise jobs,
  // unhandled rejections and the handlers of cancelled streams, timers and
  // calls may be left on the JS side: none may reach the next iteration. (A
  // loop that drained normally left nothing: no JS call for it.)
  if (result.ok() && !host().Interrupted()) return result;
  auto reset = [](duk_context* c) -> duk_ret_t {
    duk_get_global_string(c, "__b");
    duk_get_prop_string(c, -1, "resetLoop");
    duk_call(c, 0);
    duk_pop_2(c);
    return 0;
  };
  absl::Status st = SafeCall(ctx_, reset);
  return result.ok() ? st : result;
}

absl::Status Runtime::DrainEventLoop(absl::Status first) {
  // The common case, a script with no streams, timers or promises: nothing
  // to run, and no JS call per iteration for it.
  if (!promises_loaded_ && !loop_.Busy()) return first;
  auto drain = [this]() -> absl::Status {
    if (!promises_loaded_) return absl::OkStatus();
    std::string unhandled;
    auto run = [&unhandled](duk_context* c) -> duk_ret_t {
      duk_get_global_string(c, "__b");
      duk_get_prop_string(c, -1, "drainJobs");
      duk_call(c, 0);
      if (duk_is_string(c, -1)) unhandled = CleanStackTrace(GetUtf8(c, -1));
      duk_pop_2(c);
      return 0;
    };
    absl::Status st = SafeCall(ctx_, run);
    if (!st.ok()) return st;
    if (!unhandled.empty()) return absl::InvalidArgumentError(unhandled);
    return absl::OkStatus();
  };
  return loop_.Run(ctx_, std::move(first), drain);
}

void Runtime::set_iteration(int64_t iteration) {
  iteration_ = iteration;
  duk_push_global_object(ctx_);
  duk_push_number(ctx_, static_cast<double>(iteration));
  duk_put_prop_literal(ctx_, -2, "__ITER");
  duk_pop(ctx_);
}

void Runtime::set_vu_tags(metrics::TagSet tags) {
  vu_tags_ = std::move(tags);
  TagsChanged();
}

void Runtime::TagsChanged() {
  static std::atomic<uint64_t> next_epoch{1};
  tags_epoch_ = next_epoch.fetch_add(1, std::memory_order_relaxed);
  encoded_cache_.clear();
  series_cache_.clear();
}

void Runtime::SetSummaryText(const std::string& plain, const std::string& color) {
  duk_push_global_object(ctx_);
  duk_get_prop_string(ctx_, -1, "__b");
  duk_push_object(ctx_);
  duk_push_lstring(ctx_, plain.data(), plain.size());
  duk_put_prop_string(ctx_, -2, "plain");
  duk_push_lstring(ctx_, color.data(), color.size());
  duk_put_prop_string(ctx_, -2, "color");
  duk_put_prop_string(ctx_, -2, "summaryText");
  duk_pop_2(ctx_);
}

void Runtime::SetVuTag(const std::string& key, std::string value) {
  vu_tags_[key] = std::move(value);
  TagsChanged();
}

void Runtime::DeleteVuTag(const std::string& key) {
  vu_tags_.erase(key);
  TagsChanged();
}

void Runtime::set_scenario_env(const std::map<std::string, std::string>& env) {
  if (env.empty() && scenario_env_.empty()) return;
  duk_push_global_object(ctx_);
  duk_get_prop_string(ctx_, -1, "__ENV");
  for (const auto& [k, v] : scenario_env_) {
    auto base = config_.env.find(k);
    if (base != config_.env.end()) {
      duk_push_lstring(ctx_, base->second.data(), base->second.size());
      duk_put_prop_lstring(ctx_, -2, k.data(), k.size());
    } else {
      duk_del_prop_lstring(ctx_, -1, k.data(), k.size());
    }
  }
  for (const auto& [k, v] : env) {
    duk_push_lstring(ctx_, v.data(), v.size());
    duk_put_prop_lstring(ctx_, -2, k.data(), k.size());
  }
  duk_pop_2(ctx_);
  scenario_env_ = env;
}

std::pair<int64_t, int64_t> Runtime::TakeDataCounters() {
  std::pair<int64_t, int64_t> out{data_sent_, data_received_};
  data_sent_ = data_received_ = 0;
  return out;
}

metrics::TagSet Runtime::SampleTags(const metrics::TagSet* extra) const {
  metrics::TagSet tags = vu_tags_;
  if (system_tag("group")) tags["group"] = group_;
  if (extra != nullptr) {
    for (const auto& [k, v] : *extra) tags[k] = v;
  }
  return tags;
}

void Runtime::AppendTagsKey(std::string& key, const metrics::TagSet& tags) {
  for (const auto& [k, v] : tags) {
    key.push_back('\0');
    key += k;
    key.push_back('\0');
    key += v;
  }
}

std::string Runtime::EncodeTags(const metrics::TagSet* extra) const {
  // Samples repeat the same few tag sets (per group, check, method and
  // status), so encoded sets are cached by a cheap flat key instead of
  // building and escaping a map per sample. The cache is bounded: scripts
  // with high-cardinality tags just miss it.
  std::string key = group_;
  if (extra != nullptr) AppendTagsKey(key, *extra);
  auto it = encoded_cache_.find(key);
  if (it != encoded_cache_.end()) return it->second;
  std::string encoded = metrics::EncodeTagSet(SampleTags(extra));
  if (encoded_cache_.size() >= 4096) encoded_cache_.clear();
  encoded_cache_.emplace(std::move(key), encoded);
  return encoded;
}

void Runtime::EmitSample(const std::string& metric, double value, const metrics::TagSet* extra) {
  host().EmitSeries(SeriesFor(metric, extra), value);
}

metrics::SeriesRef& Runtime::SeriesFor(const std::string& metric, const metrics::TagSet* extra) {
  // The same flat key as EncodeTags', after the metric's name.
  std::string key = metric;
  key.push_back('\0');
  key += group_;
  if (extra != nullptr) AppendTagsKey(key, *extra);
  auto it = series_cache_.find(key);
  if (it != series_cache_.end()) return it->second;
  if (series_cache_.size() >= 4096) series_cache_.clear();  // high-cardinality tags: just misses
  return series_cache_.emplace(std::move(key), metrics::SeriesRef(metric, EncodeTags(extra))).first->second;
}

}  // namespace barrage::agent::js

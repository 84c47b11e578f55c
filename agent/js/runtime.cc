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
#include "common/summary_outputs.h"
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

// The embedded libraries, each loaded into a heap on its first use: npm's
// (scripts/js), and our own JS that most scripts never call (functions
// loaded from bytecode cost their bytecode and an object each in every
// heap, tests/bench/README.md, "Idle VUs"). Ours are installers called with
// (global, __b); each replaces the loading stubs of kLazyProperties that
// name it.
constexpr char kCollectionsJs[] =
#include "agent/js/collections_js.inc"
    ;
constexpr char kAsyncJs[] =
#include "agent/js/async_js.inc"
    ;
constexpr char kPolyfillsJs[] =
#include "agent/js/polyfills_js.inc"
    ;
constexpr char kConsoleJs[] =
#include "agent/js/console_js.inc"
    ;
constexpr char kMetricsJs[] =
#include "agent/js/metrics_js.inc"
    ;
constexpr char kSummaryJs[] =
#include "agent/js/summary_js.inc"
    ;
constexpr char kGrpcConnectJs[] =
#include "agent/js/grpc_connect_js.inc"
    ;

struct Library {
  const char* name;
  const char* file;         // the name stack traces show
  const char* installer;    // our own: an installer's source; nullptr: npm's (below)
  // Its functions lose their unused prototypes once loaded, as the
  // prelude's (DropUnusedPrototypes): the ones that were in the prelude.
  bool drop_prototypes;
};
constexpr Library kLibraries[] = {
    {"promise-polyfill", "barrage:promise-polyfill.js", nullptr, false},
    {"regenerator-runtime", "barrage:regenerator-runtime.js", nullptr, false},
    {"collections", "barrage:collections.js", kCollectionsJs, false},
    {"async", "barrage:async.js", kAsyncJs, false},
    {"polyfills", "barrage:polyfills.js", kPolyfillsJs, true},
    {"console", "barrage:console.js", kConsoleJs, true},
    {"metrics", "barrage:metrics.js", kMetricsJs, true},
    {"summary", "barrage:summary.js", kSummaryJs, true},
    {"grpc-connect", "barrage:k6/net/grpc-connect.js", kGrpcConnectJs, true},
};
// Indices in kLibraries.
constexpr int kPromise = 0, kCollections = 2, kAsync = 3, kPolyfills = 4, kConsole = 5, kMetrics = 6, kSummary = 7;

// Loads library i into the heap unless it is there already.
void LoadLibrary(duk_context* ctx, Runtime& rt, int i) {
  const uint32_t bit = 1u << i;
  if ((rt.libraries_loaded() & bit) != 0) return;
  rt.libraries_loaded() |= bit;  // before it runs: never twice, even when its installer fails
  const Library& lib = kLibraries[i];
  if (lib.installer != nullptr) {
    PushEmbeddedScript(ctx, lib.file, lib.installer, 0);
    duk_call(ctx, 0);  // the program evaluates to the installer
    duk_push_global_object(ctx);
    duk_get_global_string(ctx, "__b");
    duk_call(ctx, 2);
    duk_pop(ctx);
    if (lib.drop_prototypes) DropUnusedPrototypes(ctx, lib.file);
    return;
  }
  if (i == kPromise) {
    // It looks for the global object as `self`, `window` or `global`, none
    // of which a k6 script has: it gets `global` as a wrapper's parameter.
    static const std::string* wrapped = new std::string(
        absl::StrCat("(function (global) {", absl::string_view(PromisePolyfillSource().data(), PromisePolyfillSource().size()), "\n})(this);"));
    PushEmbeddedScript(ctx, lib.file, *wrapped, 0);
  } else {
    PushEmbeddedScript(ctx, lib.file, RegeneratorRuntimeSource(), 0);
  }
  duk_call(ctx, 0);
  duk_pop(ctx);
}

absl::StatusOr<int> LoadLibraryImpl(duk_context* ctx, Runtime& rt) {
  const std::string name = duk_safe_to_string(ctx, 0);
  for (int i = 0; i < static_cast<int>(std::size(kLibraries)); ++i) {
    if (name != kLibraries[i].name) continue;
    LoadLibrary(ctx, rt, i);
    return 0;
  }
  return absl::NotFoundError(absl::StrCat("no embedded library ", name));
}

// __b.loadAsync(): the asynchronous half (async.js), from the stubs that
// need it (k6/net/grpc's asyncInvoke).
absl::StatusOr<int> LoadAsyncImpl(duk_context* ctx, Runtime& rt) {
  LoadLibrary(ctx, rt, kAsync);
  return 0;
}

// ---- loading stubs ----------------------------------------------------------
// Names whose library is loaded the first time a script reads them (or, for
// the polyfills, writes them). Each is an accessor property whose getter
// and setter are two native functions shared by every stub of the heap
// (__b.lazyGet, __b.lazySet): Duktape passes them the key as an extra
// argument, which names the library. The library then replaces the stubs
// it serves with its values.
enum class Holder {
  kGlobal, kObject, kArray, kNumber, kArrayPrototype, kStringPrototype, kUint8ArrayPrototype, kModules, kGrpc
};
enum class OnSet {
  kNone,          // no setter: modules' members (a write fails, as on a getter)
  kReplace,       // the script's value replaces the stub; the library is not loaded
  kLoadThenPut,   // as if the library's value were there: load it, then assign
};
struct LazyProperty {
  Holder holder;
  const char* key;  // nullptr: Symbol.iterator
  int library;      // index in kLibraries
  bool enumerable;
  OnSet on_set;
};
constexpr LazyProperty kLazyProperties[] = {
    {Holder::kArrayPrototype, nullptr, kPolyfills, false, OnSet::kLoadThenPut},
    {Holder::kStringPrototype, nullptr, kPolyfills, false, OnSet::kLoadThenPut},
    {Holder::kUint8ArrayPrototype, nullptr, kPolyfills, false, OnSet::kLoadThenPut},
    {Holder::kObject, "entries", kPolyfills, false, OnSet::kLoadThenPut},
    {Holder::kObject, "values", kPolyfills, false, OnSet::kLoadThenPut},
    {Holder::kArrayPrototype, "includes", kPolyfills, false, OnSet::kLoadThenPut},
    {Holder::kArrayPrototype, "find", kPolyfills, false, OnSet::kLoadThenPut},
    {Holder::kArrayPrototype, "findIndex", kPolyfills, false, OnSet::kLoadThenPut},
    {Holder::kArrayPrototype, "fill", kPolyfills, false, OnSet::kLoadThenPut},
    {Holder::kArray, "from", kPolyfills, false, OnSet::kLoadThenPut},
    {Holder::kArray, "of", kPolyfills, false, OnSet::kLoadThenPut},
    {Holder::kStringPrototype, "includes", kPolyfills, false, OnSet::kLoadThenPut},
    {Holder::kStringPrototype, "startsWith", kPolyfills, false, OnSet::kLoadThenPut},
    {Holder::kStringPrototype, "endsWith", kPolyfills, false, OnSet::kLoadThenPut},
    {Holder::kStringPrototype, "repeat", kPolyfills, false, OnSet::kLoadThenPut},
    {Holder::kStringPrototype, "padStart", kPolyfills, false, OnSet::kLoadThenPut},
    {Holder::kStringPrototype, "padEnd", kPolyfills, false, OnSet::kLoadThenPut},
    {Holder::kStringPrototype, "trimStart", kPolyfills, false, OnSet::kLoadThenPut},
    {Holder::kStringPrototype, "trimEnd", kPolyfills, false, OnSet::kLoadThenPut},
    {Holder::kNumber, "isInteger", kPolyfills, false, OnSet::kLoadThenPut},
    {Holder::kNumber, "isFinite", kPolyfills, false, OnSet::kLoadThenPut},
    {Holder::kNumber, "isNaN", kPolyfills, false, OnSet::kLoadThenPut},
    {Holder::kGlobal, "Map", kCollections, false, OnSet::kReplace},
    {Holder::kGlobal, "Set", kCollections, false, OnSet::kReplace},
    {Holder::kGlobal, "console", kConsole, true, OnSet::kReplace},
    {Holder::kGlobal, "setTimeout", kAsync, false, OnSet::kReplace},
    {Holder::kGlobal, "clearTimeout", kAsync, false, OnSet::kReplace},
    {Holder::kGlobal, "setInterval", kAsync, false, OnSet::kReplace},
    {Holder::kGlobal, "clearInterval", kAsync, false, OnSet::kReplace},
    {Holder::kGlobal, "Promise", kAsync, false, OnSet::kReplace},
    {Holder::kGlobal, "regeneratorRuntime", kAsync, false, OnSet::kReplace},
    {Holder::kModules, "k6/timers", kAsync, true, OnSet::kNone},
    {Holder::kModules, "k6/metrics", kMetrics, true, OnSet::kNone},
    {Holder::kModules, "k6-summary", kSummary, true, OnSet::kNone},
    {Holder::kGrpc, "Stream", kAsync, true, OnSet::kNone},
};
constexpr char kSymbolIterator[] = DUK_WELLKNOWN_SYMBOL("Symbol.iterator");

const LazyProperty* FindLazyProperty(duk_context* ctx, duk_idx_t key_idx) {
  duk_size_t len = 0;
  const char* key = duk_is_string(ctx, key_idx) ? duk_get_lstring(ctx, key_idx, &len) : nullptr;  // symbols too
  if (key == nullptr) return nullptr;
  const std::string_view k(key, len);
  for (const LazyProperty& p : kLazyProperties) {
    if (k == (p.key != nullptr ? std::string_view(p.key) : std::string_view(kSymbolIterator))) return &p;
  }
  return nullptr;
}

// The stubs' getter: (key) with `this` the object read from. Loads the
// library, which replaced the stub, and reads the property again.
absl::StatusOr<int> LazyGetImpl(duk_context* ctx, Runtime& rt) {
  const LazyProperty* p = FindLazyProperty(ctx, 0);
  if (p == nullptr) return absl::InternalError("no library for this property");
  // Loaded already: the library left this stub in place (our defect), and
  // reading the property again would bring us back here. (A getter of one
  // library may well run while another loads: regenerator-runtime reads
  // [][Symbol.iterator].)
  if ((rt.libraries_loaded() & (1u << p->library)) != 0) {
    return absl::InternalError(absl::StrCat("library ", kLibraries[p->library].name, " left a loading stub"));
  }
  LoadLibrary(ctx, rt, p->library);
  duk_push_this(ctx);
  duk_dup(ctx, 0);
  duk_get_prop(ctx, -2);
  return 1;
}

// The stubs' setter: (value, key) with `this` the object written to.
absl::StatusOr<int> LazySetImpl(duk_context* ctx, Runtime& rt) {
  const LazyProperty* p = FindLazyProperty(ctx, 1);
  if (p == nullptr) return absl::InternalError("no library for this property");
  duk_push_this(ctx);
  duk_dup(ctx, 1);
  if (p->on_set == OnSet::kLoadThenPut) {
    LoadLibrary(ctx, rt, p->library);
  } else {
    duk_del_prop(ctx, -2);
    duk_dup(ctx, 1);
  }
  duk_dup(ctx, 0);
  duk_put_prop(ctx, -3);
  return 0;
}

// Defines the stubs of kLazyProperties whose holder lacks the name
// (Duktape has some of the polyfills' names itself). __b at -1.
void DefineLazyStubs(duk_context* ctx) {
  const duk_idx_t b = duk_normalize_index(ctx, -1);
  for (const LazyProperty& p : kLazyProperties) {
    switch (p.holder) {
      case Holder::kGlobal: duk_push_global_object(ctx); break;
      case Holder::kObject: duk_get_global_string(ctx, "Object"); break;
      case Holder::kArray: duk_get_global_string(ctx, "Array"); break;
      case Holder::kNumber: duk_get_global_string(ctx, "Number"); break;
      case Holder::kArrayPrototype: duk_get_global_string(ctx, "Array"); break;
      case Holder::kStringPrototype: duk_get_global_string(ctx, "String"); break;
      case Holder::kUint8ArrayPrototype: duk_get_global_string(ctx, "Uint8Array"); break;
      case Holder::kModules: duk_get_prop_string(ctx, b, "modules"); break;
      case Holder::kGrpc:
        duk_get_prop_string(ctx, b, "modules");
        duk_get_prop_string(ctx, -1, "k6/net/grpc");
        duk_remove(ctx, -2);
        break;
    }
    if (p.holder == Holder::kArrayPrototype || p.holder == Holder::kStringPrototype ||
        p.holder == Holder::kUint8ArrayPrototype) {
      if (duk_is_object(ctx, -1)) {
        duk_get_prop_string(ctx, -1, "prototype");
      } else {
        duk_push_undefined(ctx);
      }
      duk_remove(ctx, -2);
    }
    if (p.key != nullptr) {
      duk_push_string(ctx, p.key);
    } else {
      duk_push_lstring(ctx, kSymbolIterator, sizeof(kSymbolIterator) - 1);
    }
    bool present = true;
    if (duk_is_object(ctx, -2)) {
      present = duk_has_prop(ctx, -2);  // pops the key
    } else {
      duk_pop(ctx);
    }
    if (present) {
      duk_pop(ctx);
      continue;
    }
    if (p.key != nullptr) {
      duk_push_string(ctx, p.key);
    } else {
      duk_push_lstring(ctx, kSymbolIterator, sizeof(kSymbolIterator) - 1);
    }
    duk_get_prop_string(ctx, b, "lazyGet");
    duk_uint_t flags = DUK_DEFPROP_HAVE_GETTER | DUK_DEFPROP_SET_CONFIGURABLE |
                       (p.enumerable ? DUK_DEFPROP_SET_ENUMERABLE : DUK_DEFPROP_CLEAR_ENUMERABLE);
    if (p.on_set != OnSet::kNone) {
      duk_get_prop_string(ctx, b, "lazySet");
      flags |= DUK_DEFPROP_HAVE_SETTER;
    }
    duk_def_prop(ctx, -3 - (p.on_set != OnSet::kNone ? 1 : 0), flags);
    duk_pop(ctx);
  }
}

// Duktape.errCreate: error texts as k6 (goja) words them where users match
// on them, in e.message as well as in logs: Duktape says "identifier 'x'
// undefined" and "callstack limit". Native: it runs for every error made.
duk_ret_t ErrCreate(duk_context* ctx) {
  if (!duk_is_object(ctx, 0)) return 1;
  duk_get_global_string(ctx, "ReferenceError");
  const bool reference = duk_instanceof(ctx, 0, -1);
  duk_pop(ctx);
  duk_get_prop_string(ctx, 0, "message");
  duk_size_t len = 0;
  const char* msg = duk_is_string(ctx, -1) ? duk_get_lstring(ctx, -1, &len) : nullptr;
  const std::string_view m = msg != nullptr ? std::string_view(msg, len) : std::string_view();
  if (reference) {
    // /^identifier '(.*)' undefined$/
    constexpr std::string_view kHead = "identifier '", kTail = "' undefined";
    if (msg != nullptr && m.size() >= kHead.size() + kTail.size() && m.substr(0, kHead.size()) == kHead &&
        m.substr(m.size() - kTail.size()) == kTail && m.find('\n') == std::string_view::npos) {
      const std::string name(m.substr(kHead.size(), m.size() - kHead.size() - kTail.size()));
      duk_pop(ctx);
      duk_push_lstring(ctx, name.data(), name.size());
      duk_push_string(ctx, " is not defined");
      duk_concat(ctx, 2);
      duk_put_prop_string(ctx, 0, "message");
    }
  } else if (m == "callstack limit" || m == "C stack depth limit") {
    duk_get_global_string(ctx, "RangeError");
    if (duk_instanceof(ctx, 0, -1)) {
      duk_push_string(ctx, "Maximum call stack size exceeded");
      duk_put_prop_string(ctx, 0, "message");
    }
  }
  duk_set_top(ctx, 1);
  return 1;
}

// __b.nameExports(exports): exported functions without a name of their own
// (`export default function () {}` becomes an anonymous function) are named
// after their export in stack traces, as k6 shows `at default`.
absl::StatusOr<int> NameExportsImpl(duk_context* ctx, Runtime&) {
  if (!duk_is_object(ctx, 0) || duk_is_function(ctx, 0)) return 0;
  duk_enum(ctx, 0, DUK_ENUM_OWN_PROPERTIES_ONLY);
  while (duk_next(ctx, -1, 1)) {
    // [... enum key fn]
    if (duk_is_function(ctx, -1)) {
      duk_get_prop_string(ctx, -1, "name");
      const bool named = duk_to_boolean(ctx, -1);
      duk_pop(ctx);
      if (!named) {
        // A frozen function keeps its (empty) name.
        auto define = [](duk_context* c, void*) -> duk_ret_t {
          // [... fn key]
          duk_push_string(c, "name");
          duk_dup(c, -2);
          duk_def_prop(c, -4, DUK_DEFPROP_HAVE_VALUE | DUK_DEFPROP_SET_CONFIGURABLE);
          return 0;
        };
        duk_dup(ctx, -1);
        duk_dup(ctx, -3);
        duk_safe_call(ctx, define, nullptr, 2, 1);
        duk_pop(ctx);
      }
    }
    duk_pop_2(ctx);
  }
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
    // Hidden natives are lightweight functions (no object each); the ones
    // scripts can see are not (their .name reads "", not "light_…").
    PutHiddenFunction(c, -1, "log", Native<LogImpl>, 2);
    PutHiddenFunction(c, -1, "inInit", Native<InInitImpl>, 0);
    PutHiddenFunction(c, -1, "now", Native<NowImpl>, 0);
    PutHiddenFunction(c, -1, "sleep", Native<SleepImpl>, 1);
    PutFunction(c, -1, "checkNative", NativeCheck, 3);  // k6's check
    PutHiddenFunction(c, -1, "emit", Native<EmitImpl>, 3);
    PutHiddenFunction(c, -1, "groupEnter", Native<GroupEnterImpl>, 1);
    PutHiddenFunction(c, -1, "groupExit", Native<GroupExitImpl>, 2);
    PutHiddenFunction(c, -1, "defineMetric", Native<DefineMetricImpl>, 3);
    PutHiddenFunction(c, -1, "throwOnBadValue", Native<ThrowOnBadValueImpl>, 0);
    PutHiddenFunction(c, -1, "randomSeed", Native<RandomSeedImpl>, 1);
    PutHiddenFunction(c, -1, "require", NativeRequire, 2);
    PutHiddenFunction(c, -1, "timerStart", Native<TimerStartImpl>, 3);
    PutHiddenFunction(c, -1, "timerClear", Native<TimerClearImpl>, 1);
    PutHiddenFunction(c, -1, "loadLibrary", Native<LoadLibraryImpl>, 1);
    PutHiddenFunction(c, -1, "loadAsync", Native<LoadAsyncImpl>, 0);
    PutHiddenFunction(c, -1, "resetLoop", [](duk_context*) -> duk_ret_t { return 0; }, 0);  // async.js replaces it
    PutHiddenFunction(c, -1, "promisesLoaded", Native<PromisesLoadedImpl>, 0);
    PutHiddenFunction(c, -1, "nameExports", Native<NameExportsImpl>, 1);
    // The loading stubs' accessors (kLazyProperties): objects, as accessors
    // must be, and the libraries compare a property's getter with them.
    PutFunction(c, -1, "lazyGet", Native<LazyGetImpl>, 1);
    PutFunction(c, -1, "lazySet", Native<LazySetImpl>, 2);
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
    duk_get_global_string(c, "Duktape");
    duk_push_c_function(c, ErrCreate, 1);
    duk_put_prop_string(c, -2, "errCreate");
    duk_pop(c);
    // The prelude: the JS halves of the modules every script has.
    PushEmbeddedScript(c, "barrage:prelude.js", PreludeSource(), 0);
    duk_call(c, 0);
    duk_pop(c);
    duk_get_global_string(c, "__b");
    DefineLazyStubs(c);
    duk_pop(c);
    // The prelude's and k6/net/grpc's functions are not constructors (the
    // ones that are have members on their prototypes and keep them): about
    // 8 KB less in every heap (tests/bench/README.md, "Idle VUs").
    DropUnusedPrototypes(c, "barrage:");
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

bool Runtime::LibraryLoaded(std::string_view name) const {
  for (int i = 0; i < static_cast<int>(std::size(kLibraries)); ++i) {
    if (name == kLibraries[i].name) return (libraries_loaded_ & (1u << i)) != 0;
  }
  return false;
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

namespace {

// handleSummary's binary values (ArrayBuffer, typed arrays) as
// {kSummaryBytesKey: base64} objects, so that JSON carries their bytes
// (common/summary_outputs.h). Other values are left for the controller to
// judge, with k6's texts.
void EncodeBinarySummaryOutputs(duk_context* c, duk_idx_t obj) {
  obj = duk_normalize_index(c, obj);
  duk_enum(c, obj, DUK_ENUM_OWN_PROPERTIES_ONLY);
  while (duk_next(c, -1, /*get_value=*/1)) {  // [enum key value]
    if (duk_is_buffer_data(c, -1)) {
      duk_size_t size = 0;
      const void* bytes = duk_get_buffer_data(c, -1, &size);
      const std::string base64 = absl::Base64Escape(
          absl::string_view(bytes == nullptr ? "" : static_cast<const char*>(bytes), bytes == nullptr ? 0 : size));
      duk_push_object(c);
      duk_push_lstring(c, base64.data(), base64.size());
      duk_put_prop_string(c, -2, kSummaryBytesKey);
      duk_dup(c, -3);
      duk_swap(c, -1, -2);  // [enum key value key wrapper]
      duk_put_prop(c, obj);
    }
    duk_pop_2(c);
  }
  duk_pop(c);
}

}  // namespace

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
      if (name == "handleSummary" && duk_is_object(c, -1) && !duk_is_array(c, -1)) {
        EncodeBinarySummaryOutputs(c, -1);
      }
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

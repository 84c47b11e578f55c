#include "agent/js/runtime.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "agent/js/duktape/heap.h"
#include "agent/js/transform.h"
#include "common/metrics/metric.h"

namespace barrage::agent::js {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Records what the runtime reports; nothing blocks.
class FakeHost : public VuHost {
 public:
  struct Sample {
    std::string metric;
    metrics::TagSet tags;
    double value;
  };
  void Block(const std::function<void(Resume)>& start) override { start([] {}); }
  void Sleep(absl::Duration d) override { slept += d; }
  bool Interrupted() const override { return false; }
  absl::Status DefineMetric(const metrics::MetricDef& def) override {
    defs[def.name] = def;
    return absl::OkStatus();
  }
  void Emit(const std::string& metric, const std::string& tags, double value) override {
    samples.push_back({metric, metrics::DecodeTagSet(tags), value});
  }
  void Log(LogLevel, std::string_view message) override { logs.emplace_back(message); }
  void AbortTest(const std::string& reason) override { aborted = reason; }

  std::vector<Sample> SamplesOf(const std::string& metric) const {
    std::vector<Sample> out;
    for (const Sample& s : samples) if (s.metric == metric) out.push_back(s);
    return out;
  }

  std::map<std::string, metrics::MetricDef> defs;
  std::vector<Sample> samples;
  std::vector<std::string> logs;
  absl::Duration slept;
  std::string aborted;
};

class RuntimeTest : public ::testing::Test {
 protected:
  static Transformer& Babel() {
    static Transformer* t = Transformer::Create()->release();  // ~250 ms, once per binary
    return *t;
  }
  // Writes files into a fresh directory and runs the main one's init
  // context in recording mode.
  absl::StatusOr<std::unique_ptr<Runtime>> Init(const std::string& main_source,
                                                std::map<std::string, std::string> extra = {}) {
    dir_ = std::filesystem::temp_directory_path() /
           ("barrage_rt_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    std::filesystem::create_directories(dir_);
    extra["script.js"] = main_source;
    for (const auto& [name, text] : extra) {
      std::filesystem::create_directories((dir_ / name).parent_path());
      std::ofstream(dir_ / name) << text;
    }
    bundle_ = std::make_shared<Bundle>();
    bundle_->main_path = (dir_ / "script.js").string();
    RuntimeConfig rc;
    rc.host = &host_;
    rc.env = {{"TARGET", "x:1"}};
    rc.transformer = &Babel();
    rc.recording = bundle_.get();
    return Runtime::Create(std::move(rc));
  }
  // A VU made from the recorded bundle only (the disk is gone).
  absl::StatusOr<std::unique_ptr<Runtime>> VuFromBundle(int64_t id) {
    absl::Status st = Runtime::CompileBundle(*bundle_);
    if (!st.ok()) return st;
    std::filesystem::remove_all(dir_);
    RuntimeConfig rc;
    rc.vu_id = id;
    rc.host = &host_;
    rc.bundle = bundle_;
    return Runtime::Create(std::move(rc));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  FakeHost host_;
  std::shared_ptr<Bundle> bundle_;
  std::filesystem::path dir_;
  static inline int counter_ = 0;
};

TEST_F(RuntimeTest, RunsEs2015ScriptAndExportsOptions) {
  auto rt = Init(R"(
import { check } from 'k6';
const { a, ...rest } = { a: 1, b: 2, c: 3 };
class Box { constructor(v) { this.v = v; } get twice() { return this.v * 2; } }
export const options = { vus: 2, iterations: Object.keys(rest).length * new Box(5).twice };
export default () => {
  const items = [...[1, 2], 3];
  let sum = 0;
  for (const x of items) sum += x;
  check(sum, { 'sum is 6': (s) => s === 6, [`template ${a}`]: true });
};
)");
  ASSERT_TRUE(rt.ok()) << rt.status();
  EXPECT_EQ(*(*rt)->OptionsJson(), R"({"vus":2,"iterations":20})");
  EXPECT_THAT((*rt)->ExportedFunctions(), ElementsAre("default"));
  ASSERT_TRUE((*rt)->Call("default", std::nullopt).ok());
  auto checks = host_.SamplesOf("checks");
  ASSERT_EQ(checks.size(), 2u);
  EXPECT_EQ(checks[0].tags.at("check"), "sum is 6");
  EXPECT_EQ(checks[0].value, 1);
  EXPECT_EQ(checks[1].tags.at("check"), "template 1");
  EXPECT_EQ(checks[1].tags.at("group"), "");
}

TEST_F(RuntimeTest, SyntaxErrorNamesFileLineAndColumn) {
  auto rt = Init("import { check } from 'k6';\nexport default () => {\n  let x = ;\n};\n");
  ASSERT_FALSE(rt.ok());
  EXPECT_THAT(std::string(rt.status().message()), HasSubstr("script.js:3:11: SyntaxError: Unexpected token"));
}

TEST_F(RuntimeTest, RuntimeErrorKeepsUserLine) {
  auto rt = Init("export default function () {\n\n  const o = null;\n  return o.field;\n}\n");
  ASSERT_TRUE(rt.ok()) << rt.status();
  absl::StatusOr<std::string> r = (*rt)->Call("default", std::nullopt);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("TypeError"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("script.js:4"));
}

// An ES5 library runs as it is (no Babel), but as k6 runs every file: strict,
// `this` at its top level is module.exports, errors on its own lines; and
// `const` keeps its block scope (Duktape alone would scope it like var).
TEST_F(RuntimeTest, Es5LibraryRunsAsItIsStrictWithItsLines) {
  const int babel_before = Babel().counts().babel;
  auto rt = Init(
      "import lib from './lib.js';\nimport scoped from './scoped.js';\n"
      "export const options = { vus: lib.strict ? 3 : 1, iterations: lib.thisIsExports ? 4 : 1, tags: { s: scoped } };\n"
      "export default function () { return lib.fail(); }\n",
      {{"lib.js",
        "var self = this;\n"
        "module.exports = {\n"
        "  strict: (function () { return this === undefined; })(),\n"
        "  thisIsExports: self === module.exports,\n"
        "  fail: function () {\n"
        "    var o = null;\n"
        "    return o.field;\n"
        "  }\n"
        "};\n"},
       {"scoped.js",
        "var f = [];\nfor (var i = 0; i < 3; i++) { const j = i; f.push(function () { return j; }); }\n"
        "module.exports = f[0]() + ',' + f[2]();\n"}});
  ASSERT_TRUE(rt.ok()) << rt.status();
  EXPECT_EQ(*(*rt)->OptionsJson(), R"({"vus":3,"iterations":4,"tags":{"s":"0,2"}})");
  // script.js and scoped.js went through Babel, lib.js did not.
  EXPECT_EQ(Babel().counts().babel, babel_before + 2);
  absl::StatusOr<std::string> r = (*rt)->Call("default", std::nullopt);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("TypeError"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("lib.js:7"));
}

TEST_F(RuntimeTest, UnknownModuleIsAClearError) {
  auto rt = Init("import ws from 'k6/ws-nope';\nexport default () => {};\n");
  ASSERT_FALSE(rt.ok());
  EXPECT_THAT(std::string(rt.status().message()), HasSubstr("unknown module: k6/ws-nope"));
}

TEST_F(RuntimeTest, LocalModulesAndOpenComeFromTheBundleOnVus) {
  auto rt = Init(R"(
import Counter, { greet } from './lib/lib.js';
const text = open('./data.txt');
const bytes = open('data.txt', 'b');
export default () => {
  const c = new Counter();
  c.inc();
  console.log(greet('x'), c.inc(), text.trim(), bytes.byteLength, __ENV.TARGET, __VU);
};
)",
                 {{"lib/lib.js", "export const greet = (n) => `hi ${n}`;\nexport default class C { constructor() { this.n = 0; } inc() { return ++this.n; } }\n"},
                  {"data.txt", "line one\n"}});
  ASSERT_TRUE(rt.ok()) << rt.status();
  EXPECT_EQ(bundle_->modules.size(), 2u);
  EXPECT_EQ(bundle_->files.size(), 1u);
  auto vu = VuFromBundle(7);
  ASSERT_TRUE(vu.ok()) << vu.status();
  ASSERT_TRUE((*vu)->Call("default", std::nullopt).ok());
  EXPECT_THAT(host_.logs, ElementsAre("hi x 2 line one 9 undefined 7"));
}

TEST_F(RuntimeTest, OpenOfAFileTheInitPassDidNotReadFailsOnVus) {
  auto rt = Init("const f = __VU > 0 ? open('late.txt') : '';\nexport default () => {};\n", {{"late.txt", "x"}});
  ASSERT_TRUE(rt.ok()) << rt.status();
  auto vu = VuFromBundle(1);
  ASSERT_FALSE(vu.ok());
  EXPECT_THAT(std::string(vu.status().message()),
              HasSubstr("open() can't be used with files that weren't previously opened during initialization"));
}

TEST_F(RuntimeTest, GroupsSetTheGroupTagAndEmitGroupDuration) {
  auto rt = Init(R"(
import { group, check } from 'k6';
export default () => {
  group('outer', () => {
    group('inner', () => { check(1, { ok: true }); });
  });
  check(1, { root: true });
};
)");
  ASSERT_TRUE(rt.ok()) << rt.status();
  ASSERT_TRUE((*rt)->Call("default", std::nullopt).ok());
  auto checks = host_.SamplesOf("checks");
  ASSERT_EQ(checks.size(), 2u);
  EXPECT_EQ(checks[0].tags.at("group"), "::outer::inner");
  EXPECT_EQ(checks[1].tags.at("group"), "");
  auto groups = host_.SamplesOf("group_duration");
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].tags.at("group"), "::outer::inner");
  EXPECT_EQ(groups[1].tags.at("group"), "::outer");
}

TEST_F(RuntimeTest, CustomMetricsFollowK6Rules) {
  auto rt = Init(R"(
import { Counter, Trend, Rate } from 'k6/metrics';
const c = new Counter('my_counter');
const t = new Trend('my_time', true);
const r = new Rate('my_rate');
export function bad_name() { return new Counter('x'); }
export default () => {
  c.add(2, { kind: 'a', n: 1 });
  t.add(12.5);
  r.add(true);
  r.add(0);
  return c.add(undefined);
};
)");
  ASSERT_TRUE(rt.ok()) << rt.status();
  EXPECT_EQ(host_.defs.at("my_time").contains, metrics::ValueType::kTime);
  EXPECT_EQ(host_.defs.at("my_rate").type, metrics::MetricType::kRate);
  ASSERT_TRUE((*rt)->Call("default", std::nullopt).ok());
  auto counter = host_.SamplesOf("my_counter");
  ASSERT_EQ(counter.size(), 1u);
  EXPECT_EQ(counter[0].value, 2);
  EXPECT_EQ(counter[0].tags.at("kind"), "a");
  EXPECT_EQ(counter[0].tags.at("n"), "1");
  EXPECT_THAT(host_.logs, ElementsAre(HasSubstr("'undefined' is an invalid value for metric 'my_counter'")));
  auto rate = host_.SamplesOf("my_rate");
  ASSERT_EQ(rate.size(), 2u);
  EXPECT_EQ(rate[0].value, 1);
  EXPECT_EQ(rate[1].value, 0);
  absl::StatusOr<std::string> r = (*rt)->Call("bad_name", std::nullopt);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("metrics must be declared in the init context"));
}

TEST_F(RuntimeTest, InitOnlyAndVuOnlyCallsThrowK6Messages) {
  auto check_in_init = Init("import { check } from 'k6';\ncheck(1, { a: true });\nexport default () => {};\n");
  ASSERT_FALSE(check_in_init.ok());
  EXPECT_THAT(std::string(check_in_init.status().message()),
              HasSubstr("Using check() in the init context is not supported"));
  auto bad_metric = Init("import { Trend } from 'k6/metrics';\nnew Trend('x');\nexport default () => {};\n");
  ASSERT_FALSE(bad_metric.ok());
  EXPECT_THAT(std::string(bad_metric.status().message()), HasSubstr("Invalid metric name: 'x'"));
}

TEST_F(RuntimeTest, SetupDataIsPassedToEveryCall) {
  auto rt = Init(R"(
export function setup() { return { n: 41, list: [1, 2] }; }
export default (data) => { data.n++; console.log(data.n, data.list.length); };
)");
  ASSERT_TRUE(rt.ok()) << rt.status();
  absl::StatusOr<std::string> data = (*rt)->Call("setup", std::nullopt, /*want_result=*/true);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(*data, R"({"n":41,"list":[1,2]})");
  auto vu = VuFromBundle(1);
  ASSERT_TRUE(vu.ok()) << vu.status();
  ASSERT_TRUE((*vu)->Call("default", *data).ok());
  ASSERT_TRUE((*vu)->Call("default", *data).ok());
  // One decoded copy per VU, reused across iterations, as in k6.
  EXPECT_THAT(host_.logs, ElementsAre("42 2", "43 2"));
}

TEST_F(RuntimeTest, SleepAndRandomSeed) {
  auto rt = Init(R"(
import { sleep, randomSeed } from 'k6';
export default () => {
  sleep(1.5);
  sleep(-1);
  randomSeed(7); const a = Math.random();
  randomSeed(7); const b = Math.random();
  console.log(a === b, a >= 0 && a < 1);
};
)");
  ASSERT_TRUE(rt.ok()) << rt.status();
  ASSERT_TRUE((*rt)->Call("default", std::nullopt).ok());
  EXPECT_EQ(host_.slept, absl::Milliseconds(1500));
  EXPECT_THAT(host_.logs, ElementsAre("true true"));
}

TEST_F(RuntimeTest, ConsoleFormatsLikeK6) {
  auto rt = Init(R"(
export default () => {
  const o = { a: 1 }; o.self = o;
  console.log('s', 1, { x: [1, 'y'] }, o, () => 1, new Error('boom'), null, undefined);
};
)");
  ASSERT_TRUE(rt.ok()) << rt.status();
  ASSERT_TRUE((*rt)->Call("default", std::nullopt).ok());
  EXPECT_THAT(host_.logs, ElementsAre(R"(s 1 {"x":[1,"y"]} {"a":1,"self":"[Circular]"} [object Function] Error: boom null undefined)"));
}

// Map and Set are loaded into a heap on first use (prelude.js,
// collections_js.inc); a script that defines its own keeps it.
TEST_F(RuntimeTest, MapAndSetLoadOnFirstUseAndKeepTheScriptsOwn) {
  auto rt = Init(R"(
export default () => {
  const m = new Map([[1, 'a'], ['x', 2]]);
  m.set(NaN, 'nan');
  const s = new Set([1, 2, 2, 'x']);
  const keys = [];
  for (const [k] of m) keys.push(String(k));
  console.log(typeof Map, typeof Set, m.get(1), m.get(NaN), m.size, s.size, s.has('x'), keys.join(','));
};
)");
  ASSERT_TRUE(rt.ok()) << rt.status();
  ASSERT_TRUE((*rt)->Call("default", std::nullopt).ok());
  EXPECT_THAT(host_.logs, ElementsAre("function function a nan 3 3 true 1,x,NaN"));

  host_.logs.clear();
  auto own = Init(R"(
Set = function Mine() {};
export default () => { const m = new Map(); m.set('k', 1); console.log(m.get('k'), Set.name, typeof Map.prototype.set); };
)");
  ASSERT_TRUE(own.ok()) << own.status();
  ASSERT_TRUE((*own)->Call("default", std::nullopt).ok());
  EXPECT_THAT(host_.logs, ElementsAre("1 Mine function"));
}

// The prelude's rarely used parts (console, the polyfills, Map and Set,
// k6/metrics, k6-summary) are loaded into a heap on first use, through
// loading stubs (runtime.cc, kLazyProperties). Wherever a script first uses
// them (init context, a VU, setup, teardown, handleSummary), they behave as
// when every heap had them: the same types, names, lengths and errors (the
// expected line is what the build before this change printed).
TEST_F(RuntimeTest, LazyLibrariesBehaveTheSameWhereverFirstUsed) {
  const std::string probe = R"(
import { Trend, Counter } from 'k6/metrics';
import { textSummary } from 'https://jslib.k6.io/k6-summary/0.0.1/index.js';
function probe() {
  const out = [WHERE, typeof console, console.log.length, JSON.stringify(console.log.name)];
  out.push([1, NaN].includes(NaN), Array.prototype.includes.length, JSON.stringify(Array.prototype.includes.name),
           'ab'.padStart(4, '-'), Object.entries({ a: 1 }).join(), Array.from('xy').join('+'), [3, 4].find((x) => x > 3));
  let n = 0;
  for (const x of [1, 2]) n += x;
  out.push(n, new Map([[1, 'm']]).get(1), new Set([1, 1]).size, Object.keys(Array.prototype).length);
  out.push(Trend.length, JSON.stringify(Trend.name), Counter.prototype.add.length, textSummary.length);
  try { out.push(textSummary({}, { indent: '> ' }).split('\n')[0]); } catch (e) { out.push(e.message); }
  try { out.push(new Counter('my_c') instanceof Counter); } catch (e) { out.push(e.message); }
  try { Counter('x'); } catch (e) { out.push(e.message); }
  try { nope; } catch (e) { out.push(e.message); }
  return out.join('|');
}
if (WHERE === 'init') console.log(probe());
export function setup() { if (WHERE === 'setup') console.log(probe()); }
export default function () { if (WHERE === 'default') console.log(probe()); }
export function teardown() { if (WHERE === 'teardown') console.log(probe()); }
export function handleSummary() { if (WHERE === 'handleSummary') console.log(probe()); return {}; }
)";
  const std::string common =
      R"(|object|0|""|true|1|""|--ab|a,1|x+y|4|3|m|1|0|2|""|2|2|)";
  const std::string later = "|metrics must be declared in the init context|"
                            "Class constructor can't be invoked without 'new'|nope is not defined";
  const std::string not_summary = "textSummary() is only available in handleSummary()";
  const std::map<std::string, std::string> expected = {
      {"init", "init" + common + not_summary + "|true|Class constructor can't be invoked without 'new'|nope is not defined"},
      {"default", "default" + common + not_summary + later},
      {"setup", "setup" + common + not_summary + later},
      {"teardown", "teardown" + common + not_summary + later},
      {"handleSummary", "handleSummary" + common + "> plain" + later},
  };
  for (const auto& [where, line] : expected) {
    SCOPED_TRACE(where);
    host_.logs.clear();
    auto rt = Init("const WHERE = '" + where + "';\n" + probe);
    ASSERT_TRUE(rt.ok()) << rt.status();
    if (where != "init") {
      // The init context imported k6/metrics and k6-summary, used no other.
      EXPECT_TRUE((*rt)->LibraryLoaded("metrics"));
      EXPECT_TRUE((*rt)->LibraryLoaded("summary"));
      for (const char* lib : {"console", "polyfills", "collections", "async"}) EXPECT_FALSE((*rt)->LibraryLoaded(lib)) << lib;
      if (where == "handleSummary") (*rt)->SetSummaryText("plain\nsecond", "color");
      ASSERT_TRUE((*rt)->Call(where, std::nullopt, where == "handleSummary").ok());
    }
    for (const char* lib : {"console", "polyfills", "collections"}) EXPECT_TRUE((*rt)->LibraryLoaded(lib)) << lib;
    EXPECT_THAT(host_.logs, ElementsAre(line));
  }
  // A VU made from the bundle's bytecode, as agents make them.
  host_.logs.clear();
  ASSERT_TRUE(Init("const WHERE = 'default';\n" + probe).ok());
  auto vu = VuFromBundle(1);
  ASSERT_TRUE(vu.ok()) << vu.status();
  EXPECT_FALSE((*vu)->LibraryLoaded("console"));
  ASSERT_TRUE((*vu)->Call("default", std::nullopt).ok());
  EXPECT_THAT(host_.logs, ElementsAre(expected.at("default")));
}

// k6/net/grpc's connect() is native for the parameters scripts pass most;
// the JS with k6's checks of everything else is loaded on first need, from
// any context, and words its errors as before (module_grpc.cc,
// ClientConnectImpl).
TEST_F(RuntimeTest, ConnectChecksLoadOnFirstNeedWithK6Texts) {
  const std::string script = R"(
import grpc from 'k6/net/grpc';
const c = new grpc.Client();
function probe() {
  const out = [WHERE, typeof c.connect, c.connect.length, JSON.stringify(c.connect.name)];
  for (const p of [{ plaintext: 'yes' }, { timeout: true }, { maxSendSize: -1 }, { tls: { cert: 1 } }, { bogus: 1 }, 'str']) {
    try { c.connect('127.0.0.1:1', p); } catch (e) { out.push(e.message); }
  }
  return out.join('|');
}
if (WHERE === 'init') { try { c.connect('127.0.0.1:1', { plaintext: 'yes' }); } catch (e) { console.log(e.message); } }
export function setup() { if (WHERE === 'setup') console.log(probe()); }
export default function () { if (WHERE === 'default') console.log(probe()); }
export function teardown() { if (WHERE === 'teardown') console.log(probe()); }
export function handleSummary() { if (WHERE === 'handleSummary') console.log(probe()); return {}; }
)";
  const std::string texts =
      "|function|2|\"\""
      "|invalid grpc.connect() parameters: invalid plaintext value: '\"yes\"', it needs to be boolean"
      "|invalid timeout value: unable to use type bool as a duration value"
      "|invalid grpc.connect() parameters: invalid maxSendSize value: '-1, it needs to be a positive integer"
      "|invalid grpc.connect() parameters: invalid tls cert value: 'map[string]interface {}{\"cert\":1}', it needs to "
      "be a PEM formatted string"
      "|invalid grpc.connect() parameters: unknown connect param: \"bogus\""
      "|invalid grpc.connect() parameters: params must be an object";
  for (const std::string where : {"init", "default", "setup", "teardown", "handleSummary"}) {
    SCOPED_TRACE(where);
    host_.logs.clear();
    auto rt = Init("const WHERE = '" + where + "';\n" + script);
    ASSERT_TRUE(rt.ok()) << rt.status();
    if (where == "init") {
      EXPECT_THAT(host_.logs, ElementsAre("connecting to a gRPC server in the init context is not supported"));
      EXPECT_FALSE((*rt)->LibraryLoaded("grpc-connect"));
      continue;
    }
    EXPECT_FALSE((*rt)->LibraryLoaded("grpc-connect"));
    ASSERT_TRUE((*rt)->Call(where, std::nullopt, where == "handleSummary").ok());
    EXPECT_TRUE((*rt)->LibraryLoaded("grpc-connect"));
    EXPECT_THAT(host_.logs, ElementsAre(where + texts));
  }
}

// A script (or a bundle's own polyfills) writing a lazily loaded name gets
// what writing it did when every heap had it: its value, with the
// property's attributes; a global it sets replaces the library's.
TEST_F(RuntimeTest, WritingALazyNameKeepsTheScriptsValue) {
  auto rt = Init(R"(
const out = [];
if (!Array.prototype.includes) out.push('missing');
Array.prototype.includes = function mine() { return 'mine'; };
Object.defineProperty(String.prototype, 'padStart', { value: function pad() { return 'P'; }, writable: true, configurable: true });
Object.values = function vals() { return ['V']; };
Map = function MyMap() { this.m = 1; };
console = { log: function (x) { out.push('own ' + x); } };
export default function () {
  console.log('log');
  out.push([1].includes(1), 'x'.padStart(3), Object.values({}).join(), new Map().m, 'ab'.padEnd(3, '.'));
  const e = (o, k) => Object.prototype.propertyIsEnumerable.call(o, k);
  out.push(e(Array.prototype, 'includes'), e(String.prototype, 'padStart'), e(Object, 'values'), e(Array.prototype, 'find'));
  for (const k in []) out.push('enumerated ' + k);
  throw new Error(out.join('|'));
}
)");
  ASSERT_TRUE(rt.ok()) << rt.status();
  absl::StatusOr<std::string> r = (*rt)->Call("default", std::nullopt);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("Error: own log|mine|P|V|1|ab.|false|false|false|false"));
  EXPECT_THAT(host_.logs, ElementsAre());
}

// The prelude's functions lose the unused prototype objects Duktape gives
// every function (DropUnusedPrototypes); constructors with members, and
// every function of the script, keep theirs (an arrow function has none, as
// in ES2015).
TEST_F(RuntimeTest, OnlyThePreludesUnusedPrototypesAreDropped) {
  const std::string script = R"(
import grpc from 'k6/net/grpc';
import { Counter } from 'k6/metrics';
function F() {}
const g = (x) => x;
const c = new Counter('my_counter');
export default () => {
  console.log(console.log.prototype === undefined, typeof F.prototype, F.prototype.constructor === F,
              new F() instanceof F, typeof g.prototype, new grpc.Client() instanceof grpc.Client,
              c instanceof Counter, typeof Counter.prototype.add);
};
)";
  auto rt = Init(script);
  ASSERT_TRUE(rt.ok()) << rt.status();
  ASSERT_TRUE((*rt)->Call("default", std::nullopt).ok());
  auto vu = VuFromBundle(1);
  ASSERT_TRUE(vu.ok()) << vu.status();
  ASSERT_TRUE((*vu)->Call("default", std::nullopt).ok());
  EXPECT_THAT(host_.logs, ElementsAre("true object true true undefined true true function",
                                      "true object true true undefined true true function"));
}

// Babel's arrow functions as ES2015 has them (transform.cc,
// arrowsAsMethods): not constructable, no prototype, the name inferred from
// the variable or key, the outer binding of that name seen from inside,
// `this` and `arguments` the enclosing function's; with default, rest and
// destructured parameters, async, in class methods and loops.
TEST_F(RuntimeTest, ArrowFunctionsAreNotConstructorsAndBindNoName) {
  auto rt = Init(R"(
export default function () {
  const f = () => 1;
  const o = { a: () => 1, 'status is OK': (r) => r };
  let g = () => g;
  const g0 = g;
  g = 7;
  let threw = 'nothing';
  try { new (() => 1)(); } catch (e) { threw = e.name; }
  const fns = [];
  for (let i = 0; i < 3; i++) fns.push(() => i);
  const d = ({ a, b: [c] }, e = 2, ...rest) => a + c + e + rest.length;
  class C { constructor() { this.y = 10; } m() { return [1].map((x) => this.y + x)[0]; } }
  function k() { return (() => arguments[0] + this.x)(); }
  const as = async (x) => (await x) + 1;
  as(41).then((v) => console.log('async', v));
  console.log(typeof (() => 1).prototype, threw, f.name, o.a.name, o['status is OK'].name,
              JSON.stringify([1].map(() => 1).name), g0(), fns.map((h) => h()).join(','),
              d({ a: 1, b: [2] }, undefined, 'x', 'y'), new C().m(), k.call({ x: 5 }, 1), typeof as);
}
)");
  ASSERT_TRUE(rt.ok()) << rt.status();
  ASSERT_TRUE((*rt)->Call("default", std::nullopt).ok());
  // statusIsOK: Babel's name for a key that is no identifier (k6 says
  // 'status is OK'); the rest as in k6.
  EXPECT_THAT(host_.logs, ElementsAre("undefined TypeError f a statusIsOK undefined 7 0,1,2 7 11 6 function",
                                      "async 42"));
}

// An iteration calling check() with arrow functions leaves nothing that
// only mark-and-sweep frees (tests/bench/README.md, "Busy VUs over time"):
// Babel's named function expressions were reference cycles, each holding
// the iteration's environment, 4 objects or more per iteration.
TEST_F(RuntimeTest, AnIterationLeavesNoGarbageForMarkAndSweep) {
  auto rt = Init(R"(
import { check, group } from 'k6';
const OK = 0;
export default () => {
  const response = { status: OK, message: { reply: 'hi' } };
  check(response, { 'status is OK': (r) => r && r.status === OK, 'has reply': (r) => !!r.message.reply });
  group('g', () => { [1, 2].map((x) => x + response.status); });
};
)");
  ASSERT_TRUE(rt.ok()) << rt.status();
  duk_context* ctx = (*rt)->ctx();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE((*rt)->Call("default", std::nullopt).ok());  // lazy set-up done
  duk_gc(ctx, 0);
  SetGcCountdown(ctx, 1 << 30);  // no voluntary collection in between
  const size_t before = CountHeapObjects(ctx);
  constexpr int kIterations = 200;
  for (int i = 0; i < kIterations; ++i) ASSERT_TRUE((*rt)->Call("default", std::nullopt).ok());
  const size_t after = CountHeapObjects(ctx);
  duk_gc(ctx, 0);
  const size_t collected = after - CountHeapObjects(ctx);
  EXPECT_LT(collected, 10u) << "objects only mark-and-sweep freed after " << kIterations << " iterations";
  EXPECT_LT(after - before, 10u);
}

TEST_F(RuntimeTest, TestAbortStopsWithReason) {
  auto rt = Init("import exec from 'k6/execution';\nexport default () => { exec.test.abort('enough'); };\n");
  ASSERT_TRUE(rt.ok()) << rt.status();
  EXPECT_FALSE((*rt)->Call("default", std::nullopt).ok());
  EXPECT_EQ(host_.aborted, "test aborted: enough");
}

}  // namespace
}  // namespace barrage::agent::js

// k6/encoding, k6/crypto, k6/data and k6's path rules for open() and
// imports, with the cases of k6's own tests (internal/js/modules/k6/
// {encoding,crypto,data}/*_test.go, internal/js/path_resolution_test.go)
// run in real runtimes: a recording init pass, then VUs from its bundle.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "agent/js/runtime.h"
#include "agent/js/transform.h"

namespace barrage::agent::js {
namespace {

using ::testing::HasSubstr;

class Host : public VuHost {
 public:
  void Block(const std::function<void(Resume)>& start) override { start([] {}); }
  void Sleep(absl::Duration) override {}
  bool Interrupted() const override { return false; }
  absl::Status DefineMetric(const metrics::MetricDef&) override { return absl::OkStatus(); }
  void Emit(const std::string&, const std::string&, double) override {}
  void Log(LogLevel, std::string_view message) override { logs.emplace_back(message); }
  void AbortTest(const std::string&) override {}
  std::vector<std::string> logs;
};

class ModulesTest : public ::testing::Test {
 protected:
  static Transformer& Babel() {
    static Transformer* t = Transformer::Create()->release();
    return *t;
  }
  // Writes the files (main is "script.js" unless named) and runs the init
  // pass in recording mode.
  absl::StatusOr<std::unique_ptr<Runtime>> Init(const std::string& main_source,
                                                std::map<std::string, std::string> extra = {},
                                                const std::string& main_name = "script.js") {
    dir_ = std::filesystem::temp_directory_path() /
           ("barrage_mod_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    std::filesystem::create_directories(dir_);
    extra[main_name] = main_source;
    for (const auto& [name, text] : extra) {
      std::filesystem::create_directories((dir_ / name).parent_path());
      std::ofstream(dir_ / name) << text;
    }
    bundle_ = std::make_shared<Bundle>();
    bundle_->main_path = (dir_ / main_name).string();
    RuntimeConfig rc;
    rc.host = &host_;
    rc.env = {{"DIR", dir_.string()}};  // the scripts' folder, for texts that name it
    rc.transformer = &Babel();
    rc.recording = bundle_.get();
    return Runtime::Create(std::move(rc));
  }
  // A VU from the recorded bundle (the disk is not read again).
  absl::StatusOr<std::unique_ptr<Runtime>> Vu(int64_t id, VuHost* host = nullptr) {
    if (bundle_->bytecode.empty()) {
      absl::Status st = Runtime::CompileBundle(*bundle_);
      if (!st.ok()) return st;
    }
    RuntimeConfig rc;
    rc.vu_id = id;
    rc.host = host != nullptr ? host : &host_;
    rc.bundle = bundle_;
    return Runtime::Create(std::move(rc));
  }
  // Init, then the default function once in the init pass's runtime.
  absl::Status RunDefault(const std::string& main_source, std::map<std::string, std::string> extra = {}) {
    absl::StatusOr<std::unique_ptr<Runtime>> rt = Init(main_source, std::move(extra));
    if (!rt.ok()) return rt.status();
    return (*rt)->Call("default", std::nullopt).status();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Host host_;
  std::shared_ptr<Bundle> bundle_;
  std::filesystem::path dir_;
  static inline int counter_ = 0;
};

// Scripts throw on the first mismatch; eq() names the case.
constexpr char kEq[] = R"(
function eq(got, want, what) {
  if (got !== want) throw new Error(what + ': got ' + JSON.stringify(got) + ', want ' + JSON.stringify(want));
}
function throws(fn, want, what) {
  try { fn(); } catch (e) {
    if (String(e).indexOf(want) === -1) throw new Error(what + ': threw ' + e + ', want ' + want);
    return;
  }
  throw new Error(what + ': did not throw');
}
)";

// ---------------------------------------------------------------- k6/encoding

TEST_F(ModulesTest, EncodingCasesOfK6) {
  absl::Status st = RunDefault(std::string(kEq) + R"(
import encoding from 'k6/encoding';
import { b64encode, b64decode } from 'k6/encoding';
function text(ab) { return decodeURIComponent(escape(String.fromCharCode.apply(null, new Uint8Array(ab)))); }
export default function () {
  eq(encoding.b64encode('hello world'), 'aGVsbG8gd29ybGQ=', 'DefaultEnc');
  eq(text(encoding.b64decode('aGVsbG8gd29ybGQ=')), 'hello world', 'DefaultDec');
  eq(b64encode(new Uint8Array([104, 101, 108, 108, 111]).buffer), 'aGVsbG8=', 'DefaultArrayBufferEnc');
  eq(text(b64decode('aGVsbG8=')), 'hello', 'DefaultArrayBufferDec');
  eq(b64encode('こんにちは世界', 'std'), '44GT44KT44Gr44Gh44Gv5LiW55WM', 'DefaultUnicodeEnc');
  eq(text(b64decode('44GT44KT44Gr44Gh44Gv5LiW55WM')), 'こんにちは世界', 'DefaultUnicodeDec');
  eq(b64encode('hello world', 'std'), 'aGVsbG8gd29ybGQ=', 'StdEnc');
  eq(b64decode('aGVsbG8gd29ybGQ=', 'std', 's'), 'hello world', 'StdDec');
  eq(b64encode('hello world', 'rawstd'), 'aGVsbG8gd29ybGQ', 'RawStdEnc');
  eq(b64decode('aGVsbG8gd29ybGQ', 'rawstd', 's'), 'hello world', 'RawStdDec');
  eq(b64encode('小飼弾..', 'url'), '5bCP6aO85by-Li4=', 'URLEnc');
  eq(b64decode('5bCP6aO85by-Li4=', 'url', 's'), '小飼弾..', 'URLDec');
  eq(b64encode('小飼弾..', 'rawurl'), '5bCP6aO85by-Li4', 'RawURLEnc');
  eq(b64decode('5bCP6aO85by-Li4', 'rawurl', 's'), '小飼弾..', 'RawURLDec');
  // Beyond k6's table: characters outside the BMP go as UTF-8 both ways.
  eq(b64encode('😀'), '8J+YgA==', 'astral enc');
  eq(b64decode('8J+YgA==', 'std', 's'), '😀', 'astral dec');
  eq(b64decode('/w==', 'std', 's'), '\ufffd', 'invalid UTF-8 becomes U+FFFD, as in Go');
  throws(function () { b64decode('aGVsbG8'); }, 'illegal base64 data at input byte 4', 'missing padding');
  throws(function () { b64decode('aGVsbG8=', 'rawstd'); }, 'illegal base64 data at input byte 7', 'padding in raw');
  throws(function () { b64encode(5); }, 'invalid type int64, expected string, []byte or ArrayBuffer', 'number');
  throws(function () { b64encode(); }, 'invalid type <nil>', 'undefined');
}
)");
  EXPECT_TRUE(st.ok()) << st;
}

// Numbers a plain cast to int64 would make undefined behaviour of (NaN,
// infinities, beyond 2^63): clang's UBSan (float-cast-overflow) reported
// them before values.h's JsNumberToInt64; here they get goja's answers.
TEST_F(ModulesTest, NumbersBeyondInt64AreHandledAsGojaDoes) {
  absl::Status st = RunDefault(std::string(kEq) + R"(
import { b64encode } from 'k6/encoding';
import { randomSeed } from 'k6';
import grpc from 'k6/net/grpc';
export default function () {
  throws(function () { b64encode(-5); }, 'invalid type int64,', 'small integer');
  throws(function () { b64encode(-9223372036854775808); }, 'invalid type int64,', '-2^63');
  throws(function () { b64encode(9223372036854775808); }, 'invalid type float64,', '2^63');
  throws(function () { b64encode(1e300); }, 'invalid type float64,', '1e300');
  throws(function () { b64encode(-Infinity); }, 'invalid type float64,', '-Infinity');
  throws(function () { b64encode(NaN); }, 'invalid type float64,', 'NaN');
  function draw(seed) { randomSeed(seed); return Math.random(); }
  eq(draw(NaN), draw(0), 'randomSeed(NaN) is randomSeed(0)');
  eq(draw(1e300), draw(Infinity), 'seeds past 2^63 saturate');
  eq(draw(-1e300), draw(-Infinity), 'seeds below -2^63 saturate');
  eq(draw(2.9), draw(2), 'the fraction is dropped');
  const client = new grpc.Client();
  throws(function () { client.connect('127.0.0.1:1', { plaintext: true, maxReceiveSize: 1e300 }); },
         'invalid maxReceiveSize value', 'maxReceiveSize 1e300');
  throws(function () { client.connect('127.0.0.1:1', { plaintext: true, maxSendSize: Infinity }); },
         'invalid maxSendSize value', 'maxSendSize Infinity');
}
)");
  EXPECT_TRUE(st.ok()) << st;
}

// ---------------------------------------------------------------- k6/crypto

TEST_F(ModulesTest, CryptoAlgorithmsStreamingAndEncodingsOfK6) {
  absl::Status st = RunDefault(std::string(kEq) + R"(
import crypto from 'k6/crypto';
export default function () {
  eq(crypto.randomBytes(5).byteLength, 5, 'RandomBytesSuccess');
  throws(function () { crypto.randomBytes(-1); }, 'invalid size', 'RandomBytesInvalidSize');
  eq(crypto.md4('hello world', 'hex'), 'aa010fbc1d14c795d86ef98c95479d17', 'MD4');
  eq(crypto.md5('hello world', 'hex'), '5eb63bbbe01eeed093cb22bb8f5acdc3', 'MD5');
  eq(crypto.sha1('hello world', 'hex'), '2aae6c35c94fcfb415dbe95f408b9ce91ee846ed', 'SHA1');
  eq(crypto.sha256('hello world', 'hex'), 'b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9', 'SHA256');
  eq(crypto.sha384('hello world', 'hex'), 'fdbd8e75a67f29f701a4e040385e2e23986303ea10239211af907fcbb83578b3e417cb71ce646efd0819dd8c088de1bd', 'SHA384');
  eq(crypto.sha512('hello world', 'hex'), '309ecc489c12d6eb4cc40f50c902f2b4d0ed77ee511a7c7a9bcd3ca86d4cd86f989dd35bc5ff499670da34255b45b0cfd830e81f605dcf7dc5542e93ae9cd76f', 'SHA512');
  eq(crypto.sha512_224('hello world', 'hex'), '22e0d52336f64a998085078b05a6e37b26f8120f43bf4db4c43a64ee', 'SHA512_224');
  eq(crypto.sha512_256('hello world', 'hex'), '0ac561fac838104e3f2e4ad107b4bee3e938bf15f2b15f009ccccd61a913f017', 'SHA512_256');
  eq(crypto.ripemd160('hello world', 'hex'), '98c615784ccb5fe5936fbc0cbe9dfdb408d92f0f', 'RIPEMD160');

  eq(crypto.createHash('md5').digest('hex'), 'd41d8cd98f00b204e9800998ecf8427e', 'Empty');
  var once = crypto.createHash('md5');
  once.update('hello world');
  eq(once.digest('hex'), '5eb63bbbe01eeed093cb22bb8f5acdc3', 'UpdateOnce');
  var multi = crypto.createHash('md5');
  multi.update('hello'); multi.update(' '); multi.update('world');
  eq(multi.digest('hex'), '5eb63bbbe01eeed093cb22bb8f5acdc3', 'UpdateMultiple');

  // One hasher digested again and again, in every encoding (TestOutputEncoding).
  var h = crypto.createHash('md5');
  h.update('hello world');
  eq(h.digest('hex'), '5eb63bbbe01eeed093cb22bb8f5acdc3', 'hex');
  eq(h.digest('base64'), 'XrY7u+Ae7tCTyyK7j1rNww==', 'base64');
  eq(h.digest('base64url'), 'XrY7u-Ae7tCTyyK7j1rNww==', 'base64url');
  eq(h.digest('base64rawurl'), 'XrY7u-Ae7tCTyyK7j1rNww', 'base64rawurl');
  eq(Array.prototype.join.call(new Uint8Array(h.digest('binary')), ','),
     '94,182,59,187,224,30,238,208,147,203,34,187,143,90,205,195', 'binary');
  throws(function () { h.digest('someInvalidEncoding'); }, 'invalid output encoding: someInvalidEncoding', 'Invalid');

  eq(crypto.hexEncode('hello'), '68656c6c6f', 'hexEncode string');
  eq(crypto.hexEncode(new Uint8Array([104, 101, 108, 108, 111]).buffer), '68656c6c6f', 'hexEncode ArrayBuffer');
  throws(function () { crypto.hexEncode({}); }, 'invalid type map[string]interface {}, expected string, []byte or ArrayBuffer', 'hexEncode type');
  throws(function () { crypto.md5(5, 'hex'); }, 'md5 failed: invalid type int64', 'md5 input');
}
)");
  EXPECT_TRUE(st.ok()) << st;
}

TEST_F(ModulesTest, HmacOfK6) {
  // TestHMac: each algorithm through createHMAC, hmac() and an ArrayBuffer.
  absl::Status st = RunDefault(std::string(kEq) + R"(
import crypto from 'k6/crypto';
var want = {
  md4: '92d8f5c302cf04cca0144d7a9feb1596',
  md5: 'e04f2ec05c8b12e19e46936b171c9d03',
  sha1: 'c113b62711ff5d8e8100bbb17b998591af81dc24',
  sha256: '7fd04df92f636fd450bc841c9418e5825c17f33ad9c87c518115a45971f7f77e',
  sha384: 'd331e169e2dcfc742e80a3bf4dcc76d0e6425ab3777a3ac217ac6b2552aad5529ed4d40135b06e53a495ac7425d1e462',
  sha512_224: 'bac4e6256bdbf81d029aec48af4fdd4b14001db6721f07c429a80817',
  sha512_256: 'e3d0763ba92a4f40676c3d5b234d9842b71951e6e0767082cfb3f5e14c124b22',
  sha512: 'cd3146f96a3005024108ff56b025517552435589a4c218411f165da0a368b6f47228b20a1a4bf081e4aae6f07e2790f27194fc77f0addc890e98ce1951cacc9f',
  ripemd160: '00bb4ce0d6afd4c7424c9d01b8a6caa3e749b08b'
};
export default function () {
  Object.keys(want).forEach(function (alg) {
    var hasher = crypto.createHMAC(alg, 'a secret');
    hasher.update('some data to hash');
    eq(hasher.digest('hex'), want[alg], alg + ' hasher');
    eq(crypto.hmac(alg, 'a secret', 'some data to hash', 'hex'), want[alg], alg + ' wrapper');
    var data = new Uint8Array([115, 111, 109, 101, 32, 100, 97, 116, 97, 32, 116, 111, 32, 104, 97, 115, 104]).buffer;
    eq(crypto.hmac(alg, 'a secret', data, 'hex'), want[alg], alg + ' ArrayBuffer');
  });
  ['md6', 'sha526', 'sha348'].forEach(function (alg) {
    throws(function () { crypto.createHMAC(alg, 'a secret'); }, 'invalid algorithm: ' + alg, alg + ' hasher');
    throws(function () { crypto.hmac(alg, 'a secret', 'some data to hash', 'hex'); }, 'invalid algorithm: ' + alg, alg);
  });
  throws(function () { crypto.createHash('md6'); }, 'invalid algorithm: md6', 'createHash');

  // TestAWSv4: signing keys chained through binary HMACs.
  var HmacSHA256 = function (data, key) { return crypto.hmac('sha256', key, data, 'binary'); };
  var key = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
  var kDate = HmacSHA256('20120215', 'AWS4' + key);
  var kRegion = HmacSHA256('us-east-1', kDate);
  var kService = HmacSHA256('iam', kRegion);
  var kSigning = HmacSHA256('aws4_request', kService);
  eq(crypto.hexEncode(kDate), '969fbb94feb542b71ede6f87fe4d5fa29c789342b0f407474670f0c2489e0a0d', 'kDate');
  eq(crypto.hexEncode(kRegion), '69daa0209cd9c5ff5c8ced464a696fd4252e981430b10e3d3fd8e2f197d7a70c', 'kRegion');
  eq(crypto.hexEncode(kService), 'f72cfd46f26bc4643f06a11eabb6c0ba18780c19a8da0c31ace671265e3c87fa', 'kService');
  eq(crypto.hexEncode(kSigning), 'f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d', 'kSigning');
}
)");
  EXPECT_TRUE(st.ok()) << st;
}

// ---------------------------------------------------------------- k6/data

constexpr char kMakeArray[] = R"(
import { SharedArray } from 'k6/data';
export const array = new SharedArray('shared', function () {
  console.log('building');
  var n = 50, arr = new Array(n);
  for (var i = 0; i < n; i++) arr[i] = { value: 'something' + i };
  return arr;
});
)";

TEST_F(ModulesTest, SharedArrayConstructorExceptionsOfK6) {
  absl::StatusOr<std::unique_ptr<Runtime>> rt = Init(std::string(kEq) + R"(
import { SharedArray } from 'k6/data';
throws(function () { new SharedArray('wat', function () { return 'whatever'; }); }, 'only arrays can be made into SharedArray', 'returning string');
throws(function () { new SharedArray('', function () { return []; }); }, "empty name provided to SharedArray's constructor", 'empty name');
var s = new SharedArray('wat2', function () { return [{ s: function () {} }]; });
eq(s[0].s, undefined, 'function in the data');
throws(function () { new SharedArray('wat3', 'astring'); }, 'a function is expected', 'not a function');
throws(function () { SharedArray('wat4', function () { return []; }); }, "cannot be invoked without 'new'", 'no new');
// The function's own exception, with its line.
throws(function () { new SharedArray('wat5', function () { throw new Error('boom'); }); }, 'boom', 'fn throws');
export default function () {
  throws(function () { new SharedArray('late', function () { return []; }); }, 'new SharedArray must be called in the init context', 'in a VU');
}
)");
  ASSERT_TRUE(rt.ok()) << rt.status();
  EXPECT_TRUE((*rt)->Call("default", std::nullopt).ok());
}

TEST_F(ModulesTest, SharedArrayIsBuiltOnceAndReadOnlyOnEveryVu) {
  absl::StatusOr<std::unique_ptr<Runtime>> init = Init(std::string(kEq) + kMakeArray + R"(
export default function () {
  // TestSharedArrayAnotherRuntimeWorking
  eq(array[2].value, 'something2', 'array[2]');
  eq(array.length, 50, 'length');
  var i = 0;
  for (var v of array) { eq(v.value, 'something' + i, 'for-of ' + i); i++; }
  i = 0;
  array.forEach(function (v) { eq(v.value, 'something' + i, 'forEach ' + i); i++; });
  eq(Array.isArray(array), true, 'isArray');
  eq(array.slice(48).map(function (v) { return v.value; }).join(), 'something48,something49', 'slice, map');
  eq(array[50], undefined, 'past the end');
  eq(array[-1], undefined, 'negative');
  eq(JSON.stringify(array[1]), '{"value":"something1"}', 'JSON');
  // TestSharedArrayAnotherRuntimeExceptions (Duktape's own texts where the
  // engine, not k6, refuses).
  throws(function () { for (var v of array) { v.data = 'bad'; } }, 'TypeError', 'setting in for-of');
  throws(function () { array[2].data2 = 'bad2'; }, 'TypeError', 'setting from index');
  throws(function () { array.something = 'something'; }, 'Cannot set property "something" on a dynamic array', 'property');
  throws(function () { array[2] = 'something'; }, 'SharedArray is immutable', 'index');
  throws(function () { delete array[2]; }, 'SharedArray is immutable', 'delete');
  eq(Object.isFrozen(array[3]), true, 'frozen');
}
)");
  ASSERT_TRUE(init.ok()) << init.status();
  EXPECT_EQ(host_.logs, std::vector<std::string>{"building"});
  // VUs of the run share one array: its function runs on the first only.
  Host first_host;
  absl::StatusOr<std::unique_ptr<Runtime>> first = Vu(1, &first_host);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first_host.logs, std::vector<std::string>{"building"});
  Host second_host;
  absl::StatusOr<std::unique_ptr<Runtime>> second = Vu(2, &second_host);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second_host.logs.empty());
  absl::StatusOr<std::string> r = (*second)->Call("default", std::nullopt);
  EXPECT_TRUE(r.ok()) << r.status();
}

TEST_F(ModulesTest, SharedArrayRaceInInitializationBuildsOnce) {
  // TestSharedArrayRaceInInitialization: VUs initialised at once on several
  // threads, as the workers do; the function runs on one of them.
  ASSERT_TRUE(Init(std::string(kMakeArray) + "export default function () {}\n").ok());
  ASSERT_TRUE(Runtime::CompileBundle(*bundle_).ok());
  constexpr int kVus = 8;
  std::vector<Host> hosts(kVus);
  std::vector<std::thread> threads;
  std::atomic<int> failed{0};
  for (int i = 0; i < kVus; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<std::unique_ptr<Runtime>> vu = Vu(i + 1, &hosts[i]);
      if (!vu.ok()) failed++;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  int builds = 0;
  for (const Host& h : hosts) builds += static_cast<int>(h.logs.size());
  EXPECT_EQ(builds, 1);
}

// ---------------------------------------------------------------- paths

// k6's path_resolution_test.go, with the main script importing
// A/A/A/A/script.js as k6's test does.
TEST_F(ModulesTest, OpenIsRelativeToTheModuleWhoseTopLevelRuns) {
  const std::string main = "export { default } from './A/A/A/A/script.js';\n";
  // open simple
  ASSERT_TRUE(Init(main, {{"A/B/data.txt", "data file"},
                          {"A/A/A/A/script.js", "export let data = open('../../../B/data.txt');\n"
                                                "if (data != 'data file') throw new Error('wrong content ' + data);\n"
                                                "export default function () {}\n"}},
                   "main.js")
                  .ok());
  // open intermediate
  auto rt = Init(main, {{"A/B/data.txt", "data file"},
                        {"A/C/B/script.js", "module.exports = open('../../B/data.txt');\n"},
                        {"A/A/A/A/script.js", "let data = require('./../../../C/B/script.js');\n"
                                              "if (data != 'data file') throw new Error('wrong content ' + data);\n"
                                              "export default function () {}\n"}},
                 "main.js");
  EXPECT_TRUE(rt.ok()) << rt.status();
  // open complex: a function of one module called by another's top level
  // opens relative to the caller, as in k6 (which warns about it).
  rt = Init(main, {{"A/B/data.txt", "data file"},
                   {"A/C/B/script.js", "module.exports = () => open('./../data.txt');\n"},
                   {"A/B/B/script.js", "module.exports = require('./../../C/B/script.js')();\n"},
                   {"A/A/A/A/script.js", "let data = require('./../../../B/B/script.js');\n"
                                         "if (data != 'data file') throw new Error('wrong content ' + data);\n"
                                         "export default function () {}\n"}},
            "main.js");
  EXPECT_TRUE(rt.ok()) << rt.status();
  // And the bundle holds clean keys a VU finds again.
  EXPECT_EQ(bundle_->files.count((dir_ / "A/B/data.txt").string()), 1u);
  auto vu = Vu(1);
  EXPECT_TRUE(vu.ok()) << vu.status();
}

TEST_F(ModulesTest, ImportsAreRelativeToTheModuleTheyAreWrittenIn) {
  const std::string main = "export { default } from './A/A/A/A/script.js';\n";
  // require complex
  auto rt = Init(main, {{"A/B/data.js", "module.exports = 'export content'"},
                        {"A/C/B/script.js", "module.exports = () => require('./../../B/data.js');\n"},
                        {"A/B/B/script.js", "module.exports = require('./../../C/B/script.js')();\n"},
                        {"A/A/A/A/script.js", "let data = require('./../../../B/B/script.js');\n"
                                              "if (data != 'export content') throw new Error('wrong ' + data);\n"
                                              "export default function () {}\n"}},
                 "main.js");
  EXPECT_TRUE(rt.ok()) << rt.status();
  // require complex wrong
  rt = Init(main, {{"A/B/data.js", "module.exports = 'export content'"},
                   {"A/C/B/script.js", "module.exports = () => require('./../data.js');\n"},
                   {"A/B/B/script.js", "module.exports = require('./../../C/B/script.js')();\n"},
                   {"A/A/A/A/script.js", "let data = require('./../../../B/B/script.js');\n"
                                         "export default function () {}\n"}},
            "main.js");
  ASSERT_FALSE(rt.ok());
  EXPECT_THAT(std::string(rt.status().message()),
              HasSubstr("The moduleSpecifier \"./../data.js\" couldn't be found on local disk."));
  // full ESM, with "//" and "." in the specifiers.
  rt = Init(main, {{"A/B/data.js", "export default 'export content'"},
                   {"A/C/B/script.js", "export default function () { return require('./../..//B/./data.js').default; }\n"},
                   {"A/B/B/script.js", "import s from './../../C/B/script.js';\nlet l = s();\nexport default l;\n"},
                   {"A/A/A/A/script.js", "import data from './../../..//B/B/script.js';\n"
                                         "if (data != 'export content') throw new Error('wrong ' + data);\n"
                                         "export default function () {}\n"}},
            "main.js");
  EXPECT_TRUE(rt.ok()) << rt.status();
  for (const auto& [key, source] : bundle_->modules) {
    EXPECT_EQ(key.find("//"), std::string::npos) << key;
    EXPECT_EQ(key.find("/."), std::string::npos) << key;
  }
}

TEST_F(ModulesTest, SpecifiersK6RefusesAreScriptErrors) {
  for (const auto& [spec, want] : std::vector<std::pair<std::string, std::string>>{
           {"http://example.com/x.js", "only supported schemes for imports are file and https"},
           {"github.com/a/b/c.js", "github.com 'special' urls are no longer supported"},
           {"lodash", "The moduleSpecifier \"lodash\" couldn't be recognised as something k6 supports."},
           {"./missing.js", "The moduleSpecifier \"./missing.js\" couldn't be found on local disk."},
       }) {
    auto rt = Init("import x from '" + spec + "';\nexport default function () {}\n");
    ASSERT_FALSE(rt.ok()) << spec;
    EXPECT_THAT(std::string(rt.status().message()), HasSubstr(want)) << spec;
  }
  // A remote module needs a fetcher; the init pass here has none.
  auto rt = Init("import x from 'https://example.com/x.js';\nexport default function () {}\n");
  ASSERT_FALSE(rt.ok());
  EXPECT_THAT(std::string(rt.status().message()),
              HasSubstr("The moduleSpecifier \"https://example.com/x.js\" couldn't be retrieved from the resolved url"));
}

TEST_F(ModulesTest, AProtoImportHoldingANulIsRefused) {
  // A proto's own import string may hold \0: the disk must never see a
  // shorter name than the one written.
  auto rt = Init(std::string(kEq) + R"(
import grpc from 'k6/net/grpc';
throws(function () { new grpc.Client().load([], 'a.proto'); }, 'holds a NUL character', 'import with NUL');
export default function () {}
)",
                 {{"a.proto", "syntax = \"proto3\";\nimport \"b\\0.proto\";\n"}, {"b", "x"}});
  EXPECT_TRUE(rt.ok()) << rt.status();
  EXPECT_EQ(bundle_->files.count(dir_.string() + "/b"), 0u);
}

TEST_F(ModulesTest, OpenErrorsReadAsK6s) {
  auto rt = Init(std::string(kEq) + R"(
throws(function () { open(''); }, "open() can't be used with an empty filename", 'empty');
throws(function () { open('./sub'); }, "open() can't be used with directories, path: \"" + __ENV.DIR + "/sub\"", 'directory');
throws(function () { open('nope.txt'); }, 'stat ' + __ENV.DIR + '/nope.txt: no such file or directory', 'missing');
throws(function () { open('x\u0000.txt'); }, 'NUL', 'NUL');
eq(open('file://' + __ENV.DIR + '/sub/../sub//x.txt'), 'x', 'file:// and unclean');
// Names outside the BMP reach the disk as UTF-8, not as surrogate pairs.
import { smile } from './😀/m.js';
eq(open('./😀/é.txt'), 'ok', 'non-ASCII name');
eq(smile, ':)', 'non-ASCII module');
export default function () {}
)",
                 {{"sub/x.txt", "x"}, {"😀/é.txt", "ok"}, {"😀/m.js", "export const smile = ':)';\n"}});
  ASSERT_TRUE(rt.ok()) << rt.status();
  EXPECT_EQ(bundle_->files.count(dir_.string() + "/sub/x.txt"), 1u);
}

}  // namespace
}  // namespace barrage::agent::js

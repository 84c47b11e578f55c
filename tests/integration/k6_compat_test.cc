// k6's own gRPC module tests, ported (issue 12, item 6): the cases of k6's
// internal/js/modules/k6/grpc/client_test.go, stream_test.go,
// params_test.go and internal/lib/netext/grpcext/conn_test.go that a
// script can reach, each run by a real `barrage run` against barrage-target
// on loopback. k6 runs each case's JS inside a VU against its own Go test
// server (grpc.testing.TestService and friends, answers scripted per case);
// here the same JS calls hello.HelloService, and the answers k6 scripts in
// Go come from barrage-target's request metadata (x-echo-*, x-fail-status,
// x-authority) and flags. Expected texts and outcomes are k6's: an error
// case passes when the thrown message contains k6's text (k6's tests use
// ErrorContains). The README lists the cases left out and the adaptations.
//
// To keep the file fast, one script runs many cases: each case's outcome is
// one console.log line, "CASE <name> ok[ <value>]" or "CASE <name> err
// <message>", parsed here and compared with k6's expectation.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "tests/integration/fixture.h"
#include "tests/testing/child_process.h"
#include "tests/testing/paths.h"

namespace barrage {
namespace {

using namespace std::chrono_literals;

// k6's expectation for a case: "ok" or "ok <value>" (the whole outcome), or
// "err <text>" (the thrown message must contain text).
using Expectations = std::vector<std::pair<std::string, std::string>>;

class K6CompatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testutil::TempDir();
    std::filesystem::create_directories(dir_ + "/definitions");
    std::filesystem::copy_file(testutil::SourcePath("scripts/examples/definitions/hello.proto"),
                               dir_ + "/definitions/hello.proto");
    // Two replies, 200 ms apart, as k6's "slower" route guide stub sends
    // in its stream tests; hello.NotServing for the health checks.
    address_ = StartTarget({"--stream-count", "2", "--stream-interval", "200ms", "--not-serving", "hello.NotServing"});
  }
  void TearDown() override {
    targets_.clear();
    std::filesystem::remove_all(dir_);
  }

  std::string StartTarget(std::vector<std::string> args) {
    args.insert(args.begin(), {"--listen", "127.0.0.1:0"});
    targets_.push_back(testutil::ChildProcess::Start(testutil::BinaryPath("barrage-target"), args));
    absl::StatusOr<std::string> address = targets_.back()->WaitForAddress(10s);
    EXPECT_TRUE(address.ok()) << address.status();
    return address.ok() ? *address : "127.0.0.1:1";
  }

  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  // Runs the script and returns each case's outcome by name; a case
  // reported twice is an error of the test.
  std::map<std::string, std::string> RunCases(const std::string& script, const std::vector<std::string>& env,
                                              const testutil::EnvExtra& process_env = {}) {
    std::vector<std::string> args = {"run", "--quiet"};
    for (const std::string& e : env) {
      args.push_back("-e");
      args.push_back(e);
    }
    args.push_back(Write("script.js", script));
    last_ = testutil::Run(testutil::BinaryPath("barrage"), args, 60s, process_env);
    EXPECT_EQ(last_.exit_code, 0) << last_.stdout_text << last_.stderr_text;
    std::map<std::string, std::string> outcomes;
    std::istringstream lines(last_.stdout_text + last_.stderr_text);
    constexpr std::string_view kStart = "msg=\"CASE ";
    constexpr std::string_view kEnd = "\" source=console";
    for (std::string line; std::getline(lines, line);) {
      size_t start = line.find(kStart);
      size_t end = line.rfind(kEnd);
      if (start == std::string::npos || end == std::string::npos || end < start) continue;
      std::string text = line.substr(start + kStart.size(), end - start - kStart.size());
      // logfmt's quoting undone.
      text = absl::StrReplaceAll(text, {{"\\\\", "\\"}, {"\\\"", "\""}, {"\\n", "\n"}});
      size_t space = text.find(' ');
      std::string name = text.substr(0, space);
      std::string outcome = space == std::string::npos ? "" : text.substr(space + 1);
      EXPECT_FALSE(outcomes.contains(name)) << "case " << name << " reported twice";
      outcomes[name] = outcome;
    }
    return outcomes;
  }

  void Check(const std::map<std::string, std::string>& outcomes, const Expectations& expected) {
    for (const auto& [name, want] : expected) {
      SCOPED_TRACE("k6 case " + name);
      auto it = outcomes.find(name);
      if (it == outcomes.end()) {
        ADD_FAILURE() << "no outcome reported\n" << last_.stdout_text << last_.stderr_text;
        continue;
      }
      if (want.starts_with("err ")) {
        EXPECT_TRUE(it->second.starts_with("err ")) << it->second;
        EXPECT_THAT(it->second, ::testing::HasSubstr(want.substr(4)));
      } else {
        EXPECT_EQ(it->second, want);
      }
    }
    EXPECT_EQ(outcomes.size(), expected.size()) << "cases reported that the test does not expect";
  }

  std::string dir_;
  std::string address_;
  std::vector<std::unique_ptr<testutil::ChildProcess>> targets_;
  testutil::RunResult last_;
};

// The reporting helpers every script starts with. run() takes a case that
// returns a value (reported), a promise (its outcome reported when it
// settles) or throws (its message reported).
constexpr char kPrelude[] = R"(import grpc from 'k6/net/grpc';
function report(name, outcome) { console.log('CASE ' + name + ' ' + outcome); }
function run(name, fn, arg) {
  try {
    const r = fn(arg);
    if (r && typeof r.then === 'function') {
      r.then(function (v) { report(name, 'ok' + (v === undefined ? '' : ' ' + v)); },
             function (e) { report(name, 'err ' + (e && e.message !== undefined ? e.message : e)); });
      return;
    }
    report(name, 'ok' + (r === undefined ? '' : ' ' + r));
  } catch (e) {
    report(name, 'err ' + e.message);
  }
}
)";

// ------------------------------------------------------------ init context

// client_test.go's cases whose code runs in the init context: k6 runs them
// as the VU's init code; here at the top level of the script, reported
// once (the first init pass, VU 0).
TEST_F(K6CompatTest, ClientInitContext) {
  testutil::RunResult protoset = testutil::Run(
      "/bin/bash", {"-c", "cd '" + dir_ + "' && protoc --include_imports -Idefinitions "
                          "--descriptor_set_out=hello.protoset definitions/hello.proto"}, 30s);
  ASSERT_EQ(protoset.exit_code, 0) << protoset.stderr_text;
  std::filesystem::create_directories(dir_ + "/a/b");
  const std::string script = std::string(kPrelude) + R"(
function once(name, fn) { if (__VU === 0) run(name, fn); }
once('New', () => {
  var client = new grpc.Client();
  if (!client) throw new Error('no client created');
});
once('LoadNotFound', () => { var client = new grpc.Client(); client.load([], './does_not_exist.proto'); });
once('Load', () => { var client = new grpc.Client(); return JSON.stringify(client.load([], 'definitions/hello.proto')); });
once('LoadProtosetNotFound', () => { var client = new grpc.Client(); client.loadProtoset('./does_not_exist.protoset'); });
once('LoadProtosetWrongFormat', () => { var client = new grpc.Client(); client.loadProtoset('definitions/hello.proto'); });
once('LoadProtoset', () => { var client = new grpc.Client(); return JSON.stringify(client.loadProtoset('hello.protoset')); });
once('ConnectInit', () => {
  var client = new grpc.Client();
  client.load([], 'definitions/hello.proto');
  client.connect();
});
once('InvokeInit', () => {
  var client = new grpc.Client();
  client.load([], 'definitions/hello.proto');
  var err = client.invoke();
  throw new Error(err);
});
once('NoConnect', () => {
  var client = new grpc.Client();
  client.load([], 'definitions/hello.proto');
  client.invoke('hello.HelloService/SayHello', {});
});
// TestClientLoadProtoAbsoluteRootWithFile: an absolute import path, a file
// reached from it through "../..".
once('LoadProtoAbsoluteRootWithFile', () => {
  var client = new grpc.Client();
  return client.load([__ENV.ROOT + '/a/b'], '../../definitions/hello.proto').length;
});
export default function () {}
)";
  const std::string methods =
      R"([{"package":"hello","service":"HelloService","full_method":"/hello.HelloService/SayHello"},)"
      R"({"package":"hello","service":"HelloService","full_method":"/hello.HelloService/LotsOfReplies"},)"
      R"({"package":"hello","service":"HelloService","full_method":"/hello.HelloService/LotsOfGreetings"},)"
      R"({"package":"hello","service":"HelloService","full_method":"/hello.HelloService/BidiHello"}])";
  Check(RunCases(script, {"ROOT=" + dir_}),
        {
            {"New", "ok"},
            {"LoadNotFound", "err no such file or directory"},
            // k6's MethodInfo as JSON: its embedded grpc.MethodInfo is json:"-".
            {"Load", "ok " + methods},
            {"LoadProtosetNotFound", "err couldn't open protoset"},
            {"LoadProtosetWrongFormat", "err couldn't unmarshal protoset"},
            {"LoadProtoset", "ok " + methods},
            {"ConnectInit", "err connecting to a gRPC server in the init context is not supported"},
            {"InvokeInit", "err invoking RPC methods in the init context is not supported"},
            {"NoConnect", "err invoking RPC methods in the init context is not supported"},
            {"LoadProtoAbsoluteRootWithFile", "ok 4"},
        });
}

// ------------------------------------------------------------- VU context

// client_test.go's TestClient cases that run in a VU, params_test.go's
// (through invoke and connect, where the parsed params show) and
// conn_test.go's Invoke cases. Each case has a client of its own, loaded
// in the init context as in k6. k6's test server speaks TLS and its VU
// trusts it; barrage-target here speaks plaintext, so every connect gets
// plaintext: true (pt()).
constexpr char kVuScript[] = R"(
const ADDR = __ENV.ADDR;
const SAY = 'hello.HelloService/SayHello';
const names = [
  'UnknownConnectParam', 'ConnectInvalidTimeout', 'ConnectStringTimeout', 'ConnectIntegerTimeout',
  'ConnectFloatTimeout', 'Connect', 'InvokeNotFound', 'InvokeInvalidParam', 'AsyncInvokeInvalidParam',
  'InvokeNilRequest', 'InvokeInvalidTimeoutType', 'InvokeInvalidTimeout', 'InvokeStringTimeout',
  'InvokeFloatTimeout', 'InvokeIntegerTimeout', 'InvokeDiscardResponseMessage', 'Invoke',
  'InvokeDiscardResponseMessage_NullMessage', 'AsyncInvoke', 'AsyncInvokeDiscardResponseMessage',
  'RequestMessage', 'AsyncRequestMessage', 'RequestHeaders', 'RequestBinHeaders', 'ResponseMessage',
  'AsyncResponseMessage', 'ResponseError', 'ResponseHeaders', 'ResponseTrailers', 'LoadNotInit',
  'MaxReceiveSizeBadParam', 'MaxReceiveSizeNonPositiveInteger', 'ReceivedMessageLargerThanMax',
  'MaxSendSizeBadParam', 'MaxSendSizeNonPositiveInteger', 'SentMessageLargerThanMax', 'Close',
  'ObjectCyclicReference',
  'Params_InvalidParam', 'Params_InvalidTimeoutType', 'Params_InvalidTimeout', 'Params_InvalidMetadata',
  'Params_EmptyMetadata', 'Params_Metadata', 'Params_DiscardResponseMessageEmpty',
  'Params_DiscardResponseMessageFalse', 'Params_DiscardResponseMessageTrue', 'Params_EmptyAuthority',
  'Params_Authority',
  'Conn_Invoke', 'Conn_InvokeWithDiscardResponseMessage', 'Conn_InvokeReturnError', 'Conn_InvokeEmptyMethod',
];
// Reflection cases: clients without load(), as in k6.
const reflectNames = ['ReflectUnregistered', 'Reflect', 'ReflectBadParam', 'ReflectInvokeNoExist', 'ReflectInvoke',
  'ReflectV1Alpha_Invoke', 'ConnectionReflectMetadata'];
const clients = {};
for (const n of names) {
  clients[n] = new grpc.Client();
  // conn_test.go's hello.proto is proto3; Barrage's example is proto2.
  if (n.indexOf('Conn_') === 0) clients[n].load(['definitions'], 'hello3.proto');
  else clients[n].load(['definitions'], 'hello.proto');
}
for (const n of reflectNames) clients[n] = new grpc.Client();

function pt(o) { o = o || {}; o.plaintext = true; return o; }
function expectOK(resp) {
  if (resp.status !== grpc.StatusOK) throw new Error('unexpected error: ' + JSON.stringify(resp.error) + 'or status: ' + resp.status);
}

const cases = {
  UnknownConnectParam: (c) => { c.connect(ADDR, pt({ name: 'k6' })); },
  ConnectInvalidTimeout: (c) => { c.connect(ADDR, pt({ timeout: 'k6' })); },
  ConnectStringTimeout: (c) => { c.connect(ADDR, pt({ timeout: '1h3s' })); },
  ConnectIntegerTimeout: (c) => { c.connect(ADDR, pt({ timeout: 3000 })); },
  ConnectFloatTimeout: (c) => { c.connect(ADDR, pt({ timeout: 3456.3 })); },
  Connect: (c) => { c.connect(ADDR, pt()); },
  InvokeNotFound: (c) => { c.connect(ADDR, pt()); c.invoke('foo/bar', {}); },
  InvokeInvalidParam: (c) => { c.connect(ADDR, pt()); c.invoke(SAY, {}, { void: true }); },
  AsyncInvokeInvalidParam: (c) => {
    c.connect(ADDR, pt());
    return c.asyncInvoke(SAY, {}, { void: true }).then(function () { throw new Error('should not be here'); });
  },
  InvokeNilRequest: (c) => { c.connect(ADDR, pt()); c.invoke(SAY); },
  InvokeInvalidTimeoutType: (c) => { c.connect(ADDR, pt()); c.invoke(SAY, {}, { timeout: true }); },
  InvokeInvalidTimeout: (c) => { c.connect(ADDR, pt()); c.invoke(SAY, {}, { timeout: 'please' }); },
  InvokeStringTimeout: (c) => { c.connect(ADDR, pt()); expectOK(c.invoke(SAY, {}, { timeout: '1h42m' })); },
  InvokeFloatTimeout: (c) => { c.connect(ADDR, pt()); expectOK(c.invoke(SAY, {}, { timeout: 400.50 })); },
  InvokeIntegerTimeout: (c) => { c.connect(ADDR, pt()); expectOK(c.invoke(SAY, {}, { timeout: 2000 })); },
  InvokeDiscardResponseMessage: (c) => { c.connect(ADDR, pt()); expectOK(c.invoke(SAY, {}, { discardResponseMessage: true })); },
  // k6 asserts a grpc_req_duration sample with the url tag ADDR/method;
  // the threshold on it (options below) checks that here.
  Invoke: (c) => { c.connect(ADDR, pt()); expectOK(c.invoke(SAY, {})); },
  InvokeDiscardResponseMessage_NullMessage: (c) => {
    c.connect(ADDR, pt());
    var resp = c.invoke(SAY, {}, { discardResponseMessage: true });
    expectOK(resp);
    if (resp.message !== null) throw new Error('unexpected message: ' + JSON.stringify(resp.message));
  },
  AsyncInvoke: (c) => {
    c.connect(ADDR, pt());
    return c.asyncInvoke(SAY, {}).then(function (resp) { expectOK(resp); });
  },
  AsyncInvokeDiscardResponseMessage: (c) => {
    c.connect(ADDR, pt());
    return c.asyncInvoke(SAY, {}, { discardResponseMessage: true }).then(function (resp) {
      expectOK(resp);
      if (resp.message !== null) throw new Error('unexpected message: ' + JSON.stringify(resp.message));
    });
  },
  // k6's server checks the request's bytes field ("6LSf6L295rWL6K+V" in
  // base64 is "负载测试"); hello's greeting is a string, echoed in the reply.
  RequestMessage: (c) => {
    c.connect(ADDR, pt());
    var resp = c.invoke(SAY, { greeting: '负载测试' });
    expectOK(resp);
    return resp.message.reply;
  },
  AsyncRequestMessage: (c) => {
    c.connect(ADDR, pt());
    return c.asyncInvoke(SAY, { greeting: '负载测试' }).then(function (resp) { expectOK(resp); return resp.message.reply; });
  },
  // k6's server checks the metadata it got; barrage-target echoes x-echo-*.
  RequestHeaders: (c) => {
    c.connect(ADDR, pt());
    var resp = c.invoke(SAY, {}, { metadata: { 'X-Echo-Load-Tester': 'k6' } });
    expectOK(resp);
    if (!resp.headers['x-echo-load-tester'] || resp.headers['x-echo-load-tester'][0] !== 'k6') {
      throw new Error('failed to send correct headers in the request');
    }
  },
  // The echoed value reads as k6 reads a header: a Go string made a JS
  // string, each invalid UTF-8 byte (200 alone is) U+FFFD; [2, 65] shows
  // the bytes themselves arrived.
  RequestBinHeaders: (c) => {
    c.connect(ADDR, pt());
    var resp = c.invoke(SAY, {}, { metadata: { 'X-Echo-Load-Tester-bin': new Uint8Array([2, 200]), 'x-echo-ascii-bin': new Uint8Array([2, 65]) } });
    expectOK(resp);
    var codes = function (v) { return v.split('').map(function (ch) { return ch.charCodeAt(0); }).join(','); };
    return codes(resp.headers['x-echo-load-tester-bin'][0]) + ' ' + codes(resp.headers['x-echo-ascii-bin'][0]);
  },
  ResponseMessage: (c) => {
    c.connect(ADDR, pt());
    var resp = c.invoke(SAY, { greeting: '水' });
    if (!resp.message || resp.message.reply !== 'hello 水') throw new Error('unexpected response message: ' + JSON.stringify(resp.message));
  },
  AsyncResponseMessage: (c) => {
    c.connect(ADDR, pt());
    return c.asyncInvoke(SAY, { greeting: '水' }).then(function (resp) {
      if (!resp.message || resp.message.reply !== 'hello 水') throw new Error('unexpected response message: ' + JSON.stringify(resp.message));
    });
  },
  ResponseError: (c) => {
    c.connect(ADDR, pt());
    var resp = c.invoke(SAY, {}, { metadata: { 'x-fail-status': '15', 'x-fail-message': 'foobar' } });
    if (resp.status !== grpc.StatusDataLoss) throw new Error('unexpected error status: ' + resp.status);
    if (!resp.error || resp.error.message !== 'foobar' || resp.error.code !== 15) throw new Error('unexpected error object: ' + JSON.stringify(resp.error));
  },
  ResponseHeaders: (c) => {
    c.connect(ADDR, pt());
    var resp = c.invoke(SAY, {}, { metadata: { 'x-echo-foo': 'bar' } });
    expectOK(resp);
    if (!resp.headers || !resp.headers['x-echo-foo'] || resp.headers['x-echo-foo'][0] !== 'bar') throw new Error('unexpected headers object: ' + JSON.stringify(resp.headers));
  },
  ResponseTrailers: (c) => {
    c.connect(ADDR, pt());
    var resp = c.invoke(SAY, {}, { metadata: { 'x-echo-foo': 'bar' } });
    expectOK(resp);
    if (!resp.trailers || !resp.trailers['x-echo-foo'] || resp.trailers['x-echo-foo'][0] !== 'bar') throw new Error('unexpected trailers object: ' + JSON.stringify(resp.trailers));
  },
  LoadNotInit: (c) => { c.load(); },
  MaxReceiveSizeBadParam: (c) => { c.connect(ADDR, pt({ maxReceiveSize: 'error' })); },
  MaxReceiveSizeNonPositiveInteger: (c) => { c.connect(ADDR, pt({ maxReceiveSize: -1 })); },
  ReceivedMessageLargerThanMax: (c) => {
    c.connect(ADDR, pt({ maxReceiveSize: 1 }));
    var resp = c.invoke(SAY, { greeting: 'testMaxReceiveSize' });
    if (resp.status == grpc.StatusResourceExhausted) throw new Error(resp.error.message);
  },
  MaxSendSizeBadParam: (c) => { c.connect(ADDR, pt({ maxSendSize: 'error' })); },
  MaxSendSizeNonPositiveInteger: (c) => { c.connect(ADDR, pt({ maxSendSize: -1 })); },
  SentMessageLargerThanMax: (c) => {
    c.connect(ADDR, pt({ maxSendSize: 1 }));
    var resp = c.invoke(SAY, { greeting: 'testMaxSendSize' });
    if (resp.status == grpc.StatusResourceExhausted) throw new Error(resp.error.message);
  },
  Close: (c) => { c.close(); c.invoke(); },
  ObjectCyclicReference: (c) => {
    c.connect(ADDR, pt());
    var obj1 = {}; var obj2 = {};
    obj1.a = obj2; obj2.b = obj1;
    c.invoke(SAY, obj1);
  },
  ReflectUnregistered: (c) => { c.connect(__ENV.NOREFL_ADDR, pt({ reflect: true })); },
  Reflect: (c) => { c.connect(ADDR, pt({ reflect: true })); },
  ReflectBadParam: (c) => { c.connect(ADDR, pt({ reflect: 'true' })); },
  ReflectInvokeNoExist: (c) => { c.connect(ADDR, pt({ reflect: true })); c.invoke('foo/bar', {}); },
  ReflectInvoke: (c) => { c.connect(ADDR, pt({ reflect: true })); expectOK(c.invoke(SAY, {})); },
  // barrage-target's reflection (gRPC C++ 1.51) is v1alpha only.
  ReflectV1Alpha_Invoke: (c) => { c.connect(ADDR, pt({ reflect: true })); expectOK(c.invoke(SAY, {})); },
  // TestClientConnectionReflectMetadata: k6 reads the metadata back from
  // its httpDebug log; here only that connect takes it.
  ConnectionReflectMetadata: (c) => { c.connect(ADDR, pt({ reflect: true, reflectMetadata: { 'x-test': 'custom-header-for-reflection' } })); },

  // params_test.go: TestCallParamsInvalidInput, TestCallParamsMetadata,
  // TestCallParamsDiscardResponseMessageParse, TestConnectParamsAuthority.
  Params_InvalidParam: (c) => { c.connect(ADDR, pt()); c.invoke(SAY, {}, { void: true }); },
  Params_InvalidTimeoutType: (c) => { c.connect(ADDR, pt()); c.invoke(SAY, {}, { timeout: true }); },
  Params_InvalidTimeout: (c) => { c.connect(ADDR, pt()); c.invoke(SAY, {}, { timeout: 'please' }); },
  Params_InvalidMetadata: (c) => { c.connect(ADDR, pt()); c.invoke(SAY, {}, { metadata: 'lorem' }); },
  Params_EmptyMetadata: (c) => {
    c.connect(ADDR, pt());
    var resp = c.invoke(SAY, {}, {});
    expectOK(resp);
    return Object.keys(resp.headers).filter(function (k) { return k.indexOf('x-echo-') === 0; }).length;
  },
  Params_Metadata: (c) => {
    c.connect(ADDR, pt());
    var resp = c.invoke(SAY, {}, { metadata: { 'x-echo-foo': 'bar', 'x-echo-baz': 'qux' } });
    expectOK(resp);
    return resp.headers['x-echo-foo'][0] + ',' + resp.headers['x-echo-baz'][0];
  },
  Params_DiscardResponseMessageEmpty: (c) => { c.connect(ADDR, pt()); return JSON.stringify(c.invoke(SAY, { greeting: 'x' }, {}).message); },
  Params_DiscardResponseMessageFalse: (c) => { c.connect(ADDR, pt()); return JSON.stringify(c.invoke(SAY, { greeting: 'x' }, { discardResponseMessage: false }).message); },
  Params_DiscardResponseMessageTrue: (c) => { c.connect(ADDR, pt()); return JSON.stringify(c.invoke(SAY, { greeting: 'x' }, { discardResponseMessage: true }).message); },
  // The authority the server saw, echoed as x-authority: "" means the
  // address's, as in grpc-go.
  Params_EmptyAuthority: (c) => {
    c.connect(ADDR, pt({ authority: '' }));
    var resp = c.invoke(SAY, {}, { metadata: { 'x-echo-a': '1' } });
    expectOK(resp);
    return resp.headers['x-authority'][0] === ADDR ? 'address' : resp.headers['x-authority'][0];
  },
  Params_Authority: (c) => {
    c.connect(ADDR, pt({ authority: 'test.grafana.k6.v1' }));
    var resp = c.invoke(SAY, {}, { metadata: { 'x-echo-a': '1' } });
    expectOK(resp);
    return resp.headers['x-authority'][0];
  },

  // conn_test.go: TestInvoke, TestInvokeWithDiscardResponseMessage,
  // TestInvokeReturnError (k6's mock fails the call with "test error"; here
  // the server does, with code Unknown), TestConnInvokeInvalid's empty
  // method (the JS layer's text; its other cases need a nil descriptor or
  // message, which a script cannot pass).
  Conn_Invoke: (c) => {
    c.connect(ADDR, pt());
    var resp = c.invoke(SAY, { greeting: 'text request' });
    return resp.status + ' ' + JSON.stringify(resp.message) + ' ' + JSON.stringify(resp.error);
  },
  Conn_InvokeWithDiscardResponseMessage: (c) => {
    c.connect(ADDR, pt());
    var resp = c.invoke(SAY, {}, { discardResponseMessage: true });
    return resp.status + ' ' + JSON.stringify(resp.message);
  },
  Conn_InvokeReturnError: (c) => {
    c.connect(ADDR, pt());
    var resp = c.invoke(SAY, { greeting: 'text request' }, { metadata: { 'x-fail-status': '2', 'x-fail-message': 'test error' } });
    return resp.status + ' ' + JSON.stringify(resp.message) + ' ' + resp.error.message;
  },
  Conn_InvokeEmptyMethod: (c) => { c.connect(ADDR, pt()); c.invoke('', {}); },
};

export const options = {
  thresholds: { 'grpc_req_duration{url:__ADDR__/hello.HelloService/SayHello}': ['max>0'] },
};

export default function () {
  for (const n of names.concat(reflectNames)) run(n, cases[n], clients[n]);
}
)";

constexpr char kHello3Proto[] = R"(syntax = "proto3";
package hello;
service HelloService {
  rpc SayHello(HelloRequest) returns (HelloResponse);
}
message HelloRequest {
  string greeting = 1;
}
message HelloResponse {
  string reply = 1;
}
)";

TEST_F(K6CompatTest, ClientVuContextParamsAndConn) {
  const std::string no_reflection = StartTarget({"--no-reflection"});
  Write("definitions/hello3.proto", kHello3Proto);
  const std::string script =
      std::string(kPrelude) + absl::StrReplaceAll(kVuScript, {{"__ADDR__", address_}});
  const std::string connect_prefix = "err invalid grpc.connect() parameters: ";
  Check(RunCases(script, {"ADDR=" + address_, "NOREFL_ADDR=" + no_reflection}),
        {
            {"UnknownConnectParam", "err unknown connect param: \"name\""},
            {"ConnectInvalidTimeout", "err invalid duration"},
            {"ConnectStringTimeout", "ok"},
            {"ConnectIntegerTimeout", "ok"},
            {"ConnectFloatTimeout", "ok"},
            {"Connect", "ok"},
            {"InvokeNotFound", "err method \"/foo/bar\" not found in file descriptors"},
            {"InvokeInvalidParam", "err unknown param: \"void\""},
            {"AsyncInvokeInvalidParam", "err unknown param: \"void\""},
            {"InvokeNilRequest", "err request cannot be nil"},
            {"InvokeInvalidTimeoutType", "err invalid timeout value: unable to use type bool as a duration value"},
            {"InvokeInvalidTimeout", "err invalid duration"},
            {"InvokeStringTimeout", "ok"},
            {"InvokeFloatTimeout", "ok"},
            {"InvokeIntegerTimeout", "ok"},
            {"InvokeDiscardResponseMessage", "ok"},
            {"Invoke", "ok"},
            {"InvokeDiscardResponseMessage_NullMessage", "ok"},
            {"AsyncInvoke", "ok"},
            {"AsyncInvokeDiscardResponseMessage", "ok"},
            {"RequestMessage", "ok hello 负载测试"},
            {"AsyncRequestMessage", "ok hello 负载测试"},
            {"RequestHeaders", "ok"},
            {"RequestBinHeaders", "ok 2,65533 2,65"},
            {"ResponseMessage", "ok"},
            {"AsyncResponseMessage", "ok"},
            {"ResponseError", "ok"},
            {"ResponseHeaders", "ok"},
            {"ResponseTrailers", "ok"},
            {"LoadNotInit", "err load must be called in the init context"},
            {"MaxReceiveSizeBadParam",
             connect_prefix + "invalid maxReceiveSize value: '\"error\"', it needs to be an integer"},
            {"MaxReceiveSizeNonPositiveInteger",
             connect_prefix + "invalid maxReceiveSize value: '-1, it needs to be a positive integer"},
            {"ReceivedMessageLargerThanMax", "err received message larger than max"},
            {"MaxSendSizeBadParam", connect_prefix + "invalid maxSendSize value: '\"error\"', it needs to be an integer"},
            {"MaxSendSizeNonPositiveInteger",
             connect_prefix + "invalid maxSendSize value: '-1, it needs to be a positive integer"},
            {"SentMessageLargerThanMax", "err trying to send message larger than max"},
            {"Close", "err no gRPC connection"},
            {"ObjectCyclicReference", "err cyclic reference to an object found"},
            // k6's text goes on "unknown service grpc.reflection.v1alpha.ServerReflection":
            // grpc-go's server says so; a gRPC C++ server's Unimplemented has no text.
            {"ReflectUnregistered", "err can't list services: rpc error: code = Unimplemented desc ="},
            {"Reflect", "ok"},
            {"ReflectBadParam", "err invalid reflect value"},
            {"ReflectInvokeNoExist", "err method \"/foo/bar\" not found in file descriptors"},
            {"ReflectInvoke", "ok"},
            {"ReflectV1Alpha_Invoke", "ok"},
            {"ConnectionReflectMetadata", "ok"},
            {"Params_InvalidParam", "err unknown param: \"void\""},
            {"Params_InvalidTimeoutType", "err invalid timeout value: unable to use type bool as a duration value"},
            {"Params_InvalidTimeout", "err invalid duration"},
            {"Params_InvalidMetadata", "err invalid metadata param: must be an object with key-value pairs"},
            {"Params_EmptyMetadata", "ok 0"},
            {"Params_Metadata", "ok bar,qux"},
            {"Params_DiscardResponseMessageEmpty", "ok {\"reply\":\"hello x\"}"},
            {"Params_DiscardResponseMessageFalse", "ok {\"reply\":\"hello x\"}"},
            {"Params_DiscardResponseMessageTrue", "ok null"},
            {"Params_EmptyAuthority", "ok address"},
            {"Params_Authority", "ok test.grafana.k6.v1"},
            {"Conn_Invoke", "ok 0 {\"reply\":\"hello text request\"} null"},
            {"Conn_InvokeWithDiscardResponseMessage", "ok 0 null"},
            {"Conn_InvokeReturnError", "ok 2 {\"reply\":\"\"} test error"},
            {"Conn_InvokeEmptyMethod", "err method to invoke cannot be empty"},
        });
  // The samples k6's asserts look for: grpc_req_duration with the url tag
  // address/method (the threshold fails the run, exit 99, without them).
  EXPECT_THAT(last_.stdout_text + last_.stderr_text, ::testing::HasSubstr("max>0"));
}

// -------------------------------------------------------------------- TLS

// TestClient_TlsParameters and TestClient's BadTLS. k6's VU trusts its test
// server's certificate through the test's TLS config; here through
// SSL_CERT_FILE, which k6 (Go) reads as the system roots too. k6's EC
// certificates are replaced by ones made here (fixture.h), its encrypted
// key by client-legacy.key (legacy PEM encryption, password "secret").
TEST_F(K6CompatTest, ClientTlsParameters) {
  testutil::MakeCertificates(dir_);
  const std::string tls = StartTarget({"--tls-cert", dir_ + "/server.pem", "--tls-key", dir_ + "/server.key"});
  const std::string mtls = StartTarget({"--tls-cert", dir_ + "/server.pem", "--tls-key", dir_ + "/server.key",
                                        "--tls-client-ca", dir_ + "/ca.pem"});
  // A server whose certificate (self-signed, other-ca) nobody trusts: k6
  // gets there by replacing its VU's TLS config.
  const std::string untrusted =
      StartTarget({"--tls-cert", dir_ + "/other-ca.pem", "--tls-key", dir_ + "/other.key"});
  const std::string script = std::string(kPrelude) + R"(
const ca = open('ca.pem');
const cert = open('client.pem');
const key = open('client.key');
const encrypted = open('client-legacy.key');
const names = ['BadTLS', 'ConnectTlsEmptyTlsSuccess', 'ConnectTlsInvalidTlsParamCertType',
  'ConnectTlsInvalidTlsParamKeyType', 'ConnectTlsInvalidTlsParamPasswordType', 'ConnectTlsInvalidTlsParamCACertsType',
  'ConnectTls', 'ConnectTlsEncryptedKey', 'ConnectTlsEncryptedKeyDecryptionFailed', 'ConnectTlsInvokeSuccess'];
const clients = {};
for (const n of names) clients[n] = new grpc.Client();
clients.ConnectTlsInvokeSuccess.load(['definitions'], 'hello.proto');
const TLS = __ENV.TLS_ADDR, MTLS = __ENV.MTLS_ADDR;
const cases = {
  BadTLS: (c) => { c.connect(__ENV.UNTRUSTED_ADDR, { timeout: '1s' }); },
  ConnectTlsEmptyTlsSuccess: (c) => { c.connect(TLS, { tls: {} }); },
  ConnectTlsInvalidTlsParamCertType: (c) => { c.connect(TLS, { tls: { cert: 0 } }); },
  ConnectTlsInvalidTlsParamKeyType: (c) => { c.connect(TLS, { tls: { cert: '', key: 0 } }); },
  ConnectTlsInvalidTlsParamPasswordType: (c) => { c.connect(TLS, { tls: { cert: '', key: '', password: 0 } }); },
  ConnectTlsInvalidTlsParamCACertsType: (c) => { c.connect(TLS, { tls: { cert: '', key: '', cacerts: 0 } }); },
  ConnectTls: (c) => { c.connect(MTLS, { tls: { cacerts: [ca], cert: cert, key: key } }); },
  ConnectTlsEncryptedKey: (c) => { c.connect(MTLS, { tls: { cacerts: [ca], cert: cert, key: encrypted, password: 'secret' } }); },
  ConnectTlsEncryptedKeyDecryptionFailed: (c) => {
    c.connect(MTLS, { timeout: '5s', tls: { cert: cert, key: encrypted, password: 'wrong' } });
  },
  ConnectTlsInvokeSuccess: (c) => {
    c.connect(MTLS, { timeout: '5s', tls: { cacerts: [ca], cert: cert, key: key } });
    var resp = c.invoke('hello.HelloService/SayHello', {});
    if (resp.status !== grpc.StatusOK) throw new Error('unexpected error: ' + JSON.stringify(resp.error) + 'or status: ' + resp.status);
  },
};
export default function () {
  for (const n of names) run(n, cases[n], clients[n]);
}
)";
  const std::string prefix = "err invalid grpc.connect() parameters: ";
  Check(RunCases(script, {"TLS_ADDR=" + tls, "MTLS_ADDR=" + mtls, "UNTRUSTED_ADDR=" + untrusted},
                 {{"SSL_CERT_FILE", dir_ + "/ca.pem"}}),
        {
            {"BadTLS", "err certificate signed by unknown authority"},
            {"ConnectTlsEmptyTlsSuccess", "ok"},
            {"ConnectTlsInvalidTlsParamCertType",
             prefix + "invalid tls cert value: 'map[string]interface {}{\"cert\":0}', it needs to be a PEM formatted string"},
            {"ConnectTlsInvalidTlsParamKeyType",
             prefix + "invalid tls key value: 'map[string]interface {}{\"cert\":\"\", \"key\":0}', it needs to be a PEM "
                      "formatted string"},
            {"ConnectTlsInvalidTlsParamPasswordType",
             prefix + "invalid tls password value: 'map[string]interface {}{\"cert\":\"\", \"key\":\"\", "
                      "\"password\":0}', it needs to be a string"},
            {"ConnectTlsInvalidTlsParamCACertsType",
             prefix + "invalid tls cacerts value: 'map[string]interface {}{\"cacerts\":0, \"cert\":\"\", "
                      "\"key\":\"\"}', it needs to be a string or an array of PEM formatted strings"},
            {"ConnectTls", "ok"},
            {"ConnectTlsEncryptedKey", "ok"},
            {"ConnectTlsEncryptedKeyDecryptionFailed", "err x509: decryption password incorrect"},
            {"ConnectTlsInvokeSuccess", "ok"},
        });
}

// ---------------------------------------------------------------- streams

// stream_test.go's cases, plus TestAnyWithNotCommonTypes, client_test.go's
// HealthCheck cases and conn_test.go's TestHealthCheck. k6's route guide ListFeatures (a
// server stream) is hello's LotsOfReplies: two replies 200 ms apart (the
// target's flags); its wrappers TestStream (a client stream) is
// LotsOfGreetings. A case's recorded calls are reported as one JSON array,
// k6's callRecorder.
constexpr char kStreamScript[] = R"(
const ADDR = __ENV.ADDR;
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
// TestAnyWithNotCommonTypes: a proto with an Any the server does not know.
const anyClient = new grpc.Client();
anyClient.load(['definitions'], 'any_test.proto');

// TestStream_MetricsTagsMetadata: every sample of the tagged stream has
// the tag (k6 counts 4 samples: 1 stream, 1 sent, 2 received).
export const options = {
  thresholds: {
    'grpc_streams{tag1:value1}': ['count==1'],
    'grpc_streams_msgs_sent{tag1:value1}': ['count==1'],
    'grpc_streams_msgs_received{tag1:value1}': ['count==2'],
  },
};

// A case whose outcome its recorder reports later (or its exception now).
function start(name, fn) {
  try { fn(); } catch (e) { report(name, 'err ' + e.message); }
}
function recorder(name) {
  const calls = [];
  return { call: function (s) { calls.push(s); }, done: function () { report(name, 'ok ' + JSON.stringify(calls)); } };
}
const rect = { greeting: 'foo' };

export default function () {
  client.connect(ADDR, { plaintext: true });
  run('Stream_InvalidHeader', () => { new grpc.Stream(client, 'foo/bar'); });
  start('Stream_RequestHeaders', () => {
    // k6's server records the metadata; barrage-target answers the
    // x-fail-status it got, so the error proves the metadata arrived.
    const rec = recorder('Stream_RequestHeaders');
    let stream = new grpc.Stream(client, 'hello.HelloService/LotsOfReplies', { metadata: { 'X-Fail-Status': '9' } });
    stream.write(rect);
    stream.on('error', function (e) { rec.call('Code: ' + e.code); rec.done(); });
  });
  start('Stream_ErrorHandling', () => {
    const rec = recorder('Stream_ErrorHandling');
    let stream = new grpc.Stream(client, 'hello.HelloService/LotsOfReplies',
      { metadata: { 'x-fail-status': '13', 'x-fail-message': 'lorem ipsum' } });
    stream.write(rect);
    stream.on('data', function (data) { rec.call('Feature:' + data.reply); });
    stream.on('error', function (e) { rec.call('Code: ' + e.code + ' Message: ' + e.message); rec.done(); });
  });
  start('Stream_ReceiveAllServerResponsesAfterEnd', () => {
    const rec = recorder('Stream_ReceiveAllServerResponsesAfterEnd');
    let stream = new grpc.Stream(client, 'hello.HelloService/LotsOfReplies');
    stream.on('data', function (data) { rec.call('Feature:' + data.reply); });
    stream.on('end', function () { rec.call('End called'); rec.done(); });
    stream.write(rect);
    stream.end();
  });
  start('Stream_ReceiveAllServerResponsesAfterEndWithDiscardedMessages', () => {
    const rec = recorder('Stream_ReceiveAllServerResponsesAfterEndWithDiscardedMessages');
    let stream = new grpc.Stream(client, 'hello.HelloService/LotsOfReplies', { discardResponseMessage: true });
    stream.on('data', function (data) { rec.call('Data: ' + JSON.stringify(data)); });
    stream.on('end', function () { rec.call('End called'); rec.done(); });
    stream.write(rect);
    stream.end();
  });
  start('Stream_ReceiveMetadata', () => {
    const rec = recorder('Stream_ReceiveMetadata');
    const now = Date.now() / 1000;
    const near = function (meta) { return Math.abs(meta.ts - now) < 60 ? 'within a minute' : 'ts ' + meta.ts; };
    let stream = new grpc.Stream(client, 'hello.HelloService/LotsOfReplies');
    stream.on('data', function (data, meta) { rec.call(near(meta)); });
    stream.on('end', function (_, meta) { rec.call(near(meta)); rec.done(); });
    stream.write(rect);
    stream.end();
  });
  start('Stream_Wrappers', () => {
    const rec = recorder('Stream_Wrappers');
    let stream = new grpc.Stream(client, 'hello.HelloService/LotsOfGreetings');
    stream.on('data', function (data) { rec.call('Result: ' + data.reply); });
    stream.write({ greeting: 'Hey' });
    stream.write({ greeting: 'John' });
    stream.end();
    stream.on('error', function (e) { rec.call('Code: ' + e.code + ' Message: ' + e.message); });
    stream.on('end', function () { rec.done(); });
  });
  run('Stream_UndefinedHandler', () => {
    let stream = new grpc.Stream(client, 'hello.HelloService/LotsOfGreetings');
    // k6's iteration ends with the exception; this one goes on, so the
    // stream is ended here.
    try {
      stream.on('data', undefined);
    } finally {
      stream.end();
    }
  });
  start('Stream_MetricsTagsMetadata', () => {
    const rec = recorder('Stream_MetricsTagsMetadata');
    let stream = new grpc.Stream(client, 'hello.HelloService/LotsOfReplies', { tags: { tag1: 'value1' } });
    stream.on('data', function (data) { rec.call('Feature:' + data.reply); });
    stream.on('end', function () { rec.call('End called'); rec.done(); });
    stream.write(rect);
    stream.end();
  });
  run('AnyWithNotCommonTypes', () => {
    anyClient.connect(ADDR, { plaintext: true });
    const request = { data: { '@type': 'type.googleapis.com/sum.square.testing.circle', a: 1, b: 2 } };
    var resp = anyClient.invoke('sum.square.testing.AnyTestService/Invoke', request);
    if (resp.status !== grpc.StatusUnimplemented) {
      throw new Error('unexpected error: ' + JSON.stringify(resp.error) + ' or status: ' + resp.status);
    }
    const stream = new grpc.Stream(anyClient, 'sum.square.testing.AnyTestService/Stream', null);
    stream.on('error', function (error) { report('AnyWithNotCommonTypes_StreamError', 'ok ' + error.code); });
    stream.write(request);
  });
  // conn_test.go's TestHealthCheck against a real health service: k6's
  // mock answers UNKNOWN for an unknown service; a real one (grpc-go's
  // too) fails the call with NotFound, which throws.
  // client_test.go's HealthCheckServing and HealthCheckNotServing set the
  // whole server's status (""): the second target reports NOT_SERVING.
  const notServing = new grpc.Client();
  notServing.connect(__ENV.NOT_SERVING_ADDR, { plaintext: true });
  const health = function (c, svc) {
    return function () { const r = svc === undefined ? c.healthCheck() : c.healthCheck(svc); return r.status; };
  };
  run('HealthCheckServing', health(client, undefined));
  run('HealthCheckNotServing', health(notServing, undefined));
  run('HealthCheck_ServerIsNotServing', health(notServing, ''));
  run('HealthCheck_ServingService', health(client, 'hello.HelloService'));
  run('HealthCheck_NotServingService', health(client, 'hello.NotServing'));
  run('HealthCheck_UnknownService', health(client, 'unknown-service'));
  run('HealthCheck_Constants', () => [grpc.HealthCheckUnknown, grpc.HealthCheckServing, grpc.HealthCheckNotServing,
    grpc.HealthCheckServiceUnkown].join(','));
}
)";

constexpr char kAnyProto[] = R"(syntax = "proto3";
package sum.square.testing;
import "google/protobuf/any.proto";

service AnyTestService {
  rpc Invoke (Request) returns (Empty) {}
  rpc Stream (stream Request) returns (Empty) {}
}

message Request {
  google.protobuf.Any data = 1;
}

message circle {
  int64 a = 1;
  int64 b = 2;
}

message Empty {}
)";

TEST_F(K6CompatTest, StreamsAnyAndHealthCheck) {
  Write("definitions/any_test.proto", kAnyProto);
  const std::string not_serving = StartTarget({"--not-serving", ""});
  Check(RunCases(std::string(kPrelude) + kStreamScript, {"ADDR=" + address_, "NOT_SERVING_ADDR=" + not_serving}),
        {
            {"Stream_InvalidHeader", "err method \"/foo/bar\" not found in file descriptors"},
            {"Stream_RequestHeaders", "ok [\"Code: 9\"]"},
            {"Stream_ErrorHandling",
             "ok [\"Feature:hello foo\",\"Feature:hello foo\",\"Code: 13 Message: lorem ipsum\"]"},
            {"Stream_ReceiveAllServerResponsesAfterEnd",
             "ok [\"Feature:hello foo\",\"Feature:hello foo\",\"End called\"]"},
            {"Stream_ReceiveAllServerResponsesAfterEndWithDiscardedMessages",
             "ok [\"Data: {}\",\"Data: {}\",\"End called\"]"},
            {"Stream_ReceiveMetadata", "ok [\"within a minute\",\"within a minute\",\"within a minute\"]"},
            {"Stream_Wrappers", "ok [\"Result: hello Hey, John\"]"},
            {"Stream_UndefinedHandler", "err handler for \"data\" event isn't a callable function"},
            {"Stream_MetricsTagsMetadata", "ok [\"Feature:hello foo\",\"Feature:hello foo\",\"End called\"]"},
            {"AnyWithNotCommonTypes", "ok"},
            {"AnyWithNotCommonTypes_StreamError", "ok 12"},
            {"HealthCheckServing", "ok 1"},
            {"HealthCheckNotServing", "ok 2"},
            {"HealthCheck_ServerIsNotServing", "ok 2"},
            {"HealthCheck_ServingService", "ok 1"},
            {"HealthCheck_NotServingService", "ok 2"},
            {"HealthCheck_UnknownService", "err rpc error: code = NotFound"},
            {"HealthCheck_Constants", "ok 0,1,2,3"},
        });
  // The thresholds on the tagged stream's samples held (exit 0 above too).
  EXPECT_THAT(last_.stdout_text + last_.stderr_text, ::testing::Not(::testing::HasSubstr("✗")));
}

}  // namespace
}  // namespace barrage

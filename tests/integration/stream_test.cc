// k6/net/grpc beyond unary calls, end to end (issue 3): streams of every
// kind, the VU event loop, timers and promises, asyncInvoke, healthCheck,
// reflection, protosets and TLS, each a real `barrage run` against a real
// barrage-target on loopback, bounded in time.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"
#include "tests/integration/fixture.h"
#include "tests/testing/child_process.h"
#include "tests/testing/paths.h"

namespace barrage {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

// The head of most scripts here: a client with the example protos.
constexpr char kHead[] = R"(import { Client, Stream, StatusOK } from 'k6/net/grpc';
import { check } from 'k6';
const client = new Client();
client.load(['definitions'], 'hello.proto');
)";

class StreamTest : public testutil::TargetFixture {
 protected:
  nlohmann::json Export(const std::string& path) { return nlohmann::json::parse(std::ifstream(path)); }
  // A second barrage-target with extra flags, stopped with the fixture.
  std::string StartTarget(std::vector<std::string> flags) {
    flags.insert(flags.begin(), {"--listen", "127.0.0.1:0"});
    auto target = testutil::ChildProcess::Start(testutil::BinaryPath("barrage-target"), flags);
    absl::StatusOr<std::string> address = target->WaitForAddress(10s);
    EXPECT_TRUE(address.ok()) << address.status() << target->stderr_text();
    more_targets_.push_back(std::move(target));
    return address.ok() ? *address : "";
  }
  // Runs a script file with the target in __ENV.TARGET and a summary export.
  testutil::RunResult RunScript(const std::string& script, std::vector<std::string> flags, const std::string& target = "") {
    flags.insert(flags.begin(), {"-e", "TARGET=" + (target.empty() ? address_ : target), "--summary-export",
                                 dir_ + "/summary.json"});
    flags.push_back(script);
    return Barrage(flags);
  }
  double Count(const std::string& metric) {
    nlohmann::json s = Export(dir_ + "/summary.json");
    if (!s["metrics"].contains(metric)) return 0;
    return s["metrics"][metric].value("count", 0.0);
  }

  std::vector<std::unique_ptr<testutil::ChildProcess>> more_targets_;
};

// ---- the examples run unchanged, every check passing ---------------------------

struct Example {
  const char* name;
  const char* file;
};
void PrintTo(const Example& e, std::ostream* os) { *os << e.name; }
class ExampleTest : public StreamTest, public ::testing::WithParamInterface<Example> {};

TEST_P(ExampleTest, PassesAllItsChecks) {
  std::filesystem::copy(testutil::SourcePath("scripts/examples/") + GetParam().file, dir_ + "/" + GetParam().file);
  testutil::RunResult run = RunScript(dir_ + "/" + GetParam().file, {"-q", "-d", "2s"});
  ASSERT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  nlohmann::json s = Export(dir_ + "/summary.json");
  EXPECT_GT(s["metrics"]["checks"]["passes"].get<int>(), 0);
  EXPECT_EQ(s["metrics"]["checks"]["fails"].get<int>(), 0);
  EXPECT_GT(s["metrics"]["iterations"]["count"].get<int>(), 0);
  EXPECT_THAT(run.stderr_text, Not(HasSubstr("level=error")));
}

INSTANTIATE_TEST_SUITE_P(Scripts, ExampleTest,
                         ::testing::Values(Example{"ServerStream", "stream_server.js"},
                                           Example{"ClientStream", "stream_client.js"},
                                           Example{"BidiStream", "stream_bidi.js"},
                                           Example{"AsyncInvokeAndTimers", "async.js"},
                                           Example{"Reflection", "reflection.js"}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(StreamTest, ProtosetExample) {
  std::filesystem::copy(testutil::SourcePath("scripts/examples/protoset.js"), dir_ + "/protoset.js");
  testutil::RunResult protoc = testutil::Run(
      "/usr/bin/protoc", {"--include_imports", "-o", dir_ + "/definitions/hello.protoset", "-I", dir_ + "/definitions",
                          dir_ + "/definitions/hello.proto"},
      30s);
  ASSERT_EQ(protoc.exit_code, 0) << protoc.stderr_text;
  testutil::RunResult run = RunScript(dir_ + "/protoset.js", {"-q", "-d", "1s"});
  ASSERT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  EXPECT_EQ(Export(dir_ + "/summary.json")["metrics"]["checks"]["fails"].get<int>(), 0);
}

TEST_F(StreamTest, MutualTlsExampleWithPlainAndPasswordProtectedKeys) {
  testutil::MakeCertificates(dir_);
  const std::string tls = StartTarget({"--tls-cert", dir_ + "/server.pem", "--tls-key", dir_ + "/server.key",
                                       "--tls-client-ca", dir_ + "/ca.pem"});
  std::filesystem::copy(testutil::SourcePath("scripts/examples/tls.js"), dir_ + "/tls.js");
  for (const std::vector<std::string>& key :
       {std::vector<std::string>{"-e", "KEY=" + dir_ + "/client.key"},
        std::vector<std::string>{"-e", "KEY=" + dir_ + "/client-legacy.key", "-e", "KEY_PASSWORD=secret"}}) {
    std::vector<std::string> flags = {"-q", "-d", "1s", "-e", "CA=" + dir_ + "/ca.pem", "-e", "CERT=" + dir_ + "/client.pem"};
    flags.insert(flags.end(), key.begin(), key.end());
    testutil::RunResult run = RunScript(dir_ + "/tls.js", flags, tls);
    ASSERT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
    EXPECT_EQ(Export(dir_ + "/summary.json")["metrics"]["checks"]["fails"].get<int>(), 0);
    EXPECT_GT(Export(dir_ + "/summary.json")["metrics"]["checks"]["passes"].get<int>(), 0);
  }
  // The same server name through `authority` while dialling the IP.
  testutil::RunResult run = RunScript(dir_ + "/tls.js", {"-q", "-d", "1s", "-e", "CA=" + dir_ + "/ca.pem", "-e",
                                                         "CERT=" + dir_ + "/client.pem", "-e", "KEY=" + dir_ + "/client.key",
                                                         "-e", "AUTHORITY=localhost"},
                                      tls);
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
}

// ---- metrics and tags --------------------------------------------------------------

TEST_F(StreamTest, StreamMetricsCountEveryMessageWithTheStreamsTags) {
  // 3 iterations x (1 bidi stream of 4 messages + 1 server stream of 10 replies).
  const std::string script = Write("metrics.js", std::string(kHead) + R"(
export const options = {
  iterations: 3, vus: 1,
  thresholds: {
    'grpc_streams{flow:chat}': ['count==3'],
    'grpc_streams_msgs_sent{flow:chat}': ['count==12'],
    'grpc_streams_msgs_received{flow:chat}': ['count==12'],
    'grpc_req_duration{flow:chat,status:0,method:BidiHello}': ['max>=0'],
    'grpc_streams_msgs_received{method:LotsOfReplies}': ['count==30'],
    'grpc_req_duration{name:/hello.HelloService/LotsOfReplies}': ['max>=0'],
  },
};
export default () => {
  if (__ITER === 0) client.connect(__ENV.TARGET, { plaintext: true });
  const s = new Stream(client, 'hello.HelloService/BidiHello', { tags: { flow: 'chat' } });
  for (let i = 0; i < 4; i++) s.write({ greeting: 'm' + i });
  s.end();
  new Stream(client, 'hello.HelloService/LotsOfReplies').write({ greeting: 'x' });
};
)");
  testutil::RunResult run = RunScript(script, {"-q", "--summary-trend-stats", "count,max"});
  EXPECT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  EXPECT_EQ(Count("iterations"), 3);
  EXPECT_EQ(Count("grpc_streams"), 6);
  // One grpc_req_duration per stream, with the stream's tags and status.
  EXPECT_EQ(Count("grpc_req_duration{flow:chat,status:0,method:BidiHello}"), 3);
  EXPECT_EQ(Count("grpc_req_duration{name:/hello.HelloService/LotsOfReplies}"), 3);
  EXPECT_EQ(Count("grpc_streams_msgs_sent"), 12 + 3);
  EXPECT_EQ(Count("grpc_streams_msgs_received"), 12 + 30);
}

// ---- event order, errors and the event loop ----------------------------------

TEST_F(StreamTest, AServerErrorFiresErrorThenEndAndTheVuGoesOn) {
  const std::string failing = StartTarget({"--stream-error-after", "2", "--error-status", "9"});
  const std::string script = Write("order.js", std::string(kHead) + R"(
export const options = { iterations: 2, vus: 1, thresholds: { checks: ['rate==1'] } };
export default () => {
  if (__ITER === 0) client.connect(__ENV.TARGET, { plaintext: true });
  const events = [];
  const s = new Stream(client, 'hello.HelloService/LotsOfReplies');
  s.on('data', () => events.push('data'));
  s.on('error', (e, meta) => events.push('error:' + e.code + ':' + e.message + ':' + Array.isArray(e.details) + ':' + (typeof meta.ts)));
  s.on('end', () => {
    events.push('end');
    check(events, { 'order': (ev) => ev.join() === 'data,data,error:9:injected stream error:true:number,end' });
    console.log('events ' + events.join());
  });
  s.write({ greeting: 'x' });
};
)");
  testutil::RunResult run = RunScript(script, {"-q"}, failing);
  EXPECT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  EXPECT_EQ(Count("iterations"), 2);
  nlohmann::json s = Export(dir_ + "/summary.json");
  EXPECT_EQ(s["metrics"]["checks"]["fails"].get<int>(), 0) << run.stderr_text;
}

// A data event's metadata ({ts}) is made only for handlers that can read
// it (module_grpc.cc): a handler with fewer formals and no `arguments` or
// eval never sees it. Every handler that can, by whatever means, gets it,
// one object shared by all handlers of the event, as before.
TEST_F(StreamTest, DataMetadataReachesEveryHandlerThatCanReadIt) {
  const std::string script = Write("meta_ts.js", std::string(kHead) + R"(
export const options = { iterations: 1, vus: 1, thresholds: { checks: ['rate==1'] } };
export default () => {
  client.connect(__ENV.TARGET, { plaintext: true });
  const now = Date.now() / 1000;
  const seen = [];
  let events = 0;
  const s = new Stream(client, 'hello.HelloService/LotsOfReplies');
  s.on('data', () => { events++; });  // cannot see the metadata: none made for it
  s.on('data', function (d) { seen.push(['arguments', d, arguments[1]]); });
  s.on('data', (d, meta) => { seen.push(['formal', d, meta]); });
  s.on('data', function (d) { seen.push(['eval', d, eval('arguments[1]')]); });
  s.on('data', (d, ...rest) => { seen.push(['rest', d, rest[0]]); });
  s.on('end', () => {
    check(seen, {
      'every reader got it': (v) => v.length === 4 * events && events === 10,
      'a number of seconds': (v) => v.every((e) => typeof e[2].ts === 'number' && Math.abs(e[2].ts - now) < 30),
      'one object per event': (v) => v.every((e, i) => e[2] === v[i - i % 4][2] && (i < 4 || e[2] !== v[i - 4][2])),
      'the message first': (v) => v.every((e) => typeof e[1].reply === 'string'),
    });
    console.log('seen ' + seen.length + ' of ' + events + ' events: ' + seen.slice(0, 4).map((e) => e[0] + '=' + JSON.stringify(e[2])).join(' '));
  });
  s.write({ greeting: 'x' });
};
)");
  testutil::RunResult run = RunScript(script, {"-q"});
  EXPECT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  nlohmann::json s = Export(dir_ + "/summary.json");
  EXPECT_EQ(s["metrics"]["checks"]["fails"].get<int>(), 0) << run.stderr_text;
  EXPECT_EQ(s["metrics"]["checks"]["passes"].get<int>(), 4) << run.stderr_text;
}

TEST_F(StreamTest, NoErrorHandlerOnlyWarns) {
  const std::string failing = StartTarget({"--stream-error-after", "0"});
  const std::string script = Write("noerr.js", std::string(kHead) + R"(
export const options = { iterations: 1, vus: 1 };
export default () => {
  client.connect(__ENV.TARGET, { plaintext: true });
  new Stream(client, 'hello.HelloService/LotsOfReplies').write({ greeting: 'x' });
};
)");
  testutil::RunResult run = RunScript(script, {"-q"}, failing);
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("no handlers for error registered, but an error happened"));
  EXPECT_EQ(Count("iterations"), 1);
}

TEST_F(StreamTest, TheIterationWaitsForItsStreamAndATimeoutEndsIt) {
  // BidiHello never ends unless the client half-closes: the 700 ms stream
  // timeout gives `error` (code 4) and `end`, and the iteration then ends
  // normally, having lasted at least that long.
  const std::string script = Write("timeout.js", std::string(kHead) + R"(
export const options = { iterations: 2, vus: 1, thresholds: { checks: ['rate==1'], iteration_duration: ['min>=650'] } };
export default () => {
  if (__ITER === 0) client.connect(__ENV.TARGET, { plaintext: true });
  const s = new Stream(client, 'hello.HelloService/BidiHello', { timeout: '700ms' });
  let code = -1, ended = false;
  s.on('error', (e) => { code = e.code; });
  s.on('end', () => { ended = true; check(code, { 'deadline exceeded': (c) => c === 4 }); });
  s.write({ greeting: 'hold' });
};
)");
  testutil::RunResult run = RunScript(script, {"-q"});
  EXPECT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  EXPECT_EQ(Count("iterations"), 2);
  EXPECT_EQ(Count("grpc_streams"), 2);
}

TEST_F(StreamTest, AnOpenStreamAtGracefulStopIsAnInterruptedIteration) {
  const std::string script = Write("hold.js", std::string(kHead) + R"(
export const options = { scenarios: { s: { executor: 'constant-vus', vus: 3, duration: '1s', gracefulStop: '500ms' } } };
export default () => {
  if (__ITER === 0) client.connect(__ENV.TARGET, { plaintext: true });
  const s = new Stream(client, 'hello.HelloService/BidiHello');
  s.on('data', () => {});
  s.on('end', () => console.log('end must not reach the script after the VU context ended'));
  s.write({ greeting: 'hold' });
  setInterval(() => {}, 50);  // an interval nobody clears holds it too
};
)");
  const auto start = std::chrono::steady_clock::now();
  testutil::RunResult run = RunScript(script, {});
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_EQ(Count("iterations"), 0);
  EXPECT_EQ(Count("grpc_streams"), 3);
  EXPECT_THAT(run.stdout_text, HasSubstr("0 complete and 3 interrupted iterations"));
  EXPECT_THAT(run.stderr_text, Not(HasSubstr("end must not reach")));
}

TEST_F(StreamTest, ADataHandlerThatThrowsCancelsTheStreamAndFailsTheIteration) {
  const std::string script = Write("throw.js", std::string(kHead) + R"(
export const options = { iterations: 2, vus: 1 };
export default () => {
  if (__ITER === 0) client.connect(__ENV.TARGET, { plaintext: true });
  const s = new Stream(client, 'hello.HelloService/LotsOfReplies');
  s.on('data', () => { throw new Error('handler broke'); });
  s.on('error', (e) => console.log('error handler got ' + e.code + ' ' + e.message));
  s.write({ greeting: 'x' });
};
)");
  testutil::RunResult run = RunScript(script, {"-q"});
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("error handler got 2 handler broke"));
  EXPECT_THAT(run.stderr_text, HasSubstr("Error: handler broke"));
  EXPECT_THAT(run.stderr_text, HasSubstr("throw.js:10"));
  EXPECT_EQ(Count("iterations"), 2);  // a failed iteration still counts, as in k6
}

// module_grpc.cc dispatches `data` through pointers to the Stream object
// and its handlers, which async.js's table of open streams keeps alive.
// Here nothing in the script holds its streams, the handlers make enough
// garbage for collections to run mid-stream, and the first iteration fails
// with data still queued for the other streams (its loop is reset): every
// later message still reaches its handler, on the right stream.
TEST_F(StreamTest, StreamsNobodyHoldsSurviveCollectionsAndAFailedIteration) {
  const std::string script = Write("gc.js", std::string(kHead) + R"(
export const options = { iterations: 3, vus: 1 };
export default () => {
  if (__ITER === 0) client.connect(__ENV.TARGET, { plaintext: true });
  let got = 0, ended = 0, wrong = 0;
  for (let i = 0; i < 20; i++) {
    const s = new Stream(client, 'hello.HelloService/LotsOfReplies');
    s.on('data', function (d) {
      if (this !== s || d.reply !== 'hello g' + i) wrong++;
      const junk = [];
      for (let j = 0; j < 200; j++) junk.push({ j: j, text: 'x' + j });
      got++;
      if (__ITER === 0 && got === 15) throw new Error('stop the first iteration');
    });
    s.on('end', () => {
      if (++ended === 20) console.log('iteration ' + __ITER + ': ' + got + ' messages, ' + wrong + ' wrong');
    });
    s.write({ greeting: 'g' + i });
  }
};
)");
  testutil::RunResult run = RunScript(script, {"-q"});
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("stop the first iteration"));
  EXPECT_THAT(run.stderr_text, HasSubstr("iteration 1: 200 messages, 0 wrong"));
  EXPECT_THAT(run.stderr_text, HasSubstr("iteration 2: 200 messages, 0 wrong"));
  EXPECT_THAT(run.stderr_text, Not(HasSubstr("iteration 0:")));
  EXPECT_EQ(Count("iterations"), 3);
}

TEST_F(StreamTest, WriteRulesAndUnknownEvents) {
  // Serialisation errors fail the stream asynchronously (code 2); a second
  // message on a server-streaming method fails it with 13; writes after
  // end() are ignored; null warns; an unknown event warns.
  const std::string script = Write("writes.js", std::string(kHead) + R"(
export const options = { iterations: 1, vus: 1, thresholds: { checks: ['rate==1'] } };
function run(method, fn) {
  return new Promise((resolve) => {
    const s = new Stream(client, method);
    const seen = [];
    s.on('data', () => seen.push('data'));
    s.on('error', (e) => seen.push(e.code + ':' + e.message));
    s.on('end', () => resolve(seen));
    fn(s);
  });
}
export default async () => {
  client.connect(__ENV.TARGET, { plaintext: true });
  const bad = await run('hello.HelloService/BidiHello', (s) => { s.write({ nope: 1 }); });
  check(bad, { 'bad message: code 2': (e) => e.length === 1 && e[0].startsWith("2:can't serialise request object to protocol buffer") });
  const second = await run('hello.HelloService/LotsOfReplies', (s) => { s.write({ greeting: 'a' }); s.write({ greeting: 'b' }); });
  check(second, { 'second write: code 13': (e) => e[e.length - 1] === '13:SendMsg called after CloseSend' });
  const ended = await run('hello.HelloService/BidiHello', (s) => {
    s.on('status', () => {});
    s.on('bogus', () => {});
    s.write(null);
    s.write({ greeting: 'one' });
    s.end();
    s.end();
    s.write({ greeting: 'ignored' });
  });
  check(ended, { 'writes after end are ignored': (e) => e.join() === 'data' });
  const unary = await run('hello.HelloService/SayHello', (s) => { s.write({ greeting: 'u' }); });
  check(unary, { 'a unary method as a stream': (e) => e.join() === 'data' });
  const closed = await run('hello.HelloService/BidiHello', (s) => { s.write({ greeting: 'x' }); client.close(); });
  check(closed, { 'close() ends the stream with end only': (e) => e.every((x) => x === 'data') });
};
)");
  testutil::RunResult run = RunScript(script, {"-q"});
  EXPECT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  EXPECT_EQ(Export(dir_ + "/summary.json")["metrics"]["checks"]["fails"].get<int>(), 0) << run.stdout_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("can't send empty message"));
  EXPECT_THAT(run.stderr_text,
              HasSubstr("can't register bogus event handler: unknown GRPC stream's event type: bogus"));
}

TEST_F(StreamTest, AResponseThatDoesNotDecode) {
  // The script's proto says the replies are packed fixed32s; the target
  // sends "hello Bert", 10 bytes, which no packed fixed32 field can be.
  // invoke throws; a stream fails with 13 and dispatches no data.
  Write("packed.proto", R"(syntax = "proto3";
package hello;
message HelloRequest { string greeting = 1; }
message Packed { repeated fixed32 reply = 1; }
service HelloService {
  rpc SayHello(HelloRequest) returns (Packed);
  rpc BidiHello(stream HelloRequest) returns (stream Packed);
}
)");
  const std::string script = Write("undecodable.js", R"(
import { Client, Stream } from 'k6/net/grpc';
import { check } from 'k6';
const client = new Client();
client.load([], 'packed.proto');
export const options = { iterations: 1, vus: 1, thresholds: { checks: ['rate==1'] } };
export default async () => {
  client.connect(__ENV.TARGET, { plaintext: true });
  let thrown = '';
  try { client.invoke('hello.HelloService/SayHello', { greeting: 'Bert' }); } catch (e) { thrown = e.message; }
  check(thrown, { 'invoke throws': (t) => t === 'unable to decode the response: cannot parse the bytes as hello.Packed' });
  const seen = await new Promise((resolve) => {
    const events = [];
    const s = new Stream(client, 'hello.HelloService/BidiHello');
    s.on('data', () => events.push('data'));
    s.on('error', (e) => events.push(e.code + ':' + e.message));
    s.on('end', () => resolve(events));
    s.write({ greeting: 'Bert' });
    s.end();
  });
  check(seen, { 'stream: 13, no data': (e) => e.join() === '13:unable to decode the response: cannot parse the bytes as hello.Packed' });
};
)");
  testutil::RunResult run = RunScript(script, {"-q"});
  EXPECT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  EXPECT_EQ(Export(dir_ + "/summary.json")["metrics"]["checks"]["fails"].get<int>(), 0) << run.stdout_text;
}

TEST_F(StreamTest, PromisesRejectionsAndTimersInTheEventLoop) {
  const std::string script = Write("loop.js", R"(
import { check } from 'k6';
import { setTimeout as later } from 'k6/timers';
export const options = { iterations: 4, vus: 1 };
export default async () => {
  if (__ITER === 0) {
    const order = [];
    later(() => order.push('timer 20'), 20);
    setTimeout(() => order.push('timer 0'), 0);
    Promise.resolve().then(() => order.push('job'));
    order.push('sync');
    await new Promise((r) => setTimeout(r, 40));
    check(order, { 'jobs before timers, timers by time': (o) => o.join() === 'sync,job,timer 0,timer 20' });
  }
  if (__ITER === 1) throw new Error('async throw');
  if (__ITER === 2) Promise.reject(new Error('nobody listens'));
  if (__ITER === 3) setTimeout(() => { throw new Error('timer throw'); }, 5);
};
)");
  testutil::RunResult run = RunScript(script, {"-q"});
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_EQ(Export(dir_ + "/summary.json")["metrics"]["checks"]["fails"].get<int>(), 0) << run.stdout_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("Uncaught (in promise) Error: async throw"));
  EXPECT_THAT(run.stderr_text, HasSubstr("Uncaught (in promise) Error: nobody listens"));
  EXPECT_THAT(run.stderr_text, HasSubstr("Error: timer throw"));
  EXPECT_EQ(Count("iterations"), 4);
}

TEST_F(StreamTest, BlockingCallsEndWhenTheVuContextEnds) {
  // A target that answers in 30 s: at gracefulStop the VUs' invoke and
  // healthCheck are cancelled, not waited for (healthCheck has no timeout).
  const std::string slow = StartTarget({"--latency", "30s"});
  const std::string script = Write("blocked.js", std::string(kHead) + R"(
export const options = { scenarios: { s: { executor: 'constant-vus', vus: 2, duration: '1s', gracefulStop: '500ms' } } };
export default () => {
  if (__ITER === 0) client.connect(__ENV.TARGET, { plaintext: true });
  if (__VU === 1) client.invoke('hello.HelloService/SayHello', { greeting: 'wait' }, { timeout: '60s' });
  else client.invoke('hello.HelloService/SayHello', { greeting: 'wait' });
};
)");
  const auto start = std::chrono::steady_clock::now();
  testutil::RunResult run = RunScript(script, {"-q"}, slow);
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 8s);
  EXPECT_EQ(Count("iterations"), 0);
}

TEST_F(StreamTest, AHangingConnectEndsWhenTheVuContextEnds) {
  // A loopback port that completes TCP handshakes (the kernel does, from the
  // backlog) but never speaks HTTP/2: a dial there hangs until its timeout.
  const int silent = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(silent, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(silent, 64), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string target = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  const std::string script = Write("hang.js", std::string(kHead) + R"(
export const options = { scenarios: { s: { executor: 'constant-vus', vus: 2, duration: '1s', gracefulStop: '500ms' } } };
export default () => { client.connect(__ENV.TARGET, { plaintext: true, timeout: '30s' }); };
)");
  const auto start = std::chrono::steady_clock::now();
  testutil::RunResult run = RunScript(script, {}, target);
  close(silent);
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("0 complete and 2 interrupted iterations"));
  // The dials are cancelled at gracefulStop, and the process does not wait
  // out their 30 s (nor gRPC's 20 s handshake timeout) to exit.
  EXPECT_LT(std::chrono::steady_clock::now() - start, 8s);
}

TEST_F(StreamTest, NothingOfAFailedIterationReachesTheNextOne) {
  // Iteration 0 leaves a rejected asyncInvoke behind and throws; iteration 1
  // must not inherit the rejection. A call made inside a group keeps the
  // group's tag although its reply comes after the group ended.
  const std::string script = Write("carry.js", std::string(kHead) + R"(
import { group } from 'k6';
export const options = { iterations: 3, vus: 1, thresholds: { 'grpc_req_duration{group:::g}': ['max>=0'] } };
export default () => {
  if (__ITER === 0) {
    client.connect(__ENV.TARGET, { plaintext: true });
    client.asyncInvoke('hello.HelloService/Nope', {});
    throw new Error('sync failure');
  }
  if (__ITER === 1) console.log('clean iteration');
  if (__ITER === 2) {
    group('g', () => {
      client.asyncInvoke('hello.HelloService/SayHello', { greeting: 'g' }).then((r) => console.log('reply ' + r.message.reply));
    });
  }
};
)");
  testutil::RunResult run = RunScript(script, {"-q", "--summary-trend-stats", "count,max"});
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("sync failure"));
  EXPECT_THAT(run.stderr_text, HasSubstr("clean iteration"));
  EXPECT_THAT(run.stderr_text, Not(HasSubstr("Uncaught (in promise)")));
  EXPECT_THAT(run.stderr_text, HasSubstr("reply hello g"));
  EXPECT_EQ(Count("grpc_req_duration{group:::g}"), 1);
}

TEST_F(StreamTest, BinaryMetadataAndSizeLimits) {
  const std::string big = StartTarget({"--reply-size", "5000"});
  const std::string script = Write("meta.js", std::string(kHead) + R"(
export const options = { iterations: 1, vus: 1, thresholds: { checks: ['rate==1'] } };
export default () => {
  client.connect(__ENV.TARGET, { plaintext: true, maxReceiveSize: 1000 });
  const bytes = new Uint8Array([0, 1, 2, 127]);
  const r = client.invoke('hello.HelloService/SayHello', { greeting: 'm' }, { metadata: { 'x-echo-raw-bin': bytes, 'x-echo-text': 'hi' } });
  check(r, { 'too big: ResourceExhausted': (r) => r.status === 8 });
  client.close();
  client.connect(__ENV.TARGET, { plaintext: true, maxSendSize: 10 });
  const s = client.invoke('hello.HelloService/SayHello', { greeting: 'far more than ten bytes' });
  check(s, { 'send limit: ResourceExhausted': (r) => r.status === 8 });
  client.close();
  client.connect(__ENV.TARGET, { plaintext: true });
  const ok = client.invoke('hello.HelloService/SayHello', { greeting: 'm' }, { metadata: { 'x-echo-raw-bin': bytes, 'x-echo-text': 'hi' } });
  check(ok, {
    'binary header round trip': (r) => r.headers['x-echo-raw-bin'][0] === String.fromCharCode(0, 1, 2, 127),
    'text header': (r) => r.headers['x-echo-text'][0] === 'hi',
  });
};
)");
  testutil::RunResult run = RunScript(script, {"-q"}, big);
  EXPECT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
}

// ---- bad input: each a clear error naming what failed ---------------------------

struct BadCase {
  const char* name;
  std::string body;           // the default function, after kHead
  std::string expected;       // in the error
  std::vector<std::string> target_flags;  // a target of its own when set
  bool certificates = false;
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }
class StreamBadInputTest : public StreamTest, public ::testing::WithParamInterface<BadCase> {};

TEST_P(StreamBadInputTest, FailsWithAClearError) {
  const BadCase& c = GetParam();
  if (c.certificates) testutil::MakeCertificates(dir_);
  std::vector<std::string> flags = c.target_flags;
  for (std::string& f : flags) f = absl::StrReplaceAll(f, {{"$DIR", dir_}});
  const std::string target = flags.empty() ? address_ : StartTarget(flags);
  std::string body = absl::StrReplaceAll(c.body, {{"$DIR", dir_}});
  const std::string script = Write("bad.js", std::string(kHead) + "export const options = { iterations: 1, vus: 1 };\n" + body);
  Write("not.protoset", "this is not a FileDescriptorSet");
  testutil::RunResult run = RunScript(script, {"-q"}, target);
  EXPECT_THAT(run.stderr_text, HasSubstr(absl::StrReplaceAll(c.expected, {{"$TARGET", target}, {"$DIR", dir_}}))) << run.stdout_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("level=error"));
}

INSTANTIATE_TEST_SUITE_P(
    Table, StreamBadInputTest,
    ::testing::Values(
        BadCase{"StreamWithoutConnect",
                "export default () => { new Stream(client, 'hello.HelloService/BidiHello'); };",
                "invalid GRPC Stream's client: no gRPC connection, you must call connect first"},
        BadCase{"StreamWithoutClient", "export default () => { new Stream(null, 'hello.HelloService/BidiHello'); };",
                "invalid GRPC Stream's client: empty gRPC client"},
        BadCase{"StreamUnknownMethod",
                "export default () => { client.connect(__ENV.TARGET, { plaintext: true }); new Stream(client, 'hello.HelloService/Nope'); };",
                "invalid GRPC Stream's method: method \\\"/hello.HelloService/Nope\\\" not found in file descriptors"},
        BadCase{"StreamBadParams",
                "export default () => { client.connect(__ENV.TARGET, { plaintext: true }); new Stream(client, 'hello.HelloService/BidiHello', { headers: {} }); };",
                "invalid GRPC Stream's parameters: unknown param: \\\"headers\\\""},
        BadCase{"StreamNullHandler",
                "export default () => { client.connect(__ENV.TARGET, { plaintext: true }); new Stream(client, 'hello.HelloService/BidiHello').on('data', null); };",
                "handler for \\\"data\\\" event isn't a callable function"},
        BadCase{"InvokeOnAStreamingMethod",
                "export default () => { client.connect(__ENV.TARGET, { plaintext: true }); client.invoke('hello.HelloService/BidiHello', {}); };",
                "method \\\"/hello.HelloService/BidiHello\\\" is a bidirectional streaming method: invoke calls unary methods"},
        BadCase{"ReflectionWithoutReflectionService",
                "export default () => { client.connect(__ENV.TARGET, { plaintext: true, reflect: true }); };",
                "can't list services: rpc error: code = Unimplemented",
                {"--no-reflection"}},
        BadCase{"HealthCheckWithoutHealthService",
                "export default () => { client.connect(__ENV.TARGET, { plaintext: true }); client.healthCheck(); };",
                "rpc error: code = Unimplemented", {"--no-health"}},
        BadCase{"HealthCheckBeforeConnect", "export default () => { client.healthCheck(); };",
                "no gRPC connection, you must call connect first"},
        BadCase{"ProtosetNotAFileDescriptorSet",
                "const other = new Client(); other.loadProtoset('not.protoset');\nexport default () => {};",
                "couldn't unmarshal protoset file $DIR/not.protoset: not a valid FileDescriptorSet"},
        BadCase{"TlsMissingCertificateFile",
                "const ca = open('$DIR/missing-ca.pem');\nexport default () => {};", "$DIR/missing-ca.pem: no such file"},
        BadCase{"TlsNotPem",
                "export default () => { client.connect(__ENV.TARGET, { tls: { cacerts: 'not a certificate' } }); };",
                "invalid tls cacerts value: failed to find any PEM data in cacerts input"},
        BadCase{"TlsWrongCa",
                "const ca = open('$DIR/other-ca.pem');\nexport default () => { client.connect(__ENV.TARGET, { tls: { cacerts: ca } }); };",
                "failed to connect to $TARGET: transport: authentication handshake failed: tls: failed to verify "
                "certificate: x509: certificate signed by unknown authority",
                {"--tls-cert", "$DIR/server.pem", "--tls-key", "$DIR/server.key"}, true},
        BadCase{"TlsExpiredServerCertificate",
                "const ca = open('$DIR/ca.pem');\nexport default () => { client.connect(__ENV.TARGET, { tls: { cacerts: ca } }); };",
                "x509: certificate has expired or is not yet valid",
                {"--tls-cert", "$DIR/expired.pem", "--tls-key", "$DIR/server.key"}, true},
        BadCase{"TlsHostNameMismatch",
                "const ca = open('$DIR/ca.pem');\nexport default () => { client.connect(__ENV.TARGET, { tls: { cacerts: ca }, authority: 'wrong.example' }); };",
                "tls: failed to verify certificate: x509: certificate is valid for localhost, not wrong.example",
                {"--tls-cert", "$DIR/server.pem", "--tls-key", "$DIR/server.key"}, true},
        BadCase{"TlsEncryptedPkcs8Key",
                "const ca = open('$DIR/ca.pem'), cert = open('$DIR/client.pem'), key = open('$DIR/client-pkcs8.key');\n"
                "export default () => { client.connect(__ENV.TARGET, { tls: { cacerts: ca, cert, key, password: 'secret' } }); };",
                "encrypted pkcs8 formatted key is not supported",
                {"--tls-cert", "$DIR/server.pem", "--tls-key", "$DIR/server.key"}, true},
        BadCase{"TlsWrongKeyPassword",
                "const ca = open('$DIR/ca.pem'), cert = open('$DIR/client.pem'), key = open('$DIR/client-legacy.key');\n"
                "export default () => { client.connect(__ENV.TARGET, { tls: { cacerts: ca, cert, key, password: 'wrong' } }); };",
                "x509: decryption password incorrect", {"--tls-cert", "$DIR/server.pem", "--tls-key", "$DIR/server.key"}, true},
        BadCase{"MutualTlsWithoutAClientCertificate",
                "const ca = open('$DIR/ca.pem');\nexport default () => { client.connect(__ENV.TARGET, { tls: { cacerts: ca } }); };",
                "failed to connect to $TARGET",
                {"--tls-cert", "$DIR/server.pem", "--tls-key", "$DIR/server.key", "--tls-client-ca", "$DIR/ca.pem"}, true}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace barrage

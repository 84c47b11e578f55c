// Connection control beyond k6 (issue 16), end to end against real
// barrage-targets on loopback: the failure metrics grpc_reqs and
// grpc_req_failed (with grpc.expectedStatuses / setResponseCallback / the
// responseCallback param), in the summary, the JSON export, --out json and
// /metrics, and thresholds on them; compressed messages (`compression`);
// shared connections (`connectionSharing`), counted at the target.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

#include "nlohmann/json.hpp"
#include "tests/integration/fixture.h"
#include "tests/testing/child_process.h"
#include "tests/testing/paths.h"

namespace barrage {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

class ConnectionControlTest : public testutil::TargetFixture {
 protected:
  // A further barrage-target with extra flags, stopped with the fixture.
  std::string StartTarget(std::vector<std::string> flags) {
    flags.insert(flags.begin(), {"--listen", "127.0.0.1:0"});
    auto target = testutil::ChildProcess::Start(testutil::BinaryPath("barrage-target"), flags);
    absl::StatusOr<std::string> address = target->WaitForAddress(10s);
    EXPECT_TRUE(address.ok()) << address.status() << target->stderr_text();
    more_targets_.push_back(std::move(target));
    return address.ok() ? *address : "";
  }
  nlohmann::json Export() { return nlohmann::json::parse(std::ifstream(dir_ + "/summary.json")); }
  // `barrage run -q` with a summary export, the given flags and script.
  testutil::RunResult RunScript(const std::string& script, std::vector<std::string> flags) {
    flags.insert(flags.begin(), {"-q", "--summary-export", dir_ + "/summary.json"});
    flags.push_back(script);
    return Barrage(flags);
  }
  std::vector<std::unique_ptr<testutil::ChildProcess>> more_targets_;
};

// What barrage-target's established TCP connections on `port` have
// received and sent so far (ss, from iproute2: the kernel's tcp_info
// bytes_received and bytes_sent): the bytes on the wire.
std::pair<int64_t, int64_t> WireBytes(const std::string& address) {
  const std::string port = address.substr(address.rfind(':') + 1);
  testutil::RunResult ss = testutil::Run("/bin/ss", {"-Htin", "state", "established", "( sport = :" + port + " )"}, 10s);
  int64_t received = 0, sent = 0;
  auto sum = [&](const std::string& key, int64_t& out) {
    for (size_t at = ss.stdout_text.find(key); at != std::string::npos; at = ss.stdout_text.find(key, at + 1)) {
      out += std::stoll(ss.stdout_text.substr(at + key.size()));
    }
  };
  sum(" bytes_received:", received);
  sum(" bytes_sent:", sent);
  return {received, sent};
}

// ---- grpc_reqs and grpc_req_failed ----------------------------------------------

// Each iteration: 3 OK calls to `ok`, 1 NotFound (5) from `bad`.
constexpr char kMixHead[] = R"(import grpc from 'k6/net/grpc';
const ok = new grpc.Client();
ok.load(['definitions'], 'hello.proto');
const bad = new grpc.Client();
bad.load(['definitions'], 'hello.proto');
)";
constexpr char kMixBody[] = R"(
export default () => {
  if (__ITER === 0) {
    ok.connect(__ENV.OK, { plaintext: true });
    bad.connect(__ENV.BAD, { plaintext: true });
  }
  for (let i = 0; i < 3; i++) ok.invoke('hello.HelloService/SayHello', { greeting: 'a' });
  bad.invoke('hello.HelloService/SayHello', { greeting: 'b' }, { tags: { name: 'bad-call' } });
};
)";

TEST_F(ConnectionControlTest, FailedCallsCrossTheThresholdAndAreCountedEverywhere) {
  const std::string bad = StartTarget({"--error-rate", "1", "--error-status", "5"});
  const std::string script = Write("mix.js", std::string(kMixHead) + R"(
export const options = {
  vus: 2, iterations: 10,
  thresholds: { grpc_req_failed: ['rate<0.01'], grpc_reqs: ['count==40'],
                'grpc_req_failed{status:5}': ['rate==1'], 'grpc_req_failed{status:0}': ['rate==0'] },
};)" + kMixBody);
  testutil::RunResult run = RunScript(script, {"-e", "OK=" + address_, "-e", "BAD=" + bad, "--out",
                                               "json=" + dir_ + "/points.json"});
  // 10 of 40 calls failed: rate<0.01 is crossed, the other thresholds hold.
  EXPECT_EQ(run.exit_code, 99) << run.stdout_text << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("thresholds on metrics 'grpc_req_failed' have been crossed"));
  EXPECT_THAT(run.stdout_text, ContainsRegex("grpc_req_failed\\.+: 25\\.00% +10 out of 40"));
  EXPECT_THAT(run.stdout_text, ContainsRegex("grpc_reqs\\.+: 40 "));
  nlohmann::json s = Export();
  EXPECT_EQ(s["metrics"]["grpc_reqs"]["count"].get<int>(), 40);
  EXPECT_DOUBLE_EQ(s["metrics"]["grpc_req_failed"]["value"].get<double>(), 0.25);
  EXPECT_EQ(s["metrics"]["grpc_req_failed"]["passes"].get<int>(), 10);  // k6: passes are the 1s, the failures
  EXPECT_EQ(s["metrics"]["grpc_req_failed"]["fails"].get<int>(), 30);
  EXPECT_EQ(s["metrics"]["grpc_req_failed"]["thresholds"]["rate<0.01"].get<bool>(), true);  // true: crossed
  EXPECT_EQ(s["metrics"]["grpc_reqs"]["thresholds"]["count==40"].get<bool>(), false);

  // --out json: one point per sample, with grpc_req_duration's tags; a
  // rate point's value is 1 for a failed call, 0 for an expected one.
  std::map<std::string, int> samples;
  std::map<std::string, double> failed_by_name;
  std::set<std::string> keys;
  std::ifstream in(dir_ + "/points.json");
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j["type"] != "Point") continue;
    const std::string metric = j["metric"];
    samples[metric]++;
    if (metric != "grpc_req_failed") continue;
    failed_by_name[j["data"]["tags"]["name"]] += j["data"]["value"].get<double>();
    for (const auto& [k, v] : j["data"]["tags"].items()) keys.insert(k);
  }
  EXPECT_EQ(samples["grpc_reqs"], 40);
  EXPECT_EQ(samples["grpc_req_failed"], 40);
  EXPECT_EQ(samples["grpc_req_duration"], 40);
  EXPECT_EQ(failed_by_name["bad-call"], 10);
  EXPECT_EQ(failed_by_name["/hello.HelloService/SayHello"], 0);
  for (const char* key : {"method", "service", "status", "name", "scenario", "group"}) {
    EXPECT_TRUE(keys.count(key)) << key;
  }
}

TEST_F(ConnectionControlTest, PrometheusExposesBothWithTheirCounts) {
  const std::string bad = StartTarget({"--error-rate", "1", "--error-status", "5"});
  const std::string script = Write("mix.js", std::string(kMixHead) + "export const options = { vus: 1, iterations: 5 };" + kMixBody);
  auto controller = testutil::ChildProcess::Start(
      testutil::BinaryPath("barrage"), {"run", "-q", "--prometheus", "127.0.0.1:0", "--linger", "10s", "-e",
                                        "OK=" + address_, "-e", "BAD=" + bad, script});
  absl::StatusOr<std::string> line = controller->WaitForLine("Prometheus metrics on (http://[0-9.:]+/metrics)", 20s);
  ASSERT_TRUE(line.ok()) << line.status();
  const std::string url = line->substr(line->find("http://"), line->find("/metrics") + 8 - line->find("http://"));
  ASSERT_TRUE(controller->WaitForLine("serving the final metrics", 60s).ok()) << controller->stderr_text();
  testutil::RunResult scrape = testutil::Run("/usr/bin/curl", {"-sf", url}, 10s);
  controller->Signal(SIGINT);
  ASSERT_EQ(scrape.exit_code, 0);
  // metric name -> sum over its series.
  std::map<std::string, double> sums;
  std::istringstream text(scrape.stdout_text);
  for (std::string l; std::getline(text, l);) {
    if (l.empty() || l[0] == '#') continue;
    const std::string name = l.substr(0, l.find_first_of("{ "));
    sums[name] += std::stod(l.substr(l.rfind(' ') + 1));
  }
  EXPECT_EQ(sums["barrage_grpc_reqs_total"], 20);
  EXPECT_EQ(sums["barrage_grpc_req_failed_total"], 20);        // samples
  EXPECT_EQ(sums["barrage_grpc_req_failed_passes_total"], 5);  // failed calls
  EXPECT_THAT(scrape.stdout_text, HasSubstr("barrage_grpc_req_failed_passes_total{"));
  EXPECT_THAT(scrape.stdout_text, HasSubstr("status=\"5\""));
}

TEST_F(ConnectionControlTest, ExpectedStatusesDecideWhatFails) {
  const std::string bad = StartTarget({"--error-rate", "1", "--error-status", "5"});
  // Module-wide NotFound is expected; one call of each kind overrides it:
  // OK only (the NotFound fails), or null (no grpc_req_failed sample).
  const std::string script = Write("expected.js", std::string(kMixHead) + R"(
grpc.setResponseCallback(grpc.expectedStatuses(grpc.StatusOK, { min: 4, max: 5 }));
export const options = {
  vus: 1, iterations: 4,
  thresholds: { grpc_req_failed: ['rate<0.01'], 'grpc_req_failed{kind:strict}': ['rate==1'], grpc_reqs: ['count==16'] },
};
export default () => {
  if (__ITER === 0) {
    ok.connect(__ENV.OK, { plaintext: true });
    bad.connect(__ENV.BAD, { plaintext: true });
  }
  ok.invoke('hello.HelloService/SayHello', { greeting: 'a' });
  bad.invoke('hello.HelloService/SayHello', { greeting: 'b' });
  bad.invoke('hello.HelloService/SayHello', { greeting: 'b' }, { responseCallback: null });
  bad.invoke('hello.HelloService/SayHello', { greeting: 'b' },
             { responseCallback: grpc.expectedStatuses(0), tags: { kind: 'strict' } });
};
)");
  testutil::RunResult run = RunScript(script, {"-e", "OK=" + address_, "-e", "BAD=" + bad});
  // 4 of 12 samples failed (the strict ones): rate<0.01 is crossed.
  EXPECT_EQ(run.exit_code, 99) << run.stdout_text << run.stderr_text;
  nlohmann::json s = Export();
  EXPECT_EQ(s["metrics"]["grpc_reqs"]["count"].get<int>(), 16);
  EXPECT_EQ(s["metrics"]["grpc_req_failed"]["passes"].get<int>(), 4);
  EXPECT_EQ(s["metrics"]["grpc_req_failed"]["fails"].get<int>(), 8);
  EXPECT_EQ(s["metrics"]["grpc_req_failed{kind:strict}"]["thresholds"]["rate==1"].get<bool>(), false);

  // Without the strict call every failure is expected: exit 0.
  const std::string lenient = Write("lenient.js", std::string(kMixHead) + R"(
grpc.setResponseCallback(grpc.expectedStatuses(0, 5));
export const options = { vus: 1, iterations: 3, thresholds: { grpc_req_failed: ['rate==0'] } };
)" + kMixBody);
  run = RunScript(lenient, {"-e", "OK=" + address_, "-e", "BAD=" + bad});
  EXPECT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  EXPECT_EQ(Export()["metrics"]["grpc_req_failed"]["fails"].get<int>(), 12);

  // setResponseCallback(null): no grpc_req_failed at all, grpc_reqs still.
  const std::string off = Write("off.js", std::string(kMixHead) + R"(
grpc.setResponseCallback(null);
export const options = { vus: 1, iterations: 2 };
)" + kMixBody);
  run = RunScript(off, {"-e", "OK=" + address_, "-e", "BAD=" + bad});
  EXPECT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  EXPECT_FALSE(Export()["metrics"].contains("grpc_req_failed"));
  EXPECT_EQ(Export()["metrics"]["grpc_reqs"]["count"].get<int>(), 8);
}

TEST_F(ConnectionControlTest, BadCallbackValuesThrowK6sMessages) {
  const std::string script = Write("badcb.js", std::string(kMixHead) + R"(
import { check } from 'k6';
export const options = { vus: 1, iterations: 1 };
function thrown(fn) { try { fn(); return 'no error'; } catch (e) { return e.message; } }
export default () => {
  ok.connect(__ENV.OK, { plaintext: true });
  const texts = [
    thrown(() => grpc.expectedStatuses()),
    thrown(() => grpc.expectedStatuses('0')),
    thrown(() => grpc.expectedStatuses(0, { min: 1, max: 2.5 })),
    thrown(() => grpc.setResponseCallback({ min: 0, max: 1 })),
    thrown(() => ok.invoke('hello.HelloService/SayHello', {}, { responseCallback: 0 })),
    thrown(() => grpc.setResponseCallback(grpc.expectedStatuses(0))),
  ];
  console.log(texts.join('|'));
};
)");
  testutil::RunResult run = RunScript(script, {"-e", "OK=" + address_});
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr(
      "msg=\"no arguments|"
      "argument number 1 to expectedStatuses was neither an integer nor an object like {min:100, max:329}|"
      "both min and max need to be integers for argument number 2|"
      "unsupported argument, expected grpc.expectedStatuses|"
      "invalid GRPC's client.invoke() parameters: unsupported responseCallback, expected grpc.expectedStatuses|"
      "no error\""));
}

// A stream is one call: one grpc_reqs and one grpc_req_failed sample when it
// ends, with its final status; a stream the script cancels (client.close())
// has not failed.
TEST_F(ConnectionControlTest, AStreamIsOneCallAndAClosedOneHasNotFailed) {
  const std::string failing = StartTarget({"--stream-error-after", "2", "--error-status", "14"});
  const std::string script = Write("streams.js", R"(import grpc from 'k6/net/grpc';
import { Stream } from 'k6/net/grpc';
const good = new grpc.Client();
good.load(['definitions'], 'hello.proto');
const broken = new grpc.Client();
broken.load(['definitions'], 'hello.proto');
const closed = new grpc.Client();
closed.load(['definitions'], 'hello.proto');
export const options = { vus: 1, iterations: 2 };
export default () => {
  if (__ITER === 0) {
    good.connect(__ENV.OK, { plaintext: true });
    broken.connect(__ENV.FAILING, { plaintext: true });
  }
  closed.connect(__ENV.OK, { plaintext: true });
  new Stream(good, 'hello.HelloService/LotsOfReplies', { tags: { kind: 'good' } }).write({ greeting: 'g' });
  const b = new Stream(broken, 'hello.HelloService/LotsOfReplies', { tags: { kind: 'broken' } });
  b.on('error', () => {});
  b.write({ greeting: 'b' });
  // A bidi stream left open, then closed with its client once it has answered.
  const c = new Stream(closed, 'hello.HelloService/BidiHello', { tags: { kind: 'closed' } });
  c.on('data', () => closed.close());
  c.write({ greeting: 'c' });
};
)");
  testutil::RunResult run = RunScript(script, {"-e", "OK=" + address_, "-e", "FAILING=" + failing});
  ASSERT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  nlohmann::json s = Export();
  EXPECT_EQ(s["metrics"]["grpc_streams"]["count"].get<int>(), 6);
  EXPECT_EQ(s["metrics"]["grpc_reqs"]["count"].get<int>(), 6);
  EXPECT_EQ(s["metrics"]["grpc_req_failed"]["passes"].get<int>(), 2);  // the broken ones
  EXPECT_EQ(s["metrics"]["grpc_req_failed"]["fails"].get<int>(), 4);
}

TEST_F(ConnectionControlTest, FailuresExampleExpectsNotFoundButNotInternal) {
  std::filesystem::copy_file(testutil::SourcePath("scripts/examples/failures.js"), dir_ + "/failures.js");
  const std::string not_found = StartTarget({"--error-rate", "0.5", "--error-status", "5"});
  testutil::RunResult run = RunScript(dir_ + "/failures.js", {"-d", "1s", "-e", "TARGET=" + not_found});
  EXPECT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  nlohmann::json s = Export();
  EXPECT_GT(s["metrics"]["grpc_reqs"]["count"].get<int>(), 10);
  EXPECT_EQ(s["metrics"]["grpc_req_failed"]["passes"].get<int>(), 0);
  const std::string internal = StartTarget({"--error-rate", "0.5", "--error-status", "13"});
  run = RunScript(dir_ + "/failures.js", {"-d", "1s", "-e", "TARGET=" + internal});
  EXPECT_EQ(run.exit_code, 99) << run.stdout_text << run.stderr_text;
  EXPECT_GT(Export()["metrics"]["grpc_req_failed"]["passes"].get<int>(), 0);
}

// ---- compression ------------------------------------------------------------

TEST_F(ConnectionControlTest, CompressionExamplePassesItsChecks) {
  std::filesystem::copy_file(testutil::SourcePath("scripts/examples/compression.js"), dir_ + "/compression.js");
  testutil::RunResult run = RunScript(dir_ + "/compression.js", {"-d", "1s", "-e", "TARGET=" + address_});
  EXPECT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  nlohmann::json s = Export();
  EXPECT_GT(s["metrics"]["checks"]["passes"].get<int>(), 10);
  EXPECT_EQ(s["metrics"]["checks"]["fails"].get<int>(), 0);
}

// 40 calls and a 20-message client stream, each message 20,000 bytes that
// gzip to a few dozen: the target reads (and data_sent counts) a small
// fraction of what it reads without compression. The replies, asked
// compressed, are what the target writes.
TEST_F(ConnectionControlTest, CompressedMessagesAreWhatGoesOnTheWire) {
  const std::string script = Write("zip.js", R"(import grpc from 'k6/net/grpc';
import { Stream } from 'k6/net/grpc';
import { check } from 'k6';
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
const greeting = 'x'.repeat(20000);
export const options = { vus: 1, iterations: 1 };
export default () => {
  const params = { plaintext: true };
  if (__ENV.ON_CONNECT) params.compression = __ENV.ON_CONNECT;
  client.connect(__ENV.TARGET, params);
  const call = { metadata: { 'x-report-encoding': '1', 'x-reply-encoding': __ENV.REPLY } };
  if (__ENV.PER_CALL) call.compression = __ENV.PER_CALL;
  for (let i = 0; i < 40; i++) {
    const r = client.invoke('hello.HelloService/SayHello', { greeting }, call);
    check(r, { 'encoding': (r) => r.headers['x-request-encoding'][0] === __ENV.EXPECT,
               'reply': (r) => r.message.reply.length === 20006 });
  }
  const sp = { metadata: { 'x-reply-encoding': __ENV.REPLY } };
  if (__ENV.PER_CALL) sp.compression = __ENV.PER_CALL;
  const s = new Stream(client, 'hello.HelloService/LotsOfGreetings', sp);
  s.on('data', (m) => check(m, { 'stream reply': (m) => m.reply.length > 20 * 20000 }));
  s.on('end', () => {
    console.log('all sent');
    setTimeout(() => {}, 2000);
  });
  for (let i = 0; i < 20; i++) s.write({ greeting });
  s.end();
};
)");
  struct Case {
    std::vector<std::string> env;
    int64_t read = 0, written = 0, data_sent = 0;
  };
  std::vector<Case> cases = {
      {{"EXPECT=identity", "REPLY=identity"}},
      {{"EXPECT=gzip", "REPLY=gzip", "ON_CONNECT=gzip"}},
      {{"EXPECT=deflate", "REPLY=gzip", "ON_CONNECT=gzip", "PER_CALL=deflate"}},
      {{"EXPECT=identity", "REPLY=identity", "ON_CONNECT=gzip", "PER_CALL=identity"}},
  };
  for (Case& c : cases) {
    SCOPED_TRACE(c.env[0] + " " + c.env[1]);
    std::vector<std::string> args = {"run", "-q", "--summary-export", dir_ + "/summary.json", "-e", "TARGET=" + address_};
    for (const std::string& e : c.env) args.insert(args.end(), {"-e", e});
    args.push_back(script);
    // The script keeps its connection open a while once everything is sent
    // and answered: then the target's side of it has the counts.
    auto run = testutil::ChildProcess::Start(testutil::BinaryPath("barrage"), args);
    ASSERT_TRUE(run->WaitForLine("all sent", 30s).ok()) << run->stderr_text();
    std::tie(c.read, c.written) = WireBytes(address_);
    ASSERT_EQ(run->Wait(30s), 0) << run->stdout_text() << run->stderr_text();
    nlohmann::json s = Export();
    EXPECT_EQ(s["metrics"]["checks"]["fails"].get<int>(), 0) << run->stdout_text();
    EXPECT_EQ(s["metrics"]["checks"]["passes"].get<int>(), 81);
    c.data_sent = s["metrics"]["data_sent"]["count"].get<int64_t>();
  }
  // Without compression: 60 messages of 20,004 bytes (a tag byte and a
  // 3-byte length before the 20,000 'x'), each with its 5-byte frame header.
  EXPECT_EQ(cases[0].data_sent, 60 * 20009);
  EXPECT_GT(cases[0].read, 60 * 20000);
  EXPECT_GT(cases[0].written, 40 * 20000);
  for (int i : {1, 2}) {
    EXPECT_LT(cases[i].data_sent, 60 * 200);  // each message gzips to about 60 bytes
    EXPECT_LT(cases[i].read, cases[0].read / 10);
    EXPECT_LT(cases[i].written, cases[0].written / 10);
  }
  // identity on the call beats gzip on connect.
  EXPECT_EQ(cases[3].data_sent, cases[0].data_sent);
  EXPECT_GT(cases[3].read, 60 * 20000);
}

TEST_F(ConnectionControlTest, UnknownCompressionIsAnErrorNamingIt) {
  const std::string script = Write("badzip.js", R"(import grpc from 'k6/net/grpc';
import { Stream } from 'k6/net/grpc';
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
export const options = { vus: 1, iterations: 1 };
function thrown(fn) { try { fn(); return 'no error'; } catch (e) { return e.message; } }
export default () => {
  const texts = [thrown(() => client.connect(__ENV.TARGET, { plaintext: true, compression: 'zstd' })),
                 thrown(() => client.connect(__ENV.TARGET, { plaintext: true, compression: 1 }))];
  client.connect(__ENV.TARGET, { plaintext: true });
  texts.push(thrown(() => client.invoke('hello.HelloService/SayHello', {}, { compression: 'snappy' })),
             thrown(() => new Stream(client, 'hello.HelloService/BidiHello', { compression: 'GZIP' })));
  console.log(texts.join('|'));
};
)");
  testutil::RunResult run = RunScript(script, {"-e", "TARGET=" + address_});
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr(
      "msg=\"invalid grpc.connect() parameters: unsupported compression \\\"zstd\\\": it needs to be one of "
      "\\\"gzip\\\", \\\"deflate\\\", \\\"identity\\\"|"
      "invalid grpc.connect() parameters: invalid compression value: 1, it needs to be a string|"
      "invalid GRPC's client.invoke() parameters: unsupported compression \\\"snappy\\\""));
  EXPECT_THAT(run.stderr_text, HasSubstr("|invalid GRPC Stream's parameters: unsupported compression \\\"GZIP\\\""));
}

// ---- connection sharing ------------------------------------------------------

// The target's established connections (ss), as in WireBytes.
int Connections(const std::string& address) {
  const std::string port = address.substr(address.rfind(':') + 1);
  testutil::RunResult ss = testutil::Run("/bin/ss", {"-Htn", "state", "established", "( sport = :" + port + " )"}, 10s);
  return static_cast<int>(std::count(ss.stdout_text.begin(), ss.stdout_text.end(), '\n'));
}

TEST_F(ConnectionControlTest, SharingExampleOpensOneConnectionPerWorkerOrOnePerNVus) {
  std::filesystem::copy_file(testutil::SourcePath("scripts/examples/sharing.js"), dir_ + "/sharing.js");
  // 10 VUs: 10 connections of their own; shared: one per worker thread
  // (--threads), or on one worker ceil(10 / 3) = 4 of at most 3 VUs.
  struct Case {
    std::string mode, threads;
    int connections;
  };
  for (const Case& c : std::vector<Case>{{"off", "2", 10}, {"true", "1", 1}, {"true", "2", 2}, {"3", "1", 4}}) {
    SCOPED_TRACE(c.mode + " --threads " + c.threads);
    auto run = testutil::ChildProcess::Start(
        testutil::BinaryPath("barrage"),
        {"run", "-q", "-d", "2s", "--threads", c.threads, "--summary-export", dir_ + "/summary.json", "-e",
         "TARGET=" + address_, "-e", "SHARING=" + c.mode, dir_ + "/sharing.js"});
    ASSERT_TRUE(run->WaitForLine("every VU has connected", 30s).ok()) << run->stderr_text();
    EXPECT_EQ(Connections(address_), c.connections);
    ASSERT_EQ(run->Wait(30s), 0) << run->stdout_text() << run->stderr_text();
    nlohmann::json s = Export();
    EXPECT_GT(s["metrics"]["grpc_reqs"]["count"].get<int>(), 50);
    EXPECT_EQ(s["metrics"]["checks"]["fails"].get<int>(), 0);
  }
}

// On one shared channel: VUs that connect and close every iteration, a VU
// whose calls its scenario's end interrupts, and VUs whose unary calls and
// streams are in flight all the while (the target answers after 50 ms). No
// close or interrupt may touch the others' calls.
TEST_F(ConnectionControlTest, OneVusCloseOrInterruptNeverCutsAnothersCalls) {
  const std::string slow = StartTarget({"--latency", "50ms", "--stream-interval", "20ms"});
  const std::string script = Write("shared.js", R"(import grpc from 'k6/net/grpc';
import { Stream } from 'k6/net/grpc';
import { check } from 'k6';
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
const params = { plaintext: true, connectionSharing: true };
export const options = {
  scenarios: {
    closers: { executor: 'constant-vus', vus: 3, duration: '2s', exec: 'closer', tags: { role: 'closer' } },
    interrupted: { executor: 'constant-vus', vus: 2, duration: '1s', gracefulStop: '0s', exec: 'interrupted' },
    steady: { executor: 'constant-vus', vus: 3, duration: '2s', exec: 'steady', tags: { role: 'steady' } },
  },
  thresholds: { 'checks{role:steady}': ['rate==1'], 'checks{role:closer}': ['rate==1'],
                'grpc_req_failed{role:steady}': ['rate==0'], 'grpc_streams{role:steady}': ['count>10'] },
};
export function closer() {
  client.connect(__ENV.TARGET, params);
  check(client.invoke('hello.HelloService/SayHello', { greeting: 'c' }), { 'closer call': (r) => r.status === 0 });
  client.close();
}
export function interrupted() {
  if (__ITER === 0) client.connect(__ENV.TARGET, params);
  client.asyncInvoke('hello.HelloService/SayHello', { greeting: 'i' });
  client.invoke('hello.HelloService/SayHello', { greeting: 'i' });
}
export function steady() {
  if (__ITER === 0) client.connect(__ENV.TARGET, params);
  const s = new Stream(client, 'hello.HelloService/LotsOfReplies');
  let replies = 0;
  s.on('data', () => replies++);
  s.on('end', () => check(replies, { 'every reply': (n) => n === 10 }));
  s.write({ greeting: 's' });
  check(client.invoke('hello.HelloService/SayHello', { greeting: 's' }), { 'steady call': (r) => r.status === 0 });
}
)");
  // One worker thread: every VU on the one channel (channels are shared per worker).
  testutil::RunResult run = RunScript(script, {"--threads", "1", "-e", "TARGET=" + slow});
  EXPECT_THAT(run.stdout_text + run.stderr_text, Not(HasSubstr("level=error")));
  EXPECT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  nlohmann::json s = Export();
  EXPECT_GT(s["metrics"]["checks"]["passes"].get<int>(), 40);
  EXPECT_EQ(s["metrics"]["checks"]["fails"].get<int>(), 0);
}

TEST_F(ConnectionControlTest, BadConnectionSharingValuesThrow) {
  const std::string script = Write("badshare.js", R"(import grpc from 'k6/net/grpc';
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
export const options = { vus: 1, iterations: 1 };
function thrown(fn) { try { fn(); return 'no error'; } catch (e) { return e.message; } }
export default () => {
  const texts = [-1, 0, 1.5, 'yes', null].map((v) => thrown(() => client.connect(__ENV.TARGET, { plaintext: true, connectionSharing: v })));
  texts.push(thrown(() => client.connect(__ENV.TARGET, { plaintext: true, connectionSharing: false })));
  console.log(texts.join('|'));
};
)");
  testutil::RunResult run = RunScript(script, {"-e", "TARGET=" + address_});
  EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
  const std::string prefix = "invalid grpc.connect() parameters: invalid connectionSharing value: ";
  const std::string suffix = ", it needs to be a boolean or a positive integer";
  EXPECT_THAT(run.stderr_text, HasSubstr("msg=\"" + prefix + "-1" + suffix + "|" + prefix + "0" + suffix + "|" + prefix +
                                         "1.5" + suffix + "|" + prefix + "\\\"yes\\\"" + suffix + "|" + prefix +
                                         "null" + suffix + "|no error\""));
}

}  // namespace
}  // namespace barrage

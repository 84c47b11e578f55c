// Scripts written the way k6's own gRPC examples are (grafana/k6,
// examples/grpc_*.js: route guide calls, a proto loaded through "..",
// reflection, healthCheck, streams ended by the server or by end(), console
// output in the handlers), run unchanged against barrage-target, which
// serves the route guide service they call (tests/target/route_guide_service.h).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "nlohmann/json.hpp"
#include "tests/integration/fixture.h"
#include "tests/testing/paths.h"

namespace barrage {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

// Where k6's examples find the proto: beside examples/, under internal/.
constexpr char kProtoDir[] = "internal/lib/testutils/grpcservice";

class K6ExamplesTest : public testutil::TargetFixture {
 protected:
  void SetUp() override {
    TargetFixture::SetUp();
    std::filesystem::create_directories(dir_ + "/examples");
    std::filesystem::create_directories(dir_ + "/" + kProtoDir);
    std::filesystem::copy_file(testutil::SourcePath("proto/routeguide/route_guide.proto"),
                               dir_ + "/" + kProtoDir + "/route_guide.proto");
  }
  // Runs examples/NAME (written from `text`) with GRPC_ADDR set to the
  // target. Relative paths in it are the script's, wherever barrage runs.
  testutil::RunResult RunExample(const std::string& name, const std::string& text,
                                 std::vector<std::string> flags = {}) {
    Write("examples/" + name, text);
    std::vector<std::string> args = {"run", "-e", "GRPC_ADDR=" + address_, "--summary-export",
                                     dir_ + "/summary.json"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back(dir_ + "/examples/" + name);
    return testutil::Run(testutil::BinaryPath("barrage"), args, 60s);
  }
  nlohmann::json Summary() { return nlohmann::json::parse(std::ifstream(dir_ + "/summary.json")); }
  static int Occurrences(const std::string& text, const std::string& what) {
    int n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  }
};

TEST_F(K6ExamplesTest, UnaryInvokeWithTheProtoLoadedThroughDotDot) {
  testutil::RunResult run = RunExample("grpc_invoke.js", R"(import grpc from 'k6/net/grpc';
import { check } from "k6";

const GRPC_ADDR = __ENV.GRPC_ADDR || '127.0.0.1:10000';
const GRPC_PROTO_PATH = __ENV.GRPC_PROTO_PATH || '../internal/lib/testutils/grpcservice/route_guide.proto';

let client = new grpc.Client();

client.load([], GRPC_PROTO_PATH);

export default () => {
  client.connect(GRPC_ADDR, { plaintext: true });

    const response = client.invoke("main.FeatureExplorer/GetFeature", {
        latitude: 410248224,
        longitude: -747127767
    })

    check(response, { "status is OK": (r) => r && r.status === grpc.StatusOK });
    console.log(JSON.stringify(response.message))

    client.close()
}
)");
  ASSERT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr(R"({\"name\":\"3 Hasta Way, Newton, NJ 07860, USA\",)"
                                         R"(\"location\":{\"latitude\":410248224,\"longitude\":-747127767}})"));
  EXPECT_EQ(Summary()["metrics"]["checks"]["fails"].get<int>(), 0);
  EXPECT_EQ(Summary()["metrics"]["checks"]["passes"].get<int>(), 1);
}

TEST_F(K6ExamplesTest, ReflectionFindsTheServiceWithoutAProto) {
  testutil::RunResult run = RunExample("grpc_reflection.js", R"(import grpc from 'k6/net/grpc';
import {check} from "k6";

const GRPC_ADDR = __ENV.GRPC_ADDR || '127.0.0.1:10000';

let client = new grpc.Client();

export default () => {
  client.connect(GRPC_ADDR, { plaintext: true, reflect: true });
  const response = client.invoke('main.FeatureExplorer/GetFeature', {
    latitude: 410248224,
    longitude: -747127767,
  });

  check(response, { 'status is OK': (r) => r && r.status === grpc.StatusOK });
  console.log(JSON.stringify(response.message));

  client.close();
};
)",
                                       {"-i", "3"});
  ASSERT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  EXPECT_EQ(Occurrences(run.stderr_text, "3 Hasta Way"), 3) << run.stderr_text;
  EXPECT_EQ(Summary()["metrics"]["checks"]["passes"].get<int>(), 3);
}

TEST_F(K6ExamplesTest, HealthCheckSaysServing) {
  testutil::RunResult run = RunExample("grpc_healthcheck.js", R"(import grpc from 'k6/net/grpc';
import { check } from "k6";

const GRPC_ADDR = __ENV.GRPC_ADDR || '127.0.0.1:10000';

let client = new grpc.Client();

export default () => {
	client.connect(GRPC_ADDR, { plaintext: true });

	const response = client.healthCheck()

	check(response, { "healthcheck status is OK": (r) => r && r.status === grpc.HealthCheckServing });

	client.close()
}
)");
  ASSERT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  EXPECT_EQ(Summary()["metrics"]["checks"]["passes"].get<int>(), 1);
  EXPECT_EQ(Summary()["metrics"]["checks"]["fails"].get<int>(), 0);
}

// A server stream the script never ends: one write of the request, the
// server's messages and its end, then client.close() in the end handler.
TEST_F(K6ExamplesTest, ServerStreamingWithoutEndGetsEveryFeatureAndTheEnd) {
  testutil::RunResult run = RunExample("grpc_server_streaming.js", R"(import { Client, Stream } from 'k6/net/grpc';
import { sleep } from 'k6';

const COORD_FACTOR = 1e7;
const GRPC_ADDR = __ENV.GRPC_ADDR || '127.0.0.1:10000';
const GRPC_PROTO_PATH = __ENV.GRPC_PROTO_PATH || '../internal/lib/testutils/grpcservice/route_guide.proto';

let client = new Client();

client.load([], GRPC_PROTO_PATH);

export default () => {
  client.connect(GRPC_ADDR, { plaintext: true });

  const stream = new Stream(client, 'main.FeatureExplorer/ListFeatures', null);

  stream.on('data', function (feature) {
    console.log(
      'Found feature called "' +
        feature.name +
        '" at ' +
        feature.location.latitude / COORD_FACTOR +
        ', ' +
        feature.location.longitude / COORD_FACTOR
    );
  });

  stream.on('end', function () {
    client.close();
    console.log('All done');
  });

  stream.on('error', function (e) {
    console.log('Error: ' + JSON.stringify(e));
  });

  stream.write({
    lo: {
      latitude: 400000000,
      longitude: -750000000,
    },
    hi: {
      latitude: 420000000,
      longitude: -730000000,
    },
  });

  sleep(0.5);
};
)",
                                       {"-i", "2"});
  ASSERT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  EXPECT_EQ(Occurrences(run.stderr_text, "Found feature called"), 22) << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr(R"(Found feature called \"3 Hasta Way, Newton, NJ 07860, USA\" at 41.0248224, -74.7127767)"));
  EXPECT_EQ(Occurrences(run.stderr_text, "All done"), 2);
  EXPECT_THAT(run.stderr_text, Not(HasSubstr("Error:")));
  EXPECT_EQ(Summary()["metrics"]["grpc_streams"]["count"].get<int>(), 2);
  EXPECT_EQ(Summary()["metrics"]["grpc_streams_msgs_received"]["count"].get<int>(), 22);
}

// Client streaming: points written with sleeps between them from a helper
// arrow function, end(), the summary in the data handler.
TEST_F(K6ExamplesTest, ClientStreamingGetsTheTripSummary) {
  testutil::RunResult run = RunExample("grpc_client_streaming.js", R"(import { Client, Stream } from 'k6/net/grpc';
import { sleep } from 'k6';

const COORD_FACTOR = 1e7;
const GRPC_ADDR = __ENV.GRPC_ADDR || '127.0.0.1:10000';
const GRPC_PROTO_PATH = __ENV.GRPC_PROTO_PATH || '../lib/testutils/grpcservice/route_guide.proto';

let client = new Client();
client.load([], GRPC_PROTO_PATH);

const DB = [
  { location: { latitude: 407838351, longitude: -746143763 }, name: 'Patriots Path, Mendham, NJ 07945, USA' },
  { location: { latitude: 408122808, longitude: -743999179 }, name: '101 New Jersey 10, Whippany, NJ 07981, USA' },
  { location: { latitude: 413628156, longitude: -749015468 }, name: 'U.S. 6, Shohola, PA 18458, USA' },
];

export default () => {
  if (__ITER == 0) {
    client.connect(GRPC_ADDR, { plaintext: true });
  }

  const stream = new Stream(client, 'main.RouteGuide/RecordRoute');

  stream.on('data', (stats) => {
    console.log('Finished trip with', stats.pointCount, 'points');
    console.log('Passed', stats.featureCount, 'features');
    console.log('Travelled', stats.distance, 'meters');
    console.log('It took', stats.elapsedTime, 'seconds');
  });

  stream.on('error', (err) => {
    console.log('Stream Error: ' + JSON.stringify(err));
  });

  stream.on('end', () => {
    client.close();
    console.log('All done');
  })

  for (var i = 0; i < 3; i++) {
    let point = DB[i];
    pointSender(stream, point);
  }

  stream.end();
};

const pointSender = (stream, point) => {
  console.log(
    'Visiting point ' +
      point.name +
      ' ' +
      point.location.latitude / COORD_FACTOR +
      ', ' +
      point.location.longitude / COORD_FACTOR
  );

  stream.write(point.location);

  sleep(0.5);
};
)",
                                       {"-i", "1", "-e", "GRPC_PROTO_PATH=../internal/lib/testutils/grpcservice/route_guide.proto"});
  ASSERT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  EXPECT_THAT(run.stderr_text, HasSubstr("Finished trip with 3 points"));
  EXPECT_THAT(run.stderr_text, HasSubstr("Passed 3 features"));
  // Haversine over the three points, as gRPC's example computes it.
  EXPECT_THAT(run.stderr_text, HasSubstr("Travelled 92589 meters"));
  EXPECT_THAT(run.stderr_text, HasSubstr("It took 1 seconds"));
  EXPECT_THAT(run.stderr_text, HasSubstr("All done"));
  EXPECT_THAT(run.stderr_text, Not(HasSubstr("Stream Error")));
}

// Bidirectional: notes at one point, each answered with every note there so far.
TEST_F(K6ExamplesTest, RouteChatAnswersEachNoteWithTheNotesSoFar) {
  testutil::RunResult run = RunExample("grpc_bidi.js", R"(import { Client, Stream } from 'k6/net/grpc';
import { check } from 'k6';

const client = new Client();
client.load(['../internal/lib/testutils/grpcservice'], 'route_guide.proto');

export default () => {
  client.connect(__ENV.GRPC_ADDR, { plaintext: true });
  const stream = new Stream(client, 'main.RouteGuide/RouteChat');
  const got = [];
  stream.on('data', (note) => got.push(note.message));
  stream.on('end', () => {
    check(got, { 'every note so far, each time': (g) => g.join() === `a${__VU}${__ITER},a${__VU}${__ITER},b${__VU}${__ITER},a${__VU}${__ITER},b${__VU}${__ITER},c${__VU}${__ITER}` });
    client.close();
  });
  // A point of this iteration's own, so other iterations' notes are not there.
  const location = { latitude: __VU * 1000 + __ITER, longitude: -1 };
  for (const m of ['a', 'b', 'c']) stream.write({ location, message: `${m}${__VU}${__ITER}` });
  stream.end();
};
)",
                                       {"-i", "4", "-u", "2"});
  ASSERT_EQ(run.exit_code, 0) << run.stdout_text << run.stderr_text;
  EXPECT_EQ(Summary()["metrics"]["checks"]["passes"].get<int>(), 4) << run.stderr_text;
  EXPECT_EQ(Summary()["metrics"]["checks"]["fails"].get<int>(), 0) << run.stderr_text;
  EXPECT_EQ(Summary()["metrics"]["grpc_streams_msgs_received"]["count"].get<int>(), 24);
}

}  // namespace
}  // namespace barrage

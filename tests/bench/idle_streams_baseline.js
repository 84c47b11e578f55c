// The baseline of idle_streams.js (stream_echo.sh --idle-streams N): the same
// VUs, each connected and having made one call, held idle in sleep() until
// the test's duration stops them, but with no stream.
//   k6 run -e TARGET=... -e VUS=1000 -e DURATION=10s idle_streams_baseline.js
import { Client } from 'k6/net/grpc';
import { sleep } from 'k6';

const client = new Client();
client.load(['definitions'], 'hello.proto');

export const options = {
  scenarios: {
    idle: {
      executor: 'constant-vus',
      vus: parseInt(__ENV.VUS || '1000', 10),
      duration: __ENV.DURATION || '10s',
      gracefulStop: '1s',
    },
  },
};

export default function () {
  if (__ITER === 0) {
    client.connect(__ENV.TARGET || '127.0.0.1:9001', { plaintext: true });
    client.invoke('hello.HelloService/SayHello', { greeting: 'idle' });
  }
  sleep(3600);  // interrupted when the test's duration ends
}

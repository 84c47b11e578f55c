// Benchmark (stream_echo.sh --idle-streams N): N VUs, each with its own
// connection, each holding ONE open hello.HelloService/BidiHello stream that
// never carries a message and is never ended. The test's duration bounds it:
// at its end the VU is stopped and the stream cancelled. Compared with
// idle_streams_baseline.js (the same VUs and connections, no stream), it gives
// memory and CPU per idle stream.
//
// Standard k6 API (v0.49+): k6 run -e TARGET=... -e VUS=1000 -e DURATION=10s idle_streams.js
// HOLD=sleep holds the VU in sleep() instead of in its event loop, which
// separates the stream's own cost from the cost of an event loop waiting on it.
import { Client, Stream } from 'k6/net/grpc';
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
  if (__ITER !== 0) {
    sleep(3600);  // one stream per VU, even if the first iteration ended early
    return;
  }
  client.connect(__ENV.TARGET || '127.0.0.1:9001', { plaintext: true });
  // The same call as the baseline, so both hold a used connection.
  client.invoke('hello.HelloService/SayHello', { greeting: 'idle' });
  const stream = new Stream(client, 'hello.HelloService/BidiHello');
  stream.on('error', (e) => {
    console.error('idle_streams: VU ' + __VU + ' stream failed: ' + e.code + ' ' + e.message);
  });
  // Nothing is written: the server sends nothing, and the open stream keeps
  // the iteration (the VU's event loop) waiting until the test stops it.
  if (__ENV.HOLD === 'sleep') sleep(3600);
}

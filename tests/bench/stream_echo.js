// Benchmark (stream_echo.sh): bidirectional streaming echo. Each VU opens ONE
// hello.HelloService/BidiHello stream and ping-pongs on it, writing the next
// message on each reply, until DURATION has passed; then it half-closes, the
// server ends the stream with OK and the VU's one iteration is over. So the
// figure is the cost of streaming messages, not of opening streams. Count:
// grpc_streams_msgs_received in the summary.
//
// Standard k6 API (v0.49+), it runs unchanged on k6:
//   k6 run -e TARGET=127.0.0.1:9001 -e VUS=32 -e DURATION=10s stream_echo.js
// VUS and DURATION come through -e, not -u/-d, which would replace the scenario.
// -e MESSAGES=N ends each stream after N replies instead (callgrind counts per
// message: the difference between two values of N is start-up free).
import { Client, Stream } from 'k6/net/grpc';

const client = new Client();
client.load(['definitions'], 'hello.proto');

// A Go-style duration as k6 writes them ("10s", "1m30s", "500ms"; a bare
// number is ms), in milliseconds.
function millis(text) {
  const units = { ms: 1, s: 1000, m: 60000, h: 3600000 };
  if (/^\d+(\.\d+)?$/.test(text)) return parseFloat(text);
  let total = 0;
  let rest = text;
  while (rest.length > 0) {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)/.exec(rest);
    if (m === null) throw new Error('DURATION: cannot read "' + text + '" as a duration');
    total += parseFloat(m[1]) * units[m[2]];
    rest = rest.slice(m[0].length);
  }
  return total;
}

const VUS = parseInt(__ENV.VUS || '32', 10);
const DURATION_MS = millis(__ENV.DURATION || '10s');
const MESSAGES = parseInt(__ENV.MESSAGES || '0', 10);

export const options = {
  scenarios: {
    echo: {
      executor: 'per-vu-iterations',
      vus: VUS,
      iterations: 1,
      // Only a bound for a stream that never ends; normal runs end at DURATION.
      maxDuration: Math.ceil(DURATION_MS / 1000) + 30 + 's',
      gracefulStop: '2s',
    },
  },
};

export default function () {
  if (__ITER === 0) client.connect(__ENV.TARGET || '127.0.0.1:9001', { plaintext: true });
  const deadline = Date.now() + DURATION_MS;
  let left = MESSAGES > 0 ? MESSAGES : Infinity;
  const stream = new Stream(client, 'hello.HelloService/BidiHello');
  stream.on('data', () => {
    if (--left > 0 && Date.now() < deadline) {
      stream.write({ greeting: 'x' });
    } else {
      stream.end();
    }
  });
  stream.on('error', (e) => {
    console.error('stream_echo: VU ' + __VU + ' stream failed: ' + e.code + ' ' + e.message);
  });
  stream.write({ greeting: 'x' });
  // Returning leaves the stream to the VU's event loop: the iteration ends
  // when the server has ended the stream.
}

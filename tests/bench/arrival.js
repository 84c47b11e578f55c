// Arrival-rate accuracy benchmark (tests/bench/arrival_rate.sh): one
// SayHello per iteration on the VU's own connection, the schedule set by
// __ENV: KIND (constant | ramping), RATE (per second), DURATION, PRE, MAX.
import grpc from 'k6/net/grpc';

const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');

const rate = parseInt(__ENV.RATE || '2000', 10);
const scenario = __ENV.KIND === 'ramping'
  ? { executor: 'ramping-arrival-rate', startRate: 0, timeUnit: '1s',
      stages: [{ duration: __ENV.DURATION || '5s', target: rate }, { duration: __ENV.DURATION || '5s', target: rate }] }
  : { executor: 'constant-arrival-rate', rate: rate, timeUnit: '1s', duration: __ENV.DURATION || '10s' };
scenario.preAllocatedVUs = parseInt(__ENV.PRE || '50', 10);
scenario.maxVUs = parseInt(__ENV.MAX || '200', 10);
export const options = { scenarios: { arrivals: scenario } };

let connected = false;
export default function () {
  if (!connected) {
    client.connect(__ENV.TARGET, { plaintext: true });
    connected = true;
  }
  client.invoke('hello.HelloService/SayHello', { greeting: 'arrival' });
}

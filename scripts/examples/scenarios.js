// Several scenarios side by side, each with its own executor, function,
// env and tags, and k6/execution to see where a VU is.
//   scripts/demo.sh scripts/examples/scenarios.js
// Split across instances (what the controller does with agents), e.g. the
// middle third:  --execution-segment 1/3:2/3 --execution-segment-sequence 0,1/3,2/3,1
import grpc from 'k6/net/grpc';
import exec from 'k6/execution';
import { check, sleep } from 'k6';

const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');

export const options = {
  scenarios: {
    // A quick smoke pass first: 2 VUs, 5 iterations each.
    smoke: { executor: 'per-vu-iterations', vus: 2, iterations: 5, maxDuration: '10s', gracefulStop: '1s',
             exec: 'hello', env: { GREETING: 'smoke' }, tags: { phase: 'smoke' } },
    // Then an open-model ramp: 0 -> 50 -> 0 requests/s over 6 s, whatever
    // the latency, with VUs added as needed.
    ramp: { executor: 'ramping-arrival-rate', startTime: '2s', startRate: 0, timeUnit: '1s',
            preAllocatedVUs: 5, maxVUs: 20,
            stages: [{ duration: '3s', target: 50 }, { duration: '3s', target: 0 }],
            exec: 'hello', env: { GREETING: 'ramp' }, tags: { phase: 'ramp' } },
    // And a closed-model background load of 3 VUs meanwhile.
    background: { executor: 'constant-vus', startTime: '2s', vus: 3, duration: '6s', exec: 'background' },
  },
  thresholds: {
    'grpc_req_duration{phase:ramp}': ['p(95)<200'],
    'checks{scenario:smoke}': ['rate==1'],
    checks: ['rate>0.99'],
  },
};

export function hello() {
  if (exec.vu.iterationInScenario === 0) client.connect(__ENV.TARGET || '127.0.0.1:9001', { plaintext: true });
  const r = client.invoke('hello.HelloService/SayHello', { greeting: __ENV.GREETING });
  check(r, {
    'status is OK': (x) => x && x.status === grpc.StatusOK,
    'reply greets this scenario': (x) => x && x.message.reply.indexOf(__ENV.GREETING) >= 0,
  });
}

export function background() {
  if (exec.vu.iterationInScenario === 0) client.connect(__ENV.TARGET || '127.0.0.1:9001', { plaintext: true });
  // A VU tag set by the script is on every later sample of this VU.
  exec.vu.tags.slot = exec.vu.idInTest % 2 === 0 ? 'even' : 'odd';
  const r = client.invoke('hello.HelloService/SayHello', { greeting: `VU ${exec.vu.idInTest}` });
  check(r, { 'status is OK': (x) => x && x.status === grpc.StatusOK });
  sleep(0.2);
}

// Client-side load balancing (Barrage's addition, issue 16; k6 issue #2758):
// k6's `dns` and `hosts` options apply to gRPC connections. With
// select: 'roundRobin' one connection spreads its calls over every address
// its name resolves to, and looks the name up again after `ttl`, so
// backends added behind the name (a Kubernetes headless Service) start
// getting calls and removed ones stop. 'first' sends every call to the
// first address, 'random' each connection to one at random; `--dns
// "ttl=1m,select=first"` or K6_DNS override the options, as in k6.
//
// TARGET: a name with several addresses and a port (default
// backends.test:9001). barrage-target says which of them answered
// (header x-served-by when asked with x-report-target): the `served`
// counter, tagged by backend, shows the spread (--out json, or the
// summary with a threshold per backend).
import grpc from 'k6/net/grpc';
import { check, sleep } from 'k6';
import { Counter } from 'k6/metrics';

const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
const served = new Counter('served');

export const options = {
  vus: 1,
  iterations: 3000,
  dns: { ttl: __ENV.DNS_TTL || '5m', select: 'roundRobin', policy: 'preferIPv4' },
  thresholds: { checks: ['rate==1'], grpc_req_failed: ['rate==0'] },
};

export default () => {
  if (__ITER === 0) client.connect(__ENV.TARGET || 'backends.test:9001', { plaintext: true });
  const r = client.invoke('hello.HelloService/SayHello', { greeting: `VU ${__VU}` },
                          { metadata: { 'x-report-target': '1' } });
  check(r, { 'status is OK': (res) => res.status === grpc.StatusOK });
  const by = r.headers['x-served-by'];
  // PHASE_AT (ms since the epoch): calls before it are tagged 'before',
  // after it 'after', for a test that changes the name's addresses then.
  const phase = __ENV.PHASE_AT ? (Date.now() < Number(__ENV.PHASE_AT) ? 'before' : 'after') : 'all';
  served.add(1, { backend: by ? by[0] : 'none', phase });
  if (__ENV.PACE_MS) sleep(Number(__ENV.PACE_MS) / 1000);
};

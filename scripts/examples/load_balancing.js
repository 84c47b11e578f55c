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
// TLS_CA: a CA file (PEM) to trust; the target then speaks TLS, and its
// certificate names the host name, not the addresses.
const ca = __ENV.TLS_CA ? open(__ENV.TLS_CA) : null;
const target = __ENV.TARGET || 'backends.test:9001';

export const options = {
  vus: 1,
  iterations: 3000,
  dns: { ttl: __ENV.DNS_TTL || '5m', select: 'roundRobin', policy: 'preferIPv4' },
  thresholds: { checks: ['rate==1'], grpc_req_failed: ['rate==0'] },
};

export default () => {
  if (__ITER === 0) {
    const params = ca ? { tls: { cacerts: [ca] } } : { plaintext: true };
    // SHARING=true: the VUs of a worker share one connection (connectionSharing).
    if (__ENV.SHARING === 'true') params.connectionSharing = true;
    client.connect(target, params);
  }
  const r = client.invoke('hello.HelloService/SayHello', { greeting: `VU ${__VU}` },
                          { metadata: { 'x-report-target': '1' } });
  check(r, {
    'status is OK': (res) => res.status === grpc.StatusOK,
    // The server sees the name, whichever address answered.
    'authority is the name': (res) => res.headers['x-authority'][0] === target,
  });
  const by = r.headers['x-served-by'];
  // CHANGE_AT,SETTLED_AT (ms since the epoch), for a test that changes the
  // name's addresses at CHANGE_AT: calls are tagged phase 'before',
  // 'moving' (until the new addresses must be in use), 'after'.
  let phase = 'all';
  if (__ENV.PHASES) {
    const [change, settled] = __ENV.PHASES.split(',').map(Number);
    const now = Date.now();
    phase = now < change ? 'before' : now < settled ? 'moving' : 'after';
  }
  served.add(1, { backend: by ? by[0] : 'none', phase });
  if (__ENV.PACE_MS) sleep(Number(__ENV.PACE_MS) / 1000);
};

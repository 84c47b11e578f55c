// Shared connections (Barrage's addition, issue 16; the parameter of k6's
// proposal, k6 issue #3188): by default every VU's client.connect opens its
// own connection, as in k6. With connectionSharing: true, the clients of an
// agent's worker thread (--threads, default one per core) that connect with
// the same parameters (address, TLS, authority, size limits) share one gRPC
// channel, hence one TCP connection; connectionSharing: N puts at most N on
// each, opening more as VUs join. A client's close() gives its place back; the channel closes
// with its last client, and never cuts another VU's calls short.
// SHARING=true | N | off (the default here: true).
import grpc from 'k6/net/grpc';
import { check, sleep } from 'k6';

const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');

const mode = __ENV.SHARING || 'true';
const sharing = mode === 'true' ? true : mode === 'off' ? false : Number(mode);

export const options = { vus: 10, duration: '5s', thresholds: { checks: ['rate==1'], grpc_req_failed: ['rate==0'] } };

export default () => {
  if (__ITER === 0) client.connect(__ENV.TARGET || '127.0.0.1:9001', { plaintext: true, connectionSharing: sharing });
  const r = client.invoke('hello.HelloService/SayHello', { greeting: `VU ${__VU}` });
  check(r, { 'status is OK': (res) => res.status === grpc.StatusOK });
  if (__VU === 1 && __ITER === 5) console.log('every VU has connected');
  sleep(0.1);
};

// grpc_reqs and grpc_req_failed (Barrage's addition, issue 16; k6 counts no
// failed gRPC calls). A call fails when its status is not one the script
// expects: OK alone by default, here OK and NotFound, as with k6's
// http.setResponseCallback(http.expectedStatuses(...)) for HTTP.
// Against `barrage-target --error-rate 0.5 --error-status 5` every call is
// expected and the threshold passes; with --error-status 13 it fails (exit 99).
import grpc from 'k6/net/grpc';
import { check } from 'k6';

const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');

// A lookup of a missing key answers NotFound: an answer, not a failure.
grpc.setResponseCallback(grpc.expectedStatuses(grpc.StatusOK, grpc.StatusNotFound));

export const options = {
  vus: 2,
  duration: '5s',
  thresholds: { grpc_req_failed: ['rate<0.01'], grpc_reqs: ['count>0'] },
};

export default () => {
  if (__ITER === 0) client.connect(__ENV.TARGET || '127.0.0.1:9001', { plaintext: true });
  const r = client.invoke('hello.HelloService/SayHello', { greeting: 'failures' });
  check(r, { 'answered': (res) => res.status === grpc.StatusOK || res.status === grpc.StatusNotFound });
};

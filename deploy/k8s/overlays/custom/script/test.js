// Your test goes here (this folder is merged into the barrage-script
// ConfigMap, mounted at /scripts). An example: the base's call with a
// per-method latency threshold and a stop on the first crossing.
import grpc from 'k6/net/grpc';
import { check, sleep } from 'k6';

if (!__ENV.TARGET) throw new Error('TARGET is not set: give the controller a TARGET=host:port environment variable');

const client = new grpc.Client();
client.load([], 'hello.proto'); // the base's copy, kept by `behavior: merge`

export const options = {
  thresholds: {
    'grpc_req_duration{method:hello.HelloService/SayHello}': [{ threshold: 'p(99)<250', abortOnFail: true }],
    checks: ['rate>0.999'],
  },
};

export default () => {
  if (__ITER === 0) client.connect(__ENV.TARGET, { plaintext: true });
  const response = client.invoke('hello.HelloService/SayHello', { greeting: `VU ${__VU}` });
  check(response, { 'status is OK': (r) => r && r.status === grpc.StatusOK });
  sleep(0.1);
};

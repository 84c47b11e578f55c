// The README's demo: the seed script, logging only each VU's first
// reply (the seed script, unary.js, logs every reply, which floods a terminal
// at thousands of calls a second).
import grpc from 'k6/net/grpc';
import { check } from 'k6';

const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');

export const options = { vus: 10, duration: '10s', thresholds: { grpc_req_duration: ['p(95)<200'], checks: ['rate>0.99'] } };

export default () => {
  if (__ITER === 0) client.connect(__ENV.TARGET || '127.0.0.1:9001', { plaintext: true });
  const response = client.invoke('hello.HelloService/SayHello', { greeting: 'Bert' });
  check(response, { 'status is OK': (r) => r && r.status === grpc.StatusOK });
  if (__ITER === 0) console.log(`VU ${__VU}: ${JSON.stringify(response.message)}`);
};

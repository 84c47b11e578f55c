// A test whose thresholds fail on purpose: barrage exits with 99.
import grpc from 'k6/net/grpc';
import { check } from 'k6';

const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');

export const options = {
  iterations: 20,
  thresholds: {
    grpc_req_duration: ['p(95)<0.001'],       // no call is that fast
    checks: ['rate>0.99'],                     // every check below fails
  },
};

export default function () {
  if (__ITER === 0) client.connect(__ENV.TARGET || '127.0.0.1:9001', { plaintext: true });
  const res = client.invoke('hello.HelloService/SayHello', { greeting: 'Bert' });
  check(res, { 'reply is impossible': (r) => r.message.reply === 'goodbye' });
}

// Groups, checks with tags, setup data and a named scenario function.
import grpc from 'k6/net/grpc';
import { check, group, sleep } from 'k6';

const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');

export const options = {
  scenarios: {
    greeters: { executor: 'per-vu-iterations', vus: 4, iterations: 25, exec: 'greet' },
  },
  thresholds: { 'checks{kind:reply}': ['rate==1'], 'grpc_req_duration{method:SayHello}': ['p(99)<500'] },
};

export function setup() {
  return { names: ['Ada', 'Grace', 'Linus'] };
}

export function greet(data) {
  if (__ITER === 0) client.connect(__ENV.TARGET || '127.0.0.1:9001', { plaintext: true });
  const name = data.names[__ITER % data.names.length];
  group('say hello', () => {
    const res = client.invoke('hello.HelloService/SayHello', { greeting: name });
    check(res, { 'status is OK': (r) => r.status === grpc.StatusOK });
    group('reply', () => {
      check(res, { [`reply greets ${name}`]: (r) => r.message.reply === `hello ${name}` }, { kind: 'reply' });
    });
  });
  sleep(0.01);
}

export function teardown(data) {
  console.log(`greeted ${data.names.length} names`);
}

// Benchmark 2 of the local-runtime issue: many VUs, each with its own
// connection, connected and idle-looping with sleep.
import grpc from 'k6/net/grpc';
import { sleep } from 'k6';

const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');

export default () => {
  if (__ITER === 0) {
    client.connect(__ENV.TARGET || '127.0.0.1:9001', { plaintext: true });
    client.invoke('hello.HelloService/SayHello', { greeting: 'idle' });
  }
  sleep(1);
};

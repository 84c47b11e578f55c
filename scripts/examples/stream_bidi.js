// Bidirectional streaming, written as the k6 docs recommend: an async
// default that awaits a Promise settled by the stream's events. Each reply
// triggers the next message (ping-pong) until five have come back.
import { Client, Stream } from 'k6/net/grpc';
import { check } from 'k6';

const client = new Client();
client.load(['definitions'], 'hello.proto');

export const options = { vus: 5, duration: '5s', thresholds: { checks: ['rate==1'], grpc_streams_msgs_received: ['count>0'] } };

export default async () => {
  if (__ITER === 0) client.connect(__ENV.TARGET || '127.0.0.1:9001', { plaintext: true });
  const stream = new Stream(client, 'hello.HelloService/BidiHello', { tags: { flow: 'chat' }, timeout: '10s' });
  const got = [];
  await new Promise((resolve, reject) => {
    stream.on('data', (m) => {
      got.push(m.reply);
      if (got.length < 5) stream.write({ greeting: `ping ${got.length}` });
      else stream.end();
    });
    stream.on('error', (e) => reject(new Error(`${e.code} ${e.message}`)));
    stream.on('end', resolve);
    stream.write({ greeting: 'ping 0' });
  });
  check(got, { 'five echoes in order': (g) => g.join() === 'hello ping 0,hello ping 1,hello ping 2,hello ping 3,hello ping 4' });
};

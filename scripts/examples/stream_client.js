// Client streaming: many requests, one reply once the client half-closes
// (barrage-target's LotsOfGreetings joins the greetings).
import { Client, Stream } from 'k6/net/grpc';
import { check } from 'k6';

const client = new Client();
client.load(['definitions'], 'hello.proto');

export const options = { vus: 5, duration: '5s', thresholds: { checks: ['rate==1'] } };

export default async () => {
  if (__ITER === 0) client.connect(__ENV.TARGET || '127.0.0.1:9001', { plaintext: true });
  const reply = await new Promise((resolve, reject) => {
    const stream = new Stream(client, 'hello.HelloService/LotsOfGreetings');
    let last = null;
    stream.on('data', (m) => { last = m.reply; });
    stream.on('error', (e) => reject(new Error(`${e.code} ${e.message}`)));
    stream.on('end', () => resolve(last));
    ['ann', 'bob', 'cy'].forEach((name) => stream.write({ greeting: name }));
    stream.end();
  });
  check(reply, { 'all greetings arrived in order': (r) => r === 'hello ann, bob, cy' });
};

// Server streaming: one request, many replies (barrage-target's LotsOfReplies
// sends --stream-count replies). A non-async default: the handlers run after
// it returns, and the iteration ends when the stream does.
import { Client, Stream } from 'k6/net/grpc';
import { check } from 'k6';
import { Counter } from 'k6/metrics';

const client = new Client();
client.load(['definitions'], 'hello.proto');
const replies = new Counter('replies');

export const options = {
  vus: 5,
  duration: '5s',
  thresholds: { checks: ['rate==1'], grpc_streams: ['count>0'] },
};

export default () => {
  if (__ITER === 0) client.connect(__ENV.TARGET || '127.0.0.1:9001', { plaintext: true });
  const stream = new Stream(client, 'hello.HelloService/LotsOfReplies', { tags: { kind: 'server' } });
  let received = 0;
  stream.on('data', (message, meta) => {
    received++;
    replies.add(1);
    check(message, { 'reply greets us': (m) => m.reply.startsWith('hello stream'), 'ts in seconds': () => meta.ts < 1e11 });
  });
  stream.on('error', (e) => console.error(`stream failed: ${e.code} ${e.message}`));
  stream.on('end', () => check(received, { 'got every reply': (n) => n === Number(__ENV.EXPECTED_REPLIES || 10) }));
  stream.write({ greeting: 'stream' });  // the only message: it half-closes
};

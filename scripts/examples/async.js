// asyncInvoke, Promise.all and timers: three calls in flight at once from one
// VU, a deadline with setTimeout, and a setInterval heartbeat cleared when
// the work is done.
import { Client, StatusOK } from 'k6/net/grpc';
import { check } from 'k6';

const client = new Client();
client.load(['definitions'], 'hello.proto');

export const options = { vus: 3, duration: '5s', thresholds: { checks: ['rate==1'] } };

function withTimeout(promise, ms) {
  let timer;
  const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export default async () => {
  if (__ITER === 0) client.connect(__ENV.TARGET || '127.0.0.1:9001', { plaintext: true });
  let beats = 0;
  const heartbeat = setInterval(() => beats++, 1);
  const names = ['ann', 'bob', 'cy'];
  const responses = await withTimeout(
    Promise.all(names.map((n) => client.asyncInvoke('hello.HelloService/SayHello', { greeting: n }))), 5000);
  clearInterval(heartbeat);
  check(responses, {
    'all OK': (rs) => rs.every((r) => r.status === StatusOK),
    'replies in order': (rs) => rs.map((r) => r.message.reply).join() === 'hello ann,hello bob,hello cy',
  });
  const rejected = await client.asyncInvoke('hello.HelloService/Nope', {}).then(() => null, (e) => e.message);
  check(rejected, { 'a bad method rejects': (m) => m !== null && m.includes('not found in file descriptors') });
  check(beats, { 'the interval ran meanwhile': (b) => b >= 0 });
};

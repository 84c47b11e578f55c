// Custom metrics of all four kinds, with tags, on top of the gRPC ones.
import grpc from 'k6/net/grpc';
import { check } from 'k6';
import { Counter, Gauge, Rate, Trend } from 'k6/metrics';

const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');

const replies = new Counter('replies');
const lastLength = new Gauge('last_reply_length');
const longReplies = new Rate('long_replies');
const replyLength = new Trend('reply_length');
const callTime = new Trend('call_time', true);

export const options = {
  iterations: 200,
  vus: 5,
  thresholds: { replies: ['count==200'], reply_length: ['avg>5', 'max<100'], call_time: ['p(90)<1000'] },
};

export default function () {
  if (__ITER === 0) client.connect(__ENV.TARGET || '127.0.0.1:9001', { plaintext: true });
  const start = Date.now();
  const res = client.invoke('hello.HelloService/SayHello', { greeting: `vu${__VU}` }, { tags: { kind: 'custom' } });
  callTime.add(Date.now() - start);
  if (check(res, { 'status is OK': (r) => r.status === grpc.StatusOK })) {
    const len = res.message.reply.length;
    replies.add(1, { vu_kind: __VU % 2 ? 'odd' : 'even' });
    lastLength.add(len);
    longReplies.add(len > 8);
    replyLength.add(len);
  }
}

// Compressed messages (Barrage's addition, issue 16, the shape of k6's PR
// #5113): `compression` on connect is the default of the client's calls and
// streams; a call or stream may name its own. gzip and deflate (gRPC C++'s
// built-in ones); 'identity' sends as is. Replies come back decompressed,
// whatever the server chose. data_sent counts the compressed bytes.
// barrage-target reports the compression a request came with (header
// x-request-encoding, asked with metadata x-report-encoding) and compresses
// its reply when asked (x-reply-encoding).
import grpc from 'k6/net/grpc';
import { check } from 'k6';

const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
const greeting = 'compress me '.repeat(200);  // 2,400 bytes that gzip well

export const options = { vus: 2, duration: '5s', thresholds: { checks: ['rate==1'], grpc_req_failed: ['rate==0'] } };

export default () => {
  if (__ITER === 0) client.connect(__ENV.TARGET || '127.0.0.1:9001', { plaintext: true, compression: 'gzip' });
  const metadata = { 'x-report-encoding': 'yes', 'x-reply-encoding': 'gzip' };
  const zipped = client.invoke('hello.HelloService/SayHello', { greeting }, { metadata });
  check(zipped, {
    'sent gzipped': (r) => r.headers['x-request-encoding'][0] === 'gzip',
    'gzipped reply read': (r) => r.message.reply === `hello ${greeting}`,
  });
  const plain = client.invoke('hello.HelloService/SayHello', { greeting }, { metadata, compression: 'identity' });
  check(plain, { 'sent as is': (r) => r.headers['x-request-encoding'][0] === 'identity' });
};

// Descriptors from a protoset (a serialized FileDescriptorSet) instead of
// .proto files. Make one with:
//   protoc --include_imports -o definitions/hello.protoset -I definitions definitions/hello.proto
import { Client, StatusOK } from 'k6/net/grpc';
import { check } from 'k6';

const client = new Client();
const methods = client.loadProtoset(__ENV.PROTOSET || 'definitions/hello.protoset');

export const options = { vus: 2, duration: '3s', thresholds: { checks: ['rate==1'] } };

export default () => {
  if (__ITER === 0) client.connect(__ENV.TARGET || '127.0.0.1:9001', { plaintext: true });
  const response = client.invoke('hello.HelloService/SayHello', { greeting: 'protoset' });
  check(response, {
    'status is OK': (r) => r.status === StatusOK,
    'four methods loaded': () => methods.length === 4,
  });
};

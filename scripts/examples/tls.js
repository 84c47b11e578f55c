// Mutual TLS to the target: our CA to trust its certificate, and a client
// certificate it verifies. barrage-target serves TLS with --tls-cert and
// --tls-key, and asks for client certificates with --tls-client-ca.
// The files come from the environment, e.g. -e CA=ca.pem -e CERT=client.pem -e KEY=client.key.
import { Client, StatusOK } from 'k6/net/grpc';
import { check } from 'k6';

const client = new Client();
client.load(['definitions'], 'hello.proto');
const tls = { cacerts: [open(__ENV.CA)] };
if (__ENV.CERT) {
  tls.cert = open(__ENV.CERT);
  tls.key = open(__ENV.KEY);
  if (__ENV.KEY_PASSWORD) tls.password = __ENV.KEY_PASSWORD;
}

export const options = { vus: 2, duration: '3s', thresholds: { checks: ['rate==1'] } };

export default () => {
  if (__ITER === 0) {
    const params = { tls };
    if (__ENV.AUTHORITY) params.authority = __ENV.AUTHORITY;  // the name the certificate was made for
    client.connect(__ENV.TARGET || 'localhost:9443', params);
  }
  const response = client.invoke('hello.HelloService/SayHello', { greeting: 'over TLS' });
  check(response, { 'status is OK': (r) => r.status === StatusOK && r.message.reply === 'hello over TLS' });
};

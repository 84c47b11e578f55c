// No .proto files: the descriptors come from the server's reflection service
// (barrage-target serves it unless started with --no-reflection), and a
// health check asks whether the service is up.
import { Client, StatusOK, HealthCheckServing } from 'k6/net/grpc';
import { check } from 'k6';

const client = new Client();

export const options = { vus: 2, duration: '3s', thresholds: { checks: ['rate==1'] } };

export default () => {
  if (__ITER === 0) {
    client.connect(__ENV.TARGET || '127.0.0.1:9001', { plaintext: true, reflect: true });
    check(client.healthCheck('hello.HelloService'), { 'service is serving': (h) => h.status === HealthCheckServing });
  }
  const response = client.invoke('hello.HelloService/SayHello', { greeting: 'reflected' });
  check(response, { 'status is OK': (r) => r.status === StatusOK, 'reply': (r) => r.message.reply === 'hello reflected' });
};

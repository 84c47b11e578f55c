// connectionSharing's cost (tests/bench/sharing.sh): MODE=busy calls
// SayHello back to back; MODE=idle calls once, then sleeps. SHARING=true |
// N | off (each VU its own connection, k6's default).
import grpc from 'k6/net/grpc';
import { sleep } from 'k6';

const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
const mode = __ENV.SHARING || 'off';
const sharing = mode === 'true' ? true : mode === 'off' ? false : Number(mode);

export default () => {
  if (__ITER === 0) client.connect(__ENV.TARGET || '127.0.0.1:9001', { plaintext: true, connectionSharing: sharing });
  if (__ENV.MODE === 'idle') {
    if (__ITER === 0) client.invoke('hello.HelloService/SayHello', { greeting: 'idle' });
    sleep(1);
    return;
  }
  client.invoke('hello.HelloService/SayHello', { greeting: 'Bert' });
};

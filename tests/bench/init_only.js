// VU initialisation without connections (tests/bench/vu_memory.sh --script
// tests/bench/init_only.js): each VU loads the proto in its init context,
// as idle_vus.js does, and then only sleeps.
import grpc from 'k6/net/grpc';
import { sleep } from 'k6';
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
export default () => { sleep(0.01); };

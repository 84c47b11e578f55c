// The script the Kubernetes manifests run (deploy/k8s/base/kustomization.yaml
// packs this folder into the barrage-script ConfigMap, mounted at /scripts).
// Calls hello.HelloService/SayHello on $TARGET and checks every reply.
// VUs and duration come from the controller's K6_VUS and K6_DURATION
// (deploy/k8s/base/controller.yaml), so an overlay changes them without
// touching this file.
import grpc from 'k6/net/grpc';
import { check, sleep } from 'k6';

if (!__ENV.TARGET) throw new Error('TARGET is not set: give the controller a TARGET=host:port environment variable');

const client = new grpc.Client();
client.load([], 'hello.proto'); // [] = this script's folder, /scripts in the pod

export const options = {
  thresholds: {
    grpc_req_duration: ['p(95)<500'],
    checks: ['rate>0.99'],
  },
};

export default () => {
  if (__ITER === 0) client.connect(__ENV.TARGET, { plaintext: true });
  const response = client.invoke('hello.HelloService/SayHello', { greeting: 'Bert' });
  check(response, { 'status is OK': (r) => r && r.status === grpc.StatusOK });
  sleep(0.1); // about 10 calls a second per VU; remove it to find the target's limit
};

"""Locust with grpcio as a gRPC load client: SayHello in a loop, no wait.

Run headless, e.g. (client_cpu.sh does this):
  /usr/bin/locust -f tests/bench/locustfile.py --headless -u 32 -r 1000 -t 10s \
      --host 127.0.0.1:PORT --only-summary
Debian's python3-locust, python3-grpcio and python3-grpc-tools, run with
/usr/bin/python3 (a pyenv python on PATH would not see them). The Python stubs
are generated at start into a temporary directory, from definitions/hello.proto.
At exit it prints "locust requests=N failures=F" (the --csv files may lag).
"""
import os
import shutil
import sys
import tempfile
import time

# grpcio's blocking calls would stall gevent's loop, making 32 users act as
# one; this makes them cooperative. It must run before any channel exists.
import grpc
import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

from grpc_tools import protoc  # noqa: E402
from locust import User, constant, events, task  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
_STUB_DIR = tempfile.mkdtemp(prefix="barrage_locust_stubs_")
if protoc.main(["protoc", "-I" + os.path.join(_HERE, "definitions"),
                "--python_out=" + _STUB_DIR, "--grpc_python_out=" + _STUB_DIR,
                "hello.proto"]) != 0:
    sys.exit("locustfile: cannot generate the hello.proto stubs")
sys.path.insert(0, _STUB_DIR)
import hello_pb2  # noqa: E402
import hello_pb2_grpc  # noqa: E402


@events.quitting.add_listener
def _report(environment, **_kwargs):
    # One parsable line; the --csv files may lag the end of the run.
    total = environment.stats.total
    print(f"locust requests={total.num_requests} failures={total.num_failures}", flush=True)
    shutil.rmtree(_STUB_DIR, ignore_errors=True)


def _loopback(host):
    if not host.startswith(("127.", "localhost:")):
        raise SystemExit(f"locustfile: --host must be a loopback HOST:PORT, got {host!r}")
    return host


class HelloUser(User):
    """One channel per user, like one k6 VU's client.connect()."""

    wait_time = constant(0)  # no think time: call again at once

    def on_start(self):
        self._channel = grpc.insecure_channel(_loopback(self.host or "127.0.0.1:9001"))
        self._stub = hello_pb2_grpc.HelloServiceStub(self._channel)
        self._request = hello_pb2.HelloRequest(greeting="Bert")

    def on_stop(self):
        self._channel.close()

    @task
    def say_hello(self):
        start = time.perf_counter()
        exception = None
        length = 0
        try:
            reply = self._stub.SayHello(self._request, timeout=10)
            length = len(reply.reply)
        except grpc.RpcError as e:
            exception = e
        events.request.fire(request_type="grpc", name="hello.HelloService/SayHello",
                            response_time=(time.perf_counter() - start) * 1000,
                            response_length=length, exception=exception, context={})

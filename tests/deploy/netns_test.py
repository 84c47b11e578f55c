#!/usr/bin/env python3
"""Runs the command lines of a deploy/k8s overlay on several hosts: Linux
network namespaces joined by a bridge, one per pod (the controller, each
agent, barrage-target), with the Services' names in each host's /etc/hosts,
as cluster DNS would resolve them. Then checks the merged result.

  netns_test.py --repo ROOT --barrage B --barrage-agent A --barrage-target T
                [--overlay deploy/k8s/overlays/demo] [--duration 3s]

The command lines, environment and files come from the rendered overlay
(tests/deploy/k8s_manifests.py). Only what must differ on one machine is
substituted: the binaries' paths for the image's, a temporary folder holding
the ConfigMaps' and Secrets' files for each volume mount, and K6_DURATION
(the test's length) in the controller's environment. Agents start before
the controller, as Jobs may. The controller's --linger keeps its metrics up
after the test; the test scrapes them from an agent's host and then ends the
linger with SIGTERM, as deleting the pod would, and the controller exits
with the test's result.

Checks: the controller exits 0; every agent exits 0, joined from its own
host's address and is listed in the summary export; the agents' iterations
add up to the merged count, their VUs to K6_VUS; every check passed and no
threshold was crossed; Prometheus' view from another host agrees.

Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) for `ip netns`; without it, it
says why and exits 77, which ctest reports as skipped. Namespaces are named
bdt<pid>-*, so parallel runs do not meet; the root namespace's network is
not touched (the bridge lives in a namespace of its own); everything is
removed on every way out, and leftovers of killed runs are removed at start.
"""

import argparse
import ctypes
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8s_manifests as km  # noqa: E402
from overlay_pods import (Failure, arg_value, check_demo_run, demo_roles, localize, log,  # noqa: E402
                          materialize, metrics_endpoint, pods_of_overlay, read, services_to_pods)

SKIP = 77
PREFIX = "bdt"
SUBNET = "10.213.0"  # private, and only inside this test's own namespaces
# An address no namespace here routes to: a DNS query fails at once (as no
# route) instead of waiting for a timeout, so names come from /etc/hosts.
NO_DNS = "192.0.2.53"
TOTAL_BUDGET = 55.0  # seconds for the whole test


def sh(*argv, check=True, timeout=10):
    out = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise Failure(f"{' '.join(argv)} exited {out.returncode}: {out.stderr.strip()}")
    return out


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def netns_names():
    out = sh("ip", "netns", "list", check=False)
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def remove_namespace(name):
    out = sh("ip", "netns", "pids", name, check=False)
    for pid in out.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    sh("ip", "netns", "delete", name, check=False)
    shutil.rmtree(f"/etc/netns/{name}", ignore_errors=True)


def remove_leftovers():
    """Namespaces of runs that were killed (ctest's timeout sends SIGKILL)."""
    for name in netns_names():
        m = re.match(rf"^{PREFIX}(\d+)-", name)
        if m and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1))):
            log(f"removing {name}, left by a killed run")
            remove_namespace(name)
    for path in glob.glob(os.path.join(tempfile.gettempdir(), "barrage-netns-*-*")):
        m = re.match(r"^barrage-netns-(\d+)-", os.path.basename(path))
        if m and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1))):
            shutil.rmtree(path, ignore_errors=True)


def skip_unless_netns_works():
    if shutil.which("ip") is None:
        print("SKIPPED: the `ip` command (iproute2) is missing; scripts/setup.sh installs it")
        sys.exit(SKIP)
    probe = f"{PREFIX}{os.getpid()}-probe"
    out = sh("ip", "netns", "add", probe, check=False)
    if out.returncode != 0:
        print(f"SKIPPED: cannot create a network namespace here ({out.stderr.strip() or 'ip netns add failed'}); "
              "this test needs root, or CAP_NET_ADMIN and CAP_SYS_ADMIN (a privileged container)")
        sys.exit(SKIP)
    ok = sh("ip", "netns", "exec", probe, "true", check=False).returncode == 0
    remove_namespace(probe)
    if not ok:
        print("SKIPPED: `ip netns exec` fails here (it needs to mount /sys and /etc/netns files)")
        sys.exit(SKIP)


# ----------------------------------------------------------------------------

class Hosts:
    """The namespaces, their bridge, and the processes in them."""

    def __init__(self):
        self.prefix = f"{PREFIX}{os.getpid()}"
        self.switch = f"{self.prefix}-sw"
        self.namespaces = []
        self.procs = []

    def make_switch(self):
        sh("ip", "netns", "add", self.switch)
        self.namespaces.append(self.switch)
        sh("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.switch, "link", "set", "br0", "up")

    def add_host(self, i, ip):
        ns = f"{self.prefix}-h{i}"
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        port = f"v{i}"
        sh("ip", "-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", self.switch, "link", "set", port, "master", "br0")
        sh("ip", "-n", self.switch, "link", "set", port, "up")
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        return ns

    def write_etc(self, ns, hosts_text):
        # `ip netns exec` bind-mounts /etc/netns/<ns>/* over /etc/*.
        try:
            os.makedirs(f"/etc/netns/{ns}", exist_ok=True)
            with open(f"/etc/netns/{ns}/hosts", "w") as f:
                f.write(hosts_text)
            with open(f"/etc/netns/{ns}/resolv.conf", "w") as f:
                f.write(f"# netns_test.py: no DNS server; names come from /etc/hosts\nnameserver {NO_DNS}\n")
        except OSError as e:
            raise Failure(f"cannot write /etc/netns/{ns}/ ({e.strerror}): the hosts' /etc/hosts come from there") from e

    def start(self, ns, argv, env, log_path):
        log_file = open(log_path, "wb")

        def die_with_parent():
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

        proc = subprocess.Popen(["ip", "netns", "exec", ns] + argv, env=env, stdout=log_file,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=die_with_parent, start_new_session=True)
        log_file.close()
        self.procs.append(proc)
        return proc

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        for ns in reversed(self.namespaces):
            remove_namespace(ns)
        self.namespaces = []


def wait_for(what, predicate, deadline, pods=()):
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        for p in pods:
            if p.proc.poll() is not None:
                raise Failure(f"{p.name} exited {p.proc.returncode} while waiting for {what}")
        time.sleep(0.1)
    raise Failure(f"timed out waiting for {what}")


def scrape(ns, url, timeout):
    code = ("import sys, urllib.request\n"
            f"sys.stdout.write(urllib.request.urlopen({url!r}, timeout={timeout}).read().decode())\n")
    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=timeout + 5)
    if out.returncode != 0:
        raise Failure(f"scraping {url} from {ns} failed: {out.stderr.strip()}")
    return out.stdout


def run(args, hosts, workdir):
    deadline = time.monotonic() + TOTAL_BUDGET
    overlay = os.path.join(args.repo, args.overlay)
    objects = km.build(overlay)
    pods = pods_of_overlay(objects)
    controller, agents, target = demo_roles(args.overlay, pods)
    log(f"{args.overlay}: {len(pods)} pods: " + ", ".join(f"{p.name} ({p.program})" for p in pods))

    # Hosts, addresses, names.
    hosts.make_switch()
    for i, p in enumerate(pods):
        p.ip = f"{SUBNET}.{i + 1}"
        p.ns = hosts.add_host(i, p.ip)
    names = services_to_pods(objects, pods)
    etc_hosts = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n"
    for name, p in sorted(names.items()):
        etc_hosts += f"{p.ip} {name}\n"
    for p in pods:
        hosts.write_etc(p.ns, etc_hosts + f"{p.ip} {p.name}\n")
    log(f"bridge {hosts.switch}/br0; " + ", ".join(f"{p.name}={p.ip}" for p in pods)
        + "; /etc/hosts: " + ", ".join(n for n in sorted(names) if "." not in n))

    # Command lines: local binaries, local copies of the volumes, a short test.
    binaries = {"barrage": args.barrage, "barrage-agent": args.barrage_agent, "barrage-target": args.barrage_target}
    if "K6_DURATION" not in controller.env:
        raise Failure(f"{km.describe(controller.workload)}: no K6_DURATION in its env, so this test cannot shorten "
                      "the run without changing its arguments")
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for k in ("LSAN_OPTIONS", "ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS"):
        if k in os.environ:
            base_env[k] = os.environ[k]
    for p in pods:
        local = materialize(p, os.path.join(workdir, "volumes"))
        p.argv = [binaries[p.program]] + [localize(a, local) for a in p.argv[1:]]
        p.env = {**base_env, **p.env}
        p.log_path = os.path.join(workdir, f"{p.name}.log")
    controller.env["K6_DURATION"] = args.duration
    export = arg_value(controller.argv, "--summary-export")
    if not export:
        raise Failure("the controller has no --summary-export")
    # Scrape the metrics port through the Service that publishes it, as Prometheus does.
    metrics_host, metrics_port = metrics_endpoint(objects, names, controller)
    log("controller: " + " ".join(controller.argv[1:]) + f"  (K6_DURATION={args.duration}, "
        f"manifest: {km.container_env(objects, controller.workload, controller.container, controller.name, None)['K6_DURATION']})")
    log("agent: " + " ".join(agents[0].argv[1:]))

    # Start: the target, then the agents (they retry until the controller is up), then the controller.
    target.proc = hosts.start(target.ns, target.argv, target.env, target.log_path)
    wait_for("barrage-target to listen", lambda: "listening on" in read(target.log_path),
             min(deadline, time.monotonic() + 10), [target])
    for a in agents:
        a.proc = hosts.start(a.ns, a.argv, a.env, a.log_path)
    time.sleep(0.5)
    controller.proc = hosts.start(controller.ns, controller.argv, controller.env, controller.log_path)
    t_start = time.monotonic()
    log(f"started barrage-target, {len(agents)} agents, then the controller")

    # The agents join (back-off: 250 ms doubling to 5 s), then the test runs.
    def joined():
        return len(re.findall(r"agent \S+ joined from", read(controller.log_path))) >= len(agents)
    wait_for(f"{len(agents)} agents to join the controller (its log says who did)", joined,
             min(deadline, time.monotonic() + 20), [controller])
    log(f"{len(agents)} agents joined {time.monotonic() - t_start:.1f}s after the controller started")

    # Its summary is written before the linger.
    def exported():
        text = read(export)
        try:
            return json.loads(text) if text.strip() else None
        except json.JSONDecodeError:
            return None
    summary = wait_for("the controller's summary export", exported, deadline, [controller])
    log(f"summary exported {time.monotonic() - t_start:.1f}s after the controller started")
    for a in agents:
        try:
            a.proc.wait(timeout=max(0.1, min(15, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            raise Failure(f"{a.name} did not exit after the test (--once)") from None

    metrics = scrape(agents[0].ns, f"http://{metrics_host}:{metrics_port}/metrics", timeout=5)
    log(f"scraped http://{metrics_host}:{metrics_port}/metrics from {agents[0].name}'s host "
        f"({len(metrics.splitlines())} lines)")
    if controller.proc.poll() is not None:
        raise Failure(f"the controller exited ({controller.proc.returncode}) before the end of --linger")
    controller.proc.send_signal(signal.SIGTERM)  # ends the linger, as deleting the pod would
    try:
        controller.proc.wait(timeout=max(0.1, min(10, deadline - time.monotonic())))
    except subprocess.TimeoutExpired:
        raise Failure("the controller did not exit within 10 s of SIGTERM during --linger") from None
    log("controller exited")
    for p in agents + [controller]:
        p.exit_code = p.proc.returncode
    check_demo_run(summary, metrics, controller, agents)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", required=True)
    ap.add_argument("--barrage", required=True)
    ap.add_argument("--barrage-agent", required=True)
    ap.add_argument("--barrage-target", required=True)
    ap.add_argument("--overlay", default="deploy/k8s/overlays/demo")
    ap.add_argument("--duration", default="3s", help="K6_DURATION for the controller (the manifests' is longer)")
    ap.add_argument("--keep-logs", action="store_true", help="leave the work folder (logs, volumes) in place")
    args = ap.parse_args()
    args.repo = os.path.abspath(args.repo)

    skip_unless_netns_works()
    remove_leftovers()
    hosts = Hosts()
    workdir = tempfile.mkdtemp(prefix=f"barrage-netns-{os.getpid()}-")

    def on_signal(signum, _frame):
        raise SystemExit(f"stopped by signal {signum}")
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)

    status = 1
    try:
        run(args, hosts, workdir)
        status = 0
    except (Failure, km.ManifestError) as e:
        print(f"FAIL: {e}")
        for name in sorted(os.listdir(workdir)):
            if name.endswith(".log"):
                print(f"---- {name} (last 40 lines)")
                print("\n".join(read(os.path.join(workdir, name)).splitlines()[-40:]))
    finally:
        hosts.cleanup()
        if args.keep_logs:
            print(f"logs and volumes kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        left = [n for n in netns_names() if n.startswith(hosts.prefix + "-")]
        if left:
            print(f"FAIL: namespaces left behind: {left}")
            status = 1
        log("cleaned up")
    return status


if __name__ == "__main__":
    sys.exit(main())

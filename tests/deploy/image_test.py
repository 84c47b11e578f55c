#!/usr/bin/env python3
"""Builds the image (deploy/docker/build-image.sh, docker or podman) and runs
a deploy/k8s overlay's pods in containers of it, one container per pod, on
one container network where the Services' names resolve to their pods'
containers (network aliases), as cluster DNS would resolve them.

  image_test.py --repo ROOT [--overlay deploy/k8s/overlays/demo] [--duration 3s]
                [--no-build] [--keep-logs]

The command lines, environment, mounted ConfigMap and Secret files, user,
read-only root, dropped capabilities and resource limits come from the
rendered overlay (tests/deploy/k8s_manifests.py, as netns_test.py). Only
K6_DURATION (the test's length) is changed. The image's entrypoint (tini)
starts each program, as it would in the pod.

1. The demo run: barrage-target, then the agents, then the controller (its
   container starts before the agents' so that its name resolves, as a
   Service's does before its pod runs, but its program only after them);
   the checks of netns_test.py (every exit code, each agent joining from its
   container's address and listed in the summary export, iterations and
   VUs adding up, checks passed, no threshold crossed) and /metrics
   scraped from another container through the Service's name agreeing
   with the summary. SIGTERM (`kill`, as deleting the pod) ends the
   controller's --linger.
2. A lost agent: the same pods with a long test; one agent's container is
   killed (SIGKILL) while it runs, and the controller exits 111 naming it;
   the others exit 0 and the export lists it as lost.
3. The image's HEALTHCHECK: healthy in a barrage-target container whose
   BARRAGE_HEALTH_ADDR is its port, unhealthy when it names a closed port.

Skipped (exit 77, the reason printed) only where containers cannot run at
all: no podman and no Docker engine, or an engine that cannot work here.
Everything this test starts carries the label barrage-image-test=<pid>:
its containers and its network are removed on every way out, and those of
killed runs at the next start. Images stay, for their layers.
"""

import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8s_manifests as km  # noqa: E402
from overlay_pods import (Failure, arg_value, check_demo_run, demo_roles, localize, log,  # noqa: E402
                          materialize, metrics_endpoint, pods_of_overlay, read, services_to_pods)

SKIP = 77
LABEL = "barrage-image-test"
RUN_BUDGET = 150.0  # seconds for the containers, once the image is built


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


class Engine:
    """docker or podman, as deploy/docker/engine.sh chose and configured it."""

    def __init__(self, repo):
        out = subprocess.run(["bash", os.path.join(repo, "deploy/docker/engine.sh")], capture_output=True,
                             text=True, timeout=60)
        if out.returncode != 0:
            print(f"SKIPPED: containers cannot run here: {out.stderr.strip()}")
            sys.exit(SKIP)
        values = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
        self.name = values["ENGINE"]
        self.env = dict(os.environ)
        if values.get("CONTAINERS_CONF"):
            self.env["CONTAINERS_CONF"] = values["CONTAINERS_CONF"]
        info = self.run("info", check=False, timeout=60)
        if info.returncode != 0:
            print(f"SKIPPED: containers cannot run here: `{self.name} info` fails: {info.stderr.strip()[-500:]}")
            sys.exit(SKIP)

    def argv(self, *args):
        return [self.name] + list(args)

    def run(self, *args, check=True, timeout=30):
        out = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout, env=self.env,
                             stdin=subprocess.DEVNULL)
        if check and out.returncode != 0:
            raise Failure(f"{self.name} {' '.join(args)} exited {out.returncode}: {out.stderr.strip()}")
        return out

    def popen(self, args, log_path):
        with open(log_path, "wb") as log_file:
            return subprocess.Popen(self.argv(*args), env=self.env, stdout=log_file, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)

    def labelled(self, kind):
        """{name: owner pid} of the containers or networks this test made."""
        fmt = "{{.Names}}" if kind == "ps" else "{{.Name}}"
        args = ["ps", "-a"] if kind == "ps" else ["network", "ls"]
        out = self.run(*args, "--filter", f"label={LABEL}", "--format", fmt, check=False)
        found = {}
        for name in out.stdout.split():
            m = re.match(r"^bit(\d+)", name)
            if m:
                found[name] = int(m.group(1))
        return found


class Containers:
    """The containers and the network of this run, removed by cleanup()."""

    def __init__(self, engine):
        self.engine = engine
        self.prefix = f"bit{os.getpid()}"
        self.network = None
        self.procs = []

    def remove_leftovers(self):
        """Those of runs that were killed (ctest's timeout sends SIGKILL)."""
        for path in glob.glob(os.path.join(tempfile.gettempdir(), "barrage-image-*-*")):
            m = re.match(r"^barrage-image-(\d+)-", os.path.basename(path))
            if m and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1))):
                shutil.rmtree(path, ignore_errors=True)
        for kind in ("ps", "network"):
            for name, pid in self.engine.labelled(kind).items():
                if pid != os.getpid() and not pid_alive(pid):
                    log(f"removing {name}, left by a killed run")
                    if kind == "ps":
                        self.engine.run("rm", "-f", name, check=False)
                    else:
                        self.engine.run("network", "rm", name, check=False)

    def make_network(self):
        self.network = f"{self.prefix}-net"
        # Internal: the pods talk to each other only; nothing leaves the host.
        self.engine.run("network", "create", "--internal", "--label", f"{LABEL}={os.getpid()}", self.network)

    def start(self, name, image, run_args, argv, log_path):
        args = ["run", "--name", f"{self.prefix}-{name}", "--label", f"{LABEL}={os.getpid()}",
                "--network", self.network] + run_args + [image] + argv
        proc = self.engine.popen(args, log_path)
        self.procs.append(proc)
        return proc

    def container(self, name):
        return f"{self.prefix}-{name}"

    def ip(self, name, proc, deadline):
        """The container's address on the network, once it runs."""
        while time.monotonic() < deadline:
            out = self.engine.run("inspect", "--format",
                                  "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                                  self.container(name), check=False)
            addresses = out.stdout.split()
            if out.returncode == 0 and addresses:
                return addresses[0]
            if proc.poll() is not None:
                raise Failure(f"{name} exited {proc.returncode} before it had an address")
            time.sleep(0.2)
        raise Failure(f"timed out waiting for {name}'s address")

    def remove_all(self):
        names = [n for n, pid in self.engine.labelled("ps").items() if pid == os.getpid()]
        if names:
            self.engine.run("rm", "-f", *names, check=False, timeout=120)

    def cleanup(self):
        self.remove_all()
        for p in self.procs:  # the clients of containers that are gone now
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.procs = []
        if self.network:
            self.engine.run("network", "rm", "-f", self.network, check=False, timeout=60)


def wait_for(what, predicate, deadline, procs=()):
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        for name, p in procs:
            if p.poll() is not None:
                raise Failure(f"{name} exited {p.returncode} while waiting for {what}")
        time.sleep(0.2)
    raise Failure(f"timed out waiting for {what}")


def wait_exit(name, proc, seconds):
    try:
        return proc.wait(timeout=max(0.1, seconds))
    except subprocess.TimeoutExpired:
        raise Failure(f"{name} did not exit within {seconds:.0f} s") from None


def security_args(pod):
    """The pod's securityContext and resource limits as run options."""
    spec = km.pod_spec(pod.workload)
    psc = spec.get("securityContext") or {}
    csc = pod.container.get("securityContext") or {}
    args = []
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    gid = csc.get("runAsGroup", psc.get("runAsGroup"))
    if uid is not None:
        args += ["--user", f"{uid}:{gid}" if gid is not None else str(uid)]
    if psc.get("fsGroup") is not None:
        args += ["--group-add", str(psc["fsGroup"])]
    if csc.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    for cap in (csc.get("capabilities") or {}).get("drop") or []:
        args += ["--cap-drop", cap]
    if csc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    limits = (pod.container.get("resources") or {}).get("limits") or {}
    if "cpu" in limits:
        args += ["--cpus", f"{km._quantity(limits['cpu']):g}"]
    if "memory" in limits:
        args += ["--memory", str(int(km._quantity(limits["memory"])))]
    return args


def summary_of(path):
    text = read(path)
    try:
        return json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        return None


class DemoRun:
    """One start of the overlay's pods in containers."""

    def __init__(self, args, containers, image, objects, pods, workdir, tag, duration):
        self.containers = containers
        self.image = image
        self.workdir = os.path.join(workdir, tag)
        os.makedirs(self.workdir)
        self.controller, self.agents, self.target = demo_roles(args.overlay, pods)
        self.names = services_to_pods(objects, pods)
        self.metrics_host, self.metrics_port = metrics_endpoint(objects, self.names, self.controller)
        if "K6_DURATION" not in self.controller.env:
            raise Failure(f"{km.describe(self.controller.workload)}: no K6_DURATION in its env, so this test "
                          "cannot set the run's length without changing its arguments")
        self.controller.env["K6_DURATION"] = duration
        self.run_args = {}
        fs_groups = {}
        for p in pods:
            fs_groups[p.name] = (km.pod_spec(p.workload).get("securityContext") or {}).get("fsGroup")
            local = materialize(p, os.path.join(self.workdir, "volumes"), fs_group=fs_groups[p.name] or 0)
            a = ["--hostname", p.name, "--no-healthcheck"]  # Kubernetes ignores the image's HEALTHCHECK
            a += [f"--network-alias={n}" for n, q in sorted(self.names.items()) if q is p]
            a += security_args(p)
            for mount, path in sorted(local.items()):
                writable = p.mounts[mount]["writable"]
                a += ["--volume", f"{path}:{mount}:{'rw' if writable else 'ro'}"]
            for k, v in p.env.items():
                a += ["--env", f"{k}={v}"]
            self.run_args[p.name] = (a, local)
            p.log_path = os.path.join(self.workdir, f"{p.name}.log")
        export = arg_value(self.controller.argv, "--summary-export")
        if not export:
            raise Failure("the controller has no --summary-export")
        self.export = localize(export, self.run_args[self.controller.name][1])
        self.procs = {}

    def start(self, pod, gate=None):
        args, _ = self.run_args[pod.name]
        argv = pod.argv
        if gate:
            # The program starts when the file `go` appears in the gate folder.
            args = args + ["--volume", f"{gate}:/barrage-test-gate:ro"]
            argv = ["bash", "-c", 'while [ ! -e /barrage-test-gate/go ]; do sleep 0.05; done; exec "$@"',
                    "bash"] + argv
        self.procs[pod.name] = self.containers.start(pod.name, self.image, args, argv, pod.log_path)
        return self.procs[pod.name]

    def start_all(self, deadline):
        """The target, then the agents (they retry until the controller is
        up), then the controller; returns when every agent has joined.

        A Service's name resolves in a cluster from the moment the Service
        exists, before its pod runs; a network alias resolves only while
        its container runs. So the controller's container starts before
        the agents', with its program held back until they run: the agents
        see what they would in a cluster, a name whose connections are
        refused until the controller listens."""
        t, c = self.target, self.controller
        self.start(t)
        wait_for("barrage-target to listen", lambda: "listening on" in read(t.log_path),
                 min(deadline, time.monotonic() + 30), [(t.name, self.procs[t.name])])
        gate = os.path.join(self.workdir, "gate")
        os.makedirs(gate)
        os.chmod(gate, 0o755)
        self.start(c, gate=gate)
        c.ip = self.containers.ip(c.name, self.procs[c.name], deadline)
        for a in self.agents:
            self.start(a)
        for a in self.agents:
            a.ip = self.containers.ip(a.name, self.procs[a.name], deadline)
        time.sleep(0.5)
        with open(os.path.join(gate, "go"), "w"):
            pass
        t_start = time.monotonic()
        log(f"started barrage-target, {len(self.agents)} agents ("
            + ", ".join(f"{a.name}={a.ip}" for a in self.agents) + f"), then the controller ({c.ip})")

        def joined():
            return len(re.findall(r"agent \S+ joined from", read(c.log_path))) >= len(self.agents)
        wait_for(f"{len(self.agents)} agents to join the controller (its log says who did)", joined,
                 min(deadline, time.monotonic() + 30), [(c.name, self.procs[c.name])])
        log(f"{len(self.agents)} agents joined {time.monotonic() - t_start:.1f}s after the controller started")

    def scrape(self, timeout=10):
        """GET /metrics through the Service's name, from a container of its own."""
        script = ('exec 3<>"/dev/tcp/$0/$1" && printf "GET /metrics HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n" "$0" >&3 '
                  '&& cat <&3')
        out = self.containers.engine.run(
            "run", "--rm", "--name", self.containers.container("scrape"), "--label", f"{LABEL}={os.getpid()}",
            "--network", self.containers.network, "--no-healthcheck", self.image,
            "bash", "-c", script, self.metrics_host, str(self.metrics_port), check=False, timeout=timeout + 30)
        # text mode has turned the response's CRLFs into newlines
        head, sep, body = out.stdout.replace("\r\n", "\n").partition("\n\n")
        if out.returncode != 0 or not sep or " 200 " not in head.splitlines()[0]:
            raise Failure(f"scraping http://{self.metrics_host}:{self.metrics_port}/metrics from another "
                          f"container failed (exit {out.returncode}): {out.stderr.strip()} {head[:200]!r}")
        return body

    def end_linger(self):
        """SIGTERM, as deleting the pod would; tini passes it on."""
        c = self.controller
        if self.procs[c.name].poll() is not None:
            raise Failure(f"the controller exited ({self.procs[c.name].returncode}) before the end of --linger")
        self.containers.engine.run("kill", "--signal", "TERM", self.containers.container(c.name))
        c.exit_code = wait_exit("the controller, after SIGTERM during --linger", self.procs[c.name], 15)

    def dump_logs(self):
        for p in [self.target] + self.agents + [self.controller]:
            if p.log_path and os.path.exists(p.log_path):
                print(f"---- {p.name} (last 40 lines)")
                print("\n".join(read(p.log_path).splitlines()[-40:]))


def demo(args, containers, image, objects, workdir, deadline):
    pods = pods_of_overlay(objects)
    run = DemoRun(args, containers, image, objects, pods, workdir, "demo", args.duration)
    try:
        log("controller: " + " ".join(run.controller.argv) + f"  (K6_DURATION={args.duration})")
        log("agent: " + " ".join(run.agents[0].argv))
        log("aliases: " + ", ".join(sorted(run.names)))
        run.start_all(deadline)
        summary = wait_for("the controller's summary export", lambda: summary_of(run.export), deadline,
                           [(run.controller.name, run.procs[run.controller.name])])
        for a in run.agents:
            a.exit_code = wait_exit(f"{a.name} (--once) after the test", run.procs[a.name], 20)
        metrics = run.scrape()
        log(f"scraped http://{run.metrics_host}:{run.metrics_port}/metrics from another container "
            f"({len(metrics.splitlines())} lines)")
        run.end_linger()
        log(f"controller exited {run.controller.exit_code}")
        check_demo_run(summary, metrics, run.controller, run.agents)
    except Failure:
        run.dump_logs()
        raise


def lost_agent(args, containers, image, objects, workdir, deadline):
    pods = pods_of_overlay(objects)
    # Long enough that the agents are still running when one is killed.
    run = DemoRun(args, containers, image, objects, pods, workdir, "lost", "60s")
    try:
        c = run.controller
        run.start_all(deadline)
        wait_for("the test to run", lambda: re.search(r"running \(", read(c.log_path)), deadline,
                 [(c.name, run.procs[c.name])])
        time.sleep(2)
        victim = run.agents[1]
        containers.engine.run("kill", containers.container(victim.name))  # SIGKILL
        log(f"killed {victim.name}'s container ({victim.agent_name}) while the test ran")
        lost = f"agent {victim.agent_name} (at "
        wait_for(f"the controller to report {victim.agent_name} lost", lambda: lost in read(c.log_path), deadline,
                 [(c.name, run.procs[c.name])])
        summary = wait_for("the controller's summary export", lambda: summary_of(run.export), deadline,
                           [(c.name, run.procs[c.name])])
        problems = []
        for a in run.agents:
            if a is victim:
                continue
            a.exit_code = wait_exit(f"{a.name} after the others were stopped", run.procs[a.name], 20)
            if a.exit_code != 0:
                problems.append(f"{a.name} exited {a.exit_code}, not 0")
        run.end_linger()
        if c.exit_code != 111:
            problems.append(f"the controller exited {c.exit_code}, not 111 (an agent lost)")
        if "was lost; the metrics it sent are kept" not in read(c.log_path):
            problems.append("the controller's log does not say that the agent was lost")
        states = {a.get("name"): a.get("state") for a in summary.get("agents") or []}
        if states.get(victim.agent_name) != "lost":
            problems.append(f"the export lists {victim.agent_name} as {states.get(victim.agent_name)}, not lost")
        if problems:
            raise Failure("; ".join(problems))
        log(f"ok: the controller exited 111 naming {victim.agent_name}; the others exited 0; agents: {states}")
    except Failure:
        run.dump_logs()
        raise


def health(args, containers, engine, image, workdir, deadline):
    """barrage-target with BARRAGE_HEALTH_ADDR at its port (healthy) and at
    a closed one (unhealthy), judged by the image's own HEALTHCHECK."""
    results = {}
    for name, addr in (("healthy", "127.0.0.1:9001"), ("unhealthy", "127.0.0.1:9002")):
        log_path = os.path.join(workdir, f"health-{name}.log")
        args_ = ["--user", "10001:10001", "--env", f"BARRAGE_HEALTH_ADDR={addr}"]
        if engine.name == "docker":  # docker runs the check itself, on its interval
            args_ += ["--health-interval", "1s", "--health-start-period", "0s", "--health-retries", "1"]
        proc = containers.start(f"health-{name}", image, args_, ["barrage-target", "--listen", "0.0.0.0:9001",
                                                                  "--threads", "1"], log_path)
        wait_for(f"barrage-target ({name}) to listen", lambda: "listening on" in read(log_path),
                 min(deadline, time.monotonic() + 30), [(f"health-{name}", proc)])
        container = containers.container(f"health-{name}")
        if engine.name == "podman":
            out = engine.run("healthcheck", "run", container, check=False)
            results[name] = "healthy" if out.returncode == 0 else f"unhealthy ({out.stdout.strip()} {out.stderr.strip()})"
        else:
            def status():
                s = engine.run("inspect", "--format", "{{.State.Health.Status}}", container, check=False).stdout.strip()
                return s if s in ("healthy", "unhealthy") else None
            results[name] = wait_for(f"docker's health check of {container}", status, min(deadline, time.monotonic() + 30))
    problems = []
    if results["healthy"] != "healthy":
        problems.append(f"BARRAGE_HEALTH_ADDR at barrage-target's port: {results['healthy']}, expected healthy")
    if not results["unhealthy"].startswith("unhealthy"):
        problems.append(f"BARRAGE_HEALTH_ADDR at a closed port: {results['unhealthy']}, expected unhealthy")
    if problems:
        raise Failure("the image's HEALTHCHECK: " + "; ".join(problems))
    log("ok: health check healthy at barrage-target's port, unhealthy at a closed one")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", required=True)
    ap.add_argument("--overlay", default="deploy/k8s/overlays/demo")
    ap.add_argument("--duration", default="3s", help="K6_DURATION for the controller (the manifests' is longer)")
    ap.add_argument("--no-build", action="store_true", help="use the image as it is (it must exist)")
    ap.add_argument("--keep-logs", action="store_true", help="leave the work folder (logs, volumes) in place")
    args = ap.parse_args()
    args.repo = os.path.abspath(args.repo)

    engine = Engine(args.repo)
    objects = km.build(os.path.join(args.repo, args.overlay))
    images = {c.get("image") for w in km.workloads(objects) for c in km.pod_spec(w).get("containers") or []}
    if len(images) != 1:
        print(f"FAIL: {args.overlay}: the pods run {sorted(images)}; expected one image")
        return 1
    image = images.pop()
    containers = Containers(engine)

    def on_signal(signum, _frame):
        raise SystemExit(f"stopped by signal {signum}")
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)

    workdir = tempfile.mkdtemp(prefix=f"barrage-image-{os.getpid()}-")
    os.chmod(workdir, 0o755)
    status = 1
    try:
        containers.remove_leftovers()
        if not args.no_build:
            t0 = time.monotonic()
            log(f"building {image} with {engine.name}: deploy/docker/build-image.sh {image}")
            # In a process group of its own, so that the engine's build ends with this test.
            build = subprocess.Popen(["bash", os.path.join(args.repo, "deploy/docker/build-image.sh"), image],
                                     env=engine.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
            try:
                output, _ = build.communicate()
            except BaseException:
                os.killpg(build.pid, signal.SIGTERM)
                try:
                    build.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(build.pid, signal.SIGKILL)
                    build.wait()
                raise
            if build.returncode != 0:
                print("\n".join(output.splitlines()[-60:]))
                raise Failure(f"deploy/docker/build-image.sh exited {build.returncode}")
            print("\n".join(line for line in output.splitlines() if line.startswith("build-image:")))
            log(f"image built in {time.monotonic() - t0:.0f}s")
        size = engine.run("image", "inspect", "--format", "{{.Size}}", image).stdout.strip()
        log(f"{image}: {int(size) / 1e6:.0f} MB")

        t1 = time.monotonic()
        deadline = t1 + RUN_BUDGET
        containers.make_network()
        demo(args, containers, image, objects, workdir, deadline)
        containers.remove_all()
        lost_agent(args, containers, image, objects, workdir, deadline)
        containers.remove_all()
        health(args, containers, engine, image, workdir, deadline)
        log(f"containers ran {time.monotonic() - t1:.0f}s")
        status = 0
    except (Failure, km.ManifestError, subprocess.TimeoutExpired) as e:
        print(f"FAIL: {e}")
    finally:
        containers.cleanup()
        if args.keep_logs:
            print(f"logs and volumes kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        left = [n for n, pid in engine.labelled("ps").items() if pid == os.getpid()]
        left += [n for n, pid in engine.labelled("network").items() if pid == os.getpid()]
        if left:
            print(f"FAIL: left behind: {left}")
            status = 1
        log("cleaned up")
    return status


if __name__ == "__main__":
    sys.exit(main())

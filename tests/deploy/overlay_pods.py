"""The pods of a deploy/k8s overlay as the tests that run them see them
(netns_test.py on network namespaces, image_test.py in containers of the
image): command lines, environment, mounted files and Service names from
the rendered manifests (k8s_manifests.py), and the checks of a finished
demo run (exit codes, the summary export, Prometheus' view)."""

import os
import re
import time

import k8s_manifests as km


class Failure(Exception):
    pass


def log(message, start=[time.monotonic()]):
    print(f"[{time.monotonic() - start[0]:5.1f}s] {message}", flush=True)


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


class Pod:
    """One pod of a workload. argv, env and mounts are the kubelet's view;
    the runner fills in how it ran: ip, exit_code, log_path."""

    def __init__(self, workload, name, index, container, argv, env, mounts):
        self.workload = workload
        self.name = name
        self.index = index
        self.container = container
        self.argv = argv
        self.env = env
        self.mounts = mounts
        self.program = os.path.basename(argv[0])
        self.ip = None
        self.exit_code = None
        self.log_path = None

    @property
    def role(self):
        if self.program == "barrage" and "run" in self.argv[1:2]:
            return "controller"
        return {"barrage-agent": "agent", "barrage-target": "target"}.get(self.program, self.program)

    @property
    def agent_name(self):
        return arg_value(self.argv, "--name")


def arg_value(argv, flag):
    for i, a in enumerate(argv):
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
    return None


def pods_of_overlay(objects):
    pods = []
    for w in km.workloads(objects):
        spec = km.pod_spec(w)
        containers = spec.get("containers") or []
        if len(containers) != 1:
            raise Failure(f"{km.describe(w)}: {len(containers)} containers; these tests run pods of one")
        c = containers[0]
        for pod_name, index in km.pods_of(w):
            # The program itself: the image's entrypoint (tini) only starts it.
            argv, env = km.container_argv(objects, w, c, pod_name, index, entrypoint=[])
            pods.append(Pod(w, pod_name, index, c, argv, env, km.mounted_files(objects, w, c)))
    return pods


def demo_roles(overlay, pods):
    """(controller, [agents], target), or Failure naming what the overlay has instead."""
    by_role = {}
    for p in pods:
        by_role.setdefault(p.role, []).append(p)
    if len(by_role.get("controller", [])) != 1 or not by_role.get("agent") or len(by_role.get("target", [])) != 1:
        raise Failure(f"{overlay}: expected one controller, agents and one barrage-target; got "
                      f"{ {r: len(ps) for r, ps in by_role.items()} }")
    return by_role["controller"][0], by_role["agent"], by_role["target"][0]


def services_to_pods(objects, pods):
    """{host name: pod} for every Service name spelling cluster DNS answers."""
    names = {}
    for s in objects:
        if s.get("kind") != "Service":
            continue
        sel = (s.get("spec") or {}).get("selector") or {}
        ns = s["metadata"].get("namespace") or "default"
        chosen = [p for p in pods if sel and all(km.pod_template_labels(p.workload).get(k) == v
                                                 for k, v in sel.items())]
        if not chosen:
            raise Failure(f"{km.describe(s)} selects no pod (run manifests_test.py)")
        name = s["metadata"]["name"]
        for spelling in (name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"):
            names[spelling] = chosen[0]
    return names


def metrics_endpoint(objects, names, controller):
    """(Service name, port): the controller's --prometheus port as the
    Service that publishes it names it, as Prometheus scrapes it."""
    metrics_port = int(arg_value(controller.argv, "--prometheus").rsplit(":", 1)[1])
    published = [s["metadata"]["name"] for s in objects if s.get("kind") == "Service"
                 and names.get(s["metadata"]["name"]) is controller
                 and any(p.get("port") == metrics_port for p in s["spec"].get("ports") or [])]
    if not published:
        raise Failure(f"no Service publishes the controller's metrics port {metrics_port}")
    return published[0], metrics_port


def materialize(pod, root, fs_group=None):
    """Writes the pod's volumes under root; returns {mountPath: local path}.
    With fs_group, as the kubelet does for another user: Secret and
    ConfigMap files get the volume's defaultMode (0644 unless set) and that
    group, and an emptyDir is writable by everyone (mode 0777)."""
    local = {}
    for mount, info in pod.mounts.items():
        v = info["volume"]
        if info["files"] is None:
            src = v.get("secret") or v.get("configMap") or {}
            raise Failure(f"{pod.name}: volume {v['name']} needs {src.get('secretName') or src.get('name')}, "
                          "which the overlay does not render; these tests run overlays that render all they mount")
        path = os.path.join(root, pod.name, mount.lstrip("/"))
        os.makedirs(path, exist_ok=True)
        src = v.get("secret") or v.get("configMap")
        for rel, data in info["files"].items():
            f = os.path.join(path, rel)
            os.makedirs(os.path.dirname(f), exist_ok=True)
            with open(f, "wb") as out:
                out.write(data)
            if fs_group is not None:
                os.chmod(f, (src or {}).get("defaultMode", 0o644))
                os.chown(f, 0, fs_group)
        if fs_group is not None:
            for d, _, _ in os.walk(path):
                os.chmod(d, 0o777 if "emptyDir" in v else 0o755)
        local[mount] = path
    return local


def localize(value, local):
    """A mounted path in an argument (alone or after KEY=) becomes the local folder's."""
    for mount in sorted(local, key=len, reverse=True):
        m = re.match(rf"^(.*?=)?{re.escape(mount.rstrip('/'))}(/.*)?$", value)
        if m:
            return (m.group(1) or "") + local[mount] + (m.group(2) or "")
    return value


def metric_sum(text, name):
    total, found = 0.0, False
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(?:\{{[^}}]*\}})?\s+(\S+)$", line)
        if m:
            total += float(m.group(1))
            found = True
    return total if found else None


def check_demo_run(summary, metrics, controller, agents):
    """The checks of a finished run of every agent: exit codes, each agent
    joining from its own address and listed in the summary, iterations and
    VUs adding up, checks and thresholds, and Prometheus agreeing."""
    problems = []
    P = problems.append
    if controller.exit_code != 0:
        P(f"the controller exited {controller.exit_code}, not 0")
    ctl_log = read(controller.log_path)
    for a in agents:
        if a.exit_code != 0:
            P(f"{a.name} exited {a.exit_code}, not 0")
        if not re.search(rf"agent {re.escape(a.agent_name)} joined from ipv4:{re.escape(a.ip)}:\d+", ctl_log):
            P(f"the controller's log does not show {a.agent_name} joining from {a.ip}, its own address")
    listed = {a.get("name"): a for a in summary.get("agents") or []}
    names = {a.agent_name for a in agents}
    if set(listed) != names:
        P(f"the summary lists agents {sorted(listed)}, the agents were {sorted(names)}")
    iterations = summary["metrics"]["iterations"]["count"]
    per_agent = sum(a.get("iterations_completed", 0) for a in listed.values())
    if per_agent != iterations or iterations <= 0:
        P(f"the agents' iterations add up to {per_agent}, the merged count is {iterations}")
    for name, a in listed.items():
        if a.get("state") != "done" or a.get("iterations_completed", 0) <= 0:
            P(f"agent {name}: state {a.get('state')}, {a.get('iterations_completed')} iterations")
    vus = sum(a.get("vus", 0) for a in listed.values())
    if str(vus) != controller.env.get("K6_VUS"):
        P(f"the agents ran {vus} VUs in all, K6_VUS is {controller.env.get('K6_VUS')}")
    checks = summary["metrics"].get("checks") or {}
    if checks.get("fails") != 0 or not checks.get("passes"):
        P(f"checks: {checks.get('passes')} passed, {checks.get('fails')} failed")
    for metric, m in summary["metrics"].items():
        for expr, crossed in (m.get("thresholds") or {}).items():
            if crossed:
                P(f"threshold {metric}: {expr} was crossed")
    scraped_iterations = metric_sum(metrics, "barrage_iterations_total")
    if scraped_iterations != iterations:
        P(f"Prometheus shows barrage_iterations_total {scraped_iterations}, the summary {iterations}")
    scraped_passes = metric_sum(metrics, "barrage_checks_passes_total")
    if scraped_passes != checks.get("passes"):
        P(f"Prometheus shows barrage_checks_passes_total {scraped_passes}, the summary {checks.get('passes')}")
    if problems:
        raise Failure("; ".join(problems))
    split = ", ".join(f"{n}: {a['iterations_completed']}" for n, a in sorted(listed.items()))
    log(f"ok: {len(agents)} agents, {iterations} iterations ({split}), "
        f"{checks['passes']} checks passed, thresholds held, Prometheus agrees")

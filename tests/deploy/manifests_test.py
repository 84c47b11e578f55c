#!/usr/bin/env python3
"""Checks deploy/k8s without a cluster: every overlay renders, and what it
renders agrees with itself, with the image (deploy/docker/Dockerfile) and
with the binaries' own command-line interfaces.

  manifests_test.py --repo ROOT --barrage B --barrage-agent A --barrage-target T

Per overlay (deploy/k8s/overlays/*):
  - it renders (tests/deploy/k8s_manifests.py; and `kubectl kustomize`, when
    kubectl is installed, must render the same objects);
  - Services, Deployments, the ServiceMonitor and the anti-affinity select
    the pods they are meant to; Service ports reach container ports, which
    are the ports the programs listen on (--listen, --prometheus), and probes
    name existing ports;
  - every argument of every container is an option or positional the binary
    accepts (read from its --help), with a value of the right type and no
    unexpanded $(VAR); containers keep the image's entrypoint;
  - every file named in the arguments is in a mounted ConfigMap or Secret
    (keys match mounted paths), files written are on writable volumes, and
    the protos the script loads are beside it;
  - the agents' Job runs N = parallelism = completions agents and the
    controller expects N; the agents' --controller and the controller's
    TARGET reach a Service that reaches the program listening there; both
    sides share the token (and TLS when one side has it);
  - the Prometheus annotations, the ServiceMonitor and
    deploy/prometheus/prometheus.yml name the controller's metrics port; the
    Grafana ConfigMap holds deploy/grafana/barrage-dashboard.json;
  - pods run as the image's non-root user, with CPU and memory requests and
    limits.
Then it breaks the manifests on purpose, a copy at a time, and requires each
break to be reported: a test that passes whatever the manifests say is no
test.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dockerfile  # noqa: E402
import k8s_manifests as km  # noqa: E402

# Options that name a file the program writes (their help text does not say).
WRITTEN_FILE_OPTIONS = {"--summary-export", "--out"}
# Options whose value is HOST:PORT the program listens on.
LISTEN_OPTIONS = {"--listen", "--prometheus"}
# kubectl apply (client side) keeps the whole object in an annotation, and
# annotations may hold 256 KiB in all.
MAX_APPLIED_BYTES = 256 * 1024
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# ----------------------------------------------------------------------------
# The binaries' command lines, from their CLI11 --help.

class Option:
    def __init__(self, names, value_type, required, repeatable):
        self.names = names
        self.value_type = value_type  # None for a flag without a value
        self.required = required
        self.repeatable = repeatable

    @property
    def canonical(self):
        longs = [n for n in self.names if n.startswith("--")]
        return longs[0] if longs else self.names[0]


class Cli:
    def __init__(self):
        self.options = {}
        self.positionals = []  # Option with names [positional name]
        self.subcommands = []


def parse_help(text):
    cli = Cli()
    section = None
    for line in text.splitlines():
        if re.match(r"^(Options|Positionals|Subcommands):\s*$", line):
            section = line.strip()[:-1]
            continue
        if not re.match(r"^  \S", line):
            continue  # a wrapped description, a usage line, a title
        head = re.split(r"\s{2,}", line.strip())[0]
        tokens = head.split(" ")
        if section == "Subcommands":
            cli.subcommands.append(tokens[0])
            continue
        names = tokens[0].split(",")
        rest = [t for t in tokens[1:] if t not in ("REQUIRED", "...")]
        value_type = re.split(r"[:=]", rest[0])[0] if rest else None
        opt = Option(names, value_type, "REQUIRED" in tokens, "..." in tokens)
        if section == "Positionals":
            cli.positionals.append(opt)
        elif section == "Options":
            for n in names:
                cli.options[n] = opt
    return cli


class Binaries:
    def __init__(self, paths):
        self.paths = paths  # program name -> path
        self._cache = {}

    def cli(self, program, subcommand=None):
        key = (program, subcommand)
        if key not in self._cache:
            argv = [self.paths[program]] + ([subcommand] if subcommand else []) + ["--help"]
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            if out.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)} exited {out.returncode}: {out.stderr}")
            self._cache[key] = parse_help(out.stdout)
        return self._cache[key]


def check_value(opt, value):
    t = opt.value_type
    try:
        if t == "INT":
            int(value)
        elif t == "UINT":
            if int(value) < 0:
                return "expected a number >= 0"
        elif t == "FLOAT":
            float(value)
        elif t == "BOOLEAN" and value not in ("true", "false", "1", "0"):
            return "expected true or false"
    except ValueError:
        return f"expected {t}"
    return None


def parse_command_line(binaries, argv, where, errors):
    """{"program", "subcommand", "options": {canonical: [values]}, "positionals": [...]}."""
    program = os.path.basename(argv[0]) if argv else ""
    if program not in binaries.paths:
        errors.append(f"{where}: runs {program!r}, which is none of {', '.join(sorted(binaries.paths))}")
        return None
    args = argv[1:]
    cli = binaries.cli(program)
    subcommand = None
    if cli.subcommands:
        if not args or args[0] not in cli.subcommands:
            errors.append(f"{where}: {program} needs one of the subcommands {', '.join(cli.subcommands)}")
            return None
        subcommand = args[0]
        args = args[1:]
        cli = binaries.cli(program, subcommand)
    name = program + (f" {subcommand}" if subcommand else "")
    parsed = {"program": program, "subcommand": subcommand, "options": {}, "positionals": []}
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a == "--":
            parsed["positionals"] += args[i:]
            break
        if a.startswith("--"):
            flag, eq, value = a.partition("=")
        elif a.startswith("-") and len(a) > 1:
            flag, value = a[:2], a[2:]
            eq = "=" if value else ""
        else:
            parsed["positionals"].append(a)
            continue
        opt = cli.options.get(flag)
        if opt is None:
            errors.append(f"{where}: {flag}: not an option of {name} (see {name} --help)")
            continue
        if opt.value_type is None:
            if eq:
                errors.append(f"{where}: {flag} takes no value, got {a!r}")
            value = None
        elif not eq:
            if i >= len(args):
                errors.append(f"{where}: {flag} needs a value")
                continue
            value = args[i]
            i += 1
        if value is not None:
            problem = check_value(opt, value)
            if problem:
                errors.append(f"{where}: {flag}={value}: {problem}")
        values = parsed["options"].setdefault(opt.canonical, [])
        if values and not opt.repeatable and opt.value_type is not None:
            errors.append(f"{where}: {flag} given twice")
        values.append(value)
    allowed = len(cli.positionals)
    if len(parsed["positionals"]) > allowed and not (cli.positionals and cli.positionals[-1].repeatable):
        errors.append(f"{where}: {name} takes {allowed} positional argument(s), got {parsed['positionals']}")
    for k, p in enumerate(cli.positionals):
        if p.required and len(parsed["positionals"]) <= k:
            errors.append(f"{where}: {name} needs its {p.names[0]} argument")
    for opt in set(cli.options.values()):
        if opt.required and opt.canonical not in parsed["options"]:
            errors.append(f"{where}: {name} needs {opt.canonical}")
    return parsed


def option(parsed, name):
    values = parsed["options"].get(name) if parsed else None
    return values[-1] if values else None


def host_port(value):
    host, sep, port = (value or "").rpartition(":")
    if not sep or not port.isdigit():
        return None, None
    return host.strip("[]"), int(port)


# ----------------------------------------------------------------------------
# One rendered overlay.

class Container:
    def __init__(self, tag, workload, container, argv, env, parsed, mounts):
        self.workload = workload
        self.spec = container
        self.argv = argv
        self.env = env
        self.parsed = parsed
        self.mounts = mounts
        self.where = f"{tag}: {km.describe(workload)}: container {container.get('name')}"

    @property
    def role(self):
        p = self.parsed
        if not p:
            return None
        if p["program"] == "barrage" and p["subcommand"] == "run" and option(p, "--listen"):
            return "controller"
        return {"barrage-agent": "agent", "barrage-target": "target"}.get(p["program"])

    def port_numbers(self):
        return {p.get("containerPort"): p for p in self.spec.get("ports") or []}

    def resolve_port(self, port):
        """A container port number from a number or a port name, or None."""
        for p in self.spec.get("ports") or []:
            if port == p.get("name") or port == p.get("containerPort"):
                return p.get("containerPort")
        return None


def labels_match(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def service_for_host(objects, host, namespace):
    for s in objects:
        if s.get("kind") != "Service":
            continue
        name = s["metadata"]["name"]
        ns = s["metadata"].get("namespace") or namespace or "default"
        if host in (name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"):
            if host == name and (s["metadata"].get("namespace") != namespace):
                continue
            return s
    return None


def selected_containers(service, containers):
    sel = (service.get("spec") or {}).get("selector") or {}
    return [c for c in containers
            if c.workload["metadata"].get("namespace") == service["metadata"].get("namespace")
            and labels_match(sel, km.pod_template_labels(c.workload))]


def service_backend(service, port, containers):
    """[(container, container port)] a client of service:port reaches."""
    hits = []
    for p in (service.get("spec") or {}).get("ports") or []:
        if p.get("port") != port:
            continue
        for c in selected_containers(service, containers):
            n = c.resolve_port(p.get("targetPort", p.get("port")))
            if n is not None:
                hits.append((c, n))
    return hits


def check_overlay(root, overlay, binaries, entrypoint, image_uid, errors):
    E = errors.append
    tag = f"overlay {os.path.relpath(overlay, root)}"
    try:
        objects = km.build(overlay)
    except km.ManifestError as e:
        E(f"{tag}: {e}")
        return None

    namespaces = {o["metadata"].get("namespace") for o in objects if o.get("kind") not in km.CLUSTER_SCOPED_KINDS}
    if len(namespaces) > 1:
        E(f"{tag}: objects in several namespaces {sorted(map(str, namespaces))}: "
          + ", ".join(km.describe(o) for o in objects if o["metadata"].get("namespace") is None
                      and o.get("kind") not in km.CLUSTER_SCOPED_KINDS)
          + " would land in kubectl's current namespace")

    seen = set()
    for o in objects:
        oid = km.object_id(o)
        if not o.get("apiVersion") or not o.get("kind") or not oid[2]:
            E(f"{tag}: an object lacks apiVersion, kind or metadata.name: {oid}")
            continue
        if oid in seen:
            E(f"{tag}: {km.describe(o)} is rendered twice")
        seen.add(oid)
        limit = 63 if o["kind"] in ("Service", "Namespace") else 253
        if not all(DNS_LABEL.match(part) for part in oid[2].split(".")) or len(oid[2]) > limit:
            E(f"{tag}: {km.describe(o)}: metadata.name is not a valid DNS name (at most {limit} characters)")
        if o["kind"] in ("ConfigMap", "Secret"):
            size = len(yaml.safe_dump(o))
            if size > MAX_APPLIED_BYTES:
                E(f"{tag}: {km.describe(o)}: {size} bytes, more than kubectl apply can record ({MAX_APPLIED_BYTES})")

    # Containers, their command lines and files.
    containers = []
    for w in km.workloads(objects):
        wtag = f"{tag}: {km.describe(w)}"
        spec = km.pod_spec(w)
        labels = km.pod_template_labels(w)
        if w["kind"] == "Deployment":
            sel = ((w["spec"].get("selector") or {}).get("matchLabels")) or {}
            if not labels_match(sel, labels):
                E(f"{wtag}: spec.selector.matchLabels {sel} does not match the pod template's labels {labels}")
        if w["kind"] == "Job":
            if "selector" in w["spec"]:
                E(f"{wtag}: spec.selector: leave it to the Job controller")
            if spec.get("restartPolicy") not in ("Never", "OnFailure"):
                E(f"{wtag}: spec.template.spec.restartPolicy must be Never or OnFailure")
            if "backoffLimit" not in w["spec"]:
                E(f"{wtag}: spec.backoffLimit: unset (6 retries of a load test)")
        affinity = (spec.get("affinity") or {})
        for kind in ("podAntiAffinity", "podAffinity"):
            for rule_kind, rules in (affinity.get(kind) or {}).items():
                for r in rules:
                    term = r.get("podAffinityTerm", r)
                    sel = (term.get("labelSelector") or {}).get("matchLabels") or {}
                    if not labels_match(sel, labels):
                        E(f"{wtag}: affinity.{kind}.{rule_kind}: labelSelector {sel} does not select "
                          f"this workload's own pods {labels}")
                    if not term.get("topologyKey"):
                        E(f"{wtag}: affinity.{kind}.{rule_kind}: no topologyKey")
        psc = spec.get("securityContext") or {}
        pod_name, index = km.pods_of(w)[0]
        for c in spec.get("containers") or []:
            ctag = f"{wtag}: container {c.get('name')}"
            csc = c.get("securityContext") or {}
            uid = csc.get("runAsUser", psc.get("runAsUser"))
            if not csc.get("runAsNonRoot", psc.get("runAsNonRoot")):
                E(f"{ctag}: securityContext.runAsNonRoot is not true")
            if uid != image_uid:
                E(f"{ctag}: securityContext.runAsUser is {uid}, the image's user is {image_uid} "
                  "(deploy/docker/Dockerfile USER)")
            res = c.get("resources") or {}
            for section in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in (res.get(section) or {}):
                        E(f"{ctag}: resources.{section}.{r} is not set")
            if c.get("command"):
                E(f"{ctag}: sets `command`, which replaces the image's ENTRYPOINT {entrypoint} "
                  "(put the program in args)")
            try:
                argv, env = km.container_argv(objects, w, c, pod_name, index, entrypoint)
                mounts = km.mounted_files(objects, w, c)
            except km.ManifestError as e:
                E(f"{tag}: {e}")
                continue
            for a in c.get("args") or []:
                missing = km.unresolved_references(str(a), env)
                if missing:
                    E(f"{ctag}: args: {a}: $({missing[0]}) is not in the container's env")
            program_argv = argv[len(entrypoint):] if not c.get("command") else argv
            parsed = parse_command_line(binaries, program_argv, f"{ctag}: args", errors)
            container = Container(tag, w, c, program_argv, env, parsed, mounts)
            containers.append(container)
            for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe = c.get(probe_name) or {}
                for handler in ("tcpSocket", "grpc", "httpGet"):
                    if handler in probe and container.resolve_port(probe[handler].get("port")) is None:
                        E(f"{ctag}: {probe_name}.{handler}.port {probe[handler].get('port')} is none of the "
                          "container's ports")
            check_files(container, errors)

    # What each program listens on is a container port, and nothing else is.
    for c in containers:
        listening = set()
        for name in LISTEN_OPTIONS:
            value = option(c.parsed, name)
            if value:
                _, port = host_port(value)
                if port is None:
                    E(f"{c.where}: {name}={value}: expected HOST:PORT")
                    continue
                listening.add(port)
                if port not in c.port_numbers():
                    E(f"{c.where}: {name}={value}: port {port} is not among the container's ports "
                      f"{sorted(c.port_numbers())}")
        for port in c.port_numbers():
            if port not in listening:
                E(f"{c.where}: containerPort {port}: the program listens on no such port "
                  f"({', '.join(sorted(LISTEN_OPTIONS))} say {sorted(listening)})")

    # Services reach pods, on ports the pods have.
    services = [o for o in objects if o.get("kind") == "Service"]
    for s in services:
        stag = f"{tag}: {km.describe(s)}"
        sel = (s.get("spec") or {}).get("selector") or {}
        chosen = selected_containers(s, containers)
        if not chosen:
            E(f"{stag}: spec.selector {sel} selects no pod of this overlay")
            continue
        for p in s["spec"].get("ports") or []:
            target = p.get("targetPort", p.get("port"))
            for c in chosen:
                n = c.resolve_port(target)
                if n is None:
                    E(f"{stag}: ports[{p.get('name')}].targetPort {target} is none of {c.where}'s ports")
                elif n != p.get("port"):
                    # The network-namespace test has no kube-proxy: clients dial the pod on the Service's port.
                    E(f"{stag}: ports[{p.get('name')}]: port {p.get('port')} differs from the container port "
                      f"{n}; keep them equal (tests/deploy/netns_test.py dials pods directly)")
    for m in (o for o in objects if o.get("kind") == "ServiceMonitor"):
        mtag = f"{tag}: {km.describe(m)}"
        sel = ((m.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        hits = [s for s in services if labels_match(sel, s["metadata"].get("labels") or {})
                and s["metadata"].get("namespace") == m["metadata"].get("namespace")]
        if not hits:
            E(f"{mtag}: spec.selector.matchLabels {sel} selects no Service")
        for ep in m["spec"].get("endpoints") or []:
            for s in hits:
                if ep.get("port") not in [p.get("name") for p in s["spec"].get("ports") or []]:
                    E(f"{mtag}: endpoints port {ep.get('port')!r} is not a port name of {km.describe(s)}")

    check_topology(tag, objects, containers, services, errors)
    return objects


def check_files(c, errors):
    """Every absolute path in the arguments lies in a volume, in a key of its
    ConfigMap or Secret; written files lie on a writable volume."""
    if not c.parsed:
        return
    values = [(None, v) for v in c.parsed["positionals"]]
    for name, vs in c.parsed["options"].items():
        values += [(name, v) for v in vs if v is not None]
    for name, value in values:
        path = value.split("=", 1)[1] if name == "--out" and "=" in value else value
        if not path.startswith("/"):
            continue
        what = f"{c.where}: {name or 'argument'} {path}"
        mount = max((m for m in c.mounts if path == m or path.startswith(m.rstrip("/") + "/")), key=len, default=None)
        if mount is None:
            errors.append(f"{what}: under no volumeMount (mounts: {', '.join(sorted(c.mounts)) or 'none'})")
            continue
        info = c.mounts[mount]
        rel = os.path.relpath(path, mount)
        if name in WRITTEN_FILE_OPTIONS:
            if not info["writable"]:
                errors.append(f"{what}: written by the program, but {mount} is not a writable emptyDir")
            continue
        known = info["known_paths"]
        if known is not None and rel not in known:
            errors.append(f"{what}: volume {info['volume']['name']} at {mount} has no {rel} "
                          f"(it holds: {', '.join(sorted(known)) or 'nothing'})")
        if info["files"] is None and info["volume"].get("secret", info["volume"].get("configMap")) is not None:
            src = info["volume"].get("secret") or info["volume"].get("configMap")
            if src.get("items") is None:
                errors.append(f"{what}: {src.get('secretName') or src.get('name')} is not in the render; "
                              "list the keys the pod needs under the volume's items")


def file_at(c, path):
    """The bytes a container sees at path, or None if unknown."""
    for mount, info in c.mounts.items():
        if path.startswith(mount.rstrip("/") + "/") and info["files"] is not None:
            return info["files"].get(os.path.relpath(path, mount))
    return None


def volume_source(c, path):
    """(kind, object name, key) of the ConfigMap/Secret behind a path."""
    for mount, info in c.mounts.items():
        if path.startswith(mount.rstrip("/") + "/"):
            v = info["volume"]
            rel = os.path.relpath(path, mount)
            src = v.get("secret") or v.get("configMap") or {}
            key = next((i["key"] for i in src.get("items") or [] if i["path"] == rel), rel)
            return ("Secret" if "secret" in v else "ConfigMap", src.get("secretName") or src.get("name"), key)
    return None


LOAD_CALL = re.compile(r"\.load\(\s*\[([^\]]*)\]\s*,\s*((?:'[^']*'|\"[^\"]*\"|\s|,)+)\)")


def check_topology(tag, objects, containers, services, errors):
    E = errors.append
    controllers = [c for c in containers if c.role == "controller"]
    agents = [c for c in containers if c.role == "agent"]
    if len(controllers) != 1:
        E(f"{tag}: expected one controller (barrage run --listen), found {len(controllers)}")
        return
    ctl = controllers[0]
    if ctl.workload["kind"] != "Job" or ctl.workload["spec"].get("completions", 1) != 1 \
            or ctl.workload["spec"].get("parallelism", 1) != 1:
        E(f"{tag}: {km.describe(ctl.workload)}: the controller must be a Job with one pod")
    if not agents:
        E(f"{tag}: no barrage-agent container")

    # N.
    expect = option(ctl.parsed, "--expect-agents")
    total = 0
    for a in agents:
        w = a.workload
        spec = w["spec"]
        wtag = f"{tag}: {km.describe(w)}"
        if w["kind"] != "Job" or spec.get("completionMode") != "Indexed":
            E(f"{wtag}: agents run as an Indexed Job")
            continue
        if spec.get("parallelism") != spec.get("completions"):
            E(f"{wtag}: parallelism {spec.get('parallelism')} != completions {spec.get('completions')}: "
              "every agent must run at once")
        total += spec.get("completions") or 0
        if "--once" not in a.parsed["options"]:
            E(f"{wtag}: barrage-agent without --once never exits, and the Job never completes")
    if agents and str(total) != str(expect):
        E(f"{tag}: the controller expects {expect} agents ({ctl.where}: --expect-agents, from "
          f"BARRAGE_EXPECT_AGENTS), the agent Jobs run {total} (parallelism = completions)")

    # The control plane: agents reach the controller, with the same secrets.
    listen_host, listen_port = host_port(option(ctl.parsed, "--listen"))
    loopback = listen_host in ("127.0.0.1", "::1", "localhost")
    ctl_token = option(ctl.parsed, "--token-file")
    if not loopback and not ctl_token and not option(ctl.parsed, "--tls-cert") and "--insecure" not in ctl.parsed["options"]:
        E(f"{ctl.where}: --listen {listen_host}: beyond loopback the controller needs --token-file or "
          "--tls-cert (it exits 104)")
    for a in agents:
        host, port = host_port(option(a.parsed, "--controller"))
        svc = service_for_host(objects, host, a.workload["metadata"].get("namespace"))
        if svc is None:
            E(f"{a.where}: --controller {host}:{port}: {host} is no Service of this overlay")
        elif not any(c is ctl and n == listen_port for c, n in service_backend(svc, port, containers)):
            E(f"{a.where}: --controller {host}:{port}: {km.describe(svc)} port {port} does not reach "
              f"the controller's --listen port {listen_port}")
        agent_token = option(a.parsed, "--token-file")
        if bool(agent_token) != bool(ctl_token):
            E(f"{a.where}: --token-file is {agent_token}, the controller's is {ctl_token}")
        elif ctl_token:
            mine, theirs = file_at(a, agent_token), file_at(ctl, ctl_token)
            if mine is not None and theirs is not None:
                if mine.strip() != theirs.strip():
                    E(f"{a.where}: --token-file holds another token than the controller's")
            elif volume_source(a, agent_token) != volume_source(ctl, ctl_token):
                E(f"{a.where}: --token-file comes from {volume_source(a, agent_token)}, the controller's from "
                  f"{volume_source(ctl, ctl_token)}")
        if bool(option(ctl.parsed, "--tls-cert")) != bool(option(a.parsed, "--tls-ca")):
            E(f"{a.where}: TLS on one side only (controller --tls-cert: {option(ctl.parsed, '--tls-cert')}, "
              f"agent --tls-ca: {option(a.parsed, '--tls-ca')})")

    # The target the script calls.
    target = ctl.env.get("TARGET")
    if not target:
        E(f"{ctl.where}: env TARGET is not set (the script needs it)")
    else:
        host, port = host_port(target)
        if port is None:
            E(f"{ctl.where}: env TARGET={target}: expected HOST:PORT")
        else:
            svc = service_for_host(objects, host, ctl.workload["metadata"].get("namespace"))
            if svc is not None:
                backends = service_backend(svc, port, containers)
                if not any(c.role == "target" and host_port(option(c.parsed, "--listen"))[1] == n
                           for c, n in backends):
                    E(f"{ctl.where}: env TARGET={target}: {km.describe(svc)} port {port} reaches no "
                      "barrage-target --listen port")

    # The script and the protos it loads.
    script = ctl.parsed["positionals"][0] if ctl.parsed["positionals"] else None
    source = file_at(ctl, script) if script else None
    if script and source is not None and script.endswith(".js"):
        folder = os.path.dirname(script)
        for m in LOAD_CALL.finditer(source.decode(errors="replace")):
            dirs = re.findall(r"'([^']*)'|\"([^\"]*)\"", m.group(1))
            dirs = [os.path.normpath(os.path.join(folder, a or b)) for a, b in dirs] or [folder]
            for a, b in re.findall(r"'([^']*)'|\"([^\"]*)\"", m.group(2)):
                proto = a or b
                if not any(file_at(ctl, os.path.join(d, proto)) is not None for d in dirs):
                    E(f"{ctl.where}: {script} loads {proto} from {dirs}, which the mounted volumes do not hold")

    # Metrics: annotations and ServiceMonitors name the --prometheus port.
    _, metrics_port = host_port(option(ctl.parsed, "--prometheus"))
    if metrics_port is None:
        E(f"{ctl.where}: no --prometheus HOST:PORT: nothing for Prometheus to scrape")
        return
    ctl_services = [s for s in services if ctl in selected_containers(s, containers)]
    if not any(any(c is ctl and n == metrics_port for c, n in service_backend(s, p.get("port"), containers))
               for s in ctl_services for p in s["spec"].get("ports") or []):
        E(f"{tag}: no Service reaches the controller's metrics port {metrics_port}")
    for s in ctl_services:
        ann = s["metadata"].get("annotations") or {}
        if ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") != str(metrics_port):
            E(f"{tag}: {km.describe(s)}: annotation prometheus.io/port is {ann.get('prometheus.io/port')}, "
              f"the controller serves metrics on {metrics_port}")
    for m in (o for o in objects if o.get("kind") == "ServiceMonitor"):
        for ep in m["spec"].get("endpoints") or []:
            for s in ctl_services:
                p = next((p for p in s["spec"].get("ports") or [] if p.get("name") == ep.get("port")), None)
                if p and p.get("port") != metrics_port:
                    E(f"{tag}: {km.describe(m)}: endpoint port {ep.get('port')} is {p.get('port')}, "
                      f"not the metrics port {metrics_port}")


def check_repo(root, binaries, errors, use_kubectl):
    E = errors.append
    stages = dockerfile.parse(os.path.join(root, "deploy/docker/Dockerfile"))
    runtime = stages[-1]
    entry_args, _ = runtime.last("ENTRYPOINT")
    entrypoint = dockerfile.exec_form(entry_args or "") or []
    image_uid = dockerfile.user_id(runtime)

    # Every YAML file under deploy/ parses, used by an overlay or not.
    for folder, _, files in os.walk(os.path.join(root, "deploy")):
        for f in files:
            if f.endswith((".yaml", ".yml")):
                try:
                    km.load_yaml_documents(os.path.join(folder, f))
                except km.ManifestError as e:
                    E(str(e))

    with open(os.path.join(root, "CMakeLists.txt"), encoding="utf-8") as f:
        version = re.search(r"project\(barrage VERSION ([0-9.]+)", f.read()).group(1)
    for folder in ("deploy/k8s/base", "deploy/k8s/components/target"):
        for f in sorted(os.listdir(os.path.join(root, folder))):
            if not f.endswith(".yaml") or f.startswith("kustomization"):
                continue
            for doc in km.load_yaml_documents(os.path.join(root, folder, f)):
                spec = km.pod_spec(doc)
                for c in (spec or {}).get("containers") or []:
                    if "image" in c and c["image"] != f"barrage:{version}":
                        E(f"{folder}/{f}: {km.describe(doc)}: image {c.get('image')}; the base uses "
                          f"barrage:{version} (the project's version), overlays change it with `images`")
    with open(os.path.join(root, "proto/hello/hello.proto"), "rb") as a, \
            open(os.path.join(root, "deploy/k8s/base/script/hello.proto"), "rb") as b:
        if a.read() != b.read():
            E("deploy/k8s/base/script/hello.proto differs from proto/hello/hello.proto, "
              "which barrage-target serves")

    overlays_dir = os.path.join(root, "deploy/k8s/overlays")
    overlays = sorted(os.path.join(overlays_dir, d) for d in os.listdir(overlays_dir))
    if not overlays:
        E("deploy/k8s/overlays: no overlay")
    metrics_endpoints = set()
    for overlay in overlays:
        objects = check_overlay(root, overlay, binaries, entrypoint, image_uid, errors)
        if objects is None:
            continue
        if use_kubectl:
            compare_with_kubectl(root, overlay, objects, errors)
        dashboards = [o for o in objects if o.get("kind") == "ConfigMap"
                      and "barrage-dashboard.json" in (o.get("data") or {})]
        with open(os.path.join(root, "deploy/grafana/barrage-dashboard.json"), encoding="utf-8") as f:
            dashboard = f.read()
        if len(dashboards) != 1 or dashboards[0]["data"]["barrage-dashboard.json"] != dashboard:
            E(f"overlay {os.path.relpath(overlay, root)}: no ConfigMap holds deploy/grafana/barrage-dashboard.json "
              "as it is")
        elif (dashboards[0]["metadata"].get("labels") or {}).get("grafana_dashboard") != "1":
            E(f"overlay {os.path.relpath(overlay, root)}: {km.describe(dashboards[0])}: no label "
              "grafana_dashboard: \"1\" (Grafana's sidecar looks for it)")
        for s in objects:
            for p in (s.get("spec") or {}).get("ports") or [] if s.get("kind") == "Service" else []:
                if p.get("name") == "metrics":
                    metrics_endpoints.add(f"{s['metadata']['name']}:{p.get('port')}")

    prom = km.load_yaml_documents(os.path.join(root, "deploy/prometheus/prometheus.yml"))[0]
    targets = {t for job in prom.get("scrape_configs") or [] for sc in job.get("static_configs") or []
               for t in sc.get("targets") or []}
    if not targets & metrics_endpoints:
        E(f"deploy/prometheus/prometheus.yml: scrape targets {sorted(targets)} name none of the "
          f"overlays' metrics endpoints {sorted(metrics_endpoints)}")


def compare_with_kubectl(root, overlay, objects, errors):
    out = subprocess.run(["kubectl", "kustomize", overlay], capture_output=True, text=True, timeout=120)
    rel = os.path.relpath(overlay, root)
    if out.returncode != 0:
        errors.append(f"overlay {rel}: kubectl kustomize failed: {out.stderr.strip()}")
        return
    theirs = {km.object_id(o): o for o in yaml.safe_load_all(out.stdout) if o}
    mine = {km.object_id(o): o for o in objects}
    if set(theirs) != set(mine):
        errors.append(f"overlay {rel}: kubectl kustomize renders {sorted(map(str, theirs))}, "
                      f"tests/deploy/k8s_manifests.py {sorted(map(str, mine))}")
        return
    for oid, o in mine.items():
        if o != theirs[oid]:
            errors.append(f"overlay {rel}: {km.describe(o)} differs between kubectl kustomize and "
                          f"tests/deploy/k8s_manifests.py:\n--- kubectl\n{yaml.safe_dump(theirs[oid])}"
                          f"--- ours\n{yaml.safe_dump(o)}")


# ----------------------------------------------------------------------------
# Breaking the manifests on purpose.

# (file, text to replace, replacement, what the report must say)
MUTATIONS = [
    ("deploy/k8s/overlays/demo/test-size.yaml", "completions: 3", "completions: 4", "parallelism 3 != completions 4"),
    ("deploy/k8s/overlays/demo/test-size.yaml", 'value: "3"', 'value: "2"', "the controller expects 2 agents"),
    ("deploy/k8s/overlays/custom/test-size.yaml", "parallelism: 10\n  completions: 10",
     "parallelism: 8\n  completions: 8", "the agent Jobs run 8"),
    ("deploy/k8s/base/controller.yaml", "      targetPort: metrics", "      targetPort: metric",
     "targetPort metric is none of"),
    ("deploy/k8s/base/controller.yaml", "    app.kubernetes.io/component: controller\n  ports:",
     "    app.kubernetes.io/component: controler\n  ports:", "selects no pod"),
    ("deploy/k8s/base/controller.yaml", "--linger=60s", "--lingr=60s", "--lingr: not an option of barrage run"),
    ("deploy/k8s/base/controller.yaml", "--prometheus=0.0.0.0:9464", "--prometheus=0.0.0.0:9465",
     "port 9465 is not among the container's ports"),
    ("deploy/k8s/base/controller.yaml", "value: /scripts/test.js", "value: /scripts/main.js", "has no main.js"),
    ("deploy/k8s/base/controller.yaml", "mountPath: /results", "mountPath: /result",
     "/results/summary.json: under no volumeMount"),
    ("deploy/k8s/base/controller.yaml", "--expect-agents=$(BARRAGE_EXPECT_AGENTS)",
     "--expect-agents=$(EXPECTED_AGENTS)", "$(EXPECTED_AGENTS) is not in the container's env"),
    ("deploy/k8s/base/agents.yaml", "--controller=barrage-controller:7700", "--controller=barrage-ctl:7700",
     "barrage-ctl is no Service"),
    ("deploy/k8s/base/agents.yaml", "            - --once\n", "", "without --once"),
    ("deploy/k8s/base/agents.yaml", "- --once\n", "- --once=yes\n", "--once takes no value"),
    ("deploy/k8s/base/agents.yaml", "                    app.kubernetes.io/component: agent",
     "                    app.kubernetes.io/component: agents", "does not select this workload's own pods"),
    ("deploy/k8s/base/agents.yaml", "runAsUser: 10001", "runAsUser: 1000", "the image's user is 10001"),
    ("deploy/k8s/base/kustomization.yaml", "      - script/hello.proto\n", "",
     "loads hello.proto from ['/scripts']"),
    ("deploy/k8s/components/target/controller-target.yaml", "barrage-target:9001", "barrage-target:9002",
     "reaches no barrage-target --listen port"),
    ("deploy/k8s/components/target/target.yaml", "port: 9001\n            periodSeconds",
     "port: 9002\n            periodSeconds", "readinessProbe.grpc.port 9002"),
    ("deploy/k8s/components/tls/kustomization.yaml", "value: --tls-ca=/etc/barrage/tls/ca.crt",
     "value: --tls-ca=/etc/barrage/tls/ca.pem", "has no ca.pem"),
    ("deploy/k8s/components/servicemonitor/servicemonitor.yaml", "- port: metrics", "- port: metric",
     "endpoints port 'metric'"),
    ("deploy/prometheus/prometheus.yml", "barrage-controller:9464", "barrage-controller:9091",
     "deploy/prometheus/prometheus.yml: scrape targets"),
    ("deploy/docker/Dockerfile", "USER 10001:10001", "USER 10002:10002", "the image's user is 10002"),
    ("deploy/k8s/base/kustomization.yaml", "generatorOptions:", "generatorOption:",
     "generatorOption: not implemented"),
    ("deploy/k8s/overlays/demo-kube-prometheus/kustomization.yaml", "namespace: barrage", "",
     "would land in kubectl's current namespace"),
]


def copy_tree(root, dest):
    for part in ("deploy", "proto/hello", "CMakeLists.txt"):
        src = os.path.join(root, part)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(dest, part))
        else:
            os.makedirs(os.path.dirname(os.path.join(dest, part)), exist_ok=True)
            shutil.copy(src, os.path.join(dest, part))


def mutation_test(root, binaries):
    failures = []
    for path, old, new, expected in MUTATIONS:
        with tempfile.TemporaryDirectory(prefix="barrage-manifests-") as tmp:
            copy_tree(root, tmp)
            target = os.path.join(tmp, path)
            with open(target, encoding="utf-8") as f:
                text = f.read()
            if text.count(old) != 1:
                failures.append(f"mutation of {path}: {old!r} occurs {text.count(old)} times (update MUTATIONS)")
                continue
            with open(target, "w", encoding="utf-8") as f:
                f.write(text.replace(old, new))
            errors = []
            check_repo(tmp, binaries, errors, use_kubectl=False)
            if not any(expected in e for e in errors):
                failures.append(f"{path}: {old!r} -> {new!r} went unreported (expected {expected!r}); reported:\n  "
                                + "\n  ".join(errors or ["nothing"]))
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", required=True)
    ap.add_argument("--barrage", required=True)
    ap.add_argument("--barrage-agent", required=True)
    ap.add_argument("--barrage-target", required=True)
    ap.add_argument("--no-mutations", action="store_true", help="skip breaking the manifests on purpose")
    args = ap.parse_args()
    root = os.path.abspath(args.repo)
    binaries = Binaries({"barrage": args.barrage, "barrage-agent": args.barrage_agent,
                         "barrage-target": args.barrage_target})

    use_kubectl = shutil.which("kubectl") is not None
    if not use_kubectl:
        print("kubectl is not installed: the overlays are rendered by tests/deploy/k8s_manifests.py only")
    errors = []
    check_repo(root, binaries, errors, use_kubectl)
    if errors:
        print(f"FAIL: {len(errors)} problem(s) in the manifests:")
        for e in errors:
            print(f"  - {e}")
        return 1
    overlays = sorted(os.listdir(os.path.join(root, "deploy/k8s/overlays")))
    print(f"ok: overlays {', '.join(overlays)} render and agree with the binaries, the image and each other"
          + (" (and with kubectl kustomize)" if use_kubectl else ""))
    if args.no_mutations:
        return 0
    failures = mutation_test(root, binaries)
    if failures:
        print(f"FAIL: {len(failures)} deliberately broken manifest(s) passed the checks:")
        for f in failures:
            print(f"  - {f}")
        return 1
    print(f"ok: each of {len(MUTATIONS)} deliberate breaks of the manifests is reported")
    return 0


if __name__ == "__main__":
    sys.exit(main())

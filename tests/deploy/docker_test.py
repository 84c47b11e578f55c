#!/usr/bin/env python3
"""Checks deploy/docker/Dockerfile without a Docker engine.

  docker_test.py --repo ROOT --barrage B --barrage-agent A --barrage-target T

- The builder stage (debian:bookworm) runs nothing but the repository's own
  scripts, and only scripts CI runs (.ci/run and what it calls), in CI's
  order, so every build step of the image is exercised by CI; it builds
  no tests (BUILD_TESTS=OFF).
- The runtime stage (debian:bookworm-slim) installs the Debian package of
  every shared library the three binaries load (ldd, then dpkg -S), and
  no other but tini and ca-certificates; it copies the three binaries
  from where scripts/build.sh puts them (INSTALL_DIR/bin), runs as a
  numeric non-root user, and has a HEALTHCHECK and an exec-form ENTRYPOINT.
- The health check script works: healthy with the binaries, unhealthy when
  BARRAGE_HEALTH_ADDR names a closed port, healthy when it names an open one.
- .dockerignore keeps the host's build tree and node_modules out.
Parts that need ldd, dpkg or apt-cache are skipped, with a message, where
those tools are missing.
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dockerfile  # noqa: E402

errors = []
notes = []


def fail(message):
    errors.append(message)


def scripts_run_by(path, root, seen=None):
    """The repository scripts a shell script runs, in order, recursively:
    [scripts/setup.sh, scripts/test.sh, scripts/build.sh, ...]."""
    seen = seen if seen is not None else []
    with open(os.path.join(root, path), encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0]
            for m in re.finditer(r"(?:^|[\s;&|(])(?:bash\s+)?((?:\./)?scripts/[\w.-]+\.sh)\b", line):
                script = os.path.normpath(m.group(1))
                if script not in seen:  # build.sh runs setup.sh again only when it was not run
                    seen.append(script)
                    scripts_run_by(script, root, seen)
    return seen


def check_builder(root, stages):
    build = stages[0]
    if build.base != "debian:bookworm":
        fail(f"Dockerfile:{build.line}: the builder is FROM {build.base}; expected debian:bookworm (Debian 12, as CI)")
    ci = scripts_run_by(".ci/run", root)
    ran = []
    bin_dir = None
    for args, line in build.all("RUN"):
        for argv in dockerfile.run_commands(args):
            env = {}
            while argv and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", argv[0]):  # VAR=value scripts/...
                key, _, value = argv[0].partition("=")
                env[key] = value
                argv = argv[1:]
            words = argv[1:] if argv and argv[0] in ("bash", "sh") else argv
            script = os.path.normpath(words[0]) if words else ""
            if not script.startswith("scripts/"):
                fail(f"Dockerfile:{line}: the builder runs {' '.join(argv)!r}; it should run only the "
                     "repository's scripts, which CI runs too (put build steps in scripts/setup.sh or scripts/build.sh)")
                continue
            if script not in ci:
                fail(f"Dockerfile:{line}: the builder runs {script}, which CI (.ci/run: {', '.join(ci)}) does not")
            if script == "scripts/build.sh":
                # Only what ships: no tests (they would double the build's time).
                if env.get("BUILD_TESTS") != "OFF":
                    fail(f"Dockerfile:{line}: the builder runs scripts/build.sh without BUILD_TESTS=OFF, so it "
                         "builds every test too")
                if env.get("INSTALL_DIR"):
                    bin_dir = env["INSTALL_DIR"].rstrip("/") + "/bin"
            ran.append(script)
    order = [s for s in ci if s in ran]
    if ran != order:
        fail(f"Dockerfile: the builder runs {ran}, CI runs them in the order {order}")
    for needed in ("scripts/setup.sh", "scripts/build.sh"):
        if needed not in ran:
            fail(f"Dockerfile: the builder does not run {needed}")

    # What setup.sh reads must be copied in before it runs: the script and npm's lock.
    copied = []
    for ins, args, line in build.instructions:
        if ins == "COPY":
            copied += args.split()[:-1]
        if ins == "RUN" and "scripts/setup.sh" in args:
            for needed in ("scripts/setup.sh", "scripts/js/package.json", "scripts/js/package-lock.json"):
                if not any(c in (".", needed) for c in copied):
                    fail(f"Dockerfile:{line}: scripts/setup.sh runs before {needed} is copied in")
            break
    notes.append(f"builder: runs {', '.join(ran)}; CI runs {', '.join(ci)}")
    workdir, _ = build.last("WORKDIR")
    return bin_dir or f"{(workdir or '/').rstrip('/')}/build/bin"


def runtime_packages(stage):
    packages = []
    for args, line in stage.all("RUN"):
        for argv in dockerfile.run_commands(args):
            while argv and re.match(r"^[A-Z_]+=", argv[0]):  # DEBIAN_FRONTEND=noninteractive apt-get ...
                argv = argv[1:]
            if argv[:1] == ["apt-get"] and "install" in argv:
                if "--no-install-recommends" not in argv:
                    fail(f"Dockerfile:{line}: apt-get install without --no-install-recommends")
                packages += [a for a in argv[argv.index("install") + 1:] if not a.startswith("-")]
        if "apt-get install" in args and "rm -rf /var/lib/apt/lists" not in args:
            fail(f"Dockerfile:{line}: apt-get install leaves /var/lib/apt/lists in the image")
    return packages


def packages_of(paths):
    """{path: Debian package or None}, trying the merged-/usr spellings of
    each path (ldd says /lib/..., dpkg may know /usr/lib/...). One dpkg call:
    it takes a second per call."""
    spellings = {}
    for path in paths:
        candidates = [path, os.path.realpath(path)]
        for p in list(candidates):
            if p.startswith("/lib"):
                candidates.append("/usr" + p)
            elif p.startswith("/usr/lib"):
                candidates.append(p[len("/usr"):])
        spellings[path] = candidates
    everything = sorted({c for cs in spellings.values() for c in cs})
    out = subprocess.run(["dpkg", "-S"] + everything, capture_output=True, text=True)
    owner = {}
    for line in out.stdout.splitlines():
        pkgs, sep, file = line.partition(": ")
        if sep:
            owner[file.strip()] = pkgs.split(",")[0].split(":")[0].strip()
    return {path: next((owner[c] for c in cs if c in owner), None) for path, cs in spellings.items()}


def check_runtime(root, stages, bin_dir, binaries):
    rt = stages[-1]
    if rt.base != "debian:bookworm-slim":
        fail(f"Dockerfile:{rt.line}: the runtime is FROM {rt.base}; expected debian:bookworm-slim")
    packages = runtime_packages(rt)

    # The binaries come from where scripts/build.sh puts them (INSTALL_DIR/bin, else build/bin).
    expected = {f"{bin_dir}/{os.path.basename(b)}" for b in binaries}
    sources = set()
    destination = None
    for args, line in rt.all("COPY"):
        words = args.split()
        if words and words[0].startswith("--from="):
            sources |= set(words[1:-1])
            destination = words[-1]
    if sources != expected:
        fail(f"Dockerfile: the runtime copies {sorted(sources)} from the builder; scripts/build.sh leaves "
             f"the binaries at {sorted(expected)}")
    if destination not in ("/usr/local/bin/", "/usr/bin/"):
        fail(f"Dockerfile: the binaries go to {destination}, which is not on the image's PATH")

    uid = dockerfile.user_id(rt)
    if not isinstance(uid, int) or uid == 0:
        fail(f"Dockerfile: USER is {uid!r}; expected a numeric non-root uid (Kubernetes' runAsNonRoot checks it)")
    hc, line = rt.last("HEALTHCHECK")
    if not hc or "CMD" not in hc.split():
        fail("Dockerfile: no HEALTHCHECK ... CMD")
    entry, line = rt.last("ENTRYPOINT")
    argv = dockerfile.exec_form(entry or "")
    if not argv:
        fail("Dockerfile: ENTRYPOINT missing or not in exec form")
    elif os.path.basename(argv[0]) not in packages:
        fail(f"Dockerfile:{line}: ENTRYPOINT {argv[0]}: no package of that name is installed")

    # Every shared library of the binaries is in an installed package.
    if not shutil.which("ldd") or not shutil.which("dpkg"):
        notes.append("SKIPPED the library check: ldd or dpkg is missing")
        return packages
    needed = {}
    for b in binaries:
        out = subprocess.run(["ldd", b], capture_output=True, text=True)
        if out.returncode != 0:
            fail(f"ldd {b} failed: {out.stderr.strip()}")
            continue
        for lib_line in out.stdout.splitlines():
            if "not found" in lib_line:
                fail(f"{b}: {lib_line.strip()}")
            m = re.search(r"=>\s*(/\S+)", lib_line) or re.match(r"\s*(/\S+)", lib_line)
            if m:
                needed.setdefault(m.group(1), set()).add(os.path.basename(b))
    sanitizers = sorted(lib for lib in needed if re.search(r"/lib(a|t|ub|l)san\.so", lib))
    if sanitizers:
        notes.append(f"SKIPPED the library check: a sanitizer build ({', '.join(map(os.path.basename, sanitizers))}); "
                     "the image builds without sanitizers")
        return packages
    missing = {}
    owners = packages_of(needed)
    for lib, users in sorted(needed.items()):
        pkg = owners[lib]
        if pkg is None:
            fail(f"{lib} (loaded by {', '.join(sorted(users))}) belongs to no Debian package: the image cannot "
                 "install it")
        elif pkg not in packages:
            missing.setdefault(pkg, []).append(os.path.basename(lib))
    for pkg, libs in sorted(missing.items()):
        fail(f"Dockerfile: the runtime stage does not install {pkg}, which holds {', '.join(libs)}")
    # And nothing more: a library the build stopped loading (one now linked
    # in statically, say) leaves the image too. Beyond libraries, only what
    # the stage names on purpose: the ENTRYPOINT's package and CA roots.
    loaded = {pkg for pkg in owners.values() if pkg}
    entry_pkg = os.path.basename(argv[0]) if argv else None
    for pkg in packages:
        if pkg not in loaded and pkg not in (entry_pkg, "ca-certificates"):
            fail(f"Dockerfile: the runtime stage installs {pkg}, which holds no library the binaries load (ldd)")
    notes.append(f"runtime: {len(needed)} shared libraries of {len(binaries)} binaries, all in the "
                 f"{len(packages)} packages it installs" if not missing else "runtime: libraries missing")

    # The package names exist in Debian 12 (where apt's lists are there to ask).
    if shutil.which("apt-cache") and subprocess.run(["apt-cache", "show", "libc6"], capture_output=True).returncode == 0:
        out = subprocess.run(["apt-cache", "show", "--no-all-versions"] + packages, capture_output=True, text=True)
        known = set(re.findall(r"^Package: (\S+)", out.stdout, re.M))
        for pkg in packages:
            if pkg not in known:
                fail(f"Dockerfile: the runtime installs {pkg}, which apt-cache does not know")
    else:
        notes.append("SKIPPED the package-name check: apt-cache has no package lists")
    return packages


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_healthcheck(root, stages, binaries):
    rt = stages[-1]
    script = None
    for args, _ in rt.all("COPY"):
        words = args.split()
        if not words[0].startswith("--from=") and "healthcheck" in words[0]:
            script = os.path.join(root, words[0])
    if script is None or not os.path.isfile(script):
        fail("Dockerfile: the health check script is not copied from the repository")
        return
    if not os.access(script, os.X_OK):
        fail(f"{os.path.relpath(script, root)} is not executable")
    env = {"PATH": os.pathsep.join(sorted({os.path.dirname(os.path.abspath(b)) for b in binaries}) + ["/usr/bin", "/bin"])}

    def run(extra):
        return subprocess.run(["bash", script], env={**env, **extra}, capture_output=True, text=True, timeout=20).returncode

    if run({}) != 0:
        fail(f"{os.path.relpath(script, root)}: unhealthy although the binaries load")
    closed = free_port()
    if run({"BARRAGE_HEALTH_ADDR": f"127.0.0.1:{closed}"}) == 0:
        fail(f"{os.path.relpath(script, root)}: healthy although BARRAGE_HEALTH_ADDR names a closed port")
    target = next(b for b in binaries if os.path.basename(b) == "barrage-target")
    # The address is the one line on stdout; stderr carries the mode line.
    proc = subprocess.Popen([target, "--listen", "127.0.0.1:0", "--threads", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"listening on (\S+)", line)
        if not m:
            fail(f"barrage-target did not print its address: {line!r}")
        elif run({"BARRAGE_HEALTH_ADDR": m.group(1)}) != 0:
            fail(f"{os.path.relpath(script, root)}: unhealthy although barrage-target listens on {m.group(1)}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    notes.append("health check: healthy, unhealthy on a closed port, healthy on barrage-target's port")


def check_dockerignore(root):
    path = os.path.join(root, ".dockerignore")
    if not os.path.isfile(path):
        fail(".dockerignore is missing: the host's build/ and node_modules would enter the image's build")
        return
    with open(path, encoding="utf-8") as f:
        entries = {line.strip().rstrip("/") for line in f if line.strip() and not line.startswith("#")}
    for needed in ("build", "scripts/js/node_modules", ".git"):
        if needed not in entries:
            fail(f".dockerignore does not exclude {needed}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", required=True)
    ap.add_argument("--barrage", required=True)
    ap.add_argument("--barrage-agent", required=True)
    ap.add_argument("--barrage-target", required=True)
    args = ap.parse_args()
    root = os.path.abspath(args.repo)
    binaries = [args.barrage, args.barrage_agent, args.barrage_target]
    stages = dockerfile.parse(os.path.join(root, "deploy/docker/Dockerfile"))
    if len(stages) < 2:
        fail("Dockerfile: expected a builder stage and a runtime stage")
    else:
        bin_dir = check_builder(root, stages)
        check_runtime(root, stages, bin_dir, binaries)
        check_healthcheck(root, stages, binaries)
    check_dockerignore(root)
    for n in notes:
        print(n)
    if errors:
        print(f"FAIL: {len(errors)} problem(s) in deploy/docker:")
        for e in errors:
            print(f"  - {e}")
        return 1
    print("ok: deploy/docker/Dockerfile builds with CI's scripts and installs what the binaries load")
    return 0


if __name__ == "__main__":
    sys.exit(main())

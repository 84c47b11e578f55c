#!/usr/bin/env python3
"""The web dashboard and its HTML report (issue 17), in Debian's headless
Chromium, against real barrage-target and barrage processes on loopback.

  dashboard_browser_test.py --barrage B --barrage-target T --out DIR
                            [--case live|agents|bad-input|all] [--readme-images DIR]

live:      `barrage run --dashboard=127.0.0.1:0 --report DIR/report.html`
           (K6_WEB_DASHBOARD_PERIOD=1s) against a target that fails a tenth
           of the calls. The page loads while the test runs and its charts
           receive points; at the end the page's request and iteration
           totals equal the summary export's iteration count (one call per
           iteration) and the failures its failed checks. Then the report
           is opened from disk with the browser's network emulated offline
           (and no request may leave for anything but file: or data:): it
           shows the same totals, the checks and the summary.
agents:    the same with --agents 2: the page lists both agents, each with
           its share of the VUs.
bad-input: a dashboard address in use, a malformed one, an unwritable
           report path and a bad K6_WEB_DASHBOARD_PERIOD each exit 104
           before the test starts (no request reaches the target), naming
           the culprit. Needs no browser.

Screenshots (dashboard.png, report.png, agents.png, and half-scale
dashboard-small.png and report-small.png) are written to DIR;
--readme-images DIR copies the half-scale ones there as dashboard.png and
report.png (README.md shows docs/).
Without a runnable Chromium the browser cases exit 77 (ctest: skipped),
saying why. Every wait is bounded; every process is ended on every way out.
"""

import argparse
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
from cdp import CdpError, Chromium, find_chromium  # noqa: E402

SKIP = 77

SCRIPT = r"""
import grpc from 'k6/net/grpc';
import { check } from 'k6';
const client = new grpc.Client();
client.load(['definitions'], 'hello.proto');
export const options = {
  vus: 4, duration: __ENV.DURATION || '6s',
  thresholds: { grpc_req_duration: ['p(95)<500'], checks: ['rate>0.5'] },
};
export default () => {
  if (__ITER === 0) client.connect(__ENV.TARGET, { plaintext: true });
  const r = client.invoke('hello.HelloService/SayHello', { greeting: 'dashboard' });
  check(r, { 'status is OK': (x) => x && x.status === grpc.StatusOK });
};
"""


class Failure(Exception):
    pass


def log(msg):
    print(f"[dashboard] {msg}", flush=True)


class Procs:
    """Started processes, each in its own process group, ended on exit."""

    def __init__(self):
        self.procs = []

    def start(self, argv, stdout, stderr, env=None, cwd=None):
        p = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=10)


def wait_for_line(path, pattern, timeout, proc=None):
    deadline = time.monotonic() + timeout
    rx = re.compile(pattern)
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path, errors="replace") as f:
                m = rx.search(f.read())
            if m:
                return m
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    text = open(path, errors="replace").read() if os.path.exists(path) else ""
    raise Failure(f"no line matching {pattern!r} in {path} within {timeout}s:\n{text[-2000:]}")


def start_target(procs, work, error_rate="0"):
    out = os.path.join(work, "target.out")
    p = procs.start([ARGS.barrage_target, "--listen", "127.0.0.1:0", "--error-rate", error_rate],
                    open(out, "w"), subprocess.STDOUT)
    return wait_for_line(out, r"listening on (\S+)", 10, p).group(1)


def write_script(work):
    path = os.path.join(work, "dash.js")
    with open(path, "w") as f:
        f.write(SCRIPT)
    defs = os.path.join(ARGS.repo, "scripts", "examples", "definitions")
    shutil.copytree(defs, os.path.join(work, "definitions"), dirs_exist_ok=True)
    return path


def run_barrage(procs, work, name, args, env_extra=None):
    env = dict(os.environ)
    env.update(env_extra or {})
    out = os.path.join(work, f"{name}.stdout")
    err = os.path.join(work, f"{name}.stderr")
    p = procs.start([ARGS.barrage, "run", "-q", *args], open(out, "w"), open(err, "w"), env=env, cwd=work)
    return p, out, err


def totals(page):
    return page.evaluate("""(() => {
      const v = (id) => Number(document.getElementById(id).getAttribute('data-value'));
      return { requests: v('total-requests'), failed: v('total-failed'), iterations: v('total-iterations'),
               agents: v('total-agents'), points: Number(document.body.getAttribute('data-points') || 0),
               canvases: document.querySelectorAll('#charts canvas').length,
               agentRows: [...document.querySelectorAll('#agents tbody tr')].map(tr => [...tr.cells].map(td => td.textContent)),
               phase: document.body.getAttribute('data-phase') };
    })()""")


# The README's copies: rendered by Chromium at this scale, so the committed
# PNGs stay small without an image library.
README_SCALE = 0.5


def case_live(browser, procs, work):
    target = start_target(procs, work, error_rate="0.1")
    script = write_script(work)
    report = os.path.join(ARGS.out, "report.html")
    summary = os.path.join(work, "summary.json")
    p, out, err = run_barrage(procs, work, "live",
                              ["--dashboard=127.0.0.1:0", "--report", report, "--summary-export", summary,
                               "-e", f"TARGET={target}", "-e", "DURATION=8s", script],
                              {"K6_WEB_DASHBOARD_PERIOD": "1s"})
    url = wait_for_line(err, r"web dashboard on (http://\S+?)\"", 20, p).group(1)
    log(f"dashboard at {url}")
    page = browser.new_page(1280, 900)
    page.navigate(url)
    page.wait_for("document.body.getAttribute('data-ready')", 10, "the page's first snapshot")
    # The charts receive points while the test runs.
    page.wait_for("Number(document.getElementById('chart-rps').getAttribute('data-points')) >= 3 && "
                  "document.body.getAttribute('data-phase') === 'running' && "
                  "Number(document.getElementById('total-requests').getAttribute('data-value')) > 0",
                  15, "three points on the charts during the run")
    mid = totals(page)
    log(f"during the run: {mid}")
    if mid["canvases"] < 7:
        raise Failure(f"expected 7 charts drawn, found {mid['canvases']} canvases")
    try:
        code = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise Failure("barrage did not end within 60 s")
    if code != 0:
        raise Failure(f"barrage exited {code}:\n{open(err).read()[-2000:]}")
    page.wait_for("document.body.getAttribute('data-finished')", 10, "the end event")
    end = totals(page)
    log(f"at the end: {end}")
    page.screenshot(os.path.join(ARGS.out, "dashboard.png"))
    page.screenshot(os.path.join(ARGS.out, "dashboard-small.png"), scale=README_SCALE)
    exported = json.load(open(summary))
    iterations = exported["metrics"]["iterations"]["count"]
    failed_checks = exported["metrics"]["checks"]["fails"]
    if end["phase"] != "done":
        raise Failure(f"the page's phase at the end is {end['phase']!r}, not 'done'")
    if end["requests"] != iterations or end["iterations"] != iterations:
        raise Failure(f"the page shows {end['requests']} requests and {end['iterations']} iterations; "
                      f"the summary counts {iterations} iterations of one request each")
    if end["failed"] != failed_checks or failed_checks == 0:
        raise Failure(f"the page shows {end['failed']} failed requests; the summary {failed_checks} failed checks")
    if end["points"] <= mid["points"]:
        raise Failure(f"no points arrived after the middle of the run ({mid['points']} -> {end['points']})")

    # The report, from disk, offline: same totals, the checks and the summary.
    if not os.path.exists(report):
        raise Failure(f"{report} was not written:\n{open(err).read()[-2000:]}")
    rpage = browser.new_page(1280, 900)
    rpage.send("Network.enable")
    rpage.send("Network.emulateNetworkConditions",
               {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    while not browser.events.empty():
        browser.events.get_nowait()
    rpage.navigate("file://" + os.path.abspath(report))
    rpage.wait_for("document.body.getAttribute('data-ready')", 10, "the report's data")
    rep = totals(rpage)
    log(f"report: {rep}")
    if rep["requests"] != iterations or rep["iterations"] != iterations or rep["failed"] != failed_checks:
        raise Failure(f"the report shows {rep}; the summary {iterations} iterations, {failed_checks} failed checks")
    if rep["canvases"] < 7 or rep["points"] < 3:
        raise Failure(f"the report's charts are missing or empty: {rep}")
    checks = rpage.evaluate("[...document.querySelectorAll('#checks tbody tr')].map(tr => tr.cells[0].textContent)")
    if not any("status is OK" in c for c in checks):
        raise Failure(f"the report's checks table lacks 'status is OK': {checks}")
    text = rpage.evaluate("document.getElementById('summary').textContent")
    if "grpc_req_duration" not in text or "iterations" not in text:
        raise Failure(f"the report's summary text is missing: {text[:300]!r}")
    requests = []
    while not browser.events.empty():
        e = browser.events.get_nowait()
        if e.get("method") == "Network.requestWillBeSent":
            u = e["params"]["request"]["url"]
            if not (u.startswith("file:") or u.startswith("data:")):
                requests.append(u)
    if requests:
        raise Failure(f"the report asked the network for {requests}")
    rpage.screenshot(os.path.join(ARGS.out, "report.png"))
    rpage.screenshot(os.path.join(ARGS.out, "report-small.png"), scale=README_SCALE)
    return {"iterations": iterations, "failed": failed_checks}


def case_agents(browser, procs, work):
    target = start_target(procs, work)
    script = write_script(work)
    p, out, err = run_barrage(procs, work, "agents",
                              ["--agents", "2", "--dashboard=127.0.0.1:0", "-e", f"TARGET={target}",
                               "-e", "DURATION=8s", script],
                              {"K6_WEB_DASHBOARD_PERIOD": "1s"})
    url = wait_for_line(err, r"web dashboard on (http://\S+?)\"", 30, p).group(1)
    page = browser.new_page(1280, 900)
    page.navigate(url)
    page.wait_for("document.querySelectorAll('#agents tbody tr').length === 2 && "
                  "document.body.getAttribute('data-phase') === 'running' && "
                  "Number(document.getElementById('total-requests').getAttribute('data-value')) > 0",
                  30, "two agents listed while the test runs")
    mid = totals(page)
    log(f"agents during the run: {mid['agentRows']}")
    names = sorted(r[0] for r in mid["agentRows"])
    vus = sum(int(r[1].replace(",", "")) for r in mid["agentRows"])
    if len(set(names)) != 2 or vus != 4 or mid["agents"] != 2:
        raise Failure(f"expected two distinct agents holding 4 VUs between them, got {mid['agentRows']}")
    page.screenshot(os.path.join(ARGS.out, "agents.png"))
    try:
        code = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise Failure("barrage --agents 2 did not end within 60 s")
    if code != 0:
        raise Failure(f"barrage --agents 2 exited {code}:\n{open(err).read()[-2000:]}")
    page.wait_for("document.body.getAttribute('data-finished')", 10, "the end event")
    end = totals(page)
    states = sorted(r[3] for r in end["agentRows"])
    if states != ["done", "done"]:
        raise Failure(f"expected both agents done at the end, got {end['agentRows']}")


def case_bad_input(procs, work):
    target = start_target(procs, work)
    script = write_script(work)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    busy_addr = f"127.0.0.1:{busy.getsockname()[1]}"
    cases = [
        (["--dashboard=" + busy_addr], {}, f"cannot listen on {busy_addr}"),
        (["--dashboard=nonsense"], {}, "--dashboard: expected HOST:PORT"),
        (["--dashboard=256.1.2.3:80"], {}, "cannot listen on 256.1.2.3:80"),
        (["--report", os.path.join(work, "no", "such", "dir", "r.html")], {}, "--report: cannot write "),
        (["--report", work], {}, "not a regular file"),
        ([], {"K6_WEB_DASHBOARD": "true", "K6_WEB_DASHBOARD_PORT": str(busy.getsockname()[1])},
         f"cannot listen on {busy_addr}"),
        ([], {"K6_WEB_DASHBOARD": "true", "K6_WEB_DASHBOARD_PERIOD": "soon"}, "K6_WEB_DASHBOARD_PERIOD"),
        ([], {"K6_WEB_DASHBOARD": "maybe"}, "K6_WEB_DASHBOARD"),
        ([], {"K6_WEB_DASHBOARD_EXPORT": os.path.join(work, "missing", "r.html")}, "K6_WEB_DASHBOARD_EXPORT"),
    ]
    try:
        for i, (args, env, culprit) in enumerate(cases):
            p, out, err = run_barrage(procs, work, f"bad{i}", [*args, "-e", f"TARGET={target}", "-e",
                                                                "DURATION=30s", script], env)
            try:
                code = p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                raise Failure(f"{args} {env}: barrage still runs after 20 s (the test started)")
            text = open(err).read()
            if code != 104 or culprit not in text:
                raise Failure(f"{args} {env}: expected exit 104 naming {culprit!r}, got {code}:\n{text[-1500:]}")
            log(f"{args or env}: 104, {text.strip().splitlines()[-1][:160]}")
    finally:
        busy.close()
    # Before the test: the target never saw a call (the VUs never ran).
    calls = subprocess.run([ARGS.barrage, "run", "-q", "--no-summary", "-e", f"TARGET={target}", "-e", "DURATION=1s",
                            "--dashboard=nonsense", script], capture_output=True, text=True, cwd=work, timeout=20)
    if "level=info" in calls.stderr and "VU" in calls.stderr:
        raise Failure("a VU ran before the dashboard's settings were checked")


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--barrage", required=True)
    ap.add_argument("--barrage-target", required=True)
    ap.add_argument("--repo", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    ap.add_argument("--out", required=True)
    ap.add_argument("--case", default="all", choices=["live", "agents", "bad-input", "all"])
    ap.add_argument("--readme-images")
    ARGS = ap.parse_args()
    for k in ("barrage", "barrage_target", "repo", "out"):
        setattr(ARGS, k, os.path.abspath(getattr(ARGS, k)))
    os.makedirs(ARGS.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="barrage-dash-")
    procs = Procs()
    try:
        if ARGS.case in ("bad-input", "all"):
            case_bad_input(procs, work)
            log("bad input: ok")
        if ARGS.case in ("live", "agents", "all"):
            chromium = find_chromium()
            if chromium is None:
                print("SKIP: no chromium on PATH (scripts/setup.sh installs Debian's chromium)")
                return SKIP
            try:
                with Chromium(chromium, work) as browser:
                    browser.send("Browser.getVersion", timeout=20)
            except CdpError as e:
                print(f"SKIP: chromium cannot run here: {e}")
                return SKIP
            with Chromium(chromium, work) as browser:
                if ARGS.case in ("live", "all"):
                    r = case_live(browser, procs, work)
                    log(f"live: ok ({r['iterations']} requests, {r['failed']} failed, equal on the page, in the "
                        f"report and in the summary; screenshots in {ARGS.out})")
                if ARGS.case in ("agents", "all"):
                    case_agents(browser, procs, work)
                    log("agents: ok (both listed)")
        if ARGS.readme_images:
            os.makedirs(ARGS.readme_images, exist_ok=True)
            for name in ("dashboard", "report"):
                src = os.path.join(ARGS.out, f"{name}-small.png")
                if os.path.exists(src):
                    shutil.copyfile(src, os.path.join(ARGS.readme_images, f"{name}.png"))
        return 0
    except (Failure, CdpError) as e:
        print(f"FAIL: {e}", file=sys.stderr)
        print(f"(work files kept in {work})", file=sys.stderr)
        work = None
        return 1
    finally:
        procs.close()
        if work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""A small Chrome DevTools Protocol client over --remote-debugging-pipe:
Debian's headless chromium driven without a WebSocket library (the pipe
carries the same JSON messages, each ended by a NUL byte, on fds 3 and 4).

  with Chromium("/usr/bin/chromium", workdir) as browser:
      page = browser.new_page(width=1280, height=900)
      page.navigate("http://127.0.0.1:5665/")
      page.evaluate("document.title")
      page.screenshot("out.png")

Every call is bounded in time; the browser process (and its children: it
runs in a process group of its own) is ended on every way out.
"""

import base64
import json
import os
import queue
import signal
import subprocess
import threading
import time


class CdpError(Exception):
    pass


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        for d in os.environ.get("PATH", "/usr/bin").split(os.pathsep):
            p = os.path.join(d, name)
            if os.access(p, os.X_OK):
                return p
    return None


class Page:
    def __init__(self, browser, session):
        self.browser = browser
        self.session = session

    def send(self, method, params=None, timeout=15):
        return self.browser.send(method, params, session=self.session, timeout=timeout)

    def navigate(self, url, timeout=15):
        r = self.send("Page.navigate", {"url": url}, timeout=timeout)
        if r.get("errorText"):
            raise CdpError(f"navigating to {url}: {r['errorText']}")

    def evaluate(self, expression, timeout=10):
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, timeout=timeout)
        if "exceptionDetails" in r:
            raise CdpError(f"{expression}: {r['exceptionDetails'].get('text')} "
                           f"{r['exceptionDetails'].get('exception', {}).get('description', '')}")
        return r.get("result", {}).get("value")

    def wait_for(self, expression, timeout, what):
        """Polls expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
                if value:
                    return value
                last = value
            except CdpError as e:  # e.g. an element not there yet
                last = f"error: {e}"
            time.sleep(0.2)
        raise CdpError(f"timed out after {timeout}s waiting for {what} ({expression} = {last!r})")

    def screenshot(self, path, full_page=True, scale=1):
        params = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": scale}
        r = self.send("Page.captureScreenshot", params, timeout=30)
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))


class Chromium:
    def __init__(self, binary, workdir):
        self.binary = binary
        self.workdir = workdir
        self.proc = None
        self.next_id = 0
        self.pending = {}
        self.events = queue.Queue()
        self.lock = threading.Lock()
        self.stderr = os.path.join(workdir, "chromium.stderr")

    def __enter__(self):
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()

        def child_fds():
            # Through fds above both targets first: a pipe's own fd may be
            # 3 or 4 already (dup2 onto itself would keep close-on-exec).
            r = os.dup(to_browser_r)
            w = os.dup(from_browser_w)
            high_r, high_w = os.dup2(r, 100), os.dup2(w, 101)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)
            os.setpgid(0, 0)

        profile = os.path.join(self.workdir, "chromium-profile")
        os.makedirs(profile, exist_ok=True)
        with open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen(
                [self.binary, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                 "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--mute-audio", f"--user-data-dir={profile}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, close_fds=False,
                preexec_fn=child_fds)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.out = os.fdopen(to_browser_w, "wb", buffering=0)
        self.inp = os.fdopen(from_browser_r, "rb", buffering=0)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.proc is None:
            return
        try:
            self.send("Browser.close", timeout=3)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=5)
        for f in (self.out, self.inp):
            try:
                f.close()
            except OSError:
                pass
        self.proc = None

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = self.inp.read(65536)
            except (OSError, ValueError):
                chunk = b""
            if not chunk:
                with self.lock:
                    for q in self.pending.values():
                        q.put({"error": {"message": "the browser closed the pipe"}})
                return
            buf += chunk
            while b"\0" in buf:
                msg, buf = buf.split(b"\0", 1)
                m = json.loads(msg)
                if "id" in m:
                    with self.lock:
                        q = self.pending.pop(m["id"], None)
                    if q is not None:
                        q.put(m)
                else:
                    self.events.put(m)

    def send(self, method, params=None, session=None, timeout=15):
        with self.lock:
            self.next_id += 1
            mid = self.next_id
            q = queue.Queue()
            self.pending[mid] = q
        m = {"id": mid, "method": method, "params": params or {}}
        if session:
            m["sessionId"] = session
        try:
            self.out.write(json.dumps(m).encode() + b"\0")
        except (BrokenPipeError, ValueError) as e:
            raise CdpError(f"{method}: the browser is gone ({e}); its stderr is in {self.stderr}")
        try:
            r = q.get(timeout=timeout)
        except queue.Empty:
            raise CdpError(f"{method}: no answer within {timeout}s")
        if "error" in r:
            raise CdpError(f"{method}: {r['error'].get('message')}")
        return r.get("result", {})

    def new_page(self, width=1280, height=900):
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.send("Page.enable")
        page.send("Runtime.enable")
        page.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        return page

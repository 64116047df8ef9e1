#!/usr/bin/env python3
"""The /ui dashboard in headless Chromium against a live 3-node cluster: the page lists
the three members with their state, a key written through the API of another node
appears in the key browser (live, through /v1/watch), the plots draw, and a screenshot is
saved (--out). Chromium is driven through chromedriver's W3C WebDriver HTTP API (stdlib
only). Without chromium and chromedriver (Debian packages chromium, chromium-driver) the
test is skipped (exit 77) and says so.

  python3 ui_test.py --bin build/release/tools/scuttled --io epoll --out /tmp/ui
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.request

import harness as h

CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
               "--window-size=1280,1000"]


def find(*names):
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriver:
    def __init__(self, driver, chrome, workdir):
        self.port = free_port()
        self.log = open(os.path.join(workdir, "chromedriver.log"), "wb")
        # Killed with the test even by SIGKILL (a ctest timeout); Chromium exits with it.
        self.proc = subprocess.Popen([driver, "--port=%d" % self.port], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=h._die_with_parent)
        h._ALL_PROCS.add(self.proc)
        self.base = "http://127.0.0.1:%d" % self.port
        h.wait_until(lambda: self.call("GET", "/status")["value"].get("ready"), 20,
                     "chromedriver ready")
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chrome,
                "args": CHROME_ARGS + ["--user-data-dir=" + os.path.join(workdir, "profile")],
            }}}}
        self.session = self.call("POST", "/session", caps, timeout=60)["value"]["sessionId"]

    def call(self, method, path, body=None, timeout=30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError("webdriver %s %s: %s" % (method, path, e.read()[:500]))

    def s(self, method, path, body=None):
        return self.call(method, "/session/%s%s" % (self.session, path), body)

    def get(self, url):
        self.s("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})["value"]

    def screenshot(self, path):
        png = base64.b64decode(self.s("GET", "/screenshot")["value"])
        with open(path, "wb") as f:
            f.write(png)
        return len(png)

    def close(self):
        try:
            self.s("DELETE", "")
        except Exception:  # noqa: BLE001 - the driver is killed next anyway
            pass
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()


def case_ui(c, args):
    chrome = find("chromium", "chromium-browser", "google-chrome")
    driver = find("chromedriver")
    if chrome is None or driver is None:
        raise h.SkipTest("chromium/chromedriver not installed (Debian packages chromium and "
                         "chromium-driver; tools/deps.sh installs them): the /ui browser "
                         "test did not run")
    nodes = c.start_many(3)
    c.wait_members(timeout=20)
    out = os.path.abspath(args.out or c.dir)
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="scuttle-ui-")
    wd = WebDriver(driver, chrome, work)
    try:
        wd.get("http://%s/ui/" % nodes[0].admin_addr)
        rows = ("return [...document.querySelectorAll('#members tbody tr')]"
                ".map(r => [r.dataset.name, r.cells[1].textContent, r.cells[5].textContent]);")
        h.wait_until(lambda: sorted(r[0] for r in wd.js(rows)) == sorted(n.name for n in nodes),
                     20, "the three members listed in the page")
        h.wait_until(lambda: all(r[1] == "alive" for r in wd.js(rows)), 20,
                     "every member shown alive")
        # A key written through another node's API: replicated to n00, pushed to the page
        # by /v1/watch, shown when its owner is selected.
        wd.js("const s = document.getElementById('owner'); s.value = arguments[0];"
              "s.dispatchEvent(new Event('change'));", nodes[1].name)
        nodes[1].put("ui/greeting", "hello from %s" % nodes[1].name)
        keys = ("return [...document.querySelectorAll('#keys tbody tr')]"
                ".map(r => [r.dataset.key, r.cells[1].textContent]);")
        h.wait_until(lambda: ["ui/greeting", "hello from %s" % nodes[1].name] in wd.js(keys),
                     20, "the written key in the key browser")
        h.check(wd.js("return document.getElementById('watch-state').textContent;") == "live",
                "the key browser's watch is not live")
        # Live update of the same key, then the plots have points.
        nodes[1].put("ui/greeting", "second")
        h.wait_until(lambda: ["ui/greeting", "second"] in wd.js(keys), 20,
                     "the key's new value in the page")
        h.wait_until(lambda: wd.js("return document.querySelector('#plot-rounds polyline')"
                                   " ? document.querySelector('#plot-rounds polyline')"
                                   ".getAttribute('points').split(' ').length : 0") >= 2,
                     20, "the rounds plot drawn")
        shot = os.path.join(out, "ui.png")
        size = wd.screenshot(shot)
        h.check(size > 1000, "screenshot of %d bytes" % size)
        print("screenshot: %s (%d bytes)" % (shot, size))
    finally:
        wd.close()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = h.base_args(__doc__)
    ap.add_argument("--out", help="directory for the screenshot (default: the test's dir)")
    args = ap.parse_args()
    return h.run(case_ui, args)


if __name__ == "__main__":
    sys.exit(main())

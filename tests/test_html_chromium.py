"""The HTML report in a real browser: headless Chromium driven through the Chrome DevTools protocol
(a websocket on loopback). The page must load with no console error and no failed resource, show its
traceability matrix, evidence drill-down and load charts, and a screenshot is written for a person to look at.
"""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import websocket
from reportbundle import copy_of, signed_bundle

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DEVTOOLS = re.compile(r"DevTools listening on (ws://127\.0\.0\.1:(\d+)/\S+)")
TIMEOUT_S = 60


class Browser:
    """Headless Chromium with one page, and the errors it reported while loading."""

    def __init__(self, profile_dir: Path):
        binary = next((shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n)), None)
        if binary is None:
            pytest.fail("headless Chromium is needed for this test: apt-get install -y chromium (see .ci/run)")
        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--disable-background-networking", "--disable-sync", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", "--remote-allow-origins=*", f"--user-data-dir={profile_dir}",
             "--window-size=1280,900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.ws = None
        self.next_id = 0
        self.events: list[dict] = []
        try:
            self._connect(self._port())
        except BaseException:
            self.close()  # never leave a browser behind
            raise

    def _connect(self, port: int) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
                pages = [t for t in json.load(answer) if t.get("type") == "page"]
            if pages or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert pages, "Chromium opened no page"
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=TIMEOUT_S)
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def _port(self) -> int:
        deadline = time.monotonic() + TIMEOUT_S
        seen = []
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            match = DEVTOOLS.search(line)
            if match:
                # keep reading what Chromium logs: a full pipe would stall the browser
                threading.Thread(target=self.proc.stderr.read, daemon=True).start()
                return int(match.group(2))
        pytest.fail("Chromium did not open its DevTools port: " + "".join(seen[-5:]))

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                assert "error" not in message, message["error"]
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str) -> None:
        if any(e.get("method") == event for e in self.events):
            return
        while True:
            message = json.loads(self.ws.recv())
            self.events.append(message)
            if message.get("method") == event:
                return

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        self.call("Runtime.evaluate", expression="1")  # drains the events queued behind the load

    def errors(self) -> list[str]:
        found = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append("exception: " + params["exceptionDetails"].get("text", ""))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console: " + " ".join(str(a.get("value", "")) for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        return found

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def screenshot(self, path: Path, selector: str | None = None) -> None:
        """The whole page, or the box of the first element matching `selector`."""
        params = {"format": "png", "captureBeyondViewport": True}
        if selector:
            box = self.evaluate(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                                ".getBoundingClientRect(); return {x: r.left + scrollX, y: r.top + scrollY, "
                                "width: r.width, height: r.height}; })()")
            params["clip"] = {**box, "scale": 1}
        shot = self.call("Page.captureScreenshot", **params)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            if self.ws is not None:
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return copy_of(signed_bundle().path, tmp_path_factory.mktemp("html"))


def test_the_error_detection_itself_works(browser, tmp_path):
    """Proof that the next test would see an error: a page with a script error and a missing image."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><img src="missing.png">'
                    '<script>console.error("boom"); undefinedFunction();</script></body></html>')
    browser.open(page.as_uri())
    errors = browser.errors()
    assert any("boom" in e for e in errors), errors
    assert any(e.startswith("exception:") for e in errors), errors
    assert any("missing.png" in e or "ERR_FILE_NOT_FOUND" in e for e in errors), errors


def test_report_loads_without_errors_and_shows_its_parts(browser, bundle, tmp_path):
    report = json.loads((bundle / "report.json").read_text())
    browser.open((bundle / "report.html").as_uri())
    assert browser.errors() == []
    whole = tmp_path / "report.png"
    browser.screenshot(whole)  # before the drill-down blocks are opened: the page a reviewer first sees
    facts = browser.evaluate("""(() => {
        document.querySelectorAll('details').forEach(d => d.open = true);
        const box = el => el ? el.getBoundingClientRect() : null;
        const chart = document.querySelector('svg.chart');
        return {
            title: document.title,
            verdict: document.querySelector('.verdict-banner .verdict-name').textContent.trim(),
            matrixRows: document.querySelectorAll('#traceability ~ div table.matrix tbody tr').length,
            matrixLinks: document.querySelectorAll('table.matrix a[href^="evidence/"]').length,
            charts: document.querySelectorAll('svg.chart').length,
            chartWidth: chart ? box(chart).width : 0,
            p95Lines: document.querySelectorAll('svg.chart polyline.series-p95').length,
            bars: document.querySelectorAll('svg.chart rect.bar').length,
            exchanges: document.querySelectorAll('.view-http .exchange').length,
            statuses: [...document.querySelectorAll('.view-http .http-status')].map(e => e.textContent.trim()),
            tls: document.querySelectorAll('.view-tls').length,
            signer: (document.querySelector('code.signer') || {}).textContent,
            brokenAnchors: [...document.querySelectorAll('a[href^="#"]')]
                .filter(a => !document.getElementById(a.getAttribute('href').slice(1))).length,
        };
    })()""")
    assert "non-conformant" in facts["verdict"] and report["run"]["id"] in facts["title"]
    assert facts["matrixRows"] == len(report["outcomes"])
    assert facts["matrixLinks"] >= sum(len(o["evidence"]) for o in report["outcomes"]) > 0
    assert facts["charts"] >= 2 and facts["chartWidth"] > 100 and facts["p95Lines"] >= 1 and facts["bars"] >= 1
    assert facts["exchanges"] > 0 and any(s.startswith("200") for s in facts["statuses"])
    assert facts["tls"] >= 1 and facts["signer"] == report["run"]["signer"]
    assert facts["brokenAnchors"] == 0
    drill = tmp_path / "report-load-evidence.png"
    browser.screenshot(drill, ".view-load")
    for shot in (whole, drill):
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000, shot
    # every evidence link of the page points at a file of the bundle
    hrefs = browser.evaluate("[...document.querySelectorAll('a[href^=\"evidence/\"]')].map(a => a.href)")
    assert hrefs and all(Path(urllib.request.url2pathname(h[len("file://"):])).is_file() for h in hrefs)


# where the page first shows a requirement together with its reason: the highest visible element holding both
FIRST_SHOWN = """((req, reason) => {
    const shown = [...document.querySelectorAll('body *')].filter(el => el.getClientRects().length
        && el.textContent.includes(req) && el.textContent.includes(reason)
        && ![...el.children].some(c => c.textContent.includes(req) && c.textContent.includes(reason)));
    const top = shown.length ? Math.min(...shown.map(el => el.getBoundingClientRect().top + scrollY)) : null;
    const item = shown.find(el => el.getBoundingClientRect().top + scrollY === top);
    const link = item && item.querySelector('a[href^="#"]');
    return {top, screen: innerHeight, link: link && link.getAttribute('href')};
})"""


def test_the_first_failure_is_read_on_the_first_screen(browser, bundle):
    """A reviewer sees, without scrolling, what failed: the first failed outcome's requirement and reason, with
    a link that leads to its evidence. Measured in the 1280x900 window, details blocks left as they open."""
    report = json.loads((bundle / "report.json").read_text())
    first = next(o for o in report["outcomes"] if o["status"] == "failed" and o["level"] == "SHALL")
    browser.open((bundle / "report.html").as_uri())
    facts = browser.evaluate(FIRST_SHOWN + f"({json.dumps(first['requirement'])}, {json.dumps(first['summary'][:60])})")
    assert facts["top"] is not None and facts["top"] < facts["screen"], facts
    # its link lands on the outcome's details, where the evidence is
    assert facts["link"], facts
    target = browser.evaluate(f"(document.getElementById({json.dumps(facts['link'][1:])}) || {{}}).textContent")
    assert any(path in target for path in first["evidence"]), facts

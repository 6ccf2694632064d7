"""End-to-end test of the mcp-gateway dashboard in headless Chromium (Selenium + chromedriver).

Run through scripts/ui-test.sh, which finds Chromium and chromedriver (and skips without
them). This script starts two gateways from MCP_GATEWAY_BIN on free loopback ports:

  open   auth none, two real MCP servers: the Rust test server (target/debug/examples/
         mcp_test_server: echo, add, ...) and the reference server-everything (npm, stdio);
  locked auth.strategy api-key, one server.

and checks, in a real browser, with the dashboard files embedded in the binary:
  - the overview shows both servers healthy;
  - the tools page finds tools by search (name and description);
  - the try-it form calls echo (a string) and add (numbers, sent as JSON numbers) and shows
    the results; a non-number is refused by the form before any call;
  - a call made while the requests page is open appears there without a reload, and its
    detail page opens;
  - the metrics page draws the per-tool table;
  - without a key the locked gateway shows the sign-in prompt and none of its data; a wrong
    key is refused; the right one shows the data; signing out asks again;
  - the browser console has no errors (JavaScript errors, failed loads other than the 401s
    of the locked gateway and the feature probes of the request pages);
and saves a screenshot of each page in target/ui-screenshots/ (not committed).

Prints one "N passed, N failed" line at the end; exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "target" / "ui-screenshots"
API_KEY = "ui-test-admin-key-7f3a"
WAIT = 20  # seconds any one expectation may take

PROCS: list[subprocess.Popen] = []


def say(msg: str) -> None:
    print(f"[ui-test] {msg}", flush=True)


# ---- gateways ----------------------------------------------------------------------------


def start_gateway(binary: Path, name: str, config: str, workdir: Path) -> str:
    """Starts `mcp-gateway start -c <config>` on a free port; returns its base URL."""
    cfg = workdir / f"{name}.yml"
    cfg.write_text(config)
    env = {k: v for k, v in os.environ.items() if k != "MCP_GATEWAY_UI_DIR"}
    if os.environ.get("UI_TEST_ASSETS_DIR"):
        # For working on the dashboard: serve the files from disk instead of the embedded ones.
        env["MCP_GATEWAY_UI_DIR"] = os.environ["UI_TEST_ASSETS_DIR"]
    env.setdefault("NO_COLOR", "1")
    log = open(workdir / f"{name}.log", "w")
    p = subprocess.Popen(
        [str(binary), "start", "-c", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=env,
        start_new_session=True,
    )
    PROCS.append(p)
    url: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert p.stdout is not None
        for line in p.stdout:
            m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
            if m and not url:
                url.append(m.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(60) or not url:
        raise RuntimeError(f"gateway {name} did not start; see {workdir / (name + '.log')}:\n" + (workdir / f"{name}.log").read_text()[-3000:])
    return url[0]


def stop_all() -> None:
    for p in PROCS:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.time() + 10
    for p in PROCS:
        try:
            p.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    PROCS.clear()


def http(url: str, body: dict | None = None, key: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), method="GET" if body is None else "POST")
    req.add_header("content-type", "application/json")
    if key:
        req.add_header("x-api-key", key)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def wait_healthy(base: str, n: int, key: str | None = None) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        status, v = http(f"{base}/api/v1/health", key=key)
        if status == 200 and v["servers"]["healthy"] == n:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{base}: {n} servers never became healthy: {v}")


# ---- the browser -------------------------------------------------------------------------


def browser(chromium: str, driver: str) -> webdriver.Chrome:
    o = Options()
    o.binary_location = chromium
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions", "--lang=en-US"]:
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(executable_path=driver), options=o)
    viewport(d, 1280, 800)
    return d


def viewport(d: webdriver.Chrome, w: int, h: int) -> None:
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": w < 600})


def until(d: webdriver.Chrome, what: str, fn, timeout: float = WAIT):
    """Waits for `fn(driver)` to be truthy; fails naming `what`."""
    try:
        return WebDriverWait(d, timeout, poll_frequency=0.1).until(lambda drv: fn(drv))
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {what}; page text:\n{page_text(d)[:1500]}") from None


def page_text(d: webdriver.Chrome) -> str:
    try:
        return d.find_element(By.TAG_NAME, "body").text
    except Exception:  # noqa: BLE001 - only for messages
        return "?"


def js(d: webdriver.Chrome, script: str, *args):
    return d.execute_script(script, *args)


def shot(d: webdriver.Chrome, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    # Let charts and fonts settle.
    time.sleep(0.3)
    d.save_screenshot(str(SHOTS / f"{name}.png"))


def go(d: webdriver.Chrome, url: str) -> None:
    d.get(url)


def field_input(d: webdriver.Chrome, name: str):
    """The control of the try-it form field labelled `name`."""
    label = until(d, f"the form field {name}", lambda drv: next((l for l in drv.find_elements(By.CSS_SELECTOR, "#try-form label.field-name") if l.text.split(" ")[0].strip(" *") == name), None))
    return d.find_element(By.ID, label.get_attribute("for"))


CONSOLE: list[dict] = []


def drain_console(d: webdriver.Chrome, allowed) -> list[str]:
    """Console entries at SEVERE level not matched by `allowed(entry)`."""
    bad = []
    for e in d.get_log("browser"):
        CONSOLE.append(e)
        if e.get("level") != "SEVERE":
            continue
        if allowed(e):
            continue
        bad.append(f"{e.get('source', '?')}: {e.get('message', '')}")
    return bad


def expected_probe(e: dict) -> bool:
    """A failed load the dashboard makes on purpose: learning whether the request log knows
    `?after=` and the per-request endpoint (older gateways answer 400 / 404 once)."""
    m = e.get("message", "")
    return e.get("source") == "network" and bool(
        re.search(r"/api/v1/requests\?[^ ]*after=[^ ]* - Failed to load resource: the server responded with a status of 400", m)
        or re.search(r"/api/v1/requests/\d+ - Failed to load resource: the server responded with a status of 404", m)
    )


# ---- the checks --------------------------------------------------------------------------


def check_overview(d, base):
    go(d, f"{base}/ui/")
    until(d, "the overview to count 2 of 2 servers healthy", lambda drv: "2 / 2" in (js(drv, "return document.getElementById('kpis')?.innerText") or ""))
    # The overview redraws every 2 s: read it in one script, not element by element.
    servers = "return [...document.querySelectorAll('.mini-list li[data-server]')].map((li) => [li.dataset.server, li.dataset.status])"
    until(d, "both servers listed healthy", lambda drv: sorted(map(tuple, js(drv, servers))) == [("everything", "healthy"), ("rust", "healthy")])
    until(d, "the calls chart", lambda drv: drv.find_elements(By.CSS_SELECTOR, ".chart-canvas"))
    until(d, "the top bar's gateway status", lambda drv: "healthy" in (js(drv, "return document.getElementById('top-status').innerText") or ""))
    shot(d, "overview")


def check_servers(d, base):
    go(d, f"{base}/ui/#/servers")
    until(d, "the servers table with both servers healthy", lambda drv: js(drv, "return document.querySelectorAll('#servers-table tr[data-status=healthy]').length") == 2)
    shot(d, "servers")
    js(d, "document.querySelector('#servers-table tr[data-server=rust] a').click()")
    until(d, "the rust server's page listing its tools", lambda drv: "add" in js(drv, "return [...document.querySelectorAll('.tool-li a')].map((a) => a.textContent)"))
    shot(d, "server-detail")
    go(d, f"{base}/ui/#/servers/everything")
    until(d, "server-everything's page listing its prompts and resources", lambda drv: js(drv, "return [...document.querySelectorAll('h2, h3, .card-title')].map((e) => e.textContent).join('|')").count("Prompts (") == 1 and "simple-prompt" in js(drv, "return document.body.textContent"))
    shot(d, "server-detail-items")


def tool_rows(d) -> list[str]:
    return js(d, "return [...document.querySelectorAll('.tool-row')].map((r) => r.dataset.tool)")


def check_tool_search(d, base):
    go(d, f"{base}/ui/#/tools")
    until(d, "the tool list", lambda drv: len(tool_rows(drv)) > 5)
    box = d.find_element(By.ID, "tool-search")

    def search(text: str) -> None:
        js(d, "arguments[0].value = ''; arguments[0].dispatchEvent(new Event('input'))", box)
        box.send_keys(text)

    search("echo")
    until(d, "the search for echo to find both echo tools", lambda drv: sorted(tool_rows(drv)) == ["everything__echo", "rust__echo"])
    search("sum of two")  # words of server-everything's get-sum description
    until(d, "the search by description", lambda drv: tool_rows(drv) == ["everything__get-sum"])
    search("add")
    until(d, "the search for add", lambda drv: "rust__add" in tool_rows(drv))
    shot(d, "tools")


def result_text(d) -> str:
    r = d.find_elements(By.CSS_SELECTOR, "#call-result [data-testid=result]")
    return r[0].text if r else ""


def check_try_echo(d, base):
    go(d, f"{base}/ui/#/tools/everything/echo")
    msg = "hello from the dashboard ✓ <b>not bold</b>"
    field_input(d, "message").send_keys(msg)
    d.find_element(By.ID, "call-tool").click()
    until(d, "the echo result", lambda drv: f"Echo: {msg}" in result_text(drv))
    # Text from the server is text: no element was made of the <b> in it.
    assert not d.find_elements(By.CSS_SELECTOR, "#call-result b b, #call-result pre b"), "result text was parsed as HTML"
    shot(d, "tool-echo")


def check_try_add(d, base):
    go(d, f"{base}/ui/#/tools/rust/add")
    a = field_input(d, "a")
    b = field_input(d, "b")
    a.send_keys("two")
    b.send_keys("4")
    d.find_element(By.ID, "call-tool").click()
    until(d, "the form to refuse a non-number", lambda drv: "not a number" in drv.find_element(By.ID, "try-form").text)
    assert result_text(d) == "", "a call was made with an invalid number"
    a.clear()
    a.send_keys("2.5")
    d.find_element(By.ID, "call-tool").click()
    until(d, "the add result 6.5", lambda drv: "6.5" in result_text(drv))
    sent = js(d, "const p = document.getElementById('args-sent'); return p && p.textContent")
    assert sent and json.loads(sent) == {"a": 2.5, "b": 4}, f"arguments sent: {sent!r}"
    # The JSON editor shows the same arguments, typed.
    d.find_element(By.CSS_SELECTOR, "#try-form .seg[data-mode=json]").click()
    assert json.loads(d.find_element(By.ID, "args-json").get_attribute("value")) == {"a": 2.5, "b": 4}
    shot(d, "tool-add")


def request_ids(d) -> list[int]:
    return [int(x) for x in js(d, "return [...document.querySelectorAll('.req-row[data-id]')].map((r) => r.dataset.id)")]


def check_requests_live(d, base):
    go(d, f"{base}/ui/#/requests")
    until(d, "the request log with the calls made so far", lambda drv: len(request_ids(drv)) >= 2)
    before = max(request_ids(d))
    js(d, "window.__noReload = 'still here'")
    status, v = http(f"{base}/api/v1/tools/call", {"tool": "add", "server": "rust", "arguments": {"a": 40, "b": 2}})
    assert status == 200, v
    until(d, "the new call to appear without a reload", lambda drv: max(request_ids(drv) or [0]) > before)
    assert js(d, "return window.__noReload") == "still here", "the page reloaded"
    top = js(d, "return document.querySelector('.req-row[data-id]').innerText")
    assert "add" in top and "ok" in top, top
    shot(d, "requests")
    js(d, "document.querySelector('.req-row[data-id]').click()")
    until(d, "the request's detail page", lambda drv: "Call" in page_text(drv) and "tools/call" in page_text(drv))
    text = page_text(d)
    assert "rust" in text and "add" in text, text[:500]
    shot(d, "request-detail")


def check_replay(d, base):
    status, v = http(f"{base}/api/v1/tools/call", {"tool": "add", "server": "rust", "arguments": {"a": 40, "b": 2}})
    assert status == 200, v
    status, log = http(f"{base}/api/v1/requests?tool=add&limit=1")
    original = log["requests"][0]["id"]
    go(d, f"{base}/ui/#/requests/{original}")
    until(d, "the detail with its captured arguments and the replay form", lambda drv: js(drv, "return !!document.getElementById('replay-args')") and '"a": 40' in page_text(drv))
    js(d, "const t = document.getElementById('replay-args'); t.value = '{\"a\": 1, \"b\": 2}'; t.dispatchEvent(new Event('input'))")
    js(d, "document.getElementById('replay').click()")
    until(d, "the replay's result and its diff from the original", lambda drv: js(drv, "return document.getElementById('replay-diff')?.innerText || ''").count("changed") == 1)
    diff = js(d, "return document.getElementById('replay-diff').innerText")
    assert "42" in diff and "3" in diff, diff
    status, log = http(f"{base}/api/v1/requests?tool=add&limit=1")
    assert log["requests"][0].get("replayOf") == original, log["requests"][0]
    shot(d, "request-replay")


def check_metrics(d, base):
    go(d, f"{base}/ui/#/metrics")
    until(d, "the per-tool metrics table", lambda drv: js(drv, "return !!document.querySelector('#tool-metrics tr[data-tool=add]')"))
    shot(d, "metrics")


def check_phone(d, base):
    viewport(d, 390, 844)
    try:
        go(d, f"{base}/ui/#/overview")
        until(d, "the overview on a phone-sized screen", lambda drv: "2 / 2" in (js(drv, "return document.getElementById('kpis')?.innerText") or ""))
        width = js(d, "return document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways on a phone ({width}px wide)"
        shot(d, "overview-phone")
        go(d, f"{base}/ui/#/requests")
        until(d, "the request log on a phone", lambda drv: len(request_ids(drv)) >= 1)
        shot(d, "requests-phone")
    finally:
        viewport(d, 1280, 800)


def check_locked(d, base):
    go(d, f"{base}/ui/")
    until(d, "the sign-in prompt", lambda drv: drv.find_elements(By.ID, "login-form"))
    time.sleep(1)  # anything that would leak would have been drawn by now
    text = page_text(d)
    for leak in ["rust", "healthy", "Servers healthy"]:
        assert leak not in text, f"{leak!r} shown without a credential:\n{text}"
    assert not d.find_elements(By.ID, "kpis")
    # Every page stays behind the prompt.
    go(d, f"{base}/ui/#/tools")
    until(d, "the sign-in prompt on the tools page", lambda drv: drv.find_elements(By.ID, "login-form"))
    assert not d.find_elements(By.CSS_SELECTOR, ".tool-row")
    shot(d, "login")
    secret = d.find_element(By.ID, "login-secret")
    secret.send_keys("not-the-key")
    d.find_element(By.ID, "login-submit").click()
    until(d, "a wrong key to be refused", lambda drv: "refused" in drv.find_element(By.ID, "login-form").text)
    assert js(d, "return sessionStorage.length") == 0
    secret.clear()
    secret.send_keys(API_KEY)
    d.find_element(By.ID, "login-submit").click()
    until(d, "the tools page after signing in", lambda drv: "rust__add" in tool_rows(drv))
    assert js(d, "return localStorage.getItem('mcp-gateway.credential')") is None
    assert API_KEY in (js(d, "return sessionStorage.getItem('mcp-gateway.credential')") or "")
    go(d, f"{base}/ui/#/overview")
    until(d, "the overview with the key", lambda drv: "1 / 1" in (js(drv, "return document.getElementById('kpis')?.innerText") or ""))
    shot(d, "overview-signed-in")
    d.find_element(By.ID, "sign-out").click()
    until(d, "the sign-in prompt after signing out", lambda drv: drv.find_elements(By.ID, "login-form"))
    assert js(d, "return sessionStorage.getItem('mcp-gateway.credential')") is None


def expected_unauthorized(base):
    def ok(e: dict) -> bool:
        m = e.get("message", "")
        return expected_probe(e) or (e.get("source") == "network" and m.startswith(base) and "status of 401" in m)

    return ok


# ---- main ------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chromium", required=True)
    ap.add_argument("--driver", required=True)
    args = ap.parse_args()

    binary = Path(os.environ.get("MCP_GATEWAY_BIN", ROOT / "target/debug/mcp-gateway"))
    if not binary.is_absolute():
        binary = ROOT / binary
    test_server = binary.parent / "examples" / "mcp_test_server"
    everything = ROOT / "tests/peers/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
    for p, how in [
        (binary, "cargo build --bins (or set MCP_GATEWAY_BIN)"),
        (test_server, "cargo build --examples"),
        (everything, "scripts/install-peers.sh"),
    ]:
        if not p.exists():
            say(f"FAILED: {p} is missing: {how}")
            return 1

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    shutil.rmtree(SHOTS, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="mcp-gateway-ui-test-"))
    rust = f"""  - id: rust
    command: {json.dumps(str(test_server))}
"""
    ev = f"""  - id: everything
    command: node
    args: [{json.dumps(str(everything))}, "stdio"]
    tags: [reference]
"""
    common = "host: 127.0.0.1\nport: 0\nshutdownTimeout: 2000\nlogLevel: warn\n"
    passed, failed = 0, []
    d = None
    t0 = time.time()
    try:
        open_url = start_gateway(binary, "open", common + "monitor: {captureBodies: all}\nservers:\n" + rust + ev, work)
        locked_url = start_gateway(
            binary,
            "locked",
            common + f"auth:\n  strategy: api-key\n  apiKeys:\n    - {{name: ui-admin, key: {API_KEY}, roles: [admin]}}\nservers:\n" + rust,
            work,
        )
        wait_healthy(open_url, 2)
        wait_healthy(locked_url, 1, key=API_KEY)
        say(f"gateways at {open_url} (auth none) and {locked_url} (api-key); screenshots in {SHOTS}")
        d = browser(args.chromium, args.driver)
        checks = [
            ("overview shows both servers healthy", check_overview, open_url, expected_probe),
            ("servers page and a server's page", check_servers, open_url, expected_probe),
            ("tools page finds tools by search", check_tool_search, open_url, expected_probe),
            ("try-it calls echo with a string", check_try_echo, open_url, expected_probe),
            ("try-it calls add with numbers", check_try_add, open_url, expected_probe),
            ("a new call appears in the request log live", check_requests_live, open_url, expected_probe),
            ("request detail: replay with edited arguments and the diff", check_replay, open_url, expected_probe),
            ("metrics page", check_metrics, open_url, expected_probe),
            ("phone-sized screen", check_phone, open_url, expected_probe),
            ("api-key: sign-in prompt, no data without the key", check_locked, locked_url, expected_unauthorized(locked_url)),
        ]
        for name, fn, base, allowed in checks:
            start = time.time()
            try:
                fn(d, base)
                bad = drain_console(d, allowed)
                assert not bad, "browser console errors:\n  " + "\n  ".join(bad)
                passed += 1
                say(f"ok   {name} ({time.time() - start:.1f}s)")
            except Exception as e:  # noqa: BLE001 - every check is reported
                failed.append(name)
                say(f"FAIL {name}: {e}")
                traceback.print_exc(limit=3)
                try:
                    shot(d, "failed-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"))
                    drain_console(d, lambda _e: False)
                except Exception:  # noqa: BLE001
                    pass
    except Exception as e:  # noqa: BLE001 - setup failures fail the run loudly
        failed.append("setup")
        say(f"FAIL setup: {e}")
        traceback.print_exc()
    finally:
        if d is not None:
            try:
                d.quit()
            except Exception:  # noqa: BLE001
                pass
        stop_all()
    (SHOTS / "console.json").write_text(json.dumps(CONSOLE, indent=1)) if SHOTS.exists() else None
    say(f"done in {time.time() - t0:.0f}s; gateway logs in {work}")
    print(f"ui-test: {passed} passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""End to end: serve the app with ``bau.app_launcher``'s command on 127.0.0.1 and open every page in
headless Chromium (Debian's ``/usr/bin/chromium`` driven by Playwright).

Each page must render its main element with no exception box; the t-SNE's hover must show the
point's image. A screenshot of each page is saved in the test's temp folder and copied to
``/tmp/app_shots/``. Without Chromium or Playwright the test is skipped, except under CI
(``CI`` set), where it fails: ``scripts/install_browser.sh`` installs both.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from bau.app_launcher import streamlit_command
from bau.core.config import load_config
from bau.engine.trainer import Trainer
from tests.helpers import tiny_overrides

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = "/tmp/app_shots"
PAGE_TIMEOUT_MS = 120_000


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _require_browser():
    problems = []
    if not os.path.exists(CHROMIUM):
        problems.append(f"{CHROMIUM} is missing (apt-get install chromium, or scripts/install_browser.sh)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("playwright is not installed (pip install playwright)")
    if problems:
        message = "browser test needs: " + "; ".join(problems)
        if _in_ci():
            pytest.fail(message + " -- CI is set, so this is a failure, not a skip")
        pytest.skip(message)


def test_missing_browser_skips_locally_and_fails_under_ci(monkeypatch):
    me = sys.modules[__name__]
    monkeypatch.setattr(me, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="/nonexistent/chromium is missing"):
        me._require_browser()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        me._require_browser()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        me._require_browser()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_synth, tmp_path_factory):
    _require_browser()
    base = tmp_path_factory.mktemp("browser")
    runs = base / "runs"
    cfg = load_config(None, tiny_overrides(tiny_synth))
    Trainer(cfg, str(runs / "solo"), progress=False, echo=lambda s: None).fit()
    port = _free_port()
    log = open(base / "server.log", "w")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = streamlit_command(str(runs), port=port, extra_args=["--server.headless", "true",
                                                              "--server.fileWatcherType", "none"])
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=repo)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            log.close()
            pytest.fail(f"streamlit did not start: {(base / 'server.log').read_text()[-2000:]}")
        time.sleep(0.3)
    yield {"url": url, "dir": base, "log": base / "server.log"}
    proc.terminate()
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _wait_idle(page):
    """Until the script run is over (no 'Running...' status widget) and every image has loaded."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=stStatusWidget]')"
        " && [...document.images].every(i => i.complete)", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_timeout(700)  # let Vega finish drawing


def _ready(title, *conditions):
    """JS predicate: the page's h1 reads ``title`` and every condition holds."""
    checks = [f"document.querySelector('h1')?.innerText.includes('{title}')", *conditions]
    return "() => " + " && ".join(f"({c})" for c in checks)


def _count(selector, at_least):
    return f"document.querySelectorAll('{selector}').length >= {at_least}"


def _check_page(page, server, name, ready_js):
    """Wait for the page's main elements, then: no exception box, screenshot saved and copied."""
    page.wait_for_function(ready_js, timeout=PAGE_TIMEOUT_MS)
    _wait_idle(page)
    assert page.evaluate(ready_js), f"{name}: main elements gone after the run finished"
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{name}: {exceptions.first.inner_text()}\n{server['log'].read_text()[-2000:]}"
    _screenshot(page, server, name)


def _screenshot(page, server, name):
    shot = server["dir"] / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    os.makedirs(SHOTS, exist_ok=True)
    shutil.copy(shot, os.path.join(SHOTS, f"{name}.png"))


def _open(page, title):
    """Switch page through the sidebar navigation (one browser session, like a user)."""
    page.locator('[data-testid="stSidebarNavLink"]', has_text=title).click()


def test_every_page_renders_in_chromium(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1700})
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(server["url"])
            _check_page(page, server, "runs",
                        _ready("Runs", _count('[data-testid="stDataFrame"]', 2), _count(".vega-embed", 2)))

            _open(page, "Geometry")
            _check_page(page, server, "geometry",
                        _ready("Geometry", _count('[data-testid="stMetric"]', 3),
                               _count("g.mark-symbol.role-mark path", 10)))
            # hovering a t-SNE point shows its image (a data URL inside the chart: works offline)
            box = page.locator("g.mark-symbol.role-mark path").last.bounding_box()
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(x - 30, y - 30)
            page.mouse.move(x, y, steps=10)
            page.wait_for_selector('#vg-tooltip-element img[src^="data:image/jpeg;base64,"]', state="attached",
                                   timeout=10_000)
            page.screenshot(path=str(server["dir"] / "geometry_hover.png"))
            shutil.copy(server["dir"] / "geometry_hover.png", os.path.join(SHOTS, "geometry_hover.png"))

            _open(page, "Retrieval")  # query + top 10 + 5 Grad-CAM panels
            _check_page(page, server, "retrieval", _ready("Retrieval", _count('[data-testid="stImage"]', 16)))

            _open(page, "Augmentations")  # 8 views of the chosen image + a 4x2 batch, originals and augmented
            _check_page(page, server, "augmentations",
                        _ready("Augmentations", _count('[data-testid="stImage"]', 32)))
        finally:
            browser.close()

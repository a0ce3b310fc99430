"""JupyterLab in headless Debian chromium, driven by Playwright (see shared/spec/testing.md).

One JupyterLab server and one browser per test module; each test gets its own
browser context, page and a notebook with a unique name (so Lab never
reattaches an old kernel).  The kernel inherits the server's environment,
which points ipyg4f at the local protocol server (``OPENAI_BASE_URL``) and at
a private history directory (``IPYG4F_DATA_DIR``).

They are skipped, with the reason, when playwright or /usr/bin/chromium is
missing, unless ``IPYG4F_REQUIRE_BROWSER=1`` (CI) makes that a failure.

A failing test leaves a screenshot in the directory printed at the end of the
run (``IPYG4F_SHOTS`` to choose it).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
SERVER_START_TIMEOUT = 60.0

try:
    import playwright.sync_api  # noqa: F401
    _PLAYWRIGHT = True
except ImportError:
    _PLAYWRIGHT = False

_JUPYTER = Path(sys.executable).with_name("jupyter")


def missing() -> str:
    """Why the browser tests cannot run here ('' when they can)."""
    if not _PLAYWRIGHT:
        return "playwright is not installed (pip install 'ipyg4f[browser]')"
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    if not _JUPYTER.exists():
        return f"{_JUPYTER} is missing (pip install jupyterlab)"
    return ""


def required() -> bool:
    """CI sets IPYG4F_REQUIRE_BROWSER=1: there a missing browser is a failure, not a skip."""
    return os.environ.get("IPYG4F_REQUIRE_BROWSER", "") not in ("", "0")


def pytest_collection_modifyitems(config, items):
    reason = missing()
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)
            if reason and not required():
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server in a temporary root, with a fresh config/runtime/IPython dir."""

    def __init__(self, env: dict[str, str]):
        self.tmp = Path(tempfile.mkdtemp(prefix="ipyg4f-lab-"))
        self.root = self.tmp / "root"
        self.data = self.tmp / "data"
        for d in (self.root, self.data, self.tmp / "config" / "labconfig", self.tmp / "runtime", self.tmp / "ipython"):
            d.mkdir(parents=True, exist_ok=True)
        (self.tmp / "config" / "labconfig" / "page_config.json").write_text(json.dumps(
            {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
        self.token = secrets.token_hex(16)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env,
                    "JUPYTER_CONFIG_DIR": str(self.tmp / "config"),
                    "JUPYTER_RUNTIME_DIR": str(self.tmp / "runtime"),
                    "IPYTHONDIR": str(self.tmp / "ipython"),
                    "IPYG4F_DATA_DIR": str(self.data),
                    "PYTHONUNBUFFERED": "1"}
        for name in ("OPENAI_API_KEY", "JPY_SESSION_NAME"):
            self.env.pop(name, None)
        self.log = open(self.tmp / "server.log", "wb")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Lab":
        self.proc = subprocess.Popen(
            [str(_JUPYTER), "lab", "--no-browser", f"--port={self.port}", "--ServerApp.ip=127.0.0.1",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
             "--ServerApp.port_retries=0", "--allow-root", "--LabApp.news_url=None",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             "--LabApp.expose_app_in_browser=True", "--JupyterNotebookApp.expose_app_in_browser=True"],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited ({self.proc.returncode}):\n{self.server_log()}")
            try:
                self.api("GET", "/api/status")
                return self
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter lab did not answer:\n{self.server_log()}") from None
                time.sleep(0.1)  # polling a starting server, the only way to know it is up

    def server_log(self) -> str:
        self.log.flush()
        return (self.tmp / "server.log").read_text(errors="replace")[-4000:]

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else {}

    def notebook(self, *cells: str) -> str:
        """Create a notebook with these code cells under a unique name; return its name."""
        name = f"nb-{uuid.uuid4().hex[:10]}.ipynb"
        content = {"cells": [{"cell_type": "code", "execution_count": None, "id": uuid.uuid4().hex[:8],
                              "metadata": {}, "outputs": [], "source": src} for src in cells],
                   "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                               "language": "python"}},
                   "nbformat": 4, "nbformat_minor": 5}
        self.api("PUT", f"/api/contents/{name}", {"type": "notebook", "format": "json", "content": content})
        return name

    def open_url(self, name: str, app: str = "lab") -> str:
        """The notebook's page in JupyterLab (``lab``) or Notebook 7 (``notebook``)."""
        if app == "notebook":
            return f"{self.url}/notebooks/{name}?token={self.token}"
        workspace = name.removesuffix(".ipynb")
        return f"{self.url}/lab/workspaces/{workspace}/tree/{name}?token={self.token}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for kernel in self._kernels():
                try:
                    self.api("DELETE", f"/api/kernels/{kernel}")
                except Exception:
                    pass
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _kernels(self) -> list[str]:
        try:
            return [k["id"] for k in self.api("GET", "/api/kernels")]
        except Exception:
            return []


@pytest.fixture(scope="module")
def lab(_protocol_server_session):
    if reason := missing():
        pytest.fail(f"IPYG4F_REQUIRE_BROWSER is set but {reason}", pytrace=False)
    server = Lab({"OPENAI_BASE_URL": f"{_protocol_server_session.base_url}/v1"}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def shots_dir(tmp_path_factory):
    path = Path(os.environ.get("IPYG4F_SHOTS") or tmp_path_factory.mktemp("browser-shots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def page(browser, request, shots_dir):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.errors = errors
    yield pg
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        shot = shots_dir / f"{request.node.name}.png"
        try:
            pg.screenshot(path=str(shot), full_page=True)
            print(f"\nscreenshot of the failure: {shot}")
        except Exception as exc:  # the page may be gone; the failure itself is what matters
            print(f"\nno screenshot ({exc})")
    context.close()

"""Driving a notebook in JupyterLab 4 / Notebook 7 from Playwright: open, run cells, themes, screenshots.

Shared by the browser test modules (the fixtures ``lab``, ``browser``, ``page`` are in conftest.py).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"

KERNEL_READY = """() => {
    const k = window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel;
    return !!k && k.connectionStatus === 'connected' && k.status === 'idle';
}"""


def expect():
    from playwright.sync_api import expect as _expect

    return _expect


def open_notebook(page, lab, *cells: str, app: str = "lab"):
    name = lab.notebook(*cells)
    page.goto(lab.open_url(name, app))
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    page.wait_for_function(KERNEL_READY, timeout=60_000)
    return name


def cell(page, index: int):
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def start_cell(page, index: int, until: str = r"\[\*\]:"):
    """Shift+Enter in the cell; wait until its prompt matches ``until`` (default ``[*]:``, running)."""
    c = cell(page, index)
    c.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    expect()(c.locator(".jp-InputPrompt")).to_have_text(re.compile(until))
    return c


def run_cell(page, index: int):
    """Run the cell and wait until it has finished (``[n]:``)."""
    return start_cell(page, index, until=r"\[\d+\]:")


def assert_widgets_render(page):
    body = page.locator("body")
    expect()(body).not_to_contain_text("Error displaying widget")
    expect()(body).not_to_contain_text("Loading widget...")


def set_theme(page, theme: str):
    """Switch Lab's theme ('JupyterLab Light', 'JupyterLab Dark'); wait until it is applied and the
    splash screen Lab shows meanwhile has gone."""
    page.evaluate("(theme) => { window.jupyterapp.commands.execute('apputils:change-theme', {theme}); }", theme)
    page.wait_for_function("(theme) => document.body.dataset.jpThemeName === theme"
                           " && !document.getElementById('jupyterlab-splash')", arg=theme)


def screenshot(locator, shots_dir: Path, name: str, *, docs: bool = False) -> Path:
    """Save a screenshot to the screenshot directory; a docs one also to ``docs/<name>``, but only
    with ``IPYG4F_UPDATE_SCREENSHOTS=1`` (so a plain test run leaves the work tree clean)."""
    path = shots_dir / name
    locator.screenshot(path=str(path))
    if docs and os.environ.get("IPYG4F_UPDATE_SCREENSHOTS"):
        (DOCS / name).write_bytes(path.read_bytes())
    return path

"""A real terminal IPython shell with ipyg4f loaded, its history in a temporary folder, for in-process tests."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator


@contextlib.contextmanager
def chat_shell(tmp_path: Any, monkeypatch: Any, use: str, env: dict[str, str] | None = None) -> Iterator[Any]:
    """The shell, ``%chat use {use}`` done; ``env`` set for the test; the window cache forgotten (a session's
    server keeps its URL from test to test); unloaded at the end, and its ``ChatConfig`` settings as they were:
    ``%config`` writes into the shell's own config, which outlives the extension (and the test)."""
    import copy

    from IPython.terminal.interactiveshell import TerminalInteractiveShell
    from traitlets.config import Config

    from ipyg4f.pricing import window

    monkeypatch.setenv("IPYG4F_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    window.forget()
    shell = TerminalInteractiveShell.instance()
    saved = Config(copy.deepcopy(dict(shell.config.get("ChatConfig", {}))))
    shell.run_line_magic("load_ext", "ipyg4f")
    shell.run_line_magic("config", f"ChatConfig.history_path = {str(tmp_path / 'h.sqlite3')!r}")
    shell.run_line_magic("chat", f"use {use}")
    try:
        yield shell
    finally:
        shell.run_line_magic("unload_ext", "ipyg4f")
        shell.config.ChatConfig = saved


def chat_cell(shell: Any, options: str, body: str) -> BaseException | None:
    """Run ``%%chat options`` with ``body``; the exception it raised, if any."""
    result = shell.run_cell(f"%%chat {options}\n{body}", store_history=True)
    return result.error_in_exec or result.error_before_exec

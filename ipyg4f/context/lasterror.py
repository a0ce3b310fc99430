"""The last exception of the session as an attachment (``--error``, ``%chat fix``).

Its type and message, the traceback trimmed to the user's own frames, and the
source of the cell that raised (cells are recognised by the shell's own file
names and read back with :mod:`linecache`).
"""

from __future__ import annotations

import linecache
import sys
import traceback
from typing import Any

from .values import Attachment, ContextError, fit, shorten

#: shell id -> the last real error a cell of that shell raised, and the hook that saw it (see :func:`track`)
_seen: dict[int, BaseException] = {}
_hooks: dict[int, Any] = {}
#: shell id -> {execution count: "TypeError: message"}: which cell raised what (the agent's ``read_cells``)
_cells: dict[int, dict[int, str]] = {}


def real_error(exc: BaseException | None) -> bool:
    """An error worth explaining: not an interrupt, a usage error, or a chat cell's own failure."""
    from IPython.core.error import UsageError

    from ..errors import ChatFailed

    return exc is not None and not isinstance(exc, (KeyboardInterrupt, SystemExit, UsageError, ChatFailed))


def track(shell: Any) -> None:
    """Remember the last real error of the shell's cells, so that an interrupted (or failed) chat cell
    run after it, which replaces ``sys.last_value``, does not hide it from ``%chat fix``."""
    def remember(result: Any) -> None:
        exc = result.error_in_exec or result.error_before_exec
        if real_error(exc):
            _seen[id(shell)] = exc
        count = getattr(result, "execution_count", None)
        if exc is not None and count:
            _cells.setdefault(id(shell), {})[count] = f"{type(exc).__name__}: {shorten(str(exc), 200)}"

    if id(shell) not in _hooks:
        _hooks[id(shell)] = remember
        shell.events.register("post_run_cell", remember)


def untrack(shell: Any) -> None:
    """Undo :func:`track`."""
    hook = _hooks.pop(id(shell), None)
    if hook is not None:
        shell.events.unregister("post_run_cell", hook)
    _seen.pop(id(shell), None)
    _cells.pop(id(shell), None)


def cell_errors(shell: Any) -> dict[int, str]:
    """Which executed cell raised what, since :func:`track` (``{execution count: "Type: message"}``)."""
    return _cells.get(id(shell), {})


def last_error(shell: Any, budget: int) -> Attachment:
    """The last real exception of this session (type, message, your frames, the cell's source)."""
    exc = getattr(sys, "last_value", None)
    if not real_error(exc):
        exc = _seen.get(id(shell))
    if exc is None:
        raise ContextError("no error to attach: run the cell that fails first")
    text, cut = fit(describe_error(exc, shell), budget)
    return Attachment("last error", type(exc).__name__, text, cut=cut)


def _cell_name(shell: Any, filename: str) -> str | None:
    """``In[3]`` when ``filename`` is a cell of this shell, else None."""
    named = getattr(getattr(shell, "compile", None), "format_code_name", None)
    found = named(filename) if named is not None else None
    return found[1] if found else None


def describe_error(exc: BaseException, shell: Any) -> str:
    """Type and message, the traceback trimmed to the user's frames, the source of the cell that raised."""
    message = exc.msg if isinstance(exc, SyntaxError) and exc.msg else str(exc)  # without the cell's file name
    lines = [f"{type(exc).__name__}: {shorten(message, 500)}"]
    cell_file = None
    if isinstance(exc, SyntaxError):
        cell_file = exc.filename
        if exc.text:
            lines.append(f"  line {exc.lineno}: {exc.text.rstrip()}")
            if exc.offset:
                lines.append("  " + " " * (len(f"line {exc.lineno}: ") + exc.offset - 1) + "^")
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if _cell_name(shell, f.filename) or not _is_library(f.filename)]
    if mine:
        hidden = len(frames) - len(mine)
        left_out = f"; {hidden} library frame{'s' if hidden > 1 else ''} left out" if hidden else ""
        lines.append(f"Traceback (your frames{left_out}):")
        for frame in mine:
            where = _cell_name(shell, frame.filename) or frame.filename
            lines.append(f'  File "{where}", line {frame.lineno}, in {frame.name}')
            if frame.line:
                lines.append(f"    {frame.line.strip()}")
        cell_file = next((f.filename for f in reversed(mine) if _cell_name(shell, f.filename)), cell_file)
    if cell_file and (source := "".join(linecache.getlines(cell_file))):
        lines.append(f"Source of the cell that raised ({_cell_name(shell, cell_file) or 'cell'}):")
        lines.append(source.rstrip())
    return "\n".join(lines)


def _is_library(filename: str) -> bool:
    import sysconfig

    if filename.startswith("<") or "site-packages" in filename or "dist-packages" in filename:
        return True
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sysconfig.get_paths().get("stdlib", "")}
    return any(root and filename.startswith(root) for root in roots)

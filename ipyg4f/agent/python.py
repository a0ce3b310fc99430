"""``run_python(code)``: the model's code run in the user's namespace, on the calling thread.

The code goes through the shell's input transformers (so ``%magic`` and ``!cmd``
lines work as in a cell), then runs like a cell: every statement, then the last
one's value if it is an expression.  What it prints is shown in the cell *and*
kept (stdout and stderr, in order); displays go to the cell as usual.  The model
receives what it printed, the last value's ``repr`` or the exception (type,
message and the frames of its own code), within a character budget.  A
``KeyboardInterrupt`` (the user's interrupt) is not caught: it stops the loop.
No cell events fire and nothing enters ``In`` / ``Out``: the code is the
model's, not a cell of the notebook.
"""

from __future__ import annotations

import ast
import itertools
import linecache
import sys
import threading
import traceback
from contextlib import contextmanager
from typing import Any, Iterator

from ..context.values import fit, shorten
from .tool import PYTHON, Tool, ToolOutput

__all__ = ["python_tool", "run_python", "shown_displays"]

#: most displays of one run kept to be shown again in its step's block, and the largest one kept
MAX_DISPLAYS, MAX_DISPLAY_BYTES = 10, 2_000_000

_runs = itertools.count(1)


def python_tool(shell: Any, budget: int = 4000) -> Tool:
    """The ``run_python`` tool over ``shell``'s namespace, its results within ``budget`` characters."""
    return Tool("run_python",
                "Run Python code in the user's live session (their variables are there; what you define stays). "
                "Returns what it printed, the value of its last expression, or the error.",
                {"type": "object", "properties": {"code": {"type": "string", "description": "Python code to run"}},
                 "required": ["code"], "additionalProperties": False},
                lambda arguments: _run_shown(arguments["code"], shell, budget), PYTHON)


def _run_shown(code: str, shell: Any, budget: int) -> ToolOutput:
    with shown_displays(shell) as displays:
        text = run_python(code, shell.user_ns, shell, budget)
    return ToolOutput(text, tuple(displays))


@contextmanager
def shown_displays(shell: Any) -> Iterator[list[dict[str, Any]]]:
    """What ``shell`` displays inside the block (still shown as usual): a list of ``{"data", "metadata"}``,
    updates of earlier displays and outsized bundles left out."""
    publisher = getattr(shell, "display_pub", None)
    kept: list[dict[str, Any]] = []
    if publisher is None:
        yield kept
        return
    original = publisher.publish

    def publish(data: Any, metadata: Any = None, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("update") and isinstance(data, dict) and len(kept) < MAX_DISPLAYS \
                and sum(len(str(v)) for v in data.values()) <= MAX_DISPLAY_BYTES:
            kept.append({"data": dict(data), "metadata": dict(metadata or {})})
        return original(data, metadata, *args, **kwargs)

    publisher.publish = publish
    try:
        yield kept
    finally:
        if publisher.__dict__.get("publish") is publish:
            del publisher.publish


def run_python(code: str, namespace: dict[str, Any], shell: Any = None, budget: int = 4000) -> str:
    """Run ``code`` in ``namespace``; what it printed, its last value's repr or its error, as text."""
    if shell is not None:
        code = shell.transform_cell(code)
    filename = f"<agent-{next(_runs)}>"
    try:
        tree = ast.parse(code, filename)
    except SyntaxError as exc:
        return fit(f"SyntaxError: {exc.msg} (line {exc.lineno})" + (f": {exc.text.strip()}" if exc.text else ""),
                   budget)[0]
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)  # tracebacks show the lines
    printed = _Capture(budget)
    result, error = None, None
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = printed.tee(stdout), printed.tee(stderr)
    try:
        exec(compile(tree, filename, "exec", dont_inherit=True), namespace)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), filename, "eval", dont_inherit=True), namespace)
            if value is not None:
                result = repr(value)
    except (Exception, SystemExit) as exc:
        error = _error(exc, filename)
    finally:  # put back what was there, unless someone (another thread's cell) replaced ours meanwhile
        if isinstance(sys.stdout, _Tee) and sys.stdout._capture is printed:
            sys.stdout = stdout
        if isinstance(sys.stderr, _Tee) and sys.stderr._capture is printed:
            sys.stderr = stderr
    parts = []
    if printed.text:
        parts.append("printed:\n" + printed.text + ("\n[… more printed, not kept]" if printed.lost else ""))
    if result is not None:
        parts.append(f"result: {result}")
    if error is not None:
        parts.append(error)
    return fit("\n".join(parts) or "done (no output, no value)", budget)[0]


def _error(exc: BaseException, filename: str) -> str:
    """``Type: message`` and the frames of the model's code (the rest is ours or a library's)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename][-5:]
    lines = [f"error: {type(exc).__name__}: {shorten(str(exc), 500)}"]
    for frame in frames:
        lines.append(f"  line {frame.lineno}" + (f": {frame.line.strip()}" if frame.line else ""))
    return "\n".join(lines)


class _Capture:
    """What the code prints, kept up to a limit while it still reaches the cell."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pieces: list[str] = []
        self.size = 0
        self.lost = False

    @property
    def text(self) -> str:
        return "".join(self.pieces).rstrip("\n")

    def keep(self, text: str) -> None:
        room = self.limit - self.size
        if len(text) > room:
            self.lost = True
            text = text[:max(room, 0)]
        if text:
            self.pieces.append(text)
            self.size += len(text)

    def tee(self, stream: Any) -> Any:
        return _Tee(stream, self)


class _Tee:
    """A stream that writes through to ``stream`` (the cell's) and keeps a copy."""

    def __init__(self, stream: Any, capture: _Capture) -> None:
        self._stream, self._capture = stream, capture
        self._thread = threading.get_ident()  # what other threads print is theirs, not the model's code's

    def write(self, text: str) -> int:
        if threading.get_ident() == self._thread:
            self._capture.keep(text)
        return self._stream.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

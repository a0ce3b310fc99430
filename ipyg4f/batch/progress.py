"""How a batch shows its progress: a throttled callback, then a widget bar or one text line, then a summary.

``on_progress(done, failed, total, rate, eta)`` is called at most
:data:`RATE` times a second (plus once at the end) from the thread that waits
for the batch.  :func:`renderer` picks the display: an ipywidgets bar in a
kernel (ipywidgets is imported only there), one updating text line elsewhere
(terminal IPython, a script).  :func:`report` is the closing line and, when
items failed, a short table of the first failures with their reasons.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable

from ..render.stream import Throttle

__all__ = ["Progress", "Throttled", "RATE", "renderer", "WidgetBar", "Line", "TextLine", "describe", "duration", "report"]

#: most progress updates per second
RATE = 10.0
#: failures listed under the summary
SHOWN_FAILURES = 5


@dataclass(frozen=True)
class Progress:
    done: int  #: answered (from the store or now)
    failed: int
    total: int
    rate: float  #: items finished per second since the first request
    eta: float | None  #: seconds left at that rate (None: not known yet)


class Throttled:
    """Calls ``callback(done, failed, total, rate, eta)`` at most ``rate`` times a second; ``final`` always."""

    def __init__(self, callback: Callable[..., Any], rate: float = RATE):
        self.callback = callback
        self.throttle = Throttle(rate)
        self.last: Progress | None = None

    def __call__(self, progress: Progress, final: bool = False) -> None:
        if not final and (progress == self.last or not self.throttle.ready()):
            return
        self.throttle.mark()
        self.last = progress
        self.callback(progress.done, progress.failed, progress.total, progress.rate, progress.eta)


def describe(p: Progress) -> str:
    """``40/100 done · 2 failed · 12.3/s · 5 s left``."""
    parts = [f"{p.done}/{p.total} done"]
    if p.failed:
        parts.append(f"{p.failed} failed")
    if p.rate:
        parts.append(f"{p.rate:.1f}/s")
    if p.eta is not None and p.done + p.failed < p.total:
        parts.append(f"{duration(p.eta)} left")
    return " · ".join(parts)


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 10 min``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


class WidgetBar:
    """One ipywidgets progress bar with a label, updated in place (the kernel's display)."""

    def __init__(self, total: int):
        import ipywidgets as w
        from IPython.display import display

        self.bar = w.IntProgress(value=0, min=0, max=max(total, 1), bar_style="info",
                                 layout=w.Layout(width="40%"))
        self.label = w.HTML(value=f"0/{total} done")
        self.box = w.HBox([self.bar, self.label])
        display(self.box)

    def __call__(self, done: int, failed: int, total: int, rate: float, eta: float | None) -> None:
        self.bar.value = done + failed
        self.bar.bar_style = "warning" if failed else "info"
        self.label.value = describe(Progress(done, failed, total, rate, eta))

    def close(self, result: Any) -> None:
        self.bar.bar_style = "success" if not result.errors and not result.pending else "warning"


class Line:
    """One text line rewritten in place (``\\r``): terminal IPython, scripts."""

    def __init__(self, stream: Any = None):
        self.stream = stream or sys.stdout
        self.width = 0

    def write(self, text: str) -> None:
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def clear(self) -> None:
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


class TextLine(Line):
    """A batch's progress as one text line."""

    def __init__(self, total: int, stream: Any = None):
        super().__init__(stream)

    def __call__(self, done: int, failed: int, total: int, rate: float, eta: float | None) -> None:
        self.write(describe(Progress(done, failed, total, rate, eta)))

    def close(self, result: Any) -> None:
        self.clear()


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where widgets can be shown)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def renderer(kind: str | bool, total: int) -> Any:
    """The progress display: ``widget``, ``text``, ``auto`` / True (widget in a kernel, else text), or None."""
    if kind in (False, None, "none"):
        return None
    if kind in (True, "auto"):
        kind = "widget" if in_kernel() else "text"
    if kind == "widget":
        return WidgetBar(total)
    if kind == "text":
        return TextLine(total)
    raise ValueError(f"progress is 'auto', 'widget', 'text' or None, not {kind!r}")


def report(result: Any, limit: int = SHOWN_FAILURES) -> str:
    """The summary line and, when items failed, a table of the first ``limit`` failures."""
    lines = [result.summary()]
    lines.extend(result.notes)
    if result.errors:
        first = list(result.errors.items())[:limit]
        rows = [(_cut(str(result.label(i)), 30), _cut(reason, 200)) for i, reason in first]
        width = max(len("item"), *(len(label) for label, _ in rows))
        lines.append(f"{'item'.ljust(width)}  reason")
        lines.extend(f"{label.ljust(width)}  {reason}" for label, reason in rows)
        if len(result.errors) > limit:
            lines.append(f"... and {len(result.errors) - limit} more in .errors")
    return "\n".join(lines)


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"

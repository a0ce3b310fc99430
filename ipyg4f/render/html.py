"""Rendering answers: one display, updated in place, throttled; sanitised HTML.

Model output is untrusted.  Markdown is rendered with markdown-it-py with raw
HTML disabled (so ``<img onerror=...>`` in an answer shows as text), and the
result goes through nh3 (the Rust ammonia sanitiser) as a second guard, since
JupyterLab does not sanitise HTML of trusted (live) outputs.
"""

from __future__ import annotations

import html
import time
from typing import Any, Callable

#: above this many characters, streaming updates show escaped text instead of
#: re-rendering Markdown on every update (keeps each update cheap)
LIVE_MARKDOWN_LIMIT = 8000

_md = None


def markdown_to_html(text: str) -> str:
    """Untrusted Markdown -> safe HTML."""
    global _md
    import nh3

    if _md is None:
        from markdown_it import MarkdownIt

        _md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").enable("strikethrough")
    return nh3.clean(_md.render(text), link_rel="noopener noreferrer nofollow")


def text_to_html(text: str) -> str:
    return f'<pre class="ipyg4f-text" style="white-space: pre-wrap">{html.escape(text)}</pre>'


def code_block(text: str) -> tuple[str, str]:
    """The answer's first fenced code block (or the whole answer) as plain code, and its language."""
    fence = "```"
    start = text.find(fence)
    line_end = text.find("\n", start) if start != -1 else -1
    if line_end == -1:
        return text.strip("\n"), ""
    language = text[start + len(fence): line_end].strip().split(" ")[0]
    end = text.find(fence, line_end + 1)
    return text[line_end + 1: end if end != -1 else len(text)].rstrip("\n"), language


def answer_bundle(text: str, fmt: str = "markdown") -> dict[str, str]:
    """The final MIME bundle of an answer in one of the formats."""
    if fmt == "text":
        return {"text/plain": text, "text/html": text_to_html(text)}
    if fmt == "code":
        code, language = code_block(text)
        md = f"```{language or 'python'}\n{code}\n```"
        return {"text/plain": code, "text/markdown": md, "text/html": markdown_to_html(md)}
    return {"text/plain": text, "text/markdown": text, "text/html": markdown_to_html(text)}


def status_html(message: str, kind: str = "info") -> str:
    colour = {"info": "#666", "warn": "#b36b00", "error": "#c00"}[kind]
    return f'<div class="ipyg4f-status" style="color:{colour};font-size:0.9em">{html.escape(message)}</div>'


class Throttle:
    """Allow an update at most ``rate`` times per second, and at most ``budget``
    characters of updates per second: an update of ``size`` characters waits
    ``max(1/rate, size/budget)`` before the next one.

    Every streaming update resends the whole answer (displays can only be
    replaced), so with a fixed rate the work of a long answer would grow with
    its length squared; the budget spaces updates out as the answer grows and
    keeps the total work linear in its length.
    """

    def __init__(self, rate: float, budget: float = 1_000_000, clock: Callable[[], float] = time.monotonic):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.budget = budget
        self.clock = clock
        self.last = float("-inf")
        self.gap = self.interval

    def ready(self) -> bool:
        return self.clock() - self.last >= self.gap

    def mark(self, size: int = 0) -> None:
        self.last = self.clock()
        self.gap = max(self.interval, size / self.budget if self.budget else 0.0)

    def wait_time(self) -> float:
        return max(0.0, self.last + self.gap - self.clock())


class CellRenderer:
    """Streams an answer into ONE cell display (display id), then leaves the final answer.

    ``update`` may be called as often as chunks arrive: it sends at most
    ``rate`` frontend updates per second; :meth:`flush` sends a pending one.
    """

    def __init__(self, label: str, *, rate: float = 20.0, metadata: dict[str, Any] | None = None):
        self.label = label
        self.throttle = Throttle(rate)
        self.metadata = metadata or {}
        self.handle = None
        self.updates = 0
        self._dirty = False
        self._text_fn: Callable[[], str] | None = None

    def start(self) -> None:
        from IPython.display import display

        waiting = f"waiting for {self.label}…"
        self.handle = display({"text/plain": waiting, "text/html": status_html(waiting)},
                              raw=True, display_id=True, metadata=self._meta("waiting"))

    def _meta(self, status: str, **extra: Any) -> dict[str, Any]:
        return {"ipyg4f": {**self.metadata, "status": status, **extra}}

    def update(self, text_fn: Callable[[], str]) -> None:
        """Note new text (``text_fn`` builds it lazily); send it if an update is due."""
        self._text_fn = text_fn
        self._dirty = True
        if self.throttle.ready():
            self.flush()

    def pending(self) -> bool:
        return self._dirty

    def wait_time(self) -> float:
        return self.throttle.wait_time()

    def flush(self) -> None:
        if not self._dirty or self._text_fn is None or self.handle is None:
            return
        text = self._text_fn()
        self._dirty = False
        self.throttle.mark(len(text))
        body = markdown_to_html(text) if len(text) <= LIVE_MARKDOWN_LIMIT else text_to_html(text)
        self.handle.update({"text/plain": text + " ▌", "text/html": body + '<span class="ipyg4f-cursor">▌</span>'},
                           raw=True, metadata=self._meta("streaming"))
        self.updates += 1

    def finish(self, text: str, fmt: str, *, status: str = "ok", note: str = "", **meta: Any) -> None:
        """Replace the display with the final answer (plus a short note for a partial one)."""
        self._dirty = False
        bundle = answer_bundle(text, fmt)
        if note:
            kind = "warn" if status == "interrupted" else "error"
            bundle["text/html"] = bundle["text/html"] + status_html(note, kind)
            bundle["text/plain"] = f"{bundle['text/plain']}\n[{note}]" if text else f"[{note}]"
            if "text/markdown" in bundle:
                bundle["text/markdown"] = f"{bundle['text/markdown']}\n\n*[{note}]*"
        metadata = self._meta(status, **meta)
        if self.handle is None:
            from IPython.display import display

            self.handle = display(bundle, raw=True, display_id=True, metadata=metadata)
        else:
            self.handle.update(bundle, raw=True, metadata=metadata)
        self.updates += 1


class TerminalRenderer:
    """Terminal IPython: print new text as it comes (no display ids there)."""

    def __init__(self, label: str, **_: Any):
        import sys

        self.label = label
        self.out = sys.stdout
        self.shown = 0
        self._text_fn: Callable[[], str] | None = None
        self.updates = 0

    def start(self) -> None:
        pass

    def update(self, text_fn: Callable[[], str]) -> None:
        self._text_fn = text_fn
        self.flush()

    def pending(self) -> bool:
        return False

    def wait_time(self) -> float:
        return 0.0

    def flush(self) -> None:
        if self._text_fn is None:
            return
        text = self._text_fn()
        self.out.write(text[self.shown:])
        self.out.flush()
        self.shown = len(text)
        self.updates += 1

    def finish(self, text: str, fmt: str, *, status: str = "ok", note: str = "", **meta: Any) -> None:
        self.out.write(text[self.shown:] + "\n")
        if note:
            self.out.write(f"[{note}]\n")
        self.out.flush()

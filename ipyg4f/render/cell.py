"""The answer in a cell: one display updated in place (Jupyter), or printed text (terminal IPython)."""

from __future__ import annotations

import sys
from typing import Any

from .html import (COLOURS, STYLE, answer_bundle, context_html, extras_html, line_html, markdown_parser,
                   sanitise, thinking_html)
from .live import Segments
from .outcome import Outcome, context_summary, footer
from .steps import step_title, steps_html
from .stream import StreamRenderer


class CellRenderer(StreamRenderer):
    """Streams an answer into the cell, then leaves ONE display: the final answer.

    While it streams, the cell holds a head display (what was attached, then the
    collapsed thinking), settled pieces of the answer, each sent once
    (:class:`~ipyg4f.render.live.Segments`), and one live tail display that
    each update replaces: the bytes sent grow with the answer, not its square.
    At the end the cell is cleared (``clear_output(wait=True)``: nothing
    flickers, the clear waits for the next output) and the final answer is
    displayed whole, so the saved notebook holds one clean output.

    ``text/plain`` of the final output holds the answer itself (what ``-o``
    stores; ``text/markdown`` too with ``-f code``, the code fenced: a Markdown
    answer is not sent twice); the thinking block, notes and the footer are
    in ``text/html`` and in the output's ``ipyg4f`` metadata.  What was
    attached (``--with``, ``--error``, ``--image``) is listed above the answer
    in a collapsed block.
    """

    def __init__(self, label_: str, *, fmt: str = "markdown", rate: float = 20.0,
                 metadata: dict[str, Any] | None = None, attachments: list[Any] | None = None):
        super().__init__(rate)
        self.label = label_
        self.fmt = fmt
        self.metadata = metadata or {}
        if attachments:
            self.metadata["context"] = [{"name": a.name, "kind": a.kind, "size": a.size} for a in attachments]
        self.context = context_html(attachments or [])
        self.handle = None  #: the head display (then the final answer)
        self.phase = "waiting"  #: waiting, thinking (only reasoning so far) or text
        self.segments: Segments | None = None
        self.tail = None  #: the display the live tail is drawn into
        self.head_html = ""  #: what the head display shows (after the style and the context)
        self.pieces: list[str] = []  #: the settled pieces shown, each an output of its own
        self.merged = ""  #: the pieces merged into the head display when the cell restarted
        self.steps = ""  #: the agent's tool steps so far (:mod:`ipyg4f.render.steps`), above the answer
        self.steps_shown = 0

    def _meta(self, status: str, **extra: Any) -> dict[str, Any]:
        return {"ipyg4f": {**self.metadata, "status": status, **extra}}

    def _waiting(self) -> None:
        from IPython.display import display

        if self.handle is None:
            waiting = f"waiting for {self.label}…"
            self.handle = display({"text/plain": waiting, "text/html": STYLE + self.context + line_html(waiting)},
                                  raw=True, display_id=True, metadata=self._meta("waiting"))

    def prepare(self) -> None:
        # the request is on its way: the "waiting for…" line (a display costs ipykernel a round trip to its
        # I/O thread, 0.5-4 ms, which start() made the request wait for), then markdown-it and nh3 imported
        # and warmed (~75 ms where bytecode is not cached), not between the first text and the screen
        self._waiting()
        sanitise(markdown_parser().render("warm"))

    def _head(self, html: str, plain: str = "") -> None:
        self.head_html = html
        self.handle.update({"text/plain": plain, "text/html": STYLE + self.context + self.steps + html + self.merged},
                           raw=True,
                           metadata=self._meta("streaming"))

    def _restart(self, pieces: list[str]) -> None:
        """Clear the cell and show the head again with ``pieces`` (already wrapped) in the same output: the
        front end clears the cell when that output arrives, so the cell never shows the head alone."""
        from IPython.display import clear_output, display

        clear_output(wait=True)
        self.merged = "".join(pieces)
        self.handle = display({"text/plain": "", "text/html": STYLE + self.context + self.steps + self.head_html
                               + self.merged},
                              raw=True, display_id=True, metadata=self._meta("streaming"))
        self.pieces = [self.merged] if pieces else []
        self.tail = None

    def _add_piece(self, html: str) -> None:
        """Show a settled piece for good, before the tail.  JupyterLab and Notebook 7 show at most 50
        outputs per cell (``maxNumberOutputs``) and hide the rest: at :data:`MAX_OUTPUTS` the pieces
        are merged into one output (the cell restarts), and later pieces are made larger, so a long
        answer is merged only a few times."""
        from IPython.display import display

        if len(self.pieces) + 3 > MAX_OUTPUTS:  # head, the pieces, this one, the tail
            self._restart(self.pieces + [html])
            self.segments.segment = max(self.segments.segment, len(self.pieces[0]) // 16)
            return
        self.pieces.append(html)
        if self.tail is None:
            display({"text/html": html}, raw=True)
        else:  # the tail's display keeps the piece for good; the tail moves below it
            self.tail.update({"text/html": html}, raw=True)
            self.tail = None

    def draw(self, answer: Any) -> int:
        from IPython.display import display

        self._waiting()  # shown by prepare() already, unless the driver skipped it
        if len(answer.steps) != self.steps_shown:  # a tool call ended: the cell starts afresh below the steps
            self.steps, self.steps_shown = steps_html(answer), len(answer.steps)
            self.head_html = thinking_html(answer.reasoning, open_=False) if self.phase != "waiting" else ""
            self._restart([])
            self.phase, self.segments = "waiting", None
        first_text = answer.text and self.phase == "waiting"
        if answer.text and self.phase != "text":
            if self.phase == "thinking":  # the thinking collapses above the answer: start the cell afresh
                self.head_html = thinking_html(answer.reasoning, open_=False)
                self._restart([])
            self.phase, self.segments = "text", Segments()
        elif not answer.text and self.phase == "waiting":
            self._head(line_html("Thinking…"), "Thinking…")
            self.phase, self.segments = "thinking", Segments()
        if self.segments is None:
            return 0
        wrap = _LIVE_ANSWER if self.phase == "text" else _LIVE_THINKING
        piece, tail = self.segments.feed(answer.text if self.phase == "text" else answer.reasoning)
        if piece:
            self._add_piece(wrap.format(piece))
        html = wrap.format(tail)
        if self.tail is None:
            self.tail = display({"text/html": html}, raw=True, display_id=True)
        else:
            self.tail.update({"text/html": html}, raw=True)
        if first_text:  # the text first, then the "waiting for…" line goes (one message less before the text)
            self._head("")
        return len(html)

    def finish(self, answer: Any, outcome: Outcome) -> None:
        """Replace everything shown with the final answer (plus a short note for a partial or odd one)."""
        from IPython.display import clear_output, display

        self._dirty = False
        bundle = answer_bundle(answer.text, self.fmt)
        note = outcome.note
        html = (self.context + steps_html(answer) + thinking_html(answer.reasoning, open_=False) + bundle["text/html"]
                + extras_html(answer))
        if note:
            if answer.status not in ("error", "interrupted"):  # those are said once, by the cell's error below
                html += line_html(note, outcome.tone)
            bundle["text/plain"] = f"{bundle['text/plain']}\n[{note}]" if answer.text else f"[{note}]"
            if "text/markdown" in bundle:
                bundle["text/markdown"] = f"{bundle['text/markdown']}\n\n*[{note}]*"
        summary = footer(answer)
        bundle["text/html"] = html + line_html(summary, "info", "ipyg4f-footer")
        metadata = self._meta(answer.status, provider=answer.provider, chunks=answer.chunks,
                              # the model that answered, and the one asked for (they differ when a server
                              # with one model loaded answers whatever name it is sent)
                              model=answer.model_used or answer.model, requested_model=answer.model,
                              finish_reason=answer.finish_reason, outcome=outcome.kind, footer=summary)
        if self.handle is not None:
            clear_output(wait=True)
        self.handle = display(bundle, raw=True, display_id=True, metadata=metadata)
        self.tail = None
        self.updates += 1


#: most outputs a cell shows while an answer streams (JupyterLab's maxNumberOutputs is 50 by default)
MAX_OUTPUTS = 40
_LIVE_ANSWER = '<div class="ipyg4f-md ipyg4f-live">{}</div>'
_LIVE_THINKING = (f'<div class="ipyg4f-md ipyg4f-live ipyg4f-thinking-live" style="color:{COLOURS["info"]};'
                  'padding-left:1em">{}</div>')


class TerminalRenderer(StreamRenderer):
    """Terminal IPython: print new text as it comes (no display ids there)."""

    def __init__(self, label_: str, attachments: list[Any] | None = None, **_: Any):
        super().__init__(rate=0)
        self.label = label_
        self.out = sys.stdout
        self.shown = 0
        self.thinking_shown = 0
        self.context = context_summary(attachments or [])
        self.steps_shown = 0

    def start(self, answer: Any) -> None:
        super().start(answer)
        if self.context:
            self.out.write(f"[{self.context}]\n")

    def draw(self, answer: Any) -> int:
        if len(answer.steps) != self.steps_shown:  # each tool call in a line; the text starts again after them
            for step in answer.steps[self.steps_shown:]:
                self.out.write(f"{'' if self.shown == 0 else chr(10)}[{step_title(step)}]\n")
                self.shown = 0
            self.steps_shown = len(answer.steps)
        if not answer.text and len(answer.reasoning) > self.thinking_shown:  # thinking, dimmed
            self.out.write(("\x1b[2m" if not self.thinking_shown else "") + answer.reasoning[self.thinking_shown:])
            self.thinking_shown = len(answer.reasoning)
        text = answer.text
        if text[self.shown:]:
            if self.thinking_shown and not self.shown:
                self.out.write("\x1b[0m\n")
            self.out.write(text[self.shown:])
            self.shown = len(text)
        self.out.flush()
        return 0

    def finish(self, answer: Any, outcome: Outcome) -> None:
        """The rest of the answer, a note (a failure or an interrupt is said once, by the cell's error
        below), and the footer Jupyter shows (who answered, first token, total, tokens), dimmed; a failure
        that received nothing has its one line only."""
        self.draw(answer)
        if self.thinking_shown and not self.shown:
            self.out.write("\x1b[0m")
        if self.shown or self.thinking_shown:
            self.out.write("\n")
        if outcome.note and not outcome.failed:
            self.out.write(f"[{outcome.note}]\n")
        if self.shown or self.thinking_shown or not outcome.failed:  # a failure with nothing: its line says it
            dim = getattr(self.out, "isatty", lambda: False)()
            self.out.write(f"\x1b[2m{footer(answer)}\x1b[0m\n" if dim else f"{footer(answer)}\n")
        self.out.flush()

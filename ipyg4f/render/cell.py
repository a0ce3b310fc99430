"""The answer in a cell: one display updated in place (Jupyter), or printed text (terminal IPython)."""

from __future__ import annotations

import sys
from typing import Any

from .html import answer_bundle, context_html, extras_html, line_html, streaming_html, thinking_html
from .outcome import Outcome, context_summary, footer
from .stream import StreamRenderer


class CellRenderer(StreamRenderer):
    """Streams an answer into ONE cell display (display id), then leaves the final answer.

    ``text/plain`` and ``text/markdown`` hold the answer itself (what ``-o``
    stores); the thinking block, notes and the footer are in ``text/html`` and
    in the output's ``ipyg4f`` metadata.  What was attached (``--with``,
    ``--error``, ``--image``) is listed above the answer in a collapsed block.
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
        self.handle = None

    def _meta(self, status: str, **extra: Any) -> dict[str, Any]:
        return {"ipyg4f": {**self.metadata, "status": status, **extra}}

    def start(self, answer: Any) -> None:
        from IPython.display import display

        super().start(answer)
        waiting = f"waiting for {self.label}…"
        self.handle = display({"text/plain": waiting, "text/html": self.context + line_html(waiting)},
                              raw=True, display_id=True, metadata=self._meta("waiting"))

    def draw(self, answer: Any) -> int:
        text = answer.text
        self.handle.update({"text/plain": text + " ▌", "text/html": self.context + streaming_html(answer)}, raw=True,
                           metadata=self._meta("streaming"))
        return len(text) + len(answer.reasoning)

    def finish(self, answer: Any, outcome: Outcome) -> None:
        """Replace the display with the final answer (plus a short note for a partial or odd one)."""
        self._dirty = False
        bundle = answer_bundle(answer.text, self.fmt)
        note = outcome.note
        html = self.context + thinking_html(answer.reasoning, open_=False) + bundle["text/html"] + extras_html(answer)
        if note:
            html += line_html(note, outcome.tone)
            bundle["text/plain"] = f"{bundle['text/plain']}\n[{note}]" if answer.text else f"[{note}]"
            if "text/markdown" in bundle:
                bundle["text/markdown"] = f"{bundle['text/markdown']}\n\n*[{note}]*"
        summary = footer(answer)
        bundle["text/html"] = html + line_html(summary, "info", "ipyg4f-footer")
        metadata = self._meta(answer.status, provider=answer.provider, model=answer.model, chunks=answer.chunks,
                              finish_reason=answer.finish_reason, outcome=outcome.kind, footer=summary)
        if self.handle is None:
            from IPython.display import display

            self.handle = display(bundle, raw=True, display_id=True, metadata=metadata)
        else:
            self.handle.update(bundle, raw=True, metadata=metadata)
        self.updates += 1


class TerminalRenderer(StreamRenderer):
    """Terminal IPython: print new text as it comes (no display ids there)."""

    def __init__(self, label_: str, attachments: list[Any] | None = None, **_: Any):
        super().__init__(rate=0)
        self.label = label_
        self.out = sys.stdout
        self.shown = 0
        self.thinking_shown = 0
        self.context = context_summary(attachments or [])

    def start(self, answer: Any) -> None:
        super().start(answer)
        if self.context:
            self.out.write(f"[{self.context}]\n")

    def draw(self, answer: Any) -> int:
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
        self.draw(answer)
        if self.thinking_shown and not self.shown:
            self.out.write("\x1b[0m")
        self.out.write("\n")
        if outcome.note:
            self.out.write(f"[{outcome.note}]\n")
        self.out.flush()

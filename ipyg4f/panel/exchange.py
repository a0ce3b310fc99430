"""One Send of the panel: a renderer of the shared runner, drawing into one ``widgets.HTML``.

It reports to the panel only through the two callbacks it is given
(``on_status(text, tone)`` and ``on_done(exchange)``), called from the run's
own thread: the answer keeps streaming while the kernel runs other cells.
"""

from __future__ import annotations

import html
from typing import Any, Callable

import ipywidgets as widgets

from ..errors import ProviderError
from ..events import Reasoning
from ..render import COLOURS, StreamRenderer, line_html, markdown_to_html, outcome, thinking_html
from ..render.html import context_html, extras_html, streaming_html
from ..render.outcome import Outcome, final_status, footer, label, live_status
from ..runner import Answer, ChatRequest, Run

#: how often the status line's clock moves while an answer is on its way (seconds)
STATUS_INTERVAL = 0.25
_ANSWER_STYLE = ' style="border-left:3px solid var(--jp-brand-color2,#90caf9);padding-left:10px"'


def exchange_view() -> widgets.HTML:
    view = widgets.HTML(layout=widgets.Layout(width="100%"))
    view.add_class("ipyg4f-exchange")
    return view


def turn_html(prompt: str, label_: str, status: str, body: str, after: str = "") -> str:
    """One exchange as HTML: the prompt (escaped), who answers, the answer (already safe HTML), notes."""
    return (f'<div class="ipyg4f-turn" data-status="{html.escape(status)}">'
            f'<div class="ipyg4f-prompt" style="white-space:pre-wrap;padding:4px 8px;border-radius:4px;'
            f'background:var(--jp-layout-color2,#eee)"><b>you</b>: {html.escape(prompt)}</div>'
            f'<div class="ipyg4f-meta" style="font-size:0.85em;color:{COLOURS["info"]};margin-top:4px">'
            f"{html.escape(label_)}</div>"
            f'<div class="ipyg4f-answer"{_ANSWER_STYLE}>{body}</div>{after}</div>')


def final_html(prompt: str, answer: Answer, result: Outcome, context: str = "") -> str:
    """An ended exchange: what was sent, thinking (collapsed), the answer, media and sources, note, footer."""
    body = context + thinking_html(answer.reasoning, open_=False) + markdown_to_html(answer.text) + extras_html(answer)
    after = line_html(result.note, result.tone, "ipyg4f-note") if result.note else ""
    after += line_html(footer(answer), "info", "ipyg4f-footer") if answer.ended is not None else ""
    return turn_html(prompt, label(answer.provider, answer.model), answer.status, body, after)


def stored_answer(ex: Any) -> Answer:
    """An exchange read back from history, as an ended :class:`Answer` (its failure reason included)."""
    answer = Answer(ex.provider, ex.model)
    answer.feed(Reasoning(ex.reasoning))
    answer.feed(ex.answer)
    answer.end(ex.status, ProviderError(ex.error) if ex.error else None)
    answer.ended = None  # no timing: the footer is not shown for it
    return answer


class Exchange(StreamRenderer):
    """The request, its answer as it accumulates, its view, and its run."""

    tick_interval = STATUS_INTERVAL

    def __init__(self, request: ChatRequest, prompt: str, thread: str, cell_id: str, *,
                 rate: float = 20.0, on_status: Callable[[str, str], None],
                 on_done: Callable[["Exchange"], None], attachments: list[Any] | None = None):
        super().__init__(rate or 20.0)
        self.request = request
        self.prompt = prompt
        self.thread = thread
        self.cell_id = cell_id
        self.answer = Answer(request.provider_name, request.model)
        self.view = exchange_view()
        self.on_status = on_status
        self.on_done = on_done
        self.run: Run | None = None
        self.result: Outcome | None = None
        self.context = context_html(attachments or [])  #: the collapsed "context sent" block

    @property
    def status(self) -> str:
        """``waiting``, ``streaming``, ``ok``, ``interrupted`` or ``error``."""
        if self.answer.status == "streaming":
            return "streaming" if self.answer.chunks else "waiting"
        return self.answer.status

    @property
    def label(self) -> str:
        return label(self.answer.provider, self.answer.model)

    # -- the renderer contract ----------------------------------------------------------
    def start(self, answer: Answer) -> None:
        super().start(answer)
        self.view.value = turn_html(self.prompt, self.label, "waiting",
                                    f"<em>waiting for {html.escape(self.label)}…</em>")
        self.on_status(live_status(answer, self.label), "busy")

    def tick(self) -> None:
        self.on_status(live_status(self.answer, self.label), "busy")

    def draw(self, answer: Answer) -> int:
        self.view.value = turn_html(self.prompt, self.label, "streaming", self.context + streaming_html(answer))
        self.on_status(live_status(answer, self.label), "busy")
        return len(answer.text) + len(answer.reasoning)

    def finish(self, answer: Answer, result: Outcome) -> None:
        self._dirty = False
        self.result = result
        self.view.value = final_html(self.prompt, answer, result, self.context)
        self.on_status(final_status(answer, result), "ok" if result.kind == "ok" and not result.note else result.tone)
        self.updates += 1

    # -- the run --------------------------------------------------------------------------
    def begin(self, record: Callable[[Answer], str]) -> "Exchange":
        """Start streaming on a thread of its own; ``record(answer)`` stores it and returns a note."""
        def then(answer: Answer) -> None:
            try:
                self.finish(answer, outcome(answer, record(answer)))
            finally:
                self.on_done(self)

        self.run = Run(self.request, self.answer, self).start(then)
        return self

    def stop(self) -> None:
        if self.run is not None:
            self.run.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        return self.run is None or self.run.wait(timeout)

    @property
    def ended(self) -> bool:
        return self.run is not None and self.run.done.is_set()

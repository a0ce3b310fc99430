"""One Send of the panel: a renderer of the shared runner, streaming into the panel's :class:`ChatView`.

While the answer streams, only what changed is sent (:class:`~ipyg4f.render.live.Segments`: settled
HTML once, then a small live tail), so the bytes sent grow with the answer, not with its square; at
the end the answer is rendered whole, once.  The exchange reports to the panel only through the two
callbacks it is given (``on_status(text, tone)`` and ``on_done(exchange)``), called from the run's own
thread: the answer keeps streaming while the kernel runs other cells.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from ..errors import ProviderError
from ..events import Reasoning
from ..render import StreamRenderer, line_html, markdown_to_html, outcome, thinking_html
from ..render.html import context_html, extras_html
from ..render.live import Segments
from ..render.outcome import Outcome, ended_status, footer, label, live_status, outcome_note
from ..runner import Answer, ChatRequest, Run
from .view import ChatView, Turn

#: how often the status line's clock moves while an answer is on its way (seconds)
STATUS_INTERVAL = 0.25


def final_turn(id_: str, prompt: str, answer: Answer, result: Outcome, context: str = "") -> Turn:
    """An ended exchange: what was sent, thinking (collapsed), the answer, media and sources; the note
    about its outcome, the footer."""
    body = (context + thinking_html(answer.reasoning, open_=False) + markdown_to_html(answer.text, style=False)
            + extras_html(answer))
    note = outcome_note(answer, result)
    after = line_html(note, result.tone, "ipyg4f-note") if note else ""
    after += line_html(footer(answer), "info", "ipyg4f-footer") if answer.ended is not None else ""
    return Turn(id_, prompt, label(answer.provider, answer.model), answer.status, context, body=body, after=after)


#: how :func:`~ipyg4f.render.outcome.outcome` words an interruption (a cell's: Ctrl+C, the kernel's ■)
INTERRUPTED = "stopped by interrupt"


def panel_outcome(answer: Answer, extra: str = "") -> Outcome:
    """:func:`~ipyg4f.render.outcome.outcome`, with an answer this panel interrupted worded as what
    ended it: the Stop button (or closing the panel), not an interrupt."""
    result = outcome(answer, extra)
    if result.kind == "interrupted" and result.note.startswith(INTERRUPTED):
        result = replace(result, note="stopped" + result.note[len(INTERRUPTED):])
    return result


def stored_answer(ex: Any) -> Answer:
    """An exchange read back from history, as an ended :class:`Answer` (its failure reason included)."""
    answer = Answer(ex.provider, ex.model)
    answer.feed(Reasoning(ex.reasoning))
    answer.feed(ex.answer)
    answer.end(ex.status, ProviderError(ex.error) if ex.error else None)
    answer.ended = None  # no timing: the footer is not shown for it
    return answer


class Exchange(StreamRenderer):
    """The request, its answer as it accumulates, its turn in the view, and its run."""

    tick_interval = STATUS_INTERVAL

    def __init__(self, request: ChatRequest, prompt: str, thread: str, cell_id: str, *, view: ChatView,
                 rate: float = 20.0, on_status: Callable[[str, str], None],
                 on_done: Callable[["Exchange"], None], attachments: list[Any] | None = None):
        super().__init__(rate or 20.0)
        self.request = request
        self.prompt = prompt
        self.thread = thread
        self.cell_id = cell_id
        self.answer = Answer(request.provider_name, request.model)
        self.view = view
        self.on_status = on_status
        self.on_done = on_done
        self.run: Run | None = None
        self.result: Outcome | None = None
        self.context = context_html(attachments or [])  #: the collapsed "context sent" block
        #: settled blocks go to the view as they settle (segment=0: messages are cheap, unlike a cell's
        #: displays), so the tail resent on each update is only the block being written
        self.segments = {"thinking": Segments(segment=0), "answer": Segments(segment=0)}
        self.shown = {"thinking": 0, "answer": 0}  #: characters of each part drawn so far
        self.turn = Turn(cell_id, prompt, self.label, context=self.context)

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
        self.on_status(live_status(answer, self.label), "busy")

    def tick(self) -> None:
        self.on_status(live_status(self.answer, self.label), "busy")

    def draw(self, answer: Answer) -> int:
        sent = 0
        for part, text in (("thinking", answer.reasoning), ("answer", answer.text)):
            if len(text) > self.shown[part]:
                self.shown[part] = len(text)
                sent += self.view.stream(self.turn, part, *self.segments[part].feed(text))
        self.on_status(live_status(answer, self.label), "busy")
        return sent

    def finish(self, answer: Answer, result: Outcome) -> None:
        self._dirty = False
        self.result = result
        self.turn = final_turn(self.cell_id, self.prompt, answer, result, self.context)
        self.view.final(self.turn)
        self.on_status(*ended_status(answer, result))
        self.updates += 1

    # -- the run --------------------------------------------------------------------------
    def begin(self, record: Callable[[Answer], str], saving: Callable[[Any], Any] | None = None) -> "Exchange":
        """Start streaming on a thread of its own; ``record(answer)`` stores it and returns a note;
        ``saving(renderer)`` wraps this exchange to save the answer while it streams (``Chat.saving``)."""
        def then(answer: Answer) -> None:
            try:
                self.finish(answer, panel_outcome(answer, record(answer)))
            finally:
                self.on_done(self)

        self.run = Run(self.request, self.answer, saving(self) if saving else self).start(then)
        return self

    def stop(self) -> None:
        if self.run is not None:
            self.run.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        return self.run is None or self.run.wait(timeout)

    @property
    def ended(self) -> bool:
        return self.run is not None and self.run.done.is_set()

"""One Send of the panel: a renderer of the shared runner, streaming into the panel's :class:`ChatView`.

While the answer streams, only what changed is sent (:class:`~ipyg4f.render.live.Segments`: settled
HTML once, then a small live tail), so the bytes sent grow with the answer, not with its square; at
the end the answer is rendered whole, once.  With tools (``source``: the agent's loop), each tool step
that ends draws the turn afresh: the steps so far as collapsed blocks (:mod:`ipyg4f.render.steps`, as
in a cell), then what streams next; its approval questions are asked in the turn
(:class:`~ipyg4f.panel.approval.Asker`).  The exchange reports to the panel only through the two
callbacks it is given (``on_status(text, tone)`` and ``on_done(exchange)``), called from the run's own
thread: the answer keeps streaming while the kernel runs other cells.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from ..errors import ProviderError
from ..events import Reasoning, ToolStep
from ..render import StreamRenderer, line_html, markdown_to_html, outcome, thinking_html
from ..render.html import context_html, extras_html
from ..render.live import Segments
from ..render.steps import steps_html
from ..render.outcome import Outcome, ended_status, footer, label, live_status, outcome_note
from ..runner import Answer, ChatRequest, Run
from .approval import Asker
from .view import ChatView, Turn

#: how often the status line's clock moves while an answer is on its way (seconds)
STATUS_INTERVAL = 0.25


def final_turn(id_: str, prompt: str, answer: Answer, result: Outcome, context: str = "") -> Turn:
    """An ended exchange: what was sent, the tool steps and thinking (collapsed), the answer, media and
    sources; the note about its outcome, the footer."""
    body = (context + steps_html(answer) + thinking_html(answer.reasoning, open_=False) + markdown_to_html(answer.text, style=False)
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
    for step in ex.step_list() if hasattr(ex, "step_list") else ():  # the agent's steps, before the answer
        try:
            answer.feed(ToolStep(**step))
        except TypeError:  # a row written by another version
            continue
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
                 on_done: Callable[["Exchange"], None], attachments: list[Any] | None = None,
                 source: Callable[[Run], Any] | None = None):
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
        #: the agent's loop feeding the answer (None: one plain request)
        self.source = source
        #: the approval questions of this Send (the policy's ``ask``)
        self.asker = Asker(self._show_ask, on_status)
        self.steps_shown = 0
        self.thought = 0  #: characters of thinking drawn above the steps (collapsed)

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
        if len(answer.steps) != self.steps_shown:  # a tool step ended: the turn afresh, what follows below
            sent += self._restart(answer)
        for part, text in (("thinking", answer.reasoning[self.thought:]), ("answer", answer.text)):
            if len(text) > self.shown[part]:
                self.shown[part] = len(text)
                sent += self.view.stream(self.turn, part, *self.segments[part].feed(text))
        self.on_status(live_status(answer, self.label), "busy")
        return sent

    def _restart(self, answer: Answer) -> int:
        self.steps_shown = len(answer.steps)
        self.thought = len(answer.reasoning)
        lead = steps_html(answer) + thinking_html(answer.reasoning, open_=False)
        self.segments = {"thinking": Segments(segment=0), "answer": Segments(segment=0)}
        self.shown = {"thinking": 0, "answer": 0}
        with self.view.lock:
            turn = self.turn
            turn.steps, turn.ask = lead, None
            turn.done, turn.tail = {p: [] for p in turn.done}, {p: "" for p in turn.tail}
            self.view.restart(turn)
        return len(lead)

    def _show_ask(self, ask: dict[str, Any] | None) -> None:
        """The approval question (or its new state) in this turn, while the turn is still streaming and
        the question still the one it shows (a late click's answer does not bring back an old one)."""
        with self.view.lock:
            shown = self.turn.ask
            if self.turn.body is None and (ask is None or ask["state"] == "pending"
                                           or (shown is not None and shown["n"] == ask["n"])):
                self.view.ask(self.turn, ask)

    def stored(self) -> dict[str, str]:
        """What history keeps of the agent's run (``tool_messages``, ``steps``); {} without tools."""
        return self.source.stored() if self.source is not None else {}

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
                note = self.source.note() if self.source is not None else ""
                if note:
                    answer.notes.append(note)
                self.finish(answer, panel_outcome(answer, record(answer)))
            finally:
                self.on_done(self)

        self.run = Run(self.request, self.answer, saving(self) if saving else self, self.source).start(then)
        return self

    def stop(self, why: str = "stopped") -> None:
        """Stop the answer; a question waiting for a click is refused (``why``: "stopped", "closed")."""
        if self.run is not None:
            self.run.cancel()
        self.asker.refuse(why)

    def wait(self, timeout: float | None = None) -> bool:
        return self.run is None or self.run.wait(timeout)

    @property
    def ended(self) -> bool:
        return self.run is not None and self.run.done.is_set()

"""The panel's approval question: Approve / Refuse buttons in the transcript, as a policy's ``ask``.

``Asker`` is the ``ask(tool, shown) -> "yes" | "no"`` callable of
:class:`ipyg4f.agent.approval.Policy` for one Send.  It is called on the thread
that renders the answer (the run's own thread, not the kernel's: see
``docs/panel.md``), puts the question into the exchange's turn (the call, its
code highlighted, and the two buttons) and blocks until one of:

* a click, which reaches the kernel as ``{event: "approve", id, n, answer}``
  through the widget's comm — read by the kernel only while no cell runs
  (ipywidgets#3468), so a click made during a cell counts once that cell ends;
* Stop or closing the panel (:meth:`Asker.refuse`): the question is refused.

Every click is answered: the question's new state is sent back to every view
(``{op: "ask", id, ask}``); a click that comes too late (the question was
already answered, or refused by Stop) is said in the status line.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from ..render.html import code_html

__all__ = ["Asker", "question_html"]

#: how long the asking thread blocks at once (it also wakes for Stop and close)
WAIT_SLICE = 0.5


def question_html(tool: Any, shown: str) -> str:
    """The call as the question shows it: the code highlighted, or ``name(arguments)`` (safe HTML)."""
    language = "python" if getattr(tool, "kind", "") == "python" else ""
    return f'<div class="ipyg4f-md">{code_html(shown, language)}</div>'


class Asker:
    """The questions of one exchange; ``show(ask_or_None)`` puts the current one on screen,
    ``say(text, tone)`` is the status line."""

    def __init__(self, show: Callable[[dict[str, Any] | None], None], say: Callable[[str, str], None]) -> None:
        self.show, self.say = show, say
        self._lock = threading.Lock()
        self._count = 0
        self._pending: dict[str, Any] | None = None
        self._answer: str | None = None
        self._wake = threading.Event()
        self._closed = ""  #: why no question can be answered any more ("stopped", "closed")
        self.asked: list[dict[str, Any]] = []  #: every question and how it ended (for tests and repr)

    def __call__(self, tool: Any, shown: str) -> str:
        what = f"{tool.shown} wants to run:" if tool.kind == "python" else f"the model calls {tool.shown}:"
        with self._lock:
            if self._closed:
                return "no"
            self._count += 1
            question = {"n": self._count, "title": what, "html": question_html(tool, shown), "state": "pending",
                        "note": ""}
            self._pending, self._answer = question, None
            self._wake.clear()
            self.asked.append(question)
        self.show(dict(question))
        self.say(f"waiting for your approval: {tool.shown} (Approve or Refuse in the transcript)", "warn")
        while not self._wake.wait(WAIT_SLICE):
            pass
        with self._lock:
            answer = self._answer or "no"
            self._pending = None
        self.say("approved: running " + tool.shown if answer == "yes" else f"refused: {tool.shown}",
                 "busy" if answer == "yes" else "warn")
        return answer

    def answer(self, n: Any, word: Any) -> bool:
        """A click on question ``n`` (``"yes"`` or ``"no"``); False when it came too late (said so)."""
        answer = "yes" if word == "yes" else "no"
        with self._lock:
            question = self._pending
            if question is None or question["n"] != n:
                late = next((q for q in self.asked if q["n"] == n), None)
                state = late["state"] if late is not None else "unknown"
                self.say(f"that click came too late: the question was already {state}", "warn")
                if late is not None:  # shown again as it ended, where it is still shown
                    self.show(dict(late))
                return False
            question["state"] = "approved" if answer == "yes" else "refused"
            self._answer = answer
            self._wake.set()
        self.show(dict(question))
        return True

    def refuse(self, why: str) -> None:
        """Stop / close: the pending question (if any) is refused, and so is every later one."""
        with self._lock:
            self._closed = self._closed or why
            question = self._pending
            if question is not None and question["state"] == "pending":
                question["state"], question["note"] = "refused", why
                self._answer = "no"
            self._wake.set()
        if question is not None:
            self.show(dict(question))

    @property
    def pending(self) -> dict[str, Any] | None:
        with self._lock:
            return dict(self._pending) if self._pending is not None else None


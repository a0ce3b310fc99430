"""The panel's chat view: transcript, prompt box, Send/Stop and the status line, as one anywidget.

Why not plain ipywidgets: a ``Textarea`` reports no key events (no Ctrl+Enter),
a ``Box`` gives no control over scrolling (no following the newest text unless
the user scrolled up), and an ``HTML`` widget can only be replaced whole, so
every streaming update resent the whole answer (and the transcript was one
widget per exchange, reloaded whole).  Here the front end (``panel.js``, a
plain ES module, no build step; ``panel.css``) keeps the transcript and the
kernel sends it changes as custom messages:

``{op: "add", turn}``
    a new exchange (its prompt, who answers, the context that was sent)
``{op: "append", id, part, html}``
    settled, sanitised HTML added once to the ``answer`` or ``thinking`` part
``{op: "tail", id, part, html}``
    the live end of that part (with the cursor), replacing the previous tail
``{op: "turn", turn}``
    a streaming exchange drawn afresh: a tool step ended (the steps so far, collapsed, above what
    streams next)
``{op: "ask", id, ask}``
    the approval question of a tool call (``ask``: ``n``, ``title``, ``html``, ``state``, ``note``), or
    its new state; ``null`` removes it
``{op: "final", turn}``
    the ended exchange, replacing what streamed (the answer rendered whole)
``{op: "sent", prompt}``
    the kernel sent ``prompt`` (from a ``send`` event): each view empties its box if it still holds
    that text, and syncs the empty box back like a keystroke
``{op: "reset", turns, view?}``
    the whole transcript: after a thread switch or reset (every view), or in
    answer to the ``{event: "sync", view}`` a new view sends when it appears
    (only that view), so a re-displayed or reloaded view shows everything.

The front end syncs the prompt box's text as it is typed (the ``prompt``
trait) and sends ``{event: "send", prompt}`` (the box's text, whether its last
keystrokes were synced or not), ``{event: "stop"}``, ``{event: "approve", id, n, answer}`` (a click on Approve / Refuse) and
``{event: "sync", view}``.  All HTML in these messages comes from
:mod:`ipyg4f.render.html` (sanitised); the prompt and labels travel as text
and are shown with ``textContent``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import anywidget
import traitlets

from ..render import COLOURS
from ..render.html import ANSWER_CSS

_HERE = Path(__file__).parent
PARTS = ("thinking", "answer")


def _panel_css() -> str:
    tones = "".join(f'.ipyg4f-chat [data-kind="{kind}"]{{color:{colour}}}' for kind, colour in COLOURS.items())
    return ANSWER_CSS + tones + (_HERE / "panel.css").read_text()


@dataclass
class Turn:
    """One exchange as the front end shows it: streaming (parts) or ended (``body`` + ``after``)."""

    id: str
    prompt: str
    label: str
    status: str = "waiting"
    context: str = ""  #: the collapsed "context sent" block (safe HTML)
    done: dict[str, list[str]] = field(default_factory=lambda: {p: [] for p in PARTS})
    tail: dict[str, str] = field(default_factory=lambda: {p: "" for p in PARTS})
    body: str | None = None  #: the ended answer (safe HTML): thinking, answer, media, sources
    after: str = ""  #: the outcome's note and the footer (safe HTML)
    steps: str = ""  #: while streaming: the tool steps so far (safe HTML, :mod:`ipyg4f.render.steps`)
    ask: dict[str, Any] | None = None  #: while streaming: the approval question shown (see ``approval.py``)

    def message(self) -> dict[str, Any]:
        turn: dict[str, Any] = {"id": self.id, "prompt": self.prompt, "label": self.label,
                                "status": self.status, "context": self.context}
        if self.body is not None:
            turn.update(body=self.body, after=self.after)
        else:
            turn["parts"] = {p: {"done": "".join(self.done[p]), "tail": self.tail[p]} for p in PARTS
                             if self.done[p] or self.tail[p]}
            turn.update(steps=self.steps, ask=self.ask)
        return turn


class ChatView(anywidget.AnyWidget):
    """The transcript and the prompt; the panel (:class:`~ipyg4f.panel.ChatPanel`) drives it."""

    _esm = _HERE / "panel.js"
    _css = _panel_css()

    prompt = traitlets.Unicode("").tag(sync=True)  #: the prompt box
    #: the status line: its text and its colour (``tone``, a key of COLOURS), one trait so that one
    #: message carries both, whichever thread sets it
    line = traitlets.Dict({"text": "", "tone": "info"}).tag(sync=True)
    busy = traitlets.Bool(False).tag(sync=True)  #: an answer is streaming: Send off, Stop on

    def __init__(self, on_send: Callable[[str | None], Any] = lambda prompt: None,
                 on_stop: Callable[[], Any] = lambda: None,
                 on_approve: Callable[[str, Any, Any], Any] = lambda id_, n, answer: None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.on_send = on_send
        self.on_stop = on_stop
        self.on_approve = on_approve
        self.turns: dict[str, Turn] = {}
        #: a change of the transcript and its message are one step, whichever thread makes it
        #: (answers stream from threads of their own), so a snapshot never misses or repeats one
        #: (the panel holds it to read its turns and reset the transcript in one step)
        self.lock = threading.RLock()
        self.add_class("ipyg4f-chat-view")
        self.on_msg(self._on_msg)

    # -- from the front end ------------------------------------------------------------
    def _on_msg(self, _: Any, content: dict[str, Any], buffers: list[Any]) -> None:
        event = content.get("event") if isinstance(content, dict) else None
        if event == "sync":
            with self.lock:
                self.send({"op": "reset", "view": str(content.get("view", "")),
                           "turns": [t.message() for t in self.turns.values()]})
        elif event == "send":
            text = content.get("prompt")
            if not isinstance(text, str):
                self.on_send(None)  # the box's text as synced
            elif self.on_send(text) is not None:  # not sent: the box keeps it, nothing to say
                self.send({"op": "sent", "prompt": text})
        elif event == "stop":
            self.on_stop()
        elif event == "approve":
            self.on_approve(str(content.get("id", "")), content.get("n"), content.get("answer"))

    # -- the transcript ----------------------------------------------------------------
    def say(self, text: str, tone: str = "info") -> None:
        """Set the status line."""
        self.line = {"text": text, "tone": tone}

    @property
    def status(self) -> str:
        """The status line's text."""
        return self.line["text"]

    @property
    def tone(self) -> str:
        return self.line["tone"]

    def reset(self, turns: list[Turn]) -> None:
        with self.lock:
            self.turns = {t.id: t for t in turns}
            self.send({"op": "reset", "turns": [t.message() for t in turns]})

    def add(self, turn: Turn) -> None:
        with self.lock:
            self.turns[turn.id] = turn
            self.send({"op": "add", "turn": turn.message()})

    def stream(self, turn: Turn, part: str, piece: str, tail: str) -> int:
        """``piece`` (settled HTML) added to ``part`` of ``turn`` for good, ``tail`` replacing its live
        end; sent when the turn is shown (another thread's turn is kept up to date all the same).
        Returns the characters sent."""
        with self.lock:
            shown = self.turns.get(turn.id) is turn
            turn.status = "streaming"
            sent = 0
            if piece:
                turn.done[part].append(piece)
                if shown:
                    self.send({"op": "append", "id": turn.id, "part": part, "html": piece})
                    sent += len(piece)
            if tail != turn.tail[part] or piece:
                turn.tail[part] = tail
                if shown:
                    self.send({"op": "tail", "id": turn.id, "part": part, "html": tail})
                    sent += len(tail)
            return sent

    def restart(self, turn: Turn) -> None:
        """``turn`` drawn afresh while it streams (a tool step ended: the steps, then what comes next)."""
        with self.lock:
            if self.turns.get(turn.id) is turn:
                self.send({"op": "turn", "turn": turn.message()})

    def ask(self, turn: Turn, ask: dict[str, Any] | None) -> None:
        """Show the approval question ``ask`` in ``turn`` (or its new state; None: remove it)."""
        with self.lock:
            turn.ask = ask
            if self.turns.get(turn.id) is turn:
                self.send({"op": "ask", "id": turn.id, "ask": ask})

    def final(self, turn: Turn) -> None:
        with self.lock:
            if turn.id in self.turns:
                self.turns[turn.id] = turn
                self.send({"op": "final", "turn": turn.message()})

    def text_of(self, id_: str) -> str:
        """The HTML a view shows for the turn's answer (for tests and ``repr``)."""
        with self.lock:
            turn = self.turns[id_]
            return turn.body if turn.body is not None else "".join(turn.done["answer"]) + turn.tail["answer"]

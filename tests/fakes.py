"""In-process test doubles: a scripted provider and a renderer that records what it was asked to show.

``ScriptedProvider`` works like simonw/llm's ``MockModel.enqueue``: each
request takes the next script, a list of steps::

    Scripted.enqueue(["Hel", "lo", FinishReason("stop")])
    Scripted.enqueue(["partial ", RuntimeError("boom")])     # raise after a piece
    Scripted.enqueue(["a ", Stall()])                        # hang until cancelled

A step is yielded as is, except an exception (raised), a :class:`Stall`
(waits until the stream is cancelled, or its ``release`` event is set) and a
:class:`Gate` (waits for its event, so a test decides when the stream goes on).
Every request is kept in ``Scripted.requests``.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ipyg4f.providers import AsyncGeneratorProvider


@dataclass
class Stall:
    """Hang here until cancelled (or until ``release`` is set)."""

    release: threading.Event = field(default_factory=threading.Event)
    reached: threading.Event = field(default_factory=threading.Event)


@dataclass
class Gate:
    """Wait for ``open`` before the next step; ``reached`` is set when the stream gets here."""

    open: threading.Event = field(default_factory=threading.Event)
    reached: threading.Event = field(default_factory=threading.Event)


class ScriptedProvider(AsyncGeneratorProvider):
    label = "scripted test double"
    supports_stream = True
    supports_system_message = True
    supports_message_history = True
    default_model = "scripted-1"
    options = frozenset({"temperature", "max_tokens"})
    scripts: ClassVar[list[list[Any]]] = []
    requests: ClassVar[list[dict[str, Any]]] = []
    closed: ClassVar[list[bool]] = []

    @classmethod
    def enqueue(cls, steps: list[Any]) -> None:
        cls.scripts.append(list(steps))

    @classmethod
    def reset(cls) -> None:
        cls.scripts, cls.requests, cls.closed = [], [], []

    @classmethod
    async def create_async_generator(cls, model, messages, proxy=None, **kwargs):
        cls.requests.append({"model": model, "messages": messages, "proxy": proxy, **kwargs})
        steps = cls.scripts.pop(0) if cls.scripts else ["(no script)"]
        try:
            for step in steps:
                if isinstance(step, BaseException):
                    raise step
                if isinstance(step, (Stall, Gate)):
                    step.reached.set()
                    event = step.release if isinstance(step, Stall) else step.open
                    while not event.is_set():
                        await asyncio.sleep(0.005)  # polls an event set by another thread
                    continue
                yield step
        finally:
            cls.closed.append(True)


class RecordingRenderer:
    """Implements the renderer contract of :class:`ipyg4f.runner.Run` and records every call."""

    tick_interval = None

    def __init__(self):
        self.calls: list[tuple[str, Any]] = []
        self.drawn: list[str] = []
        self.updated = threading.Event()  #: set at the first update (text on screen)

    def start(self, answer):
        self.calls.append(("start", answer.status))

    def prepare(self):
        self.calls.append(("prepare", None))

    def update(self, answer):
        self.calls.append(("update", answer.text))
        self.drawn.append(answer.text)
        self.updated.set()

    def pending(self):
        return False

    def wait_time(self):
        return 0.0

    def flush(self):
        self.calls.append(("flush", None))

    def tick(self):
        self.calls.append(("tick", None))

    def finish(self, answer, outcome):
        self.calls.append(("finish", outcome))

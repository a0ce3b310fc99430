"""The renderer contract of :class:`ipyg4f.runner.Run`, with its one throttle.

A renderer shows one answer while it streams and once it has ended.  The run
calls ``start(answer)``, ``prepare()`` once the request is on its way, then ``update(answer)`` whenever what the user sees
changed, ``flush()`` once ``pending()`` and ``wait_time()`` has passed, and
``tick()`` every ``tick_interval`` seconds without news; the front end calls
``finish(answer, outcome)`` once the exchange is recorded.  Subclasses draw:
:meth:`StreamRenderer.draw` (while streaming) and :meth:`StreamRenderer.finish`.
"""

from __future__ import annotations

import time
from typing import Any, Callable


class Throttle:
    """Allow an update at most ``rate`` times per second, and at most ``budget``
    characters of updates per second: an update of ``size`` characters waits
    ``max(1/rate, size/budget)`` before the next one.

    Given the answer's length (``ready(length)``), an update also waits until it
    is paid for: the previous update's size at most :data:`FREE` characters plus
    :data:`COST` times what the answer grew since, or :data:`MAX_GAP` seconds.
    A small live tail (:mod:`ipyg4f.render.live`) streams at ``rate``; a large
    one (settled text waiting to become a piece of its own, a long table row
    block) is resent only as often as the answer grows by its size, so the bytes
    a stream sends stay within a constant factor of the answer whatever its shape.
    """

    def __init__(self, rate: float, budget: float = 1_000_000, clock: Callable[[], float] = time.monotonic):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.budget = budget
        self.clock = clock
        self.last = float("-inf")
        self.gap = self.interval
        self.size = 0  #: the previous update's size
        self.at = 0  #: the answer's length at the previous update

    def _paid(self, length: int | None) -> bool:
        return length is None or self.size <= FREE + COST * (length - self.at)

    def ready(self, length: int | None = None) -> bool:
        waited = self.clock() - self.last
        return waited >= self.gap and (self._paid(length) or waited >= MAX_GAP)

    def mark(self, size: int = 0, length: int = 0) -> None:
        self.last = self.clock()
        self.gap = max(self.interval, size / self.budget if self.budget else 0.0)
        self.size, self.at = size, length

    def wait_time(self, length: int | None = None) -> float:
        gap = self.gap if self._paid(length) else max(self.gap, MAX_GAP)
        return max(0.0, self.last + gap - self.clock())


#: an update of up to this many characters is always allowed at the throttle's rate
FREE = 1_000
#: characters an update may resend per character the answer grew since the previous one
COST = 1.0
#: the longest an answer that grows waits for an update, paid for or not (seconds)
MAX_GAP = 1.0


class StreamRenderer:
    """Throttled drawing of one answer; subclasses implement :meth:`draw` and :meth:`finish`."""

    #: seconds between two ``tick()`` calls while nothing arrives (None: no ticks)
    tick_interval: float | None = None

    def __init__(self, rate: float = 20.0):
        self.throttle = Throttle(rate)
        self.answer: Any = None
        self.updates = 0
        self._dirty = False

    def start(self, answer: Any) -> None:
        self.answer = answer

    def prepare(self) -> None:
        """The request is on its way: do now what the first update would otherwise wait for."""

    def update(self, answer: Any) -> None:
        """Note that ``answer`` changed; draw it if an update is due."""
        self.answer = answer
        self._dirty = True
        if self.throttle.ready(_length(answer)):
            self.flush()

    def pending(self) -> bool:
        return self._dirty

    def wait_time(self) -> float:
        return self.throttle.wait_time(_length(self.answer) if self.answer is not None else None)

    def flush(self) -> None:
        if not self._dirty or self.answer is None:
            return
        self._dirty = False
        self.throttle.mark(self.draw(self.answer), _length(self.answer))
        self.updates += 1

    def tick(self) -> None:
        """Nothing arrived for ``tick_interval`` seconds (a clock may move)."""

    def draw(self, answer: Any) -> int:
        """Show the answer so far; returns the size drawn (characters), which paces the next update."""
        raise NotImplementedError

    def finish(self, answer: Any, outcome: Any) -> None:
        """Show the final answer and its outcome."""
        raise NotImplementedError


def _length(answer: Any) -> int:
    """How much of an answer has arrived (its text and its thinking), which pays for updates; counted by
    the answer as it comes, so asking costs nothing on the per-chunk path."""
    return answer.size

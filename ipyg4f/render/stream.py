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

    An update resends what it draws: the cell and the panel draw only a small
    live tail (:mod:`ipyg4f.render.live`), so the budget rarely matters; it
    bounds the cost where a tail is large after all (one enormous paragraph,
    shown as plain text), spacing updates out as it grows.
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
        if self.throttle.ready():
            self.flush()

    def pending(self) -> bool:
        return self._dirty

    def wait_time(self) -> float:
        return self.throttle.wait_time()

    def flush(self) -> None:
        if not self._dirty or self.answer is None:
            return
        self._dirty = False
        self.throttle.mark(self.draw(self.answer))
        self.updates += 1

    def tick(self) -> None:
        """Nothing arrived for ``tick_interval`` seconds (a clock may move)."""

    def draw(self, answer: Any) -> int:
        """Show the answer so far; returns the size drawn (characters), which paces the next update."""
        raise NotImplementedError

    def finish(self, answer: Any, outcome: Any) -> None:
        """Show the final answer and its outcome."""
        raise NotImplementedError

"""A renderer that also saves the answer while it streams, so a killed kernel keeps what had arrived.

:class:`SavingRenderer` wraps any renderer of :class:`ipyg4f.runner.Run` and
hands the answer so far to ``save(answer)`` at most once per ``interval``
seconds (about a second behind the screen), from the thread that drives the
run, so a save never races the final record the front end writes after the
run.  Nothing is saved before the answer has text: a re-run that dies before
its first word leaves the cell's earlier exchange as it was.  A failed save
(a locked file) is retried at the next interval; the stream never waits long.
"""

from __future__ import annotations

import time
from typing import Any, Callable

#: seconds between two saves of a streaming answer
SAVE_INTERVAL = 1.0
#: how often the run wakes the renderer while nothing arrives (the runner's own longest block)
WAKE = 0.2


class SavingRenderer:
    """``inner``'s renderer contract, plus throttled ``save(answer)`` calls while the answer streams."""

    def __init__(self, inner: Any, save: Callable[[Any], Any], interval: float = SAVE_INTERVAL,
                 clock: Callable[[], float] = time.monotonic):
        self.inner, self.save, self.interval, self.clock = inner, save, interval, clock
        self.answer: Any = None
        self.saves = 0
        self._saved = ""
        self._last = clock()
        self._ticked = clock()

    def __getattr__(self, name: str) -> Any:  # start, prepare, finish... and anything else the front end reads
        if name == "inner":  # not set yet (a copy being built): no endless lookup
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def tick_interval(self) -> float:
        """Woken at least every ``WAKE`` s, so a stream that stalls after some text is still saved."""
        inner = self.inner.tick_interval
        return min(inner, WAKE) if inner else WAKE

    def update(self, answer: Any) -> None:
        self.answer = answer
        self.inner.update(answer)
        self._maybe_save()

    def pending(self) -> bool:
        return self.inner.pending()

    def wait_time(self) -> float:
        return self.inner.wait_time()

    def flush(self) -> None:
        self.inner.flush()
        self._maybe_save()

    def tick(self) -> None:
        inner = self.inner.tick_interval
        if inner and self.clock() - self._ticked >= inner:
            self._ticked = self.clock()
            self.inner.tick()
        self._maybe_save()

    def _maybe_save(self) -> None:
        answer = self.answer  # the clock first: this runs on every update, answer.text joins the answer
        if answer is None or self.clock() - self._last < self.interval or not answer.text:
            return
        snapshot = (answer.text, answer.reasoning)
        if snapshot == self._saved:
            return
        self._last = self.clock()
        try:
            saved = self.save(answer) is not False  # False: not saved this time (the file was busy)
        except Exception:  # a broken store must not stop the answer; the final record reports it
            saved = False
        if saved:
            self._saved = snapshot
            self.saves += 1

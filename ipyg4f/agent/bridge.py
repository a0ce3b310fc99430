"""Run the loop's synchronous work on the kernel's own thread while the loop runs on a worker loop.

``%%chat`` streams on the runner's worker loop while the cell's thread waits
(``docs/design.md``).  The model's code, the user's functions and the approval
prompt must run on the cell's thread instead: that is where the user's objects
live, where ``input()`` reaches the front end, where displays land in the cell,
and where the kernel's interrupt (SIGINT) arrives.  :class:`CellThread` is the
``run_sync`` of :class:`~ipyg4f.agent.loop.ToolLoop`: the loop hands it a
function and awaits the result; the cell's thread runs it inside :meth:`serve`,
which it calls instead of waiting.  A ``KeyboardInterrupt`` while a function runs
cancels the loop's wait (the step is recorded as interrupted) and is raised
again on the cell's thread, so the caller cancels the run as it does today.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any, Callable

__all__ = ["CellThread"]


class CellThread:
    """Functions sent from a worker loop, run on the thread that calls :meth:`serve`."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._owner: int | None = None

    async def run(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the serving thread (directly when called on that thread); its result or error."""
        if threading.get_ident() == self._owner:
            return fn()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((fn, loop, future))
        return await future

    def serve(self, done: Callable[[], bool], poll: float = 0.2) -> None:
        """Run the functions sent until ``done()``; never blocks more than ``poll`` seconds at a time."""
        self._owner = threading.get_ident()
        try:
            while not done():
                try:
                    fn, loop, future = self._jobs.get(timeout=poll)
                except queue.Empty:
                    continue
                self._one(fn, loop, future)
        finally:
            self._owner = None

    @staticmethod
    def _one(fn: Callable[[], Any], loop: asyncio.AbstractEventLoop, future: asyncio.Future) -> None:
        def settle(outcome: str, value: Any) -> None:
            if future.done():
                return
            if outcome == "result":
                future.set_result(value)
            elif outcome == "error":
                future.set_exception(value)
            else:
                future.cancel()

        if future.cancelled():  # the loop stopped waiting (cancelled) before it came to this
            return
        try:
            value = fn()
        except KeyboardInterrupt:
            loop.call_soon_threadsafe(settle, "cancel", None)
            raise
        except Exception as exc:
            loop.call_soon_threadsafe(settle, "error", exc)
        except BaseException as exc:  # SystemExit & co. must not reach the worker loop as themselves
            loop.call_soon_threadsafe(settle, "error", RuntimeError(f"{type(exc).__name__}: {exc}"))
        else:
            loop.call_soon_threadsafe(settle, "result", value)

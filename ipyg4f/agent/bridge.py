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
from typing import Any, Awaitable, Callable, TypeVar

from ..runner import SyncJob

T = TypeVar("T")

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

    def run_blocking(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run ``make()`` on an event loop of a worker thread, serving its sync work here until it ends.

        For a caller without a worker loop of its own (``ipyg4f.agent(...)`` from a script, the tests):
        a ``KeyboardInterrupt`` here (in served work or between) cancels the coroutine, waits until it
        has stopped (its steps recorded), then is raised again.
        """
        state: dict[str, Any] = {}
        started, finished = threading.Event(), threading.Event()

        async def main() -> T:
            state["loop"], state["task"] = asyncio.get_running_loop(), asyncio.current_task()
            started.set()
            return await make()

        def worker() -> None:
            try:
                state["result"] = asyncio.run(main())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                state["error"] = exc
            finally:
                started.set()
                finished.set()
                self._jobs.put(None)  # wakes serve() at once

        thread = threading.Thread(target=worker, name="ipyg4f-agent", daemon=True)
        thread.start()
        try:
            self.serve(finished.is_set)
        except KeyboardInterrupt:
            started.wait()
            if "loop" in state:
                _tell(state["loop"], state["task"].cancel)
            finished.wait()
            raise
        finally:
            thread.join()
        if "error" in state:
            raise state["error"]
        return state["result"]

    def serve(self, done: Callable[[], bool], poll: float = 0.2) -> None:
        """Run the functions sent until ``done()``; never blocks more than ``poll`` seconds at a time."""
        self._owner = threading.get_ident()
        try:
            while not done():
                try:
                    job = self._jobs.get(timeout=poll)
                except queue.Empty:
                    continue
                if job is not None:
                    self._one(*job)
        finally:
            self._owner = None

    @staticmethod
    def _one(fn: Callable[[], Any], loop: asyncio.AbstractEventLoop, future: asyncio.Future) -> None:
        SyncJob(fn, future).run(loop)


def _tell(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop has closed: nobody waits for this any more
        pass

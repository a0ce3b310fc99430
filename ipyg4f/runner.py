"""Drive one provider stream into one renderer: typed events in, an :class:`Answer` out; cancel, timeout.

Both front ends use the same :class:`Run`:

* ``%%chat`` calls :func:`run_blocking`: the provider's coroutine runs on a
  private event loop in ONE daemon worker thread (:class:`LoopThread`) while
  the cell's own thread waits, renders at a throttled rate, and turns
  ``KeyboardInterrupt`` (kernel interrupt, Ctrl-C) into a cancellation.  Why
  not nest_asyncio/nest_asyncio2?  Measured here: the archived ``nest_asyncio``
  wedges ipykernel 7 as soon as another cell is queued (Run All);
  ``nest_asyncio2`` works, but it patches the kernel's loop for the whole
  process.  The worker thread needs no patch at all and works the same in
  ipykernel 6, 7 and terminal IPython.
* the panel calls :meth:`Run.start`: the same loop, rendered from a thread of
  its own, so an answer keeps streaming while the kernel runs other cells.

Items cross threads in batches under one lock, so a fast stream costs one
wake-up per batch, not per item, and go into an :class:`~ipyg4f.answer.Answer`
(:mod:`ipyg4f.answer`: where every provider's items are normalised, ``<think>``
blocks split off).  The runner enforces the request's
timeout for every provider: no item for that long ends the stream with a
:class:`~ipyg4f.errors.ProviderTimeoutError` ("did not answer within N s" when
nothing of an answer had come).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from .answer import Answer
from .errors import ProviderTimeoutError
from .events import is_content
from .messages import Messages

__all__ = ["Answer", "ChatRequest", "LoopThread", "Run", "SyncJob", "run_blocking", "stream"]

#: how long an interrupted stream may take to close its connection
CANCEL_GRACE = 2.0
#: longest stretch (seconds) a stream keeps the loop (and the GIL) while data is buffered,
#: and how long it then pauses
YIELD_EVERY = 0.002
YIELD_PAUSE = 0.0005
#: the runner's timeout fires this much after the request's own, so that a provider that
#: enforces the timeout itself says first, in its own words, what it was waiting for
TIMEOUT_GRACE = 0.5
#: longest the driving thread blocks at once: a SIGINT that the OS hands to another thread
#: only sets Python's flag, which the main thread sees once it wakes up
MAX_BLOCK = 0.2


@dataclass
class ChatRequest:
    provider: Any  # a provider class with the interface of providers.base.AsyncGeneratorProvider
    model: str
    messages: Messages
    proxy: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: longest silence from the provider, enforced by the runner (None: none)
    timeout: float | None = None

    @property
    def provider_name(self) -> str:
        return self.provider.name


async def stream(request: ChatRequest, on_item: Callable[[Any], None]) -> None:
    """Run the provider's generator to the end, handing every item to ``on_item``."""
    gen = request.provider.create_async_generator(request.model, request.messages,
                                                  proxy=request.proxy, **request.kwargs)
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    last = loop.time()
    # pause after the first item of the answer (text, thinking...: not bookkeeping such as Fallback's
    # ProviderUsed): it is shown at once, even in a burst
    deadline = float("inf")
    timeout = request.timeout + TIMEOUT_GRACE if request.timeout else None
    timed_out = False
    answering = False  # something of an answer (text, thinking...) has come
    watchdog: asyncio.TimerHandle | None = None

    def check() -> None:  # cheaper than a wait_for per item: one timer, moved on lazily
        nonlocal watchdog, timed_out
        idle = loop.time() - last
        if idle >= timeout:
            timed_out = True
            task.cancel()
        else:
            watchdog = loop.call_later(timeout - idle, check)

    if timeout and task is not None:
        watchdog = loop.call_later(timeout, check)
    try:
        async for item in gen:
            on_item(item)
            last = loop.time()
            if not answering and is_content(item):
                answering, deadline = True, last
            # aiohttp hands buffered data over without suspending.  Every YIELD_EVERY
            # seconds of such work, pause briefly: a real sleep, not sleep(0), so the loop
            # waits in select() without the GIL and the kernel's other threads get their turn
            if last >= deadline:
                await asyncio.sleep(YIELD_PAUSE)
                deadline = loop.time() + YIELD_EVERY
    except asyncio.CancelledError:
        if not timed_out:
            raise
        task.uncancel()
        what = "stopped sending for" if answering else "did not answer within"  # the cell names the provider
        raise ProviderTimeoutError(f"{what} {request.timeout:g} s", provider=request.provider_name) from None
    finally:
        if watchdog is not None:
            watchdog.cancel()
        aclose = getattr(gen, "aclose", None)
        if aclose is not None:
            await aclose()


class LoopThread:
    """A private event loop in a daemon thread, started on first use."""

    _instance: "LoopThread | None" = None
    _guard = threading.Lock()

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="ipyg4f-loop", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @classmethod
    def get(cls) -> "LoopThread":
        with cls._guard:
            if cls._instance is None or not cls._instance.thread.is_alive():
                cls._instance = cls()
            return cls._instance

    def submit(self, coro) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)


class Run:
    """One request streamed into one :class:`Answer` and shown by one renderer.

    The renderer (see :class:`ipyg4f.render.stream.StreamRenderer`) is called
    only from the thread that drives the run: ``start(answer)``, then
    ``update(answer)`` for new content, ``flush()`` when ``pending()`` and
    ``wait_time()`` has passed, ``tick()`` every ``tick_interval`` seconds of
    silence.  The front end calls ``finish`` itself, once it has recorded the
    exchange.
    """

    def __init__(self, request: ChatRequest, answer: Answer, renderer: Any,
                 source: Callable[["Run"], Any] | None = None):
        self.request = request
        self.answer = answer
        self.renderer = renderer
        #: what feeds the answer instead of one stream of ``request``: ``source(run)`` is awaited on the
        #: worker loop and hands items to :meth:`put` (the agent's loop: several requests, tool steps)
        self.source = source
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._finished = threading.Event()
        self._buffer: list[Any] = []
        self._loop: LoopThread | None = None
        self._task: asyncio.Task | None = None
        self._cancelled = False
        self._error: BaseException | None = None
        self.done = threading.Event()  #: set once the answer has ended and ``then`` has run
        self.thread: threading.Thread | None = None

    # -- the worker loop side ------------------------------------------------------
    def _on_item(self, item: Any) -> None:
        with self._lock:
            self._buffer.append(item)
            if not self._wake.is_set():  # one wake-up per batch, not per item
                self._wake.set()

    put = _on_item  #: for a ``source``: one item for the answer

    async def run_sync(self, fn: Callable[[], Any]) -> Any:
        """For a ``source``, on the worker loop: run ``fn`` on the thread that renders (the cell's: the
        user's objects, ``input()``, displays and interrupts are there), in order with the items put
        before it; its result or its exception.  An interrupt there cancels the run."""
        future = asyncio.get_running_loop().create_future()
        self._on_item(SyncJob(fn, future))
        return await future

    async def _pump(self) -> None:
        self._task = asyncio.current_task()
        try:
            if self._cancelled:  # stopped before it started
                pass
            elif self.source is not None:
                await self.source(self)
            else:
                await stream(self.request, self._on_item)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # reported to the renderer, not raised in the worker
            self._error = exc
        finally:
            self._finished.set()
            self._wake.set()

    # -- the rendering side --------------------------------------------------------
    def _drain(self, run_jobs: bool = True) -> bool:
        with self._lock:
            items, self._buffer = self._buffer, []
            self._wake.clear()
        changed = False
        for item in items:
            if type(item) is SyncJob:
                if changed:  # what came before it is on screen before it runs (the approval question...)
                    self.renderer.update(self.answer)
                    changed = False
                if self.renderer.pending():
                    self.renderer.flush()
                item.run(self._loop.loop) if run_jobs and not self._cancelled else item.drop(self._loop.loop)
            else:
                changed = self.answer.feed(item) or changed
        return changed

    def _drive(self) -> None:
        renderer = self.renderer
        while True:
            if renderer.pending():
                # an update is due later: sleep until then (or the end), however many
                # items arrive meanwhile, so a fast stream costs no wake-up per item
                self._finished.wait(renderer.wait_time())
            elif not self._wake.wait(renderer.tick_interval or MAX_BLOCK):
                if renderer.tick_interval:
                    renderer.tick()
                if not self._finished.is_set():  # it may have ended while the last batch was drained
                    continue
            if self._finished.is_set():  # the final render follows: no update for the last batch
                self._drain()
                return
            if self._drain():
                renderer.update(self.answer)
            elif renderer.pending():
                renderer.flush()

    def _conclude(self) -> None:
        if self._cancelled:
            self.answer.end("interrupted")
        elif self._error is not None:
            self.answer.end("error", self._error)
        else:
            self.answer.end("ok")

    def run(self) -> Answer:
        """Stream on the worker loop, render on this thread; returns when the answer has ended."""
        self.renderer.start(self.answer)
        self._loop = LoopThread.get()
        try:  # an interrupt while the request is being handed over counts too (the stream may have begun)
            self._loop.submit(self._pump())
            self.renderer.prepare()  # while the request is on its way
            self._drive()
        except KeyboardInterrupt:
            if not self._finished.is_set() or self.source is not None:
                # a source's run may have ended already, on its own, because of this very interrupt (the
                # tool it ran on this thread was cancelled): it was interrupted all the same
                self._cancelled = True
            self.cancel()
            try:
                self._finished.wait(CANCEL_GRACE)
            except KeyboardInterrupt:  # a second interrupt while closing: stop waiting, keep what came
                pass
            self._drain(run_jobs=False)
        self._conclude()
        return self.answer

    def start(self, then: Callable[[Answer], None] | None = None) -> "Run":
        """Run on a daemon thread of its own; ``then(answer)`` runs there once the answer has ended."""
        def target() -> None:
            try:
                self.run()
                if then is not None:
                    then(self.answer)
            finally:
                self.done.set()

        self.thread = threading.Thread(target=target, name="ipyg4f-run", daemon=True)
        self.thread.start()
        return self

    def cancel(self) -> None:
        """Stop the stream (from any thread); what has arrived is kept, marked interrupted."""
        if self._finished.is_set():  # an answer that has ended stays as it ended
            return
        self._cancelled = True
        if self._loop is not None:
            self._loop.loop.call_soon_threadsafe(self._cancel_task)

    def _cancel_task(self) -> None:
        """On the loop: cancel the stream's task (one that has not started sees ``_cancelled``)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        """For :meth:`start`: wait until the run and its ``then`` are over; False on timeout."""
        return self.done.wait(timeout)


class SyncJob:
    """A function a ``source`` runs on the rendering thread (:meth:`Run.run_sync`), and its future."""

    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[], Any], future: asyncio.Future):
        self.fn, self.future = fn, future

    def run(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run it here and settle the future on ``loop``; a ``KeyboardInterrupt`` cancels it, raised again."""
        if self.future.cancelled():  # the loop stopped waiting before it came to this
            return
        try:
            value = self.fn()
        except KeyboardInterrupt:
            self.drop(loop)
            raise
        except Exception as exc:
            self._settle(loop, "error", exc)
        except BaseException as exc:  # SystemExit & co. must not reach the worker loop as themselves
            self._settle(loop, "error", RuntimeError(f"{type(exc).__name__}: {exc}"))
        else:
            self._settle(loop, "result", value)

    def drop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._settle(loop, "cancel", None)

    def _settle(self, loop: asyncio.AbstractEventLoop, outcome: str, value: Any) -> None:
        def settle() -> None:
            if self.future.done():
                return
            if outcome == "result":
                self.future.set_result(value)
            elif outcome == "error":
                self.future.set_exception(value)
            else:
                self.future.cancel()

        try:
            loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the loop has closed: nobody waits for this any more
            pass


def run_blocking(request: ChatRequest, answer: Answer, renderer: Any, source: Callable[[Run], Any] | None = None
                 ) -> Answer:
    """Stream ``request`` into ``answer`` on the worker loop; render on this thread (``%%chat``).

    Returns with ``answer.status`` one of ``ok``, ``error`` (``answer.error``
    set) or ``interrupted`` (KeyboardInterrupt while streaming: the request is
    cancelled and its connection closed before this returns).
    """
    return Run(request, answer, renderer, source).run()

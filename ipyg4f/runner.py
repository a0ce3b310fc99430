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
wake-up per batch, not per item.  Every item goes through
:func:`ipyg4f.events.normalize`: unknown objects are counted, never turned into
text.  Every provider's text goes through one
:class:`~ipyg4f.events.ThinkSplitter` (in :meth:`Answer.feed`): ``<think>``
blocks become thinking, whoever sent them.  The runner enforces the request's
timeout for every provider: no item for that long ends the stream with a
:class:`~ipyg4f.errors.ProviderTimeoutError` ("did not answer within N s" when
nothing of an answer had come).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import ProviderTimeoutError
from .events import (ANSWER_EVENTS, FinishReason, LoginRequired, Media, ModelUsed, ProviderUsed, Reasoning,
                     Sources, Note, ThinkSplitter, ToolCalls, Usage, is_content, kind_of, normalize)
from .messages import Messages

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


class Answer:
    """The answer as it accumulates: text, thinking, who answered, usage, how it ended.

    ``status`` goes ``streaming`` -> ``ok`` | ``error`` | ``interrupted``, only
    through :meth:`end`.  ``model`` is the model asked for (or, when none was,
    the one that answered); ``model_used`` the one the service says answered,
    when it named another (else ``""``).
    """

    def __init__(self, provider: str = "", model: str = ""):
        self.provider = provider
        self.model = model
        self.model_used = ""
        self.status = "streaming"
        self.error: BaseException | None = None
        self.parts: list[str] = []
        self.reasoning_parts: list[str] = []
        self.chunks = 0
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.failed_first: tuple[str, ...] = ()
        self.sources: list[tuple[str, str]] = []
        self.media: list[Media] = []
        self.tool_calls: list[str] = []
        self.login: LoginRequired | None = None
        self.ignored: collections.Counter[str] = collections.Counter()
        self.notes: list[str] = []  #: one-line notes for the user (ignored options...)
        self.started = time.monotonic()
        self.first_token: float | None = None
        self.ended: float | None = None
        self._text: str | None = ""
        self._think = ThinkSplitter()

    def feed(self, item: Any) -> bool:
        """Take one stream item; True when what the user sees changed."""
        event = normalize(item)
        if isinstance(event, str):
            if not event:
                return False
            if self._think.plain(event):  # the common case: no tag in or around it
                return self._add_text(event)
            return self._add_all(self._think.feed(event))
        if isinstance(event, Reasoning):
            return self._add_reasoning(event.text)
        if isinstance(event, FinishReason):
            self.finish_reason = event.reason
        elif isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, ModelUsed):  # none asked for: the one that answered is the model
            self.model, self.model_used = (event.model, "") if not self.model else (self.model, event.model)
            if self.model_used == self.model:
                self.model_used = ""
        elif isinstance(event, ProviderUsed):  # another provider answers from here on (Fallback)
            self.settle()
            self._think = ThinkSplitter()
            self.provider, self.model, self.model_used = event.name, event.model or self.model, ""
            self.failed_first = event.failed or self.failed_first
        elif isinstance(event, Sources):
            self.sources.extend(u for u in event.items if u not in self.sources)
        elif isinstance(event, Media):
            self.media.append(event)
        elif isinstance(event, ToolCalls):
            self.tool_calls.extend(event.names)
        elif isinstance(event, LoginRequired):
            self.login = event
        elif isinstance(event, Note):
            if event.text not in self.notes:
                self.notes.append(event.text)
        elif event is None and item is not None:
            self.ignored[kind_of(item)] += 1
            return False
        if isinstance(event, ANSWER_EVENTS):
            self._first()
            return True
        return False

    def _add_text(self, text: str) -> bool:
        self.parts.append(text)
        self.chunks += 1
        self._text = None
        self._first()
        return True

    def _add_reasoning(self, text: str) -> bool:
        if text:
            self.reasoning_parts.append(text)
            self._first()
        return bool(text)

    def _add_all(self, pieces: list[str | Reasoning]) -> bool:
        changed = False
        for piece in pieces:
            changed = (self._add_reasoning(piece.text) if isinstance(piece, Reasoning)
                       else self._add_text(piece)) or changed
        return changed

    def settle(self) -> bool:
        """The stream is over: what was held back as maybe the start of a ``<think>`` tag is what
        it is (text, or thinking inside an unclosed tag).  :meth:`end` calls it; idempotent."""
        return self._add_all(self._think.close())

    def _first(self) -> None:
        if self.first_token is None:
            self.first_token = time.monotonic()

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = "".join(self.parts)
            self.parts = [self._text]
        return self._text

    @property
    def reasoning(self) -> str:
        return "".join(self.reasoning_parts)

    @property
    def has_answer(self) -> bool:
        """Text, or something that stands for an answer (tool calls, media, a login link)."""
        return bool(self.text or self.tool_calls or self.media or self.login)

    def end(self, status: str, error: BaseException | None = None) -> None:
        """``ok``, ``error`` (with the exception) or ``interrupted``; the first call wins."""
        if self.status != "streaming":
            return
        self.settle()
        self.status, self.error = status, error
        self.ended = time.monotonic()

    def elapsed(self) -> float:
        return (self.ended or time.monotonic()) - self.started


async def stream(request: ChatRequest, on_item: Callable[[Any], None]) -> None:
    """Run the provider's generator to the end, handing every item to ``on_item``."""
    gen = request.provider.create_async_generator(request.model, request.messages,
                                                  proxy=request.proxy, **request.kwargs)
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    last = loop.time()
    deadline = last  # pause after the first item: it is shown at once, even in a burst
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
            answering = answering or is_content(item)
            last = loop.time()
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

    def __init__(self, request: ChatRequest, answer: Answer, renderer: Any):
        self.request = request
        self.answer = answer
        self.renderer = renderer
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

    async def _pump(self) -> None:
        self._task = asyncio.current_task()
        try:
            if not self._cancelled:  # not stopped before it started
                await stream(self.request, self._on_item)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # reported to the renderer, not raised in the worker
            self._error = exc
        finally:
            self._finished.set()
            self._wake.set()

    # -- the rendering side --------------------------------------------------------
    def _drain(self) -> bool:
        with self._lock:
            items, self._buffer = self._buffer, []
            self._wake.clear()
        changed = False
        for item in items:
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
        self._loop.submit(self._pump())
        self.renderer.prepare()  # while the request is on its way
        try:
            self._drive()
        except KeyboardInterrupt:
            self.cancel()
            try:
                self._finished.wait(CANCEL_GRACE)
            except KeyboardInterrupt:  # a second interrupt while closing: stop waiting, keep what came
                pass
            self._drain()
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


def run_blocking(request: ChatRequest, answer: Answer, renderer: Any) -> Answer:
    """Stream ``request`` into ``answer`` on the worker loop; render on this thread (``%%chat``).

    Returns with ``answer.status`` one of ``ok``, ``error`` (``answer.error``
    set) or ``interrupted`` (KeyboardInterrupt while streaming: the request is
    cancelled and its connection closed before this returns).
    """
    return Run(request, answer, renderer).run()

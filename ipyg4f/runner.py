"""Drive one provider stream: accumulate the answer, hand chunks to a renderer, cancel.

Two ways to run the same :func:`stream` coroutine:

* :func:`run_blocking` (``%%chat``): the coroutine runs on a private event
  loop in ONE daemon worker thread, while the cell's own thread waits, renders
  at a throttled rate, and turns ``KeyboardInterrupt`` (kernel interrupt,
  Ctrl-C) into a cancellation.  Why not nest_asyncio/nest_asyncio2?  Measured
  here: the archived ``nest_asyncio`` wedges ipykernel 7 as soon as another
  cell is queued (Run All); ``nest_asyncio2`` works, but it patches the
  kernel's loop for the whole process.  The worker thread needs no patch at
  all, works the same in ipykernel 6, 7 and terminal IPython, and the render
  (display calls) stays on the cell's thread, so output always lands in the
  right cell.  Chunks cross threads in batches under one lock, so a fast
  stream costs one wake-up per batch, not per chunk.
* ``await stream(...)`` (the panel): directly as a task on the kernel's
  running loop, so the kernel stays free for other cells.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import describe
from .providers.base import FinishReason, Marker, ProviderUsed
from .messages import Messages

#: how long an interrupted stream may take to close its connection
CANCEL_GRACE = 2.0
#: longest stretch (seconds) a stream keeps the loop (and the GIL) while data is buffered,
#: and how long it then pauses
YIELD_EVERY = 0.002
YIELD_PAUSE = 0.0005


@dataclass
class ChatRequest:
    provider: Any
    provider_name: str
    model: str
    messages: Messages
    proxy: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


class Answer:
    """The answer as it accumulates: text, who answered, how it ended."""

    def __init__(self, provider: str = "", model: str = ""):
        self.provider = provider
        self.model = model
        self.parts: list[str] = []
        self.chunks = 0
        self.finish_reason: str | None = None
        self.status = "streaming"
        self.error: BaseException | None = None
        self._text: str | None = ""

    def feed(self, item: Any) -> None:
        if isinstance(item, ProviderUsed):
            self.provider = item.name
            self.model = item.model or self.model
        elif isinstance(item, FinishReason):
            self.finish_reason = item.reason
        elif isinstance(item, Marker) or item is None:
            return
        else:
            piece = item if isinstance(item, str) else str(item)
            if piece:
                self.parts.append(piece)
                self.chunks += 1
                self._text = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = "".join(self.parts)
            self.parts = [self._text]
        return self._text

    @property
    def error_message(self) -> str:
        return describe(self.error) if self.error is not None else ""


async def stream(request: ChatRequest, on_item: Callable[[Any], None]) -> None:
    """Run the provider's generator to the end, handing every item to ``on_item``."""
    gen = request.provider.create_async_generator(request.model, request.messages,
                                                  proxy=request.proxy, **request.kwargs)
    loop = asyncio.get_running_loop()
    deadline = loop.time()  # pause after the first chunk: it is shown at once, even in a burst
    try:
        async for item in gen:
            on_item(item)
            # aiohttp hands buffered data over without suspending.  Every YIELD_EVERY
            # seconds of such work, pause briefly: a real sleep, not sleep(0), so the loop
            # waits in select() without the GIL and the kernel's other threads (iopub,
            # shell) and other tasks on a shared loop (the panel's) get their turn
            if loop.time() >= deadline:
                await asyncio.sleep(YIELD_PAUSE)
                deadline = loop.time() + YIELD_EVERY
    finally:
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


def run_blocking(request: ChatRequest, answer: Answer, renderer: Any) -> Answer:
    """Stream ``request`` into ``answer`` on the worker loop; render on this thread.

    ``renderer`` has ``update(text_fn)``, ``pending()``, ``flush()`` and
    ``wait_time()`` (see :class:`ipyg4f.render.CellRenderer`).

    Returns with ``answer.status`` one of ``ok``, ``error`` (``answer.error``
    set) or ``interrupted`` (KeyboardInterrupt while streaming: the request
    is cancelled and its connection closed before this returns).
    """
    lock = threading.Lock()
    wake = threading.Event()
    finished = threading.Event()
    buffer: list[Any] = []
    outcome: list[BaseException] = []

    def on_item(item: Any) -> None:
        with lock:
            buffer.append(item)
            if not wake.is_set():  # one wake-up per batch, not per chunk
                wake.set()

    async def pump() -> None:
        try:
            await stream(request, on_item)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # reported to the cell, not raised in the worker
            outcome.append(exc)
        finally:
            finished.set()
            wake.set()

    def drain() -> bool:
        with lock:
            items = buffer[:]
            buffer.clear()
            wake.clear()
        for item in items:
            answer.feed(item)
        return bool(items)

    future = LoopThread.get().submit(pump())
    try:
        while True:
            if renderer.pending():
                # an update is due later: sleep until then (or the end), however many
                # chunks arrive meanwhile, so a fast stream costs no wake-up per chunk
                finished.wait(renderer.wait_time())
            else:
                wake.wait()  # the next chunk, or the end
            if finished.is_set():  # the final render follows: no update for the last batch
                drain()
                break
            if drain():
                renderer.update(lambda: answer.text)
            elif renderer.pending():
                renderer.flush()
    except KeyboardInterrupt:
        future.cancel()
        try:
            finished.wait(CANCEL_GRACE)
        except KeyboardInterrupt:  # a second interrupt while closing: stop waiting, keep what came
            pass
        drain()
        answer.status = "interrupted"
        return answer
    if outcome:
        answer.error = outcome[0]
        answer.status = "error"
    else:
        answer.status = "ok"
    return answer

"""Several provider streams as one, for one :class:`~ipyg4f.runner.Run`: items tagged by column."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..answer import Answer
from ..events import is_content
from ..runner import ChatRequest, stream


class _End:
    """Column ``i``'s stream ended (``error`` None: fine), at ``at`` (``time.monotonic``)."""

    __slots__ = ("error", "at")

    def __init__(self, error: BaseException | None = None):
        self.error, self.at = error, time.monotonic()


class _First:
    """Column ``i``'s first piece of an answer arrived at ``at``: its first token is timed on arrival, not when
    the cell's thread, held back by the throttle while another column streams, takes it."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at = time.monotonic()


class Multiplex:
    """A provider-like object for :class:`~ipyg4f.runner.Run`: every request at once, items tagged
    ``(column, item)``; a column's end (or failure) is an item too, so one column failing stops no other."""

    name = "compare"
    enforces_timeout = True  # each request is watched on its own, by runner.stream

    def __init__(self, requests: list[ChatRequest]):
        self.requests = requests

    async def create_async_generator(self, model: str, messages: Any, proxy: str | None = None, **_: Any):
        out: list[tuple[int, Any]] = []
        ready = asyncio.Event()

        def put(i: int, item: Any) -> None:
            out.append((i, item))
            ready.set()

        async def one(i: int, request: ChatRequest) -> None:
            answering = False

            def on_item(item: Any) -> None:
                nonlocal answering
                if not answering and is_content(item):
                    answering = True
                    put(i, _First())
                put(i, item)

            try:
                await stream(request, on_item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # this column failed; the others go on
                put(i, _End(exc))
            else:
                put(i, _End())

        tasks = [asyncio.ensure_future(one(i, r)) for i, r in enumerate(self.requests)]
        left = len(tasks)
        try:
            while left:
                await ready.wait()
                ready.clear()
                items, out[:] = out[:], []
                for item in items:
                    left -= isinstance(item[1], _End)
                    yield item
        finally:  # an interrupt: every column stops, and its connection is closed before this returns
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class Columns:
    """The answer of a compare run: one :class:`Answer` per column, fed ``(column, item)`` pairs."""

    def __init__(self, answers: list[Answer]):
        self.answers = answers
        self.provider = Multiplex.name

    @property
    def size(self) -> int:
        return sum(a.size for a in self.answers)

    @property
    def text(self) -> str:
        """Every column's text (what :class:`~ipyg4f.render.saving.SavingRenderer` asks, once a second)."""
        texts = [a.text for a in self.answers]
        return "\x00".join(texts) if any(texts) else ""

    @property
    def reasoning(self) -> str:
        return "\x00".join(a.reasoning for a in self.answers)

    def feed(self, tagged: Any) -> bool:
        i, item = tagged
        answer = self.answers[i]
        if isinstance(item, _End):
            answer.end("error" if item.error is not None else "ok", item.error)
            answer.ended = min(answer.ended or item.at, item.at)
            return True
        if isinstance(item, _First):
            answer.first_token = answer.first_token or item.at
            return False
        return answer.feed(item)

    def end(self, status: str, error: BaseException | None = None) -> None:
        """The run ended: a column still streaming ends the same way (an interrupt: every one)."""
        for answer in self.answers:
            answer.end(status, error)

    @property
    def status(self) -> str:
        statuses = {a.status for a in self.answers}
        if "ok" in statuses:
            return "ok"
        return "interrupted" if "interrupted" in statuses else "error"

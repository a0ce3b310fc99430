"""One batch on the worker loop: workers take items in order, retry what may pass, store each as it ends.

:class:`Plan` is what every item is sent with; :class:`BatchJob` runs the
items (``concurrency`` worker tasks sharing the input's iterator, so memory
stays flat), retries failures that may pass (:func:`retryable`) after an
exponential backoff or the server's ``Retry-After`` (a 429 holds every worker
back), stops on a failure no item can get past (:data:`FATAL`), and keeps
counters that any thread may read for progress.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import random
import time
from dataclasses import dataclass
from typing import Any, Mapping

from .. import http
from . import structured
from .data import BatchResult, Source, request_key
from .progress import Progress
from ..errors import (AllProvidersFailedError, AuthError, HTTPStatusError, MissingExtraError, ModelNotFoundError,
                     ProviderError, RateLimitError, UnknownProviderError, describe)
from ..history import OK, BatchRow, HistoryStore
from ..pricing.budget import answer_cost, batch_rate
from ..pricing.fit import estimate_tokens
from ..pricing.meter import money
from ..runner import Answer, ChatRequest, LoopThread, stream
from ..template import fill_template

__all__ = ["Plan", "BatchJob", "retryable", "retry_after", "FATAL"]

#: failures after which no other item can succeed either: the batch stops
FATAL = (AuthError, ModelNotFoundError, UnknownProviderError, MissingExtraError)
#: HTTP statuses (besides 5xx) worth another try
RETRY_STATUS = frozenset({408, 409, 425, 429})
#: longest wait honoured from a Retry-After header, and longest backoff (seconds)
MAX_WAIT = 120.0
MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class Plan:
    """What every item is sent with, resolved once: provider, model, system prompt, options."""

    template: str
    namespace: Mapping[str, Any]
    provider: Any
    model: str
    system: str
    kwargs: dict[str, Any]
    proxy: str | None = None
    timeout: float | None = None
    json: bool = False
    schema: Any = None

    def prompt(self, fields: Mapping[str, Any]) -> str:
        return fill_template(self.template, _Layered(fields, self.namespace))

    def messages(self, prompt: str) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return [*head, {"role": "user", "content": prompt}]

    def key(self, messages: list[dict[str, str]]) -> str:
        return request_key(self.provider.name, self.model, messages, self.kwargs)

    def request(self, messages: list[dict[str, str]]) -> ChatRequest:
        return ChatRequest(self.provider, self.model, messages, self.proxy, self.kwargs, self.timeout)

    def value(self, text: str) -> Any:
        """The item's value: the text, or its JSON checked against the schema (raises InvalidAnswer)."""
        return structured.validate(structured.parse(text), self.schema) if self.json else text


class _Layered(Mapping):
    """The item's fields over the namespace, without copying the namespace."""

    def __init__(self, fields: Mapping[str, Any], namespace: Mapping[str, Any]):
        self.fields, self.namespace = fields, namespace

    def __getitem__(self, name: str) -> Any:
        return self.fields[name] if name in self.fields else self.namespace[name]

    def __iter__(self):
        return iter({**self.namespace, **self.fields})

    def __len__(self) -> int:
        return len({**self.namespace, **self.fields})


def retryable(exc: BaseException) -> bool:
    """Whether another try may succeed."""
    if isinstance(exc, structured.InvalidAnswer):
        return True
    if isinstance(exc, HTTPStatusError):
        return exc.status in RETRY_STATUS or exc.status >= 500
    return isinstance(exc, ProviderError) and not isinstance(exc, FATAL)


def retry_after(exc: BaseException) -> float | None:
    """The wait a server asked for (for the fallback provider: the longest any candidate asked)."""
    if isinstance(exc, AllProvidersFailedError):
        waits = [w for _, e in exc.failures if (w := retry_after(e)) is not None]
        return max(waits) if waits else None
    return getattr(exc, "retry_after", None)


class BatchJob:
    """One batch on the worker loop; read its progress and result from any thread.

    :meth:`start` submits it; :meth:`wait`, :meth:`snapshot`, :meth:`cancel`
    and :meth:`result` may be called from any thread.
    """

    def __init__(self, plan_: Plan, items: Source, *, store: HistoryStore | None, concurrency: int = 8,
                 retries: int = 2, refresh: bool = False, backoff: float = 0.5, notes: list[str] | None = None,
                 budget: float | None = None):
        if concurrency < 1 or retries < 0:
            raise ValueError("concurrency must be at least 1 and retries at least 0")
        if budget is not None and not budget > 0:
            raise ValueError(f"the budget must be more than 0 USD, not {budget}")
        #: --budget (USD): once the answers' cost reaches it no item is started (ipyg4f.pricing.budget)
        self.budget, self.spent = budget, 0.0
        self.rate = batch_rate(plan_) if budget is not None else None
        self.estimate: Any = None  #: the cost estimate said before the batch starts (with a budget)
        self.plan, self.source, self.store = plan_, items, store
        self.concurrency, self.retries, self.refresh, self.backoff = concurrency, retries, refresh, backoff
        self.notes = list(notes or [])
        total = items.total
        self.values: list[Any] = [None] * total
        self.errors: dict[int, str] = {}
        self.ended = bytearray(total)  # 1 once an item has its answer or its failure
        self.done = self.failed = self.cached = self.sent = self.requests = 0
        self.reused = 0  #: items answered by the same prompt sent earlier in this run (not counted as sent)
        self._asked: dict[str, asyncio.Future] = {}  # prompt key -> (value, error, from the store) of its first item
        self._repeated: set[str] = set()  # keys of prompts sent once and used again
        self.started = time.monotonic()
        self.first_sent: float | None = None
        self.finished_at: float | None = None
        self.stop_reason = ""
        self.cancelled = False
        self._pause_until = 0.0
        self._future: concurrent.futures.Future | None = None
        self._task: asyncio.Task | None = None
        self._loop: LoopThread | None = None

    # -- any thread ----------------------------------------------------------------
    def start(self) -> "BatchJob":
        self._loop = LoopThread.get()
        self._future = self._loop.submit(self._main())
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """True once the batch has ended (False after ``timeout``)."""
        done, _ = concurrent.futures.wait([self._future], timeout)
        return bool(done)

    @property
    def future(self) -> concurrent.futures.Future:
        return self._future

    def cancel(self) -> None:
        """Stop: in-flight requests are cancelled (their connections closed); finished items stay."""
        self.cancelled = True
        if self._loop is not None:
            self._loop.loop.call_soon_threadsafe(self._cancel_task)

    def snapshot(self) -> Progress:
        now = time.monotonic()
        total, done, failed = self.source.total, self.done, self.failed
        rate = 0.0
        if self.first_sent is not None and now > self.first_sent:
            rate = (done + failed - self.cached - self.reused) / (now - self.first_sent)
        eta = (total - done - failed) / rate if rate > 0 else None
        return Progress(done, failed, total, rate, eta)

    def result(self) -> BatchResult:
        """What has ended so far, aligned with the input (call after :meth:`wait`)."""
        future = self._future
        if future is not None and future.done() and not future.cancelled() and future.exception() is not None:
            raise future.exception()
        pending = [i for i, ended in enumerate(self.ended) if not ended]
        status = "interrupted" if self.cancelled and pending else "stopped" if self.stop_reason else "ok"
        elapsed = (self.finished_at or time.monotonic()) - self.started
        return BatchResult(list(self.values), errors=dict(self.errors), pending=pending, index=self.source.index,
                           status=status, stop_reason=self.stop_reason, cached=self.cached, sent=self.sent,
                           elapsed=elapsed, notes=self.notes, reused=self.reused, repeated=len(self._repeated))

    # -- the worker loop -----------------------------------------------------------
    def _cancel_task(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _main(self) -> None:
        self._task = asyncio.current_task()
        try:
            if not self.cancelled:
                async with http.pooled(), asyncio.TaskGroup() as group:  # kept-alive connections
                    # a provider that answers one request at a time (Local) gets one worker: more
                    # would only wait their turn, and the wait would count against the timeout
                    limit = self.plan.provider.max_concurrency or self.concurrency
                    for _ in range(min(self.concurrency, limit, self.source.total)):
                        group.create_task(self._worker())
        except asyncio.CancelledError:
            pass  # interrupted: what has ended is kept
        finally:
            self.finished_at = time.monotonic()

    async def _worker(self) -> None:
        for position, fields in self.source.items:  # shared: each next() hands one item to one worker
            if self.stop_reason:
                return
            await self._item(position, fields)

    async def _item(self, position: int, fields: Mapping[str, Any]) -> None:
        prompt = self.plan.prompt(fields)
        messages = self.plan.messages(prompt)
        key = self.plan.key(messages)
        first = self._asked.get(key)
        if first is not None:  # the same prompt earlier in this run: sent once, its answer used again
            value, error, stored = await asyncio.shield(first)
            if stored:
                self.cached += 1
            else:
                self.reused += 1
                self._repeated.add(key)
            self._end(position, value if isinstance(value, str) else copy.deepcopy(value), error)
            return
        self._asked[key] = first = asyncio.get_running_loop().create_future()
        try:
            value, error, stored = await self._answer(prompt, messages, key)
        except BaseException:
            first.cancel()
            raise
        first.set_result((value, error, stored))
        if stored:
            self.cached += 1
        self._end(position, value, error)

    async def _answer(self, prompt: str, messages: list[dict[str, str]],
                      key: str) -> tuple[Any, str | None, bool]:
        """One prompt's (value, failure reason or None, whether it came from the store)."""
        if not self.refresh and (row := self._stored(key)) is not None and row.status == OK:
            try:
                return self.plan.value(row.answer), None, True
            except structured.InvalidAnswer:
                pass  # stored before under other rules: ask again
        self.sent += 1
        if self.first_sent is None:
            self.first_sent = time.monotonic()
        answer, value, error, tries = await self._ask(messages)
        self._spend(answer, messages)
        reason = "" if error is None else describe(error) + (f" ({tries} tries)" if tries > 1 else "")
        self._put(BatchRow(key, prompt, answer.text, answer.provider, answer.model,
                           OK if error is None else "error", http.redact(reason), answer.elapsed(), time.time()))
        if error is not None and isinstance(error, FATAL):
            self.stop_reason = self.stop_reason or http.redact(describe(error))
        return value, None if error is None else http.redact(reason), False

    async def _ask(self, messages: list[dict[str, str]]) -> tuple[Answer, Any, BaseException | None, int]:
        """Send one item, with retries: (answer, value, the last error or None, tries)."""
        loop = asyncio.get_running_loop()
        for attempt in range(self.retries + 1):
            while (wait := self._pause_until - loop.time()) > 0:  # a 429 holds every worker back
                await asyncio.sleep(wait)
            answer = Answer(self.plan.provider.name, self.plan.model)
            self.requests += 1
            try:
                await stream(self.plan.request(messages), answer.feed)
                answer.settle()  # the end of the text: what was held back as maybe a <think> tag
                if not answer.text:
                    raise ProviderError(f"{answer.provider or self.plan.provider.name} answered nothing")
                value = self.plan.value(answer.text)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the item's failure, reported with it; other items go on
                answer.end("error", exc)
                if attempt == self.retries or not retryable(exc):
                    return answer, None, exc, attempt + 1
                await asyncio.sleep(self._delay(exc, attempt, loop))
            else:
                answer.end("ok")
                return answer, value, None, attempt + 1
        raise AssertionError("unreachable")  # pragma: no cover

    def _delay(self, exc: BaseException, attempt: int, loop: asyncio.AbstractEventLoop) -> float:
        wait = retry_after(exc)
        if wait is None:
            wait = min(MAX_BACKOFF, self.backoff * 2 ** attempt) * random.uniform(0.5, 1.0)
        wait = min(wait, MAX_WAIT)
        if isinstance(exc, RateLimitError) or retry_after(exc) is not None:
            self._pause_until = max(self._pause_until, loop.time() + wait)
        return wait

    def _stored(self, key: str) -> BatchRow | None:
        if self.store is None:
            return None
        try:
            return self.store.batch_get(key)
        except Exception as exc:  # an unreadable store: the item is sent
            self._note(f"stored results could not be read: {describe(exc)}")
            return None

    def _put(self, row: BatchRow) -> None:
        if self.store is None:
            return
        try:
            self.store.batch_put(row)
        except Exception as exc:  # a full disk must not lose the answer: it is in the result
            self._note(f"not saved to the store: {http.redact(describe(exc))}")

    def _spend(self, answer: Answer, messages: list[dict[str, str]]) -> None:
        if self.rate is None:
            return
        self.spent += answer_cost(answer, self.rate, estimate_tokens(messages))
        if self.spent >= self.budget and not self.stop_reason:
            self.stop_reason = (f"the budget of {money(self.budget)} is spent ({money(self.spent)}); finished items "
                                "are kept: run the cell again with a new --budget to go on")

    def _note(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)

    def _end(self, position: int, value: Any, error: str | None) -> None:
        self.values[position] = value
        self.ended[position] = 1
        if error is None:
            self.done += 1
        else:
            self.errors[position] = error
            self.failed += 1

"""Batch prompting: one template sent once per item of the data, answers aligned with the input.

``ipyg4f.map(template, data, ...)`` (and :func:`run_batch`, the same without
a display; :func:`amap`, its ``async`` twin; :func:`start`, in the background):

* each item is ONE user message (the filled template) plus the system prompt,
  never the thread's history; ``{item}``, ``{index}``, ``{col}`` / ``{row.col}``
  fill from the item (:mod:`ipyg4f.batch.data`), the rest from ``namespace``;
* it runs on the runner's worker loop (:class:`~ipyg4f.runner.LoopThread`):
  ``concurrency`` worker tasks take items in order (memory stays flat however
  many items there are), each item through :func:`ipyg4f.runner.stream`, so the
  runner's timeout and typed events apply; a Fallback provider falls back per
  item;
* a failed item is tried ``retries`` more times when the failure may pass
  (HTTP 429/5xx, timeouts, broken streams, invalid JSON), after an exponential
  backoff or the server's ``Retry-After`` (a 429 holds every worker back);
  a failure no item can get past (wrong key, unknown model) stops the batch;
* every item is stored as soon as it ends (``batch_result`` in the history
  store), keyed by its filled prompt, provider, model, system prompt and
  parameters; a re-run takes answers from there and sends only new, changed or
  failed items (``refresh=True`` sends everything);
* the calling thread only waits and shows progress; KeyboardInterrupt cancels
  what is in flight within a second and returns what has finished.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Mapping

from . import structured
from .data import BatchResult, source
from .job import BatchJob, Plan
from .progress import Throttled, renderer, report
from ..history import HistoryStore
from ..providers.fallback import Fallback
from ..runner import CANCEL_GRACE
from ..template import user_namespace

__all__ = ["run_batch", "map", "amap", "start", "BatchJob", "BatchResult", "Plan", "plan"]

#: how often (seconds) the waiting thread wakes to show progress and notice an interrupt
POLL = 0.1
#: the thread name under which the shared request options are resolved: it has no history
_NO_THREAD = "\x00ipyg4f-batch"


def plan(template: str, *, chat: Any = None, provider: Any = None, model: str | None = None,
         system: str | None = None, json: bool = False, schema: Any = None, temperature: float | None = None,
         max_tokens: int | None = None, timeout: float | None = None, proxy: str | None = None,
         options: Mapping[str, Any] | None = None,
         namespace: Mapping[str, Any] | None = None) -> tuple[Plan, list[str]]:
    """The :class:`Plan` of a batch and one-line notes (options the provider ignores...).

    Defaults (provider, model, system prompt, temperature, timeout, proxy,
    ``provider_options``, the fallback list) come from ``chat``'s settings,
    exactly as for ``%%chat``; raises for an unknown provider or model or a bad schema.
    """
    chat = chat if chat is not None else current_chat()
    if schema is not None:
        structured.check_schema(schema)
        json = True
    extra = {"max_tokens": max_tokens, **(options or {})}
    base, notes = chat.request("", cell_id=_NO_THREAD, provider=provider, model=model, system=system,
                               thread=_NO_THREAD, temperature=temperature, proxy=proxy, timeout=timeout, extra=extra)
    system_text = next((m["content"] for m in base.messages if m.get("role") == "system"), "")
    kwargs = dict(base.kwargs)
    if json:
        system_text = f"{system_text}\n\n{structured.instruction(schema)}".strip()
        # where the provider declares it; never through Fallback, which hands options to every candidate
        if "response_format" in base.provider.options and not issubclass(base.provider, Fallback):
            kwargs["response_format"] = {"type": "json_object"}
    if namespace is None:
        shell = getattr(chat, "shell", None)
        namespace = user_namespace(shell) if shell is not None else {}
    return Plan(template, namespace, base.provider, base.model, system_text, kwargs, base.proxy, base.timeout,
                json, schema), notes


def current_chat() -> Any:
    """The chat state of the running shell when the extension is loaded, else a fresh one (no side effects)."""
    from ..chat import Chat, get_chat

    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - IPython is a dependency
        shell = None
    if shell is not None and "ipyg4f" in getattr(shell.extension_manager, "loaded", ()):
        return get_chat(shell)
    return Chat(shell)


# -- the entry points ------------------------------------------------------------------------

def job(template: str, data: Any, *, concurrency: int = 8, retries: int = 2, refresh: bool = False,
        store: HistoryStore | None = None, backoff: float = 0.5, chat: Any = None, budget: float | None = None,
        **options: Any) -> BatchJob:
    """A :class:`BatchJob`, not started; ``options`` are those of :func:`plan`.  ``budget`` (USD; default
    ``ChatConfig.budget``): the batch stops once its answers cost that much (:mod:`ipyg4f.pricing.budget`)."""
    chat = chat if chat is not None else current_chat()
    plan_, notes = plan(template, chat=chat, **options)
    store = store if store is not None else chat.store
    budget = budget if budget is not None else getattr(getattr(chat, "config", None), "budget", None)
    items = source(data)
    job_ = BatchJob(plan_, items, store=store, concurrency=concurrency, retries=retries, refresh=refresh,
                    backoff=backoff, notes=notes, budget=budget)
    if budget is not None:  # the estimate reads every item first: the items are kept for the run
        from ..pricing.budget import estimate

        pairs = list(items.items)
        items.items = iter(pairs)
        job_.estimate = estimate(plan_, (fields for _, fields in pairs),
                                 lambda key: not refresh and _answered(store, key), budget)
    return job_


def _answered(store: HistoryStore | None, key: str) -> bool:
    try:
        row = store.batch_get(key) if store is not None else None
    except Exception:  # an unreadable store: the item will be sent
        return False
    return row is not None and row.status == "ok"


def drive(job_: BatchJob, on_progress: Callable[..., Any] | None = None) -> BatchResult:
    """Start ``job_`` and wait on this thread, reporting progress; KeyboardInterrupt cancels it.

    Returns the result either way (``status`` ``interrupted`` after an interrupt).
    """
    progress = Throttled(on_progress) if on_progress is not None else None
    job_.start()
    try:
        while not job_.wait(POLL):
            if progress is not None:
                progress(job_.snapshot())
    except KeyboardInterrupt:
        job_.cancel()
        try:
            job_.wait(CANCEL_GRACE)
        except KeyboardInterrupt:  # a second interrupt while closing: stop waiting, keep what ended
            pass
    if progress is not None:
        progress(job_.snapshot(), final=True)
    return job_.result()


def run_batch(template: str, data: Any, *, on_progress: Callable[..., Any] | None = None,
              **options: Any) -> BatchResult:
    """Run a batch, blocking this thread (not the kernel's loop); see the module docstring.

    ``options``: ``provider``, ``model``, ``system``, ``concurrency`` (8), ``retries`` (2),
    ``json``, ``schema``, ``refresh``, ``namespace``, ``store``, ``temperature``,
    ``max_tokens``, ``timeout``, ``proxy``, ``options`` (more provider options, e.g. ``base_url``),
    ``chat``, ``backoff`` (seconds before the first retry, doubled each time).
    ``on_progress(done, failed, total, rate, eta)``: at most 10 calls a second, and one at the end.
    """
    return drive(job(template, data, **options), on_progress)


def map(template: str, data: Any, *, progress: str | bool = "auto", on_progress: Callable[..., Any] | None = None,
        **options: Any) -> BatchResult:
    """:func:`run_batch` with a progress display (a widget bar in a kernel, a text line elsewhere) and a summary."""
    job_ = job(template, data, **options)
    if job_.estimate is not None:
        print(job_.estimate.line())
    display = renderer(progress, job_.source.total)
    callbacks = [c for c in (display, on_progress) if c is not None]
    result = drive(job_, (lambda *a: [c(*a) for c in callbacks]) if callbacks else None)
    if display is not None:
        display.close(result)
        print(report(result))
    return result


async def amap(template: str, data: Any, *, on_progress: Callable[..., Any] | None = None,
               **options: Any) -> BatchResult:
    """:func:`run_batch` for ``await``: the batch runs on the worker loop, this loop stays free.

    Cancelling the awaiting task cancels the batch; what has ended is in the store.
    """
    job_ = job(template, data, **options).start()
    progress = Throttled(on_progress) if on_progress is not None else None
    waiter = asyncio.wrap_future(job_.future)
    try:
        while not (await asyncio.wait({waiter}, timeout=POLL))[0]:
            if progress is not None:
                progress(job_.snapshot())
    except asyncio.CancelledError:
        job_.cancel()
        await asyncio.wait({waiter}, timeout=CANCEL_GRACE)
        raise
    if progress is not None:
        progress(job_.snapshot(), final=True)
    return job_.result()


def start(template: str, data: Any, *, progress: str | bool = "auto", **options: Any) -> BatchJob:
    """Run a batch in the background: returns its :class:`BatchJob` at once (``.wait()``, ``.result()``,
    ``.cancel()``); the kernel runs other cells meanwhile.  In a kernel a widget bar shows its progress."""
    job_ = job(template, data, **options)
    display = renderer("widget", job_.source.total) if progress and _in_kernel() else None
    job_.start()
    if display is not None:
        import threading

        def follow() -> None:
            update = Throttled(display)
            while not job_.wait(POLL):
                update(job_.snapshot())
            update(job_.snapshot(), final=True)
            display.close(job_.result())

        threading.Thread(target=follow, name="ipyg4f-batch-progress", daemon=True).start()
    return job_


def _in_kernel() -> bool:
    from .progress import in_kernel

    return in_kernel()

"""Try providers in order until one answers (gpt4free's retry idea, done right), or race them.

Each provider is tried as it is configured alone (a :class:`~ipyg4f.providers.setup.Setup`:
its model, base URL, key and ``provider_options``), and each gets its own
``timeout``: one that says nothing for that long is abandoned and the next is
tried (a provider that enforces the timeout itself, like Local, whose model
load is work and not silence, is left to do so).  Falls back only while no
answer text has arrived (a half answer from one provider is never glued to
another's; events such as reasoning or usage held before the first text are
dropped with the provider that sent them), yields :class:`ProviderUsed` before
the first text so the caller knows who answered and who failed first (each
with its reason in a word or two), and when every provider fails raises one
:class:`~ipyg4f.errors.AllProvidersFailedError` listing each provider's own failure.

``mode="race"`` (``--race``, ``ChatConfig.fallback_mode``) sends the request to every provider at
once: the first to send answer text wins and the others are cancelled at that moment (their
connections closed); :class:`ProviderUsed` names the winner and each loser as ``"NAME: cancelled"``
(or its own failure, when it failed before the winner answered).
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, ClassVar, Sequence

from .. import errors
from ..errors import AllProvidersFailedError, ProviderError, ProviderTimeoutError
from ..events import ANSWER_EVENTS, Event, ProviderUsed, normalize
from .base import OPTION_FLAGS, AsyncGeneratorProvider, AsyncResult, Messages


class Fallback(AsyncGeneratorProvider):
    label = "tries the working providers in order until one answers (or races them)"
    supports_stream = True
    supports_system_message = True
    supports_message_history = True
    options = frozenset(OPTION_FLAGS)  # handed on to each provider it tries
    enforces_timeout = True  # each provider's silence is timed on its own
    combines = True
    #: provider names to try; None -> every available registered provider
    providers: ClassVar[Sequence[Any] | None] = None

    @classmethod
    def candidates(cls, model: str | None = None, providers: Sequence[Any] | None = None) -> list[Any]:
        from . import get_provider, provider_names

        names = providers if providers is not None else cls.providers
        if names is not None:
            return [get_provider(n) for n in names]
        found = []
        for name in provider_names():
            try:
                p = get_provider(name)
            except Exception:
                continue
            if issubclass(p, Fallback):
                continue
            if p.is_available() and p.accepts_model(model):
                found.append(p)
        return found

    @classmethod
    async def create_async_generator(cls, model: str, messages: Messages, proxy: str | None = None,
                                     *, providers: Sequence[Any] | None = None, timeout: float | None = None,
                                     mode: str = "order", **kwargs: Any) -> AsyncResult:
        """``providers``: set-ups (used as they are), names or classes (resolved here, with ``model``
        and ``kwargs`` for each); None: :attr:`providers`, else every available one that takes ``model``.
        ``mode``: ``order`` (one after another) or ``race`` (all at once, the first to answer wins)."""
        listed = providers if providers is not None else cls.providers
        entries = list(listed) if listed is not None else cls.candidates(model)
        if mode == "race":
            async for item in _race(entries, model, messages, proxy, timeout, kwargs):
                yield item
            return
        if mode != "order":
            raise ValueError(f"unknown fallback mode {mode!r}: use order or race")
        failures: list[tuple[str, BaseException]] = []
        for entry in entries:
            streamed = False
            name = _name(entry)
            try:
                setup = _setup(entry, model, kwargs)
                provider, name = setup.provider, setup.name
                gen = provider.create_async_generator(setup.model, messages, proxy=proxy, timeout=timeout,
                                                      **setup.kwargs())
                held: list[Event] = []  # events before the first text; dropped if no text follows
                watched = None if provider.enforces_timeout else timeout
                items = _silence_limited(gen, watched, name, lambda: streamed)
                try:
                    async for chunk in items:
                        item = normalize(chunk)
                        if not streamed:
                            if not (item and isinstance(item, (str, *ANSWER_EVENTS))):
                                if isinstance(item, Event):
                                    held.append(item)
                                continue
                            streamed = True
                            yield ProviderUsed(name, setup.model or "",
                                               tuple(f"{n}: {short_reason(e)}" for n, e in failures))
                            for event in held:
                                yield event
                        if item is not None:
                            yield item
                finally:
                    await items.aclose()
                    await gen.aclose()
                if streamed:
                    return
                failures.append((name, ProviderError("answered nothing", provider=name)))
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:
                if streamed:
                    raise
                failures.append((name, exc))
        raise AllProvidersFailedError(failures)


async def _race(entries: list[Any], model: str, messages: Messages, proxy: str | None, timeout: float | None,
                kwargs: dict[str, Any]) -> AsyncIterator[Any]:
    """Every entry at once; the first to send answer text wins, the others are cancelled then and there.

    Each entry streams in a task of its own into one queue.  Before a winner, an entry's events are
    held (dropped with it when it loses); the winner's held events follow its :class:`ProviderUsed`.
    A loser is cancelled once the winner's first text has been handed on, without waiting for it: its
    connection closes while that text is shown; every task has ended (connections closed) when this
    generator ends."""
    queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
    names = [_name(e) for e in entries]
    models = [""] * len(entries)
    done = object()

    async def run(i: int, entry: Any) -> None:
        try:
            setup = _setup(entry, model, kwargs)
            names[i], models[i] = setup.name, setup.model or ""
            provider = setup.provider
            gen = provider.create_async_generator(setup.model, messages, proxy=proxy, timeout=timeout,
                                                  **setup.kwargs())
            items = _silence_limited(gen, None if provider.enforces_timeout else timeout, names[i],
                                     lambda: winner == i)
            try:
                async for chunk in items:
                    queue.put_nowait((i, chunk))
            finally:
                await items.aclose()
                await gen.aclose()
            queue.put_nowait((i, done))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            queue.put_nowait((i, exc))

    tasks = [asyncio.ensure_future(run(i, e)) for i, e in enumerate(entries)]
    held: list[list[Event]] = [[] for _ in entries]
    failures: dict[int, BaseException] = {}
    winner: int | None = None
    try:
        while winner is None and len(failures) < len(tasks):
            i, item = await queue.get()
            if item is done:
                item = ProviderError("answered nothing", provider=names[i])
            if isinstance(item, BaseException):
                failures[i] = item
                continue
            event = normalize(item)
            if not (event and isinstance(event, (str, *ANSWER_EVENTS))):
                if isinstance(event, Event):
                    held[i].append(event)
                continue
            winner = i
            lost = tuple(f"{names[j]}: {short_reason(failures[j]) if j in failures else 'cancelled'}"
                         for j in range(len(tasks)) if j != i)
            yield ProviderUsed(names[i], models[i], lost)
            for earlier in held[i]:
                yield earlier
            yield event
            # the losers are cancelled as soon as the first text is out (their connections close while it
            # is shown, not before: closing them costs the loop a moment)
            for j, task in enumerate(tasks):
                if j != i:
                    task.cancel()
        if winner is None:
            raise AllProvidersFailedError([(names[i], failures[i]) for i in sorted(failures)])
        while True:
            i, item = await queue.get()
            if i != winner:
                continue  # a loser's last items, queued before it was cancelled
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            event = normalize(item)
            if event is not None:
                yield event
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _setup(entry: Any, model: str, kwargs: dict[str, Any]) -> Any:
    """A list entry as a set-up (one already is; a name or class is resolved with the request's options)."""
    from .setup import Setup, resolve

    return entry if isinstance(entry, Setup) else resolve(entry, model=model or None, cell=kwargs)


def _name(entry: Any) -> str:
    name = getattr(entry, "name", None)
    return name if isinstance(name, str) else getattr(entry, "__name__", None) or str(entry)


async def _silence_limited(gen: Any, timeout: float | None, name: str, started: Any) -> AsyncIterator[Any]:
    """``gen``'s items; a :class:`ProviderTimeoutError` once it says nothing for ``timeout`` seconds.

    Only the wait for the provider is timed (never the caller's handling of an item): one timer,
    moved on per item, not a task per item."""
    if not timeout:
        async for item in gen:
            yield item
        return
    loop = asyncio.get_running_loop()
    it = gen.__aiter__()
    try:
        async with asyncio.timeout(None) as scope:
            while True:
                scope.reschedule(loop.time() + timeout)
                try:
                    item = await it.__anext__()
                except StopAsyncIteration:
                    return
                scope.reschedule(None)
                yield item
    except TimeoutError:
        what = "stopped sending for" if started() else "did not answer within"  # the cell names the provider
        raise ProviderTimeoutError(f"{what} {timeout:g} s", provider=name) from None


def short_reason(exc: BaseException) -> str:
    """Why a provider failed, in a word or two (the footer's "g4f:Custom: no answer")."""
    if isinstance(exc, ProviderTimeoutError):
        return "no answer"
    if isinstance(exc, errors.HTTPStatusError):
        return f"HTTP {exc.status}"
    if isinstance(exc, errors.ProviderConnectionError):
        return "unreachable"
    if isinstance(exc, errors.ModelNotFoundError):
        return "no such model"
    if isinstance(exc, errors.StreamBrokenError):
        return "cut off"
    if isinstance(exc, errors.MissingExtraError):
        return "not installed"
    if isinstance(exc, errors.UnknownProviderError):
        return "unknown"
    if isinstance(exc, ProviderError) and str(exc).endswith("answered nothing"):
        return "empty answer"
    return "failed"

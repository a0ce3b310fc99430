"""Try providers in order until one answers (gpt4free's retry idea, done right).

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
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, ClassVar, Sequence

from .. import errors
from ..errors import AllProvidersFailedError, ProviderError, ProviderTimeoutError
from ..events import ANSWER_EVENTS, Event, ProviderUsed, normalize
from .base import OPTION_FLAGS, AsyncGeneratorProvider, AsyncResult, Messages


class Fallback(AsyncGeneratorProvider):
    label = "tries the working providers in order until one answers"
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
                                     **kwargs: Any) -> AsyncResult:
        """``providers``: set-ups (used as they are), names or classes (resolved here, with ``model``
        and ``kwargs`` for each); None: :attr:`providers`, else every available one that takes ``model``."""
        from .setup import Setup, resolve

        listed = providers if providers is not None else cls.providers
        entries = list(listed) if listed is not None else cls.candidates(model)
        failures: list[tuple[str, BaseException]] = []
        for entry in entries:
            streamed = False
            name = _name(entry)
            try:
                setup = entry if isinstance(entry, Setup) else resolve(entry, model=model or None, cell=kwargs)
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

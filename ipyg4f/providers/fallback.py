"""Try providers in order until one answers (gpt4free's retry idea, done right).

Falls back only while no answer text has arrived (a half answer from one
provider is never glued to another's; events such as reasoning or usage held
before the first text are dropped with the provider that sent them), yields
:class:`ProviderUsed` before the first text so the caller knows who answered
and who failed first, and when every provider fails raises one
:class:`~ipyg4f.errors.AllProvidersFailedError` listing each provider's own failure.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Sequence

from ..errors import AllProvidersFailedError, ProviderError, describe
from ..events import ANSWER_EVENTS, Event, ProviderUsed, normalize
from .base import OPTION_FLAGS, AsyncGeneratorProvider, AsyncResult, Messages


class Fallback(AsyncGeneratorProvider):
    label = "tries the working providers in order until one answers"
    supports_stream = True
    supports_system_message = True
    supports_message_history = True
    options = frozenset(OPTION_FLAGS)  # handed on to each provider it tries
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
                                     *, providers: Sequence[Any] | None = None, **kwargs: Any) -> AsyncResult:
        failures: list[tuple[str, BaseException]] = []
        for provider in cls.candidates(model, providers):
            streamed = False
            try:
                used_model = provider.get_model(model)
                gen = provider.create_async_generator(used_model, messages, proxy=proxy, **kwargs)
                held: list[Event] = []  # events before the first text; dropped if no text follows
                try:
                    async for chunk in gen:
                        item = normalize(chunk)
                        if not streamed:
                            if not (item and isinstance(item, (str, *ANSWER_EVENTS))):
                                if isinstance(item, Event):
                                    held.append(item)
                                continue
                            streamed = True
                            yield ProviderUsed(provider.name, used_model or "",
                                               tuple(f"{n}: {describe(e)}" for n, e in failures))
                            for event in held:
                                yield event
                        if item is not None:
                            yield item
                finally:
                    await gen.aclose()
                if streamed:
                    return
                failures.append((provider.name, ProviderError("answered nothing", provider=provider.name)))
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:
                if streamed:
                    raise
                failures.append((provider.name, exc))
        raise AllProvidersFailedError(failures)

"""Try providers in order until one answers (gpt4free's retry idea, done right).

Falls back only while nothing has been streamed (a half answer from one
provider is never glued to another's), yields :class:`ProviderUsed` before the
first chunk so the caller knows who answered, and when every provider fails
raises one :class:`~ipyg4f.errors.AllProvidersFailedError` listing each
provider's own failure.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Sequence

from ..errors import AllProvidersFailedError, ProviderError
from .base import AsyncGeneratorProvider, AsyncResult, Marker, Messages, ProviderUsed


class Fallback(AsyncGeneratorProvider):
    label = "tries the working providers in order until one answers"
    supports_stream = True
    supports_system_message = True
    supports_message_history = True
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
            if p is cls or issubclass(p, Fallback):
                continue
            is_available = getattr(p, "is_available", None)
            available = is_available() if callable(is_available) else getattr(p, "working", True)
            if available and (not hasattr(p, "accepts_model") or p.accepts_model(model)):
                found.append(p)
        return found

    @classmethod
    async def create_async_generator(cls, model: str, messages: Messages, proxy: str | None = None,
                                     *, providers: Sequence[Any] | None = None, **kwargs: Any) -> AsyncResult:
        from . import provider_name

        failures: list[tuple[str, BaseException]] = []
        for provider in cls.candidates(model, providers):
            name = provider_name(provider)
            streamed = False
            try:
                used_model = model
                get_model = getattr(provider, "get_model", None)
                if get_model is not None:
                    used_model = get_model(model)
                gen = provider.create_async_generator(used_model, messages, proxy=proxy, **kwargs)
                held: list[Marker] = []  # markers before the first text; dropped if nothing follows
                try:
                    async for chunk in gen:
                        if not streamed:
                            if isinstance(chunk, Marker):
                                held.append(chunk)
                                continue
                            streamed = True
                            yield ProviderUsed(name, used_model or "")
                            for marker in held:
                                yield marker
                        yield chunk
                finally:
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

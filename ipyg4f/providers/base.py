"""The provider contract: one async-generator method plus documented class fields.

A provider is a class, never instantiated, in the gpt4free style::

    class Echo(AsyncGeneratorProvider, ProviderModelMixin):
        url = "http://127.0.0.1:8000"
        default_model = "echo"
        models = ["echo"]

        @classmethod
        async def create_async_generator(cls, model, messages, proxy=None, **kwargs):
            yield messages[-1]["content"]
            yield FinishReason("stop")

It yields ``str`` chunks of the answer and, optionally, marker objects
(:class:`FinishReason`, :class:`ProviderUsed`) whose ``str()`` is empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator, ClassVar

from ..errors import ModelNotFoundError
from ..messages import Messages, format_prompt

__all__ = [
    "AsyncGeneratorProvider", "ProviderModelMixin", "FinishReason", "ProviderUsed",
    "Marker", "Messages", "format_prompt", "AsyncResult",
]

AsyncResult = AsyncIterator["str | Marker"]


class Marker:
    """A non-text item of a provider stream; ``str()`` of it is empty."""

    def __str__(self) -> str:
        return ""


@dataclass(frozen=True, eq=True)
class FinishReason(Marker):
    """The provider says why the answer ended (``"stop"``, ``"length"``...)."""

    reason: str

    def __str__(self) -> str:
        return ""


@dataclass(frozen=True, eq=True)
class ProviderUsed(Marker):
    """Which provider (and model) actually answered; sent by the fallback provider."""

    name: str
    model: str = ""

    def __str__(self) -> str:
        return ""


class AsyncGeneratorProvider:
    """Base of every provider.

    Class fields (documented here once, set declaratively by subclasses):

    ``url``
        the service's address; every endpoint is derived from it, so pointing a
        provider at a test server is one assignment.
    ``working``
        False for providers known to be dead; they stay listed but are not
        used by the fallback provider.
    ``supports_stream``, ``supports_system_message``, ``supports_message_history``
        what the protocol can carry.
    ``needs_auth``
        an API key is required.
    ``label``
        a human description, shown by ``%chat providers``.
    """

    url: ClassVar[str] = ""
    working: ClassVar[bool] = True
    supports_stream: ClassVar[bool] = False
    supports_system_message: ClassVar[bool] = False
    supports_message_history: ClassVar[bool] = False
    needs_auth: ClassVar[bool] = False
    label: ClassVar[str] = ""

    @classmethod
    def create_async_generator(cls, model: str, messages: Messages, proxy: str | None = None,
                               **kwargs: Any) -> AsyncResult:
        """Return an async generator of answer chunks (override with ``async def ... yield``)."""
        raise NotImplementedError

    @classmethod
    def display_name(cls) -> str:
        """The name users type and see: ``registry_name`` set on this very class, else the class name."""
        return cls.__dict__.get("registry_name") or cls.__name__

    @classmethod
    def is_available(cls) -> bool:
        """Usable right now without further set-up (key present, extra installed...)."""
        return cls.working

    @classmethod
    def get_models(cls) -> list[str]:
        return list(getattr(cls, "models", []) or [])

    @classmethod
    async def list_models(cls, **kwargs: Any) -> list[str]:
        """Models, possibly fetched from the service; the static list by default."""
        return cls.get_models()

    @classmethod
    def accepts_model(cls, model: str | None) -> bool:
        if not model:
            return True
        get_model = getattr(cls, "get_model", None)
        if get_model is None:
            return True
        try:
            get_model(model)
        except ModelNotFoundError:
            return False
        return True


class ProviderModelMixin:
    """Model selection: ``default_model``, ``models``, ``model_aliases``, ``get_model``."""

    default_model: ClassVar[str] = ""
    models: ClassVar[list[str]] = []
    model_aliases: ClassVar[dict[str, str]] = {}

    @classmethod
    def get_model(cls, model: str | None) -> str:
        """Empty -> ``default_model``; an alias -> its target; an unknown name -> error."""
        if not model:
            return cls.default_model
        if model in cls.model_aliases:
            return cls.model_aliases[model]
        if cls.models and model not in cls.models:
            raise ModelNotFoundError(
                f"{_name(cls)} has no model {model!r}; valid models: {', '.join(cls.models)}",
                provider=_name(cls),
            )
        return model


def _name(cls: type) -> str:
    display = getattr(cls, "display_name", None)
    return display() if callable(display) else cls.__name__

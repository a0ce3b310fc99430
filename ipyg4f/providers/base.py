"""The provider contract: one async-generator method plus documented class fields.

A provider is a class, never instantiated, in the gpt4free style::

    class Echo(AsyncGeneratorProvider):
        url = "http://127.0.0.1:8000"
        default_model = "echo"
        models = ["echo"]
        options = frozenset({"timeout"})

        @classmethod
        async def create_async_generator(cls, model, messages, proxy=None, **kwargs):
            yield messages[-1]["content"]
            yield FinishReason("stop")

It yields ``str`` pieces of the answer and, optionally, the typed events of
:mod:`ipyg4f.events` (:class:`FinishReason`, :class:`Reasoning`, :class:`Usage`...).
Every provider the rest of the package sees has this interface: foreign classes
(gpt4free's, plugins') are wrapped once by :mod:`ipyg4f.providers.adapter`.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, ClassVar

from ..errors import ModelNotFoundError
from ..events import Event, FinishReason, ProviderUsed, Reasoning, Usage
from ..messages import Messages, format_prompt

__all__ = [
    "AsyncGeneratorProvider", "ProviderModelMixin", "FinishReason", "ProviderUsed", "Reasoning", "Usage",
    "Event", "Messages", "format_prompt", "AsyncResult", "OPTION_FLAGS",
]

AsyncResult = AsyncIterator["str | Event"]

#: the request options a provider may honour, and how a user spells each one in a cell
OPTION_FLAGS: dict[str, str] = {
    "temperature": "-t/--temperature",
    "max_tokens": "--max-tokens",
    "proxy": "--proxy",
    "base_url": "--base-url",
    "api_key": "--api-key-env",
    "top_p": "top_p",
    "stop": "stop",
    "seed": "seed",
    "response_format": "--json",  # {"type": "json_object"}: sent by batches that want JSON (ipyg4f.batch)
}


class AsyncGeneratorProvider:
    """Base of every provider.

    Class fields (documented here once, set declaratively by subclasses):

    ``name``
        the one name users type and see; the class name unless the class body sets it.
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
    ``default_model``, ``models``, ``model_aliases``
        model selection (see :meth:`get_model`); an empty ``models`` passes any name through.
    ``options``
        the request options of :data:`OPTION_FLAGS` this provider honours; the
        cell says so when the user sets one it ignores.
    ``base_url``, ``base_url_env``
        the default base URL of a provider that takes ``base_url`` (None: ``url``), and the
        environment variable that overrides it; resolved with the rest of the set-up by
        :func:`ipyg4f.providers.setup.resolve`.
    ``api_key_env``
        the environment variable holding the key; a provider that declares one also takes
        ``api_key_env=`` (the variable actually used, for its hints).
    ``enforces_timeout``
        the provider itself stops after ``timeout`` seconds of silence (the runner then does
        not watch it); work that is not silence, such as loading a model, does not count.
    ``supports_images``, ``vision_models``
        the protocol carries images as OpenAI ``image_url`` content parts (a
        user message's ``content`` is then a list of parts); when
        ``vision_models`` is not empty, only those models take them.  Images
        are refused before anything is sent to a provider or model that does not.
    """

    name: ClassVar[str] = "AsyncGeneratorProvider"
    url: ClassVar[str] = ""
    working: ClassVar[bool] = True
    supports_stream: ClassVar[bool] = False
    supports_system_message: ClassVar[bool] = False
    supports_message_history: ClassVar[bool] = False
    needs_auth: ClassVar[bool] = False
    label: ClassVar[str] = ""
    default_model: ClassVar[str] = ""
    models: ClassVar[list[str]] = []
    model_aliases: ClassVar[dict[str, str]] = {}
    options: ClassVar[frozenset[str]] = frozenset({"proxy"})
    base_url: ClassVar[str | None] = None
    base_url_env: ClassVar[str | None] = None
    api_key_env: ClassVar[str | None] = None
    enforces_timeout: ClassVar[bool] = False
    #: it tries other providers (Fallback): no model, base URL or key of its own
    combines: ClassVar[bool] = False
    supports_images: ClassVar[bool] = False
    #: takes ``tools=`` (OpenAI tool definitions) and sends tool calls back as
    #: :class:`~ipyg4f.events.ToolCallPart` or :class:`~ipyg4f.events.ToolCalls` events with arguments;
    #: takes ``assistant`` messages with ``tool_calls`` and ``tool`` messages in the history
    supports_tools: ClassVar[bool] = False
    #: how many requests it can answer at once (0: no limit); a batch runs no more workers than that
    max_concurrency: ClassVar[int] = 0
    vision_models: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:  # a subclass is its own provider, with its own name
            cls.name = cls.__name__

    @classmethod
    def create_async_generator(cls, model: str, messages: Messages, proxy: str | None = None,
                               **kwargs: Any) -> AsyncResult:
        """Return an async generator of answer pieces and events (override with ``async def ... yield``)."""
        raise NotImplementedError

    @classmethod
    def is_available(cls) -> bool:
        """Usable right now without further set-up (key present, extra installed...)."""
        return cls.working

    @classmethod
    def is_configured(cls) -> bool:
        """Set up (key, base URL, extra installed), judged without any network: what
        ``%chat providers`` shows; whether it answers is ``%chat providers --check``."""
        return cls.is_available()

    @classmethod
    def endpoint(cls) -> str | None:
        """Where requests go, for a reachability check (``None``: nothing to reach, it runs in process)."""
        return cls.url or None

    @classmethod
    def default_base_url(cls) -> str | None:
        """Where requests go unless the set-up says otherwise (``base_url``, else ``url``)."""
        return (cls.base_url or cls.url or "").rstrip("/") or None

    @classmethod
    def key_hint(cls, api_key_env: str | None = None) -> str:
        """What a 401/403 tells the user to do, naming the variable the key was read from."""
        if api_key_env:
            return f"check the API key: set {api_key_env} (or name another variable with --api-key-env)"
        return "the service wants an API key: name the variable holding it with --api-key-env"

    @classmethod
    def get_model(cls, model: str | None) -> str:
        """Empty -> ``default_model``; an alias -> its target; an unknown name -> error. Never slow."""
        if not model:
            return cls.default_model
        if model in cls.model_aliases:
            return cls.model_aliases[model]
        if cls.models and model not in cls.models:
            raise ModelNotFoundError(
                f"{cls.name} has no model {model!r}; valid models: {', '.join(cls.models)}", provider=cls.name)
        return model

    @classmethod
    def accepts_model(cls, model: str | None) -> bool:
        try:
            cls.get_model(model)
        except ModelNotFoundError:
            return False
        return True

    @classmethod
    def available_models(cls) -> list[str]:
        """The models known without asking the service (may be empty: any name goes)."""
        return list(cls.models)

    @classmethod
    async def list_models(cls, **kwargs: Any) -> list[str]:
        """Models, possibly fetched from the service; the static list by default."""
        return cls.available_models()

    @classmethod
    def lists_models_remotely(cls) -> bool:
        """True when :meth:`list_models` asks the service (worth doing only when it is set up)."""
        return cls.list_models.__func__ is not AsyncGeneratorProvider.list_models.__func__

    @classmethod
    def accepts_images(cls, model: str | None) -> bool:
        """True when ``model`` of this provider takes image parts (see ``supports_images``)."""
        return cls.supports_images and (not cls.vision_models or cls.get_model(model) in cls.vision_models)

    @classmethod
    def ignored_options(cls, given: dict[str, Any]) -> list[str]:
        """How the user spelled each option in ``given`` (set, not None) that this provider ignores."""
        return [OPTION_FLAGS[k] for k, v in given.items()
                if v is not None and k in OPTION_FLAGS and k not in cls.options]


class ProviderModelMixin:
    """gpt4free's name for model selection; kept so gpt4free-style classes read the same.

    Model selection lives in :class:`AsyncGeneratorProvider` itself.
    """

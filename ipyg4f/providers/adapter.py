"""Foreign provider classes (gpt4free's, plugins' that do not derive from our base) -> our interface.

:func:`adapt` wraps such a class ONCE, where it enters (the registry), in a
subclass of :class:`~ipyg4f.providers.base.AsyncGeneratorProvider` that reads
its fields defensively, so no caller has to probe it.  Reading a model never
touches the network here: gpt4free's ``get_model`` may fetch model lists
synchronously, so the adapter only looks at static fields and lets the
provider resolve its model itself, inside the stream (on the runner's loop,
bounded by the runner's timeout).

Tools: a class that declares gpt4free's ``supports_native_tools`` and has a way in for them
(the OpenaiTemplate family, ``Custom`` included, or a ``tools`` parameter) takes them here too
(``supports_tools``); gpt4free's ``ToolCalls`` come back as
:class:`~ipyg4f.events.ToolCallPart` events (:mod:`.g4f_events`).  Any other class is never
handed ``tools``.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import sys
from typing import Any, ClassVar

from .. import errors, http
from ..events import is_content

from .base import OPTION_FLAGS, AsyncGeneratorProvider, Messages
from .g4f_events import ToolCallReader, convert

__all__ = ["adapt", "Foreign"]

_ADAPTED: dict[Any, type[AsyncGeneratorProvider]] = {}
#: the request keywords of tool use (OpenAI's), handed on only to a class that takes tools
_TOOL_KWARGS = ("tools", "tool_choice", "parallel_tool_calls")


def _static(cls: Any, attr: str, default: Any) -> Any:
    """A class attribute, without running descriptors or properties that may do I/O."""
    try:
        value = inspect.getattr_static(cls, attr)
    except AttributeError:
        return default
    if isinstance(value, (classmethod, staticmethod, property)) or callable(value):
        return default
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        value = list(value)
    if not isinstance(value, (list, tuple)):
        return []
    return [v for v in value if isinstance(v, str)]


def _parameters(cls: Any) -> tuple[frozenset[str], bool]:
    """The parameter names of ``cls.create_async_generator`` and whether it takes ``**kwargs``."""
    try:
        params = inspect.signature(cls.create_async_generator).parameters.values()
    except (TypeError, ValueError):
        return frozenset(OPTION_FLAGS), True
    return frozenset(p.name for p in params), any(p.kind is p.VAR_KEYWORD for p in params)


def _takes_tools(cls: Any) -> bool:
    """gpt4free's own ``supports_native_tools``, and a way in for ``tools``: its OpenaiTemplate family
    (which sends them in the body), or a ``tools`` parameter, or ``extra_parameters`` naming them.
    (``GoogleSearch`` and ``PollinationsImage`` declare native tools and take none: not counted.)"""
    if not _static(cls, "supports_native_tools", False):
        return False
    if any(getattr(k, "__name__", "") == "OpenaiTemplate" for k in getattr(cls, "__mro__", ())):
        return True
    try:
        params = inspect.signature(cls.create_async_generator).parameters
    except (TypeError, ValueError):
        return False
    extra = params["extra_parameters"].default if "extra_parameters" in params else ()
    return "tools" in params or isinstance(extra, (list, tuple)) and "tools" in extra


class Foreign(AsyncGeneratorProvider):
    """A foreign provider class seen through our interface (``target`` is the class itself)."""

    target: ClassVar[Any] = None
    #: the parameter names of ``target.create_async_generator``, and whether it takes ``**kwargs``
    parameters: ClassVar[frozenset[str]] = frozenset()
    takes_kwargs: ClassVar[bool] = True

    @classmethod
    def is_available(cls) -> bool:
        return bool(cls.working)

    @classmethod
    def get_model(cls, model: str | None) -> str:
        """The model as given (or the static default); the provider maps it itself, in the stream."""
        if not model:
            return cls.default_model
        return cls.model_aliases.get(model, model)

    @classmethod
    def lists_models_remotely(cls) -> bool:
        return callable(getattr(cls.target, "get_models", None))

    @classmethod
    async def list_models(cls, **kwargs: Any) -> list[str]:
        """``target.get_models()`` (which may do blocking I/O) in a thread, or the static list.

        ``base_url`` and ``api_key`` go to it when it takes them; it runs on a throwaway subclass, so the
        list gpt4free caches on the class is not taken for another server's."""
        if not callable(getattr(cls.target, "get_models", None)):
            return cls.available_models()
        try:
            params = inspect.signature(cls.target.get_models).parameters
        except (TypeError, ValueError):
            params = {}
        given = {k: v for k, v in kwargs.items() if k in ("base_url", "api_key") and v is not None and k in params}
        fresh = type(cls.target.__name__, (cls.target,), {"models": [], "__module__": cls.target.__module__})
        models = await asyncio.to_thread(fresh.get_models, **given)
        return _strings(models) or cls.available_models()

    @classmethod
    async def create_async_generator(cls, model: str, messages: Messages, proxy: str | None = None,
                                     **kwargs: Any) -> Any:
        if "base_url" in kwargs and "api_base" in cls.parameters and "base_url" not in cls.parameters:
            kwargs["api_base"] = kwargs.pop("base_url")  # gpt4free's spelling
        if not (cls.supports_tools and kwargs.get("tools")):  # gpt4free would send "tools": [] as given
            kwargs = {k: v for k, v in kwargs.items() if k not in _TOOL_KWARGS}
        if not cls.takes_kwargs:
            kwargs = {k: v for k, v in kwargs.items() if k in cls.parameters}
        if cls.supports_images:
            messages, media = _split_media(messages)
            if media:
                kwargs["media"] = media
        answered = False  # something of an answer has come (for the wording of a timeout)
        try:
            result = _preset(cls.target, model).create_async_generator(model, messages, proxy=proxy, **kwargs)
            if inspect.isawaitable(result) and not hasattr(result, "__aiter__"):
                result = await result
            own = getattr(cls.target, "__name__", "")
            calls = ToolCallReader()
            if hasattr(result, "__aiter__"):
                try:
                    async for item in result:
                        for item in calls.read(item) or (convert(item, own),):
                            answered = answered or is_content(item)
                            yield item
                finally:
                    aclose = getattr(result, "aclose", None)
                    if aclose is not None:
                        await aclose()
            elif result is not None:
                for item in calls.read(result) or (convert(result, own),):
                    yield item
        except Exception as exc:
            mapped = _mapped_error(exc, cls.name) or _timeout(exc, cls.name, kwargs.get("timeout"), answered)
            if mapped is None:
                raise
            raise mapped from exc


def _split_media(messages: Messages) -> tuple[Messages, list[tuple[str, str]]]:
    """OpenAI image parts -> gpt4free's ``media`` list of (data URL, file name); the text stays in the message."""
    media: list[tuple[str, str]] = []
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    url = (part.get("image_url") or {}).get("url", "")
                    extension = url[len("data:image/"):].split(";")[0] if url.startswith("data:image/") else "png"
                    media.append((url, f"image{len(media) + 1}.{extension}"))
            message = {**message, "content": "\n".join(texts)}
        out.append(message)
    return out, media


def _mapped_error(exc: Exception, name: str) -> errors.ProviderError | None:
    """A foreign provider's transport or service failure as one of ours (None: leave it as it is).

    The message does not repeat the provider's name (the cell says who failed) and is kept whole
    (the cell shows its first line, ``--debug`` all of it)."""
    aiohttp = sys.modules.get("aiohttp")
    requests = sys.modules.get("requests")
    kind = type(exc).__name__
    if aiohttp is not None and isinstance(exc, aiohttp.ClientConnectorError):
        return errors.ProviderConnectionError(f"cannot connect to {exc.host}:{exc.port}", provider=name)
    if requests is not None and isinstance(exc, requests.exceptions.ConnectionError):
        return errors.ProviderConnectionError(f"cannot connect ({kind})", provider=name)
    if aiohttp is not None and isinstance(exc, aiohttp.ClientPayloadError):
        return errors.StreamBrokenError("the answer was cut off: the connection closed before the end",
                                        provider=name)
    if not type(exc).__module__.startswith("g4f"):
        return None
    message = str(exc).strip() or kind
    if kind == "MissingAuthError":
        return errors.ProviderError(f"needs a key: {message}", provider=name,
                                    hint="pass its key with --api-key-env NAME (the variable that holds it)")
    if kind == "RateLimitError":  # "Response 429: <the service's message>"
        status = re.match(r"Response (\d{3})\b", message)
        wait = http.retry_after(_response_headers(exc))
        return errors.RateLimitError(int(status.group(1)) if status else 429, message, provider=name,
                                     retry_after=http.retry_after_in(message) if wait is None else wait)
    return errors.ProviderError(message, provider=name)


def _timeout(exc: Exception, name: str, timeout: Any, answered: bool) -> errors.ProviderTimeoutError | None:
    """A foreign provider's own timeout, worded like the runner's (None: ``exc`` is no timeout)."""
    requests = sys.modules.get("requests")
    if not isinstance(exc, TimeoutError) and not (requests and isinstance(exc, requests.exceptions.Timeout)):
        return None  # (asyncio's and aiohttp's timeouts are TimeoutErrors)
    what = "stopped sending" if answered else "did not answer"
    if isinstance(timeout, (int, float)) and timeout > 0:
        what += f" for {timeout:g} s" if answered else f" within {timeout:g} s"
    return errors.ProviderTimeoutError(what, provider=name)


def _response_headers(exc: BaseException) -> Any:
    """The headers of the response gpt4free raised ``exc`` for, or None.

    gpt4free's errors carry only a message; the response (and its ``Retry-After``)
    is a local of the frame that raised it (``raise_for_status``), the innermost
    frame that has one.
    """
    headers = None
    tb = exc.__traceback__
    while tb is not None:
        found = getattr(tb.tb_frame.f_locals.get("response"), "headers", None)
        if found is not None and callable(getattr(found, "get", None)):
            headers = found
        tb = tb.tb_next
    return headers


_PRESET: dict[tuple[Any, str], Any] = {}


def _preset(target: Any, model: str) -> Any:
    """``target``, or a subclass that already knows ``model``, so that resolving it fetches nothing.

    gpt4free's ``get_model`` fetches the provider's model list with a blocking
    ``requests.get`` (no timeout) whenever the name is not in its static list,
    which would stall the runner's loop; naming the model as known skips that.
    """
    known = _strings(_static(target, "models", [])) + _strings(_static(target, "model_aliases", {}))
    if not model or model in known or not callable(getattr(target, "get_models", None)):
        return target
    key = (target, model)
    if key not in _PRESET:
        _PRESET[key] = type(target.__name__, (target,), {
            "models": [model], "model_aliases": {model: model}, "__module__": target.__module__})
    return _PRESET[key]


def adapt(cls: Any, name: str | None = None) -> type[AsyncGeneratorProvider]:
    """``cls`` with our interface and the name ``name`` (default: its own), built once and cached.

    One of ours is returned as it is, or as a subclass that only renames it.
    """
    key = (cls, name)
    if isinstance(cls, type) and issubclass(cls, AsyncGeneratorProvider):
        if not name or name == cls.name:
            return cls
        if key not in _ADAPTED:
            _ADAPTED[key] = type(name, (cls,), {"name": name, "__module__": cls.__module__, "__doc__": cls.__doc__})
        return _ADAPTED[key]
    if key not in _ADAPTED:
        parameters, takes_kwargs = _parameters(cls)
        # a class that takes **kwargs passes them on (gpt4free's OpenaiTemplate subclasses do)
        options = set(OPTION_FLAGS) if takes_kwargs else parameters & set(OPTION_FLAGS)
        if "api_base" in parameters:
            options |= {"base_url"}
        aliases = _static(cls, "model_aliases", {})
        fields = {
            "target": cls,
            "name": name or getattr(cls, "__name__", "Provider"),
            "parameters": parameters,
            "takes_kwargs": takes_kwargs,
            "options": frozenset(options | {"proxy"}),
            "supports_images": "media" in parameters,  # gpt4free's way to send images
            "supports_tools": _takes_tools(cls),
            "url": str(_static(cls, "url", "") or ""),
            "base_url": str(_static(cls, "base_url", "") or "") or None,  # gpt4free's default API address
            "working": bool(_static(cls, "working", True)),
            "supports_stream": bool(_static(cls, "supports_stream", False)),
            "supports_system_message": bool(_static(cls, "supports_system_message", False)),
            "supports_message_history": bool(_static(cls, "supports_message_history", False)),
            "needs_auth": bool(_static(cls, "needs_auth", False)),
            "label": str(_static(cls, "label", "") or ""),
            "default_model": str(_static(cls, "default_model", "") or ""),
            "models": _strings(_static(cls, "models", [])),
            "model_aliases": {k: v for k, v in aliases.items() if isinstance(k, str) and isinstance(v, str)}
            if isinstance(aliases, dict) else {},
            "__module__": __name__,
            "__doc__": f"adapter of {getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', '?')}",
        }
        _ADAPTED[key] = type(f"Foreign[{fields['name']}]", (Foreign,), fields)
    return _ADAPTED[key]

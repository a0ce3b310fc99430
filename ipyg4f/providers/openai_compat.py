"""OpenAI-compatible chat completions (OpenAI, vLLM, Ollama, llama.cpp server...).

Streams ``POST {base_url}/chat/completions`` as server-sent events, decoded
by :mod:`ipyg4f.sse`; lists models with ``GET {base_url}/models``.  Another
OpenAI-compatible service is a few declarative lines::

    class MyService(OpenAICompatible):
        base_url = "http://127.0.0.1:9000/v1"
        api_key_env = "MYSERVICE_KEY"
        default_model = "my-model"

What a stream may carry besides ``delta.content``, and what it becomes:

* ``delta.reasoning_content`` (DeepSeek, llama.cpp, vLLM) and ``delta.reasoning``
  (Ollama, OpenRouter): :class:`Reasoning`; so does ``<think>...</think>`` inside
  the content (models whose server does not split it off), see :class:`ThinkSplitter`;
* the last chunk's ``usage`` (asked for with ``stream_options.include_usage``;
  a server that rejects the option is asked once more without it): :class:`Usage`;
* ``delta.tool_calls``: one :class:`ToolCalls` with the function names, no text;
* ``finish_reason``: :class:`FinishReason`.

HTTP errors are those of :mod:`ipyg4f.http`, made precise here: a 404 naming
the model is a :class:`~ipyg4f.errors.ModelNotFoundError`, a 400 saying the
prompt does not fit is a :class:`~ipyg4f.errors.ContextLengthError`, and a
401/403's hint names the variable this provider reads its key from.
"""

from __future__ import annotations

import json
import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, ClassVar

from .. import errors, http
from ..events import ToolCalls
from ..sse import aiter_sse
from .base import AsyncGeneratorProvider, AsyncResult, Event, FinishReason, Messages, Reasoning, Usage

__all__ = ["OpenAICompatible", "Ollama", "VLLM", "LlamaCppServer", "ThinkSplitter"]

_KWARGS = ("temperature", "max_tokens", "top_p", "stop", "seed", "response_format")
#: the delta fields that carry reasoning, by the servers that use them
_REASONING_FIELDS = ("reasoning_content", "reasoning")
#: what a 400 says when the prompt does not fit (llama.cpp; OpenAI and vLLM)
_CONTEXT_OVERFLOW_MARKERS = ("exceed_context_size_error", "exceeds the available context size",
                             "context_length_exceeded", "maximum context length")


class OpenAICompatible(AsyncGeneratorProvider):
    label = "any OpenAI-compatible API (set OPENAI_BASE_URL / OPENAI_API_KEY)"
    name = "OpenAI"
    url = "https://api.openai.com/v1"
    #: base URL; None -> the environment variable ``base_url_env``, then ``url``
    base_url: ClassVar[str | None] = None
    base_url_env: ClassVar[str | None] = "OPENAI_BASE_URL"
    #: the environment variable holding the key (None: no key is sent)
    api_key_env: ClassVar[str | None] = "OPENAI_API_KEY"
    #: the hint of a 401/403 (None: "check the API key: set <api_key_env>")
    auth_hint: ClassVar[str | None] = None
    #: the hint of a prompt too long for the context (None: ContextLengthError's own)
    context_hint: ClassVar[str | None] = None
    needs_auth = True
    supports_stream = True
    supports_system_message = True
    supports_message_history = True
    default_model = "gpt-4o-mini"
    models: ClassVar[list[str]] = []  # any name is passed through; see list_models()
    options = frozenset({"proxy", "base_url", "api_key", *_KWARGS})
    #: image_url content parts; any model may take them (the server says when one does not)
    supports_images = True

    @classmethod
    def resolve_base_url(cls, base_url: str | None = None) -> str:
        env = os.environ.get(cls.base_url_env) if cls.base_url_env else None
        return (base_url or cls.base_url or env or cls.url).rstrip("/")

    @classmethod
    def resolve_api_key(cls, api_key: str | None = None) -> str | None:
        key = api_key or (os.environ.get(cls.api_key_env) if cls.api_key_env else None)
        http.register_secret(key)
        return key or None

    @classmethod
    def is_available(cls) -> bool:
        if not cls.working:
            return False
        if not cls.needs_auth:
            return True
        configured = cls.base_url or (cls.base_url_env and os.environ.get(cls.base_url_env))
        return bool(configured or cls.resolve_api_key())

    @classmethod
    def key_hint(cls) -> str:
        """What a 401/403 from this provider tells the user to do."""
        if cls.auth_hint:
            return cls.auth_hint
        if cls.api_key_env:
            return f"check the API key: set {cls.api_key_env} (or name another variable with --api-key-env)"
        return "the server wants an API key: name the variable holding it with --api-key-env"

    @classmethod
    def _headers(cls, api_key: str | None) -> dict[str, str]:
        headers = {"accept": "text/event-stream", "content-type": "application/json"}
        key = cls.resolve_api_key(api_key)
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    @classmethod
    async def create_async_generator(cls, model: str, messages: Messages, proxy: str | None = None,
                                     *, base_url: str | None = None, api_key: str | None = None,
                                     timeout: float | None = None, **kwargs: Any) -> AsyncResult:
        model = cls.get_model(model)
        url = cls.resolve_base_url(base_url)
        body: dict[str, Any] = {"model": model, "messages": list(messages), "stream": True,
                                "stream_options": {"include_usage": True}}
        body.update({k: kwargs[k] for k in _KWARGS if kwargs.get(k) is not None})
        name = cls.name
        async with http.session(cls._headers(api_key), timeout=timeout) as session:
            async with _chat_request(cls, session, f"{url}/chat/completions", body, model,
                                     proxy=proxy) as response:
                if not response.content_type.startswith("text/event-stream"):
                    # a server that ignores "stream": one JSON answer
                    data = await http.read_json(response, name)
                    _raise_error_event(data, name, model)
                    for item in _json_answer(data):
                        yield item
                    return
                stream = _StreamState()
                events = 0
                async for event in aiter_sse(response.content.iter_any()):
                    events += 1
                    if event.data.strip() == "[DONE]":
                        break
                    if not event.data:
                        continue
                    try:
                        data = json.loads(event.data)
                    except ValueError:
                        raise errors.ResponseFormatError(
                            f"{name} sent an event that is not JSON: {http.excerpt(event.data, 80)}",
                            provider=name) from None
                    _raise_error_event(data, name, model)
                    for item in stream.feed(data):
                        yield item
                if not events:
                    raise errors.ResponseFormatError(f"{url}/chat/completions sent an empty event stream",
                                                     provider=name)
                for item in stream.close():
                    yield item

    @classmethod
    async def list_models(cls, *, base_url: str | None = None, api_key: str | None = None,
                          proxy: str | None = None, timeout: float | None = None) -> list[str]:
        url = cls.resolve_base_url(base_url)
        async with http.session(cls._headers(api_key), timeout=timeout) as session:
            async with _status_errors(cls), \
                    http.request(session, "GET", f"{url}/models", proxy=proxy, provider=cls.name) as response:
                data = await http.read_json(response, cls.name)
        items = data.get("data", []) if isinstance(data, dict) else data
        return sorted(str(m.get("id")) for m in items if isinstance(m, dict) and m.get("id"))


# --- requests and their errors ---------------------------------------------------------------


@asynccontextmanager
async def _status_errors(cls: type[OpenAICompatible], model: str | None = None) -> AsyncIterator[None]:
    """:mod:`ipyg4f.http`'s status errors, made precise for an OpenAI-compatible server.

    A 404 that names the model: the model is unknown, not the URL.  A 400 saying the
    prompt does not fit: :class:`~ipyg4f.errors.ContextLengthError`.  A 401/403: the
    hint names the variable this provider reads its key from.
    """
    try:
        yield
    except errors.AuthError as exc:
        exc.hint = cls.key_hint()
        raise
    except errors.HTTPStatusError as exc:
        body = exc.body.lower()
        if model is not None and exc.status == 404 and "model" in body:
            raise errors.ModelNotFoundError(f"{cls.name} does not know model {model!r}: {exc.body}",
                                            provider=cls.name) from exc
        if exc.status in (400, 413) and any(marker in body for marker in _CONTEXT_OVERFLOW_MARKERS):
            error = errors.ContextLengthError(exc.status, exc.body, url=exc.url, provider=cls.name)
            if cls.context_hint:
                error.hint = cls.context_hint
            raise error from exc
        raise


def _rejects_stream_options(exc: errors.HTTPStatusError) -> bool:
    """The server refused the request because of ``stream_options`` (older or strict servers)."""
    return exc.status in (400, 422) and "stream_options" in exc.body


@asynccontextmanager
async def _chat_request(cls: type[OpenAICompatible], session: Any, url: str, body: dict[str, Any],
                        model: str, *, proxy: str | None) -> AsyncIterator[Any]:
    """``POST url`` with ``body``; once more without ``stream_options`` if the server rejects it."""
    started = False
    async with _status_errors(cls, model):
        try:
            async with http.request(session, "POST", url, json=body, proxy=proxy,
                                    provider=cls.name) as response:
                started = True
                yield response
                return
        except errors.HTTPStatusError as exc:
            if started or "stream_options" not in body or not _rejects_stream_options(exc):
                raise
        body = {k: v for k, v in body.items() if k != "stream_options"}
        async with http.request(session, "POST", url, json=body, proxy=proxy, provider=cls.name) as response:
            yield response


def _raise_error_event(data: Any, provider: str, model: str) -> None:
    if not isinstance(data, dict) or not data.get("error"):
        return
    err = data["error"]
    message = err.get("message") if isinstance(err, dict) else str(err)
    code = (err.get("code") or err.get("type") or "") if isinstance(err, dict) else ""
    message = http.redact(str(message or code or "unknown error"))
    if code == "model_not_found" or "model" in message.lower() and "not" in message.lower() and "found" in message.lower():
        raise errors.ModelNotFoundError(f"{provider} does not know model {model!r}: {message}", provider=provider)
    raise errors.ProviderError(f"{provider} reported an error: {message}", provider=provider)


# --- what a response carries -----------------------------------------------------------------


def _usage(data: Any) -> Usage | None:
    """The :class:`Usage` of a chunk or an answer that has a ``usage`` object."""
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return None

    def count(key: str) -> int | None:
        value = usage.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    prompt, completion = count("prompt_tokens"), count("completion_tokens")
    return None if prompt is None and completion is None else Usage(prompt, completion)


def _reasoning(fields: dict[str, Any]) -> list[Reasoning]:
    return [Reasoning(text) for key in _REASONING_FIELDS if isinstance(text := fields.get(key), str) and text]


def _json_answer(data: Any) -> list[str | Event]:
    """The items of a non-streamed answer (``chat.completion``)."""
    choice = (data.get("choices") or [{}])[0] if isinstance(data, dict) else {}
    message = choice.get("message") or {}
    items: list[str | Event] = list(_reasoning(message))
    if isinstance(content := message.get("content"), str):
        splitter = ThinkSplitter()
        items += [*splitter.feed(content), *splitter.close()]
    names = tuple(name for call in message.get("tool_calls") or [] if isinstance(call, dict)
                  if (name := (call.get("function") or {}).get("name")))
    if names:
        items.append(ToolCalls(names))
    items.append(FinishReason(choice.get("finish_reason") or "stop"))
    if usage := _usage(data):
        items.append(usage)
    return items


class _StreamState:
    """Turns ``chat.completion.chunk`` objects into answer text and events."""

    def __init__(self) -> None:
        self.think = ThinkSplitter()
        self.tools: dict[int, str] = {}  # call index -> function name

    def feed(self, data: dict[str, Any]) -> list[str | Event]:
        items: list[str | Event] = []  # (written for speed: this runs once per streamed token)
        for choice in data.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if delta and isinstance(delta, dict):
                for key in _REASONING_FIELDS:
                    text = delta.get(key)
                    if text and isinstance(text, str):
                        items.append(Reasoning(text))
                content = delta.get("content")
                if content and isinstance(content, str):
                    if self.think.plain(content):
                        items.append(content)
                    else:
                        items += self.think.feed(content)
                calls = delta.get("tool_calls")
                if calls:
                    self._note_calls(calls)
            reason = choice.get("finish_reason")
            if reason:
                items += [*self.think.close(), *self._tool_calls(), FinishReason(reason)]
        if data.get("usage") and (usage := _usage(data)) is not None:
            items.append(usage)
        return items

    def _note_calls(self, calls: Any) -> None:
        for position, call in enumerate(calls if isinstance(calls, list) else ()):
            if isinstance(call, dict):
                index = call.get("index", position)
                name = (call.get("function") or {}).get("name")
                if name and not self.tools.get(index):  # the name comes in the call's first fragment
                    self.tools[index] = name

    def close(self) -> list[str | Event]:
        """What is left when the stream ends (without a finish_reason)."""
        return [*self.think.close(), *self._tool_calls()]

    def _tool_calls(self) -> list[ToolCalls]:
        names = tuple(self.tools.values())  # in the order the calls began
        self.tools = {}
        return [ToolCalls(names)] if names else []


class ThinkSplitter:
    """Splits ``<think>...</think>`` out of streamed content, incrementally.

    :meth:`feed` takes each piece of content and returns answer text (``str``)
    and :class:`Reasoning` for what is inside the tags; a tag split across
    pieces (``"<thi"`` + ``"nk>"``) is held back until it is complete, so
    nothing of a tag reaches the answer.  Whitespace right after a tag is
    dropped (``</think>\\n\\nAnswer`` answers ``"Answer"``).  :meth:`close` at the
    end gives what was held back: a stream that never closes its ``<think>``
    was all reasoning.
    """

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self) -> None:
        self.inside = False
        self._held = ""
        self._after_tag = False

    def plain(self, text: str) -> bool:
        """True when ``text`` is answer text as it is (no tag in or around it): the common case."""
        return not (self.inside or self._held or self._after_tag) and "<" not in text

    def feed(self, text: str) -> list[str | Reasoning]:
        out: list[str | Reasoning] = []
        held = self._held + text
        while True:
            tag = self.CLOSE if self.inside else self.OPEN
            at = held.find(tag)
            if at < 0:
                break
            self._emit(out, held[:at])
            held = held[at + len(tag):]
            self.inside = not self.inside
            self._after_tag = True
        keep = next((n for n in range(min(len(tag) - 1, len(held)), 0, -1) if held.endswith(tag[:n])), 0)
        self._emit(out, held[:len(held) - keep])
        self._held = held[len(held) - keep:]
        return out

    def close(self) -> list[str | Reasoning]:
        """What was held back (the start of a tag that never came), as what it is inside."""
        out: list[str | Reasoning] = []
        self._emit(out, self._held)
        self._held = ""
        return out

    def _emit(self, out: list[str | Reasoning], text: str) -> None:
        if self._after_tag:
            text = text.lstrip()
            self._after_tag = not text
        if text:
            out.append(Reasoning(text) if self.inside else text)


# --- the providers ---------------------------------------------------------------------------


class Ollama(OpenAICompatible):
    label = "Ollama on this machine (ollama serve)"
    name = "Ollama"
    url = "http://127.0.0.1:11434/v1"
    base_url_env = "OLLAMA_BASE_URL"
    #: Ollama itself takes no key; a proxy in front of it may want one
    api_key_env = "OLLAMA_API_KEY"
    auth_hint = ("Ollama itself takes no key, the proxy in front of it wants one: set OLLAMA_API_KEY "
                 "(or name another variable with --api-key-env)")
    needs_auth = False
    default_model = "llama3.2"


class VLLM(OpenAICompatible):
    label = "a vLLM server (vllm serve)"
    name = "VLLM"
    url = "http://127.0.0.1:8000/v1"
    base_url_env = "VLLM_BASE_URL"
    api_key_env = "VLLM_API_KEY"
    needs_auth = False
    default_model = ""


class LlamaCppServer(OpenAICompatible):
    label = "a llama.cpp server (llama-server)"
    name = "LlamaCppServer"
    url = "http://127.0.0.1:8080/v1"
    base_url_env = "LLAMACPP_BASE_URL"
    #: llama-server --api-key KEY
    api_key_env = "LLAMACPP_API_KEY"
    context_hint = ("start a shorter thread (--new), lower ChatConfig.max_context, or start llama-server "
                    "with a larger context (-c/--ctx-size)")
    needs_auth = False
    default_model = "default"

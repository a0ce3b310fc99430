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
  the content (models whose server does not split it off): the runner splits it off,
  for every provider alike (:class:`~ipyg4f.events.ThinkSplitter`);
* the chunks' ``model``, when it is not the one asked for: :class:`~ipyg4f.events.ModelUsed`;
* the last chunk's ``usage`` (asked for with ``stream_options.include_usage``;
  a server that rejects the option is asked once more without it): :class:`Usage`;
* ``delta.tool_calls``: a :class:`~ipyg4f.events.ToolCallPart` per fragment (id, name, arguments
  cut anywhere), then one :class:`ToolCalls` with the function names, no text;
* ``finish_reason``: :class:`FinishReason`.

Tools: ``tools=`` (OpenAI tool definitions) and ``tool_choice=`` / ``parallel_tool_calls=`` go in
the request body as given; the messages too, ``assistant`` turns with ``tool_calls`` (content
``None``) and ``tool`` results included.

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
from ..sse import aiter_sse
from .base import AsyncGeneratorProvider, AsyncResult, Messages
from .openai_stream import StreamState, ThinkSplitter, json_answer
from .text_calls import TextCalls, without_tools

__all__ = ["OpenAICompatible", "Ollama", "VLLM", "LlamaCppServer", "ThinkSplitter"]

_KWARGS = ("temperature", "max_tokens", "top_p", "stop", "seed", "response_format")
#: sent only with a non-empty ``tools`` (OpenAI refuses ``"tools": []``)
_TOOL_KWARGS = ("tools", "tool_choice", "parallel_tool_calls")
#: the delta fields that carry reasoning, by the servers that use them
#: what a 400 says when the prompt does not fit (llama.cpp; OpenAI and vLLM)
_CONTEXT_OVERFLOW_MARKERS = ("exceed_context_size_error", "exceeds the available context size",
                             "context_length_exceeded", "maximum context length")


class OpenAICompatible(AsyncGeneratorProvider):
    label = "any OpenAI-compatible API (set OPENAI_BASE_URL / OPENAI_API_KEY)"
    name = "OpenAI"
    url = "https://api.openai.com/v1"
    # base_url (None -> the environment variable base_url_env, then url): see AsyncGeneratorProvider
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
    supports_tools = True
    #: a call written as text (JSON, in a fence or tags) for an offered tool is a tool call: for servers of
    #: small local models whose parser misses them (:mod:`.text_calls`); the text is held back meanwhile
    text_tool_calls: ClassVar[bool] = False

    @classmethod
    def resolve_base_url(cls, base_url: str | None = None) -> str:
        env = os.environ.get(cls.base_url_env) if cls.base_url_env else None
        return (base_url or cls.base_url or env or cls.url).rstrip("/")

    @classmethod
    def resolve_api_key(cls, api_key: str | None = None, api_key_env: str | None = None) -> str | None:
        variable = api_key_env or cls.api_key_env
        key = api_key or (os.environ.get(variable) if variable else None)
        http.register_secret(key)
        return key or None

    @classmethod
    def is_available(cls) -> bool:
        """Set up: a key or a base URL; a keyless server on this machine must also be listening."""
        if not cls.working:
            return False
        if not cls.needs_auth:
            return listening(cls.resolve_base_url())
        return cls.is_configured()

    @classmethod
    def is_configured(cls) -> bool:
        """A keyless server counts as set up at its default address (running is for ``--check``)."""
        if not cls.working:
            return False
        if not cls.needs_auth:
            return True
        configured = cls.base_url or (cls.base_url_env and os.environ.get(cls.base_url_env))
        return bool(configured or cls.resolve_api_key())

    @classmethod
    def endpoint(cls) -> str | None:
        return cls.resolve_base_url()

    @classmethod
    def key_hint(cls, api_key_env: str | None = None) -> str:
        """What a 401/403 from this provider tells the user to do (``api_key_env``: the variable used)."""
        if cls.auth_hint and api_key_env in (None, cls.api_key_env):
            return cls.auth_hint
        return super().key_hint(api_key_env or cls.api_key_env)

    @classmethod
    def _headers(cls, api_key: str | None, api_key_env: str | None = None) -> dict[str, str]:
        headers = {"accept": "text/event-stream", "content-type": "application/json"}
        key = cls.resolve_api_key(api_key, api_key_env)
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    @classmethod
    async def create_async_generator(cls, model: str, messages: Messages, proxy: str | None = None,
                                     *, base_url: str | None = None, api_key: str | None = None,
                                     api_key_env: str | None = None, timeout: float | None = None,
                                     **kwargs: Any) -> AsyncResult:
        model = cls.get_model(model)
        url = cls.resolve_base_url(base_url)
        body: dict[str, Any] = {"model": model, "messages": list(messages), "stream": True,
                                "stream_options": {"include_usage": True}}
        body.update({k: kwargs[k] for k in _KWARGS if kwargs.get(k) is not None})
        if kwargs.get("tools"):
            body.update({k: kwargs[k] for k in _TOOL_KWARGS if kwargs.get(k) is not None})
        async with http.session(cls._headers(api_key, api_key_env), timeout=timeout) as session:
            calls = TextCalls(body.get("tools")) if cls.text_tool_calls else None
            async for item in _answer(cls, session, url, body, model, proxy, api_key_env, calls):
                yield item
            if calls is not None:
                end = calls.close()
                if calls.repeated(body["messages"]):  # asked again for what a tool answered: answer from it
                    end = []
                    async for item in _answer(cls, session, url, without_tools(body), model, proxy, api_key_env):
                        yield item
                for item in end:
                    yield item

    @classmethod
    async def list_models(cls, *, base_url: str | None = None, api_key: str | None = None,
                          api_key_env: str | None = None, proxy: str | None = None,
                          timeout: float | None = None, **kwargs: Any) -> list[str]:
        url = cls.resolve_base_url(base_url)
        async with http.session(cls._headers(api_key, api_key_env), timeout=timeout) as session:
            async with _status_errors(cls, api_key_env=api_key_env), \
                    http.request(session, "GET", f"{url}/models", proxy=proxy, provider=cls.name) as response:
                data = await http.read_json(response, cls.name)
        items = data.get("data", []) if isinstance(data, dict) else data
        return sorted(str(m.get("id")) for m in items if isinstance(m, dict) and m.get("id"))


def listening(url: str, timeout: float = 0.2) -> bool:
    """True unless ``url`` is on this machine and nothing listens there (a refused connect is instant).

    Only loopback addresses are probed: a remote server is taken as it is configured.
    """
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        return True
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --- requests and their errors ---------------------------------------------------------------


@asynccontextmanager
async def _status_errors(cls: type[OpenAICompatible], model: str | None = None, *,
                         api_key_env: str | None = None) -> AsyncIterator[None]:
    """:mod:`ipyg4f.http`'s status errors, made precise for an OpenAI-compatible server.

    A 404 that names the model: the model is unknown, not the URL.  A 400 saying the
    prompt does not fit: :class:`~ipyg4f.errors.ContextLengthError`.  A 401/403: the
    hint names the variable the key was read from (``api_key_env``, else the provider's own).
    """
    try:
        yield
    except errors.AuthError as exc:
        exc.hint = cls.key_hint(api_key_env)
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
        if "requires --jinja" in body:  # llama-server without --jinja, asked with tools
            exc.hint = "start llama-server with --jinja: tools go through the model's own chat template"
        raise


def _rejects_stream_options(exc: errors.HTTPStatusError) -> bool:
    """The server refused the request because of ``stream_options`` (older or strict servers)."""
    return exc.status in (400, 422) and "stream_options" in exc.body


@asynccontextmanager
async def _chat_request(cls: type[OpenAICompatible], session: Any, url: str, body: dict[str, Any],
                        model: str, *, proxy: str | None, api_key_env: str | None = None) -> AsyncIterator[Any]:
    """``POST url`` with ``body``; once more without ``stream_options`` if the server rejects it."""
    started = False
    async with _status_errors(cls, model, api_key_env=api_key_env):
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


async def _answer(cls: type[OpenAICompatible], session: Any, url: str, body: dict[str, Any], model: str,
                  proxy: str | None, api_key_env: str | None, calls: TextCalls | None = None) -> AsyncIterator[Any]:
    """The items of one answer to ``body`` (streamed, or one JSON answer); with ``calls``, passed
    through it (what it holds back stays there: the caller closes it), stopped once it has a whole call."""
    name = cls.name
    async with _chat_request(cls, session, f"{url}/chat/completions", body, model,
                             proxy=proxy, api_key_env=api_key_env) as response:
        if not response.content_type.startswith("text/event-stream"):
            # a server that ignores "stream": one JSON answer
            data = await http.read_json(response, name)
            _raise_error_event(data, name, model)
            for item in json_answer(data, model):
                for out in calls.feed(item) if calls else (item,):
                    yield out
            return
        stream = StreamState(model)
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
                for out in calls.feed(item) if calls else (item,):
                    yield out
            if calls is not None and calls.done:
                return  # the rest is the same call again (small models): not read
        if not events:
            raise errors.ResponseFormatError(f"{url}/chat/completions sent an empty event stream", provider=name)
        for item in stream.close():
            for out in calls.feed(item) if calls else (item,):
                yield out


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
    text_tool_calls = True  # the offline default Qwen2.5-Coder-0.5B writes its calls as fenced JSON
    needs_auth = False
    default_model = "default"

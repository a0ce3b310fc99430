"""OpenAI-compatible chat completions (OpenAI, vLLM, Ollama, llama.cpp server...).

Streams ``POST {base_url}/chat/completions`` as server-sent events, decoded
by :mod:`ipyg4f.sse`; lists models with ``GET {base_url}/models``.  Another
OpenAI-compatible service is a few declarative lines::

    class MyService(OpenAICompatible):
        base_url = "http://127.0.0.1:9000/v1"
        api_key_env = "MYSERVICE_KEY"
        default_model = "my-model"
"""

from __future__ import annotations

import json
import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, ClassVar

from .. import errors, http
from ..sse import aiter_sse
from .base import AsyncGeneratorProvider, AsyncResult, FinishReason, Messages

_KWARGS = ("temperature", "max_tokens", "top_p", "stop", "seed")


class OpenAICompatible(AsyncGeneratorProvider):
    label = "any OpenAI-compatible API (set OPENAI_BASE_URL / OPENAI_API_KEY)"
    name = "OpenAI"
    url = "https://api.openai.com/v1"
    #: base URL; None -> the environment variable ``base_url_env``, then ``url``
    base_url: ClassVar[str | None] = None
    base_url_env: ClassVar[str | None] = "OPENAI_BASE_URL"
    #: the environment variable holding the key (None: no key is sent)
    api_key_env: ClassVar[str | None] = "OPENAI_API_KEY"
    needs_auth = True
    supports_stream = True
    supports_system_message = True
    supports_message_history = True
    default_model = "gpt-4o-mini"
    models: ClassVar[list[str]] = []  # any name is passed through; see list_models()
    options = frozenset({"proxy", "base_url", "api_key", *_KWARGS})

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
        body: dict[str, Any] = {"model": model, "messages": list(messages), "stream": True}
        body.update({k: kwargs[k] for k in _KWARGS if kwargs.get(k) is not None})
        name = cls.name
        async with http.session(cls._headers(api_key), timeout=timeout) as session:
            async with _model_errors(name, model), \
                    http.request(session, "POST", f"{url}/chat/completions", json=body,
                                 proxy=proxy, provider=name) as response:
                if not response.content_type.startswith("text/event-stream"):
                    # a server that ignores "stream": one JSON answer
                    data = await http.read_json(response, name)
                    _raise_error_event(data, name, model)
                    choice = (data.get("choices") or [{}])[0]
                    if content := (choice.get("message") or {}).get("content"):
                        yield content
                    yield FinishReason(choice.get("finish_reason") or "stop")
                    return
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
                    for choice in data.get("choices") or []:
                        if content := (choice.get("delta") or {}).get("content"):
                            yield content
                        if reason := choice.get("finish_reason"):
                            yield FinishReason(reason)
                if not events:
                    raise errors.ResponseFormatError(f"{url}/chat/completions sent an empty event stream",
                                                     provider=name)

    @classmethod
    async def list_models(cls, *, base_url: str | None = None, api_key: str | None = None,
                          proxy: str | None = None, timeout: float | None = None) -> list[str]:
        url = cls.resolve_base_url(base_url)
        async with http.session(cls._headers(api_key), timeout=timeout) as session:
            async with http.request(session, "GET", f"{url}/models", proxy=proxy,
                                    provider=cls.name) as response:
                data = await http.read_json(response, cls.name)
        items = data.get("data", []) if isinstance(data, dict) else data
        return sorted(str(m.get("id")) for m in items if isinstance(m, dict) and m.get("id"))


@asynccontextmanager
async def _model_errors(provider: str, model: str) -> AsyncIterator[None]:
    """An HTTP 404 that names the model means the model is unknown, not the URL."""
    try:
        yield
    except errors.HTTPStatusError as exc:
        if exc.status == 404 and "model" in exc.body.lower():
            raise errors.ModelNotFoundError(f"{provider} does not know model {model!r}: {exc.body}",
                                            provider=provider) from exc
        raise


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


class Ollama(OpenAICompatible):
    label = "Ollama on this machine (ollama serve)"
    name = "Ollama"
    url = "http://127.0.0.1:11434/v1"
    base_url_env = "OLLAMA_BASE_URL"
    api_key_env = None
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
    api_key_env = None
    needs_auth = False
    default_model = "default"

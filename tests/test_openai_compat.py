"""OpenAICompatible against the local protocol server: request, SSE framing, errors, secrecy."""

from __future__ import annotations

import asyncio
import traceback

import pytest

from ipyg4f import errors
from ipyg4f.providers import FinishReason
from ipyg4f.providers.openai_compat import LlamaCppServer, Ollama, OpenAICompatible
from protocol_server import closed_port_url, collect, collect_until_error

KEY = "sk-test-7d1f0c2b9a8e4f6b"
ONE = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def api(protocol_server, monkeypatch):
    """The server as an OpenAI base URL, with no OpenAI settings leaking in from the environment."""
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    return protocol_server


def chat(srv, messages=ONE, model="test-model", **kwargs):
    kwargs.setdefault("api_key", KEY)
    return OpenAICompatible.create_async_generator(model, messages, base_url=f"{srv.base_url}/v1", **kwargs)


def text(items):
    return "".join(i for i in items if isinstance(i, str))


def event(content):
    return b'data: {"choices":[{"delta":{"content":"' + content.encode() + b'"}}]}'


async def test_request_carries_bearer_key_model_messages_and_options(api):
    messages = [{"role": "system", "content": "Be brief."}, *ONE]
    items = await collect(chat(api, messages, temperature=0.2, max_tokens=50, top_p=None))
    assert items == ["Hello ", "world", FinishReason("stop")]
    [req] = api.requests
    assert (req.method, req.path) == ("POST", "/v1/chat/completions")
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["accept"] == "text/event-stream"
    assert req.headers["content-type"] == "application/json"
    assert req.json == {"model": "test-model", "messages": messages, "stream": True,
                        "temperature": 0.2, "max_tokens": 50}


async def test_key_and_base_url_come_from_the_environment(api, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", f"{api.base_url}/v1/")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert OpenAICompatible.is_available()
    assert text(await collect(OpenAICompatible.create_async_generator("", ONE))) == "Hello world"
    req = api.requests[0]
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.json["model"] == OpenAICompatible.default_model


async def test_keyless_subclasses_send_no_authorization(api, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # must not leak to a local server
    for provider in (Ollama, LlamaCppServer):
        await collect(provider.create_async_generator("m", ONE, base_url=f"{api.base_url}/v1"))
    assert [r.headers.get("authorization") for r in api.requests] == [None, None]


async def test_deltas_stream_as_they_arrive(api):
    api.fault, api.fault_after = "stall", 1
    agen = chat(api)
    assert await agen.__anext__() == "Hello "
    assert await asyncio.to_thread(api.wait_stalled)
    api.release_stall()
    assert await collect(agen) == ["world", FinishReason("stop")]


async def test_crlf_split_across_chunks_multiline_data_comments_and_done(api):
    api.chunks = [
        b": keep-alive comment\r\n\r",  # a comment, then CR ... LF arrives in the next chunk
        b"\n" + event("Hel") + b"\r",
        b"\n\r\n",
        b'event: message\r\nid: 7\r\nretry: 1000\r\ndata: {"choices":\r\ndata: [{"delta":{"content":"lo"}}]}\r\n\r\n',
        b'data: {"choices":[{"delta":{"content":" w\xc3',  # a character split across chunks
        b'\xb6rld"},"finish_reason":"stop"}]}\n\n',
        b"data: [DONE]\n\n",
        event("after done, never read") + b"\n\n",
    ]
    assert await collect(chat(api)) == ["Hel", "lo", " wörld", FinishReason("stop")]


async def test_split_utf8_deltas(api):
    api.answer = "Привет, мир! 😀"
    api.fault, api.chunk_delay = "split_utf8", 0.01
    assert text(await collect(chat(api))) == "Привет, мир! 😀"


async def test_server_ignoring_stream_gets_a_json_answer(api):
    api.ignore_stream = True
    assert await collect(chat(api)) == ["Hello world", FinishReason("stop")]


async def test_non_streaming_request_gets_json(api):
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.post(f"{api.base_url}/v1/chat/completions",
                                json={"model": "m", "messages": ONE, "stream": False}) as response:
            data = await response.json()
    assert data["choices"][0]["message"] == {"role": "assistant", "content": "Hello world"}


async def test_list_models(api):
    api.models = ["b-model", "a-model"]
    assert await OpenAICompatible.list_models(base_url=f"{api.base_url}/v1", api_key=KEY) == \
        ["a-model", "b-model"]
    [req] = api.requests
    assert (req.method, req.path) == ("GET", "/v1/models")
    assert req.headers["authorization"] == f"Bearer {KEY}"


async def test_error_event_mid_stream_is_a_provider_error(api):
    api.fault, api.fault_after = "sse_error_event", 1
    items, exc = await collect_until_error(chat(api))
    assert items == ["Hello "]
    assert type(exc) is errors.ProviderError
    assert str(exc) == "OpenAI reported an error: The model crashed while generating"


async def test_unknown_model_404_is_a_clear_model_error(api):
    api.fault = "http404"
    with pytest.raises(errors.ModelNotFoundError) as info:
        await collect(chat(api, model="gpt-9"))
    assert "does not know model 'gpt-9'" in str(info.value)
    assert "`gpt-9` does not exist" in str(info.value)
    assert "%chat models" in info.value.hint


async def test_wrong_key_is_an_auth_error(api):
    api.api_key = "sk-the-right-key-0000"
    with pytest.raises(errors.AuthError, match="not authorised"):
        await collect(chat(api))


FAULTS = [
    ("http500", errors.HTTPStatusError, "HTTP 500: The server had an error while processing your request."),
    ("http404", errors.ModelNotFoundError, "does not know model"),
    ("http429", errors.RateLimitError, "rate limited (HTTP 429)"),
    ("http401", errors.AuthError, "not authorised (HTTP 401): Incorrect API key provided: ***."),
    ("cloudflare", errors.CloudflareError, "blocked by a Cloudflare challenge (HTTP 403)"),
    ("html", errors.ResponseFormatError, "sent an HTML page (Site under maintenance) where JSON was expected"),
    ("truncated_json", errors.ResponseFormatError, "sent an event that is not JSON"),
    ("garbage", errors.ResponseFormatError, "sent an empty event stream"),
    ("empty", errors.ResponseFormatError, "sent an empty event stream"),
    ("sse_error_event", errors.ProviderError, "reported an error"),
    ("reset", errors.StreamBrokenError, "was cut off: the connection closed before the end"),
    ("stall", errors.ProviderTimeoutError, "stopped sending: nothing arrived for 0.5 s"),
]


@pytest.mark.parametrize("fault, exc_type, message", FAULTS, ids=[f[0] for f in FAULTS])
async def test_fault_becomes_a_specific_error_that_never_shows_the_key(api, fault, exc_type, message):
    api.fault, api.fault_after = fault, 1
    _, exc = await collect_until_error(chat(api, timeout=0.5))
    assert type(exc) is exc_type
    assert message in str(exc)
    assert exc.provider == "OpenAI"
    assert_secret_free(exc)


async def test_connection_refused_never_shows_the_key():
    url = closed_port_url()
    _, exc = await collect_until_error(
        OpenAICompatible.create_async_generator("m", ONE, base_url=f"{url}/v1", api_key=KEY))
    assert type(exc) is errors.ProviderConnectionError
    assert str(exc) == f"cannot connect to {url.removeprefix('http://')}"
    assert_secret_free(exc)


async def test_list_models_errors_never_show_the_key(api):
    api.fault = "http401"
    with pytest.raises(errors.AuthError) as info:
        await OpenAICompatible.list_models(base_url=f"{api.base_url}/v1", api_key=KEY)
    assert_secret_free(info.value)


def assert_secret_free(exc):
    """The key appears nowhere: message, repr, hint, body, nor the chained traceback."""
    shown = [str(exc), repr(exc), exc.hint, str(getattr(exc, "body", "")),
             "".join(traceback.format_exception(exc))]
    for part in shown:
        assert KEY not in part

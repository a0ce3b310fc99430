"""OpenAICompatible against the local protocol server: request, SSE framing, errors, secrecy."""

from __future__ import annotations

import asyncio
import traceback

import pytest

from ipyg4f import errors
from ipyg4f.events import Reasoning, ToolCallPart, ToolCalls
from ipyg4f.providers import FinishReason, Usage
from ipyg4f.providers.openai_compat import VLLM, LlamaCppServer, Ollama, OpenAICompatible, ThinkSplitter
from protocol_server import closed_port_url, collect, collect_until_error

KEY = "sk-test-7d1f0c2b9a8e4f6b"
ONE = [{"role": "user", "content": "Hi"}]
ENV_VARS = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OLLAMA_BASE_URL", "OLLAMA_API_KEY", "VLLM_BASE_URL",
            "VLLM_API_KEY", "LLAMACPP_BASE_URL", "LLAMACPP_API_KEY")


@pytest.fixture
def api(protocol_server, monkeypatch):
    """The server as an OpenAI base URL, with no OpenAI settings leaking in from the environment."""
    for var in ENV_VARS:
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
    assert items == ["Hello ", "world", FinishReason("stop"), Usage(3, 2)]
    [req] = api.requests
    assert (req.method, req.path) == ("POST", "/v1/chat/completions")
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["accept"] == "text/event-stream"
    assert req.headers["content-type"] == "application/json"
    assert req.json == {"model": "test-model", "messages": messages, "stream": True,
                        "stream_options": {"include_usage": True}, "temperature": 0.2, "max_tokens": 50}


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
    assert await collect(agen) == ["world", FinishReason("stop"), Usage(1, 2)]


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


async def test_server_ignoring_stream_gets_ajson_answer(api):
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
    ("stall", errors.ProviderTimeoutError, "stopped sending: nothing arrived for 3 s"),
]


@pytest.mark.parametrize("fault, exc_type, message", FAULTS, ids=[f[0] for f in FAULTS])
async def test_fault_becomes_a_specific_error_that_never_shows_the_key(api, fault, exc_type, message):
    api.fault, api.fault_after = fault, 1
    # a stall never ends (3 s of silence, then the timeout); any other fault must not meet the timeout
    _, exc = await collect_until_error(chat(api, timeout=3 if fault == "stall" else 60))
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


# --- reasoning: reasoning fields and <think> tags ------------------------------------------------


def merged(items):
    """Consecutive text pieces joined, consecutive Reasoning pieces joined; other events kept."""
    out = []
    for item in items:
        if isinstance(item, str) and out and isinstance(out[-1], str):
            out[-1] += item
        elif isinstance(item, Reasoning) and out and isinstance(out[-1], Reasoning):
            out[-1] = Reasoning(out[-1].text + item.text)
        else:
            out.append(item)
    return out


def split(text, pieces_at):
    bounds = [0, *pieces_at, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:])]


def run_splitter(pieces):
    splitter = ThinkSplitter()
    items = [item for piece in pieces for item in splitter.feed(piece)]
    return items + splitter.close()


THINK_CASES = [
    ("Before <think>I reason.</think>\n\nAfter", ["Before ", Reasoning("I reason."), "After"]),
    ("<think>\nA</think>B<think>C</think>D", [Reasoning("A"), "B", Reasoning("C"), "D"]),
    ("<think>never closed, a partial </thi", [Reasoning("never closed, a partial </thi")]),
    ("no tag, a < b and a partial <thi", ["no tag, a < b and a partial <thi"]),
    ("<think></think>Only the answer", ["Only the answer"]),
]


@pytest.mark.parametrize("text, expected", THINK_CASES, ids=[c[0][:20] for c in THINK_CASES])
def test_think_splitter_at_every_split_point(text, expected):
    assert merged(run_splitter([text])) == expected
    assert merged(run_splitter(list(text))) == expected  # one character at a time
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            items = run_splitter(split(text, [i, j]))
            assert merged(items) == expected, (text[:i], text[i:j], text[j:])
            assert all("<think>" not in i and "</think>" not in i for i in items if isinstance(i, str))


def test_think_splitter_passes_plain_text_through_at_once():
    splitter = ThinkSplitter()
    assert splitter.feed("Hello ") == ["Hello "]
    assert splitter.feed("a <") == ["a "]  # maybe a tag: held back...
    assert splitter.feed("b") == ["<b"]  # ...until it cannot be one
    assert splitter.close() == []


async def test_reasoning_content_becomes_reasoning_events(api):
    api.reasoning = "Let me think"
    items = await collect(chat(api))
    assert items == [Reasoning("Let "), Reasoning("me "), Reasoning("think"), "Hello ", "world",
                     FinishReason("stop"), Usage(1, 5)]


async def test_ollama_reasoning_field_becomes_reasoning_events(api):
    api.reasoning, api.reasoning_field = "Let me think", "reasoning"
    items = await collect(Ollama.create_async_generator("m", ONE, base_url=f"{api.base_url}/v1"))
    assert merged(items) == [Reasoning("Let me think"), "Hello world", FinishReason("stop"), Usage(1, 5)]


async def test_think_tags_in_the_content_become_reasoning(api):
    from ipyg4f.runner import Answer  # the runner splits <think> off every provider's text

    api.reasoning, api.think_tags = "Let me think", True
    answer = Answer()
    for item in await collect(chat(api)):
        answer.feed(item)
    answer.end("ok")
    assert (answer.reasoning, answer.text, answer.usage) == ("Let me think", "Hello world", Usage(1, 5))


# --- usage, finish reasons, stream_options --------------------------------------------------------


async def test_usage_chunk_becomes_usage(api):
    api.prompt_tokens, api.completion_tokens = 11, 7
    items = await collect(chat(api))
    assert items == ["Hello ", "world", FinishReason("stop"), Usage(11, 7)]
    assert api.requests[0].json["stream_options"] == {"include_usage": True}


async def test_length_finish_reason(api):
    api.finish_reason = "length"
    assert (await collect(chat(api, max_tokens=2)))[-2:] == [FinishReason("length"), Usage(1, 2)]
    assert api.requests[0].json["max_tokens"] == 2


async def test_server_rejecting_stream_options_is_asked_once_more_without(api):
    api.reject_stream_options = True
    items = await collect(chat(api))
    assert items == ["Hello ", "world", FinishReason("stop")]  # no usage without stream_options
    first, second = api.requests
    assert first.json["stream_options"] == {"include_usage": True}
    assert "stream_options" not in second.json
    assert {k: v for k, v in first.json.items() if k != "stream_options"} == second.json


async def test_a_400_not_about_stream_options_is_not_retried(api):
    api.reject_stream_options, api.context_overflow = True, True
    with pytest.raises(errors.ContextLengthError):
        await collect(chat(api))
    assert len(api.requests) == 1


def test_non_streamed_answer_yields_reasoning_usage_and_tool_calls():
    from ipyg4f.providers.openai_stream import json_answer

    # what llama.cpp's llama-server (xllamacpp 2026.10.11549) answers with "stream": false
    data = {"choices": [{"finish_reason": "length", "index": 0,
                         "message": {"role": "assistant", "content": "<|im_end"}}],
            "object": "chat.completion", "usage": {"completion_tokens": 5, "prompt_tokens": 26,
                                                   "total_tokens": 31, "prompt_tokens_details": {"cached_tokens": 21}}}
    assert json_answer(data) == ["<|im_end", FinishReason("length"), Usage(26, 5)]
    data = {"choices": [{"finish_reason": "tool_calls", "message": {
        "content": "<think>hm</think>\n", "reasoning_content": "first",
        "tool_calls": [{"id": "c0", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}}]}
    assert json_answer(data) == [Reasoning("first"), "<think>hm</think>\n", ToolCallPart(0, "c0", "get_weather", "{}"),
                                  ToolCalls(("get_weather",)), FinishReason("tool_calls")]  # the runner splits the tags off


# --- tool calls -------------------------------------------------------------------------------------


async def test_tool_call_deltas_become_parts_and_one_tool_calls_event(api):
    api.tool_calls = ["get_weather", "get_time"]
    items = await collect(chat(api))
    parts = [i for i in items if isinstance(i, ToolCallPart)]
    assert [(p.index, p.id, p.name) for p in parts if p.name] == [(0, "call_0", "get_weather"), (1, "call_1", "get_time")]
    assert items[len(parts):len(parts) + 2] == [ToolCalls(("get_weather", "get_time")), FinishReason("tool_calls")]
    assert [i for i in items if isinstance(i, str)] == []  # the arguments never become text
    assert len([i for i in items if isinstance(i, ToolCalls)]) == 1


async def test_tool_calls_without_a_finish_reason_are_reported_at_the_end(api):
    api.chunks = [b'data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":'
                  b'{"name":"lookup","arguments":""}}]}}]}\n\n',
                  b'data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":'
                  b'{"arguments":"{}"}}]}}]}\n\n',
                  b"data: [DONE]\n\n"]
    api.finish_reason = None
    items = await collect(chat(api))
    assert ToolCalls(("lookup",)) in items
    assert [i for i in items if isinstance(i, str)] == []


# --- context overflow -----------------------------------------------------------------------------


async def test_context_overflow_is_a_context_length_error(api):
    api.context_overflow = True
    with pytest.raises(errors.ContextLengthError) as info:
        await collect(chat(api))
    exc = info.value
    assert str(exc) == "the prompt is too long for the model's context"
    assert exc.status == 400 and exc.provider == "OpenAI"
    assert "exceeds the available context size" in exc.body
    assert "may be down" not in exc.hint and "--new" in exc.hint


async def test_llamacpp_context_hint_names_its_context_size(api):
    api.context_overflow = True
    with pytest.raises(errors.ContextLengthError) as info:
        await collect(LlamaCppServer.create_async_generator("m", ONE, base_url=f"{api.base_url}/v1"))
    assert "--ctx-size" in info.value.hint and info.value.provider == "LlamaCppServer"


OVERFLOW_BODIES = [
    ({"error": {"code": 400, "message": "request (1024 tokens) exceeds the available context size (512 tokens), "
                "try increasing it", "type": "exceed_context_size_error", "n_prompt_tokens": 1024, "n_ctx": 512}},
     errors.ContextLengthError),
    ({"error": {"message": "This model's maximum context length is 8192 tokens. However, your messages resulted "
                "in 9000 tokens. Please reduce the length of the messages.", "type": "invalid_request_error",
                "param": "messages", "code": "context_length_exceeded"}}, errors.ContextLengthError),
    ({"error": {"message": "Invalid value for 'temperature': must be at most 2.", "type": "invalid_request_error"}},
     errors.HTTPStatusError),
]


@pytest.mark.parametrize("body, exc_type", OVERFLOW_BODIES, ids=["llama.cpp", "openai", "other-400"])
async def test_which_400_bodies_mean_the_context_overflowed(body, exc_type):
    import json

    from ipyg4f import http
    from ipyg4f.providers.openai_compat import _status_errors

    with pytest.raises(errors.HTTPStatusError) as info:
        async with _status_errors(VLLM, "m"):
            raise http.status_error(400, json.dumps(body), provider="VLLM")
    assert type(info.value) is exc_type


# --- keys: each provider its own variable, and says so on a 401 -----------------------------------

KEY_VARS = [(OpenAICompatible, "OPENAI_API_KEY"), (Ollama, "OLLAMA_API_KEY"), (VLLM, "VLLM_API_KEY"),
            (LlamaCppServer, "LLAMACPP_API_KEY")]


@pytest.mark.parametrize("provider, variable", KEY_VARS, ids=[p.name for p, _ in KEY_VARS])
async def test_each_provider_reads_its_own_key_variable(api, monkeypatch, provider, variable):
    api.api_key = KEY
    monkeypatch.setenv(variable, KEY)
    items = await collect(provider.create_async_generator("m", ONE, base_url=f"{api.base_url}/v1"))
    assert text(items) == "Hello world"
    assert api.requests[0].headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("provider, variable", KEY_VARS, ids=[p.name for p, _ in KEY_VARS])
async def test_a_401_hint_names_the_variable_the_provider_reads(api, monkeypatch, provider, variable):
    api.api_key = "sk-the-right-key-0000"
    for _, each in KEY_VARS:
        monkeypatch.setenv(each, "sk-wrong-everywhere")
    with pytest.raises(errors.AuthError) as info:
        await collect(provider.create_async_generator("m", ONE, base_url=f"{api.base_url}/v1"))
    named = [each for _, each in KEY_VARS if each in info.value.hint]
    assert named == [variable]
    with pytest.raises(errors.AuthError) as info:
        await provider.list_models(base_url=f"{api.base_url}/v1")
    assert [each for _, each in KEY_VARS if each in info.value.hint] == [variable]


def test_every_provider_declares_the_options_it_honours():
    from ipyg4f.providers.base import OPTION_FLAGS

    expected = {"proxy", "base_url", "api_key", "temperature", "max_tokens", "top_p", "stop", "seed",
                "response_format"}
    for provider, _ in KEY_VARS:
        assert provider.options == expected
        assert provider.options <= OPTION_FLAGS.keys()


def test_a_keyless_local_server_is_available_only_while_it_listens(protocol_server, monkeypatch):
    from protocol_server import closed_port_url

    monkeypatch.setenv("LLAMACPP_BASE_URL", f"{closed_port_url()}/v1")
    assert not LlamaCppServer.is_available()  # nothing listens: not offered, and Fallback skips it
    monkeypatch.setenv("LLAMACPP_BASE_URL", f"{protocol_server.base_url}/v1")
    assert LlamaCppServer.is_available()
    monkeypatch.setenv("LLAMACPP_BASE_URL", "http://gpu-box.invalid:8080/v1")
    assert LlamaCppServer.is_available()  # a remote server is not probed: taken as configured

"""The protocol server's OpenAI-compatible streams, checked with a plain aiohttp client on the raw events."""

from __future__ import annotations

import json

import aiohttp
import pytest

from protocol_server import TOOL_ARGUMENTS

ONE = [{"role": "user", "content": "Hi there, friend"}]  # 3 words


async def post(srv, **body) -> tuple[int, bytes]:
    """POST a streamed chat request; the status and the raw body."""
    request = {"model": "m", "messages": ONE, "stream": True, **body}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{srv.base_url}/v1/chat/completions", json=request) as response:
            return response.status, await response.read()


async def events(srv, **body) -> list[dict]:
    """The JSON events of a stream that must end with ``data: [DONE]``, framed exactly as servers do."""
    status, raw = await post(srv, **body)
    assert status == 200, raw
    blocks = raw.split(b"\n\n")
    assert blocks[-2:] == [b"data: [DONE]", b""], raw[-80:]
    assert all(block.startswith(b"data: ") for block in blocks[:-2])
    return [json.loads(block.removeprefix(b"data: ")) for block in blocks[:-2]]


def deltas(evts: list[dict]) -> list[dict]:
    return [choice["delta"] for e in evts for choice in e["choices"]]


def joined(evts: list[dict], key: str) -> str:
    return "".join(d[key] for d in deltas(evts) if d.get(key))


def finish_reasons(evts: list[dict]) -> list[str]:
    return [c["finish_reason"] for e in evts for c in e["choices"] if c["finish_reason"]]


# --- the plain stream (what the new settings change) --------------------------------

async def test_a_plain_stream_has_content_deltas_a_stop_and_no_usage(protocol_server):
    evts = await events(protocol_server)
    assert deltas(evts) == [{"content": "Hello "}, {"content": "world"}, {}]
    assert finish_reasons(evts) == ["stop"]
    assert all("usage" not in e for e in evts)


# --- reasoning ---------------------------------------------------------------------

async def test_reasoning_content_streams_before_the_answer(protocol_server):
    protocol_server.reasoning = "The user greets me."
    evts = await events(protocol_server)
    assert deltas(evts)[:4] == [{"content": None, "reasoning_content": piece}
                                for piece in ["The ", "user ", "greets ", "me."]]
    assert deltas(evts)[4:] == [{"content": "Hello "}, {"content": "world"}, {}]


async def test_reasoning_pieces_and_the_reasoning_field_name(protocol_server):
    protocol_server.reasoning = ["Think", "ing..."]
    protocol_server.reasoning_field = "reasoning"
    evts = await events(protocol_server)
    assert [d["reasoning"] for d in deltas(evts) if "reasoning" in d] == ["Think", "ing..."]
    assert not any("reasoning_content" in d for d in deltas(evts))
    assert joined(evts, "content") == "Hello world"


async def test_think_tags_put_the_reasoning_in_the_content_with_split_tags(protocol_server):
    protocol_server.reasoning = "Short thought."
    protocol_server.think_tags = True
    evts = await events(protocol_server)
    contents = [d.get("content") for d in deltas(evts)]
    assert contents[:2] == ["<thi", "nk>"]
    assert "</" in contents and "think>\n\n" in contents
    assert joined(evts, "content") == "<think>Short thought.</think>\n\nHello world"
    assert not any("reasoning_content" in d for d in deltas(evts))


# --- usage -------------------------------------------------------------------------

async def test_include_usage_adds_a_usage_chunk_counted_in_words(protocol_server):
    protocol_server.reasoning = "Two words"
    evts = await events(protocol_server, stream_options={"include_usage": True})
    *streamed, last = evts
    assert last["choices"] == []
    assert last["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert all(e["usage"] is None for e in streamed)
    assert finish_reasons(streamed) == ["stop"]


async def test_usage_numbers_can_be_set(protocol_server):
    protocol_server.prompt_tokens, protocol_server.completion_tokens = 120, 30
    evts = await events(protocol_server, stream_options={"include_usage": True})
    assert evts[-1]["usage"] == {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}


async def test_stream_options_without_include_usage_send_no_usage(protocol_server):
    evts = await events(protocol_server, stream_options={"include_usage": False})
    assert all("usage" not in e for e in evts)


async def test_a_server_rejecting_stream_options_answers_400(protocol_server):
    protocol_server.reject_stream_options = True
    status, raw = await post(protocol_server, stream_options={"include_usage": True})
    assert status == 400
    assert json.loads(raw)["error"]["message"] == "Unrecognized request argument supplied: stream_options"
    assert joined(await events(protocol_server), "content") == "Hello world"  # fine without them


# --- finish reason and tool calls ----------------------------------------------------

async def test_finish_reason_length_is_on_the_last_delta(protocol_server):
    protocol_server.finish_reason = "length"
    evts = await events(protocol_server)
    assert evts[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "length"}
    assert finish_reasons(evts) == ["length"]


async def test_finish_reason_in_the_json_answer(protocol_server):
    protocol_server.finish_reason = "length"
    status, raw = await post(protocol_server, stream=False)
    assert (status, json.loads(raw)["choices"][0]["finish_reason"]) == (200, "length")


async def test_tool_calls_stream_names_and_arguments_in_pieces_without_content(protocol_server):
    protocol_server.tool_calls = ["get_weather", "get_time"]
    evts = await events(protocol_server)
    calls = [call for d in deltas(evts) for call in d.get("tool_calls", [])]
    heads = [c for c in calls if "id" in c]
    assert [(c["index"], c["id"], c["type"], c["function"]["name"]) for c in heads] == \
        [(0, "call_0", "function", "get_weather"), (1, "call_1", "function", "get_time")]
    for index in (0, 1):
        pieces = [c["function"]["arguments"] for c in calls if c["index"] == index]
        assert len([p for p in pieces if p]) > 1
        assert json.loads("".join(pieces)) == TOOL_ARGUMENTS
    assert not any(d.get("content") for d in deltas(evts))
    assert finish_reasons(evts) == ["tool_calls"]


# --- errors ------------------------------------------------------------------------

async def test_context_overflow_is_llama_cpps_400(protocol_server):
    protocol_server.context_overflow = True
    status, raw = await post(protocol_server)
    assert status == 400
    assert json.loads(raw) == {"error": {
        "code": 400,
        "message": "request (5000 tokens) exceeds the available context size (4096 tokens), try increasing it",
        "type": "exceed_context_size_error", "n_prompt_tokens": 5000, "n_ctx": 4096}}


# --- recording and reset -------------------------------------------------------------

async def test_the_json_body_sent_is_recorded(protocol_server):
    await events(protocol_server, max_tokens=64, stream_options={"include_usage": True})
    [req] = protocol_server.requests
    assert req.json["max_tokens"] == 64
    assert req.json["stream_options"] == {"include_usage": True}
    assert req.json["messages"] == ONE


@pytest.mark.parametrize("name, value", [
    ("reasoning", "x"), ("reasoning_field", "reasoning"), ("think_tags", True), ("finish_reason", "length"),
    ("tool_calls", ["f"]), ("prompt_tokens", 1), ("completion_tokens", 1),
    ("reject_stream_options", True), ("context_overflow", True),
])
async def test_reset_restores_each_new_setting(protocol_server, name, value):
    before = getattr(protocol_server, name)
    setattr(protocol_server, name, value)
    protocol_server.reset()
    assert getattr(protocol_server, name) == before
    evts = await events(protocol_server, stream_options={"include_usage": True})
    assert joined(evts, "content") == "Hello world"
    assert evts[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}

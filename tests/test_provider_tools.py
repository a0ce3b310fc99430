"""Providers that take tools, against the protocol server's scripted tool calls: the OpenAI-compatible
family (``tools`` in the body, streamed ``tool_calls`` deltas -> ``ToolCallPart``), gpt4free's own
``Custom`` class passing them through, and the agent's loop run over both for several steps."""

from __future__ import annotations

import asyncio
import json

import pytest

import g4f.providers.response as g4f_response  # pinned in the test extra
from ipyg4f.agent.calls import Calls
from ipyg4f.agent.functions import function_tool
from ipyg4f.agent.loop import DONE, MAX_STEPS, ToolLoop
from ipyg4f.answer import Answer
from ipyg4f.events import FinishReason, ToolCallPart, ToolCalls
from ipyg4f.providers import get_provider, register, unregister
from ipyg4f.providers.openai_compat import LlamaCppServer, Ollama, OpenAICompatible
from ipyg4f.providers.openai_stream import StreamState, json_answer
from ipyg4f.providers.setup import resolve, tools_problem
from protocol_server import collect
from tool_script import Call, Turn, tool_results

KEY = "sk-tools-3c9e1a"
ASK = [{"role": "user", "content": "Weather in Paris?"}]
WEATHER = {"city": "Zürich \"Nord\"", "unit": "celsius", "days": [1, 2]}  # a quote and a non-ASCII letter to cut inside
SPEC = {"type": "function", "function": {"name": "weather", "description": "The weather in a city.",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def chat(srv, messages=ASK, provider=OpenAICompatible, **kwargs):
    kwargs.setdefault("api_key", KEY)
    return provider.create_async_generator("test-model", messages, base_url=f"{srv.base_url}/v1", **kwargs)


def joined(items) -> list[tuple[str, str, dict | str]]:
    """The whole calls the parts of an answer make, as the agent's loop joins them."""
    calls = Calls()
    for item in items:
        if isinstance(item, ToolCallPart):
            calls.add(item)
    out = []
    for call in calls.done(1):
        try:
            arguments = json.loads(call.arguments)
        except ValueError:
            arguments = call.arguments
        out.append((call.id, call.name, arguments))
    return out


# --- the request ---------------------------------------------------------------------------------

async def test_tools_and_tool_choice_go_in_the_body_and_the_history_as_given(protocol_server):
    protocol_server.script = ["fine"]
    history = [*ASK, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c9", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "c9", "content": "sunny"}]
    await collect(chat(protocol_server, history, tools=[SPEC], tool_choice="auto"))
    [body] = protocol_server.chat_bodies()
    assert body["tools"] == [SPEC] and body["tool_choice"] == "auto"
    assert body["messages"] == history  # content None and the tool result, unchanged


@pytest.mark.parametrize("tools", [None, []])
async def test_no_tools_no_tool_keys(protocol_server, tools):
    await collect(chat(protocol_server, tools=tools, tool_choice="auto"))
    [body] = protocol_server.chat_bodies()
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(body)


def test_the_openai_family_takes_tools_and_the_seeds_and_fallback_do_not():
    assert OpenAICompatible.supports_tools and Ollama.supports_tools and LlamaCppServer.supports_tools
    assert get_provider("g4f:Custom").supports_tools and get_provider("g4f:Groq").supports_tools
    assert not get_provider("g4f:GoogleSearch").supports_tools  # declares native tools, has no way in for them
    assert not get_provider("Pizzagpt").supports_tools and not get_provider("Fallback").supports_tools
    assert tools_problem(resolve("OpenAI", cell={"base_url": "http://127.0.0.1:9/v1"})) is None
    assert tools_problem(resolve("g4f:Custom")) is None
    problem = tools_problem(resolve("Pizzagpt"))
    assert problem.startswith("Pizzagpt takes no tools (--tools)") and "-p OpenAI" in problem
    assert "--tools with -p Fallback" in tools_problem(resolve("Fallback"))
    # a seed takes **kwargs and would drop tools silently: ignored() never names them, supports_tools must
    assert resolve("Pizzagpt").ignored({"tools": [SPEC]}) == []


# --- what comes back -------------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [True, False])
async def test_a_call_with_its_arguments_cut_anywhere_comes_back_whole(protocol_server, stream):
    protocol_server.script = [Turn("Let me look. ", [Call("weather", WEATHER, id="call_w", cuts=9)])]
    items = await collect(chat(protocol_server, tools=[SPEC], **({} if stream else {"stream": False})))
    if not stream:  # the server ignores "stream": one JSON answer with message.tool_calls
        protocol_server.reset()
        protocol_server.script, protocol_server.ignore_stream = [Turn("Let me look. ", [Call("weather", WEATHER, id="call_w")])], True
        items = await collect(chat(protocol_server, tools=[SPEC]))
    assert joined(items) == [("call_w", "weather", WEATHER)]
    assert "".join(i for i in items if isinstance(i, str)) == "Let me look. "  # arguments never become text
    assert ToolCalls(("weather",)) in items and FinishReason("tool_calls") in items
    answer = Answer()
    for item in items:
        answer.feed(item)
    assert answer.tool_calls == ["weather"] and answer.has_answer  # a plain answer still names them


@pytest.mark.parametrize("interleave", [False, True])
async def test_two_calls_in_one_answer(protocol_server, interleave):
    protocol_server.script = [Turn(calls=[Call("weather", {"city": "Paris"}, cuts=5),
                                          Call("clock", {"zone": "Europe/Paris"}, cuts=7)], interleave=interleave)]
    items = await collect(chat(protocol_server, tools=[SPEC]))
    assert joined(items) == [("call_0_0", "weather", {"city": "Paris"}), ("call_0_1", "clock", {"zone": "Europe/Paris"})]
    assert [i for i in items if isinstance(i, ToolCalls)] == [ToolCalls(("weather", "clock"))]


async def test_invalid_json_arguments_come_back_as_sent(protocol_server):
    protocol_server.script = [Turn(calls=[Call("weather", '{"city": "Par', cuts=3)])]
    assert joined(await collect(chat(protocol_server, tools=[SPEC]))) == [("call_0_0", "weather", '{"city": "Par')]


def test_servers_that_number_every_call_0_or_send_arguments_as_an_object():
    state = StreamState()
    items = []
    for call in ({"index": 0, "id": "a", "function": {"name": "f", "arguments": {"x": 1}}},
                 {"index": 0, "id": "b", "function": {"name": "g", "arguments": "{}"}}):
        items += state.feed({"choices": [{"delta": {"tool_calls": [call]}}]})
    items += state.close()
    assert joined(items) == [("a", "f", {"x": 1}), ("b", "g", {})]
    assert items[-1] == ToolCalls(("f", "g"))
    assert joined(json_answer({"choices": [{"message": {"tool_calls": [
        {"id": "a", "function": {"name": "f", "arguments": "{}"}}, {"function": {"name": "g"}}]}}]})) == [
        ("a", "f", {}), ("call_1_1", "g", "")]


# --- the loop over a provider, several steps -------------------------------------------------------

def weather(city: str) -> str:
    """The weather in a city."""
    if city == "Nowhere":
        raise ValueError("no such city")
    return f"sunny in {city}"


def scripted_steps():
    return [Turn(calls=[Call("weather", {"city": "Paris"}, cuts=6), Call("nope", {})]),
            Turn("Checking again.", [Call("weather", '{"city": ', id="bad"), Call("weather", {"city": "Nowhere"})]),
            Turn("Sunny in Paris.")]


async def run_loop(provider, srv, max_steps=10, **kwargs):
    loop = ToolLoop([function_tool(weather)], max_steps=max_steps)

    def request(messages, tools):
        return chat(srv, messages, provider, tools=tools, **kwargs)

    text = await loop.run(request, list(ASK))
    return loop, text


async def check_three_steps(provider, srv, **kwargs):
    srv.script = scripted_steps()
    loop, text = await run_loop(provider, srv, **kwargs)
    assert (loop.outcome, text, loop.requests) == (DONE, "Sunny in Paris.", 3)
    first, second, third = srv.chat_bodies()
    assert [t["function"]["name"] for t in first["tools"]] == ["weather"]
    assert tool_results(first) == {}
    assert tool_results(second) == {"call_0_0": "sunny in Paris",
                                    "call_0_1": "error: there is no tool 'nope' (the tools are: weather)"}
    results = tool_results(third)
    assert results["bad"].startswith("error: the arguments are not valid JSON")
    assert results["call_1_1"] == "error: ValueError: no such city"
    assistant = [m for m in third["messages"] if m["role"] == "assistant"]
    assert [m["content"] for m in assistant] == [None, "Checking again."]
    assert [c["id"] for c in assistant[1]["tool_calls"]] == ["bad", "call_1_1"]


async def test_the_loop_runs_three_steps_over_openai(protocol_server):
    await check_three_steps(OpenAICompatible, protocol_server)


async def test_the_loop_stops_at_max_steps_and_every_call_gets_a_result(protocol_server):
    protocol_server.script = [Turn(calls=[Call("weather", {"city": "Paris"})])]  # asks again, forever
    loop, _ = await run_loop(OpenAICompatible, protocol_server, max_steps=2)
    assert loop.outcome == MAX_STEPS and len(protocol_server.chat_bodies()) == 2
    assert loop.messages[-1] == {"role": "tool", "tool_call_id": "call_1_0",
                                 "content": "not run: the step limit of this cell was reached"}


# --- gpt4free's own Custom class (OpenaiTemplate) ---------------------------------------------------

@pytest.fixture
async def custom():
    """gpt4free's Custom; the connector gpt4free keeps for this test's loop is closed at the end."""
    yield get_provider("g4f:Custom")
    from g4f.requests import aiohttp as g4f_aiohttp

    connector = g4f_aiohttp._loop_connectors.pop(asyncio.get_running_loop(), None)
    if connector is not None:
        await connector.close()


@pytest.mark.parametrize("stream", [True, False])
async def test_custom_passes_tools_and_its_tool_calls_come_back_as_parts(protocol_server, custom, stream):
    protocol_server.script = [Turn(calls=[Call("weather", WEATHER, id="call_w", cuts=9), Call("clock", {})])]
    protocol_server.ignore_stream = not stream
    items = await collect(chat(protocol_server, provider=custom, tools=[SPEC], tool_choice="required"))
    [body] = protocol_server.chat_bodies()
    assert body["tools"] == [SPEC] and body["tool_choice"] == "required"
    assert joined(items) == [("call_w", "weather", WEATHER), ("call_0_1", "clock", {})]
    assert [n for i in items if isinstance(i, ToolCalls) for n in i.names] == ["weather", "clock"]
    assert not [i for i in items if isinstance(i, str)]


async def test_custom_without_tools_sends_no_tools(protocol_server, custom):
    await collect(chat(protocol_server, provider=custom, tools=[]))
    [body] = protocol_server.chat_bodies()
    assert "tools" not in body


async def test_the_loop_runs_three_steps_over_gpt4free_custom(protocol_server, custom):
    await check_three_steps(custom, protocol_server)


class NoTools:
    """Shaped like a gpt4free provider that takes **kwargs but no tools; records what it was given."""

    working = True
    given: dict = {}

    @classmethod
    async def create_async_generator(cls, model, messages, proxy=None, **kwargs):
        cls.given = kwargs
        yield g4f_response.ToolCalls([{"index": 0, "id": "x", "function": {"name": "f", "arguments": "{}"}}])


async def test_a_foreign_class_without_tools_is_never_given_them():
    register(NoTools, "NoTools")
    try:
        provider = get_provider("NoTools")
        assert not provider.supports_tools
        assert "takes no tools" in tools_problem(resolve("NoTools"))
        items = await collect(provider.create_async_generator("", ASK, tools=[SPEC], tool_choice="auto", seed=1))
    finally:
        unregister("NoTools")
    assert NoTools.given == {"seed": 1}
    assert items == [ToolCallPart(0, "x", "f", "{}"), ToolCalls(("f",))]  # what it sends is still read


# --- xllamacpp's real llama.cpp HTTP server, with the offline default model --------------------------

@pytest.fixture(scope="module")
def qwen_server():
    from ipyg4f.providers.local import bundled
    from llama_server import llama_server

    with llama_server(n_ctx=2048, model=bundled.QWEN.name) as srv:
        yield srv


@pytest.mark.local_model
async def test_llama_server_takes_tools_and_a_history_of_calls_and_results(qwen_server):
    """The Qwen template renders the tools, the assistant's tool_calls (content None) and the tool result."""
    history = [{"role": "user", "content": "How many rows does the DataFrame sales have?"},
               {"role": "assistant", "content": None, "tool_calls": [
                   {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "sales"}'}}]},
               {"role": "tool", "tool_call_id": "c1", "content": "DataFrame: 12 rows, 3 columns"}]
    items = await collect(LlamaCppServer.create_async_generator(
        qwen_server.model, history, base_url=qwen_server.url, api_key=qwen_server.key, tools=[SPEC],
        max_tokens=24, temperature=0))
    assert "".join(i for i in items if isinstance(i, str)).strip()
    assert [i for i in items if isinstance(i, FinishReason)]


@pytest.mark.local_model
async def test_llama_server_without_jinja_refuses_tools_and_the_error_says_how_to_start_it():
    from ipyg4f import errors
    from ipyg4f.providers.local import bundled
    from llama_server import llama_server

    with llama_server(n_ctx=512, model=bundled.QWEN.name, jinja=False) as srv:
        with pytest.raises(errors.HTTPStatusError) as info:
            await collect(LlamaCppServer.create_async_generator(srv.model, ASK, base_url=srv.url, api_key=srv.key,
                                                                tools=[SPEC], max_tokens=4))
    assert "tools param requires --jinja flag" in str(info.value) + info.value.body
    assert "--jinja" in info.value.hint


# --- calls written as text (llama.cpp's parser misses those of small models) ------------------------

FENCED = ["```json\n{\n", '  "name": "weather",\n  "argu', 'ments": {"city": "Paris"}\n}\n```']


async def test_llamacppserver_takes_a_call_written_as_fenced_json_for_an_offered_tool(protocol_server):
    protocol_server.chunks = FENCED
    items = await collect(chat(protocol_server, provider=LlamaCppServer, tools=[SPEC]))
    assert joined(items) == [("call_1_0", "weather", {"city": "Paris"})]
    assert not [i for i in items if isinstance(i, str)]
    assert [i for i in items if isinstance(i, FinishReason)] == [FinishReason("tool_calls")]
    protocol_server.reset()
    protocol_server.chunks = FENCED  # OpenAI's own parser is trusted: text stays text
    assert "".join(i for i in await collect(chat(protocol_server, tools=[SPEC])) if isinstance(i, str)) == "".join(FENCED)


@pytest.mark.parametrize("chunks, tools", [
    (["{", '"name": "other", "arguments": {}}'], [SPEC]),  # a tool that was not offered
    (["```python\n", "print(1)\n```"], [SPEC]),  # code, not a call
    (FENCED, None),  # no tools offered
])
async def test_llamacppserver_text_that_is_no_call_comes_back_as_it_was(protocol_server, chunks, tools):
    protocol_server.chunks = chunks
    items = await collect(chat(protocol_server, provider=LlamaCppServer, tools=tools))
    assert "".join(i for i in items if isinstance(i, str)) == "".join(chunks)
    assert not joined(items) and FinishReason("stop") in items


async def test_llamacppserver_asks_without_tools_when_the_model_repeats_an_answered_call(protocol_server):
    history = [*ASK, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]
    bare = ['{"name": "wea', 'ther", "arguments": {"city": "Par', 'is"}}', '\n{"name": "weather", "argu']
    protocol_server.chunks = bare  # the same call, and again (cut at the token limit)
    items = await collect(chat(protocol_server, history, provider=LlamaCppServer, tools=[SPEC]))
    assert joined(items) == [] and protocol_server.paths() == ["/v1/chat/completions"] * 2
    again = protocol_server.chat_bodies()[1]
    assert "tools" not in again and again["messages"][-1]["role"] == "user" and "sunny" in again["messages"][-1]["content"]
    assert "".join(i for i in items if isinstance(i, str)) == "".join(bare)  # (the server's second answer)
    protocol_server.reset()
    protocol_server.chunks = bare  # a new call (no result for it yet) is a call
    assert joined(await collect(chat(protocol_server, provider=LlamaCppServer, tools=[SPEC]))) == [
        ("call_1_0", "weather", {"city": "Paris"})]


@pytest.mark.local_model
@pytest.mark.timeout(600)  # two or three generations on one thread of a busy machine
async def test_llama_server_and_the_default_model_describe_the_frame_and_answer_from_it(qwen_server):
    """The real llama.cpp server and Qwen2.5-Coder-0.5B through LlamaCppServer: the model's call (written as
    fenced JSON, which llama.cpp's parser leaves as text) is a tool call, the loop runs the real describe
    on the real frame, and the model answers from the result."""
    import pandas as pd

    from ipyg4f.agent.notebook import notebook_tools

    class Shell:
        user_ns = {"df": pd.DataFrame({"price": [1.0, 2.0, None, 7.0], "item": ["a", "b", "c", "d"]})}
        user_ns_hidden: dict = {}
        execution_count = 1

    tools = [t for t in notebook_tools(Shell(), 2000) if t.name in ("describe", "list_variables")]
    sent = []

    def request(messages, specs):
        sent.append(json.loads(json.dumps(messages)))
        return LlamaCppServer.create_async_generator(qwen_server.model, messages, base_url=qwen_server.url,
                                                     api_key=qwen_server.key, tools=specs, max_tokens=64, temperature=0)

    loop = ToolLoop(tools, max_steps=3)
    question = "How many null values does the price column of the DataFrame df have?"
    text = await loop.run(request, [{"role": "user", "content": question}])
    assert loop.outcome == DONE, (loop.note, text)
    [step] = loop.steps
    assert step.tool == "describe" and json.loads(step.arguments) == {"name": "df"} and not step.error
    assert "'price': float64, 1 null" in sent[1][2]["content"]
    assert "1" in text and "null" in text.lower()

"""Local with tools: definitions checked, calls found (structured, bare JSON, fenced, tagged), the real model."""

from __future__ import annotations

import json

import pytest

from ipyg4f.errors import ProviderError
from ipyg4f.events import ToolCalls, Usage
from ipyg4f.providers.base import FinishReason
from ipyg4f.providers.local import Local, bundled, engine
from ipyg4f.providers.local.tools import calls_in_text, check_tools, may_be_a_call

DESCRIBE = {"type": "function", "function": {
    "name": "describe",
    "description": "Describe a pandas DataFrame variable of the notebook: its columns, dtypes and summary statistics.",
    "parameters": {"type": "object", "properties": {"name": {"type": "string", "description": "the variable's name"}},
                   "required": ["name"]}}}
NAMES = {"describe"}


@pytest.mark.parametrize("text, expected", [
    ('{"name": "describe", "arguments": {"name": "df"}}', [("describe", '{"name": "df"}')]),
    ('```json\n{"name": "describe", "arguments": {"name": "df"}}\n```', [("describe", '{"name": "df"}')]),
    ('<tool_call>\n{"name": "describe", "arguments": {"name": "df"}}\n</tool_call>', [("describe", '{"name": "df"}')]),
    ('<tool_call>{"name": "describe", "arguments": "{\\"name\\": \\"a\\"}"}</tool_call>\n'
     '<tool_call>{"name": "describe", "parameters": {"name": "b"}}</tool_call>',
     [("describe", '{"name": "a"}'), ("describe", '{"name": "b"}')]),
    ('[{"type": "function", "function": {"name": "describe", "arguments": {}}}]', [("describe", "{}")]),
    ('{"name": "delete_everything", "arguments": {}}', []),  # not offered: not a call
    ('{"name": "describe", "arguments": {"name": "df"}} and then some prose', []),
    ("The mean price is 3.5.", []),
    ("```python\nprint(df.describe())\n```", []),
])
def test_calls_written_as_text(text, expected):
    assert calls_in_text(text, NAMES) == expected


def test_text_that_may_still_be_a_call_is_held_back_and_prose_is_not():
    assert all(may_be_a_call(t) for t in ("", "  ", "{", ' {"na', "`", "``", "```json", "<tool", "<tool_call>{"))
    assert not any(may_be_a_call(t) for t in ("The", " Paris", "<b>", "`df`"))


def test_tool_definitions_are_checked():
    assert check_tools([DESCRIBE]) == [DESCRIBE]
    for bad in ([], "describe", [{"type": "function"}], [{"function": {"name": ""}}]):
        with pytest.raises(ProviderError, match="tool"):
            check_tools(bad)


class ScriptedServer:
    """Stands for llama.cpp's in-process server: answers each chat request with the next scripted chunks
    (``chunks``: one list for every request, or ``answers``: one list per request)."""

    def __init__(self, chunks=None, answers=None):
        self.answers, self.requests = list(answers or [chunks]), []
        self.fed = 0  #: chunks handed over before the callback said stop

    def handle_chat_completions(self, request, callback):
        self.requests.append(request)
        for chunk in self.answers[min(len(self.requests), len(self.answers)) - 1]:
            self.fed += 1
            if callback(chunk):
                break


def _delta(**delta):
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def _run(chunks, tools=(DESCRIBE,), messages=None, answers=None):
    job = Local.plan(bundled.QWEN.name, messages or [{"role": "user", "content": "mean price of df?"}],
                     {"tools": list(tools)} if tools else {})
    emitted = []
    server = ScriptedServer(chunks, answers)
    finish = engine._generate(server, job, lambda kind, value=None: emitted.append((kind, value)), 4096,
                              _chat_info())
    return (server.requests if answers else server.requests[0]), emitted, finish


def _chat_info():
    from ipyg4f.gguf import GGUFInfo

    return GGUFInfo(3, 1, "qwen2", True, 32768, 15, "test", ("<|im_end|>",))


STOP = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
USAGE = {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 7}}


def test_structured_tool_call_deltas_become_one_call_with_its_arguments():
    chunks = [_delta(tool_calls=[{"index": 0, "id": "c1", "function": {"name": "describe", "arguments": ""}}]),
              _delta(tool_calls=[{"index": 0, "function": {"arguments": '{"na'}}]),
              _delta(tool_calls=[{"index": 0, "function": {"arguments": 'me": "df"}'}}]),
              {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}, USAGE]
    request, emitted, finish = _run(chunks)
    assert request["tools"] == [DESCRIBE] and request["messages"][-1]["content"] == "mean price of df?"
    assert ("tools", [("describe", '{"name": "df"}')]) in emitted and finish == "tool_calls"
    assert not [v for k, v in emitted if k == "text"]


def test_a_call_written_as_fenced_json_is_a_call_and_not_text():
    pieces = ["```", "json", "\n{", '"name": "describe", ', '"arguments": {"name": "df"}}', "\n```"]
    _, emitted, finish = _run([_delta(content=p) for p in pieces] + [STOP, USAGE])
    assert [k for k, _ in emitted if k in ("text", "tools")] == ["tools"]
    assert dict(emitted)["tools"] == [("describe", '{"name": "df"}')] and finish == "tool_calls"


def test_prose_with_tools_offered_streams_as_usual():
    _, emitted, finish = _run([_delta(content=p) for p in ("The", " mean", " is", " 3.5.")] + [STOP, USAGE])
    assert [v for k, v in emitted if k == "text"] == ["The", " mean", " is", " 3.5."] and finish == "stop"


def test_held_json_that_is_not_a_call_is_given_back_as_text():
    _, emitted, finish = _run([_delta(content=p) for p in ('{"a": ', "1}")] + [STOP, USAGE])
    assert [v for k, v in emitted if k == "text"] == ['{"a": 1}'] and finish == "stop"


def test_without_tools_json_is_just_text():
    _, emitted, _ = _run([_delta(content='{"name": "describe", "arguments": {}}'), STOP, USAGE], tools=())
    assert [k for k, _ in emitted if k in ("text", "tools")] == ["text"]


AFTER_RESULT = [
    {"role": "user", "content": "What is the mean price in the DataFrame df?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "describe", "arguments": '{"name": "df"}'}}]},
    {"role": "tool", "tool_call_id": "call_1",
     "content": "DataFrame df: 4 rows x 2 columns\ncolumns: item (object), price (float64)\n"
                "price: count 4, mean 3.5, std 1.29, min 2.0, max 5.0"},
]


def test_a_call_repeated_after_its_result_is_asked_again_without_tools():
    repeated = [_delta(content='{"name": "describe", "arguments": {"name":"df"}}'), STOP, USAGE]
    prose = [_delta(content=p) for p in ("The mean", " is 3.5.")] + [STOP, USAGE]
    requests, emitted, finish = _run(None, messages=AFTER_RESULT, answers=[repeated, prose])
    assert len(requests) == 2 and "tools" in requests[0] and "tools" not in requests[1]
    [folded] = requests[1]["messages"]  # the result folded into the question: the 0.5B model answers that
    assert folded["role"] == "user" and "mean 3.5" in folded["content"]
    assert folded["content"].endswith("What is the mean price in the DataFrame df?")
    assert [v for k, v in emitted if k == "text"] == ["The mean", " is 3.5."] and finish == "stop"
    assert not [k for k, _ in emitted if k == "tools"]


def test_a_call_written_again_and_again_stops_at_the_first_and_is_a_call():
    again = '{"name": "describe", "arguments": {"name": "sales"}}'
    pieces = [_delta(content=again[:20]), _delta(content=again[20:] + "\n"), _delta(content=again)] * 40
    job = Local.plan(bundled.QWEN.name, [{"role": "user", "content": "sales?"}], {"tools": [DESCRIBE]})
    server, emitted = ScriptedServer(pieces + [STOP]), []
    finish = engine._generate(server, job, lambda kind, value=None: emitted.append((kind, value)), 4096,
                              _chat_info())
    assert dict(emitted)["tools"] == [("describe", '{"name": "sales"}')] and finish == "tool_calls"
    assert not [v for k, v in emitted if k == "text"]
    assert server.fed == 3, "llama.cpp is stopped once the first call is whole, not left to the token limit"


def test_a_new_call_after_a_result_is_a_call():
    other = [_delta(content='{"name": "describe", "arguments": {"name": "sales"}}'), STOP, USAGE]
    requests, emitted, finish = _run(None, messages=AFTER_RESULT, answers=[other])
    assert len(requests) == 1 and dict(emitted)["tools"] == [("describe", '{"name": "sales"}')]
    assert finish == "tool_calls"


def test_the_tiny_gemma_cannot_be_offered_tools():
    job = Local.plan(bundled.GEMMA.name, [{"role": "user", "content": "hi"}], {"tools": [DESCRIBE]})
    with pytest.raises(ProviderError, match="no chat template, so it cannot be offered tools"):
        job.request(4096)


@pytest.mark.local_model
async def test_the_default_model_calls_describe_on_a_dataframe_question():
    if not Local.is_available():
        pytest.fail("ipyg4f[local] is a pinned test dependency: pip install -e '.[local,test]'")
    messages = [{"role": "user", "content": "What is the mean price in the DataFrame df?"}]
    items = [item async for item in Local.create_async_generator("", messages, tools=[DESCRIBE], max_tokens=96)]
    calls = [item for item in items if isinstance(item, ToolCalls)]
    assert len(calls) == 1, items
    assert calls[0].names == ("describe",)
    assert json.loads(calls[0].arguments[0]) == {"name": "df"}
    assert not "".join(item for item in items if isinstance(item, str)).strip(), "the call is not shown as text"
    assert items[-1] == FinishReason("tool_calls") and any(isinstance(item, Usage) for item in items)


@pytest.mark.local_model
async def test_the_default_model_answers_from_the_tool_result_with_tools_still_offered():
    if not Local.is_available():
        pytest.fail("ipyg4f[local] is a pinned test dependency: pip install -e '.[local,test]'")
    items = [item async for item in Local.create_async_generator("", AFTER_RESULT, tools=[DESCRIBE], max_tokens=64)]
    text = "".join(item for item in items if isinstance(item, str))
    assert not any(isinstance(item, ToolCalls) for item in items), items
    assert "3.5" in text and "describe" not in text, text


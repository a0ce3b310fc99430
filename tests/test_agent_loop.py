"""The tool loop with a scripted model: what it runs, what the model receives back, what is kept.

Each request gets the next scripted answer (text pieces and ToolCallPart
events, cut where a streaming service cuts them) and the messages and tools it
was sent are recorded, so every test checks what the model saw.
"""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from ipyg4f.agent.approval import QUESTION, Policy, input_asker, read_answer, shown_call
from ipyg4f.agent.calls import ToolCallPart
from ipyg4f.agent.functions import function_tool
from ipyg4f.agent.loop import DONE, FAILED, INTERRUPTED, MAX_STEPS, ToolLoop
from ipyg4f.agent.python import python_tool
from ipyg4f.agent.tool import MCP, READ, Tool
from ipyg4f.events import ToolCalls, Usage
from ipyg4f.http import register_secret


class Model:
    """A scripted model: one list of stream items per request; records what each request was sent."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.sent = []

    async def request(self, messages, tools):
        self.sent.append((json.loads(json.dumps(messages)), tools))
        for item in self.answers[len(self.sent) - 1]:
            yield item

    def results(self, n=-1):
        """The tool results the n-th request carried: {tool_call_id: content}."""
        return {m["tool_call_id"]: m["content"] for m in self.sent[n][0] if m["role"] == "tool"}


def call(index, name, arguments, id=None):
    return ToolCallPart(index, id or f"c{index}", name, arguments)


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def read_tool(text="seen"):
    return Tool("peek", "Look.", {"type": "object", "properties": {}}, lambda args: text, READ)


USER = [{"role": "user", "content": "go"}]


async def test_two_calls_with_arguments_cut_across_chunks_then_the_final_answer():
    model = Model(
        ["Let me ", "add.", ToolCallPart(0, "c0", "add", '{"a": 1'), ToolCallPart(1, "c1", "add", ""),
         ToolCallPart(0, arguments=', "b": 2}'), ToolCallPart(1, arguments='{"a": 40, "b": 2}'), Usage(5, 6)],
        ["The sums are ", "3 and 42."])
    pieces, events, steps = [], [], []
    loop = ToolLoop([function_tool(add)], on_text=pieces.append, on_event=events.append, on_step=steps.append)
    assert await loop.run(model.request, USER) == "The sums are 3 and 42."
    assert loop.outcome == DONE and loop.requests == 2 and not loop.note
    assert "".join(pieces) == "Let me add.The sums are 3 and 42." and events == [Usage(5, 6)]
    assert model.sent[0][1][0]["function"]["name"] == "add"
    assert model.sent[1][0] == USER + [
        {"role": "assistant", "content": "Let me add.", "tool_calls": [
            {"id": "c0", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}},
            {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 40, "b": 2}'}}]},
        {"role": "tool", "tool_call_id": "c0", "content": "int: 3"},
        {"role": "tool", "tool_call_id": "c1", "content": "int: 42"}]
    assert loop.messages[-1] == {"role": "assistant", "content": "The sums are 3 and 42."}
    assert [(s.tool, s.arguments, s.approved, s.result, s.request) for s in steps] == [
        ("add", '{"a": 1, "b": 2}', True, "int: 3", 1), ("add", '{"a": 40, "b": 2}', True, "int: 42", 1)]
    assert steps == loop.steps and steps[0].line().startswith('add({"a": 1, "b": 2}) ran in ')


async def test_untrusted_calls_become_short_errors_and_the_loop_goes_on():
    def boom(x: int) -> str:
        raise RuntimeError("disk on fire\n" + "details " * 100)

    model = Model([call(0, "nope", "{}"), call(1, "add", "{'a': 1}"), call(2, "add", '{"a": "1", "b": 2}'),
                   call(3, "add", '{"a": 1}'), call(4, "boom", '{"x": 1}'), call(5, "add", "[1, 2]")],
                  ["sorry"])
    loop = ToolLoop([function_tool(add), function_tool(boom)])
    assert await loop.run(model.request, USER) == "sorry"
    got = model.results(1)
    assert got["c0"] == "error: there is no tool 'nope' (the tools are: add, boom)"
    assert got["c1"].startswith("error: the arguments are not valid JSON (Expecting property name")
    assert got["c2"] == "error: a: expected integer, not a string"
    assert got["c3"] == "error: arguments: missing required 'b'"
    assert got["c4"].startswith("error: RuntimeError: disk on fire details") and len(got["c4"]) < 400
    assert got["c5"] == "error: the arguments must be a JSON object, not an array"
    assert all(s.error for s in loop.steps) and len(loop.steps) == 6


async def test_more_steps_than_allowed_ends_with_a_note_and_a_valid_conversation():
    model = Model(*[[call(0, "peek", "{}", id=f"p{n}")] for n in range(5)])
    loop = ToolLoop([read_tool()], max_steps=3)
    await loop.run(model.request, USER)
    assert loop.outcome == MAX_STEPS and len(model.sent) == 3 and len(loop.steps) == 2
    assert loop.note == "stopped after 3 requests (--max-steps 3); the model still wanted to call peek"
    ids = [c["id"] for m in loop.messages if m["role"] == "assistant" for c in m["tool_calls"]]
    answered = [m["tool_call_id"] for m in loop.messages if m["role"] == "tool"]
    assert ids == answered == ["p0", "p1", "p2"]
    assert loop.messages[-1]["content"] == "not run: the step limit of this cell was reached"


async def test_an_interrupt_in_a_tool_stops_at_once_and_keeps_the_steps():
    def slow(seconds: float) -> str:
        raise KeyboardInterrupt

    model = Model([call(0, "peek", "{}"), call(1, "slow", '{"seconds": 30}'), call(2, "peek", "{}")], ["never"])
    loop = ToolLoop([read_tool(), function_tool(slow)])
    with pytest.raises(KeyboardInterrupt):
        await loop.run(model.request, USER)
    assert loop.outcome == INTERRUPTED and len(model.sent) == 1
    assert [(s.tool, s.result) for s in loop.steps] == [("peek", "seen"), ("slow", "interrupted by the user")]
    assert [m.get("content") for m in loop.messages if m["role"] == "tool"] == \
        ["seen", "interrupted by the user", "interrupted by the user"]


async def test_a_cancelled_run_keeps_what_streamed_and_the_steps():
    gate = asyncio.Event()

    async def request(messages, tools):
        if len([m for m in messages if m["role"] == "tool"]) == 0:
            yield call(0, "peek", "{}")
            return
        yield "partial "
        gate.set()
        await asyncio.Event().wait()  # stalls until cancelled
        yield "never"

    loop = ToolLoop([read_tool()])
    task = asyncio.ensure_future(loop.run(request, USER))
    await asyncio.wait_for(gate.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert loop.outcome == INTERRUPTED and loop.text == "partial " and len(loop.steps) == 1


async def test_a_request_that_fails_later_keeps_the_steps_and_raises():
    async def request(messages, tools):
        if len(messages) == 1:
            yield call(0, "peek", "{}")
            return
        yield "half"
        raise ConnectionResetError("the server went away")

    loop = ToolLoop([read_tool()])
    with pytest.raises(ConnectionResetError):
        await loop.run(request, USER)
    assert loop.outcome == FAILED and loop.text == "half" and [s.result for s in loop.steps] == ["seen"]
    assert [m["role"] for m in loop.messages] == ["assistant", "tool"]


async def test_results_are_cut_to_the_budget_and_secrets_redacted_everywhere():
    register_secret("sk-agent-secret-123")
    model = Model([call(0, "peek", '{"key": "sk-agent-secret-123"}'), call(1, "big", "{}")], ["ok"])
    received = []
    tools = [Tool("peek", "", {"type": "object"}, lambda a: received.append(a) or "the key is sk-agent-secret-123", READ),
             Tool("big", "", {"type": "object"}, lambda a: "x" * 50_000, READ)]
    loop = ToolLoop(tools, budget=1000)
    await loop.run(model.request, USER)
    got = model.results()
    assert got["c0"] == "the key is ***" and "sk-agent" not in json.dumps(model.sent[1][0])
    assert loop.steps[0].arguments == '{"key": "***"}'
    assert received == [{"key": "sk-agent-secret-123"}]  # the tool itself gets what was sent
    assert len(got["c1"]) == 1000 and got["c1"].endswith("[… cut here: 1,000 of 50,000 characters]")


async def test_a_provider_that_names_tool_calls_without_arguments_is_said_so():
    model = Model([ToolCalls(("add",)), "I would add."])
    loop = ToolLoop([function_tool(add)])
    assert await loop.run(model.request, USER) == "I would add."
    assert "the provider sent no arguments" in loop.note and loop.outcome == DONE


async def test_whole_calls_in_one_tool_calls_event_run_as_the_local_provider_sends_them():
    model = Model([ToolCalls(("add", "add"), ('{"a": 1, "b": 2}', '{"a": 3, "b": 4}'))], ["3 and 7"])
    loop = ToolLoop([function_tool(add)])
    assert await loop.run(model.request, USER) == "3 and 7"
    assert model.results() == {"call_1_0": "int: 3", "call_1_1": "int: 7"}
    # a provider that streams parts and also sums them up in a ToolCalls: the calls run once
    model = Model([call(0, "add", '{"a": 1, "b": 1}'), ToolCalls(("add",), ('{"a": 1, "b": 1}',))], ["2"])
    loop = ToolLoop([function_tool(add)])
    await loop.run(model.request, USER)
    assert model.results() == {"c0": "int: 2"} and len(loop.steps) == 1


async def test_async_tools_are_awaited_and_sync_ones_go_through_run_sync():
    async def fetch(args):
        await asyncio.sleep(0)
        return f"fetched {args['url']}"

    threads = []

    async def run_sync(fn):
        threads.append(threading.current_thread().name)
        return fn()

    model = Model([call(0, "fetch", '{"url": "u"}'), call(1, "add", '{"a": 2, "b": 3}')], ["done"])
    tools = [Tool("fetch", "", {"type": "object"}, fetch, MCP), function_tool(add)]
    loop = ToolLoop(tools, Policy("auto"), run_sync=run_sync)
    await loop.run(model.request, USER)
    assert model.results() == {"c0": "fetched u", "c1": "int: 5"}
    assert len(threads) == 5  # decide x2, then add's call and its result text; fetch is awaited here


# --- approval --------------------------------------------------------------------------------


class Asker:
    def __init__(self, *answers):
        self.answers, self.shown = list(answers), []

    def __call__(self, tool, shown):
        self.shown.append(shown)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


async def test_ask_runs_on_yes_refuses_on_no_and_all_approves_the_rest():
    shell = type("Shell", (), {"user_ns": {}, "transform_cell": staticmethod(lambda code: code)})()
    code = [f'{{"code": "n = {i}\\nn"}}' for i in range(4)]
    model = Model([call(i, "run_python", code[i]) for i in range(4)], ["done"])
    asker = Asker("y", "nah", "a")
    loop = ToolLoop([python_tool(shell), read_tool()], Policy("ask", asker))
    await loop.run(model.request, USER)
    assert asker.shown == ["n = 0\nn", "n = 1\nn", "n = 2\nn"]  # the fourth was covered by "all"
    assert list(model.results().values()) == ["result: 0", "refused by the user", "result: 2", "result: 3"]
    assert [(s.approved, s.asked) for s in loop.steps] == [(True, True), (False, True), (True, True), (True, False)]


async def test_when_nobody_can_be_asked_the_call_is_refused_and_the_model_told_how():
    model = Model([call(0, "run_python", '{"code": "1"}'), call(1, "peek", "{}")], ["ok"])
    loop = ToolLoop([python_tool(None), read_tool()], Policy("ask", Asker(RuntimeError("no stdin"))))
    await loop.run(model.request, USER)
    got = model.results()
    assert got["c0"].startswith("refused: the user could not be asked") and "--approve auto" in got["c0"]
    assert got["c1"] == "seen"  # read-only tools never ask


async def test_never_offers_no_acting_tool_and_refuses_a_call_to_one():
    model = Model([call(0, "run_python", '{"code": "1"}')], ["ok"])
    loop = ToolLoop([python_tool(None), read_tool(), function_tool(add)], Policy("never"))
    await loop.run(model.request, USER)
    assert [t["function"]["name"] for t in model.sent[0][1]] == ["peek", "add"]
    assert model.results()["c0"].startswith("error: there is no tool 'run_python'")


def test_the_users_functions_ask_only_when_asked_to_and_answers_are_read_strictly():
    tool = function_tool(add)
    assert Policy("ask", Asker()).decide(tool, {"a": 1, "b": 2}).approved  # no question asked
    asker = Asker("yes")
    assert Policy("ask", asker, ask_functions=True).decide(tool, {"a": 1, "b": 2}).approved
    assert asker.shown == ["add(a=1, b=2)"] and shown_call(tool, {}) == "add()"
    assert [read_answer(t) for t in ("Y", " yes ", "a", "ALL", "", "yes please", "n")] == \
        ["yes", "yes", "all", "all", "no", "no", "no"]
    with pytest.raises(ValueError, match="ask, auto, never"):
        Policy("sometimes")


async def test_an_interrupt_while_asking_stops_the_loop():
    model = Model([call(0, "run_python", '{"code": "1"}')], ["ok"])
    loop = ToolLoop([python_tool(None)], Policy("ask", Asker(KeyboardInterrupt())))
    with pytest.raises(KeyboardInterrupt):
        await loop.run(model.request, USER)
    assert loop.outcome == INTERRUPTED and loop.messages[-1]["content"] == "interrupted by the user"


async def test_the_input_asker_shows_the_call_then_reads_the_answer_and_no_stdin_refuses():
    from IPython.core.error import StdinNotImplementedError

    events = []

    def read(prompt):
        events.append(("read", prompt))
        return "yes"

    ask = input_asker(lambda tool, shown: events.append(("show", tool.name, shown)), read)
    model = Model([call(0, "run_python", '{"code": "2 * 21"}')], ["ok"])
    shell = type("Shell", (), {"user_ns": {}, "transform_cell": staticmethod(lambda code: code)})()
    loop = ToolLoop([python_tool(shell)], Policy("ask", ask))
    await loop.run(model.request, USER)
    assert events == [("show", "run_python", "2 * 21"), ("read", QUESTION)]
    assert model.results() == {"c0": "result: 42"}

    def no_stdin(prompt):
        raise StdinNotImplementedError("raw_input was called, but this frontend does not support input requests.")

    model = Model([call(0, "run_python", '{"code": "1"}')], ["ok"])
    loop = ToolLoop([python_tool(shell)], Policy("ask", input_asker(lambda *a: None, no_stdin)))
    await loop.run(model.request, USER)
    assert model.results()["c0"].startswith("refused: the user could not be asked")

"""Multi-step ``%%chat --tools`` runs in a real ipykernel against the protocol server's scripted tool calls,
each checked in the cell and in what the model received back (the request bodies the server recorded):
arguments cut across chunks, two calls in one answer, an unknown tool, invalid JSON, a tool that raises,
more steps than ``--max-steps``; gpt4free's own ``Custom`` class passing the tools end to end; and
xllamacpp's real llama.cpp server with the offline default model calling ``describe`` on a frame."""

from __future__ import annotations

import json
import textwrap
import uuid

import pytest

from kernel_harness import Execution, Kernel
from llama_server import KEY as LLAMA_KEY
from protocol_server import ProtocolServer
from tool_script import Call, Turn, tool_results

pytestmark = pytest.mark.kernel

FUNCTIONS = textwrap.dedent('''
    def weather(city: str, days: int = 1) -> str:
        """The weather in a city."""
        return f"sunny in {city} for {days} days"

    def broken(x: int) -> int:
        """Always fails."""
        raise RuntimeError("the sensor is down")
''')
CITY = 'Zürich "Nord"'  # a quote and a non-ASCII letter for the cuts to fall inside


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    data = tmp_path_factory.mktemp("ipyg4f-steps")
    k = Kernel(env={"OPENAI_API_KEY": "sk-test-steps", "LLAMA_TEST_KEY": LLAMA_KEY, "IPYG4F_DATA_DIR": str(data),
                    "JPY_SESSION_NAME": str(data / "steps.ipynb")})
    k.ok("%load_ext ipyg4f")
    k.ok(FUNCTIONS)
    yield k
    k.shutdown()


@pytest.fixture
def server(protocol_server):
    """conftest's protocol server (one per session, its settings and records reset for each test)."""
    return protocol_server


def chat(kernel: Kernel, server: ProtocolServer, tools: str, extra: str = "", provider: str = "OpenAI") -> Execution:
    """One ``%%chat --tools`` cell of a new thread, run to its end (it must not fail)."""
    thread = f"t{uuid.uuid4().hex[:8]}"
    ex = kernel.run(f"%%chat --tools {tools} -p {provider} --base-url {server.base_url}/v1 -c {thread} {extra}\n"
                    "What is the weather?", timeout=180)
    assert ex.status == "ok", ex.text()
    assert "Traceback" not in ex.text()
    return ex


def html(ex: Execution) -> str:
    return ex.final()["data"]["text/html"]


def statuses(ex: Execution) -> list[str]:
    return [part.split('"')[0] for part in html(ex).split('<details class="ipyg4f-step" data-status="')[1:]]


def test_arguments_cut_across_chunks_reach_the_function_whole(kernel, server):
    args = {"city": CITY, "days": 3}
    server.script = [Turn("Looking. ", [Call("weather", args, id="call_w", cuts=17)]), Turn("Sunny.")]
    ex = chat(kernel, server, "weather")
    first, second = server.chat_bodies()
    assert [t["function"]["name"] for t in first["tools"]] == ["weather"]
    assert tool_results(second) == {"call_w": f"sunny in {CITY} for 3 days"}
    [assistant] = [m for m in second["messages"] if m["role"] == "assistant"]
    assert assistant["content"] == "Looking. " and json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == args
    assert statuses(ex) == ["ran"] and "Sunny." in html(ex)
    assert ex.final()["data"]["text/plain"].startswith("Sunny.")


@pytest.mark.parametrize("interleave", [False, True])
def test_two_calls_in_one_answer_both_run_in_order(kernel, server, interleave):
    server.script = [Turn(calls=[Call("weather", {"city": "Paris"}, cuts=5), Call("weather", {"city": "Oslo", "days": 2}, cuts=7)],
                          interleave=interleave), Turn("Both sunny.")]
    ex = chat(kernel, server, "weather")
    second = server.chat_bodies()[1]
    assert list(tool_results(second).items()) == [("call_0_0", "sunny in Paris for 1 days"),
                                                  ("call_0_1", "sunny in Oslo for 2 days")]
    assert statuses(ex) == ["ran", "ran"]


@pytest.mark.parametrize("call, result", [
    (Call("nope", {"x": 1}), "error: there is no tool 'nope' (the tools are: weather, broken)"),
    (Call("weather", '{"city": "Par', cuts=3), "error: the arguments are not valid JSON"),
    (Call("broken", {"x": 1}), "error: RuntimeError: the sensor is down"),
])
def test_what_the_model_gets_wrong_or_a_tool_that_raises_is_its_result_and_the_loop_goes_on(kernel, server, call, result):
    server.script = [Turn(calls=[call]), Turn("Sorry.")]
    ex = chat(kernel, server, "weather,broken")
    bodies = server.chat_bodies()
    assert len(bodies) == 2  # the loop went on to the next request
    [got] = tool_results(bodies[1]).values()
    assert got.startswith(result), got
    assert statuses(ex) == ["error"] and "Sorry." in html(ex)


def test_more_steps_than_max_steps_end_the_cell_with_a_note_and_every_call_answered(kernel, server):
    server.script = [Turn(calls=[Call("weather", {"city": "Paris"})])]  # asks again, forever
    thread = f"t{uuid.uuid4().hex[:8]}"
    ex = kernel.run(f"%%chat --tools weather -p OpenAI --base-url {server.base_url}/v1 -c {thread} --max-steps 2\n"
                    "Weather?", timeout=180)
    assert "Traceback" not in ex.text()
    assert len(server.chat_bodies()) == 2
    assert "stopped after 2 requests" in ex.text() or "stopped after 2 requests" in html(ex)
    server.script = ["Ok."]
    kernel.ok(f"%%chat -p OpenAI --base-url {server.base_url}/v1 -c {thread}\nand now?", timeout=180)
    results = [m["content"] for m in server.chat_bodies()[-1]["messages"] if m["role"] == "tool"]
    assert results == ["sunny in Paris for 1 days", "not run: the step limit of this cell was reached"]


def test_gpt4free_custom_passes_the_tools_and_their_calls_end_to_end(kernel, server):
    server.script = [Turn(calls=[Call("weather", {"city": CITY}, cuts=11), Call("broken", {"x": 2})]),
                     Turn("Done via g4f.")]
    ex = chat(kernel, server, "weather,broken", "-m test-model", provider="g4f:Custom")
    first, second = server.chat_bodies()
    assert sorted(t["function"]["name"] for t in first["tools"]) == ["broken", "weather"]
    assert list(tool_results(second).values()) == [f"sunny in {CITY} for 1 days",
                                                   "error: RuntimeError: the sensor is down"]
    assert statuses(ex) == ["ran", "error"] and "Done via g4f." in html(ex)


@pytest.mark.local_model
@pytest.mark.timeout(900)  # two or three generations on one thread of a busy machine
def test_llama_server_with_the_default_model_describes_a_frame_in_the_kernel(kernel):
    from ipyg4f.providers.local import bundled
    from llama_server import llama_server

    kernel.ok("import pandas as pd\ndf = pd.DataFrame({'price': [1.0, 2.0, None, 7.0], 'item': list('abcd')})")
    with llama_server(n_ctx=2048, model=bundled.QWEN.name) as srv:
        ex = kernel.run(f"%%chat --tools notebook -p LlamaCppServer --base-url {srv.url} --api-key-env LLAMA_TEST_KEY "
                        f"-m {srv.model} -t 0 --max-tokens 64 --max-steps 3 -c t{uuid.uuid4().hex[:8]}\n"
                        "How many null values does the price column of the DataFrame df have?", timeout=600)
    assert ex.status == "ok" and "Traceback" not in ex.text(), ex.text()
    assert statuses(ex) == ["ran"] and "describe" in html(ex)
    assert "null" in ex.final()["data"]["text/plain"].lower()

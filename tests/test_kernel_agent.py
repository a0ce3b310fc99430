"""``%%chat --tools`` in a real ipykernel (cell ids, the stdin channel), against the protocol server's
scripted tool calls: approval typed into the kernel's input prompt (yes, no, all), no stdin
(nbclient, papermill), an interrupt while the model's code runs, the steps in the cell and in history,
the next cell continuing from the whole exchange, and the options' user errors."""

from __future__ import annotations

import json
import uuid

import pytest

from ipyg4f.agent.approval import QUESTION
from kernel_harness import Execution, Kernel
from protocol_server import ProtocolServer
from tool_script import Call, Turn

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def server():
    srv = ProtocolServer()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def kernel(server, tmp_path_factory):
    data = tmp_path_factory.mktemp("ipyg4f-agent")
    k = Kernel(env={"OPENAI_BASE_URL": server.base_url + "/v1", "OPENAI_API_KEY": "sk-test-agent",
                    "IPYG4F_DATA_DIR": str(data), "JPY_SESSION_NAME": str(data / "agent.ipynb")})
    k.ok("%load_ext ipyg4f")
    k.ok("%chat use -p OpenAI")
    yield k
    k.shutdown()


@pytest.fixture(autouse=True)
def fresh(server):
    server.reset()
    yield


def thread() -> str:
    return f"t{uuid.uuid4().hex[:8]}"






def final_html(ex: Execution) -> str:
    return ex.final()["data"]["text/html"]


def tool_results(server) -> list[list[str]]:
    """For each chat request the server got: the contents of the tool messages it carried."""
    return [[m["content"] for m in body["messages"] if m.get("role") == "tool"] for body in server.chat_bodies()]


def python(code: str, id: str = "") -> Call:
    return Call("run_python", {"code": code}, id=id)


def test_yes_no_and_all_typed_into_the_kernels_prompt(kernel, server):
    server.script = [Turn("I will set n. ", [python("n_agent = 6\nprint('ran in the cell')\nn_agent * 7")]),
                     Turn(calls=[python("gone_agent = 1")]),
                     Turn(calls=[python("k_agent = 2"), python("k_agent + 1")]),
                     Turn("n is **6**.")]
    t = thread()
    ex = kernel.send(f"%%chat --tools python -c {t}\nset n", allow_stdin=True)
    assert [kernel.reply(ex, r) for r in ("y", "no", "a")] == [QUESTION] * 3  # "all" covers the 4th call
    kernel.wait(ex, timeout=120)
    assert ex.status == "ok", ex.text()
    assert tool_results(server)[-1] == ["printed:\nran in the cell\nresult: 42", "refused by the user",
                                        "done (no output, no value)", "result: 3"]
    html = final_html(ex)
    assert html.count('<details class="ipyg4f-step"') == 4 and " open" not in html.split("ipyg4f-step")[1][:40]
    assert "n is <strong>6</strong>" in html and "I will set n." in html
    assert 'data-status="refused"' in html and "refused by the user" in html
    assert ex.final()["data"]["text/plain"].startswith("n is **6**.")  # the answer alone, as -o stores it
    assert "ran in the cell" in ex.stream()  # printed live while it ran
    check = kernel.ok("print(n_agent, k_agent, 'gone_agent' in globals())")
    assert check.stream().strip() == "6 2 False"
    history = kernel.ok(f"%chat history -c {t}").text()
    assert history.count("↳ ran") == 3 and history.count("↳ refused") == 1 and "n_agent = 6" in history


def test_without_stdin_the_call_is_refused_and_the_cell_says_how_to_allow_it(kernel, server):
    server.script = [Turn(calls=[python("never_run_agent = 1")]), Turn("I could not run it.")]
    ex = kernel.wait(kernel.send(f"%%chat --tools python -c {thread()}\nrun it", allow_stdin=False), timeout=120)
    assert ex.status == "ok", ex.text()
    [[result]] = tool_results(server)[-1:]
    assert result.startswith("refused: the user could not be asked") and "--approve auto" in result
    assert "--approve auto" in final_html(ex)
    assert kernel.ok("print('never_run_agent' in globals())").stream().strip() == "False"


def test_an_interrupt_during_the_models_code_stops_the_cell_keeps_the_steps_and_the_kernel_works(kernel, server):
    code = "print('started', flush=True)\nimport time\ntime.sleep(30)"
    server.script = [Turn("Sleeping. ", [python(code)]), Turn("never sent")]
    t = thread()
    ex = kernel.send(f"%%chat --tools python --approve auto -c {t}\nsleep", allow_stdin=False)
    kernel.wait_for(ex, lambda m: m["msg_type"] == "stream" and "started" in m["content"]["text"], timeout=120)
    kernel.interrupt()
    kernel.wait(ex, timeout=60)
    assert ex.error, ex.text()
    assert ex.error and "interrupted" in (ex.error["evalue"] + ex.error["ename"]).lower()
    assert len(server.chat_bodies()) == 1  # nothing sent after the interrupt
    assert kernel.ok("print(6 * 7)").stream().strip() == "42"
    history = kernel.ok(f"%chat history -c {t}").text()
    assert "interrupted" in history.split("↳")[0] and "↳ error" in history and "interrupted by the user" in history


def test_the_next_cell_continues_from_the_whole_exchange_and_a_rerun_replaces_it(kernel, server):
    t, cell = thread(), uuid.uuid4().hex
    kernel.ok("nulls_df = {'revenue': [1, None, 3]}")
    server.script = [Turn(calls=[Call("describe", {"name": "nulls_df"}, id="call_d")]), Turn("One null.")]
    kernel.wait(kernel.send(f"%%chat --tools notebook -c {t}\nnulls?", cell, allow_stdin=False))
    server.script = [Turn(calls=[Call("list_variables", {}, id="call_l")]), Turn("Still one.")]
    again = f"%%chat --tools notebook -c {t}\nnulls again?"
    ex = kernel.wait(kernel.send(again, cell, allow_stdin=False))  # the same cell, run again
    assert ex.status == "ok", ex.text()
    server.script = ["Yes."]
    kernel.ok(f"%%chat -c {t}\nand then?")
    messages = server.chat_bodies()[-1]["messages"]
    roles = [m["role"] for m in messages]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]  # the re-run replaced the first run
    assert messages[1]["tool_calls"][0]["id"] == "call_l" and messages[2]["tool_call_id"] == "call_l"
    assert "nulls_df" in messages[2]["content"] and messages[3]["content"] == "Still one."


def test_approve_never_offers_no_acting_tool_and_notebook_attaches_the_cells(kernel, server):
    kernel.ok("marker_for_notebook = 'visible-in-context'")
    server.script = ["Fine."]
    kernel.ok(f"%%chat --tools notebook,python --approve never --notebook -c {thread()}\nlook")
    body = server.chat_bodies()[-1]
    offered = [t["function"]["name"] for t in body["tools"]]
    assert "run_python" not in offered and "describe" in offered
    assert "visible-in-context" in json.dumps(body["messages"])


@pytest.mark.parametrize("line, words", [
    ("--tools notebook -p Pizzagpt", "takes no tools"),
    ("--tools no_such_function", "no_such_function"),
    ("--tools mcp:nowhere", "mcp:nowhere"),
    ("--approve auto", "go with --tools"),
    ("--tools python --max-steps 0", "at least 1"),
])
def test_tool_options_that_cannot_work_are_usage_errors_before_anything_is_sent(kernel, server, line, words):
    ex = kernel.run(f"%%chat {line}\nhello")
    assert ex.status == "error" and ex.reply["content"]["ename"] == "UsageError", ex.reply["content"]
    assert words in ex.text() and "Traceback" not in ex.text()
    assert server.chat_bodies() == []


def test_the_agent_from_python_returns_its_steps_and_answer(kernel, server):
    kernel.ok("def add(a: int, b: int) -> int:\n    '''Add two integers.'''\n    return a + b")
    server.script = [Turn(calls=[Call("add", {"a": 40, "b": 2}, id="call_add")]), Turn("It is 42.")]
    ex = kernel.ok(f"import ipyg4f\nr = ipyg4f.agent('40 + 2?', tools='add', thread={thread()!r})\n"
                   "print(r.text, r.status, r.outcome, [(s.tool, s.result, s.asked) for s in r.steps])")
    assert ex.stream().strip().splitlines()[-1] == "It is 42. ok done [('add', 'int: 42', False)]"
    spec = server.chat_bodies()[0]["tools"][0]["function"]
    assert spec["name"] == "add" and spec["description"] == "Add two integers."
    assert spec["parameters"]["required"] == ["a", "b"]


def test_fix_with_tools_looks_at_the_data_before_it_answers(kernel, server):
    kernel.run("prices = [1, None]\nsum(prices)")
    server.script = [Turn(calls=[Call("describe", {"name": "prices"})]), Turn("`prices` holds a None.")]
    ex = kernel.run("%chat fix --tools notebook", timeout=120)
    assert ex.status == "ok", ex.text()
    first = server.chat_bodies()[0]
    assert "TypeError" in json.dumps(first["messages"]) and {t["function"]["name"] for t in first["tools"]} >= {
        "describe", "last_error"}
    assert "list of 2 items" in tool_results(server)[-1][0]
    assert "ipyg4f-step" in final_html(ex) and "holds a None" in final_html(ex)


def test_an_mcp_server_over_stdio_through_chat(kernel, server, tmp_path):
    script = tmp_path / "calc_server.py"
    script.write_text("from mcp.server.mcpserver import MCPServer\nserver = MCPServer('calc')\n\n"
                      "@server.tool()\ndef add(a: int, b: int) -> int:\n    '''Add two integers.'''\n    return a + b\n\n"
                      "server.run()\n")
    kernel.ok(f"import sys\n%config ChatConfig.mcp_servers = {{'calc': {{'command': sys.executable, "
              f"'args': [{str(script)!r}]}}}}")
    server.script = [Turn(calls=[Call("calc__add", {"a": 2, "b": 3})]), Turn("Five.")]
    ex = kernel.send(f"%%chat --tools mcp:calc -c {thread()}\nadd", allow_stdin=True)
    prompt = kernel.reply(ex, "y")  # MCP tools ask, like run_python
    kernel.wait(ex, timeout=180)
    assert prompt == QUESTION and ex.status == "ok", ex.text()
    assert tool_results(server)[-1] == ["5"]
    assert "mcp:calc/add" in final_html(ex) and "Five." in final_html(ex)

"""MCP servers' tools through the official ``mcp`` SDK: a tiny server written with the SDK's
``MCPServer`` (mcp 2's FastMCP), reached over stdio (a process) and streamable HTTP on 127.0.0.1,
then driven by the tool loop."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from ipyg4f.agent.approval import Policy
from ipyg4f.agent.calls import ToolCallPart
from ipyg4f.agent.loop import ToolLoop
from ipyg4f.agent.mcp import check_config, mcp_tools
from ipyg4f.agent.tool import MCP, ToolError

SERVER = textwrap.dedent('''
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer("calc")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def shout(text: str) -> str:
        """Say it louder."""
        if not text:
            raise ToolError("nothing to shout")  # a message meant for the model (other errors are hidden)
        return text.upper() + "!"
''')


@pytest.fixture
def stdio_server(tmp_path):
    path = tmp_path / "calc_server.py"
    path.write_text(SERVER + "\nserver.run()\n")
    return {"calc": {"command": sys.executable, "args": [str(path)], "env": {"CALC_MODE": "test"}}}


@pytest.fixture
def http_server():
    import uvicorn

    namespace: dict = {}
    exec(SERVER, namespace)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(namespace["server"].streamable_http_app(), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:  # waits for the state "listening", bounded only as a must-not-hang guard
        assert thread.is_alive() and time.monotonic() < deadline, "the MCP HTTP server did not start"
        time.sleep(0.02)
    yield {"calc": {"url": f"http://127.0.0.1:{port}/mcp"}}
    server.should_exit = True
    thread.join(60)
    sock.close()


async def use_tools(servers):
    async with mcp_tools(servers, ["calc"]) as tools:
        by_name = {t.name: t for t in tools}
        assert set(by_name) == {"calc__add", "calc__shout"}
        add = by_name["calc__add"]
        assert add.kind == MCP and add.shown == "mcp:calc/add" and add.description == "Add two integers."
        assert add.parameters["required"] == ["a", "b"]
        assert await add.call({"a": 2, "b": 3}) == "5"
        with pytest.raises(ToolError, match="nothing to shout"):
            await by_name["calc__shout"].call({"text": ""})
        return await by_name["calc__shout"].call({"text": "hi"})


async def test_a_stdio_server_tools_are_listed_and_called(stdio_server):
    assert await use_tools(stdio_server) == "HI!"


async def test_a_streamable_http_server_tools_are_listed_and_called(http_server):
    assert await use_tools(http_server) == "HI!"


async def test_the_loop_calls_mcp_tools_and_sends_their_results_back(http_server):
    sent = []

    async def request(messages, tools):
        sent.append(json.loads(json.dumps(messages)))
        if len(sent) == 1:
            yield ToolCallPart(0, "m0", "calc__add", '{"a": 40, ')
            yield ToolCallPart(0, arguments='"b": 2}')
            yield ToolCallPart(1, "m1", "calc__shout", '{"text": ""}')
        else:
            yield "42"

    asked = []
    async with mcp_tools(http_server, ["calc"]) as tools:
        loop = ToolLoop(tools, Policy("ask", lambda tool, shown: asked.append(shown) or "all"))
        assert await loop.run(request, [{"role": "user", "content": "add"}]) == "42"
    results = [m["content"] for m in sent[1] if m["role"] == "tool"]
    assert results == ["42", "error: Error executing tool shout: nothing to shout"]
    assert asked == ["mcp:calc/add(a=40, b=2)"]  # "all" covered the second call
    assert [s.tool for s in loop.steps] == ["mcp:calc/add", "mcp:calc/shout"]


async def test_a_server_that_does_not_start_says_why(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("import sys\nprint('missing API key', file=sys.stderr)\nsys.exit(1)\n")
    with pytest.raises(ToolError, match=r"mcp:broken: could not connect: .*the server said: missing API key"):
        async with mcp_tools({"broken": {"command": sys.executable, "args": [str(path)]}}, ["broken"], timeout=60):
            pass


@pytest.mark.parametrize("config, message", [
    ("npx", "must be a dict"),
    ({"args": ["x"]}, "needs 'command'"),
    ({"url": "ftp://host/mcp"}, "http:// or https://"),
    ({"command": "x", "args": "a b"}, "'args' must be a list of strings"),
    ({"command": "x", "env": {"A": 1}}, "'env' must map names to strings"),
])
def test_bad_settings_are_short_messages(config, message):
    with pytest.raises(ToolError, match=message):
        check_config("s", config)


async def test_an_unknown_server_name_lists_the_known_ones():
    with pytest.raises(ToolError, match=r"mcp:nope: no such MCP server \(known: calc\)"):
        async with mcp_tools({"calc": {"url": "http://127.0.0.1:9/mcp"}}, ["nope"]):
            pass


def test_importing_the_agent_does_not_import_mcp():
    code = "import sys, ipyg4f.agent.mcp, ipyg4f.agent.loop; print('mcp' in sys.modules, 'pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_mcp_and_cell_thread_tools_in_one_run_as_the_front_end_will_drive_it(http_server):
    from ipyg4f.agent.bridge import CellThread
    from ipyg4f.agent.toolsets import open_tools

    class Shell:
        user_ns: dict = {}

        @staticmethod
        def transform_cell(code):
            return code

    async def request(messages, tools):
        if len(messages) == 1:
            yield ToolCallPart(0, "a", "calc__add", '{"a": 1, "b": 2}')
            yield ToolCallPart(1, "b", "run_python", '{"code": "import threading\\nthreading.get_ident()"}')
        else:
            yield "done"

    async def run():
        async with open_tools(["python", "mcp:calc"], Shell(), http_server) as tools:
            loop = ToolLoop(tools, Policy("auto"), run_sync=bridge.run)
            await loop.run(request, [{"role": "user", "content": "go"}])
            return loop

    bridge = CellThread()
    loop = bridge.run_blocking(run)
    assert [s.result for s in loop.steps] == ["3", f"result: {threading.get_ident()}"]

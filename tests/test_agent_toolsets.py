"""``--tools`` names -> the tools of a cell: builtin sets, the user's functions, MCP servers."""

from __future__ import annotations

import sys
import types

import pytest

from ipyg4f.agent.tool import MCP, PYTHON, READ, ToolError
from ipyg4f.agent.toolsets import local_tools, open_tools, split_tools


class Shell:
    def __init__(self, **names):
        self.user_ns = dict(names)
        self.user_ns_hidden = {}

    @staticmethod
    def transform_cell(code):
        return code


def add(a: int, b: int) -> int:
    """Add."""
    return a + b


def test_the_list_is_split_trimmed_and_deduplicated():
    assert split_tools(" notebook, python,,db.query ,python") == ["notebook", "python", "db.query"]
    assert split_tools(["a", " b "]) == ["a", "b"]


def test_builtin_sets_and_functions_by_name():
    shell = Shell(add=add, db=types.SimpleNamespace(query=lambda sql: sql))
    tools, servers = local_tools(["notebook", "python", "add", "db.query", "mcp:files"], shell)
    assert [(t.name, t.kind) for t in tools] == [
        ("list_variables", READ), ("describe", READ), ("read_cells", READ), ("last_error", READ),
        ("run_python", PYTHON), ("add", "function"), ("db_query", "function")]
    assert servers == ["files"]


@pytest.mark.parametrize("name, message", [
    ("pandas", "--tools pandas: 'pandas' is not defined (tools are notebook, python, mcp:NAME"),
    ("x", "--tools x: x is a int, not a function"),
    ("mcp:", "needs the server's name"),
])
def test_a_name_that_is_no_tool_is_a_short_message(name, message):
    with pytest.raises(ToolError, match=message.replace("(", r"\(")):
        local_tools([name], Shell(x=3))


async def test_two_tools_with_one_name_are_refused_before_anything_is_sent():
    shell = Shell(run_python=lambda code: code)
    with pytest.raises(ToolError, match="run_python and run_python would both be offered as 'run_python'"):
        async with open_tools(["python", "run_python"], shell):
            pass


async def test_open_tools_adds_the_mcp_servers_tools(tmp_path):
    server = tmp_path / "s.py"
    server.write_text("from mcp.server.mcpserver import MCPServer\nserver = MCPServer('s')\n"
                      "@server.tool()\ndef ping() -> str:\n    '''Ping.'''\n    return 'pong'\nserver.run()\n")
    servers = {"s": {"command": sys.executable, "args": [str(server)]}}
    async with open_tools(["add", "mcp:s"], Shell(add=add), servers) as tools:
        assert [(t.name, t.kind) for t in tools] == [("add", "function"), ("s__ping", MCP)]
        assert await tools[1].call({}) == "pong"

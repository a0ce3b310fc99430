"""``--tools notebook,python,add,db.query,mcp:files`` -> the tools of one cell.

``notebook``  the read-only set (:mod:`.notebook`)
``python``    ``run_python`` (:mod:`.python`)
``mcp:NAME``  the tools of the MCP server ``NAME`` of ``ChatConfig.mcp_servers`` (:mod:`.mcp`)
anything else the callable of that (dotted) name in the user's namespace (:mod:`.functions`)

:func:`open_tools` is an ``async with`` block (MCP connections live as long as
it); every mistake is a :class:`~ipyg4f.agent.tool.ToolError` with a short
message, raised before anything is sent (the front end shows it as a UsageError).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Iterable, Mapping

from .functions import function_tool, resolve
from .notebook import notebook_tools
from .python import python_tool
from .tool import Tool, ToolError

__all__ = ["split_tools", "local_tools", "open_tools", "BUILTIN"]

BUILTIN = ("notebook", "python")


def split_tools(spec: str | Iterable[str]) -> list[str]:
    """``"notebook, python,db.query"`` -> ``["notebook", "python", "db.query"]`` (repeats dropped)."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    return list(dict.fromkeys(item.strip() for item in items if item and item.strip()))


def local_tools(names: Iterable[str], shell: Any, budget: int = 4000) -> tuple[list[Tool], list[str]]:
    """The tools named (MCP ones aside: their server names are returned for :func:`open_tools`)."""
    tools: list[Tool] = []
    servers: list[str] = []
    for name in names:
        if name == "notebook":
            tools += notebook_tools(shell, budget)
        elif name == "python":
            tools.append(python_tool(shell, budget))
        elif name.startswith("mcp:"):
            if not name[4:]:
                raise ToolError("--tools mcp:NAME needs the server's name (from ChatConfig.mcp_servers)")
            servers.append(name[4:])
        else:
            try:
                tools.append(function_tool(resolve(name, shell.user_ns), name))
            except ToolError as exc:
                raise ToolError(f"--tools {name}: {exc} (tools are notebook, python, mcp:NAME or a function "
                                "of your session)") from None
    return tools, servers


@asynccontextmanager
async def open_tools(names: Iterable[str], shell: Any, servers: Mapping[str, Any] | None = None,
                     budget: int = 4000) -> AsyncIterator[list[Tool]]:
    """All the tools of ``names``, MCP servers connected for the duration of the block."""
    tools, wanted = local_tools(names, shell, budget)
    if not wanted:
        _unique(tools)
        yield tools
        return
    from .mcp import mcp_tools

    async with mcp_tools(servers or {}, wanted) as remote:
        yield _unique(tools + remote)


def _unique(tools: list[Tool]) -> list[Tool]:
    seen: dict[str, Tool] = {}
    for tool in tools:
        if tool.name in seen:
            raise ToolError(f"--tools: {seen[tool.name].shown} and {tool.shown} would both be offered as "
                            f"{tool.name!r}; leave one out")
        seen[tool.name] = tool
    return tools

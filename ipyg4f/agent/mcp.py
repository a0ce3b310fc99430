"""The tools of MCP servers (``--tools mcp:NAME``), through the official ``mcp`` SDK.

Servers are configured the way Claude Desktop's and VS Code's ``mcp.json`` do it
(``ChatConfig.mcp_servers``)::

    {"files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "."],
               "env": {"DEBUG": "1"}},                       # stdio: a process of ours
     "search": {"url": "http://127.0.0.1:8000/mcp"}}         # streamable HTTP

:func:`mcp_tools` connects to the named servers for the duration of an
``async with`` (one run of the loop), lists their tools and gives them as
:class:`~ipyg4f.agent.tool.Tool` s named ``<server>__<tool>``, whose calls go to
the server.  ``mcp`` is imported only here, inside the functions: importing
:mod:`ipyg4f.agent` costs nothing of it.  A stdio server's stderr goes to a
temporary file; its last lines explain a server that does not start.
"""

from __future__ import annotations

import json
import tempfile
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, AsyncIterator, Iterable, Mapping

from .tool import MCP, Tool, ToolError, safe_name

__all__ = ["mcp_tools", "check_config"]

#: seconds allowed to start or reach a server and list its tools
CONNECT_TIMEOUT = 30.0
#: seconds one call may take (an interrupt stops it sooner)
CALL_TIMEOUT = 3600.0


def check_config(name: str, config: Any) -> dict[str, Any]:
    """One server's settings, checked: ``command`` (+ ``args``, ``env``, ``cwd``) or ``url``."""
    where = f"mcp_servers[{name!r}]"
    if not isinstance(config, Mapping):
        raise ToolError(f"{where} must be a dict with 'command' (stdio) or 'url' (HTTP)")
    if "url" in config:
        url = config["url"]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ToolError(f"{where}: 'url' must be an http:// or https:// address")
        return {"url": url}
    command = config.get("command")
    if not isinstance(command, str) or not command:
        raise ToolError(f"{where} needs 'command' (stdio) or 'url' (HTTP)")
    args, env = config.get("args", []), config.get("env") or {}
    if not isinstance(args, (list, tuple)) or not all(isinstance(a, str) for a in args):
        raise ToolError(f"{where}: 'args' must be a list of strings")
    if not isinstance(env, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ToolError(f"{where}: 'env' must map names to strings")
    return {"command": command, "args": list(args), "env": dict(env), "cwd": config.get("cwd")}


@asynccontextmanager
async def mcp_tools(servers: Mapping[str, Any], names: Iterable[str],
                    timeout: float = CONNECT_TIMEOUT) -> AsyncIterator[list[Tool]]:
    """Connect to each named server, list its tools; they work until the block ends (then all close)."""
    wanted = list(dict.fromkeys(names))
    for name in wanted:
        if name not in servers:
            known = ", ".join(servers) or "none configured (ChatConfig.mcp_servers)"
            raise ToolError(f"mcp:{name}: no such MCP server (known: {known})")
    configs = {name: check_config(name, servers[name]) for name in wanted}
    async with AsyncExitStack() as stack:
        tools: list[Tool] = []
        for name, config in configs.items():
            tools += await _connect(stack, name, config, timeout)
        yield tools


async def _connect(stack: AsyncExitStack, name: str, config: dict[str, Any], timeout: float) -> list[Tool]:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    errlog = None
    if "url" in config:
        target: Any = config["url"]
    else:
        errlog = stack.enter_context(tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace"))
        params = StdioServerParameters(command=config["command"], args=config["args"], env=config["env"] or None,
                                       cwd=config["cwd"])
        target = stdio_client(params, errlog=errlog)
    try:  # the SDK's read timeout bounds the handshake and the listing (a cancel scope around them could
        # not be left while the connection stays open)
        client = await stack.enter_async_context(Client(target, read_timeout_seconds=timeout))
        listed = await _list(client)
    except Exception as exc:
        raise ToolError(f"mcp:{name}: could not connect: {_reason(exc)}{_tail(errlog)}") from None
    return [_tool(client, name, t) for t in listed]


async def _list(client: Any) -> list[Any]:
    tools, cursor = [], None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            return tools


def _tool(client: Any, server: str, listed: Any) -> Tool:
    async def call(arguments: dict[str, Any]) -> str:
        result = await client.call_tool(listed.name, arguments, read_timeout_seconds=CALL_TIMEOUT)
        text = _content_text(result)
        if result.is_error:
            raise ToolError(text or "the server reported an error")
        return text

    schema = listed.input_schema if isinstance(listed.input_schema, dict) else {"type": "object"}
    description = listed.description or getattr(listed, "title", None) or f"{listed.name} (MCP server {server})"
    return Tool(safe_name(f"{server}__{listed.name}"), description, schema, call, MCP, f"mcp:{server}/{listed.name}")


def _content_text(result: Any) -> str:
    """A call's content blocks as text: text as it is, other blocks named; structured content as JSON."""
    parts = []
    for block in result.content or ():
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind}: {getattr(block, 'mime_type', '')}]")
        elif kind == "resource_link":
            parts.append(f"[resource: {getattr(block, 'uri', '')}]")
        else:
            parts.append(f"[{kind or type(block).__name__}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    return "\n".join(parts)


def _reason(exc: BaseException) -> str:
    """The innermost useful message (anyio wraps failures in exception groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _tail(errlog: Any) -> str:
    """The server's last stderr lines, when it wrote any."""
    if errlog is None:
        return ""
    try:
        errlog.seek(0)
        lines = [line.rstrip() for line in errlog.read().splitlines() if line.strip()][-3:]
    except (OSError, ValueError):
        return ""
    return ("; the server said: " + " | ".join(line[:200] for line in lines)) if lines else ""

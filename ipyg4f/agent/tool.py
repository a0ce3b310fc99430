"""One tool the model may call: its name, description, JSON schema and the callable behind it.

A tool's ``call`` takes the checked arguments as a ``dict`` and returns anything:
text is sent as it is, other values are described like ``--with`` describes them
(:func:`result_text`).  It may be a coroutine function (MCP tools are).  A
:class:`ToolError` raised by it is a short message for the model, not a failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Tool", "ToolError", "ToolOutput", "READ", "PYTHON", "FUNCTION", "MCP", "result_text", "safe_name"]

#: kinds of tool: what they may do, which decides whether a call asks first (see ``approval``)
READ, PYTHON, FUNCTION, MCP = "read", "python", "function", "mcp"

_NAME = re.compile(r"[^a-zA-Z0-9_-]")


class ToolError(Exception):
    """A call that cannot be done; its message (short) is what the model receives."""


@dataclass(frozen=True)
class Tool:
    """A callable offered to the model under ``name`` (``[a-zA-Z0-9_-]{1,64}``, as OpenAI requires)."""

    name: str
    description: str
    parameters: dict[str, Any]  #: a JSON schema of ``type: object``
    call: Callable[[dict[str, Any]], Any] = field(repr=False, compare=False)
    kind: str = FUNCTION  #: READ, PYTHON, FUNCTION or MCP
    label: str = ""  #: how the user names it (``db.query``, ``mcp:files``); ``name`` when empty

    @property
    def shown(self) -> str:
        return self.label or self.name

    def spec(self) -> dict[str, Any]:
        """The tool as the OpenAI chat API's ``tools`` list wants it."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


def safe_name(text: str) -> str:
    """``db.query`` -> ``db_query``: a name OpenAI-compatible servers accept (at most 64 characters)."""
    return _NAME.sub("_", text)[:64] or "tool"


@dataclass(frozen=True)
class ToolOutput:
    """A tool's result text and what it displayed on the way (shown again in the step's block)."""

    text: str
    displays: tuple = ()


def result_text(value: Any) -> str:
    """What the model receives for a tool's return value: text as it is, else a typed description."""
    if isinstance(value, ToolOutput):
        return value.text
    if isinstance(value, str):
        return value
    if value is None:
        return "done (returned None)"
    from ..context.values import describe

    return describe(value)[1]

"""Tool calls as a stream carries them, and as the OpenAI message format stores them.

:class:`~ipyg4f.events.ToolCalls` names the tools only (enough to say "the
model wanted tools" in a plain answer).  The loop needs each call's id and
arguments: a provider that takes tools yields :class:`ToolCallPart` events —
OpenAI's streamed ``tool_calls`` deltas as they come (``index`` joins the
pieces; ``id`` and ``name`` arrive once, ``arguments`` is cut anywhere), or a
whole call in one part.  :class:`Calls` joins them in order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..events import ToolCallPart

__all__ = ["ToolCallPart", "Call", "Calls", "assistant_message", "tool_message", "arguments_shown"]


@dataclass
class Call:
    """One whole tool call: the id the result must carry, the tool's name, the arguments as sent (JSON)."""

    id: str
    name: str
    arguments: str = ""

    def message(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class Calls:
    """The calls of one answer, joined from their parts in the order they began."""

    parts: dict[int, Call] = field(default_factory=dict)

    def add(self, part: ToolCallPart) -> None:
        call = self.parts.get(part.index)
        if call is None:
            self.parts[part.index] = Call(part.id, part.name, part.arguments)
            return
        call.id = call.id or part.id
        call.name = call.name or part.name
        call.arguments += part.arguments

    def done(self, step: int) -> list[Call]:
        """The calls, each with an id (one is made up, ``call_<step>_<n>``, where the service sent none)."""
        out = []
        for n, call in enumerate(self.parts.values()):
            out.append(Call(call.id or f"call_{step}_{n}", call.name, call.arguments))
        return out

    def __bool__(self) -> bool:
        return bool(self.parts)


def assistant_message(text: str, calls: list[Call]) -> dict[str, Any]:
    """The assistant's turn that asked for ``calls`` (OpenAI format; content null when it said nothing)."""
    return {"role": "assistant", "content": text or None, "tool_calls": [c.message() for c in calls]}


def tool_message(call: Call, result: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call.id, "content": result}


def arguments_shown(call: Call) -> str:
    """The arguments as shown: the JSON written out again in one line when it parses, else as sent."""
    try:
        return json.dumps(json.loads(call.arguments), ensure_ascii=False)
    except (ValueError, TypeError):
        return call.arguments

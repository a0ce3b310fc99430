"""Tools offered to a local model: the ``tools`` keyword checked, and tool calls found in what it wrote.

llama.cpp applies the model's own (jinja) chat template to the tools, and its
chat parser turns a call written in the template's format into a structured
``tool_calls`` delta.  Small models often write the call another way: bare
JSON (``{"name": "describe", "arguments": {...}}``), the same inside a
Markdown code fence, or ``<tool_call>…</tool_call>`` tags that the parser did
not take.  :func:`calls_in_text` finds those, for the tools that were offered
only, so the answer is a tool call all the same.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ...errors import ProviderError
from .common import NAME

__all__ = ["check_tools", "calls_in_text", "may_be_a_call", "repeats"]

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FENCE = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?```$", re.DOTALL)


def check_tools(tools: Any) -> list[dict[str, Any]]:
    """``tools`` in OpenAI's format (``[{"type": "function", "function": {"name": ..., ...}}]``), checked."""
    if not isinstance(tools, (list, tuple)) or not tools:
        raise ProviderError("tools must be a non-empty list of OpenAI tool definitions", provider=NAME)
    checked = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise ProviderError(f"not a tool definition: {tool!r:.120} (expected {{'type': 'function', "
                                "'function': {'name': ..., 'parameters': {...}}})", provider=NAME)
        checked.append({"type": "function", "function": function})
    return checked


def may_be_a_call(text: str) -> bool:
    """Whether an answer starting with ``text`` may still turn out to be a tool call (hold it back)."""
    head = text.lstrip()[:12]
    return any(head.startswith(p[:len(head)]) or p.startswith(head) for p in ("{", "[", "```", "<tool_call>"))


def calls_in_text(text: str, names: set[str]) -> list[tuple[str, str]]:
    """The ``(name, arguments JSON)`` of the tool calls ``text`` is made of; [] when it is an answer."""
    body = text.strip()
    tagged = _TAGGED.findall(body)
    if tagged:
        found = [call for piece in tagged for call in _calls(_json(piece), names)]
        return found if len(found) == len(tagged) else []
    fenced = _FENCE.match(body)
    return _calls(_json(fenced.group(1) if fenced else body), names)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _calls(value: Any, names: set[str]) -> list[tuple[str, str]]:
    items = value if isinstance(value, list) else [value]
    found = []
    for item in items:
        if not isinstance(item, dict):
            return []
        function = item.get("function") if isinstance(item.get("function"), dict) else item
        name = function.get("name")
        if name not in names:
            return []
        arguments = function.get("arguments", function.get("parameters", {}))
        found.append((name, arguments if isinstance(arguments, str) else json.dumps(arguments)))
    return found


def repeats(calls: list[tuple[str, str]], messages: list[dict[str, Any]]) -> bool:
    """Whether every one of ``calls`` was made before in ``messages`` and its result is there already."""
    answered = set()
    for number, message in enumerate(messages):
        if message.get("role") == "assistant" and any(m.get("role") == "tool" for m in messages[number + 1:]):
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                answered.add((function.get("name"), _same(function.get("arguments") or "{}")))
    return bool(calls) and all((name, _same(arguments)) in answered for name, arguments in calls)


def _same(arguments: str) -> str:
    value = _json(arguments) if isinstance(arguments, str) else arguments
    return json.dumps(value, sort_keys=True) if value is not None else str(arguments)

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

__all__ = ["check_tools", "calls_in_text", "first_call", "may_be_a_call", "repeats", "results_as_question"]

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
    return _calls(_json(fenced.group(1) if fenced else body), names) or first_call(body, names)


def first_call(text: str, names: set[str]) -> list[tuple[str, str]]:
    """The calls of the JSON value ``text`` starts with, when only more JSON follows: a small model may
    write its call, then the same again and again until the token limit (the 0.5B Qwen does)."""
    body = text.lstrip()
    if not body.startswith(("{", "[")):
        return []
    try:
        value, end = json.JSONDecoder().raw_decode(body)
    except ValueError:
        return []
    rest = body[end:].lstrip()
    if rest and not rest.startswith(("{", "[")):  # a call followed by prose is an answer that quotes one
        return []
    return _calls(value, names)


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


def results_as_question(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation with the tool turns since the last question folded into that question, as text:
    a small model that keeps calling a tool whose result it has (even when offered no tools, it copies
    its own call) answers when the results are simply part of what it is asked."""
    last = max((n for n, m in enumerate(messages) if m.get("role") == "user"), default=None)
    if last is None:
        return messages
    results = [str(m.get("content") or "") for m in messages[last + 1:] if m.get("role") == "tool"]
    if not results:
        return messages
    question = messages[last].get("content")
    question = question if isinstance(question, str) else json.dumps(question)
    shown = "\n\n".join(results)
    return [*messages[:last], {"role": "user", "content": f"Facts:\n{shown}\n\nUsing these facts, answer in one or "
                                                            f"two plain sentences: {question}"}]

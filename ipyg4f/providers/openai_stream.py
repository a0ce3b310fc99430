"""What an OpenAI-compatible answer carries -> answer text and typed events.

``chat.completion.chunk`` objects of a stream (:class:`StreamState`) or one
``chat.completion`` (:func:`json_answer`): content, reasoning (``reasoning_content``,
``reasoning``), the model that answered (``model``), tool calls, the finish reason, usage.

Tool calls: each ``tool_calls`` delta is a :class:`~ipyg4f.events.ToolCallPart` as it
comes (``index``, ``id``, name, the arguments cut anywhere; the agent's loop joins them),
and when the answer ends one :class:`~ipyg4f.events.ToolCalls` names the calls, so a
plain answer still says which tools the model wanted (the loop uses the parts).  A
fragment that starts a call with a new ``id`` at an index already taken is another call
(servers that number every call 0 exist); arguments sent as an object are written as JSON.  ``<think>`` tags inside the content are split off by the
runner, for every provider alike (:class:`~ipyg4f.events.ThinkSplitter`).
"""

from __future__ import annotations

import json
from typing import Any

from ..events import Event, FinishReason, ModelUsed, Reasoning, ThinkSplitter, ToolCallPart, ToolCalls, Usage

__all__ = ["StreamState", "json_answer", "ThinkSplitter"]

#: the delta / message fields that carry thinking (DeepSeek and vLLM; Ollama and OpenRouter)
_REASONING_FIELDS = ("reasoning_content", "reasoning")


def _usage(data: Any) -> Usage | None:
    """The :class:`Usage` of a chunk or an answer that has a ``usage`` object."""
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return None

    def count(key: str) -> int | None:
        value = usage.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    prompt, completion = count("prompt_tokens"), count("completion_tokens")
    return None if prompt is None and completion is None else Usage(prompt, completion)


def _reasoning(fields: dict[str, Any]) -> list[Reasoning]:
    return [Reasoning(text) for key in _REASONING_FIELDS if isinstance(text := fields.get(key), str) and text]


def _model_used(data: Any, asked: str) -> list[ModelUsed]:
    """A :class:`ModelUsed` when the answer names a model other than the one asked for."""
    model = data.get("model") if isinstance(data, dict) else None
    return [ModelUsed(model)] if isinstance(model, str) and model.strip() and model != asked else []


def json_answer(data: Any, asked: str = "") -> list[str | Event]:
    """The items of a non-streamed answer (``chat.completion``) to a request for the model ``asked``."""
    choice = (data.get("choices") or [{}])[0] if isinstance(data, dict) else {}
    message = choice.get("message") or {}
    items: list[str | Event] = [*_model_used(data, asked), *_reasoning(message)]
    if isinstance(content := message.get("content"), str) and content:
        items.append(content)
    calls = ToolCallState()
    items += calls.feed(message.get("tool_calls"))
    items += calls.close()
    items.append(FinishReason(choice.get("finish_reason") or "stop"))
    if usage := _usage(data):
        items.append(usage)
    return items


class StreamState:
    """Turns ``chat.completion.chunk`` objects of an answer to a request for ``asked`` into answer
    text and events; the first chunk that names another model gives a :class:`ModelUsed`."""

    def __init__(self, asked: str = "") -> None:
        self.calls = ToolCallState()
        self.asked = asked
        self.model_seen = False

    def feed(self, data: dict[str, Any]) -> list[str | Event]:
        items: list[str | Event] = []  # (written for speed: this runs once per streamed token)
        if not self.model_seen and data.get("model"):
            self.model_seen = True
            items += _model_used(data, self.asked)
        for choice in data.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if delta and isinstance(delta, dict):
                for key in _REASONING_FIELDS:
                    text = delta.get(key)
                    if text and isinstance(text, str):
                        items.append(Reasoning(text))
                content = delta.get("content")
                if content and isinstance(content, str):
                    items.append(content)
                calls = delta.get("tool_calls")
                if calls:
                    items += self.calls.feed(calls)
            reason = choice.get("finish_reason")
            if reason:
                items += [*self.calls.close(), FinishReason(reason)]
        if data.get("usage") and (usage := _usage(data)) is not None:
            items.append(usage)
        return items

    def close(self) -> list[str | Event]:
        """What is left when the stream ends (without a finish_reason)."""
        return self.calls.close()


class ToolCallState:
    """The ``tool_calls`` fragments of one answer -> :class:`ToolCallPart` events, and the calls' names
    (one :class:`ToolCalls`, given by :meth:`close`)."""

    def __init__(self) -> None:
        self.names: dict[int, str] = {}  # our call index -> function name
        self.ids: dict[int, str] = {}  # our call index -> the id the server gave it
        self.index: dict[Any, int] = {}  # the server's index -> ours
        self.count = 0  # calls begun

    def feed(self, calls: Any) -> list[ToolCallPart]:
        parts = []
        for position, call in enumerate(calls if isinstance(calls, list) else ()):
            if not isinstance(call, dict):
                continue
            function = call.get("function") if isinstance(call.get("function"), dict) else {}
            name = function.get("name") if isinstance(function.get("name"), str) else ""
            ident = call.get("id") if isinstance(call.get("id"), str) else ""
            arguments = function.get("arguments")
            if arguments is not None and not isinstance(arguments, str):
                arguments = json.dumps(arguments, ensure_ascii=False)
            theirs = call.get("index", position)
            index = self._index(theirs if isinstance(theirs, (int, str)) else position, ident, name)
            if name and not self.names.get(index):  # the name comes in the call's first fragment
                self.names[index] = name
            if ident or name or arguments:
                parts.append(ToolCallPart(index, ident, name, arguments or ""))
        return parts

    def _index(self, theirs: Any, ident: str, name: str) -> int:
        """Our index of a fragment: the server's, unless it starts another call (a new id and a name)."""
        ours = self.index.get(theirs)
        if ours is None or (ident and name and self.ids.get(ours, ident) != ident):
            ours = self.index[theirs] = self.count
            self.count += 1
        if ident:
            self.ids.setdefault(ours, ident)
        return ours

    def close(self) -> list[ToolCalls]:
        """One :class:`ToolCalls` naming the calls so far, in the order they began (then nothing)."""
        names = tuple(self.names[i] for i in sorted(self.names))
        self.names, self.ids, self.index, self.count = {}, {}, {}, 0
        return [ToolCalls(names)] if names else []

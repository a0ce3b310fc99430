"""What an OpenAI-compatible answer carries -> answer text and typed events.

``chat.completion.chunk`` objects of a stream (:class:`StreamState`) or one
``chat.completion`` (:func:`json_answer`): content, reasoning (``reasoning_content``,
``reasoning``), the model that answered (``model``), tool calls (their names), the
finish reason, usage.  ``<think>`` tags inside the content are split off by the
runner, for every provider alike (:class:`~ipyg4f.events.ThinkSplitter`).
"""

from __future__ import annotations

from typing import Any

from ..events import Event, FinishReason, ModelUsed, Reasoning, ThinkSplitter, ToolCalls, Usage

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
    names = tuple(name for call in message.get("tool_calls") or [] if isinstance(call, dict)
                  if (name := (call.get("function") or {}).get("name")))
    if names:
        items.append(ToolCalls(names))
    items.append(FinishReason(choice.get("finish_reason") or "stop"))
    if usage := _usage(data):
        items.append(usage)
    return items


class StreamState:
    """Turns ``chat.completion.chunk`` objects of an answer to a request for ``asked`` into answer
    text and events; the first chunk that names another model gives a :class:`ModelUsed`."""

    def __init__(self, asked: str = "") -> None:
        self.tools: dict[int, str] = {}  # call index -> function name
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
                    self._note_calls(calls)
            reason = choice.get("finish_reason")
            if reason:
                items += [*self._tool_calls(), FinishReason(reason)]
        if data.get("usage") and (usage := _usage(data)) is not None:
            items.append(usage)
        return items

    def _note_calls(self, calls: Any) -> None:
        for position, call in enumerate(calls if isinstance(calls, list) else ()):
            if isinstance(call, dict):
                index = call.get("index", position)
                name = (call.get("function") or {}).get("name")
                if name and not self.tools.get(index):  # the name comes in the call's first fragment
                    self.tools[index] = name

    def close(self) -> list[str | Event]:
        """What is left when the stream ends (without a finish_reason)."""
        return self._tool_calls()

    def _tool_calls(self) -> list[ToolCalls]:
        names = tuple(self.tools.values())  # in the order the calls began
        self.tools = {}
        return [ToolCalls(names)] if names else []

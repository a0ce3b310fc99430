"""What an OpenAI-compatible answer carries -> answer text and typed events.

``chat.completion.chunk`` objects of a stream (:class:`StreamState`) or one
``chat.completion`` (:func:`json_answer`): content, reasoning
(``reasoning_content``, ``reasoning``, or ``<think>`` tags inside the content:
:class:`ThinkSplitter`), tool calls (their names), the finish reason, usage.
"""

from __future__ import annotations

from typing import Any

from ..events import Event, FinishReason, Reasoning, ToolCalls, Usage

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


def json_answer(data: Any) -> list[str | Event]:
    """The items of a non-streamed answer (``chat.completion``)."""
    choice = (data.get("choices") or [{}])[0] if isinstance(data, dict) else {}
    message = choice.get("message") or {}
    items: list[str | Event] = list(_reasoning(message))
    if isinstance(content := message.get("content"), str):
        splitter = ThinkSplitter()
        items += [*splitter.feed(content), *splitter.close()]
    names = tuple(name for call in message.get("tool_calls") or [] if isinstance(call, dict)
                  if (name := (call.get("function") or {}).get("name")))
    if names:
        items.append(ToolCalls(names))
    items.append(FinishReason(choice.get("finish_reason") or "stop"))
    if usage := _usage(data):
        items.append(usage)
    return items


class StreamState:
    """Turns ``chat.completion.chunk`` objects into answer text and events."""

    def __init__(self) -> None:
        self.think = ThinkSplitter()
        self.tools: dict[int, str] = {}  # call index -> function name

    def feed(self, data: dict[str, Any]) -> list[str | Event]:
        items: list[str | Event] = []  # (written for speed: this runs once per streamed token)
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
                    if self.think.plain(content):
                        items.append(content)
                    else:
                        items += self.think.feed(content)
                calls = delta.get("tool_calls")
                if calls:
                    self._note_calls(calls)
            reason = choice.get("finish_reason")
            if reason:
                items += [*self.think.close(), *self._tool_calls(), FinishReason(reason)]
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
        return [*self.think.close(), *self._tool_calls()]

    def _tool_calls(self) -> list[ToolCalls]:
        names = tuple(self.tools.values())  # in the order the calls began
        self.tools = {}
        return [ToolCalls(names)] if names else []


class ThinkSplitter:
    """Splits ``<think>...</think>`` out of streamed content, incrementally.

    :meth:`feed` takes each piece of content and returns answer text (``str``)
    and :class:`Reasoning` for what is inside the tags; a tag split across
    pieces (``"<thi"`` + ``"nk>"``) is held back until it is complete, so
    nothing of a tag reaches the answer.  Whitespace right after a tag is
    dropped (``</think>\\n\\nAnswer`` answers ``"Answer"``).  :meth:`close` at the
    end gives what was held back: a stream that never closes its ``<think>``
    was all reasoning.
    """

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self) -> None:
        self.inside = False
        self._held = ""
        self._after_tag = False

    def plain(self, text: str) -> bool:
        """True when ``text`` is answer text as it is (no tag in or around it): the common case."""
        return not (self.inside or self._held or self._after_tag) and "<" not in text

    def feed(self, text: str) -> list[str | Reasoning]:
        out: list[str | Reasoning] = []
        held = self._held + text
        while True:
            tag = self.CLOSE if self.inside else self.OPEN
            at = held.find(tag)
            if at < 0:
                break
            self._emit(out, held[:at])
            held = held[at + len(tag):]
            self.inside = not self.inside
            self._after_tag = True
        keep = next((n for n in range(min(len(tag) - 1, len(held)), 0, -1) if held.endswith(tag[:n])), 0)
        self._emit(out, held[:len(held) - keep])
        self._held = held[len(held) - keep:]
        return out

    def close(self) -> list[str | Reasoning]:
        """What was held back (the start of a tag that never came), as what it is inside."""
        out: list[str | Reasoning] = []
        self._emit(out, self._held)
        self._held = ""
        return out

    def _emit(self, out: list[str | Reasoning], text: str) -> None:
        if self._after_tag:
            text = text.lstrip()
            self._after_tag = not text
        if text:
            out.append(Reasoning(text) if self.inside else text)

"""Tool calls a model wrote as text, for a server whose parser did not take them (llama.cpp with small models).

llama.cpp's server turns a call written in the chat template's own format into
``tool_calls`` deltas; the offline default Qwen2.5-Coder-0.5B writes its calls as a
fenced or bare JSON object instead (``{"name": "describe", "arguments": {"name": "df"}}``),
which the server sends on as text.  :class:`TextCalls` holds back the text of an answer
to a request with tools while it may still be such a call (``local.tools.may_be_a_call``,
the same rules ``Local`` applies in process), and at the end gives either the calls
(:class:`~ipyg4f.events.ToolCallPart` events, one :class:`~ipyg4f.events.ToolCalls`,
``FinishReason("tool_calls")``) or the text as it came.  Only calls to the tools offered
count; every other event goes through at once, a finish reason waits for the text.
"""

from __future__ import annotations

from typing import Any

from ..events import FinishReason, ToolCallPart, ToolCalls

# .local.tools is imported when tools are offered: importing the local package costs ~50 ms (its engine),
# which every plain request of an OpenAI-compatible provider would otherwise pay

__all__ = ["TextCalls", "without_tools"]


class TextCalls:
    """One answer's items -> the same, or the tool calls its text was written as."""

    def __init__(self, tools: Any) -> None:
        self.names = {t["function"]["name"] for t in tools or () if isinstance(t, dict)
                      and isinstance(t.get("function"), dict) and isinstance(t["function"].get("name"), str)}
        self.held: list[str] | None = [] if self.names else None  # None: an answer, streamed as it comes
        if self.names:
            from .local import tools

            self.rules = tools
        self.finish: FinishReason | None = None
        self.calls: list[tuple[str, str]] = []  #: the calls found in the text (set by close())
        self.done = False  #: a whole call has been written: what follows is not needed

    def feed(self, item: Any) -> list[Any]:
        if self.held is None:
            return [item]
        if isinstance(item, ToolCallPart):  # the server's parser took it: a structured call
            return [*self._release(), item]
        if isinstance(item, FinishReason):
            self.finish = item
            return []
        if not isinstance(item, str):
            return [item]
        self.held.append(item)
        text = "".join(self.held)
        if ("}" in item or "]" in item) and self.rules.first_call(text, self.names):
            self.done = True  # (the 0.5B Qwen writes its call again and again until the token limit)
        elif text.strip() and not self.rules.may_be_a_call(text):
            return self._release()
        return []

    def _release(self) -> list[Any]:
        out: list[Any] = ["".join(self.held)] if self.held and "".join(self.held) else []
        self.held = None
        if self.finish is not None:
            out.append(self.finish)
            self.finish = None
        return out

    def close(self) -> list[Any]:
        """What was held back: the calls it was written as, or the text."""
        if self.held is None:
            return [self.finish] if self.finish is not None else []
        text = "".join(self.held)
        found = self.rules.calls_in_text(text, self.names) or self.rules.first_call(text, self.names)
        self.calls = found if text.strip() else []
        if not self.calls:
            return self._release()
        self.held = None
        parts = [ToolCallPart(n, "", name, arguments) for n, (name, arguments) in enumerate(self.calls)]
        return [*parts, ToolCalls(tuple(name for name, _ in self.calls)), FinishReason("tool_calls")]

    def repeated(self, messages: Any) -> bool:
        """The calls found were all made before and their results are in ``messages`` already."""
        return bool(self.calls) and self.rules.repeats(self.calls, list(messages))


def without_tools(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` asked once more without tools, the results folded into the question: a small model
    that asks again for what a tool already answered then answers from it (as ``Local`` does)."""
    from .local.tools import results_as_question

    out = {k: v for k, v in body.items() if k not in ("tools", "tool_choice", "parallel_tool_calls")}
    out["messages"] = results_as_question(list(body["messages"]))
    return out
